"""De-identification to DICOM PS3.15 Annex E, file by file, consistent across everything loaded.

A :class:`Deidentifier` holds one job: the chosen options, a key derived from the user's secret,
and what the job has met so far (patients, UIDs, identifying values). For each file it walks the
bytes (:mod:`dcmstudio.elements`), decides every element's action from Table E.1-1 of the pinned
edition (:mod:`dcmstudio.deid_profile`), turns those decisions into byte-level edits and lets
:func:`dcmstudio.edit.edit_bytes` make them: the output differs from the input only where the
profile asked, and the editor proves it. Pixels change only where the user masked them (Clean
Pixel Data Option).

Consistency: a new UID is ``2.25.`` + HMAC(key, old UID), a patient's pseudonym and date offset
are HMACs of the patient's original ID, so the same inputs and the same secret give the same bytes
in every session. Without a secret the key is random: consistent within the job only.

After each file, a residual scan looks for the original identifying values (names, IDs, dates,
UIDs, addresses) of every file seen so far in every remaining value, private and nested ones
included, and in the output's file name.

Beyond the table (each is said in the report): instance UIDs the table does not list are
replaced too, so references keep pointing at the right instance; standard-group elements that
pydicom's dictionary does not know are removed; text inside sequences whose action is D or C is
cleaned of the identifying values seen.
"""

import base64
import bisect
import csv
import dataclasses
import datetime
import functools
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import tempfile

from pydicom.datadict import dictionary_VR, keyword_for_tag, private_dictionary_VR

from dcmstudio import __version__, deid_profile, edit, uids, values
from dcmstudio.catalog import as_invalid_dicom
from dcmstudio.elements import ITEM, in_force, tag_text, walk
from dcmstudio.errors import DicomStudioError, EditError

MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID = 0x00080016
MODALITY = 0x00080060
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
ISSUER_OF_PATIENT_ID = 0x00100021
PATIENT_BIRTH_DATE = 0x00100030
PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
DEIDENTIFICATION_METHOD_CODES = 0x00120064
ROWS, COLUMNS = 0x00280010, 0x00280011
SAMPLES_PER_PIXEL = 0x00280002
PHOTOMETRIC_INTERPRETATION = 0x00280004
PLANAR_CONFIGURATION = 0x00280006
NUMBER_OF_FRAMES = 0x00280008
BITS_ALLOCATED = 0x00280100
PIXEL_REPRESENTATION = 0x00280103
BURNED_IN_ANNOTATION = 0x00280301
LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED = 0x00280303
PIXEL_DATA = 0x7FE00010
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, PIXEL_DATA})
CODE_VALUE, CODING_SCHEME_DESIGNATOR, CODE_MEANING = 0x00080100, 0x00080102, 0x00080104

# Modalities whose images often carry burned-in text (PS3.15 E.3.1), and the SOP classes of
# Secondary Capture, whose pixels are screenshots more often than not.
BURNED_IN_MODALITIES = {"US": "ultrasound", "XA": "X-ray angiography", "ES": "endoscopy",
                        "SC": "secondary capture", "OT": "other (often screenshots)"}
SECONDARY_CAPTURE_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.7"

# Key stretching for a typed secret; hashlib.pbkdf2_hmac where it exists, else the same
# algorithm in Python (Pyodide's hashlib has no pbkdf2_hmac): both give identical keys.
KEY_ITERATIONS = 100_000
KEY_SALT = b"dcmstudio-deid-1"

DUMMY_TEXT = "ANONYMIZED"
DUMMY_DATE = "19000101"
DUMMY_VALUES = {"AE": DUMMY_TEXT, "AS": "000D", "CS": DUMMY_TEXT, "DA": DUMMY_DATE,
                "DT": DUMMY_DATE + "000000", "TM": "000000", "DS": "0", "IS": "0",
                "LO": DUMMY_TEXT, "LT": DUMMY_TEXT, "PN": DUMMY_TEXT, "SH": DUMMY_TEXT,
                "ST": DUMMY_TEXT, "UC": DUMMY_TEXT, "UT": DUMMY_TEXT, "UR": "urn:x-anonymized",
                "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0,
                "AT": 0, "OB": b"\x00\x00", "UN": b"\x00\x00", "OW": b"\x00\x00",
                "OL": b"\x00" * 4, "OF": b"\x00" * 4, "OD": b"\x00" * 8, "OV": b"\x00" * 8}
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
CLEANABLE_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
BINARY_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})
BULK_VRS = frozenset({"OB", "OW", "OL", "OF", "OD", "OV", "UN"})
# The dictionary lookup is slow next to everything else done per element, and a series repeats
# the same few hundred tags in every file.
_keyword = functools.lru_cache(maxsize=4096)(keyword_for_tag)
_NUMERIC_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")

OPTION_DEFAULTS = {
    **{key: False for key in deid_profile.OPTION_KEYS},
    "clean_pixel_data": False,
    "pixel_masks": [],
    "secret": "",
    "date_offset_days": None,
    "date_offset_range": [-3650, -365],
    "pseudonym_prefix": "DEID",
    "keep_names": False,
    "safe_private": [],
    "zip_name": None,
}


class DeidOptions:
    """The options of one job, checked once before any file is touched.

    Parameters
    ----------
    options : dict
        PS3.15 options as booleans (keys of :data:`dcmstudio.deid_profile.OPTIONS`, and
        ``clean_pixel_data``), and:

        - ``pixel_masks``: ``[{"x", "y", "width", "height", "files"}]`` rectangles in pixels
          of the shown frame, blacked out in every frame of the files named (every file when
          ``files`` is absent); applied only with ``clean_pixel_data``.
        - ``secret``: text; the same secret gives the same UIDs, pseudonyms and date offsets in
          every session. Empty: a random key, consistent within this job only.
        - ``date_offset_days``: ``None`` (a per-patient offset from the secret, within
          ``date_offset_range``, inclusive) or a whole number of days for every patient.
        - ``pseudonym_prefix``: the start of every patient pseudonym (default ``DEID``).
        - ``keep_names``: keep the input file names (the residual scan still reads them).
        - ``safe_private``: private elements declared safe, as ``(gggg,"CREATOR",ee)``; with
          ``retain_safe_private`` they are kept besides those holding only numbers.

    Raises
    ------
    DicomStudioError
        An unknown option, both longitudinal options, or a malformed value.
    """

    def __init__(self, options):
        options = dict(options or {})
        unknown = sorted(set(options) - set(OPTION_DEFAULTS))
        if unknown:
            raise DicomStudioError(f"de-identification has no option {unknown[0]!r}; the options "
                                   f"are {', '.join(sorted(OPTION_DEFAULTS))}.")
        merged = {**OPTION_DEFAULTS, **options}
        self.chosen = frozenset(k for k in deid_profile.OPTION_KEYS if merged[k])
        if {"retain_long_full_dates", "retain_long_modified_dates"} <= self.chosen:
            raise DicomStudioError("Retain Longitudinal Temporal Information keeps either full "
                                   "dates or modified dates, not both: choose one.")
        self.clean_pixel_data = bool(merged["clean_pixel_data"])
        self.pixel_masks = [_parse_mask(m) for m in merged["pixel_masks"] or []]
        self.secret = merged["secret"] or ""
        if not isinstance(self.secret, str):
            raise DicomStudioError("the secret must be text.")
        self.date_offset_days = _whole_number(merged["date_offset_days"], "date_offset_days",
                                              allow_none=True)
        low, high = (_whole_number(v, "date_offset_range") for v in merged["date_offset_range"])
        if low > high:
            raise DicomStudioError(f"date_offset_range [{low}, {high}] is empty: give the smaller "
                                   f"number first.")
        self.date_offset_range = (low, high)
        prefix = merged["pseudonym_prefix"]
        if not isinstance(prefix, str) or not re.fullmatch(r"[A-Z0-9_]{0,16}", prefix):
            raise DicomStudioError("pseudonym_prefix must be 0 to 16 capital letters, digits or "
                                   "underscores (it becomes part of Patient ID and file names).")
        self.pseudonym_prefix = prefix
        self.keep_names = bool(merged["keep_names"])
        self.safe_private = set()
        for text in merged["safe_private"] or []:
            try:
                steps = edit.parse_path(text)
            except EditError as exc:
                raise DicomStudioError(f"safe_private: {exc.message}") from None
            if len(steps) != 1 or steps[0].creator is None or steps[0].item is not None:
                raise DicomStudioError(f"safe_private: {text!r} is not one private element "
                                       f"written (gggg,\"CREATOR\",ee).")
            self.safe_private.add((steps[0].group, steps[0].creator, steps[0].element))

    def codes(self, pixels_cleaned=False):
        """``[(code, meaning)]`` for (0012,0064): the Basic Profile, then each option used."""
        codes = [deid_profile.BASIC_PROFILE]
        codes += [(code, meaning) for key, code, meaning in deid_profile.OPTIONS
                  if key in self.chosen]
        if pixels_cleaned:
            codes.append(deid_profile.CLEAN_PIXEL_DATA)
        return codes

    def masks_for(self, name):
        """The rectangles that apply to the file ``name`` (none without Clean Pixel Data)."""
        if not self.clean_pixel_data:
            return []
        return [m for m in self.pixel_masks if m["files"] is None or name in m["files"]]


def _whole_number(value, option, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise DicomStudioError(f"{option} must be a whole number of days, not {value!r}.")
    return int(value)


def _parse_mask(mask):
    try:
        rect = {k: int(mask[k]) for k in ("x", "y", "width", "height")}
        files = mask.get("files")
        rect["files"] = None if files is None else set(map(str, files))
    except (KeyError, TypeError, ValueError):
        raise DicomStudioError(f"a pixel mask is {{\"x\", \"y\", \"width\", \"height\"}} in pixels "
                               f"(and optionally \"files\"), not {mask!r}.") from None
    if rect["width"] <= 0 or rect["height"] <= 0 or rect["x"] < 0 or rect["y"] < 0:
        raise DicomStudioError(f"the pixel mask {mask!r} has no area inside the image.")
    return rect


def derive_key(secret):
    """The job's key: PBKDF2-HMAC-SHA256 of the secret, or random bytes without one.

    Returns
    -------
    key : bytes
    deterministic : bool
        ``True`` when the key came from a secret (another session can repeat it).
    """
    if not secret:
        return secrets.token_bytes(32), False
    return _stretched_key(secret), True


@functools.lru_cache(maxsize=4)
def _stretched_key(secret):
    # cached: a second task with the same secret in one page session skips ~1 s in Pyodide
    password = secret.encode("utf-8")
    if hasattr(hashlib, "pbkdf2_hmac"):
        return hashlib.pbkdf2_hmac("sha256", password, KEY_SALT, KEY_ITERATIONS)
    return _pbkdf2_sha256(password, KEY_SALT, KEY_ITERATIONS)


def _pbkdf2_sha256(password, salt, iterations):
    """PBKDF2-HMAC-SHA256 (RFC 8018), one 32-byte block, for runtimes without OpenSSL."""
    if len(password) > 64:
        password = hashlib.sha256(password).digest()
    block = password.ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def prf(message):
        i = inner.copy()
        i.update(message)
        o = outer.copy()
        o.update(i.digest())
        return o.digest()

    u = prf(salt + b"\x00\x00\x00\x01")
    result = int.from_bytes(u, "big")
    for _ in range(iterations - 1):
        u = prf(u)
        result ^= int.from_bytes(u, "big")
    return result.to_bytes(32, "big")


@dataclasses.dataclass
class Patient:
    """One patient as the job knows them: original identity, pseudonym, date offset."""

    key: str
    original_id: str
    issuer: str
    original_name: str
    birth_date: str
    pseudonym: str
    date_offset_days: int
    files: int = 0


class Deidentifier:
    """One de-identification job over many files, with one consistent mapping.

    Parameters
    ----------
    options : dict
        See :class:`DeidOptions`.
    scratch : str, optional
        A folder for temporary files (only pixel cleaning of compressed files needs one);
        a new temporary folder by default.

    Examples
    --------
    >>> job = Deidentifier({"secret": "s3cret", "retain_long_modified_dates": True})  # doctest: +SKIP
    >>> pieces, report = job.deidentify(open("in.dcm", "rb").read(), "in.dcm")       # doctest: +SKIP
    """

    def __init__(self, options=None, scratch=None):
        self.options = DeidOptions(options)
        self.profile = deid_profile.load()
        self._key, self.deterministic = derive_key(self.options.secret)
        self.scratch = scratch
        self.patients = {}
        self.uid_map = {}
        self.identifiers = _Identifiers()
        # Totals only: the reports themselves go to the caller, so memory does not grow with
        # the series.
        self.totals = {"files": 0, "residual_hits": 0, "burned_in_flagged": 0,
                       "pixels_cleaned": 0}
        self.failures = []

    # --- keyed values ------------------------------------------------------------------------

    def _digest(self, purpose, text):
        message = purpose.encode("ascii") + b"\x00" + text.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def new_uid(self, old):
        """The UID that replaces ``old`` in this job: ``2.25.`` and a keyed 128-bit number.

        The number has the layout of a version 8 UUID (RFC 9562), as PS3.5 B.2 asks of
        ``2.25`` UIDs; at most 44 characters.
        """
        new = self.uid_map.get(old)
        if new is None:
            number = int.from_bytes(self._digest("uid", old)[:16], "big")
            number = number & ~(0xF << 76) | 0x8 << 76
            number = number & ~(0x3 << 62) | 0x2 << 62
            new = self.uid_map[old] = "2.25." + str(number)
        return new

    def patient(self, original_id, issuer="", original_name="", birth_date=""):
        """The job's record of a patient (created on first sight): pseudonym and date offset."""
        key = f"id:{original_id}\x00{issuer}" if original_id else \
            f"name:{original_name}\x00{birth_date}"
        patient = self.patients.get(key)
        if patient is None:
            code = base64.b32encode(self._digest("patient", key)).decode("ascii")[:10]
            offset = self.options.date_offset_days
            if offset is None:
                low, high = self.options.date_offset_range
                number = int.from_bytes(self._digest("date", key)[:8], "big")
                offset = low + number % (high - low + 1)
            patient = Patient(key, original_id, issuer, original_name, birth_date,
                              self.options.pseudonym_prefix + code, offset)
            self.patients[key] = patient
        return patient

    def pseudonym_for_id(self, original_id):
        """A keyed stand-in for a patient ID met somewhere other than the top level."""
        code = base64.b32encode(self._digest("patient", f"id:{original_id}\x00")).decode()[:10]
        return self.options.pseudonym_prefix + code

    # --- one file ------------------------------------------------------------------------------

    def deidentify(self, data, name, *, index=1):
        """De-identify one file held in memory.

        Parameters
        ----------
        data : bytes
            The whole input file.
        name : str
            Its name (for messages and, with ``keep_names``, the output name).
        index : int
            Its 1-based position in the job (output names are numbered by it).

        Returns
        -------
        pieces : list of bytes-like
            The output file (write them in order).
        report : dict
            ``{"file", "output", "patient", "actions", "elements", "changes", "burned_in",
            "pixels_cleaned", "residual", "notes"}``: ``elements`` lists
            ``{"path", "tag", "name", "action", "by"}`` for every element acted on (``by`` is
            ``basic``, an option key, or ``beyond-table``); ``actions`` counts them per
            action; ``changes`` counts the byte-level changes; ``burned_in`` is
            ``{"flag": bool, "reasons": [...]}``; ``residual`` lists the hits of the
            residual scan (see :meth:`residual_scan`). No original value is in the report.

        Raises
        ------
        NotDicomError, InvalidDicomError
            The file cannot be read.
        EditError, DicomStudioError
            A change cannot be made (e.g. compressed pixels that cannot be decoded here).
        """
        with as_invalid_dicom(name, "while de-identifying it"):
            emap = walk(data, name)
            plan = _FilePlan(self, emap, name)
            pieces, edit_report = edit.edit_bytes(data, plan.edits, context={"name": name})
            notes = list(plan.notes)
            if plan.masks:
                pieces = self._clean_pixels(pieces, name, plan.masks, notes)
            output = self._output_name(name, plan.patient, index)
            pixels = None if plan.masks else _pixels_in_output(emap, pieces, edit_report)
            residual = self.residual_scan(pieces, name, output, pixel_range=pixels)
        counts = {}
        for element in plan.elements:
            counts[element["action"]] = counts.get(element["action"], 0) + 1
        plan.patient.files += 1
        report = {
            "file": name,
            "output": output,
            "patient": plan.patient.pseudonym,
            "actions": counts,
            "elements": plan.elements,
            "changes": len(edit_report["changes"]),
            "burned_in": plan.burned_in,
            "pixels_cleaned": bool(plan.masks),
            "residual": residual,
            "notes": notes,
        }
        self.totals["files"] += 1
        self.totals["residual_hits"] += len(residual)
        self.totals["burned_in_flagged"] += plan.burned_in["flag"]
        self.totals["pixels_cleaned"] += bool(plan.masks)
        return pieces, report

    def deidentify_file(self, in_path, out_path, name=None, *, index=1):
        """:meth:`deidentify` from a path to a path; returns the report."""
        name = name or os.path.basename(in_path)
        with open(in_path, "rb") as f:
            data = f.read()
        pieces, report = self.deidentify(data, name, index=index)
        with open(out_path, "wb") as f:
            f.writelines(pieces)
        return report

    def _output_name(self, name, patient, index):
        if self.options.keep_names:
            return name
        return f"{patient.pseudonym}/{index:05d}.dcm"

    # --- pixels ------------------------------------------------------------------------------

    def _clean_pixels(self, pieces, name, masks, notes):
        """Black out the masked rectangles in every frame; compressed pixels are decoded first."""
        from dcmstudio import codecs  # numpy and Pillow: only when pixels are cleaned

        data = bytearray().join(pieces)
        emap = walk(data, name)
        pixels = emap.top_level(PIXEL_DATA)
        if pixels is None:
            notes.append("Clean Pixel Data: the file has no (7FE0,0010) Pixel Data.")
            return [data]
        if pixels.children is not None or emap.deflated:
            folder = tempfile.mkdtemp(dir=self.scratch)
            try:
                source, target = os.path.join(folder, "in.dcm"), os.path.join(folder, "out.dcm")
                with open(source, "wb") as f:
                    f.write(data)
                result = codecs.decompress(source, target, name=name)
                with open(target, "rb") as f:
                    data = bytearray(f.read())
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            notes.append(f"Clean Pixel Data: decoded from {result['source_transfer_syntax']['name']}"
                         f" and stored uncompressed to mask it.")
            emap = walk(data, name)
            pixels = emap.top_level(PIXEL_DATA)
        _mask_native_pixels(data, emap, pixels, masks, name)
        return [data]

    # --- residual scan -----------------------------------------------------------------------

    def learn_identifiers(self, data, name):
        """Remember one original file's identifying values for later scans, without changing it.

        What :meth:`deidentify` does before de-identifying; lets a benchmark scan other tools'
        outputs with the same needles.
        """
        with as_invalid_dicom(name, "while reading its identifying values"):
            _FilePlan(self, walk(data, name), name, collect_only=True)

    def residual_scan(self, pieces, name, output_name=None, *, pixel_range=None):
        """Look for the identifying values met so far in a de-identified file and its name.

        Every value is searched (text, private and nested elements, binary values read as
        bytes), except pixel data; UIDs and dates are matched as whole tokens, names, IDs
        and addresses case-insensitively between non-alphanumeric characters.

        Parameters
        ----------
        pieces : bytes-like or list of bytes-like
            The output file.
        name : str
            The input's name (for messages).
        output_name : str, optional
            The output's file name, searched too.
        pixel_range : (int, int), optional
            Where the pixel data's value lies in the output, when the caller knows: the file is
            then walked only to name the elements of hits (and pixels are never copied).

        Returns
        -------
        list of dict
            ``{"where": "value" or "file name", "path", "tag", "private", "kind", "found"}``
            per hit; ``found`` is the identifying value found (the report stays on the page).
        """
        if isinstance(pieces, (bytes, bytearray, memoryview)):
            pieces = [pieces]
        with as_invalid_dicom(name, "while scanning the output"):
            finder = self.identifiers.finder()
            if pixel_range is not None:
                head = _cut(pieces, 0, pixel_range[0])
                tail = _cut(pieces, pixel_range[1], None)
                if not finder(head, 0, len(head)) and not finder(tail, 0, len(tail)):
                    pieces = None  # nothing found: no need to walk the file to name elements
            hits, index = [], None
            if pieces is not None:
                data = bytearray().join(pieces)
                emap = walk(data, output_name or name)
                for start, end in _scanned_ranges(emap):
                    for offset, kind, found in finder(emap.data, start, end):
                        index = index or _ElementIndex(emap)
                        element = index.at(offset)
                        hits.append({"where": "value",
                                     "path": element.path if element else f"offset {offset}",
                                     "tag": tag_text(element.tag) if element else None,
                                     "private": bool(element and _in_private(element)),
                                     "kind": kind, "found": found})
            if output_name:
                encoded = output_name.encode("utf-8", "surrogatepass")
                for _, kind, found in finder(encoded, 0, len(encoded)):
                    hits.append({"where": "file name", "path": output_name, "tag": None,
                                 "private": False, "kind": kind, "found": found})
        return hits

    # --- the mapping ---------------------------------------------------------------------------

    def mapping(self):
        """Original → new identities of this job (identifying: keep it secret).

        Returns
        -------
        dict
            ``{"identifying": True, "warning", "profile", "deterministic", "patients": [...],
            "uids": [{"original", "new"}]}``; each patient is ``{"original_patient_id",
            "issuer", "original_patient_name", "original_birth_date", "pseudonym",
            "date_offset_days", "files"}``.
        """
        return {
            "identifying": True,
            "warning": "IDENTIFYING: this file links de-identified data to real people. Keep it "
                       "apart from the data and share it with no one who may not re-identify.",
            "profile": f"PS3.15-{self.profile.edition} Table E.1-1",
            "options": sorted(self.options.chosen),
            "deterministic": self.deterministic,
            "patients": [{"original_patient_id": p.original_id, "issuer": p.issuer,
                          "original_patient_name": p.original_name,
                          "original_birth_date": p.birth_date, "pseudonym": p.pseudonym,
                          "date_offset_days": p.date_offset_days, "files": p.files}
                         for p in self.patients.values()],
            "uids": [{"original": old, "new": new} for old, new in self.uid_map.items()],
        }

    def mapping_csv(self):
        """The mapping as CSV: ``kind,original,new,detail`` rows after a warning line."""
        out = io.StringIO()
        mapping = self.mapping()
        out.write(f"# {mapping['warning']}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["kind", "original", "new", "detail"])
        for p in mapping["patients"]:
            writer.writerow(["patient_id", p["original_patient_id"], p["pseudonym"],
                             f"issuer={p['issuer']}"])
            writer.writerow(["patient_name", p["original_patient_name"], p["pseudonym"], ""])
            writer.writerow(["date_offset_days", p["original_patient_id"] or
                             p["original_patient_name"], p["date_offset_days"], ""])
        for u in mapping["uids"]:
            writer.writerow(["uid", u["original"], u["new"], ""])
        return out.getvalue()

    def write_mapping(self, folder):
        """Write the mapping as CSV and JSON into ``folder``; return ``[{"path", "name", "mime"}]``."""
        outputs = []
        for suffix, mime, text in (
                ("csv", "text/csv;charset=utf-8", self.mapping_csv()),
                ("json", "application/json", json.dumps(self.mapping(), indent=1))):
            name = f"IDENTIFYING-deid-mapping.{suffix}"
            path = os.path.join(folder, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            outputs.append({"path": path, "name": name, "mime": mime})
        return outputs

    def summary(self):
        """Totals of the job for the page's report."""
        return {
            **self.totals,
            "failed": self.failures,
            "patients": len(self.patients),
            "uids_replaced": len(self.uid_map),
            "deterministic": self.deterministic,
            "profile": f"PS3.15-{self.profile.edition} Table E.1-1",
            "options": sorted(self.options.chosen),
        }


class _Identifiers:
    """The identifying values met in a job, and a finder for them in encoded bytes."""

    def __init__(self):
        self.texts = {}  # lower-case text → kind
        self.dates = set()  # "YYYYMMDD"
        # UIDs replaced that name an instance, a series, a patient's study...: not those naming
        # software or organisations (Instance Creator UID), which other elements repeat.
        self.instance_uids = set()
        self._patterns = None  # (bytes pattern for scans, str pattern for scrubbing)

    def add(self, kind, text):
        text = text.strip(" \x00")
        if kind == "date":
            digits = re.sub(r"[^0-9]", "", text)[:8]
            if len(digits) == 8 and digits != DUMMY_DATE and digits not in self.dates:
                self.dates.add(digits)
                self._patterns = None
            return
        if len(text) < 3 or text.upper() == DUMMY_TEXT or text.strip("0. -") == "":
            return  # too short or too common to mean anyone
        key = text.lower()
        if key not in self.texts:
            self.texts[key] = kind
            self._patterns = None

    def finder(self):
        """``fn(data, start, end) -> [(offset, kind, found)]`` over the values seen so far."""
        text_pattern, texts, dates = self._compiled()[0], self.texts, self.dates
        instance_uids = self.instance_uids

        def find(data, start, end):
            hits = []
            if text_pattern is not None:
                for match in text_pattern.finditer(data, start, end):
                    found = match.group(0).decode("utf-8", "replace")
                    hits.append((match.start(), texts.get(found.lower(), "text"), found))
            for match in _UID_TOKEN.finditer(data, start, end):
                token = match.group(0).decode("ascii")
                if token in instance_uids:
                    hits.append((match.start(), "uid", token))
            for match in _DATE_TOKEN.finditer(data, start, end):
                digits = b"".join(match.groups()).decode("ascii")
                if digits in dates:
                    hits.append((match.start(), "date", match.group(0).decode("ascii")))
            return sorted(hits)

        return find

    def scrub(self, text):
        """``text`` without the identifying values seen so far (case-insensitive)."""
        pattern = self._compiled()[1]
        if pattern is None or not text:
            return text
        scrubbed = pattern.sub("", text)
        return text if scrubbed == text else re.sub(r"\s{2,}", " ", scrubbed).strip()

    def _compiled(self):
        if self._patterns is None:
            self._patterns = (_make_text_pattern(self.texts),
                              _make_text_pattern(self.texts, as_bytes=False, dates=self.dates))
        return self._patterns


_UID_TOKEN = re.compile(rb"(?<![0-9.])[0-9]+(?:\.[0-9]+){2,}(?![0-9.])")
_DATE_TOKEN = re.compile(rb"(?<![0-9])((?:19|20)[0-9]{2})[-./]?([01][0-9])[-./]?([0-3][0-9])")


def _make_text_pattern(texts, as_bytes=True, dates=()):
    alternatives = sorted(texts, key=len, reverse=True)
    if as_bytes:
        encoded = sorted({t.encode(enc, "ignore") for t in alternatives
                          for enc in ("utf-8", "latin-1")} - {b""}, key=len, reverse=True)
        if not encoded:
            return None
        body = b"|".join(re.escape(e) for e in encoded)
        return re.compile(rb"(?<![A-Za-z0-9])(?:" + body + rb")(?![A-Za-z0-9])", re.IGNORECASE)
    parts = [re.escape(t) for t in alternatives]
    parts += [f"{d[:4]}[-./]?{d[4:6]}[-./]?{d[6:]}" for d in sorted(dates)]
    if not parts:
        return None
    return re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(parts) + r")(?![A-Za-z0-9])",
                      re.IGNORECASE)


def _pixels_in_output(emap, pieces, edit_report):
    """``(start, end)`` of the pixel data's value in the output, from where it was in the input
    and the editor's changes; ``None`` when it cannot be known this way (deflated, absent)."""
    pixels = emap.top_level(PIXEL_DATA)
    if pixels is None or emap.deflated:
        return None
    shift = 0
    for change in edit_report["changes"]:
        (a, b), (c, d) = change["input_range"], change["byte_range"]
        if b <= pixels.offset:
            shift += (d - c) - (b - a)
        elif a < pixels.end:
            return None  # the pixel data element itself changed
    start = pixels.offset + shift
    header = bytes(emap.data[pixels.offset:pixels.value_offset])
    if _cut(pieces, start, start + len(header)) != header:
        return None
    return start + len(header), pixels.end + shift


def _cut(pieces, start, end):
    """Bytes ``[start, end)`` of a file given in pieces (``end`` ``None``: to the end)."""
    out, position = bytearray(), 0
    for piece in pieces:
        size = len(piece)
        if end is not None and position >= end:
            break
        if position + size > start:
            out += piece[max(0, start - position):None if end is None else end - position]
        position += size
    return bytes(out)


def _scanned_ranges(emap):
    """Byte ranges of a walked file to scan: everything but the pixel data values."""
    ranges, start = [], 0
    for element in emap.root.children:
        if element.tag in PIXEL_DATA_TAGS:
            ranges.append((start, element.value_offset))
            start = element.end
    ranges.append((start, len(emap.data)))
    return ranges


class _ElementIndex:
    """Finds the innermost element whose bytes hold an offset of a walked file."""

    def __init__(self, emap):
        self.elements = [e for e in emap.elements if e.tag != ITEM]
        self.starts = [e.offset for e in self.elements]

    def at(self, offset):
        index = bisect.bisect_right(self.starts, offset) - 1
        while index >= 0:
            element = self.elements[index]
            if element.offset <= offset < element.end:
                return element
            index -= 1
        return None  # the preamble or the DICM prefix


def _in_private(element):
    while element is not None and element.tag is not None:
        if element.tag != ITEM and element.tag >> 16 & 1:
            return True
        element = element.parent
    return False


class _FilePlan:
    """The decisions for one walked file: identifying values first, then the edits."""

    def __init__(self, job, emap, name, collect_only=False):
        self.job = job
        self.emap = emap
        self.name = name
        self.data = emap.data
        self.options = job.options
        self.chosen = job.options.chosen
        self.profile = job.profile
        self.edits = []
        self.elements = []
        self.notes = []
        self._deleted = set()
        self._encodings = {}
        top = {node.tag: node for node in emap.root.children}
        self.top = top
        self.pixel_representation = 0
        self.pixel_representation = self._number(top.get(PIXEL_REPRESENTATION)) or 0
        self.patient = job.patient(self._text(top.get(PATIENT_ID)),
                                   self._text(top.get(ISSUER_OF_PATIENT_ID)),
                                   self._text(top.get(PATIENT_NAME)),
                                   self._text(top.get(PATIENT_BIRTH_DATE)))
        self._collect_identifiers()
        if collect_only:
            return
        self.burned_in = self._burned_in()
        self.masks = self.options.masks_for(name) if PIXEL_DATA in top else []
        self._visit(emap.root, clean=False)
        self._add_deidentification_attributes()

    # --- reading values ------------------------------------------------------------------------

    def _vr(self, node):
        vr = node.vr
        if node.encoding.implicit_vr or vr in (None, "UN") or " or " in vr:
            try:
                vr = dictionary_VR(node.tag)
            except KeyError:
                return vr or "UN"
            vr = values.resolve_vr(vr, self.pixel_representation)
        return vr

    def _encodings_in(self, container):
        def own(dataset):
            charset = next((c for c in dataset.children or () if c.tag == SPECIFIC_CHARACTER_SET), None)
            if charset is None:
                return None
            return values.encodings_for(tuple(self._texts(charset, values.DEFAULT_ENCODINGS)))
        return in_force(container, self._encodings, own, values.DEFAULT_ENCODINGS)

    def _texts(self, node, encodings=None):
        """A plain element's values as a list of text (numbers as their text)."""
        if node is None or node.children is not None or not node.length:
            return []
        raw = self.data[node.value_offset:node.value_offset + node.length]
        vr = self._vr(node)
        if vr in BULK_VRS or vr == "SQ":
            return []
        decoded = values.decode_value(raw, vr, tag=node.tag,
                                      encodings=encodings or self._encodings_in(node.parent),
                                      little_endian=node.encoding.little_endian,
                                      implicit_vr=node.encoding.implicit_vr)
        if decoded is None:
            return []
        items = decoded if isinstance(decoded, list) else [decoded]
        return [str(v) for v in items if v is not None]

    def _text(self, node):
        return "\\".join(self._texts(node))

    def _number(self, node):
        texts = self._texts(node)
        try:
            return int(float(texts[0])) if texts else None
        except ValueError:
            return None

    # --- identifying values --------------------------------------------------------------------

    def _collect_identifiers(self):
        """Remember the values the profile changes that could name someone, at every depth."""
        identifiers = self.job.identifiers
        for node in self.emap.elements:
            if node.children is not None or node.tag in (None, ITEM) or node.tag >> 16 & 1:
                continue
            rule = self.profile.rule_for(node.tag)
            if rule is None:
                continue
            action = self.profile.action(rule, self.chosen)[0]
            kind = _identifier_kind(rule.keyword or _keyword(node.tag), self._vr(node))
            if kind is None or action == "K" or (action == "C" and kind != "date"):
                continue  # kept, or cleaned text that stays by design
            for text in self._texts(node):
                identifiers.add(kind, text)
                if kind == "name":
                    for part in re.split(r"[\^=]", text):
                        identifiers.add("name", part)

    def _burned_in(self):
        reasons = []
        burned_in = self._text(self.top.get(BURNED_IN_ANNOTATION)).upper()
        if burned_in == "YES":
            reasons.append("(0028,0301) Burned In Annotation is YES")
        modality = self._text(self.top.get(MODALITY)).upper()
        if modality in BURNED_IN_MODALITIES and burned_in != "NO":
            reasons.append(f"modality {modality} ({BURNED_IN_MODALITIES[modality]}) often has "
                           f"text in its pixels")
        sop_class = self._text(self.top.get(SOP_CLASS_UID))
        if sop_class.startswith(SECONDARY_CAPTURE_CLASS_PREFIX) and burned_in != "NO":
            reasons.append("a Secondary Capture image: often a screenshot with text")
        if PIXEL_DATA not in self.top:
            reasons = []
        return {"flag": bool(reasons), "burned_in_annotation": burned_in or None,
                "reasons": reasons}

    # --- decisions -------------------------------------------------------------------------------

    def _visit(self, container, clean):
        """Decide every element of a dataset (the root or an item); ``clean``: scrub free text."""
        blocks_kept, creators = set(), []
        deleted_before = len(self._deleted)
        for node in container.children:
            tag = node.tag
            group = tag >> 16
            if not tag & 0xFFFF or tag in PIXEL_DATA_TAGS:
                continue  # group lengths follow their group; pixels change only by masks
            if group == 0x0002 and tag != MEDIA_STORAGE_SOP_INSTANCE_UID:
                continue
            if group & 1:
                self._private(node, blocks_kept, creators)
                continue
            rule = self.profile.rule_for(tag)
            if rule is None:
                self._unlisted(node, clean)
                continue
            action, by = self.profile.action(rule, self.chosen)
            self._apply(node, rule, action, by, clean)
        for creator in creators:
            block = (creator.tag >> 16, creator.tag & 0xFF)
            if block not in blocks_kept:
                self._delete(node=creator, by="basic")
        if len(self._deleted) > deleted_before:
            self._remove_orphaned_overlays(container)

    def _remove_orphaned_overlays(self, container):
        """An Overlay Plane whose (60xx,3000) Overlay Data went cannot stand: its group goes."""
        groups = {node.tag >> 16 for node in container.children
                  if node.tag & 0xFF00FFFF == 0x60003000 and node in self._deleted}
        for node in container.children:
            if node.tag >> 16 in groups and node.tag & 0xFFFF and node not in self._deleted:
                self._delete(node, "beyond-table")

    def _apply(self, node, rule, action, by, clean):
        sequence = node.is_sequence
        if action == "K":
            self._record(node, "K", by)
            if sequence:
                self._items(node, clean)
        elif action == "X":
            self._delete(node, by)
        elif action in ("Z", "X/Z"):
            self._empty(node, by)
        elif action == "U":
            self._replace_uids(node, by, action)
        elif action == "X/Z/U*":
            if sequence:
                self._record(node, action, by)
                self._items(node, clean)
            elif self._vr(node) == "UI":
                self._replace_uids(node, by, action)
            else:
                self._empty(node, by)
        elif action == "C":
            self._clean(node, by)
        else:  # D, Z/D, X/D, X/Z/D: a dummy keeps the IOD valid whether or not it is Type 1
            self._dummy(node, by, action)

    def _items(self, sequence, clean):
        for item in sequence.children:
            if item.children is not None:
                self._visit(item, clean)

    def _unlisted(self, node, clean):
        """An element Table E.1-1 does not list: kept, except as the module docstring says."""
        if node.is_sequence:
            self._items(node, clean)
            return
        if node.children is not None:
            return
        vr = self._vr(node)
        if vr == "UI":
            if "retain_uids" not in self.chosen:
                self._replace_uids(node, "beyond-table", "U", only_instances=True)
        elif not _keyword(node.tag):
            self._delete(node, "beyond-table")
        elif clean and vr in CLEANABLE_TEXT_VRS:
            self._scrub(node, "beyond-table")

    # --- actions -------------------------------------------------------------------------------

    def _record(self, node, action, by):
        self.elements.append({"path": node.path, "tag": tag_text(node.tag),
                              "name": _keyword(node.tag) or "", "action": action,
                              "by": by})

    def _edit(self, op, node, value=None, suffix=""):
        item = {"op": op, "path": node.tag_path + suffix}
        if op != "delete":
            item["value"] = value
        self.edits.append(item)

    def _delete(self, node, by):
        self._deleted.add(node)
        self._record(node, "X", by)
        self._edit("delete", node)

    def _empty(self, node, by):
        if node.is_sequence:
            self._record(node, "Z", by)
            if node.children:
                self._edit("delete", node, suffix="[*]")
            return
        if node.tag in (PATIENT_NAME, PATIENT_ID):
            self._pseudonym(node, by, "Z")  # Z allows a dummy value: the pseudonym
            return
        self._record(node, "Z", by)
        if node.length:
            self._edit("set", node, "")

    def _pseudonym(self, node, by, action):
        self._record(node, action, by)
        original = self._text(node)
        if node.tag == PATIENT_ID and original and original != self.patient.original_id:
            value = self.job.pseudonym_for_id(original)
        else:
            value = self.patient.pseudonym
        if original != value:
            self._edit("set", node, value)

    def _dummy(self, node, by, action):
        if node.is_sequence:
            self._record(node, "D", by)
            if (_keyword(node.tag) or "").endswith("CodeSequence"):
                self._dummy_codes(node, by)
            else:
                self._items(node, clean=True)
            return
        vr = self._vr(node)
        if vr == "UI":
            self._replace_uids(node, by, "D")
        elif node.tag in (PATIENT_NAME, PATIENT_ID):
            self._pseudonym(node, by, "D")
        else:
            self._set_dummy(node, by, vr)

    def _set_dummy(self, node, by, vr):
        self._record(node, "D", by)
        if vr not in DUMMY_VALUES:
            self._deleted.add(node)
            self._edit("delete", node)  # no dummy can be written for it: removing is safer
            return
        self._edit("set", node, DUMMY_VALUES[vr])

    def _dummy_codes(self, sequence, by):
        """Every text of a code sequence's items becomes a dummy (codes for people, places)."""
        for item in sequence.children:
            for node in item.children or ():
                if node.is_sequence:
                    self._dummy_codes(node, by)
                elif node.children is None and self._vr(node) in TEXT_VRS and node.length:
                    self._edit("set", node, "99DEID" if node.tag == CODING_SCHEME_DESIGNATOR
                               else DUMMY_TEXT)

    def _replace_uids(self, node, by, action, only_instances=False):
        old = self._texts(node)
        new = []
        for uid in old:
            keep = not uid or uid.startswith(uids.DICOM_ROOT) or \
                (only_instances and not uids.is_remappable(node.tag, uid))
            new.append(uid if keep else self.job.new_uid(uid))
            if not keep and uids.is_remappable(node.tag, uid):
                self.job.identifiers.instance_uids.add(uid)
        if new != old:
            self._record(node, action, by)
            self._edit("set", node, new if len(new) > 1 else new[0])

    def _clean(self, node, by):
        """C: keep what the option retains, without the identifying parts."""
        if node.is_sequence:
            self._record(node, "C", by)
            self._items(node, clean=True)
            return
        vr = self._vr(node)
        if vr in ("DA", "DT", "TM"):
            self._clean_date(node, by, vr)
        elif vr == "UI":
            self._replace_uids(node, by, "C")
        elif node.tag in (PATIENT_NAME, PATIENT_ID):
            self._pseudonym(node, by, "C")
        elif vr == "PN":
            self._set_dummy(node, by, vr)
        elif vr in TEXT_VRS:
            self._scrub(node, by, record=True)
        else:  # overlay bitmaps and other bulk data cannot be cleaned here: removed
            self._delete(node, by)

    def _clean_date(self, node, by, vr):
        if "retain_long_full_dates" in self.chosen:
            self._record(node, "K", by)
        elif "retain_long_modified_dates" in self.chosen:
            self._record(node, "C", by)
            if vr == "TM":
                return  # whole-day offsets leave times as they are
            old = self._texts(node)
            offset = self.patient.date_offset_days
            new = [_shift(v, offset, vr) for v in old]
            if None in new:
                self.notes.append(f"{node.path}: a {vr} value that is not a date was replaced "
                                  f"by a dummy.")
                new = [DUMMY_VALUES[vr] if v is None else v for v in new]
            if new != old:
                self._edit("set", node, new if len(new) > 1 else new[0])
        else:
            self._set_dummy(node, by, vr)

    def _scrub(self, node, by, record=False):
        old = self._texts(node)
        # a value that was nothing but identifying becomes a dummy: it may be Type 1
        new = [self.job.identifiers.scrub(v) or DUMMY_TEXT for v in old]
        if record or new != old:
            self._record(node, "C", by)
        if new != old:
            self._edit("set", node, new if len(new) > 1 else new[0])

    # --- private elements ----------------------------------------------------------------------

    def _private(self, node, blocks_kept, creators):
        if "retain_safe_private" not in self.chosen:
            self._delete(node, "basic")
            return
        element = node.tag & 0xFFFF
        if 0x10 <= element <= 0xFF:
            creators.append(node)
            return
        if element < 0x1000:
            self._delete(node, "basic")  # reserved private range: no creator, not safe
            return
        creator = self._creator(node)
        if creator is not None and self._is_safe(node, creator):
            blocks_kept.add((node.tag >> 16, element >> 8))
            self._record(node, "C", "retain_safe_private")
            if node.is_sequence:
                self._items(node, clean=False)
        else:
            self._delete(node, "retain_safe_private")

    def _creator(self, node):
        tag = node.tag & 0xFFFF0000 | node.tag >> 8 & 0xFF
        creator = next((c for c in node.parent.children if c.tag == tag), None)
        texts = self._texts(creator) if creator is not None else []
        return texts[0] if texts else None

    def _is_safe(self, node, creator):
        """Declared safe by the user, or holding numbers only (PS3.15 E.3.10, note 2)."""
        group, element = node.tag >> 16, node.tag & 0xFF
        if (group, creator, element) in self.options.safe_private:
            return True
        if node.children is not None:
            return False
        vr = node.vr if not node.encoding.implicit_vr else None
        if vr in (None, "UN"):
            try:
                vr = private_dictionary_VR(node.tag, creator)
            except KeyError:
                return False
        if vr in BINARY_NUMBER_VRS:
            return True
        if vr in ("IS", "DS"):
            raw = bytes(self.data[node.value_offset:node.value_offset + node.length])
            try:
                parts = raw.decode("ascii").split("\\")
            except UnicodeDecodeError:
                return False
            return all(_NUMERIC_TEXT.fullmatch(p) for p in parts)
        return False

    # --- what de-identification adds -----------------------------------------------------------

    def _add_deidentification_attributes(self):
        codes = self.options.codes(pixels_cleaned=bool(self.masks))
        self.edits.append({"op": "add", "path": "(0012,0062)", "value": "YES"})
        method = [f"dcmstudio {__version__} PS3.15-{self.profile.edition} Table E.1-1"]
        method += [meaning for _, meaning in codes]
        self.edits.append({"op": "add", "path": "(0012,0063)", "value": method})
        existing = self.top.get(DEIDENTIFICATION_METHOD_CODES)
        if existing is not None and existing.children:
            self.edits.append({"op": "delete", "path": "(0012,0064)[*]"})
        for i, (code, meaning) in enumerate(codes):
            item = f"(0012,0064)[{i}]"
            self.edits.append({"op": "add", "path": item})
            self.edits.append({"op": "add", "path": f"{item}.(0008,0100)", "value": code})
            self.edits.append({"op": "add", "path": f"{item}.(0008,0102)", "value": "DCM"})
            self.edits.append({"op": "add", "path": f"{item}.(0008,0104)", "value": meaning})
        if PIXEL_DATA in self.top:
            if "retain_long_full_dates" in self.chosen:
                longitudinal = "UNMODIFIED"
            elif "retain_long_modified_dates" in self.chosen:
                longitudinal = "MODIFIED"
            else:
                longitudinal = "REMOVED"
            self.edits.append({"op": "add", "path": "(0028,0303)", "value": longitudinal})
        if self.masks:
            self.edits.append({"op": "add", "path": "(0028,0301)", "value": "NO"})


def _identifier_kind(keyword, vr):
    """What kind of identifying value an element holds, or ``None`` (see the residual scan)."""
    keyword = keyword or ""
    if vr == "PN":
        return "name"
    if vr in ("DA", "DT"):
        return "date"
    if vr not in TEXT_VRS:
        return None
    if re.search(r"Address|Telephone|Telecom|Institution|Location|Residence|Issuer|Organization",
                 keyword):
        return "address"
    if re.search(r"(?:ID|IDs|Number|Numbers|Identifier|Locator|StationName|AETitle|Author)$",
                 keyword):
        return "id"
    return None


_DATE_PARTS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(.*)", re.DOTALL)


def _shift(text, days, vr):
    """A DA or DT value moved by ``days``, at the precision it was written; ``None`` if not a
    date."""
    match = _DATE_PARTS.fullmatch(text.strip())
    if not match or (vr == "DA" and match.group(4)):
        return None
    year, month, day, rest = match.groups()
    try:
        date = datetime.date(int(year), int(month or 1), int(day or 1))
        date += datetime.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    shifted = f"{date.year:04d}" + (f"{date.month:02d}" if month else "") + \
        (f"{date.day:02d}" if day else "")
    return shifted + (rest if vr == "DT" else "")


def _mask_native_pixels(data, emap, pixels, masks, name):
    """Set the masked rectangles of every frame to the frame's darkest value (RGB: black)."""
    import numpy as np

    def number(tag, default=None):
        node = emap.top_level(tag)
        if node is None or not node.length:
            return default
        raw = bytes(emap.data[node.value_offset:node.value_offset + node.length])
        if node.vr == "IS" or tag == NUMBER_OF_FRAMES:
            return int(raw.decode("ascii").strip(" \x00") or default)
        return (node.encoding.u16.unpack(raw[:2]))[0]

    rows, columns = number(ROWS), number(COLUMNS)
    samples, bits = number(SAMPLES_PER_PIXEL, 1), number(BITS_ALLOCATED)
    planar, frames = number(PLANAR_CONFIGURATION, 0), number(NUMBER_OF_FRAMES, 1)
    node = emap.top_level(PHOTOMETRIC_INTERPRETATION)
    photometric = bytes(emap.data[node.value_offset:node.value_offset + node.length]).decode(
        "ascii", "replace").strip(" \x00") if node is not None else ""
    if not rows or not columns or bits not in (8, 16, 32) or \
            photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL"):
        raise DicomStudioError(
            f"Clean Pixel Data: {bits}-bit {photometric or 'unknown'} pixels cannot be masked "
            f"here (masking handles 8, 16 and 32-bit MONOCHROME, PALETTE COLOR, RGB and "
            f"YBR_FULL).", file=name)
    signed = number(PIXEL_REPRESENTATION, 0) == 1
    dtype = np.dtype(("i" if signed else "u") + str(bits // 8))
    dtype = dtype.newbyteorder("<" if pixels.encoding.little_endian else ">")
    frame_bytes = rows * columns * samples * bits // 8
    if pixels.length < frames * frame_bytes:
        raise DicomStudioError(f"Clean Pixel Data: (7FE0,0010) holds {pixels.length} bytes, fewer "
                               f"than {frames} frames of {frame_bytes}.", file=name)
    view = np.frombuffer(memoryview(data)[pixels.value_offset:
                                          pixels.value_offset + frames * frame_bytes], dtype)
    if samples == 1:
        frames_array = view.reshape(frames, rows, columns, 1)
    elif planar == 0:
        frames_array = view.reshape(frames, rows, columns, samples)
    else:
        frames_array = view.reshape(frames, samples, rows, columns).transpose(0, 2, 3, 1)
    black = [0, 128, 128] if photometric == "YBR_FULL" else None
    for frame in frames_array:
        fill = black if black is not None else (frame.min() if samples == 1 else 0)
        for rect in masks:
            frame[rect["y"]:rect["y"] + rect["height"], rect["x"]:rect["x"] + rect["width"]] = fill


def profile_info():
    """The pinned table's edition, source and options, for the page (see
    :meth:`dcmstudio.deid_profile.Profile.describe`)."""
    return deid_profile.load().describe()


def preview(data, name, options):
    """What de-identifying one file would do, without keeping any output.

    Returns
    -------
    dict
        The report of :meth:`Deidentifier.deidentify` (with a throwaway key, so its UIDs and
        pseudonyms are not those a job with a secret would give).
    """
    options = {**(options or {}), "secret": ""}
    _, report = Deidentifier(options).deidentify(data, name)
    return report

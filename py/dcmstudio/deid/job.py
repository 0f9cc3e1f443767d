"""One de-identification job: the key, the patients and UIDs met, each file planned, edited, scanned."""

import base64
import dataclasses
import hashlib
import hmac
import os

from dcmstudio import edit
from dcmstudio.catalog import as_invalid_dicom
from dcmstudio.deid import actions, mapping, pixels, preamble, profile as deid_profile, residual
from dcmstudio.deid.identifiers import Identifiers
from dcmstudio.deid.keys import derive_key, session_key
from dcmstudio.deid.layouts import Layout, Layouts, LearnedLayout
from dcmstudio.deid.options import DeidOptions
from dcmstudio.deid.plan import FilePlan
from dcmstudio.deid.tags import PIXEL_DATA
from dcmstudio.elements import walk
from dcmstudio.errors import DicomStudioError

# The learning pass reads this much of a file first (the header of nearly every image), then
# sixteen times more at each try, then all of it.
HEADER_READ = 1 << 16
HEADER_END = 0x7FDFFFFF  # the last tag before (7FE0,0008) Float Pixel Data


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


# Keyed digests of this process, by key and message: the command de-identifies each file with a
# Deidentifier of its own, and the files of a series share their study's UIDs and patient.
_DIGESTS = {}
DIGESTS_KEPT = 4096


class Deidentifier:
    """One de-identification job over many files, with one consistent mapping.

    Parameters
    ----------
    options : dict
        See :class:`dcmstudio.deid.options.DeidOptions`.
    scratch : str, optional
        A folder for temporary files (only pixel cleaning of compressed files needs one);
        a new temporary folder by default.
    session : bool
        Without a secret, use the process's :func:`~dcmstudio.deid.keys.session_key` (the
        page: its preview and its run agree) instead of a key of this job's own.
    key : bytes, optional
        The job's key, derived once elsewhere (the page derives it for every worker of a job
        shared out over several); ``options``' secret then only says whether it is repeatable.

    Examples
    --------
    >>> job = Deidentifier({"secret": "s3cret", "retain_long_modified_dates": True})  # doctest: +SKIP
    >>> pieces, report = job.deidentify(open("in.dcm", "rb").read(), "in.dcm")       # doctest: +SKIP
    """

    def __init__(self, options=None, scratch=None, *, session=False, key=None):
        self.options = DeidOptions(options)
        self.profile = deid_profile.load()
        self.rules = {}  # tag → (rule, action, decided_by) under these options (see FilePlan)
        if key is not None:
            self._key, self.deterministic = key, bool(self.options.secret)
        else:
            self._key, self.deterministic = derive_key(self.options.secret)
            if session and not self.deterministic:
                self._key = session_key()
        self.scratch = scratch
        # the old → new values of each change, in the report (identifying: the preview's only)
        self.keep_values = False
        self.patients = {}
        self.last_patient = None  # the patient of the file planned or learned last
        self.uid_map = {}
        self.other_ids = {}  # patient IDs met elsewhere than (0010,0020) → their stand-ins
        self.identifiers = Identifiers()
        # Totals only: the reports themselves go to the caller, so memory does not grow with
        # the series.
        self.totals = {"files": 0, "residual_hits": 0, "burned_in_flagged": 0,
                       "pixels_cleaned": 0}
        self.failures = []
        # what de-identifying a file gave, for the next files of its layout (see
        # dcmstudio.deid.layouts); a worker may hand every file's Deidentifier the same one
        self.layouts = Layouts()
        self._unchecked_layout = None  # the last file's, until its output passed the checks
        self.replayed = False  # whether the last file was de-identified by a replay

    # --- keyed values ------------------------------------------------------------------------

    def _digest(self, purpose, text):
        message = purpose.encode("ascii") + b"\x00" + text.encode("utf-8", "surrogatepass")
        found = _DIGESTS.get((self._key, message))
        if found is None:
            if len(_DIGESTS) >= DIGESTS_KEPT:
                _DIGESTS.clear()
            found = _DIGESTS[self._key, message] = hmac.new(self._key, message, hashlib.sha256).digest()
        return found

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
        self.last_patient = patient
        return patient

    def pseudonym_for_id(self, original_id):
        """A keyed stand-in for a patient ID met somewhere other than the top level."""
        known = self.other_ids.get(original_id)
        if known is not None:
            return known  # a series meets it in every file
        code = base64.b32encode(self._digest("patient", f"id:{original_id}\x00")).decode()[:10]
        self.other_ids[original_id] = self.options.pseudonym_prefix + code
        return self.other_ids[original_id]

    # --- one file ------------------------------------------------------------------------------

    def deidentify(self, data, name, *, index=1, learned=False):
        """De-identify one file held in memory.

        Parameters
        ----------
        data : bytes
            The whole input file.
        name : str
            Its name (for messages and, with ``keep_names``, the output name).
        index : int
            Its 1-based position in the job (output names are numbered by it).
        learned : bool
            Its identifying values were learned already (:meth:`learn_file` over every file of
            the job before the first output): they are not read again, and the UIDs it replaces
            are added for its own scan only, so its output does not depend on the files
            de-identified before it.

        Returns
        -------
        pieces : list of bytes-like
            The output file (write them in order).
        report : dict
            ``{"file", "output", "patient", "actions", "elements", "changes", "burned_in",
            "pixels_cleaned", "residual", "notes", "changed"}``: ``elements`` lists
            ``{"path", "tag", "name", "action", "by"}`` for every element acted on (``by`` is
            ``basic``, an option key, ``beyond-table``, ``file-meta``, ``duplicate`` or
            ``in-dummied-sequence``); ``actions`` counts them per
            action; ``changes`` counts the byte-level changes; ``burned_in`` is
            ``{"flag": bool, "reasons": [...]}``; ``residual`` lists the hits of the
            residual scan (see :func:`dcmstudio.deid.residual.scan`: each holds the value it
            found); ``changed`` lists ``{"path", "tag", "op", "old", "new"}`` per change only
            for a preview (``keep_values``). Other original values are not in the report.

        Raises
        ------
        NotDicomError, InvalidDicomError
            The file cannot be read.
        EditError, DicomStudioError
            A change cannot be made (e.g. compressed pixels that cannot be decoded here).
        """
        pieces, _, report = self.deidentify_output(data, name, index=index, learned=learned)
        return pieces, report

    def deidentify_output(self, data, name, *, index=1, learned=False):
        """:meth:`deidentify`, also saying where in ``data`` each output piece was cut from.

        Returns
        -------
        pieces : list of bytes-like
        origins : list of (int or None)
            Per piece, the offset in ``data`` it is a copy of (the pixel data, as a rule), or
            ``None`` for new bytes.
        report : dict
        """
        self.replayed, self._unchecked_layout = False, None
        with as_invalid_dicom(name, "while de-identifying it"):
            preamble.check(data, name)
            # after the first pass, what this file adds (the UIDs it replaces) stays its own
            identifiers = self.identifiers.for_one_file() if learned else self.identifiers
            # a file of a layout met before (the files of a series) replays what that gave
            replayed = self._replayed(data, name, index, identifiers) if learned else None
            if replayed is not None:
                return replayed
            emap = walk(data, name)
            plan = FilePlan(self, emap, name, learn=not learned, identifiers=identifiers)
            if plan.burned_in["flag"] and not plan.masks and self.options.burned_in == "refuse":
                raise DicomStudioError(
                    f"{name} may have text burned into its pixels ({'; '.join(plan.burned_in['reasons'])}) "
                    f"and no Clean Pixel Data mask covers it: it was left out, as chosen. Mask it, "
                    f"or choose to keep such files flagged.", file=name)
            # elements after the pixel data (out of tag order, or trailing padding) are acted on too
            pixel_data = emap.top_level(PIXEL_DATA)
            walk_whole = pixel_data is not None and emap.root.children[-1] is not pixel_data
            pieces, origins, edit_report = edit.edit_output(data, plan.edits,
                                                            context={"name": name, "walk_whole": walk_whole})
            pieces, origins = _zeroed_preamble(pieces, origins)
            notes = list(plan.notes)
            if plan.masks:
                pieces = pixels.clean(pieces, name, plan.masks, notes, self.scratch)
                origins = [None] * len(pieces)
            output = self._output_name(name, plan.patient, index)
            pixel_range = None if plan.masks else residual.pixels_in_output(emap, pieces, edit_report)
            hits = residual.scan(identifiers, pieces, name, output, pixel_range=pixel_range,
                                 plain_charset=plan.plain_charset)
            if learned and not self.keep_values:
                self._unchecked_layout = Layout.of(plan, emap, pieces, edit_report["changes"], pixel_range)
        counts = {}
        for element in plan.elements:
            counts[element["action"]] = counts.get(element["action"], 0) + 1
        fields = {"actions": counts, "elements": plan.elements, "changes": len(edit_report["changes"]),
                  "burned_in": plan.burned_in, "notes": notes}
        changed = [{"path": c["path"], "tag": c["tag"], "op": c["op"], "old": c["old"], "new": c["new"]}
                   for c in edit_report["changes"]
                   if c["op"] not in ("length", "group_length")] if self.keep_values else []
        return pieces, origins, self._report(name, output, plan.patient, fields, hits, bool(plan.masks), changed)

    def replay_head(self, data, name, *, index, known, min_unread):
        """:meth:`deidentify_output` of a file the first pass learned, if a layout met before
        fits it, from its first ``known`` bytes alone (``data`` has the file's size; see
        :meth:`dcmstudio.deid.layouts.Layout.replay`): its header, then at least ``min_unread``
        bytes of pixel data that end it. ``None`` (nothing counted or learned) otherwise."""
        self.replayed, self._unchecked_layout = False, None
        with as_invalid_dicom(name, "while de-identifying it"):
            preamble.check(data, name)
            return self._replayed(data, name, index, self.identifiers.for_one_file(), known, min_unread)

    def _replayed(self, data, name, index, identifiers, known=None, min_unread=0):
        """The output, origins and report of a layout's replay (see :meth:`deidentify_output`),
        or ``None`` when no layout fits."""
        if self.keep_values or self.options.masks_for(name):
            return None
        replayed = self.layouts.replay(self, data, name, identifiers, known, min_unread)
        if replayed is None:
            return None
        pieces, origins, fields, patient = replayed
        self.replayed = True
        output = self._output_name(name, patient, index)
        hits = residual.scan(identifiers, pieces, name, output, pixel_range=fields["pixel_range"],
                             plain_charset=fields["plain_charset"])
        return pieces, origins, self._report(name, output, patient, fields, hits, False, [])

    def _report(self, name, output, patient, fields, hits, pixels_cleaned, changed):
        """One file's report (see :meth:`deidentify`), the job's totals counted."""
        patient.files += 1
        report = {
            "file": name,
            "output": output,
            "patient": patient.pseudonym,
            "actions": dict(fields["actions"]),
            "elements": fields["elements"],
            "changes": fields["changes"],
            "burned_in": fields["burned_in"],
            "pixels_cleaned": pixels_cleaned,
            "residual": hits,
            "notes": list(fields["notes"]),
            "changed": changed,
        }
        self.totals["files"] += 1
        self.totals["residual_hits"] += len(hits)
        self.totals["burned_in_flagged"] += fields["burned_in"]["flag"]
        self.totals["pixels_cleaned"] += pixels_cleaned
        return report

    def output_checked(self, new_errors):
        """The last file's output was re-read and validated (``new_errors``: what it gained):
        without new errors, its layout may be replayed for the files after it."""
        if self._unchecked_layout is not None and not new_errors:
            self.layouts.add(self._unchecked_layout)
        self._unchecked_layout = None

    def deidentify_file(self, in_path, out_path, name=None, *, index=1, learned=False):
        """:meth:`deidentify` from a path to a path; returns the report."""
        name = name or os.path.basename(in_path)
        with open(in_path, "rb") as f:
            data = f.read()
        pieces, report = self.deidentify(data, name, index=index, learned=learned)
        with open(out_path, "wb") as f:
            f.writelines(pieces)
        return report

    def _output_name(self, name, patient, index):
        if self.options.keep_names:
            return name
        return f"{patient.pseudonym}/{index:05d}.dcm"

    # --- identifying values and the residual scan ---------------------------------------------

    def learn_identifiers(self, data, name):
        """Remember one original file's identifying values for later scans, without changing it.

        ``data`` may stop anywhere after the last element before the pixel data.
        """
        with as_invalid_dicom(name, "while reading its identifying values"):
            if self.layouts.learn(self, data):
                return  # read where a file of the same layout held its values
            emap = walk(data, name, stop_after=HEADER_END)
            plan = FilePlan(self, emap, name, collect_only=True)
            layout = LearnedLayout.of(plan, emap)
            if layout is not None:
                self.layouts.add_learned(layout)

    def learn_file(self, path, name):
        """:meth:`learn_identifiers` from a file, reading its header only where it can.

        A file that cannot be read is passed over here: its own step reports it.

        Returns
        -------
        bool
            Whether the file's values were learned.
        """
        try:
            with open(path, "rb") as f:
                head, want = f.read(HEADER_READ), HEADER_READ
                while True:
                    try:
                        self.learn_identifiers(head, name)
                        return True
                    except DicomStudioError:
                        # a longer header, or a deflated file: read on (all of it at last)
                        want = want * 16 if want < HEADER_READ << 8 else -1
                        more = f.read(want - len(head) if want > 0 else -1)
                        if not more:
                            raise
                        head += more
        except (DicomStudioError, OSError):
            return False

    def residual_scan(self, pieces, name, output_name=None, *, pixel_range=None):
        """Where the identifying values learned so far are still found in a file and its name
        (see :func:`dcmstudio.deid.residual.scan`: its parameters and the hits it returns)."""
        return residual.scan(self.identifiers, pieces, name, output_name, pixel_range=pixel_range)

    # --- the mapping ---------------------------------------------------------------------------

    def mapping(self):
        """Original → new identities of this job (see :func:`dcmstudio.deid.mapping.as_dict`)."""
        return mapping.as_dict(self)

    def mapping_csv(self):
        """The mapping as CSV (see :func:`dcmstudio.deid.mapping.as_csv`)."""
        return mapping.as_csv(self)

    def write_mapping(self, folder):
        """Write the mapping's downloads into ``folder`` (see :func:`dcmstudio.deid.mapping.write`)."""
        return mapping.write(self, folder)

    def summary(self):
        """Totals of the job for the page's report."""
        return {
            **self.totals,
            "failed": self.failures,
            "patients": len(self.patients),
            "uids_replaced": len(self.uid_map),
            "deterministic": self.deterministic,
            "profile": self.profile.label,
            "options": sorted(self.options.chosen),
        }



def _zeroed_preamble(pieces, origins):
    """:func:`dcmstudio.deid.preamble.zeroed`, the pieces' origins kept in step."""
    zeroed = preamble.zeroed(pieces)
    if zeroed is pieces:
        return pieces, origins
    # the preamble's bytes became one new piece; the pieces after it lost as many bytes
    out_origins, skipped = [None], 0
    for piece, origin in zip(pieces, origins):
        take = min(len(piece), preamble.PREAMBLE_LENGTH - skipped)
        skipped += take
        if len(piece) > take:
            out_origins.append(None if origin is None else origin + take)
    return zeroed, out_origins


def profile_info():
    """The pinned table's edition, source and options, for the page (see
    :meth:`dcmstudio.deid_profile.Profile.describe`), and ``actions``: every kind of change with
    its code and what it does (see :func:`dcmstudio.deid.actions.legend`)."""
    return {**deid_profile.load().describe(), "actions": actions.legend()}


def preview(data, name, options, key=None):
    """What de-identifying one file would do, without keeping any output.

    The key is the run's: ``key`` where the page derived it for its workers, else the
    secret's, or without one the page session's (see :func:`dcmstudio.deid.keys.session_key`):
    the same pseudonym, UIDs and date offset.

    Returns
    -------
    dict
        The report of :meth:`Deidentifier.deidentify`, with ``changed``: ``{"path", "tag",
        "op", "old", "new"}`` per changed element (identifying: original values).
    """
    job = Deidentifier(options, session=True, key=key)
    job.keep_values = True
    _, report = job.deidentify(data, name)
    return report

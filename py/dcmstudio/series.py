"""A :class:`~dcmstudio.volume.Volume` written as a DICOM series, or as one multi-frame file.

What the seed (write-dicom's writeImageAsDicomSeriesWithDcmjs) got wrong, and this does not:

- Geometry for any direction: slice ``k`` lies at ``origin + k · spacing_k · direction[:, 2]``;
  (0020,0037) *Image Orientation (Patient)* holds the first two direction columns.
- The SOP class follows the modality: CT Image, MR Image, otherwise Secondary Capture (RGB is
  always Secondary Capture); see :mod:`dcmstudio.series_header` for the IODs and the
  multi-frame option.
- Pixel values are stored exactly where 16 bits can hold them, else with the rescale that
  minimises the largest error, which is measured and reported (:mod:`dcmstudio.series_pixels`).
- Any file name pattern with one number (``%04d``, ``%d``, ``{index}``, ``{index:05d}``);
  numbering follows (0020,0013) *Instance Number*, so names never collide.
- UIDs are ``2.25.`` + a random UUID (:func:`dcmstudio.uids.new_uid`); (0008,0005) *Specific
  Character Set* is ``ISO_IR 192`` whenever a text value is not ASCII.

Writing streams, one file per :meth:`SeriesWriter.step`: the header shared by all slices is
encoded once by pydicom, each file gets its few per-slice elements and its slice's pixels, is
written, re-read as a check (size and header bytes; the first and last files are also parsed by
pydicom, pixels included) and added to the ZIP before the next slice is touched; with
``keep_files=False`` the bytes go to the ZIP only. Memory beyond the volume stays at about one
slice.
"""

import io
import os
import re
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import pydicom

from .archive import ZipWriter
from .errors import VolumeError
from .series_header import (PER_SLICE, SOP_CLASS_NAMES, FileStart, Template, build_header,
                            build_multiframe_header, carried_attributes, encode_dataset,
                            pixel_data_header, slice_normal, sop_class_for)
from .series_pixels import choose_encoding, format_ds
from .uids import new_uid

OPTION_KEYS = (
    "pattern", "series_description", "series_number", "modality", "first_instance_number",
    "patient_name", "patient_id", "study_description", "study_instance_uid",
    "series_instance_uid", "multiframe", "exact",
)
DEFAULT_PATTERN = "IM%04d.dcm"
MAX_IS = 2**31 - 1
UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
CS_PATTERN = re.compile(r"^[A-Z0-9 _]{1,16}$")
# One number in a file name: printf (%d, %i, %04d, %5d) or {index} / {index:04d}; %% is a '%'.
PLACEHOLDER = re.compile(
    r"%%|%(?P<printf>0?[0-9]{0,2})[di]|\{index(?::(?P<brace>0?[0-9]{0,2})d)?\}")

# The ZIP's end of central directory record: its signature and size without a comment.
END_RECORD = b"PK\x05\x06"
END_RECORD_SIZE = 22
# Default for SeriesWriter's zip_to: the series' ZIP beside its folder.
BESIDE = "beside"


# ---- options -----------------------------------------------------------------------------------

def _text(options, key, default, max_length, name):
    value = options.get(key)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise VolumeError(f"The option {key} must be text, not {type(value).__name__}.", file=name)
    value = value.strip()
    if "\\" in value or any(ord(c) < 32 for c in value):
        raise VolumeError(f"The option {key} may not hold a backslash or control characters.",
                          file=name)
    groups = value.split("=") if key == "patient_name" else [value]
    if any(len(group) > max_length for group in groups):
        raise VolumeError(f"The option {key} is longer than DICOM allows ({max_length}"
                          " characters).", file=name)
    return value


def _integer(options, key, default, minimum, maximum, name):
    value = options.get(key)
    if value is None:
        value = default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise VolumeError(f"The option {key} must be a whole number from {minimum} to {maximum},"
                          f" not {value!r}.", file=name)
    return value


def _flag(options, key, name):
    value = options.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise VolumeError(f"The option {key} must be true or false, not {value!r}.", file=name)
    return value


def _uid_choice(options, key, kept, name):
    """``(uid or None, how)``: "" keeps the source's UID where there is one, else new."""
    value = options.get(key) or ""
    if not isinstance(value, str):
        raise VolumeError(f"The option {key} must be text.", file=name)
    value = value.strip()
    if value.lower() == "keep" or (value == "" and key == "study_instance_uid" and kept):
        if not kept:
            raise VolumeError(f"The option {key} asks to keep the source's UID, but the source is"
                              " not DICOM.", file=name)
        return kept, "kept"
    if value == "" or value.lower() == "new":
        return None, "new"
    if len(value) > 64 or not UID_PATTERN.match(value):
        raise VolumeError(f"The option {key} '{value}' is not a valid UID (digits and dots, at"
                          " most 64 characters, no leading zeros).", file=name)
    return value, "given"


def file_name_formatter(pattern, name=None):
    """Return ``f(number) -> file name`` for a pattern holding exactly one number placeholder.

    Raises
    ------
    VolumeError
        No placeholder or more than one, a stray ``%`` or brace, or a path separator.
    """
    template, between, numbers, position = "", [], 0, 0
    for match in PLACEHOLDER.finditer(pattern):
        between.append(pattern[position:match.start()])
        template += _escape_braces(between[-1])
        position = match.end()
        if match.group() == "%%":
            template += "%"
            continue
        numbers += 1
        spec = match.group("printf") if match.group("printf") is not None else match.group("brace")
        template += "{:" + (spec or "") + "d}"
    between.append(pattern[position:])
    template += _escape_braces(between[-1])
    if numbers != 1:
        raise VolumeError(
            f"The file name pattern '{pattern}' must hold exactly one number (%04d, %d or"
            f" {{index}}), not {numbers}: names must differ and follow the Instance Number.",
            file=name)
    if any("%" in text or "{" in text or "}" in text for text in between):
        raise VolumeError(f"The file name pattern '{pattern}' has a '%' or brace that is not a"
                          " number placeholder (write %% for a percent sign).", file=name)
    if any(c in pattern for c in "/\\\0") or pattern.strip() in (".", ".."):
        raise VolumeError(f"The file name pattern '{pattern}' may not hold a folder separator.",
                          file=name)
    return template.format


def _escape_braces(text):
    return text.replace("{", "{{").replace("}", "}}")


def _options(volume, options):
    """Validate the page's options and fill in the defaults; return a plain dict."""
    options = dict(options or {})
    name = volume.source_name or None
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise VolumeError(f"Unknown option(s): {', '.join(unknown)}.", file=name)
    kept = volume.dicom
    modality = _text(options, "modality", kept.get("Modality", "OT"), 16, name).upper()
    if not CS_PATTERN.match(modality):
        raise VolumeError(f"The modality '{modality}' is not a DICOM code (capital letters and"
                          " digits, at most 16).", file=name)
    source_series = kept.get("SeriesNumber")
    result = {
        "pattern": _text(options, "pattern", DEFAULT_PATTERN, 255, name) or DEFAULT_PATTERN,
        "series_description": _text(options, "series_description",
                                    kept.get("SeriesDescription",
                                             f"From {volume.source_name}"[:64]), 64, name),
        "series_number": _integer(options, "series_number",
                                  source_series + 1000 if source_series is not None
                                  and source_series + 1000 <= MAX_IS else 1, 0, MAX_IS, name),
        "modality": modality,
        "first_instance_number": _integer(options, "first_instance_number", 1, 0,
                                          MAX_IS - volume.shape[2] + 1, name),
        "patient_name": _text(options, "patient_name", kept.get("PatientName", ""), 64, name),
        "patient_id": _text(options, "patient_id", kept.get("PatientID", ""), 64, name),
        "study_description": _text(options, "study_description",
                                   kept.get("StudyDescription", ""), 64, name),
        "multiframe": _flag(options, "multiframe", name),
        "exact": _flag(options, "exact", name),
    }
    result["study_instance_uid"], result["study_uid_source"] = _uid_choice(
        options, "study_instance_uid", kept.get("StudyInstanceUID"), name)
    result["series_instance_uid"], result["series_uid_source"] = _uid_choice(
        options, "series_instance_uid", kept.get("SeriesInstanceUID"), name)
    return result


# ---- the plan ----------------------------------------------------------------------------------

@dataclass
class SeriesPlan:
    """Everything decided before a byte is written: options, SOP class, pixels, file names."""

    volume: object
    options: dict
    sop_class: str
    encoding: object
    names: list
    numbers: list
    character_set: str
    carried: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def multiframe(self):
        return self.options["multiframe"]

    def summary(self):
        volume, encoding, options = self.volume, self.encoding, self.options
        row, column = volume.direction[:, 0], volume.direction[:, 1]
        positions = [volume.slice_position(k) for k in (0, volume.shape[2] - 1)]
        pixel_bytes = int(np.prod(volume.shape)) * encoding.samples * encoding.stored_dtype.itemsize
        return {
            "sop_class_uid": str(self.sop_class),
            "sop_class_name": SOP_CLASS_NAMES[self.sop_class],
            "modality": options["modality"],
            "multiframe": self.multiframe,
            "file_count": len(self.names),
            "file_names": list(self.names),
            "instance_numbers": [self.numbers[0], self.numbers[-1]],
            "rows": volume.shape[1],
            "columns": volume.shape[0],
            "slices": volume.shape[2],
            "samples_per_pixel": encoding.samples,
            "photometric_interpretation": "RGB" if encoding.samples == 3 else "MONOCHROME2",
            "bits_allocated": encoding.bits,
            "pixel_representation": int(encoding.signed),
            "rescale_slope": encoding.slope,
            "rescale_intercept": encoding.intercept,
            "exact": encoding.exact,
            "max_abs_error": encoding.max_abs_error,
            "value_range": None if encoding.value_range is None else
            [float(v) for v in encoding.value_range],
            "pixel_spacing": [volume.spacing[1], volume.spacing[0]],
            "slice_spacing": volume.spacing[2],
            "image_orientation": [float(v) for v in np.concatenate([row, column])],
            "first_position": [float(v) for v in positions[0]],
            "last_position": [float(v) for v in positions[1]],
            "right_handed": volume.right_handed,
            "max_position_error": volume.max_position_error,
            "specific_character_set": self.character_set,
            "study_instance_uid": options["study_instance_uid"],
            "study_uid_source": options["study_uid_source"],
            "series_instance_uid": options["series_instance_uid"],
            "series_uid_source": options["series_uid_source"],
            "options": {k: options[k] for k in OPTION_KEYS},
            "estimated_bytes": pixel_bytes + 2048 * len(self.names),
            "carried_attributes": sorted(self.carried),
            "notes": list(volume.notes) + list(self.notes),
        }


def _character_set(volume, options):
    """ISO_IR 192 (UTF-8) when any text written is not ASCII, else "" (the default)."""
    texts = [options[k] for k in ("patient_name", "patient_id", "study_description",
                                  "series_description")]
    texts += [str(v) for v in volume.dicom.values()]
    return "ISO_IR 192" if any(not t.isascii() for t in texts) else ""


def make_plan(volume, options):
    """Validate ``options`` against ``volume`` and decide everything; return a SeriesPlan."""
    options = _options(volume, options)
    multiframe = options["multiframe"]
    sixteen_bit = not multiframe and volume.components == 1 and options["modality"] in ("CT", "MR")
    encoding = choose_encoding(volume, sixteen_bit, options["exact"], unsigned=multiframe)
    if multiframe and encoding.bits == 8 and not encoding.identity:
        # Multi-frame Grayscale Byte SC allows no rescale: scaled bytes go to the Word class.
        encoding = choose_encoding(volume, True, options["exact"], unsigned=True)
    sop_class = sop_class_for(options["modality"], encoding.samples, encoding.bits, multiframe)
    formatter = file_name_formatter(options["pattern"], volume.source_name)
    first = options["first_instance_number"]
    numbers = list(range(first, first + (1 if multiframe else volume.shape[2])))
    names = [formatter(n) for n in numbers]
    carried, notes = carried_attributes(volume, sop_class, encoding)
    return SeriesPlan(volume, options, sop_class, encoding, names, numbers,
                      _character_set(volume, options), carried, notes)


def plan_series(volume, options=None):
    """Check the options against the volume and say what :func:`write_series` will write.

    Parameters
    ----------
    volume : Volume
    options : dict, optional
        Keys (all optional): ``pattern`` (default ``"IM%04d.dcm"``), ``series_description``
        (default the DICOM source's, else "From <file name>"), ``series_number`` (default the
        DICOM source's + 1000, else 1), ``modality`` (default the DICOM source's, else "OT"),
        ``first_instance_number`` (default 1), ``patient_name``, ``patient_id``,
        ``study_description`` (defaults: the DICOM source's, else empty),
        ``study_instance_uid`` and ``series_instance_uid`` (``""`` = default: the study UID is
        kept from a DICOM source, every other UID is new; ``"keep"``, ``"new"`` or a UID),
        ``multiframe`` (bool), ``exact`` (bool: refuse rather than quantise).

    Returns
    -------
    dict
        JSON-plain: ``sop_class_uid``, ``sop_class_name``, ``modality``, ``multiframe``,
        ``file_count``, ``file_names``, ``instance_numbers`` [first, last], ``rows``,
        ``columns``, ``slices``, ``samples_per_pixel``, ``photometric_interpretation``,
        ``bits_allocated``, ``pixel_representation``, ``rescale_slope`` and
        ``rescale_intercept`` (DS strings), ``exact``, ``max_abs_error`` (0.0 when exact),
        ``value_range``, ``pixel_spacing``, ``slice_spacing``, ``image_orientation``,
        ``first_position``, ``last_position``, ``right_handed``, ``max_position_error`` (mm
        the voxels moved when a nearly orthonormal direction was made orthonormal; 0.0 when
        none), ``carried_attributes`` (keywords carried from a DICOM source's acquisition),
        ``specific_character_set``,
        ``study_instance_uid`` / ``series_instance_uid`` (None: new, made when writing) with
        ``study_uid_source`` / ``series_uid_source`` ("kept", "new", "given"), ``options``
        (as filled in), ``estimated_bytes``, ``notes``.

    Raises
    ------
    VolumeError
        An option is invalid, the values cannot be stored (NaN, or not exactly when ``exact``).
    """
    return make_plan(volume, options).summary()


# ---- writing -----------------------------------------------------------------------------------

def _new_uids(plan):
    options, kept = plan.options, plan.volume.dicom
    # The frame of reference stays with a kept study: the geometry is the source's own.
    frame_of_reference = kept.get("FrameOfReferenceUID") \
        if options["study_uid_source"] == "kept" else None
    return {
        "study": options["study_instance_uid"] or new_uid(),
        "series": options["series_instance_uid"] or new_uid(),
        "frame_of_reference": frame_of_reference or new_uid(),
        "sop": [new_uid() for _ in plan.names],
    }


def _check_written(f, head, expected_size):
    """Re-read a file just written through ``f`` (opened "w+b" or "r+b"): its size, and its
    header bytes as they were meant to be. (One open per file: in Pyodide a system call costs.)"""
    name = os.path.basename(f.name)
    f.flush()
    size = os.fstat(f.fileno()).st_size
    if size != expected_size:
        raise VolumeError(f"The written file has {size} bytes instead of {expected_size}.",
                          file=name)
    f.seek(0)
    if f.read(len(head)) != head:
        raise VolumeError("The written file reads back different from what was written.",
                          file=name)


def _check_parsed(source, name, sop_instance, frame):
    """Parse a written file (a path or bytes in a file-like) with pydicom: its SOP Instance UID
    and its first frame's pixels."""
    try:
        ds = pydicom.dcmread(source)
        pixels = ds.pixel_array
    except Exception as exc:  # any failure to parse our own output is our bug: say so plainly
        raise VolumeError(f"The written file does not parse as DICOM: {exc}.", file=name) from exc
    if ds.SOPInstanceUID != sop_instance or ds.file_meta.MediaStorageSOPInstanceUID != sop_instance:
        raise VolumeError("The written file reads back with another SOP Instance UID.", file=name)
    first = pixels[0] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else pixels
    if not np.array_equal(first, frame):
        raise VolumeError("The written file's pixels read back different.", file=name)


def _trim_after_end_record(path):
    """Cut a ZIP file just after its end of central directory record (drop a size reserve).

    The record is the last occurrence of its signature: only the reserve's zeros follow it.
    """
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        step, end = 1 << 20, size
        while end > 0:
            start = max(0, end - step - END_RECORD_SIZE)
            f.seek(start)
            found = f.read(end - start).rfind(END_RECORD)
            if found >= 0:
                f.truncate(start + found + END_RECORD_SIZE)
                return
            end = start + END_RECORD_SIZE if start else 0
    raise VolumeError("The ZIP written has no end record.", file=os.path.basename(path))


class SeriesWriter:
    """Write a planned series one file (or, for one multi-frame file, one frame) per step.

    The page's worker drives it between messages, so it can report progress and cancel; the
    plan (and so every check on the options and values) is made at construction, before
    anything is written.

    Parameters
    ----------
    volume : Volume
    options : dict
        As for :func:`plan_series`.
    out_dir : str
        Folder for the files (created if needed); none of the files may exist yet.
    zip_to : str, file-like, ZipWriter or None
        Where the series is zipped, its files under a folder named like ``out_dir``: by default
        ``out_dir + ".zip"`` for a series and no ZIP for one multi-frame file; a path; a
        writable stream (e.g. :class:`dcmstudio.archive.ChunkSink`); an open
        :class:`~dcmstudio.archive.ZipWriter`, which the caller closes; or None for no ZIP.
    keep_files : bool
        False: only the ZIP is written. A slice's bytes go straight into it, checked in memory
        (the first and last parsed by pydicom); one multi-frame file is written, checked, zipped
        and deleted. MEMFS then never holds the files besides the ZIP.

    Raises
    ------
    VolumeError
        Invalid options or values, or an output that exists already (nothing is written).

    Examples
    --------
    >>> writer = SeriesWriter(volume, {"modality": "CT"}, "/out/ct")      # doctest: +SKIP
    >>> while not writer.done:                                            # doctest: +SKIP
    ...     writer.step()
    >>> result = writer.finish()                                          # doctest: +SKIP
    """

    def __init__(self, volume, options, out_dir, zip_to=BESIDE, keep_files=True):
        self.started = time.perf_counter()
        self.plan = plan = make_plan(volume, options)
        self.uids = _new_uids(plan)
        self.out_dir = os.path.normpath(os.fspath(out_dir))
        if isinstance(zip_to, str) and zip_to == BESIDE:
            zip_to = None if plan.multiframe else self.out_dir + ".zip"
        if not keep_files and zip_to is None:
            raise VolumeError("keep_files=False needs a ZIP to write the series into.")
        self.zip_path = zip_to if isinstance(zip_to, (str, os.PathLike)) else None
        self.keep_files = keep_files
        self.paths = [os.path.join(self.out_dir, n) for n in plan.names]
        # One listing rather than a stat per file: in Pyodide each system call costs.
        present = set(os.listdir(self.out_dir)) if os.path.isdir(self.out_dir) else set()
        existing = [p for p in self.paths if os.path.basename(p) in present]
        existing += [self.zip_path] if self.zip_path and os.path.exists(self.zip_path) else []
        if existing:
            raise VolumeError(f"{os.path.basename(existing[0])} exists already; choose another"
                              " folder.",
                              file=os.path.basename(existing[0]))
        self.total = volume.shape[2]
        self.count = 0
        self.written = []
        self.bytes_written = 0
        self._made_dir = not os.path.isdir(self.out_dir)
        # A ZipWriter given is the caller's to close; one made here from a path or stream is ours.
        self._zip = zip_to if isinstance(zip_to, ZipWriter) else None
        self._owns_zip = self._zip is None and zip_to is not None
        self._multiframe_file = None
        with self._guard():
            if keep_files or plan.multiframe:
                os.makedirs(self.out_dir, exist_ok=True)
            folder = os.path.basename(self.out_dir)
            self._members = [f"{folder}/{n}" for n in plan.names]
            if plan.multiframe:
                self._start_multiframe()
            else:
                self._start_slices()
            if self._owns_zip:
                self._zip = ZipWriter(zip_to)
                if self.zip_path and not plan.multiframe:
                    self._reserve_zip([len(head) + self._length for head in self._heads])

    @property
    def done(self):
        return self.count == self.total

    # -- one file per slice

    def _start_slices(self):
        plan, volume, encoding = self.plan, self.plan.volume, self.plan.encoding
        body = Template(build_header(plan, self.uids), PER_SLICE, plan.character_set)
        file_start = FileStart(plan.sop_class)
        normal = slice_normal(volume)
        pixel_bytes = volume.shape[0] * volume.shape[1] * encoding.samples \
            * encoding.stored_dtype.itemsize
        self._length = pixel_bytes + (pixel_bytes & 1)
        # Headers first (small), so that every file's size, hence the ZIP's, is known at once.
        self._heads = []
        for k, (number, sop) in enumerate(zip(plan.numbers, self.uids["sop"])):
            position = volume.slice_position(k)
            self._heads.append(file_start.encode(sop) + body.encode({
                "SOPInstanceUID": sop,
                "InstanceNumber": str(number),
                "ImagePositionPatient": [format_ds(v) for v in position],
                "SliceLocation": format_ds(position @ normal),
            }) + pixel_data_header(encoding.bits, self._length))

    def _reserve_zip(self, sizes):
        """Give the ZIP file its final size at once, for stored members of these sizes.

        Pyodide's MEMFS grows a file by 12.5 % at a time, copying all of it each time: a 150 MB
        ZIP written 0.5 MB at a time costs seconds. A stored member takes a local header (30
        bytes + name) and a central directory entry (46 + name); the end record 22 bytes.
        """
        total = END_RECORD_SIZE + sum(76 + 2 * len(m.encode()) + size
                                      for m, size in zip(self._members, sizes))
        if total < 0xFFFFFFFF:  # past 4 GiB, ZIP64 records change the sizes: let it grow
            os.truncate(self.zip_path, total)

    def _write_slice(self, k):
        path = self.paths[k]
        pixels = self.plan.encoding.stored_slice(self.plan.volume, k)
        head = self._heads[k]
        # One buffer for the file and its ZIP member: one write each, no read-back of pixels.
        data = b"".join((head, pixels.data if pixels.flags.c_contiguous else pixels.tobytes(),
                         b"\0" * (self._length - pixels.nbytes)))
        if self.keep_files:
            self.written.append(path)
            with open(path, "w+b") as f:
                f.write(data)
                _check_written(f, head, len(data))
            self.bytes_written += len(data)
        if k in (0, self.total - 1):
            _check_parsed(path if self.keep_files else io.BytesIO(data), os.path.basename(path),
                          self.uids["sop"][k], pixels)
        if self._zip is not None:
            self._zip.add_bytes(data, self._members[k])

    # -- one multi-frame file

    def _start_multiframe(self):
        plan, volume, encoding = self.plan, self.plan.volume, self.plan.encoding
        header = build_multiframe_header(plan, self.uids)
        frame_bytes = volume.shape[0] * volume.shape[1] * encoding.samples \
            * encoding.stored_dtype.itemsize
        self._pixel_bytes = self.total * frame_bytes
        self._length = self._pixel_bytes + (self._pixel_bytes & 1)
        self._head = (FileStart(plan.sop_class).encode(self.uids["sop"][0])
                      + encode_dataset(header, plan.character_set)
                      + pixel_data_header(encoding.bits, self._length))
        path = self.paths[0]
        self.written.append(path)
        self._multiframe_file = open(path, "w+b")
        self._multiframe_file.write(self._head)

    def _write_frame(self, k):
        pixels = self.plan.encoding.stored_slice(self.plan.volume, k)
        self._multiframe_file.write(pixels.data if pixels.flags.c_contiguous
                                    else pixels.tobytes())
        if k == self.total - 1:
            # An odd count of pixel bytes gets the pad byte that _length already counts.
            self._multiframe_file.write(b"\0" * (self._length - self._pixel_bytes))
            _check_written(self._multiframe_file, self._head, len(self._head) + self._length)
            self._multiframe_file.close()
            self._multiframe_file = None
            self.bytes_written = len(self._head) + self._length
            path = self.paths[0]
            _check_parsed(path, os.path.basename(path), self.uids["sop"][0],
                          self.plan.encoding.stored_slice(self.plan.volume, 0))
            if self._zip is not None:
                self._zip.add_file(path, self._members[0])
                if not self.keep_files:
                    os.remove(path)

    # -- driving

    def step(self):
        """Write the next file (or frame); return how many are done out of :attr:`total`."""
        if self.done:
            return self.count
        with self._guard():
            if self.plan.multiframe:
                self._write_frame(self.count)
            else:
                self._write_slice(self.count)
        self.count += 1
        return self.count

    def finish(self):
        """Close the ZIP (writing what is left first); return the result dict."""
        while not self.done:
            self.step()
        with self._guard():
            if self._owns_zip and self._zip is not None:
                self._zip.close()
                self._zip = None
                if self.zip_path and not _ends_with_end_record(self.zip_path):
                    _trim_after_end_record(self.zip_path)
        kept = list(self.written) if self.keep_files else []
        if not kept and self._made_dir and os.path.isdir(self.out_dir) \
                and not os.listdir(self.out_dir):
            os.rmdir(self.out_dir)
        result = self.plan.summary()
        result.update({
            "study_instance_uid": self.uids["study"],
            "series_instance_uid": self.uids["series"],
            "frame_of_reference_uid": self.uids["frame_of_reference"],
            "cancelled": False,
            "paths": kept,
            "zip_path": self.zip_path,
            "bytes_written": self.bytes_written if self.keep_files else 0,
            "seconds": time.perf_counter() - self.started,
        })
        return result

    def cancel(self):
        """Stop and remove everything written so far."""
        if self._multiframe_file is not None:
            self._multiframe_file.close()
            self._multiframe_file = None
        if self._owns_zip and self._zip is not None:
            self._zip.close()
            self._zip = None
        for path in self.written + ([self.zip_path] if self.zip_path else []):
            if os.path.exists(path):
                os.remove(path)
        if self._made_dir and os.path.isdir(self.out_dir) and not os.listdir(self.out_dir):
            shutil.rmtree(self.out_dir)

    def _guard(self):
        return _CleanUpOnError(self)


class _CleanUpOnError:
    """Remove a writer's outputs when a step fails; say what failed in a VolumeError."""

    def __init__(self, writer):
        self.writer = writer

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if exc is None:
            return False
        self.writer.cancel()
        name = self.writer.plan.volume.source_name
        if isinstance(exc, MemoryError):
            raise VolumeError("Out of memory while writing the series.", file=name) from None
        if isinstance(exc, OSError):
            # The folder by its own name: where it lives (in the page, a scratch folder in
            # the worker) means nothing to the user.
            folder = os.path.basename(self.writer.out_dir)
            reason = exc.strerror or type(exc).__name__
            raise VolumeError(f"Writing the series into '{folder}' failed: {reason}.",
                              file=name) from exc
        return False


def _ends_with_end_record(path):
    with open(path, "rb") as f:
        f.seek(-END_RECORD_SIZE, os.SEEK_END)
        return f.read(4) == END_RECORD


def write_series(volume, options, out_dir, progress=None, should_cancel=None, *, zip_to=BESIDE,
                 keep_files=True):
    """Write the volume as DICOM files in ``out_dir`` (and, for a series, a ZIP beside it).

    Parameters
    ----------
    volume, options, out_dir, zip_to, keep_files
        As for :class:`SeriesWriter`.
    progress : callable, optional
        ``progress(done, total)`` after each file (series) or frame (multi-frame).
    should_cancel : callable, optional
        Asked before each file or frame; when it returns True, everything written is removed.

    Returns
    -------
    dict
        :func:`plan_series`'s summary, with the UIDs actually used (``study_instance_uid``,
        ``series_instance_uid``, ``frame_of_reference_uid``), and ``cancelled`` (bool),
        ``paths`` (the files written and kept), ``zip_path`` (None without a ZIP file),
        ``bytes_written`` (of the files kept), ``seconds``.

    Raises
    ------
    VolumeError
        Invalid options or values (nothing is written), or a failed write or check (everything
        written is removed).
    """
    writer = SeriesWriter(volume, options, out_dir, zip_to=zip_to, keep_files=keep_files)
    while not writer.done:
        if should_cancel is not None and should_cancel():
            writer.cancel()
            result = writer.plan.summary()
            result.update({"cancelled": True, "paths": [], "zip_path": None,
                           "bytes_written": 0, "seconds": time.perf_counter() - writer.started})
            return result
        writer.step()
        if progress is not None:
            progress(writer.count, writer.total)
    return writer.finish()

"""What a dropped file is: DICOM or not, and where it belongs (patient → study → series → instance).

``describe_file`` reads only the header of one file, so the page can group hundreds of files on load.
``read_dicom`` is the one place that decides whether bytes are DICOM and turns pydicom's many
failure modes into ``NotDicomError`` / ``InvalidDicomError``; the inspector reads through it too.
"""

import contextlib
import errno
import math
import os
import struct
import warnings

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.filewriter import write_data_element
from pydicom.tag import Tag
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from dcmstudio.bounded import BoundedFile, InflatingReader, inflation_cap, measure_inflated
from dcmstudio.readahead import HeadFile
from dcmstudio.errors import (DicomStudioError, InvalidDicomError, NotDicomError, UnreadableFileError,
                              unreadable_message)

PREAMBLE_LENGTH = 128
# (7FE0,0008) Float, (7FE0,0009) Double Float and (7FE0,0010) Pixel Data: where a header ends.
_PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_NATIVE_SYNTAXES = frozenset({pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRLittleEndian,
                              pydicom.uid.ExplicitVRBigEndian, pydicom.uid.DeflatedExplicitVRLittleEndian})
# Bytes looked at for the transfer syntax before a file is parsed (a meta group is rarely longer).
_HEAD_PEEK = 4096
UNDEFINED_LENGTH = 0xFFFFFFFF
# Explicit VR codes as they appear in the file (the enum also holds ambiguous pairs like "US or SS").
_EXPLICIT_VR_CODES = frozenset(vr.value.encode("ascii") for vr in VR if len(vr.value) == 2)
# A preamble-less data set may start with the file meta group (always little endian) or with the
# first group of an Information Object Definition, (0008,xxxx), in either byte order.
_PLAUSIBLE_FIRST_GROUPS = {"<": (0x0002, 0x0008), ">": (0x0008,)}

# Only what grouping needs: the reader skips every other value without reading it.
_CATALOG_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID",
    "PatientName", "PatientID", "PatientBirthDate",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber",
    "SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription",
    "InstanceNumber", "NumberOfFrames", "Rows", "Columns",
    "ImagePositionPatient", "ImageOrientationPatient",  # the viewer orders a series by position
)
_CATALOG_TAGS = [Tag(keyword) for keyword in _CATALOG_KEYWORDS]

# What a file that is not DICOM is, by its first bytes (whatever its name says), and where the page takes it.
_CREATE = "use Create to make DICOM of it"
_VOLUME = "open it in Volume → DICOM"
_KNOWN_FORMATS = (
    (lambda head: head.startswith(b"\xff\xd8\xff"), "a JPEG picture", _CREATE),
    (lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"), "a PNG picture", _CREATE),
    (lambda head: head.startswith(b"%PDF-"), "a PDF document", _CREATE),
    (lambda head: head[:4] in (b"PK\x03\x04", b"PK\x05\x06"), "a ZIP archive", "give it a .zip name to open its files"),
    (lambda head: head.startswith(b"\x1f\x8b"), "gzip-compressed", "a .nii.gz volume opens in Volume → DICOM"),
    (lambda head: head[:4] in (struct.pack("<i", 348), struct.pack(">i", 348)),
     "a NIfTI-1 or Analyze header", _VOLUME),
    (lambda head: head[:4] in (struct.pack("<i", 540), struct.pack(">i", 540)), "a NIfTI-2 volume", _VOLUME),
    (lambda head: head.startswith(b"NRRD"), "an NRRD volume", _VOLUME),
)


def describe_file(path, name, head=None):
    """Describe one file for the patient → study → series → instance tree, reading its header only.

    Parameters
    ----------
    path : str
        Where the file is (MEMFS in the page).
    name : str
        The name the user knows the file by, used in error messages and echoed in the result.
    head : bytes, optional
        The file's first bytes, already fetched (see :mod:`dcmstudio.readahead`).

    Returns
    -------
    dict
        ``{"name", "size", "transfer_syntax": {"uid", "name"}, "sop_class": {"uid", "name"},
        "sop_instance_uid", "patient": {"name", "id", "birth_date"},
        "study": {"uid", "date", "time", "description", "accession"},
        "series": {"uid", "number", "modality", "description"},
        "instance": {"number", "frames", "rows", "columns"}, "has_file_meta"}``.
        Missing text is ``""``, missing numbers ``None``. ``frames`` is (0028,0008) *Number of
        Frames* when present, else 1 for an image (one with *Rows*) and 0 for anything else;
        ``None`` when it is below 1 or more than the file's size could hold.

    Raises
    ------
    NotDicomError
        The file is neither a DICOM file nor a preamble-less DICOM data set.
    InvalidDicomError
        The file is DICOM but its header cannot be parsed.
    """
    if head is not None:
        from dcmstudio import header  # noqa: PLC0415 -- header reads with this module's checks
        fast = header.describe_head(head, os.path.getsize(path), name)
        if fast is not None:
            return fast
    ds = read_dicom(path, name, stop_before_pixels=True, specific_tags=_CATALOG_TAGS, head=head)
    with as_invalid_dicom(name, "while reading its header"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = ds.file_meta
        sop_class = _text(ds, "SOPClassUID", name) or _text(meta, "MediaStorageSOPClassUID", name)
        rows = _number(ds, "Rows", name)
        frames = _number(ds, "NumberOfFrames", name)
        if frames is None:
            frames = 0 if rows is None else 1
        elif not 0 < frames <= _most_frames(ds, rows, _number(ds, "Columns", name), os.path.getsize(path)):
            frames = None  # a count the file cannot hold is not shown; the viewer says why
        return {
            "name": name,
            "size": os.path.getsize(path),
            "transfer_syntax": transfer_syntax_info(ds),
            "sop_class": {"uid": sop_class, "name": UID(sop_class).name if sop_class else ""},
            "sop_instance_uid": (_text(ds, "SOPInstanceUID", name)
                                 or _text(meta, "MediaStorageSOPInstanceUID", name)),
            "patient": {
                "name": _text(ds, "PatientName", name),
                "id": _text(ds, "PatientID", name),
                "birth_date": _text(ds, "PatientBirthDate", name),
            },
            "study": {
                "uid": _text(ds, "StudyInstanceUID", name),
                "date": _text(ds, "StudyDate", name),
                "time": _text(ds, "StudyTime", name),
                "description": _text(ds, "StudyDescription", name),
                "accession": _text(ds, "AccessionNumber", name),
            },
            "series": {
                "uid": _text(ds, "SeriesInstanceUID", name),
                "number": _number(ds, "SeriesNumber", name),
                "modality": _text(ds, "Modality", name),
                "description": _text(ds, "SeriesDescription", name),
            },
            "instance": {
                "number": _number(ds, "InstanceNumber", name),
                "frames": frames,
                "rows": rows,
                "columns": _number(ds, "Columns", name),
                "position": _slice_position(ds, name),
            },
            "has_file_meta": len(meta) > 0,
        }


def _most_frames(ds, rows, columns, size):
    syntax = ds.file_meta.get("TransferSyntaxUID", pydicom.uid.ExplicitVRLittleEndian)
    return most_frames(syntax, rows, columns, size)


def most_frames(syntax, rows, columns, size):
    """The most frames a file of ``size`` bytes in transfer syntax ``syntax`` can hold, from what
    a header alone tells: an encapsulated frame takes an 8-byte item header at least, a native
    one a bit per pixel."""
    if syntax not in _NATIVE_SYNTAXES:
        return size // 8
    if syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
        size = inflation_cap(size)
    return size * 8 // max(1, (rows or 1) * (columns or 1))


_SEQUENCE_DELIMITERS = {True: b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", False: b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"}
_PIXEL_DATA_TAGS = [Tag(0x7FE00008), Tag(0x7FE00009), Tag(0x7FE00010)]


def pixel_data_truncation(path, name, head=None):
    """Say how a DICOM file's pixel data is cut short, or return None when it is whole (or absent).

    ``describe_file`` reads headers only, so a file cut inside its pixel data passes it; this looks
    at where the pixel data element says it ends (an encapsulated one must end with its sequence
    delimiter), reading the element's place from ``head`` when it holds it, else with pydicom.

    Parameters
    ----------
    path : str
        A file ``describe_file`` accepted.
    name : str
        The user's name for it, for the sentence.
    head : bytes, optional
        The file's first bytes, already fetched.

    Returns
    -------
    str or None
        E.g. "it ends 1000 bytes before the end of the value of (7FE0,0010) PixelData".
    """
    from dcmstudio import header  # noqa: PLC0415 -- header reads with this module's checks
    size = os.path.getsize(path)
    try:
        if head is None:
            raise ValueError("no head")
        element = header.pixel_data_element(head, size)
    except ValueError:
        with BoundedFile(path) as fp:
            if _may_be_deflated(fp):
                return None  # telling would mean inflating it all (a deflate bomb would, too)
        problems = []
        ds = read_dicom(path, name, defer_size=1024,
                        problems=problems, allow_truncated=True, head=head)
        cut = [p for p in problems if p.startswith("The file is truncated: ")]
        if cut:
            return cut[0][len("The file is truncated: "):].rstrip(".")
        raw = next((ds.get_item(tag, keep_deferred=True) for tag in _PIXEL_DATA_TAGS if tag in ds), None)
        element = None if raw is None else (raw.value_tell, raw.length, ds.original_encoding[1])
    if element is None:
        return None
    value_offset, length, little = element
    if length != UNDEFINED_LENGTH:
        if value_offset + length > size:
            return (f"it ends {value_offset + length - size} bytes before the end of the value of "
                    "(7FE0,0010) PixelData")
        return None
    return _fragments_truncation(path, value_offset, size, little)


def header_end(head, size):
    """How many of a file's first bytes hold everything before its pixel data's value: the
    elements before it and the pixel data element's own header.

    That is all deid's first pass needs to learn a file's values, so the page keeps those bytes
    from opening the file instead of reading them again for the first pass.

    Parameters
    ----------
    head : bytes or None
        The file's first bytes, already fetched.
    size : int
        The file's size.

    Returns
    -------
    int or None
        The pixel data's value offset; None when ``head`` does not reach it, the file has none,
        or it cannot be told from the head (a deflated data set, an odd start).
    """
    from dcmstudio import header  # noqa: PLC0415 -- see pixel_data_truncation
    if head is None:
        return None
    try:
        element = header.pixel_data_element(head, size)
    except ValueError:
        return None
    if element is None or element[0] > len(head):
        return None
    return element[0]


# Encapsulated pixel data longer than this is not read in full to tell whether it is whole.
_FRAGMENTS_READ_LIMIT = 8 << 20


def _fragments_truncation(path, value_offset, size, little):
    """How encapsulated pixel data starting at ``value_offset`` is cut short, or None.

    Elements may follow the pixel data (trailing padding, signatures), so its sequence delimiter
    is looked for near the end first (one read); failing that, its items are walked.
    """
    delimiter = _SEQUENCE_DELIMITERS[little]
    with open(path, "rb") as f:
        f.seek(max(value_offset, size - (1 << 16)))
        if delimiter in f.read():
            return None
        if size - value_offset > _FRAGMENTS_READ_LIMIT:
            return None  # not worth reading it all to tell
        f.seek(value_offset)
        data = f.read()
    item = delimiter[:2] + (b"\x00\xe0" if little else b"\xe0\x00")
    pos = 0
    while pos + 8 <= len(data):
        if data[pos:pos + 4] != item:
            return None  # not an item: something this check does not judge
        pos += 8 + int.from_bytes(data[pos + 4:pos + 8], "little" if little else "big")
    if pos > len(data):
        return f"it ends {pos - len(data)} bytes into a fragment of its encapsulated pixel data"
    return "its encapsulated pixel data does not end with a sequence delimiter"


def read_dicom(path, name, *, defer_size=None, stop_before_pixels=False, specific_tags=None,
               problems=None, allow_truncated=False, head=None):
    """Read a DICOM file, or a preamble-less data set that starts like one, with pydicom.

    Parameters
    ----------
    path : str
        The file to read.
    name : str
        The user's name for it, for error messages.
    defer_size : int, optional
        Values longer than this many bytes stay in the file until accessed (see ``dcmread``).
        Ignored for deflated files, whose values live in an inflated copy, not in the file.
    stop_before_pixels, specific_tags
        As for ``pydicom.dcmread``.
    problems : list, optional
        If given, what pydicom warned about while reading (e.g. a missing delimiter at the end of
        a truncated file) is appended to it, one sentence each.
    allow_truncated : bool, optional
        If true, a file that ends before its last element does is read as far as it goes and the
        fact added to ``problems``; by default it raises ``InvalidDicomError``.
    head : bytes, optional
        The file's first bytes, already fetched: reads within them do not touch the file.

    Returns
    -------
    pydicom.dataset.FileDataset

    Raises
    ------
    NotDicomError
        With the reason as a sentence, e.g. "x.txt is not DICOM: no 'DICM' prefix at byte 128
        and no data set at byte 0."
    InvalidDicomError
        When pydicom cannot parse what looks like DICOM, or the file is truncated.
    """
    size = os.path.getsize(path)
    _check_looks_like_dicom(path, name, head, size)
    with as_invalid_dicom(name, "while parsing it"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Bounded reads: a corrupt length costs nothing and is named by _truncation below. A head
        # fetched ahead (describe) serves the first reads; it is used only where nothing is deferred.
        use_head = head is not None and defer_size is None
        with (HeadFile(path, head, size) if use_head else BoundedFile(path)) as fp:
            ds, truncation = _read_deflated(fp, name, stop_before_pixels, specific_tags)
            if ds is None:
                fp.seek(0)
                ds = pydicom.dcmread(fp, defer_size=defer_size, stop_before_pixels=stop_before_pixels,
                                     force=True, specific_tags=specific_tags)
                # pydicom reads a cut file silently as far as it goes
                truncation = _truncation(ds, size, fp.tell())
    if truncation and not allow_truncated:
        raise InvalidDicomError(f"{name} is truncated: {truncation}.", file=name)
    if problems is not None:
        found = [str(w.message) for w in caught]
        if truncation:
            found.append(f"The file is truncated: {truncation}.")
        problems.extend(message for message in dict.fromkeys(found) if message not in problems)
    return ds


def _read_deflated(fp, name, stop_before_pixels, specific_tags):
    """Read a Deflated Explicit VR Little Endian file, inflating only what is read.

    pydicom inflates the whole data set at once, however large it grows; here the inflation
    stops where the reading does (before the pixel data for a header) and at ``inflation_cap``,
    counted over the whole data set where every value is kept.
    No value is deferred: it would be re-read from the compressed file at an inflated offset.

    Returns
    -------
    tuple
        ``(dataset, where it is cut short or None)``; ``(None, None)`` for a file that is not
        deflated.
    """
    if not _may_be_deflated(fp):
        return None, None
    fp.seek(0)
    preamble = read_preamble(fp, True)
    file_meta = _read_file_meta_info(fp)
    if file_meta.get("TransferSyntaxUID") != pydicom.uid.DeflatedExplicitVRLittleEndian:
        return None, None
    dataset_offset = fp.tell()
    cap = inflation_cap(fp.size - dataset_offset)
    if specific_tags is None:
        # Every value read is kept: count the bytes of all of them against the cap before any is
        # read (a bomb of many values, each under the cap, is refused at no cost). A read of a few
        # tags skips the other values, inflating and dropping them, and needs no measuring.
        _measure_once(fp, name, cap)
        fp.seek(dataset_offset)
    stream = InflatingReader(fp, name, cap)
    dataset = read_dataset(stream, False, True, specific_tags=specific_tags,
                           stop_when=_at_pixel_data if stop_before_pixels else None)
    ds = FileDataset(fp.name, dataset, preamble, file_meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    truncation = None
    if stream.cut_at is not None:
        truncation = (f"its inflated data set ends at byte {stream.inflated_size:,}, inside the "
                      f"value that starts at byte {stream.cut_at:,} of it")
    elif stream.stream_cut:
        truncation = "its deflated data set stops before the deflate stream's end"
    return ds, truncation


# The last few files measured, by path, name, size and modification time: a tree, a dump and a render
# of one file measure it once (a bomb's refusal is remembered too).
_MEASURED = {}
_MEASURED_KEPT = 8


def _measure_once(fp, name, cap):
    stat = os.stat(fp.name)
    key = (fp.name, name, stat.st_size, stat.st_mtime_ns, cap)
    if key not in _MEASURED:
        try:
            _MEASURED[key] = measure_inflated(fp, name, cap)
        except InvalidDicomError as exc:
            _MEASURED[key] = str(exc)  # the sentence only: an exception would keep its frames alive
        while len(_MEASURED) > _MEASURED_KEPT:
            del _MEASURED[next(iter(_MEASURED))]
    if isinstance(_MEASURED[key], str):
        raise InvalidDicomError(_MEASURED[key], file=name)
    return _MEASURED[key]


def _may_be_deflated(fp):
    """False when (0002,0010) *Transfer Syntax UID* lies in the file's first bytes and is not the
    deflated one: most files are known so without parsing their meta group twice."""
    head = fp.read(_HEAD_PEEK)
    at = head.find(b"\x02\x00\x10\x00UI", PREAMBLE_LENGTH + 4 if head[128:132] == b"DICM" else 0)
    if at < 0 or at + 8 > len(head):
        return True
    length = int.from_bytes(head[at + 6:at + 8], "little")
    if at + 8 + length > len(head):
        return True
    return head[at + 8:at + 8 + length].rstrip(b"\x00 ") == pydicom.uid.DeflatedExplicitVRLittleEndian.encode()


def _at_pixel_data(tag, vr, length):
    return tag in _PIXEL_DATA_TAGS


def is_deflated(ds):
    """Whether ``ds`` was read from a Deflated Explicit VR Little Endian file."""
    return ds.file_meta.get("TransferSyntaxUID") == pydicom.uid.DeflatedExplicitVRLittleEndian


def transfer_syntax_info(ds):
    """Return ``{"uid", "name"}`` of the transfer syntax ``ds`` was read with.

    Without (0002,0010) *Transfer Syntax UID* the syntax pydicom inferred from the bytes is given,
    its name marked "(inferred: no transfer syntax in file meta)".
    """
    uid = ds.file_meta.get("TransferSyntaxUID")
    if uid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a malformed UID is shown as it is
            uid = UID(str(uid))
        return {"uid": str(uid), "name": uid.name}
    implicit, little_endian = ds.original_encoding
    if implicit:
        uid = pydicom.uid.ImplicitVRLittleEndian
    elif little_endian:
        uid = pydicom.uid.ExplicitVRLittleEndian
    else:
        uid = pydicom.uid.ExplicitVRBigEndian
    return {"uid": str(uid), "name": f"{uid.name} (inferred: no transfer syntax in file meta)"}


@contextlib.contextmanager
def as_invalid_dicom(name, context):
    """Turn any exception that bad input can cause into ``InvalidDicomError`` for file ``name``.

    Parameters
    ----------
    name : str
        The file's name, put in the message.
    context : str
        Where it happened, finishing the sentence "<name> is not valid DICOM (<context>): …",
        e.g. "while reading (0010,0010) PatientName".
    """
    try:
        yield
    except (DicomStudioError, MemoryError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # noqa: BLE001 -- wasm32 raises OverflowError where CPython does not
        if nested_too_deep(exc):
            raise InvalidDicomError(too_deep(name, context), file=name) from exc
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            raise UnreadableFileError(unreadable_message(name), file=name) from exc
        detail = str(exc) or type(exc).__name__
        raise InvalidDicomError(f"{name} is not valid DICOM ({context}): {detail}.", file=name) from exc


def nested_too_deep(exc):
    """Whether ``exc`` comes of pydicom's recursion giving out on deeply nested sequences: a
    RecursionError, or one pydicom raised while handling it (its reader turns any failure to read
    an item's tag into "No tag to read at file position …", which is what Pyodide shows)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, RecursionError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def too_deep(name, context):
    """The sentence for a file whose sequences nest deeper than pydicom's recursion can follow
    (the limit differs between CPython and Pyodide; the sentence does not)."""
    return f"{name} is not valid DICOM ({context}): its sequences are nested deeper than can be read."


def element_label(tag, keyword):
    """Return "(gggg,eeee) Keyword" (or the tag alone) for naming an element in messages."""
    return f"{Tag(tag)} {keyword}".rstrip()


def _check_looks_like_dicom(path, name, head=None, size=None):
    size = os.path.getsize(path) if size is None else size
    if head is None or len(head) < min(size, PREAMBLE_LENGTH + 4):
        with open(path, "rb") as f:
            head = f.read(PREAMBLE_LENGTH + 4)
    head = head[:PREAMBLE_LENGTH + 4]
    if size == 0:
        raise NotDicomError(f"{name} is not DICOM: the file is empty.", file=name)
    if head[PREAMBLE_LENGTH:] == b"DICM":
        return
    if not _starts_with_data_set(head, size):
        for matches, what, where in _KNOWN_FORMATS:
            if matches(head):
                raise NotDicomError(f"{name} is not DICOM: its first bytes say it is {what} ({where}).",
                                    file=name)
        raise NotDicomError(f"{name} is not DICOM: no 'DICM' prefix at byte 128 and no data set "
                            "at byte 0.", file=name)


def _starts_with_data_set(head, size):
    """Whether ``head`` opens with a plausible first element, as dcmdump accepts without preamble."""
    if len(head) < 8:
        return False
    for endian, groups in _PLAUSIBLE_FIRST_GROUPS.items():
        group, _ = struct.unpack(endian + "HH", head[:4])
        if group not in groups:
            continue
        if head[4:6] in _EXPLICIT_VR_CODES:
            return True
        implicit_length = struct.unpack("<L", head[4:8])[0]
        if endian == "<" and (implicit_length <= size - 8 or implicit_length == UNDEFINED_LENGTH):
            return True
    return False


def encoded_value_length(element, is_implicit_vr, is_little_endian):
    """Return the value length pydicom would write for ``element``, in bytes.

    For the elements pydicom converts while reading (group lengths, (0002,0010) *Transfer Syntax
    UID*, (0008,0005) *Specific Character Set*): it keeps no record of their length in the file.
    """
    implicit = is_implicit_vr and element.tag.group != 2  # file meta is explicit little endian
    fp = DicomBytesIO()
    fp.is_little_endian = is_little_endian or element.tag.group == 2
    fp.is_implicit_VR = implicit
    write_data_element(fp, element)
    header = 8 if implicit or element.VR not in EXPLICIT_VR_LENGTH_32 else 12
    return len(fp.getvalue()) - header


def _truncation(ds, size, parsed_to):
    """Say where a file that pydicom read ends too early, or return None if it does not."""
    implicit, little_endian = ds.original_encoding
    last_start = -1
    last_end = PREAMBLE_LENGTH + 4 if ds.preamble is not None else 0
    for dataset in (ds.file_meta, ds):
        for tag in dataset.keys():
            element = dataset.get_item(tag, keep_deferred=True)
            if isinstance(element, RawDataElement):
                start, length = element.value_tell, element.length
            elif element.is_undefined_length:
                start, length = element.file_tell, UNDEFINED_LENGTH
            else:
                start = element.file_tell
                length = encoded_value_length(element, implicit, little_endian)
            end = None if length == UNDEFINED_LENGTH or start is None else start + length
            if end is not None and end > size:
                return (f"the value of {element_label(tag, keyword_for_tag(tag))} at offset {start:,} "
                        f"declares {length:,} bytes, but the file ends {max(0, size - start):,} bytes "
                        f"into it ({end - size:,} bytes missing)")
            if start is not None and start > last_start:
                last_start, last_end = start, end
        if dataset is ds.file_meta:
            meta_end = last_end
    if ds.preamble is not None and len(ds) == 0 and (meta_end is None or size - meta_end < 8):
        return "it ends before its data set begins"
    if parsed_to > size:
        return "it ends inside the value of an element"
    if last_end is not None and 0 < size - last_end < 8:
        return f"its last {size - last_end} bytes are the start of an element cut short"
    return None


def _text(ds, keyword, name):
    with as_invalid_dicom(name, f"while reading {element_label(Tag(keyword), keyword)}"):
        element = ds.get(Tag(keyword))
        if element is None or element.value is None:
            return ""
        value = element.value
        if element.VM > 1:
            return "\\".join(str(v) for v in value)
        return str(value)


def _slice_position(ds, name):
    """Where the slice lies along its normal, in mm (for ordering a series); None without geometry."""
    return slice_position(_text(ds, "ImagePositionPatient", name), _text(ds, "ImageOrientationPatient", name))


def slice_position(position_text, orientation_text):
    """:func:`_slice_position` from the two values as text (``"x\\y\\z"``; ``""`` when absent)."""
    try:
        position = [float(v) for v in position_text.split("\\")]
        orientation = [float(v) for v in orientation_text.split("\\")]
    except (ValueError, OverflowError):
        return None
    if len(position) != 3 or len(orientation) != 6:
        return None
    row, column = orientation[:3], orientation[3:]
    normal = (row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2],
              row[0] * column[1] - row[1] * column[0])
    along = sum(p * n for p, n in zip(position, normal))
    return along if math.isfinite(along) else None


def _number(ds, keyword, name):
    text = _text(ds, keyword, name)
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None

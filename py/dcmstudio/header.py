"""A file's catalog entry from its first bytes alone: the fast path of ``catalog.describe_file``.

Opening a series describes every file; reading each header through ``pydicom.dcmread`` was about
half of what a person waited for. :func:`describe_head` walks the top level of the data set in the
head bytes already fetched, decodes only the values the catalog shows, and returns exactly the dict
``describe_file`` returns -- or ``None`` whenever it cannot vouch for that (deflated, a header
longer than the head, a truncated file, an unusual encoding, a value it would not decode exactly
as pydicom does). ``None`` sends the file down pydicom's path, which then decides, errors
included. The reading rules below mirror pydicom 3.0.2's ``filereader`` step by step (its
``read_partial``, ``_is_implicit_vr``, ``data_element_generator``, ``read_sequence``) and the
value converters of ``pydicom.values``; ``tests/unit/test_header.py`` compares both paths on
pydicom's own files, DCMTK re-encodings and fuzzed variants.
"""

import functools
import re
import struct
import warnings

import pydicom.uid
from pydicom import config
from pydicom import hooks as pydicom_hooks
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import _dictionary_vr_fast, dictionary_VR
from pydicom.dataelem import RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.filereader import ENCODED_VR
from pydicom.hooks import hooks
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32
from pydicom.values import converters, convert_string

from dcmstudio import catalog
from dcmstudio.elements import ITEM, ITEM_DELIMITER, SEQUENCE_DELIMITER, UNDEFINED_LENGTH

PREAMBLE_LENGTH = catalog.PREAMBLE_LENGTH
DATA_START = PREAMBLE_LENGTH + 4  # past "DICM"
# What dcmread(stop_before_pixels=True) stops at: (7FE0,0008/0009/0010) Float/Double Float/Pixel Data
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
MAX_SEQUENCE_DEPTH = 64

_KNOWN_VRS = frozenset(vr for vr in ENCODED_VR if len(vr) == 2)
_LONG_LENGTH_VRS = frozenset(vr.encode("ascii") for vr in EXPLICIT_VR_LENGTH_32)
_IMPLICIT_HEADER = {True: struct.Struct("<HHL"), False: struct.Struct(">HHL")}
_EXPLICIT_HEADER = {True: struct.Struct("<HH2sH"), False: struct.Struct(">HH2sH")}
_U32 = {True: struct.Struct("<L"), False: struct.Struct(">L")}
_U16 = {True: struct.Struct("<H"), False: struct.Struct(">H")}
# The item tag (FFFE,E000) as one 32-bit number read in each byte order (group first)
_ITEM_AS_READ = {True: 0xE000FFFE, False: 0xFFFEE000}
_PLAIN_INTEGER = re.compile(r" *[+-]?[0-9]+ *")

# The elements describe_file asks dcmread for, plus (0008,0005) Specific Character Set, which
# dcmread always adds; with the VR the dictionary gives them.
CATALOG_TAGS = frozenset(int(tag) for tag in catalog._CATALOG_TAGS)
_KEPT_TAGS = CATALOG_TAGS | {0x00080005}
_DICTIONARY_VR = {tag: dictionary_VR(tag) for tag in _KEPT_TAGS}

_INFERRED_SYNTAX = {
    (True, True): pydicom.uid.ImplicitVRLittleEndian,
    (False, True): pydicom.uid.ExplicitVRLittleEndian,
    (False, False): pydicom.uid.ExplicitVRBigEndian,
}


class _NotSure(Exception):
    """The fast path cannot vouch for giving pydicom's answer here."""


def describe_head(head, size, name):
    """Describe a file from its first bytes as ``catalog.describe_file`` would, when sure to.

    Parameters
    ----------
    head : bytes
        The file's first bytes (all of them when the file is that short).
    size : int
        The file's size in bytes.
    name : str
        The user's name for the file, echoed in the result.

    Returns
    -------
    dict or None
        The dict ``describe_file`` returns, equal to it key for key; ``None`` when the file needs
        pydicom's full reader (which may then raise) -- see the module's description.
    """
    if not _default_reading_config():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's validation warnings, as describe_file does
            return _describe(head, size, name)
    except _NotSure:
        return None


def _default_reading_config():
    """Whether pydicom reads with the defaults the rules here mirror (a caller may change them)."""
    return (config.settings.reading_validation_mode == config.WARN
            and config.settings.infer_sq_for_un_vr and config.replace_un_with_known_vr
            and config.assume_implicit_vr_switch and not config.convert_wrong_length_to_UN
            and not config.datetime_conversion and not config.use_IS_numpy
            and not config.use_none_as_empty_text_VR_value and config.data_element_callback is None
            and hooks.raw_element_vr is pydicom_hooks.raw_element_vr
            and hooks.raw_element_value is pydicom_hooks.raw_element_value
            and not hooks.raw_element_kwargs and not pydicom.uid.PrivateTransferSyntaxes)


def _describe(head, size, name):
    n = len(head)
    if n > size:
        return None
    if n >= DATA_START and head[PREAMBLE_LENGTH:DATA_START] == b"DICM":
        start = DATA_START
    elif n >= min(size, DATA_START) and catalog._starts_with_data_set(head[:DATA_START], size):
        start = 0  # pydicom reads a preamble-less data set from its first byte
    else:
        return None  # describe_file says why it is not DICOM
    meta, pos = _read_meta(head, start)
    ts_implicit, little = _declared_encoding(head, meta, pos)
    if pos + 8 > n:
        raise _NotSure
    first_group_le = head[pos] | head[pos + 1] << 8
    if first_group_le in (0x0000, 0xFFFE):  # a command set, or a delimiter where data should be
        raise _NotSure
    # pydicom trusts the first element's VR bytes over the transfer syntax (with a warning)
    implicit = not _looks_explicit(head, pos)
    pixel_data = []
    kept = _walk_data_set(head, pos, size, implicit, little, pixel_data)
    element = (pixel_data[0][1], pixel_data[0][2], little) if pixel_data else None
    _last_walk.update(head=head, size=size, element=element)
    if not kept and size - pos < 16:  # describe_file's truncation check may refuse it as cut short
        raise _NotSure
    encodings = _data_set_encodings(head, kept)

    def text(tag):
        return _value_text(head, kept.get(tag), tag, implicit, little, encodings)

    def number(tag):
        return _number(text(tag))

    def meta_text(tag):
        return _value_text(head, meta.get(tag), tag, False, True, default_encoding)

    sop_class = text(0x00080016) or meta_text(0x00020002)
    rows = number(0x00280010)
    frames = number(0x00280008)
    if frames is None:
        frames = 0 if rows is None else 1
    elif not 0 < frames <= catalog.most_frames(
            meta_text(0x00020010) if 0x00020010 in meta else pydicom.uid.ExplicitVRLittleEndian, rows,
            number(0x00280011), size):
        frames = None  # as describe_file: a count the file cannot hold is not shown
    return {
        "name": name,
        "size": size,
        "transfer_syntax": _transfer_syntax(meta, ts_implicit, little, meta_text),
        "sop_class": {"uid": sop_class, "name": _uid_name(sop_class) if sop_class else ""},
        "sop_instance_uid": text(0x00080018) or meta_text(0x00020003),
        "patient": {
            "name": text(0x00100010),
            "id": text(0x00100020),
            "birth_date": text(0x00100030),
        },
        "study": {
            "uid": text(0x0020000D),
            "date": text(0x00080020),
            "time": text(0x00080030),
            "description": text(0x00081030),
            "accession": text(0x00080050),
        },
        "series": {
            "uid": text(0x0020000E),
            "number": number(0x00200011),
            "modality": text(0x00080060),
            "description": text(0x0008103E),
        },
        "instance": {
            "number": number(0x00200013),
            "frames": frames,
            "rows": rows,
            "columns": number(0x00280011),
            "position": catalog.slice_position(text(0x00200032), text(0x00200037)),
        },
        "has_file_meta": len(meta) > 0,
    }


def _looks_explicit(head, pos):
    """pydicom's test for an explicit VR: two capital letters where the VR would be."""
    return 0x40 < head[pos + 4] < 0x5B and 0x40 < head[pos + 5] < 0x5B


def _read_meta(head, pos):
    """The File Meta Information elements ``{tag: (vr, value offset, length)}`` and where they end.

    As pydicom reads them from ``pos``: explicit VR little endian, up to the first tag outside
    group 2.
    """
    n = len(head)
    meta = {}
    if pos + 8 > n:
        raise _NotSure
    if head[pos] | head[pos + 1] << 8 != 0x0002:
        return meta, pos
    if not _looks_explicit(head, pos):  # pydicom would retry the group as implicit VR
        raise _NotSure
    header = _EXPLICIT_HEADER[True]
    last_tag = -1
    while True:
        if pos + 8 > n:
            raise _NotSure
        group, number, vr, length = header.unpack_from(head, pos)
        if group != 0x0002:
            # pydicom reads the next element's header, long length included, before it stops
            if group == 0xFFFE or (vr in _LONG_LENGTH_VRS and pos + 12 > n):
                raise _NotSure
            break
        if vr not in _KNOWN_VRS:
            raise _NotSure
        value = pos + 8
        if vr in _LONG_LENGTH_VRS:
            if pos + 12 > n:
                raise _NotSure
            length = _U32[True].unpack_from(head, pos + 8)[0]
            value = pos + 12
        tag = 0x00020000 | number
        if length == UNDEFINED_LENGTH or tag <= last_tag or value + length > n:
            raise _NotSure
        meta[tag] = (vr, value, length)
        last_tag = tag
        pos = value + length
    # pydicom converts the first meta element (and the group length) to check the group: take
    # only what always converts
    first_tag = next(iter(meta))
    first_vr, _, first_length = meta[first_tag]
    if first_tag == 0x00020000:
        converts = (first_vr, first_length) == (b"UL", 4)
    else:
        converts = first_vr in (b"OB", b"UI")
    if not converts:
        raise _NotSure
    return meta, pos


def _declared_encoding(head, meta, pos):
    """``(implicit VR, little endian)`` as pydicom's ``read_partial`` derives them before reading."""
    if 0x00020010 not in meta:
        if pos + 8 > len(head):
            raise _NotSure
        group, vr = struct.unpack_from("<H2x2s", head, pos)
        if vr.decode("latin-1") not in converters:
            return True, True
        if group >= 1024:  # pydicom would read it as big endian
            raise _NotSure
        return False, True
    if meta[0x00020010][0] != b"UI":
        raise _NotSure
    syntax = _value_text(head, meta[0x00020010], 0x00020010, False, True, default_encoding)
    if "\\" in syntax:
        raise _NotSure
    if syntax == pydicom.uid.ImplicitVRLittleEndian:
        return True, True
    if syntax == pydicom.uid.ExplicitVRBigEndian:
        return False, False
    if syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
        raise _NotSure
    return False, True  # explicit VR little endian, and every encapsulated syntax


def _transfer_syntax(meta, ts_implicit, little, meta_text):
    """What ``catalog.transfer_syntax_info`` returns."""
    syntax = meta_text(0x00020010) if 0x00020010 in meta else ""
    if syntax:
        return {"uid": syntax, "name": _uid_name(syntax)}
    uid = _INFERRED_SYNTAX[ts_implicit, little]
    return {"uid": str(uid), "name": f"{uid.name} (inferred: no transfer syntax in file meta)"}


def _header(head, pos, implicit, little):
    """``(tag, vr bytes or None, length, value offset)`` of the element at ``pos``."""
    if pos + 8 > len(head):
        raise _NotSure
    if implicit:
        group, number, length = _IMPLICIT_HEADER[little].unpack_from(head, pos)
        return group << 16 | number, None, length, pos + 8
    group, number, vr, length = _EXPLICIT_HEADER[little].unpack_from(head, pos)
    tag = group << 16 | number
    if tag == ITEM_DELIMITER:  # pydicom reads a delimiter as implicit VR: a 32-bit length
        return tag, None, _U32[little].unpack_from(head, pos + 4)[0], pos + 8
    if vr in _LONG_LENGTH_VRS:
        if pos + 12 > len(head):
            raise _NotSure
        return tag, vr, _U32[little].unpack_from(head, pos + 8)[0], pos + 12
    if vr not in _KNOWN_VRS:  # pydicom would guess (implicit VR switch or unknown VR)
        raise _NotSure
    return tag, vr, length, pos + 8


# Where the last head described had its pixel data: describe_file then asks pixel_data_element
# about the same head, which need not be walked twice.
_last_walk = {"head": None, "size": None, "element": None}


def pixel_data_element(head, size):
    """Where the top-level pixel data element is, read from the file's first bytes.

    Returns
    -------
    tuple or None
        ``(value offset, length, little endian)`` (length 0xFFFFFFFF when undefined), or None when
        the data set has none.

    Raises
    ------
    ValueError
        When the head alone cannot say (the caller reads the file with pydicom instead).
    """
    if _last_walk["head"] is head and _last_walk["size"] == size:
        return _last_walk["element"]
    try:
        if len(head) >= DATA_START and head[PREAMBLE_LENGTH:DATA_START] == b"DICM":
            start = DATA_START
        elif catalog._starts_with_data_set(head[:DATA_START], size):
            start = 0
        else:
            raise _NotSure
        meta, pos = _read_meta(head, start)
        _, little = _declared_encoding(head, meta, pos)
        if pos + 8 > len(head):
            raise _NotSure
        found = []
        _walk_data_set(head, pos, size, not _looks_explicit(head, pos), little, found)
    except (_NotSure, struct.error) as exc:
        raise ValueError("the head does not reach the pixel data") from exc
    return (found[0][1], found[0][2], little) if found else None


def pixel_data_tail(head, size):
    """Where the pixel data's value starts, when the head shows it is the file's last element.

    A job that passes pixel data through unchanged needs only the bytes before it (see
    :func:`dcmstudio.jobs.read_item_for_edit`).

    Returns
    -------
    int or None
        The value's offset, or None when the head cannot say, the file has no pixel data, its
        length is undefined (encapsulated: where it ends is only known by reading it), the data
        set is deflated, or anything follows the pixel data.
    """
    try:
        element = pixel_data_element(head, size)
    except ValueError:
        return None
    if element is None:
        return None
    value, length, _ = element
    if length == UNDEFINED_LENGTH or value + length != size or value > len(head):
        return None
    return value


def _walk_data_set(head, pos, size, implicit, little, pixel_data=None):
    """The kept top-level elements ``{tag: (vr, value offset, length)}``, up to Pixel Data.

    Reads as pydicom's ``data_element_generator`` with ``specific_tags`` and
    ``stop_before_pixels``: other values are skipped by their length, undefined-length
    sequences are walked item by item. The pixel data element's ``(tag, value offset, length)``
    is appended to ``pixel_data`` if given.
    """
    kept = {}
    last_tag = -1
    while pos != size:
        tag, vr, length, value = _header(head, pos, implicit, little)
        if tag >> 16 == 0xFFFE:
            raise _NotSure
        if tag in PIXEL_DATA_TAGS:
            if pixel_data is not None:
                pixel_data.append((tag, value, length))
            break
        if tag <= last_tag:  # out of order or repeated: pydicom keeps the last copy
            raise _NotSure
        last_tag = tag
        if length == UNDEFINED_LENGTH:
            if tag in _KEPT_TAGS:
                raise _NotSure
            pos = _skip_undefined_length(head, value, tag, vr, implicit, little, 0)
            continue
        pos = value + length
        if tag in _KEPT_TAGS:
            if pos > len(head):
                raise _NotSure
            kept[tag] = (vr, value, length)
    return kept


def _skip_undefined_length(head, pos, tag, vr, implicit, little, depth):
    """Where an undefined-length element whose value starts at ``pos`` ends (a sequence only)."""
    if implicit:
        try:
            is_sequence = _dictionary_vr_fast(tag) == "SQ"
        except KeyError:  # pydicom looks for an item
            if pos + 4 > len(head):
                raise _NotSure
            is_sequence = _U32[little].unpack_from(head, pos)[0] == _ITEM_AS_READ[little]
    else:
        is_sequence = vr in (b"SQ", b"UN")  # pydicom reads an undefined-length UN as a sequence
    if not is_sequence or depth >= MAX_SEQUENCE_DEPTH:
        raise _NotSure
    item_header = _IMPLICIT_HEADER[little]
    while True:
        if pos + 8 > len(head):
            raise _NotSure
        group, number, length = item_header.unpack_from(head, pos)
        pos += 8
        if group << 16 | number == SEQUENCE_DELIMITER:
            return pos
        if group << 16 | number != ITEM or pos + 6 > len(head):
            raise _NotSure
        # pydicom decides per item whether an explicit VR data set switched to implicit VR
        item_implicit = implicit or not _looks_explicit(head, pos)
        end = None if length == UNDEFINED_LENGTH else pos + length
        pos = _skip_item(head, pos, end, item_implicit, little, depth + 1)


def _skip_item(head, pos, end, implicit, little, depth):
    """Where an item's data set ends: at ``end``, or past its delimiter when ``end`` is None."""
    while end is None or pos < end:
        tag, vr, length, value = _header(head, pos, implicit, little)
        if tag == ITEM_DELIMITER:
            if end is not None or length != 0:
                raise _NotSure
            return value
        if tag >> 16 == 0xFFFE:
            raise _NotSure
        if length == UNDEFINED_LENGTH:
            pos = _skip_undefined_length(head, value, tag, vr, implicit, little, depth)
        else:
            pos = value + length
    if pos != end:
        raise _NotSure
    return pos


def _data_set_encodings(head, kept):
    """The Python encodings pydicom decodes text with: from (0008,0005), else its default."""
    charset = kept.get(0x00080005)
    if charset is None:
        return default_encoding
    vr, offset, length = charset
    raw = head[offset:offset + length]
    canonical = raw.rstrip(b" \x00")
    # describe_file's truncation check measures it as pydicom would write it back: keep it equal
    if vr not in (None, b"CS") or raw != canonical + b" " * (len(canonical) % 2):
        raise _NotSure
    return _encodings_of(raw)


@functools.lru_cache(maxsize=64)
def _encodings_of(raw):
    return convert_encodings(convert_string(raw, True) if raw else "")


def _value_text(head, entry, tag, implicit, little, encodings):
    """The value of a kept element as ``catalog._text`` renders it ("" when absent)."""
    if entry is None:
        return ""
    vr_bytes, offset, length = entry
    raw = head[offset:offset + length]
    vr = _DICTIONARY_VR[tag] if vr_bytes is None else vr_bytes.decode("ascii")
    fast = _FAST_TEXT.get(vr)
    text = None if fast is None else fast(raw, encodings, little)
    if text is None:
        text = _converted_text(raw, tag, vr_bytes, length, offset, implicit, little, encodings)
    return text


def _converted_text(raw, tag, vr_bytes, length, offset, implicit, little, encodings):
    """The value through pydicom's own converter, for what the fast decoders do not take."""
    vr = None if vr_bytes is None else vr_bytes.decode("ascii")
    value = raw if length else empty_value_for_VR(vr, raw=True)
    element = RawDataElement(BaseTag(tag), vr, length, value, offset, implicit, little)
    try:
        element = convert_raw_data_element(element, encoding=encodings)
        if element.VR == "SQ":
            raise _NotSure
        if element.value is None:
            return ""
        if element.VM > 1:
            return "\\".join(str(v) for v in element.value)
        return str(element.value)
    except _NotSure:
        raise
    except Exception as exc:  # noqa: BLE001 -- whatever pydicom raises, its own path must decide
        raise _NotSure from exc


def _number(text):
    """As ``catalog._number``."""
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None


@functools.lru_cache(maxsize=256)
def _uid_name(uid):
    return UID(uid).name


@functools.lru_cache(maxsize=32)
def _decodes_ascii_as_is(encoding):
    """Whether ``encoding`` decodes every ASCII byte to the same character."""
    ascii_bytes = bytes(range(128))
    try:
        return ascii_bytes.decode(encoding) == ascii_bytes.decode("ascii")
    except (LookupError, UnicodeError):
        return False


def _first_encoding(encodings):
    return encodings if isinstance(encodings, str) else encodings[0]


# Each takes (raw value, encodings, little endian) and returns the text catalog._text gives, or
# None when pydicom's converter must decide. Mirrors of pydicom.values' converters.
def _ui_text(raw, encodings, little):
    # convert_UI: Latin-1, trailing NUL/space dropped, each UID stripped
    return "\\".join(part.strip() for part in raw.decode("latin-1").rstrip("\0 ").split("\\"))


def _string_text(raw, encodings, little):
    # convert_string (CS; DA and TM without datetime_conversion): Latin-1, trailing padding dropped
    return raw.decode("latin-1").rstrip(" \0")


def _text_text(raw, encodings, little):
    # convert_text (SH, LO): decode_bytes' common case, no escape sequence
    if 0x1B in raw:
        return None
    try:
        decoded = raw.decode(_first_encoding(encodings))
    except (LookupError, UnicodeError):
        return None
    return "\\".join(value.rstrip("\0 ") for value in decoded.split("\\"))


def _person_name_text(raw, encodings, little):
    # convert_PN then str(PersonName): trailing empty component groups dropped
    stripped = raw.rstrip(b"\x00 ")
    if not stripped.isascii() or 0x1B in stripped or \
            not _decodes_ascii_as_is(_first_encoding(encodings)):
        return None
    return "\\".join(value.rstrip("=") for value in stripped.decode("ascii").split("\\"))


def _integer_string_text(raw, encodings, little):
    # convert_IS_string: a plain integer keeps its text, stripped
    text = raw.decode("latin-1").rstrip(" \0")
    return text.strip() if _PLAIN_INTEGER.fullmatch(text) else None


def _unsigned_short_text(raw, encodings, little):
    if len(raw) == 2:
        return str(_U16[little].unpack(raw)[0])
    return "" if not raw else None


_FAST_TEXT = {
    "UI": _ui_text, "CS": _string_text, "DA": _string_text, "TM": _string_text,
    "SH": _text_text, "LO": _text_text, "PN": _person_name_text, "IS": _integer_string_text,
    "US": _unsigned_short_text,
}

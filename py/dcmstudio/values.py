"""Typed values ↔ encoded bytes for one VR, byte order and character set.

Encoding goes through pydicom (its value classes check each VR's form and maximum length, its
writers produce the bytes) except for text in a character set, which :mod:`dcmstudio.charset`
encodes (ISO 2022 code extensions as strictly as PS3.5 asks). This module adds what an editor
of raw bytes needs around it: values that arrive as JSON (numbers as strings, lists, tags as
text), the Value Multiplicity check, padding to even length, and errors that name the file and
the element.
"""

import functools
import math
import re
import struct
import warnings

from pydicom import config
from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.datadict import dictionary_VM, tag_for_keyword
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import writers
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import DSfloat, PersonName
from pydicom.values import convert_value

from dcmstudio.charset import character_set
from dcmstudio.elements import tag_text
from dcmstudio.errors import EditError

# What pydicom decodes with when (0008,0005) is absent; text written there must be ASCII.
DEFAULT_ENCODINGS = ("iso8859",)
# VRs whose text follows (0008,0005) Specific Character Set (PS3.5 6.1.2.3).
CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
# VRs whose single value may contain a backslash: no splitting into several values.
SINGLE_VALUED_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                      "TM", "UC", "UI", "UR", "UT"})
INTEGER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q"}
FLOAT_FORMATS = {"FL": "f", "FD": "d"}
# Byte-stream VRs; a list of numbers is packed with these formats.
BYTES_FORMATS = {"OB": "B", "UN": "B", "OW": "H", "OL": "L", "OV": "Q", "OF": "f", "OD": "d"}
# VRs with a 16-bit length field in explicit VR (PS3.5 Table 7.1-2): at most 0xFFFE bytes.
SHORT_LENGTH_LIMIT = 0xFFFE


def resolve_vr(vr, pixel_representation=0):
    """Pick one VR for a dictionary VR such as ``"US or SS"`` (implicit VR files).

    Parameters
    ----------
    vr : str
        A VR, possibly ambiguous.
    pixel_representation : int
        (0028,0103) *Pixel Representation* of the dataset: 1 means signed.

    Returns
    -------
    str
    """
    if " or " not in vr:
        return vr
    if vr == "OB or OW":
        return "OW"
    if vr == "US or OW":
        return "US"
    return "SS" if pixel_representation == 1 else "US"


@functools.lru_cache(maxsize=256)
def encodings_for(specific_character_set):
    """Python codecs for a (0008,0005) *Specific Character Set* value.

    Parameters
    ----------
    specific_character_set : tuple of str or None
        The element's values; ``None`` or ``()`` when absent.

    Returns
    -------
    tuple of str
    """
    if not specific_character_set:
        return DEFAULT_ENCODINGS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(convert_encodings(list(specific_character_set)))


def split_values(raw):
    """Split decoded text on backslashes and strip DICOM padding: ``"A\\\\B "`` → ``("A", "B")``."""
    return tuple(part.strip(" \x00") for part in raw.split("\\"))


def value_multiplicity(value, vr):
    """How many values ``value`` holds once encoded (the VM of PS3.5 6.4)."""
    if value is None or value == "" or (isinstance(value, (list, tuple)) and not value):
        return 0
    if vr in BYTES_FORMATS or isinstance(value, (bytes, bytearray)):
        return 1
    if isinstance(value, (list, tuple)):
        return len(value)
    if isinstance(value, str) and vr not in SINGLE_VALUED_TEXT_VRS:
        return value.count("\\") + 1
    return 1


def check_vm(tag, vr, value):
    """Raise :class:`EditError` unless ``value`` has a multiplicity the dictionary allows.

    Private and unknown tags are not checked (their VM is not in the dictionary).
    """
    if tag >> 16 & 1:
        return
    try:
        allowed = dictionary_VM(tag)
    except KeyError:
        return
    count = value_multiplicity(value, vr)
    if count == 0 or _vm_allows(allowed, count):
        return
    raise EditError(f"the element takes VM {allowed} values, but {count} were given.")


def _vm_allows(allowed, count):
    low, _, high = allowed.partition("-")
    if not high:
        return count == int(low)
    if count < int(low):
        return False
    if high == "n":
        return True
    if high.endswith("n"):
        step = int(high[:-1] or 1)
        return count % step == 0
    return count <= int(high)


def encode_value(value, vr, *, tag, charset=None, little_endian=True, where="", file=None):
    """Encode ``value`` as the bytes of an element with ``vr``, padded to an even length.

    Parameters
    ----------
    value : str, int, float, bytes or list of them, or None
        Text for string VRs (several values as a list or joined with ``\\``); numbers (or
        numeric strings) for US, SS, UL, SL, UV, SV, FL, FD, IS and DS; tags for AT (``int``,
        ``"(0010,0010)"``, ``"00100010"`` or a keyword); bytes or a list of numbers for OB, OW,
        OL, OV, OF, OD and UN. ``None``, ``""`` and ``[]`` give an empty value. The number of
        values must agree with the dictionary's VM for standard tags.
    vr : str
        An unambiguous VR (see :func:`resolve_vr`); not SQ.
    tag : int
        The element's tag (pydicom uses it for a few special cases, errors name it).
    charset : dcmstudio.charset.CharacterSet, optional
        The (0008,0005) *Specific Character Set* in force where the element is (from
        :func:`dcmstudio.charset.character_set`); ``None`` when the dataset has none.
    little_endian : bool
        Byte order of binary values.
    where : str
        How errors name the element, e.g. ``"(0010,0010) PatientName"``.
    file : str, optional
        How errors name the file.

    Returns
    -------
    bytes
        Even length: UI padded with NUL, other text with a space, bytes with NUL.

    Raises
    ------
    EditError
        The value cannot be represented in ``vr`` (wrong type or form, too long, out of range,
        not encodable in the character set, wrong multiplicity).
    """
    try:
        return _encode_cached(_freeze(value), vr, tag, charset or character_set(()), little_endian)
    except EditError as exc:
        raise EditError(f"{where or tag_text(tag)}: {exc.message}", file=file) from None
    except (ValueError, TypeError, OverflowError, struct.error) as exc:
        message = str(exc).split(" Please see ")[0]
        raise EditError(f"the value {_short(value)} is not valid for {where or tag_text(tag)} "
                        f"(VR {vr}): {message}", file=file) from None


def _freeze(value):
    """Make a value hashable for the encoding cache (lists become tuples)."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


@functools.lru_cache(maxsize=4096)
def _encode_cached(value, vr, tag, charset, little_endian):
    if value is None or value == "" or value == ():
        return b""
    check_vm(tag, vr, value)
    if vr == "SQ":
        raise EditError("a sequence has no value of its own: edit its items' elements instead.")
    if isinstance(value, bool):
        raise EditError(f"a true/false value has no meaning for VR {vr}.")
    if vr in BYTES_FORMATS:
        return _encode_bytes(value, vr, little_endian)
    if vr in INTEGER_FORMATS or vr in FLOAT_FORMATS:
        numbers = [_to_number(v, vr) for v in _as_list(value)]
        return _pydicom_bytes(tag, vr, numbers if len(numbers) > 1 else numbers[0], little_endian)
    if vr == "AT":
        tags = [_to_tag(v) for v in _as_list(value)]
        return _pydicom_bytes(tag, vr, tags if len(tags) > 1 else tags[0], little_endian)
    if vr not in TEXT_VRS:
        raise EditError(f"VR {vr} is not one this editor can encode.")
    texts = [_to_text(v, vr) for v in _as_list(value)]
    if vr not in CHARSET_VRS:
        for text in texts:
            if not text.isascii():
                raise EditError(f"VR {vr} allows only ASCII characters, not {text!r}.")
    if vr in SINGLE_VALUED_TEXT_VRS:
        texts = ["\\".join(texts)]
    text_value = texts if len(texts) > 1 else texts[0]
    if vr in CHARSET_VRS:
        _pydicom_element(tag, vr, text_value)  # checks the form and length of each value
        return encode_text(texts, vr, charset)
    return _pydicom_bytes(tag, vr, text_value, little_endian)


def encode_text(texts, vr, charset):
    """Encode the values of a text VR in a character set, joined by backslashes, padded.

    Parameters
    ----------
    texts : list of str
        One value each (LT, ST and UT have one).
    vr : str
        SH, LO, ST, LT, PN, UC or UT.
    charset : dcmstudio.charset.CharacterSet

    Returns
    -------
    bytes
        Even length, padded with a space.

    Raises
    ------
    EditError
        A character the character set does not hold.
    """
    encoded = b"\\".join(charset.encode(text, vr) for text in texts)
    return encoded + b" " if len(encoded) % 2 else encoded


def _as_list(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, str) and "\\" in value:
        return value.split("\\")
    return [value]


def _to_number(value, vr):
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if vr in INTEGER_FORMATS else float(text)
        except ValueError:
            raise EditError(f"{value!r} is not a number (VR {vr} holds binary numbers).") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EditError(f"{value!r} is not a number (VR {vr} holds binary numbers).")
    if vr in INTEGER_FORMATS:
        if isinstance(value, float):
            if not value.is_integer():
                raise EditError(f"{value!r} is not a whole number, as VR {vr} requires.")
            value = int(value)
        return value
    return float(value)


def _to_tag(value):
    if isinstance(value, BaseTag) or (isinstance(value, int) and not isinstance(value, bool)):
        if not 0 <= value <= 0xFFFFFFFF:
            raise EditError(f"{value!r} is not a tag.")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        match = re.fullmatch(r"\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?", text)
        if match:
            return int(match.group(1), 16) << 16 | int(match.group(2), 16)
        tag = tag_for_keyword(text)
        if tag is not None:
            return tag
    raise EditError(f"{value!r} is not a tag: give (gggg,eeee), ggggeeee or a keyword.")


def _to_text(value, vr):
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise EditError(f"a true/false value has no meaning for VR {vr}.")
    if vr == "IS" and isinstance(value, (int, float)):
        if isinstance(value, float) and not value.is_integer():
            raise EditError(f"{value!r} is not a whole number, as VR IS requires.")
        return str(int(value))
    if vr == "DS" and isinstance(value, int):
        return str(value)
    if vr == "DS" and isinstance(value, float):
        if isinstance(value, float) and not math.isfinite(value):
            raise EditError(f"{value!r} cannot be written as a decimal string.")
        return str(DSfloat(value, auto_format=True))
    if isinstance(value, (int, float)):
        return str(value)
    raise EditError(f"{_short(value)} is not text, as VR {vr} requires.")


def _encode_bytes(value, vr, little_endian):
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, tuple) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          for v in value):
        order = "<" if little_endian else ">"
        data = struct.pack(f"{order}{len(value)}{BYTES_FORMATS[vr]}", *value)
    else:
        raise EditError(f"VR {vr} holds bytes: give bytes or a list of numbers, "
                        f"not {_short(value)}.")
    if vr == "OW" and len(data) % 2 or vr in ("OL", "OF") and len(data) % 4 or \
            vr in ("OV", "OD") and len(data) % 8:
        raise EditError(f"{len(data)} bytes is not a whole number of VR {vr} values.")
    return data + b"\x00" if len(data) % 2 else data


def _pydicom_element(tag, vr, value):
    return DataElement(tag, vr, value, validation_mode=config.RAISE)


def _pydicom_bytes(tag, vr, value, little_endian):
    element = _pydicom_element(tag, vr, value)
    buffer = DicomBytesIO()
    buffer.is_little_endian = little_endian
    buffer.is_implicit_VR = False
    write, parameter = writers[vr]
    saved_mode = config.settings.writing_validation_mode
    # RAISE makes pydicom refuse values it would otherwise write with a warning
    config.settings.writing_validation_mode = config.RAISE
    try:
        if parameter is not None:
            write(buffer, element, parameter)
        else:
            write(buffer, element)
    finally:
        config.settings.writing_validation_mode = saved_mode
    return buffer.getvalue()


def same_value(raw, encoded, vr):
    """Whether an element's bytes ``raw`` say what ``encoded`` says.

    The same bytes, or for text VRs the same text but for its trailing padding (spaces or NULs,
    which PS3.5 6.2 makes insignificant): setting such a value is no change.
    """
    raw = bytes(raw)
    if raw == encoded:
        return True
    return vr in TEXT_VRS and raw.rstrip(b" \x00") == encoded.rstrip(b" \x00")


def decode_value(raw, vr, *, tag, encodings=DEFAULT_ENCODINGS, little_endian=True,
                 implicit_vr=False):
    """Decode an element's bytes into a JSON-friendly value for reports and previews.

    Parameters
    ----------
    raw : bytes
        The encoded value.
    vr : str
        The element's VR (ambiguous VRs are resolved as US/OW).

    Returns
    -------
    str, int, float, list or None
        Text as ``str``; several values as a list; binary numbers as numbers; tags as
        ``"(gggg,eeee)"``; byte streams as ``"<n bytes>"``. Undecodable bytes give
        ``"<n bytes, not decodable as VR>"`` rather than an error.
    """
    return _decode_cached(bytes(raw), vr, tag, tuple(encodings), little_endian, implicit_vr)


@functools.lru_cache(maxsize=4096)
def _decode_cached(raw, vr, tag, encodings, little_endian, implicit_vr):
    vr = resolve_vr(vr)
    if vr in BYTES_FORMATS or vr == "SQ":
        return f"<{len(raw)} bytes>"
    element = RawDataElement(BaseTag(tag), vr, len(raw), raw, 0, implicit_vr, little_endian)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = convert_value(vr, element, list(encodings))
    except Exception:  # any decoding failure becomes a visible placeholder, never an error
        return f"<{len(raw)} bytes, not decodable as {vr}>"
    return _plain(value)


def _plain(value):
    if isinstance(value, (MultiValue, list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, BaseTag):
        return tag_text(value)
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float)) and type(value) not in (int, float):
        return str(value)  # IS / DS keep the text as written
    if value is None or isinstance(value, (int, float)):
        return value
    return str(value)


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

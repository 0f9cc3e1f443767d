"""Check a DICOM file against its IOD (PS3.3) and its elements against their encoding rules (PS3.5).

Two kinds of check, each finding named by a rule a user can look up:

- **IOD** (tables of :mod:`dcmstudio.iod`): for the file's SOP Class, every mandatory module's
  Type 1 attributes present and not empty and its Type 2 attributes present, at every depth of
  nested sequences; the same for a conditional or optional module the file shows it has (one of
  the attributes only that module defines is present), without requiring what it lacks. Type 1C
  and 2C conditions are evaluated only where the file's own values decide them
  (``DECIDABLE_1C``): a condition not decided must not produce a false error. Attributes that
  no module of the IOD defines (at the top level, or in the items of a sequence the module
  defines) are warnings.
- **Elements** (the bytes, walked by :mod:`dcmstudio.elements`, no value trusted to a parser):
  VR against the dictionary, VM against the dictionary's range, value length per VR, the value
  format of AE, AS, CS, DA, DS, DT, IS, TM, UI, UR and PN, the character repertoire of
  (0008,0005) *Specific Character Set*, group lengths including (0002,0000), odd value lengths,
  and trailing padding (NUL for UI, space elsewhere).

:func:`new_errors` (files) and :func:`new_errors_in` (bytes a job holds) compare an output with its
input, so that Create can refuse an output that gained an error and the edit, de-identify and
compress jobs can report it (see :mod:`dcmstudio.jobs`).
"""

import datetime
import functools
import json
import os
import re
import struct
from typing import NamedTuple

from pydicom.datadict import DicomDictionary, get_entry
from pydicom.valuerep import STR_VR_REGEXES

from dcmstudio import elements, iod
from dcmstudio.archive import Unread, piece_length
from dcmstudio.errors import DicomStudioError
from dcmstudio.charset import character_set
from dcmstudio.values import CHARSET_VRS, SINGLE_VALUED_TEXT_VRS, TEXT_VRS, _vm_allows

ERROR, WARNING = "error", "warning"

# PS3.5 Table 6.2-1: maximum length of one value, in characters for text VRs, else bytes.
MAX_VALUE_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
                    "LT": 10240, "SH": 16, "ST": 1024, "TM": 14, "UI": 64}
# Size of one value of the binary VRs whose VM is counted by length (PS3.5 6.2).
BINARY_VALUE_SIZE = {"AT": 4, "FL": 4, "FD": 8, "SL": 4, "SS": 2, "UL": 4, "US": 2, "SV": 8, "UV": 8}
# Byte streams: their length must be a multiple of the word size.
STREAM_WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
# Stored values of DA, TM and DT are single points (the range forms exist only in queries). These
# check the form; whether the digits make a real date or time is a separate, milder check
# (dciodvfy accepts month 13 and hour 25, so calling them errors would disagree with it).
DATE_TIME_FORMATS = {
    "DA": re.compile(rb"\d{8}"),
    "TM": re.compile(rb"\d\d(\d\d(\d\d(\.\d{1,6})?)?)?"),
    "DT": re.compile(rb"\d{4}(\d\d(\d\d(\d\d(\d\d(\d\d(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?"),
}
FORMAT_HINTS = {
    "DA": "a date is written YYYYMMDD, e.g. 20240131",
    "TM": "a time is written HHMMSS.FFFFFF (seconds and fraction optional), e.g. 143005",
    "DT": "a date-time is written YYYYMMDDHHMMSS.FFFFFF&ZZXX (parts from the right optional)",
    "AS": "an age is three digits and D, W, M or Y, e.g. 045Y",
    "CS": "a code string holds only upper-case letters, digits, space and underscore",
    "DS": "a decimal string is a number such as 12.5 or -1e3, at most 16 characters",
    "IS": "an integer string is a whole number from -2147483648 to 2147483647",
    "UI": "a UID is numbers separated by dots, without leading zeros, e.g. 1.2.840.10008.1.2",
    "AE": "an application entity title holds printable ASCII characters only",
    "UR": "a URI may not contain spaces or characters outside RFC 3986",
}
# Text VRs whose leading spaces carry no meaning (PS3.5 Table 6.2-1).
LEADING_SPACE_VRS = frozenset({"AE", "CS", "DS", "IS", "LO", "SH", "PN", "UC"})
# Control characters text may hold (PS3.5 6.1.2.3, Table 6.2-1): ESC (it begins ISO 2022 escape
# sequences) everywhere, and CR, LF and FF in the VRs of free text.
TEXT_CONTROLS = frozenset({"LT", "ST", "UT"})
_CONTROL = re.compile(rb"[\x00-\x1a\x1c-\x1f\x7f]")
_TEXT_CONTROL = re.compile(rb"[\x00-\x09\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
PIXEL_DATA = 0x7FE00010
FILE_META_TYPE_1 = (0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012)


class Finding(NamedTuple):
    """One problem found in a file.

    Attributes
    ----------
    severity : str
        ``"error"`` (the file breaks the standard) or ``"warning"`` (allowed, but worth a look).
    path : str
        Where, e.g. ``ReferencedSeriesSequence[0].SeriesInstanceUID``; empty for the whole file.
    tag : str
        The element's tag, e.g. ``(0020,000E)``; empty for the whole file.
    module : str
        The PS3.3 module that requires the attribute (``General Series``), else empty.
    rule : str
        A short name of the rule: ``type1-missing``, ``type1-empty``, ``type2-missing``,
        ``type1c-missing``, ``not-in-iod``, ``vr``, ``vm``, ``value-length``, ``value-format``, ``repertoire``,
        ``group-length``, ``odd-length``, ``padding``, ``file-meta``, ``encoding``, ``sop-class``,
        ``unreadable``.
    message : str
        What is wrong and what to do, in a sentence.
    """

    severity: str
    path: str
    tag: str
    module: str
    rule: str
    message: str

    def as_dict(self):
        return self._asdict()

    def as_text(self):
        where = f"{self.path} {self.tag}".strip()
        module = f" [{self.module}]" if self.module else ""
        return f"{self.severity.upper()}: {where}{module} {self.rule}: {self.message}"


@functools.lru_cache(maxsize=8192)
def _dictionary(tag):
    """(VR, VM, keyword, the VRs it may have) of a standard tag, repeating groups included; None
    when unknown."""
    entry = DicomDictionary.get(tag)
    if entry is None:
        try:
            entry = get_entry(tag)
        except KeyError:
            return None
    return entry[0], entry[1], entry[4], frozenset(entry[0].split(" or "))


_PRIVATE_CREATOR = ("LO", "1", "PrivateCreator", frozenset({"LO"}))


class _Check:
    """The checks of one file; ``findings`` collects what they find."""

    def __init__(self, layout, name):
        self.layout = layout
        self.name = name
        self.data = layout.data
        self.findings = []
        self.seen = set()
        self.charsets = {}
        self.present = {}
        self.pixel_data = None

    def add(self, severity, element, rule, message, module="", path=None, tag=""):
        if element is not None and element.tag is not None:
            path = element.path if path is None else path
            tag = elements.tag_text(element.tag if element.tag != elements.ITEM else element.parent.tag)
        key = (rule, path or "", module)
        if key not in self.seen:
            self.seen.add(key)
            self.findings.append(Finding(severity, path or "", tag, module, rule, message))

    def value(self, element):
        start = element.value_offset
        return bytes(self.data[start:start + element.length]) if element.length else b""

    # ---- elements ------------------------------------------------------------------------------

    def check_elements(self):
        containers = [self.layout.root]
        for element in self.layout.elements:
            if element.tag == elements.ITEM:
                if element.children is not None and not element.parent.is_fragments:
                    containers.append(element)
                if element.length is not None and element.length & 1:
                    self.add(ERROR, element, "odd-length", f"the item's length {element.length} is odd; "
                             "every length in DICOM is even.")
                continue
            if element.parent is not None and element.parent.tag == elements.ITEM \
                    and element.parent.parent is not None and element.parent.parent.is_fragments:
                continue
            self.check_element(element)
        for container in containers:
            self.check_group_lengths(container)

    def check_element(self, element):
        tag, vr, length = element.tag, element.vr, element.length
        if length is not None and length & 1 and not element.is_sequence:
            self.add(ERROR, element, "odd-length", f"the value's length {length} is odd; DICOM pads every "
                     "value to an even length (a space for text, NUL for UI and binary data).")
        private = tag >> 16 & 1
        entry = None if private else _dictionary(tag)
        if tag & 0xFFFF == 0:
            return  # group lengths are checked per container
        if private and 0x0010 <= tag & 0xFFFF <= 0x00FF:
            entry = _PRIVATE_CREATOR
        if entry is not None and vr not in entry[3] and not element.encoding.implicit_vr:
            self.check_vr(element, entry[0])
        if element.children is not None or length is None:
            return
        if entry is not None and (vr == "UN" or " or " in vr):
            # UN holds the value as the dictionary's VR would (implicit VR little endian), and an
            # ambiguous VR ("US or SS") has one value size whichever it is
            vr = entry[0].split(" or ")[0] if entry[0] not in ("OB or OW", "US or SS or OW") else "UN"
        if vr in BINARY_VALUE_SIZE or vr in STREAM_WORD_SIZE:
            size = BINARY_VALUE_SIZE.get(vr) or STREAM_WORD_SIZE[vr]
            if length % size:
                self.add(ERROR, element, "value-length", f"a {vr} value is made of {size}-byte numbers, "
                         f"but its length {length} is not a multiple of {size}.")
            elif entry is not None and vr in BINARY_VALUE_SIZE:
                self.check_vm(element, entry[1], length // size)
            return
        if vr not in TEXT_VRS:
            return
        raw = self.value(element)
        self.check_text(element, vr, raw, entry)

    def check_vr(self, element, dictionary_vr):
        vr = element.vr
        allowed = dictionary_vr.split(" or ")
        if vr in allowed:
            return
        if vr == "UN":
            self.add(WARNING, element, "vr", f"the element is encoded as UN (unknown) although the dictionary "
                     f"gives it VR {dictionary_vr}; readers may not interpret it.")
        else:
            self.add(WARNING, element, "vr", f"the element is encoded with VR {vr}, but the dictionary "
                     f"gives {dictionary_vr}; rewrite it with VR {allowed[0]}.")

    def check_vm(self, element, allowed, count):
        if count and not _vm_allows(allowed, count):
            self.add(ERROR, element, "vm", _vm_message(count, allowed))

    def check_text(self, element, vr, raw, entry):
        charset = self.character_set(element.parent) if vr in CHARSET_VRS else ()
        vm = entry[1] if entry is not None else None
        problems = (_text_problems_cached if len(raw) <= 256 else _text_problems)(vr, raw, vm, charset)
        for severity, rule, message in problems:
            self.add(severity, element, rule, message)

    def character_set(self, container):
        def own(node):
            for child in node.children or ():
                if child.tag == 0x00080005:
                    raw = self.value(child).rstrip(b"\x00 ").decode("ascii", "replace")
                    return tuple(term.strip() for term in raw.split("\\")) if raw.strip() else ()
                if child.tag > 0x00080005:
                    break
            return None
        return elements.in_force(container, self.charsets, own, ())

    def check_group_lengths(self, container):
        children = container.children or []
        for i, element in enumerate(children):
            if element.tag & 0xFFFF or element.length != 4:
                continue
            group = element.tag >> 16
            members = [c for c in children[i + 1:] if c.tag >> 16 == group]
            actual = sum(c.end - c.offset for c in members) if all(c.offset is not None for c in members) else None
            declared = element.encoding.u32.unpack(bytes(self.layout.value_bytes(element)))[0]
            if actual is not None and declared != actual:
                # A warning, as dciodvfy and dcmtk report it: readers recover by walking the elements.
                advice = ("readers that trust it look for the dataset in the wrong place" if group == 2 else
                          "group lengths are retired: remove it or correct it")
                self.add(WARNING, element, "group-length", f"the group length says {declared} bytes, but "
                         f"group {group:04X}'s elements take {actual}; {advice}.")

    def check_pixel_data_header(self, header):
        """(7FE0,0010) *Pixel Data* from its header alone (its value was not read)."""
        encoding = self.layout.encoding
        if len(header) < 8:
            return
        group, element = encoding.tag.unpack_from(header)
        if group << 16 | element != PIXEL_DATA:
            return
        self.pixel_data = header
        if encoding.implicit_vr:
            length = encoding.u32.unpack_from(header, 4)[0]
        else:
            vr = header[4:6].decode("latin-1")
            if vr not in ("OB", "OW"):
                self.add(ERROR, None, "vr", f"Pixel Data is encoded with VR {vr}; it must be OB or OW.",
                         path="PixelData", tag="(7FE0,0010)")
            length = encoding.u32.unpack_from(header, 8)[0] if len(header) >= 12 else 0
        if length != elements.UNDEFINED_LENGTH and length & 1:
            self.add(ERROR, None, "odd-length", f"the value's length {length} is odd; DICOM pads every value to "
                     "an even length.", path="PixelData", tag="(7FE0,0010)")

    # ---- file meta -----------------------------------------------------------------------------

    def top_text(self, tag, node=None):
        for child in (node or self.layout.root).children:
            if child.tag == tag:
                return self.value(child).rstrip(b"\x00 ").decode("ascii", "replace").strip()
        return None

    def check_file_meta(self):
        if self.layout.meta_offset is None:
            return
        declared = self.layout.transfer_syntax
        if declared and declared != elements.IMPLICIT_VR_LITTLE_ENDIAN and self.layout.encoding.implicit_vr:
            self.add(ERROR, None, "encoding", f"the Transfer Syntax UID ({declared}) says the dataset is "
                     "written with explicit VRs, but it is written with implicit VRs; re-save the file with "
                     "a transfer syntax that matches (1.2.840.10008.1.2 for implicit VR).",
                     module="File Meta Information", path="TransferSyntaxUID")
        present = {c.tag: c for c in self.layout.root.children if c.tag >> 16 == 2}
        for tag in FILE_META_TYPE_1:
            if tag not in present or not present[tag].length:
                keyword = _dictionary(tag)[2]
                self.add(ERROR, None, "file-meta", f"the File Meta Information lacks {keyword} "
                         f"{elements.tag_text(tag)}, which every DICOM file must have.",
                         module="File Meta Information", path=keyword)
        for meta, data, what in ((0x00020002, 0x00080016, "SOP Class UID"), (0x00020003, 0x00080018,
                                                                             "SOP Instance UID")):
            in_meta, in_data = self.top_text(meta), self.top_text(data)
            if in_meta and in_data and in_meta != in_data:
                self.add(ERROR, present[meta], "file-meta", f"the File Meta Information's {what} ({in_meta}) "
                         f"differs from the dataset's ({in_data}); they must be equal.",
                         module="File Meta Information")

    # ---- IOD -----------------------------------------------------------------------------------

    def check_iod(self):
        sop_class = self.top_text(0x00080016)
        if not sop_class:
            self.add(ERROR, None, "sop-class", "the file has no SOP Class UID (0008,0016), so no IOD applies; "
                     "every composite object must name its SOP Class.", module="SOP Common",
                     path="SOPClassUID")
            return None
        modules = iod.iod_modules(sop_class)
        if not modules:
            self.add(WARNING, None, "sop-class", f"SOP Class {sop_class} is not a storage class of PS3.3 "
                     f"{iod.EDITION} that dcmstudio knows; only the elements were checked.", path="SOPClassUID")
            return None
        root = self.layout.root
        top = {c.tag: c for c in root.children if c.tag >> 16 != 2}
        if self.pixel_data is not None:
            top[PIXEL_DATA] = self.pixel_data  # its header was read; the walk stopped before it
        owners, markers = _iod_plan(sop_class)
        applicable = tuple(key for key, tags in markers if tags is None or not tags.isdisjoint(top))
        for module, tree, only in _modules_to_check(sop_class, applicable):
            # A conditional or optional module is known to be there, but whether PS3.3's condition
            # requires the rest of it is not decided here: only what it holds is checked.
            self.check_level(root, tree, module.title, only=only, require=module.usage == "M")
            if module.usage == "M":
                self.check_decidable_conditions(tree, only, top, module.title)
        for tag, element in top.items():
            if tag >> 16 in _REPEATING:
                tag = iod.normalized_tag(tag)
            if tag >> 16 & 1 or not tag & 0xFFFF or tag == _TRAILING_PADDING or tag in owners \
                    or _dictionary(tag) is None:
                continue
            elsewhere = [iod.module_title(key) for key in iod.modules_defining(tag)]
            where = f" (it belongs to the {', '.join(elsewhere[:3])} module{'s' if len(elsewhere) > 1 else ''})" \
                if elsewhere else ""
            self.add(WARNING, element, "not-in-iod", f"no module of the {iod.module_title(iod.iod_name(sop_class))} "
                     f"IOD defines this attribute{where}; receivers may ignore or drop it.")
        return iod.iod_name(sop_class)

    def check_decidable_conditions(self, tree, only, top, module):
        """Type 1C attributes whose condition the file's own values decide (``DECIDABLE_1C``)."""
        for tag, (condition, holds) in DECIDABLE_1C.items():
            if tag in only and tree[tag][0] == "1C" and tag not in top and holds(self):
                keyword = _dictionary(tag)[2]
                self.add(ERROR, None, "type1c-missing", f"{keyword} is Type 1C in the {module} module, required "
                         f"because {condition}, and it is missing.", module=module, path=keyword,
                         tag=elements.tag_text(tag))

    def top_number(self, tag):
        """The first value of a top-level US element, or None."""
        for child in self.layout.root.children:
            if child.tag == tag and child.length and child.length >= 2:
                return child.encoding.u16.unpack(self.value(child)[:2])[0]
        return None

    def check_level(self, container, tree, module, only=None, require=True):
        # Where PS3.3 includes macros conditionally, the table lists their attributes with the
        # macro's own Types, as if always required: an SR content item (its value type decides
        # which macro applies) and a functional group item (each macro may be shared or per
        # frame). There only present sequences are followed, nothing is required.
        conditional_macros = _VALUE_TYPE in tree or container.parent is not None and container.parent.tag in \
            _FUNCTIONAL_GROUPS
        present = self.present.get(id(container))
        if present is None:
            present = self.present[id(container)] = {}
            for child in container.children or ():
                present.setdefault(iod.normalized_tag(child.tag) if child.tag >> 16 in _REPEATING else child.tag, child)
        prefix = container.path + "." if container.tag is not None else ""
        for tag, kind, subtree in _relevant(tree):
            if only is not None and tag not in only:
                continue
            element = present.get(tag)
            if element is None:
                if kind in ("1", "2") and require and not conditional_macros:
                    keyword = _dictionary(tag)[2] if _dictionary(tag) else elements.tag_text(tag)
                    self.add(ERROR, None, f"type{kind}-missing", _missing_message(kind, keyword, module),
                             module=module, path=prefix + keyword, tag=elements.tag_text(tag))
                continue
            if kind == "1" and not conditional_macros and self.is_empty(element):
                self.add(ERROR, element, "type1-empty", f"the attribute is Type 1 in the {module} module: it "
                         "must have a value, and it is empty.", module=module)
            if subtree is not None and element.is_sequence:
                for item in element.children:
                    if item.children is not None:
                        self.check_level(item, subtree, module)
        if container.tag == elements.ITEM and not conditional_macros:
            self.check_item_attributes(container, tree, present, module)

    def check_item_attributes(self, item, tree, present, module):
        """Warn of standard attributes in a sequence item that the module does not define there."""
        sequence = item.parent
        for tag, element in present.items():
            if tag in tree or tag >> 16 & 1 or not tag & 0xFFFF or _dictionary(tag) is None:
                continue
            self.add(WARNING, element, "not-in-iod", f"the {module} module does not define this attribute in "
                     f"the items of {elements.tag_name(sequence.tag)}; receivers may ignore or drop it.",
                     module=module)

    def is_empty(self, element):
        if element.is_sequence:
            return not element.children
        if element.children is not None:
            return False
        if not element.length:
            return True
        return element.vr in TEXT_VRS and not self.value(element).strip(b"\x00 ")


# Type 1C attributes whose condition the file's own values decide: {tag: (the condition in words,
# whether it holds for a check)}. Every other condition is left alone: a condition that is not
# decided must not produce an error.
def _several_samples(check):
    return (check.top_number(0x00280002) or 1) > 1


def _top_equals(tag, value):
    return lambda check: check.top_text(tag) == value


def _no_pixel_data_provider(check):
    return check.top_text(0x00287FE0) is None


_PALETTE = ("Photometric Interpretation (0028,0004) is PALETTE COLOR", _top_equals(0x00280004, "PALETTE COLOR"))
_IDENTITY_REMOVED = ("Patient Identity Removed (0012,0062) is YES", _top_equals(0x00120062, "YES"))
DECIDABLE_1C = {
    0x00280006: ("Samples per Pixel (0028,0002) is more than 1", _several_samples),        # PS3.3 C.7.6.3
    **{tag: _PALETTE for tag in (0x00281101, 0x00281102, 0x00281103, 0x00281201, 0x00281202, 0x00281203)},
    PIXEL_DATA: ("Pixel Data Provider URL (0028,7FE0) is absent", _no_pixel_data_provider),
    0x00120063: _IDENTITY_REMOVED,                                                          # PS3.3 C.7.1.1
    0x00120064: _IDENTITY_REMOVED,
    0x300C0060: ("RT Plan Geometry (300A,000C) is PATIENT", _top_equals(0x300A000C, "PATIENT")),  # C.8.8.9
}
_RELEVANT = {}


def _relevant(tree):
    """The entries of a module tree a check can act on: Type 1 or 2 attributes, and sequences."""
    found = _RELEVANT.get(id(tree))
    if found is None:
        found = _RELEVANT[id(tree)] = (tree, tuple((tag, kind, subtree) for tag, (kind, subtree) in tree.items()
                                                   if kind in ("1", "2") or subtree is not None))
    return found[1]


_VALUE_TYPE = 0x0040A040
_TRAILING_PADDING = 0xFFFCFFFC  # (FFFC,FFFC) Data Set Trailing Padding may end any dataset (PS3.10 7.2)
_FUNCTIONAL_GROUPS = frozenset({0x52009229, 0x52009230})
_REPEATING = frozenset(range(0x5000, 0x5020, 2)) | frozenset(range(0x6000, 0x6020, 2))


def _missing_message(kind, keyword, module):
    if kind == "1":
        return f"{keyword} is Type 1 in the {module} module: it must be present with a value, and it is missing."
    return (f"{keyword} is Type 2 in the {module} module: it must be present, empty if the value is unknown, "
            "and it is missing.")


def _show(raw):
    text = raw.decode("latin-1")
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _text_problems(vr, raw, vm, charset):
    """What is wrong with one encoded text value: ``[(severity, rule, message)]``.

    Parameters
    ----------
    vr : str
        Its VR.
    raw : bytes
        The value as encoded (padding included).
    vm : str or None
        The dictionary's VM for the element (None: not checked).
    charset : tuple of str
        (0008,0005) in force for text VRs; ``()`` for the default repertoire.
    """
    problems = []
    if raw.endswith(b"\x00") and vr != "UI":
        problems.append((ERROR, "padding", f"the {vr} value ends with a NUL byte; text is padded with a space "
                         "(only UI values are padded with NUL)."))
    elif raw.endswith(b" ") and vr == "UI":
        problems.append((ERROR, "padding", "the UID is padded with a space; UIDs are padded with a NUL byte."))
    stripped = raw.rstrip(b"\x00 ") if vr != "UI" else raw.rstrip(b"\x00")
    parts = [stripped] if vr in SINGLE_VALUED_TEXT_VRS else stripped.split(b"\\")
    if vm is not None and stripped and vr not in SINGLE_VALUED_TEXT_VRS and not _vm_allows(vm, len(parts)):
        problems.append((ERROR, "vm", _vm_message(len(parts), vm)))
    characters = _repertoire_problems(vr, stripped, charset, problems) if vr in CHARSET_VRS else None
    for part in parts:
        if vr in LEADING_SPACE_VRS:
            part = part.lstrip(b" ")
        if part:
            _value_problems(vr, part, characters, problems)
    return problems


_text_problems_cached = functools.lru_cache(maxsize=16384)(_text_problems)


def _vm_message(count, allowed):
    return (f"the element holds {count} values, but the dictionary allows VM {allowed}; remove the extra "
            "values or split them into the right elements.")


def _value_problems(vr, part, characters, problems):
    problem = _format_problem(vr, part)
    if problem:  # one finding per value: a malformed value is usually too long as well
        problems.append((ERROR, "value-format", f"{_show(part)} is not a valid {vr} value: {problem}."))
        return
    limit = MAX_VALUE_LENGTH.get(vr)
    if limit is not None:
        # Text VRs' limits count characters: one byte each unless the character set is multi-byte.
        count = len(part) if characters is None else characters(part)
        if count > limit:
            problems.append((ERROR, "value-length", f"a {vr} value may be at most {limit} characters, "
                             f"but {_show(part)} has {count}."))
    if vr == "PN" and max(len(group) for group in part.split(b"=")) > 64:
        problems.append((ERROR, "value-length", f"each component group of a person name may be at most 64 "
                         f"characters, and {_show(part)} has a longer one."))
    if vr in DATE_TIME_FORMATS and not _is_real_date_time(vr, part):
        problems.append((WARNING, "value-format", f"{_show(part)} has the form of a {_KIND[vr]}, but no such "
                         f"{_KIND[vr]} exists (month, day, hour, minute or second out of range)."))


def _repertoire_problems(vr, text, charset, problems):
    """Report bytes outside the repertoire (of the sets (0008,0005) declares, escape sequences
    included: :meth:`CharacterSet.repertoire_problems`); return how to count a value's characters
    (None: one byte per character)."""
    control = (_TEXT_CONTROL if vr in TEXT_CONTROLS else _CONTROL).search(text)
    if control is not None:
        problems.append((ERROR, "repertoire", f"the value holds the control character 0x{control.group()[0]:02X}; "
                         f"{vr} text may hold no control characters"
                         + (" other than CR, LF, FF and ESC" if vr in TEXT_CONTROLS else "") + "."))
    if not charset:
        bad = _NON_ASCII.search(text)
        if bad is not None:
            problems.append((ERROR, "repertoire", f"the value holds byte 0x{bad.group()[0]:02X}, outside the "
                             "default character repertoire (ASCII); add (0008,0005) Specific Character Set "
                             "naming the character set used, e.g. ISO_IR 192 for UTF-8."))
        return None
    declared = character_set(charset)
    if declared.unknown:
        return None  # (0008,0005) itself is reported; what its terms mean is not known
    found = declared.repertoire_problems(text, vr)
    for severity, message in found:
        problems.append((ERROR if severity == "error" else WARNING, "repertoire",
                         f"{message}; correct the value or the character set."))
    if any(severity == "error" for severity, _ in found):
        return None
    return functools.partial(declared.characters, vr=vr)


_KIND = {"DA": "date", "TM": "time", "DT": "date-time"}


def _is_real_date_time(vr, part):
    """Whether a DA, TM or DT value of the right form names a date or time that exists."""
    text = part.decode("ascii")
    if vr == "DT":
        text, _, offset = text.partition("+") if "+" in text else text.partition("-")
        if offset and not (int(offset[:2]) <= 14 and int(offset[2:]) < 60):
            return False
    date, time = (text, "") if vr == "DA" else ("", text) if vr == "TM" else (text[:8], text[8:])
    if len(date) >= 6 and not 1 <= int(date[4:6]) <= 12:
        return False
    if len(date) == 8:
        try:
            datetime.date(int(date[:4]), int(date[4:6]), int(date[6:8]))
        except ValueError:
            return False
    limits = (24, 60, 61)  # a leap second may be 60
    return all(int(time[2 * i:2 * i + 2]) < limit for i, limit in enumerate(limits) if len(time) >= 2 * i + 2)


def _format_problem(vr, part):
    """Why ``part`` (one value, padding removed) is not a valid ``vr`` value, or None."""
    if vr in DATE_TIME_FORMATS:
        if not DATE_TIME_FORMATS[vr].fullmatch(part):
            return FORMAT_HINTS[vr]
        return None
    if vr in ("AS", "CS", "DS", "IS", "UI", "AE", "UR"):
        regex = STR_VR_REGEXES[vr]
        text = part.decode("latin-1")
        if not regex.match(text):
            return FORMAT_HINTS[vr]
        if vr == "IS" and not -2**31 <= int(text) < 2**31:
            return FORMAT_HINTS[vr]
        if vr == "UI":
            if text.split(".")[0] not in ("0", "1", "2"):
                return "a UID's first number is 0, 1 or 2 (the root of every ISO object identifier)"
            if not text.strip("0."):
                return "a UID cannot be made only of zeros"
    if vr == "PN":
        groups = part.split(b"=")
        if len(groups) > 3:
            return "a person name has at most three component groups (alphabetic, ideographic, phonetic)"
        if any(group.count(b"^") > 4 for group in groups):
            return "a person name has at most five components separated by ^"
    return None


def validate_bytes(data, name):
    """Check one encoded DICOM file.

    Parameters
    ----------
    data : bytes or bytearray or memoryview
        The whole file.
    name : str
        The file's name, for the report.

    Returns
    -------
    dict
        ``{"name", "sop_class", "iod", "edition", "errors", "warnings", "findings": [Finding
        as dict]}``; errors first, then warnings, each in file order.
    """
    try:
        layout = elements.walk(data, name)
    except DicomStudioError as exc:
        finding = Finding(ERROR, "", "", "", "unreadable", exc.message)
        return _report(name, None, None, [finding])
    return _validate_layout(layout, name)


def _validate_layout(layout, name, pixel_header=None):
    _expand_un_sequences(layout, name)
    check = _Check(layout, name)
    if pixel_header is not None:
        check.check_pixel_data_header(pixel_header)
    check.check_file_meta()
    iod_key = check.check_iod()
    check.check_elements()
    return _report(name, check.top_text(0x00080016), iod_key, check.findings)


@functools.lru_cache(maxsize=64)
def _iod_plan(sop_class):
    """For the IOD of ``sop_class``: ``{tag: module keys defining it at the top level}``, and per
    module ``(key, marker tags)``: None for a mandatory module, else the tags only it defines
    (one of them present shows the module is there)."""
    modules = iod.iod_modules(sop_class)
    owners = {}
    for module in modules:
        for tag in iod.module_attributes(module.key):
            owners.setdefault(tag, set()).add(module.key)
    markers = tuple((module.key, None if module.usage == "M" else frozenset(
        tag for tag in iod.module_attributes(module.key) if owners[tag] == {module.key})) for module in modules)
    return owners, markers


@functools.lru_cache(maxsize=256)
def _modules_to_check(sop_class, applicable):
    """``(module, tree, tags it governs)`` for the modules ``applicable`` (keys) of the IOD.

    A top-level attribute several applicable modules define is checked against the one whose
    Type governs (a specific module overrides a general one, see :func:`iod.governing_type`).
    """
    chosen = [(module, iod.module_attributes(module.key)) for module in iod.iod_modules(sop_class)
              if module.key in applicable]
    places = {}
    for module, tree in chosen:
        for tag, (kind, _) in tree.items():
            places.setdefault(tag, []).append((module, kind))
    governing = {}
    for tag, found in places.items():
        kind = iod.governing_type(found)
        governing[tag] = next((module.key for module, k in found if k == kind), found[0][0].key)
    return tuple((module, tree, frozenset(tag for tag in tree if governing[tag] == module.key))
                 for module, tree in chosen)


def _expand_un_sequences(layout, name):
    """Give each defined-length UN element that the dictionary calls a sequence its items.

    The walker opens a UN element as a sequence only when its length is undefined; one written
    with a defined length (a sequence a receiver did not know) holds the same implicit VR little
    endian items (PS3.5 6.2.2). They are walked here and grafted on, so their content is checked.
    """
    for position in range(len(layout.elements) - 1, -1, -1):
        element = layout.elements[position]
        if element.vr != "UN" or element.children is not None or not element.length or element.tag == elements.ITEM \
                or (_dictionary(element.tag) or ("",))[0] != "SQ":
            continue
        # A plausible first element, then the sequence's header with the value as it lies in the file.
        head = struct.pack("<HHLLHHL", 0x0008, 0x0000, 4, 0, element.tag >> 16, element.tag & 0xFFFF, element.length)
        try:
            inner = elements.walk(head + bytes(layout.value_bytes(element)), name)
        except DicomStudioError:
            continue  # not items after all: the element stays a plain UN value
        sequence = inner.root.children[-1]
        if not sequence.is_sequence:
            continue
        shift = element.value_offset - len(head)
        grafted = [e for e in inner.elements if e is not sequence and e is not inner.root.children[0]]
        for node in grafted:
            node.offset += shift
            node.value_offset += shift
            node.end = None if node.end is None else node.end + shift
        for item in sequence.children:
            item.parent = element
        element.children = sequence.children
        layout.elements[position + 1:position + 1] = grafted


def _report(name, sop_class, iod_key, findings):
    findings = sorted(findings, key=lambda f: f.severity != ERROR)
    errors = sum(f.severity == ERROR for f in findings)
    return {"name": name, "sop_class": sop_class, "iod": iod.module_title(iod_key) if iod_key else None,
            "edition": iod.SOURCE, "errors": errors, "warnings": len(findings) - errors,
            "findings": [f.as_dict() for f in findings]}


# Headers are read in pieces of this size, growing fourfold, until the walk reaches Pixel Data: a
# series is validated without reading its pixels (in the page, reading them cost more than checking).
HEAD_BYTES = 1 << 16


def validate_file(path, name=None, head=None):
    """Check the DICOM file at ``path``; see :func:`validate_bytes` for the report.

    Only the bytes before (7FE0,0010) *Pixel Data* and its header are read when the file has
    one; elements after the pixel data (trailing padding, signatures) are then not checked.

    Parameters
    ----------
    path : str
        Where the file is.
    name : str, optional
        The name the report gives it (the user's file name); the path's base name by default.
    head : bytes, optional
        The file's first bytes, already read (the page's worker fetches them ahead): the file
        itself is read only where the header goes on past them.
    """
    name = name or os.path.basename(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size

        def prefix(want):
            if head is not None and (len(head) >= want or len(head) == size):
                return head[:want]
            f.seek(0)
            return f.read(want)
        return _validate_prefix(prefix, size, name)


def validate_pieces(pieces, name):
    """Check a file held in memory, whole or as the pieces a job wrote it in; as :func:`validate_file`,
    only the bytes up to the Pixel Data header are walked, and the pieces are joined only that far.

    Parameters
    ----------
    pieces : bytes-like or list of bytes-like
        The file, or its pieces in order; the last may stand for bytes never read (the pixel data
        of a large file, :class:`dcmstudio.archive.Unread`: only its length is known).
    name : str
        The file's name, for the report.
    """
    pieces = [pieces] if isinstance(pieces, (bytes, bytearray, memoryview)) else list(pieces)
    size = sum(piece_length(piece) for piece in pieces)
    readable = 0
    for piece in pieces:
        if isinstance(piece, Unread):
            break
        readable += len(piece)

    def prefix(want):
        if len(pieces[0]) >= want:
            return memoryview(pieces[0])[:want]  # no copy: the usual header lies in the first piece
        head = bytearray()
        for piece in pieces:
            if isinstance(piece, Unread):
                break  # bytes never read: the walk stops before them (at Pixel Data)
            head += piece[:want - len(head)]
            if len(head) >= want:
                break
        return head
    return _validate_prefix(prefix, size, name, readable)


def _validate_prefix(prefix, size, name, readable=None):
    """Validate a file of ``size`` bytes whose first ``want`` bytes ``prefix(want)`` gives: headers
    are walked from growing prefixes until the walk reaches Pixel Data, or the whole file.
    ``readable``: how many bytes ``prefix`` can give at most (the pixel data after them was
    not read), by default all."""
    readable = size if readable is None else readable
    want = min(HEAD_BYTES, readable)
    while want < size:
        head = prefix(want)
        try:
            layout = elements.walk(head, name, stop_after=PIXEL_DATA - 1)
        except DicomStudioError:
            layout = None  # the header goes on past these bytes (or is broken: read it all)
        if layout is not None and not layout.complete and not layout.deflated:
            return _validate_layout(layout, name, pixel_header=bytes(head[layout.walk_end:layout.walk_end + 12]))
        if want >= readable:
            break
        want = min(want * 4, readable)
    return validate_bytes(prefix(size), name)


def new_errors(input_path, output_path, name=None):
    """Errors the output has that its input did not have.

    A job that writes ``output_path`` from ``input_path`` calls this to refuse or flag an output it
    made worse. Findings are matched by rule and path, so an error the input already had (and the
    output kept) is not counted. The input is read only when the output has errors.

    Parameters
    ----------
    input_path : str or None
        The file the output was made from; None for a created object (every error is new).
    output_path : str
        The file written.
    name : str, optional
        The name the findings are reported under; the output path's base name by default.

    Returns
    -------
    list of dict
        The output's new error findings (see :class:`Finding`); empty when it gained none.
    """
    return _gained(validate_file(output_path, name),
                   None if input_path is None else lambda: validate_file(input_path, name))


def new_errors_in(input_data, output, name):
    """:func:`new_errors` for a job holding both files in memory (nothing is read again).

    Parameters
    ----------
    input_data : bytes-like
        The input file's bytes.
    output : bytes-like or list of bytes-like
        The output, whole or as the pieces the job wrote it in (joined only up to Pixel Data).
    name : str
        The file's name, for the findings.
    """
    return _gained(validate_pieces(output, name), lambda: validate_pieces(input_data, name))


def _gained(output_report, input_report):
    """The error findings of ``output_report`` not in the report ``input_report()`` gives (called
    only when the output has errors: a clean output costs one validation, not two)."""
    after = [f for f in output_report["findings"] if f["severity"] == ERROR]
    if not after or input_report is None:
        return after
    before = {(f["rule"], f["path"]) for f in input_report()["findings"] if f["severity"] == ERROR}
    return [f for f in after if (f["rule"], f["path"]) not in before]


def report_text(reports):
    """The reports of :func:`validate_bytes` as plain text, one block per file."""
    blocks = []
    for report in reports:
        head = (f"{report['name']}: {report['iod'] or 'IOD unknown'} — {report['errors']} error(s), "
                f"{report['warnings']} warning(s) ({report['edition']})")
        lines = [Finding(**f).as_text() for f in report["findings"]]
        blocks.append("\n".join([head, *("  " + line for line in lines)]))
    return "\n\n".join(blocks) + "\n"


def report_json(reports):
    """The reports of :func:`validate_bytes` as a JSON document."""
    return json.dumps({"dcmstudio_validation": 1, "standard": iod.SOURCE, "files": reports}, indent=1)

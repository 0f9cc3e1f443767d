"""The Inspect workbench: one file's elements as a tree, a search over that tree, and two exports.

``element_tree`` gives the page a plain-data tree (file meta first, sequences nested) with value
previews; ``search`` finds nodes in such a tree; ``dump_text`` writes a dcmdump-like listing and
``dicom_json`` the DICOM JSON model (PS3.18 Annex F).

Bulk values stay in the file: elements longer than ``DEFER_SIZE`` are read lazily, and binary ones
(pixel data above all) are only ever previewed from their first bytes, never decoded.
"""

import dataclasses
import io
import json
import os
import re
import struct
import warnings

from pydicom.charset import convert_encodings
from pydicom.datadict import (dictionary_description, dictionary_has_tag, dictionary_keyword,
                              private_dictionary_description, repeater_has_tag)
from pydicom.dataelem import RawDataElement
from pydicom.encaps import parse_basic_offsets, parse_fragments
from pydicom.hooks import raw_element_vr
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.valuerep import AMBIGUOUS_VR, EXPLICIT_VR_LENGTH_32

from dcmstudio.catalog import (as_invalid_dicom, element_label, encoded_value_length, read_dicom,
                               transfer_syntax_info)

# Values longer than this stay in the file until needed; binary ones are never read whole.
DEFER_SIZE = 1024
PREVIEW_BYTES = 16
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
# Bytes per value of the VRs that hold binary numbers.
NUMBER_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "AT": 4, "UV": 8, "SV": 8, "FD": 8}
UNDEFINED_LENGTH = 0xFFFFFFFF
SPECIFIC_CHARACTER_SET = 0x00080005
# Each element keeps one line in a dump.
_ESCAPES = {code: f"\\x{code:02x}" for code in range(0x20) if code != 0x09}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r"})
# Tag spellings a search understands, each giving the hex digits the tag starts with.
_TAG_QUERIES = (
    re.compile(r"0x([0-9a-f]{1,8})"),
    re.compile(r"\(?\s*([0-9a-f]{4})\s*[,\s]\s*([0-9a-f]{0,4})\s*\)?"),
    re.compile(r"\(\s*([0-9a-f]{1,4})\s*\)?"),
    re.compile(r"([0-9a-f]{8})"),
)


@dataclasses.dataclass
class ElementView:
    """What the inspector shows of one element; ``value`` is text, nested items stay Datasets."""

    tag: Tag
    vr: str
    vm: int
    length: int | None  # None: undefined length
    value: str
    truncated: bool = False
    summary: bool = False  # value describes the bytes ("<16 bytes: …>") instead of showing them
    warning: str | None = None
    items: list | None = None  # the item Datasets of a sequence
    keyword: str | None = None
    name: str = ""
    private_creator: str | None = None


def element_tree(path, name, max_value_chars=200):
    """Return the elements of one file as a tree of plain data for the Tags workbench.

    Parameters
    ----------
    path : str
        The file (MEMFS in the page).
    name : str
        The user's name for the file.
    max_value_chars : int, optional
        Text values longer than this are cut, their node marked ``"truncated": True``.

    Returns
    -------
    dict
        ``{"file": name, "transfer_syntax": {"uid", "name"}, "nodes": [node, ...],
        "warnings": [str, ...]}``, the file meta group's nodes first. A node is
        ``{"id", "tag", "keyword", "name", "vr", "vm", "length", "value", "truncated",
        "private_creator", "path", "items", "meta", "warning"}``: ``"tag"`` reads "(0010,0010)";
        ``"keyword"`` is ``None`` for private and unknown elements; ``"vr"`` is the one in the
        file (looked up for implicit VR); ``"length"`` is ``None`` for an undefined length;
        ``"items"`` is ``None`` except for a sequence, where it lists
        ``{"id", "index", "label", "nodes"}``; ``"warning"`` is ``None`` or why the value is not
        shown as it should be (bad character set, malformed number, value cut short by the end of
        the file). Binary values read ``"<1234 bytes: 00 01 …>"``, encapsulated pixel data
        ``"<encapsulated: N fragments, M bytes>"``, values that cannot be decoded
        ``"<cannot decode as VR: hex…>"``. Ids ("n0", "n1", …) are unique in the tree and the
        same for the same file. ``"warnings"`` lists what pydicom met while reading the file.

    Raises
    ------
    NotDicomError, InvalidDicomError
        As ``catalog.read_dicom``.
    """
    problems = []
    ds = read_dicom(path, name, defer_size=DEFER_SIZE, problems=problems,
                    allow_truncated=True)
    with as_invalid_dicom(name, "while listing its elements"), \
            _ValueReader(path, ds, max_value_chars) as reader:
        builder = _TreeBuilder(reader)
        nodes = builder.nodes(ds.file_meta, "", meta=True) + builder.nodes(ds, "", meta=False)
    return {"file": name, "transfer_syntax": transfer_syntax_info(ds), "nodes": nodes,
            "warnings": problems}


def search(tree, query):
    """Find the nodes of an ``element_tree`` result that match ``query``.

    A node matches when the query (case-insensitive) is part of its keyword, name, private
    creator or value preview, or when the query is a tag written in any common way —
    "0010,0010", "(0010,0010)", "00100010", "0x00100010", "0010 0010" — or the start of one, such
    as "(0010," for the whole group.

    Parameters
    ----------
    tree : dict
        A result of ``element_tree``.
    query : str

    Returns
    -------
    dict
        ``{"matches": [node id, ...], "reveal": [id, ...]}``: the matching nodes in tree order,
        and the sequence nodes and items that enclose them (to expand), each id once.
    """
    text = query.strip().lower()
    if not text:
        return {"matches": [], "reveal": []}
    tag_prefix = _tag_prefix(text)
    matches, reveal = [], {}

    def visit(nodes, ancestors):
        for node in nodes:
            if _node_matches(node, text, tag_prefix):
                matches.append(node["id"])
                reveal.update(dict.fromkeys(ancestors))
            for item in node["items"] or ():
                visit(item["nodes"], ancestors + [node["id"], item["id"]])

    visit(tree["nodes"], [])
    return {"matches": matches, "reveal": list(reveal)}


def dump_text(path, name):
    """Return a text listing of the whole file in the manner of dcmdump.

    One line per element, ``(0008,0005) CS [ISO_IR 100]  # 10, 1 SpecificCharacterSet``, with
    sequence items and delimiters on lines of their own, indented by depth. Values are complete
    except binary ones (OB, OW, OF, OD, OL, OV, UN, encapsulated pixel data), which are previewed;
    control characters in text are escaped (``\\n``) so that each element keeps one line.

    Parameters
    ----------
    path, name : str
        The file and the user's name for it.

    Returns
    -------
    str

    Raises
    ------
    NotDicomError, InvalidDicomError
        As ``catalog.read_dicom``.
    """
    problems = []
    ds = read_dicom(path, name, defer_size=DEFER_SIZE, problems=problems,
                    allow_truncated=True)
    syntax = transfer_syntax_info(ds)
    lines = [f"# dcmstudio dump of {name}",
             f"# Transfer syntax: {syntax['name']} ({syntax['uid']})"]
    lines += [f"# Warning: {problem}" for problem in problems]
    with as_invalid_dicom(name, "while listing its elements"), \
            _ValueReader(path, ds, None) as reader:
        lines += ["", "# File meta information"]
        if len(ds.file_meta):
            _dump_dataset(reader, ds.file_meta, 0, lines)
        else:
            lines.append("# (none)")
        lines += ["", "# Data set"]
        _dump_dataset(reader, ds, 0, lines)
    return "\n".join(lines) + "\n"


def dicom_json(path, name):
    """Return the data set (not the file meta group) in the DICOM JSON model, PS3.18 Annex F.

    Binary values are written inline (``"InlineBinary"``, base64), so the whole file, pixel data
    included, is read into memory.

    Parameters
    ----------
    path, name : str
        The file and the user's name for it.

    Returns
    -------
    str
        JSON text that ``pydicom.Dataset.from_json`` reads back to an equal data set.

    Raises
    ------
    NotDicomError, InvalidDicomError
        As ``catalog.read_dicom``; InvalidDicomError also names an element whose value cannot be
        written in JSON.
    """
    ds = read_dicom(path, name)
    model = {}
    for tag in sorted(ds.keys()):
        label = element_label(tag, _names(ds, Tag(tag))[0] or "")
        with as_invalid_dicom(name, f"while writing {label} as DICOM JSON"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model[f"{tag:08X}"] = ds[tag].to_json_dict(bulk_data_element_handler=None,
                                                       bulk_data_threshold=0)
    with as_invalid_dicom(name, "while writing it as DICOM JSON"):
        return json.dumps(model, indent=2, ensure_ascii=False)


class _ValueReader:
    """Turns the elements of one file's data sets into ``ElementView``s, never raising on values.

    Keeps the file open while a tree or dump is built, to preview deferred binary values.
    """

    def __init__(self, path, ds, max_value_chars):
        self.path = path
        self.max_value_chars = max_value_chars
        self.file_size = os.path.getsize(path)
        self.is_implicit_vr, self.is_little_endian = ds.original_encoding
        self._file = None

    def __enter__(self):
        self._file = open(self.path, "rb")
        return self

    def __exit__(self, *exc_info):
        self._file.close()

    def view(self, dataset, tag):
        """Return the ``ElementView`` of element ``tag`` of ``dataset``."""
        tag = Tag(tag)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            keyword, name, creator = _names(dataset, tag)
            as_read = dataset.get_item(tag, keep_deferred=True)
            try:
                view = self._view(dataset, tag, as_read)
                if tag == SPECIFIC_CHARACTER_SET:
                    # pydicom warned about unknown terms once, while reading: say it here too
                    convert_encodings(dataset[tag].value or "")
            except Exception as exc:  # noqa: BLE001 -- a bad value is shown, not raised
                view = _undecodable_view(tag, as_read, exc)
        view.keyword, view.name, view.private_creator = keyword, name, creator
        if caught and view.warning is None:
            view.warning = str(caught[0].message)
        return view

    def header_size(self, view):
        """Bytes taken by the element's tag, VR and length fields in this file."""
        explicit = view.tag.group == 2 or not self.is_implicit_vr
        return 12 if explicit and view.vr in EXPLICIT_VR_LENGTH_32 else 8

    def _view(self, dataset, tag, element):
        if not isinstance(element, RawDataElement):
            # pydicom converted it while reading (file meta, charset, undefined-length sequence)
            length = None if element.is_undefined_length else encoded_value_length(
                element, self.is_implicit_vr, self.is_little_endian)
            return self._converted_view(element, element.VR, length)
        raw = element
        if raw.length == UNDEFINED_LENGTH:
            # pydicom parses undefined-length sequences itself: what is left is encapsulated.
            return self._encapsulated_view(raw)
        if raw.value is None:  # deferred: still in the file, which may end before it does
            in_file = max(0, min(raw.length, self.file_size - raw.value_tell))
        else:
            in_file = len(raw.value)
        shortfall = None
        if in_file < raw.length:
            shortfall = (f"the file ends {in_file} bytes into this {raw.length}-byte value, "
                         f"{raw.length - in_file} bytes are missing")
        vr = _lookup_vr(dataset, raw)
        size = NUMBER_SIZES.get(vr)
        if size and raw.length % size:
            # pydicom raises for some of these and silently drops the value for others (AT)
            raise ValueError(f"its length, {raw.length}, is not a multiple of {size} bytes")
        if vr in BINARY_VRS:
            if raw.value is None:
                self._file.seek(raw.value_tell)
                head = self._file.read(min(PREVIEW_BYTES, in_file))
            else:
                head = raw.value[:PREVIEW_BYTES]
            view = _binary_view(tag, raw.VR or vr, raw.length, head)
        else:
            element = dataset[tag]
            # the VR written in the file; for implicit VR the one pydicom settled on
            view = self._converted_view(element, raw.VR or element.VR, raw.length)
        view.warning = shortfall
        return view

    def _converted_view(self, element, vr, length):
        if element.VR == "SQ":
            return ElementView(element.tag, vr, element.VM, length, "",
                               items=list(element.value or ()))
        if element.VR in BINARY_VRS or isinstance(element.value, bytes):
            data = element.value or b""
            return _binary_view(element.tag, vr, len(data) if length is None else length,
                                data[:PREVIEW_BYTES])
        text, truncated = _value_text(element, self.max_value_chars)
        return ElementView(element.tag, vr, element.VM, length, text, truncated=truncated)

    def _encapsulated_view(self, raw):
        vr = raw.VR if raw.VR in BINARY_VRS else "OB"  # encapsulated pixel data is always OB
        source = self._file
        if raw.value is not None:
            source = io.BytesIO(raw.value)
        else:
            source.seek(raw.value_tell)
        endianness = "<" if raw.is_little_endian else ">"
        try:
            parse_basic_offsets(source, endianness=endianness)
            start = source.tell()
            count, offsets = parse_fragments(source, endianness=endianness)
            size = 0
            if count:
                source.seek(offsets[-1] + 4)
                last_length = struct.unpack(endianness + "L", source.read(4))[0]
                size = offsets[-1] + 8 + last_length - start - 8 * count
        except (ValueError, struct.error) as exc:
            return ElementView(raw.tag, vr, 1, None, "<encapsulated: fragments cannot be listed>",
                               truncated=True, summary=True,
                               warning=f"the encapsulated value is malformed: {exc}")
        noun = "fragment" if count == 1 else "fragments"
        return ElementView(raw.tag, vr, 1, None, f"<encapsulated: {count} {noun}, {size} bytes>",
                           truncated=True, summary=True)



class _TreeBuilder:
    """Builds the plain-data nodes of ``element_tree``, numbering ids in document order."""

    def __init__(self, reader):
        self.reader = reader
        self._count = 0

    def nodes(self, dataset, parent_path, meta):
        return [self._node(dataset, tag, parent_path, meta) for tag in sorted(dataset.keys())]

    def _next_id(self):
        self._count += 1
        return f"n{self._count - 1}"

    def _node(self, dataset, tag, parent_path, meta):
        view = self.reader.view(dataset, tag)
        tag_text = str(view.tag)
        path = view.keyword or tag_text
        if parent_path:
            path = f"{parent_path}.{path}"
        node = {"id": self._next_id(), "tag": tag_text, "keyword": view.keyword, "name": view.name,
                "vr": view.vr, "vm": view.vm, "length": view.length, "value": view.value,
                "truncated": view.truncated, "private_creator": view.private_creator,
                "path": path, "items": None, "meta": meta, "warning": view.warning}
        if view.items is not None:
            node["items"] = [
                {"id": self._next_id(), "index": index, "label": f"Item {index + 1}",
                 "nodes": self.nodes(item, f"{path}[{index}]", meta)}
                for index, item in enumerate(view.items)
            ]
        return node


def _dump_dataset(reader, dataset, depth, lines):
    """Append the dump lines of ``dataset``; return its encoded size in bytes, None if unknown.

    pydicom keeps no item lengths, so an explicit-length item's length is the sum of what it holds.
    """
    indent = "  " * depth
    total = 0
    for tag in sorted(dataset.keys()):
        view = reader.view(dataset, tag)
        label = view.keyword or view.name
        if view.items is None:
            lines.append(_dump_line(f"{indent}{view.tag} {view.vr} {_dump_value(view)}",
                                    _length_text(view.length), view.vm, label))
        else:
            kind = "undefined" if view.length is None else "explicit"
            lines.append(_dump_line(
                f"{indent}{view.tag} SQ (Sequence with {kind} length #={len(view.items)})",
                _length_text(view.length), 1, label))
        if view.warning:
            lines.append(f"{indent}# ^ warning: {view.warning}")
        size = view.length
        if view.items is not None:
            content = _dump_items(reader, view, depth, lines)
            if size is None and content is not None:
                size = content + 8  # the sequence delimitation item
        if total is not None and size is not None:
            total += reader.header_size(view) + size
        else:
            total = None
    return total


def _dump_items(reader, view, depth, lines):
    """Append the items of sequence ``view`` with their delimiters; return their encoded size."""
    indent = "  " * (depth + 1)
    size = 0
    for item in view.items:
        undefined = item.is_undefined_length_sequence_item
        kind = "undefined" if undefined else "explicit"
        at = len(lines)
        lines.append("")
        item_size = _dump_dataset(reader, item, depth + 2, lines)
        length = "u/l" if undefined else _length_text(item_size, unknown="?")
        lines[at] = _dump_line(f"{indent}(FFFE,E000) na (Item with {kind} length #={len(item)})",
                               length, 1, "Item")
        note = "" if undefined else " for re-encoding"
        lines.append(_dump_line(f"{indent}(FFFE,E00D) na (ItemDelimitationItem{note})", "0", 0,
                                "ItemDelimitationItem"))
        if size is not None and item_size is not None:
            size += 8 + item_size + (8 if undefined else 0)
        else:
            size = None
    note = "" if view.length is None else " for re-encoding"
    lines.append(_dump_line(f"{'  ' * depth}(FFFE,E0DD) na (SequenceDelimitationItem{note})", "0",
                            0, "SequenceDelimitationItem"))
    return size


def _dump_line(left, length_text, vm, label):
    return f"{left:<55} # {length_text:>3}, {vm} {label}"


def _length_text(length, unknown="u/l"):
    return unknown if length is None else str(length)


def _dump_value(view):
    if view.summary:
        return view.value
    if view.vm == 0:
        return "(no value available)"
    if view.vr in NUMBER_SIZES:
        return view.value
    return f"[{view.value.translate(_ESCAPES)}]"


def _names(dataset, tag):
    """Return ``(keyword, name, private creator)`` of ``tag`` as it stands in ``dataset``."""
    if not tag.is_private:
        if dictionary_has_tag(tag):
            return dictionary_keyword(tag), dictionary_description(tag), None
        if repeater_has_tag(tag):
            # a keyword such as OverlayData does not say which group: paths use the tag
            return None, dictionary_description(tag), None
        return None, "Group Length" if tag.element == 0 else "Unknown element", None
    if tag.is_private_creator:
        return None, "Private Creator", None
    creator = _private_creator(dataset, tag)
    if creator:
        try:
            return None, private_dictionary_description(tag, creator), creator
        except KeyError:
            pass
    return None, "Private tag data", creator


def _private_creator(dataset, tag):
    creator_tag = Tag(tag.group, tag.element >> 8)
    if creator_tag not in dataset:
        return None
    try:
        value = dataset[creator_tag].value
    except Exception:  # noqa: BLE001 -- an unreadable creator leaves the element anonymous
        return None
    return str(value).strip() or None


def _lookup_vr(dataset, raw):
    """The VR pydicom decodes ``raw`` with, without reading a deferred value."""
    result = {}
    raw_element_vr(raw, result, ds=dataset)
    vr = result["VR"]
    if vr in AMBIGUOUS_VR and raw.value is None:
        # Only implicit VR leaves a VR ambiguous, and there PS3.5 A.1 makes bulk values OW.
        return "OW"
    return vr


def _undecodable_view(tag, as_read, exc):
    """A marker showing the first bytes of a value that cannot be decoded, and why."""
    if isinstance(as_read, RawDataElement):
        vr = as_read.VR or "UN"
        length = None if as_read.length == UNDEFINED_LENGTH else as_read.length
        head = (as_read.value or b"")[:PREVIEW_BYTES]
    else:
        vr, length = as_read.VR, None
        head = as_read.value[:PREVIEW_BYTES] if isinstance(as_read.value, bytes) else b""
    more = " …" if length and length > len(head) else ""
    return ElementView(tag, vr, 0, length, f"<cannot decode as {vr}: {head.hex(' ')}{more}>",
                       truncated=bool(more), summary=True,
                       warning=f"the value cannot be decoded as {vr}: {exc}")


def _binary_view(tag, vr, length, head):
    if not length:
        return ElementView(tag, vr, 0, length, "")
    more = " …" if length > len(head) else ""
    return ElementView(tag, vr, 1, length, f"<{length} bytes: {head.hex(' ')}{more}>",
                       truncated=bool(more), summary=True)


def _value_text(element, max_chars):
    """Return ``(text, truncated)``: values joined with backslashes, cut at ``max_chars``."""
    value = element.value
    if value is None or value == "":
        return "", False
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    parts, size = [], 0
    for index, single in enumerate(values):
        parts.append(_scalar_text(single, element.VR))
        size += len(parts[-1]) + 1
        if max_chars is not None and size > max_chars and index < len(values) - 1:
            return "\\".join(parts)[:max_chars], True
    text = "\\".join(parts)
    if max_chars is not None and len(text) > max_chars:
        return text[:max_chars], True
    return text, False


def _scalar_text(value, vr):
    if vr == "AT":
        return str(Tag(value))
    if type(value) is float:  # FL or FD; DS values keep the text they were written with
        # FL holds a float32: its shortest text is "0.3" where the float64 reads 0.30000001192…
        return _float32_text(value) if vr == "FL" else repr(value)
    if isinstance(value, bytes):
        return value.hex(" ")
    return "" if value is None else str(value)


def _float32_text(value):
    """The shortest text that reads back as the same float32 (numpy's float32 repr, without
    importing numpy: the Tags view must work before numpy has loaded in the page)."""
    if value != value or value in (float("inf"), float("-inf")):
        return repr(value)
    stored = struct.pack("<f", value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.pack("<f", float(text)) == stored:
            return repr(float(text))
    return repr(value)


def _tag_prefix(text):
    for pattern in _TAG_QUERIES:
        match = pattern.fullmatch(text)
        if match:
            return "".join(match.groups())
    return None


def _node_matches(node, text, tag_prefix):
    if tag_prefix is not None:
        tag_hex = (node["tag"][1:5] + node["tag"][6:10]).lower()
        if tag_hex.startswith(tag_prefix):
            return True
    return any(node[field] and text in node[field].lower()
               for field in ("keyword", "name", "private_creator", "value"))

"""The residual scan: where in an output file the identifying values of the job are still found."""

import bisect

from dcmstudio.deid.tags import PIXEL_DATA, PIXEL_DATA_TAGS
from dcmstudio.catalog import as_invalid_dicom
from dcmstudio.elements import ITEM, tag_text, walk

def pixels_in_output(emap, pieces, edit_report):
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
    if cut(pieces, start, start + len(header)) != header:
        return None
    return start + len(header), pixels.end + shift


def cut(pieces, start, end):
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


def scanned_ranges(emap):
    """Byte ranges of a walked file to scan: everything but the pixel data values."""
    ranges, start = [], 0
    for element in emap.root.children:
        if element.tag in PIXEL_DATA_TAGS:
            ranges.append((start, element.value_offset))
            start = element.end
    ranges.append((start, len(emap.data)))
    return ranges


class ElementIndex:
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


def in_private(element):
    while element is not None and element.tag is not None:
        if element.tag != ITEM and element.tag >> 16 & 1:
            return True
        element = element.parent
    return False


def scan(finder, pieces, name, output_name=None, *, pixel_range=None):
    """Hits of ``finder`` (see :meth:`Identifiers.finder`) in an output file and its name (see
    :meth:`dcmstudio.deid.Deidentifier.residual_scan`)."""
    if isinstance(pieces, (bytes, bytearray, memoryview)):
        pieces = [pieces]
    with as_invalid_dicom(name, "while scanning the output"):
        if pixel_range is not None:
            head = cut(pieces, 0, pixel_range[0])
            tail = cut(pieces, pixel_range[1], None)
            if not finder(head, 0, len(head)) and not finder(tail, 0, len(tail)):
                pieces = None  # nothing found: no need to walk the file to name elements
        hits, index = [], None
        if pieces is not None:
            data = bytearray().join(pieces)
            emap = walk(data, output_name or name)
            for start, end in scanned_ranges(emap):
                for offset, kind, found in finder(emap.data, start, end):
                    index = index or ElementIndex(emap)
                    element = index.at(offset)
                    hits.append({"where": "value",
                                 "path": element.path if element else f"offset {offset}",
                                 "tag": tag_text(element.tag) if element else None,
                                 "private": bool(element and in_private(element)),
                                 "kind": kind, "found": found})
        if output_name:
            encoded = output_name.encode("utf-8", "surrogatepass")
            for _, kind, found in finder(encoded, 0, len(encoded)):
                hits.append({"where": "file name", "path": output_name, "tag": None,
                             "private": False, "kind": kind, "found": found})
    return hits

"""The residual scan: where in an output file the identifying values of the job are still found."""

import warnings

from pydicom.charset import decode_bytes
from pydicom.datadict import dictionary_VR

from dcmstudio import values
from dcmstudio.catalog import as_invalid_dicom
from dcmstudio.deid.tags import PIXEL_DATA, PIXEL_DATA_TAGS, SPECIFIC_CHARACTER_SET
from dcmstudio.elements import ITEM, in_force, tag_text, walk

# Values that hold numbers only, never text; opaque values that may hold text of any kind.
NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT", "OF", "OD", "OL", "OV"})
OPAQUE_VRS = frozenset({"UN", "OB", "OW"})
# Delimiters after which ISO 2022 returns to the default character set (PS3.5 6.1.2.5.3).
TEXT_DELIMITERS = {0x5C, 0x5E, 0x3D, 0x0D, 0x0A, 0x09, 0x0C}


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


def in_private(element):
    while element is not None and element.tag is not None:
        if element.tag != ITEM and element.tag >> 16 & 1:
            return True
        element = element.parent
    return False


def scan(identifiers, pieces, name, output_name=None, *, pixel_range=None, plain_charset=False):
    """Where the identifying values learned so far are still found in an output file and its name.

    The preamble, the file meta group and every value at every depth are searched, private,
    UN, OB and UT ones included, pixel data excepted; text is decoded with the character set in
    force where it sits (an ISO 2022 or GB18030 name is found as well as a Latin one); opaque
    bytes are also read as Latin-1 and UTF-8.

    Parameters
    ----------
    identifiers : dcmstudio.deid.identifiers.Identifiers
    pieces : bytes-like or list of bytes-like
        The output file.
    name : str
        The input's name (for messages).
    output_name : str, optional
        The output's file name, searched too.
    pixel_range : (int, int), optional
        Where the pixel data's value lies in the output, when the caller knows.
    plain_charset : bool
        The file's text is ASCII, ISO_IR 100 or ISO_IR 192: a search of the encoded bytes
        outside the pixel data then finds every hit a decoded search would, and the file is
        walked only when it found something (to tell values from element headers).

    Returns
    -------
    list of dict
        ``{"where": "preamble", "value" or "file name", "path", "tag", "private", "kind",
        "found"}`` per hit; ``found`` is the identifying value found (identifying itself).
    """
    if isinstance(pieces, (bytes, bytearray, memoryview)):
        pieces = [pieces]
    hits = []
    with as_invalid_dicom(name, "while scanning the output"):
        candidates = True
        if pixel_range is not None and plain_charset:
            finder = identifiers.finder()
            head = cut(pieces, 0, pixel_range[0])
            tail = cut(pieces, pixel_range[1], None)
            candidates = bool(finder(head, 0, len(head)) or finder(tail, 0, len(tail)))
        if candidates:
            data = bytearray().join(pieces)
            hits = _value_hits(walk(data, output_name or name), identifiers.text_finder())
        if output_name:
            for _, kind, found in identifiers.text_finder()(output_name):
                hits.append({"where": "file name", "path": output_name, "tag": None,
                             "private": False, "kind": kind, "found": found})
    return hits


def _value_hits(emap, find):
    """Hits of ``find`` in the preamble and every value of a walked file but pixel data."""
    data, hits = emap.data, []
    if bytes(data[128:132]) == b"DICM":
        for _, kind, found in find(bytes(data[:128]).decode("latin-1")):
            hits.append({"where": "preamble", "path": "preamble", "tag": None, "private": False,
                         "kind": kind, "found": found})
    charsets = {}

    def own(dataset):
        node = next((c for c in dataset.children or () if c.tag == SPECIFIC_CHARACTER_SET), None)
        if node is None:
            return None
        raw = bytes(data[node.value_offset:node.value_offset + node.length])
        return values.encodings_for(values.split_values(raw.decode("latin-1")))

    for node in emap.elements:
        if node.children is not None or node.tag in (None, ITEM) or not node.length:
            continue
        if node.parent.tag in PIXEL_DATA_TAGS or (node.parent is emap.root and node.tag in PIXEL_DATA_TAGS):
            continue
        vr = _vr_of(node)
        if vr in NUMBER_VRS:
            continue
        raw = bytes(data[node.value_offset:node.value_offset + node.length])
        texts = {raw.decode("latin-1")}
        if vr in values.CHARSET_VRS or vr in OPAQUE_VRS:
            encodings = in_force(node.parent, charsets, own, values.DEFAULT_ENCODINGS)
            texts.add(_decoded(raw, encodings))
        if vr in OPAQUE_VRS:
            texts.add(raw.decode("utf-8", "replace"))
        found_here = set()
        for text in texts:
            for _, kind, found in find(text):
                if found.lower() not in found_here:
                    found_here.add(found.lower())
                    hits.append({"where": "value", "path": node.path, "tag": tag_text(node.tag),
                                 "private": in_private(node), "kind": kind, "found": found})
    return hits


def _vr_of(node):
    if node.vr and not node.encoding.implicit_vr:
        return node.vr
    try:
        return values.resolve_vr(dictionary_VR(node.tag))
    except KeyError:
        return "UN"


def _decoded(raw, encodings):
    """Text of ``raw`` in the character sets in force (escape sequences followed); never fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return decode_bytes(raw, list(encodings), TEXT_DELIMITERS)
        except Exception:  # noqa: BLE001 -- opaque bytes need not be text in any character set
            return raw.decode("latin-1")

"""Walk the encoded bytes of a DICOM file: where every element, item and sequence lies.

The walker reads headers only: values are skipped by their length, never decoded or copied, so
pixel data costs one header read however large it is. It handles explicit VR little endian,
implicit VR little endian, explicit VR big endian and deflated datasets (inflated first), defined-
and undefined-length sequences and items, sequences hidden in UN elements, encapsulated pixel
data, and files with or without a File Meta Information group and preamble.

``dcmstudio.edit`` splices new bytes using the offsets found here; an inspector can show them.
"""

import functools
import struct
import zlib

from pydicom.datadict import DicomDictionary, dictionary_VR, keyword_for_tag

from dcmstudio.bounded import inflation_cap, measure_inflated
from dcmstudio.errors import InvalidDicomError, NotDicomError

ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
# Both deflate the whole dataset after the meta group (PS3.5 A.5 and A.7).
DEFLATED_TRANSFER_SYNTAXES = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95"})

# Explicit VRs whose header has 2 reserved bytes and a 32-bit length (PS3.5 Table 7.1-1).
LONG_LENGTH_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
ALL_VRS = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL",
     "SS", "ST", "TM", "UI", "UL", "US"}
) | LONG_LENGTH_VRS
_VR_NAMES = {vr.encode("ascii"): vr for vr in ALL_VRS}
_VR_BYTES = frozenset(_VR_NAMES)
_LONG_LENGTH_VR_BYTES = frozenset(vr.encode("ascii") for vr in LONG_LENGTH_VRS)
# Encapsulated values: an undefined length on these VRs means fragments, not a sequence.
_FRAGMENT_VRS = frozenset({"OB", "OW", "OB or OW", "US or OW", "US or SS or OW"})

# Real files nest sequences a handful of levels deep; the cap keeps a corrupt file from
# building an unbounded stack.
MAX_SEQUENCE_DEPTH = 64

_DATASET, _ITEMS, _FRAGMENTS = 0, 1, 2


class Encoding:
    """How headers are encoded in one stretch of a file: VR explicit or implicit, byte order.

    Parameters
    ----------
    implicit_vr : bool
        ``True`` when headers carry no VR.
    little_endian : bool
        Byte order of tags, lengths and binary values.
    """

    __slots__ = ("implicit_vr", "little_endian", "tag", "u16", "u32", "short_header",
                 "implicit_header")

    def __init__(self, implicit_vr, little_endian):
        self.implicit_vr = implicit_vr
        self.little_endian = little_endian
        order = "<" if little_endian else ">"
        self.tag = struct.Struct(order + "HH")
        self.u16 = struct.Struct(order + "H")
        self.u32 = struct.Struct(order + "L")
        # explicit VR: group, element, VR, 16-bit length (a 32-bit length follows for
        # LONG_LENGTH_VRS); implicit VR, items and delimiters: group, element, 32-bit length
        self.short_header = struct.Struct(order + "HH2sH")
        self.implicit_header = struct.Struct(order + "HHL")

    def __repr__(self):
        vr = "implicit" if self.implicit_vr else "explicit"
        order = "little" if self.little_endian else "big"
        return f"Encoding({vr} VR {order} endian)"


EXPLICIT_LE = Encoding(False, True)
IMPLICIT_LE = Encoding(True, True)
EXPLICIT_BE = Encoding(False, False)


class Element:
    """One element or item as it lies in the bytes.

    Attributes
    ----------
    tag : int or None
        ``0xggggeeee``; ``ITEM`` for an item (or an encapsulated fragment); ``None`` for the
        root that holds the top-level elements.
    vr : str or None
        The VR written in the file (explicit VR) or taken from the dictionary (implicit VR;
        possibly ambiguous like ``"US or SS"``, ``"UN"`` when unknown). ``None`` for items.
    offset : int or None
        Offset of the header's first byte; ``None`` for an element an edit created.
    value_offset : int
        Offset of the value's first byte (``offset`` plus the header length).
    length : int or None
        The value length written in the header; ``None`` when undefined (0xFFFFFFFF).
    end : int
        Offset just past the element, including a closing delimiter when the length is
        undefined.
    parent : Element or None
        The enclosing item (for elements of an item), sequence (for items) or root.
    children : list of Element or None
        Items of a sequence or of encapsulated pixel data, elements of an item or of the root;
        ``None`` for a plain value.
    encoding : Encoding
        How this element's header and value are encoded.
    """

    __slots__ = ("tag", "vr", "offset", "value_offset", "length", "end", "parent", "children",
                 "encoding")

    def __init__(self, tag, vr, offset, value_offset, length, parent, encoding):
        self.tag = tag
        self.vr = vr
        self.offset = offset
        self.value_offset = value_offset
        self.length = length
        self.end = None
        self.parent = parent
        self.children = None
        self.encoding = encoding

    def __repr__(self):
        return (f"Element({self.path}, vr={self.vr}, offset={self.offset}, "
                f"length={'undefined' if self.length is None else self.length})")

    @property
    def is_item(self):
        return self.tag == ITEM

    @property
    def is_sequence(self):
        """True for a sequence of items (SQ, or a UN/implicit element holding one)."""
        return self.children is not None and self.tag not in (ITEM, None) and not self.is_fragments

    @property
    def is_fragments(self):
        """True for encapsulated data: items that are byte fragments, not datasets."""
        return self.children is not None and self.vr in _FRAGMENT_VRS and self.tag not in (ITEM, None)

    @property
    def header_length(self):
        return self.value_offset - self.offset

    @property
    def depth(self):
        """How many sequences enclose this element (0 at the top level)."""
        depth, node = 0, self.parent
        while node is not None and node.tag is not None:
            depth += node.tag != ITEM
            node = node.parent
        return depth

    @property
    def keyword(self):
        if self.tag in (None, ITEM):
            return ""
        return keyword_for_tag(self.tag)

    @property
    def path(self):
        """Where the element sits, e.g. ``RequestAttributesSequence[0].RequestedProcedureID``."""
        return self._path(tag_name)

    @property
    def tag_path(self):
        """The same by tags only, e.g. ``(0040,0275)[0].(0040,1001)``, as :mod:`dcmstudio.edit`
        reads it: unambiguous where keywords (of repeating groups) are not."""
        return self._path(tag_text)

    def _path(self, name):
        parts, node = [], self
        while node is not None and node.tag is not None:
            if node.tag == ITEM:
                index = next(i for i, sibling in enumerate(node.parent.children) if sibling is node)
                parts.append(f"[{index}]")
            else:
                parts.append("." + name(node.tag))
            node = node.parent
        return "".join(reversed(parts)).lstrip(".")


def tag_text(tag):
    """``0x00100010`` → ``"(0010,0010)"``."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@functools.lru_cache(maxsize=4096)
def tag_name(tag):
    """The keyword of a standard tag, else its ``(gggg,eeee)`` form (private, unknown)."""
    return keyword_for_tag(tag) or tag_text(tag)


def in_force(container, cache, own, default):
    """What an inherited data set attribute (e.g. the character set) is in ``container``.

    Parameters
    ----------
    container : Node or None
        A data set: the top level or an item.
    cache : dict
        Results by container, kept by the caller for as long as the values cannot change.
    own : callable
        ``own(container)``: the container's own value, or None where it has none (then the
        enclosing data set's value holds, as PS3.5 7.5.3 says of (0008,0005) in items).
    default
        The value where no enclosing data set has one.
    """
    if container is None:
        return default
    known = cache.get(container)
    if known is None:
        known = own(container)
        if known is None:
            known = in_force(container.parent, cache, own, default)
        cache[container] = known
    return known


class ElementMap:
    """The layout of one file, as returned by :func:`walk`.

    Attributes
    ----------
    name : str
        The file's name, used in error messages.
    data : bytes or memoryview
        The bytes every offset refers to. For a deflated file: the file's bytes up to the
        dataset, followed by the inflated dataset.
    transfer_syntax : str or None
        (0002,0010) *Transfer Syntax UID*, ``None`` when the file has no meta group or omits it.
    encoding : Encoding
        The dataset's encoding (detected from its first element when the transfer syntax is
        absent or disagrees with the bytes).
    deflated : bool
        The dataset was stored deflated; ``data`` holds it inflated.
    preamble_length : int
        128 with a preamble, otherwise 0.
    meta_offset : int or None
        Offset of the File Meta Information group, ``None`` without one.
    dataset_offset : int
        Offset of the dataset's first element (just past the meta group).
    root : Element
        Holds the top-level elements (meta group first) as ``root.children``.
    elements : list of Element
        Every element and item in file order, at every depth (of a sparse walk: those listed).
    walk_end : int
        Where the walk stopped; equal to ``len(data)`` when ``complete``.
    complete : bool
        ``False`` when :func:`walk` was asked to stop early; the bytes from ``walk_end`` on were
        not examined.
    sparse : bool
        ``True`` when :func:`walk` was asked to list only some top-level elements (``keep``):
        ``root.children`` then has gaps between elements.
    skipped : list of (int, int) or None
        The ``[start, end)`` value ranges of the elements a sparse walk left out, when
        :func:`walk` was asked to record them.
    """

    def __init__(self, name, data):
        self.name = name
        self.data = data
        self.transfer_syntax = None
        self.encoding = EXPLICIT_LE
        self.deflated = False
        self.preamble_length = 0
        self.meta_offset = None
        self.dataset_offset = 0
        self.root = Element(None, None, 0, 0, None, None, EXPLICIT_LE)
        self.root.children = []
        self.elements = []
        self.walk_end = 0
        self.complete = False
        self.sparse = False
        self.skipped = None

    def __iter__(self):
        return iter(self.elements)

    def __len__(self):
        return len(self.elements)

    def top_level(self, tag):
        """The top-level element with ``tag``, or ``None``."""
        for element in self.root.children:
            if element.tag == tag:
                return element
        return None

    def value_bytes(self, element):
        """The encoded value of a plain element (a memoryview, not a copy)."""
        return memoryview(self.data)[element.value_offset:element.value_offset + element.length]


class KeepOnly:
    """Which top-level elements a sparse :func:`walk` lists; the others are skipped by length.

    An editor that knows which elements its edits reach needs no node for the rest: skipping
    them costs one header read each. The meta group, group lengths and sequences are always
    listed.

    Parameters
    ----------
    tags : iterable of int
        Elements to list.
    groups : iterable of int
        Groups whose every element is listed (private groups addressed by creator).
    successors_of : iterable of int
        For each tag, the first element after it is listed: where a new element with that tag
        would be inserted.
    """

    def __init__(self, tags=(), groups=(), successors_of=()):
        self.tags = frozenset(tags)
        self.groups = frozenset(groups)
        self.successors_of = sorted(set(successors_of))


def walk(data, name, *, stop_after=None, keep=None, record_skipped=False):
    """Find every element of an encoded DICOM file, without decoding any value.

    Parameters
    ----------
    data : bytes or bytearray or memoryview
        The whole file.
    name : str
        The file's name, for error messages.
    stop_after : int, optional
        Stop before the first top-level element whose tag is greater than this one; the rest
        of the file is neither checked nor listed (``ElementMap.complete`` is then ``False``).
    keep : KeepOnly, optional
        List only these top-level elements (``ElementMap.sparse`` is then ``True``); the
        others are still read and checked, but get no :class:`Element`.
    record_skipped : bool
        Note the value ranges of the elements ``keep`` left out in ``ElementMap.skipped``
        (what an editor never reads, see :mod:`dcmstudio.replay`).

    Returns
    -------
    ElementMap

    Raises
    ------
    NotDicomError
        No DICM prefix and no plausible dataset at the start.
    InvalidDicomError
        A length runs past its container or the file, a delimiter is missing, a VR is not one
        DICOM defines, the deflated stream is corrupt, ...
    """
    try:
        return _Walker(data, name, stop_after, keep, record_skipped).run()
    except (NotDicomError, InvalidDicomError):
        raise
    except (struct.error, IndexError, ValueError, OverflowError, TypeError, zlib.error,
            MemoryError, UnicodeDecodeError) as exc:
        raise InvalidDicomError(f"the file's encoding could not be read ({exc}).", file=name)


def _sniff_encoding(mv, pos):
    """Guess a dataset's encoding from its first element's bytes (no transfer syntax to go by)."""
    explicit = bytes(mv[pos + 4:pos + 6]) in _VR_BYTES
    group_le = mv[pos] | mv[pos + 1] << 8
    group_be = mv[pos] << 8 | mv[pos + 1]
    if group_be < group_le:
        return EXPLICIT_BE if explicit else Encoding(True, False)
    return EXPLICIT_LE if explicit else IMPLICIT_LE


def _implicit_vr(tag):
    """The dictionary VR of ``tag``; ``"UN"`` when the dictionary cannot say."""
    entry = DicomDictionary.get(tag)
    if entry is not None:
        return entry[0]
    element = tag & 0xFFFF
    if element == 0:
        return "UL"
    if tag >> 16 & 1:
        return "LO" if 0x10 <= element <= 0xFF else "UN"
    try:
        return dictionary_VR(tag)  # repeating groups such as (60xx,3000)
    except KeyError:
        return "UN"


def _frame_state(frame):
    """A walk frame's fields plus what the loop derives from its encoding."""
    kind, container, end, bound, encoding = frame
    implicit = encoding.implicit_vr
    header = encoding.implicit_header if implicit else encoding.short_header
    return kind, container, end, bound, encoding, implicit, header, container.children


class _Walker:
    def __init__(self, data, name, stop_after, keep, record_skipped=False):
        self.name = name
        self.map = ElementMap(name, data)
        self.map.skipped = [] if record_skipped else None
        self.stop_after = 0xFFFFFFFF if stop_after is None else stop_after
        self.keep = None
        self.keep_param = keep

    def fail(self, message):
        raise InvalidDicomError(message, file=self.name)

    def run(self):
        emap = self.map
        data = emap.data
        n = len(data)
        mv = memoryview(data)
        if n >= 132 and mv[128:132] == b"DICM":
            emap.preamble_length, pos = 128, 132
        elif n >= 4 and mv[:4] == b"DICM":
            pos = 4
        else:
            pos = 0
        if n - pos < 8:
            raise NotDicomError("the file is too short to hold a DICOM dataset.", file=self.name)
        if mv[pos] == 2 and mv[pos + 1] == 0:
            emap.meta_offset = pos
            meta_encoding = EXPLICIT_LE if bytes(mv[pos + 4:pos + 6]) in _VR_BYTES else IMPLICIT_LE
            pos = self.walk_level(mv, pos, meta_encoding, 0x00020000, 0x0002FFFF)
            emap.transfer_syntax = self.transfer_syntax()
        elif pos == 0 and not self.plausible_start(mv):
            raise NotDicomError(
                "the file is not DICOM: it has no DICM prefix and does not start with a DICOM "
                "element.", file=self.name)
        emap.dataset_offset = pos
        ts = emap.transfer_syntax
        if ts in DEFLATED_TRANSFER_SYNTAXES and pos < n:
            emap.deflated = True
            emap.data = data = bytes(mv[:pos]) + self.inflate(mv[pos:])
            mv = memoryview(data)
            n = len(data)
        emap.encoding = self.dataset_encoding(mv, pos, ts)
        self.keep = self.keep_param  # the meta group is always listed whole
        emap.sparse = self.keep is not None
        if pos < n:
            pos = self.walk_level(mv, pos, emap.encoding, 0, self.stop_after)
        emap.walk_end = pos
        emap.complete = pos == n
        return emap

    def plausible_start(self, mv):
        group_le = mv[0] | mv[1] << 8
        group_be = mv[0] << 8 | mv[1]
        return min(group_le, group_be) in range(0x0002, 0x0011) and not min(group_le, group_be) & 1

    def transfer_syntax(self):
        element = self.map.top_level(0x00020010)
        if element is None or element.length is None:
            return None
        raw = bytes(self.map.value_bytes(element))
        return raw.decode("ascii", "replace").rstrip("\x00 ").strip() or None

    def inflate(self, compressed):
        # Measured first, a piece at a time, then inflated once at its size: a bomb costs no
        # memory, and a real file no more than its inflated size.
        size, ended = measure_inflated(compressed, self.name, inflation_cap(len(compressed)))
        if not ended:
            self.fail("the deflated dataset is cut short: its stream has no end.")
        try:
            return zlib.decompress(compressed, -zlib.MAX_WBITS, max(size, 1))
        except zlib.error as exc:
            self.fail(f"the deflated dataset cannot be inflated ({exc}).")

    def dataset_encoding(self, mv, pos, ts):
        if len(mv) - pos < 8:
            return IMPLICIT_LE if ts == IMPLICIT_VR_LITTLE_ENDIAN else EXPLICIT_LE
        sniffed = _sniff_encoding(mv, pos)
        if ts is None:
            return sniffed
        declared = {IMPLICIT_VR_LITTLE_ENDIAN: IMPLICIT_LE,
                    EXPLICIT_VR_BIG_ENDIAN: EXPLICIT_BE}.get(ts, EXPLICIT_LE)
        # Trust the bytes over the label when they disagree on VR (as pydicom and dcmtk do).
        if sniffed.implicit_vr != declared.implicit_vr:
            return Encoding(sniffed.implicit_vr, declared.little_endian)
        return declared

    def walk_level(self, mv, pos, encoding, top_min, top_max):
        """Walk top-level elements from ``pos`` until the data ends or a tag leaves ``top_min..top_max``.

        The walk is iterative, one frame per open sequence or item, so depth costs no recursion.
        The common element costs one ``struct`` unpack and one ``Element``.
        """
        n = len(mv)
        elements = self.map.elements
        root = self.map.root
        # frame: (kind, container, end or None for undefined length, bound, encoding)
        stack = [(_DATASET, root, n, n, encoding)]
        kind, parent, end, bound, enc, implicit, header, siblings = _frame_state(stack[0])
        keep = self.keep
        skipped = self.map.skipped
        if keep is not None:
            keep_tags, keep_groups = keep.tags, keep.groups
            successors = iter(keep.successors_of)
            threshold = next(successors, 0x100000000)
        while True:
            if end is not None and pos >= end:
                if pos != end:
                    self.fail(f"{self.describe(parent)} overruns its length.")
                if len(stack) == 1:
                    return pos
                parent.end = pos
                stack.pop()
                kind, parent, end, bound, enc, implicit, header, siblings = _frame_state(stack[-1])
                continue
            if pos + 8 > n:
                if end is None:
                    self.fail(f"{self.describe(parent)} has no closing delimiter: the file ends first.")
                self.fail(f"the file ends inside an element header at offset {pos}.")
            if kind == _DATASET:
                if keep is not None and parent is root:
                    pos = self.skip_unlisted(mv, pos, enc, top_max, keep_tags, keep_groups,
                                             threshold, skipped)
                    if pos + 8 > n:
                        continue
                if implicit:
                    group, number, length = header.unpack_from(mv, pos)
                else:
                    group, number, vr_bytes, length = header.unpack_from(mv, pos)
                tag = group << 16 | number
                if group == 0xFFFE:
                    if tag != ITEM_DELIMITER or end is not None:
                        self.fail(f"unexpected {tag_text(tag)} delimiter at offset {pos}.")
                    parent.end = pos = pos + 8
                    stack.pop()
                    kind, parent, end, bound, enc, implicit, header, siblings = \
                        _frame_state(stack[-1])
                    continue
                if parent is root and not top_min <= tag <= top_max:
                    return pos
                if implicit:
                    vr = _implicit_vr(tag)
                    value_offset = pos + 8
                else:
                    vr = _VR_NAMES.get(vr_bytes)
                    if vr is None:
                        self.fail(f"element {tag_text(tag)} at offset {pos} has an invalid VR "
                                  f"{vr_bytes!r}.")
                    if vr in LONG_LENGTH_VRS:
                        if pos + 12 > n:
                            self.fail(f"the file ends inside the header of {tag_text(tag)}.")
                        length = enc.u32.unpack_from(mv, pos + 8)[0]
                        value_offset = pos + 12
                    else:
                        value_offset = pos + 8
                if keep is not None and parent is root:
                    if tag <= threshold and tag not in keep_tags and tag & 0xFFFF and \
                            tag >> 16 not in keep_groups and length != UNDEFINED_LENGTH and \
                            vr != "SQ":
                        if value_offset + length > bound:
                            self.fail(f"element {tag_text(tag)} at offset {pos:,} (length {length:,}) "
                                      "runs past the end of the file.")
                        pos = value_offset + length
                        if skipped is not None:
                            skipped.append((value_offset, pos))
                        continue
                    while threshold < tag:  # listed: where new elements up to here would go
                        threshold = next(successors, 0x100000000)
                element = Element(tag, vr, pos, value_offset, length, parent, enc)
                elements.append(element)
                siblings.append(element)
                if length == UNDEFINED_LENGTH or vr == "SQ":
                    if len(stack) > 2 * MAX_SEQUENCE_DEPTH:
                        self.fail(f"sequences are nested more than {MAX_SEQUENCE_DEPTH} deep.")
                    element.children = []
                    if length == UNDEFINED_LENGTH:
                        element.length = child_end = None
                        child_bound = bound
                    else:
                        child_end = child_bound = value_offset + length
                        if child_end > bound:
                            self.fail(f"{self.describe(element)} runs past the end of "
                                      f"{'the file' if bound == n else self.describe(parent)}.")
                    if child_end is None and vr in _FRAGMENT_VRS:
                        child_kind = _FRAGMENTS
                    else:
                        child_kind = _ITEMS
                    if vr == "UN" and not implicit:
                        enc = IMPLICIT_LE  # PS3.5 6.2.2: a sequence in UN is implicit VR LE
                    stack.append((child_kind, element, child_end, child_bound, enc))
                    kind, parent, end, bound, enc, implicit, header, siblings = \
                        _frame_state(stack[-1])
                    pos = value_offset
                    continue
                pos = value_offset + length
                if pos > bound:
                    self.fail(f"{self.describe(element)} (length {length:,}) runs past the end of "
                              f"{'the file' if bound == n else self.describe(parent)}.")
                element.end = pos
                continue
            # inside a sequence or encapsulated data: items until the delimiter or the length
            group, number, length = enc.implicit_header.unpack_from(mv, pos)
            tag = group << 16 | number
            if tag == SEQUENCE_DELIMITER and end is None:
                parent.end = pos = pos + 8
                stack.pop()
                kind, parent, end, bound, enc, implicit, header, siblings = _frame_state(stack[-1])
                continue
            if tag != ITEM:
                self.fail(f"{self.describe(parent)} holds {tag_text(tag)} at offset {pos} where an "
                          f"item was expected.")
            item = Element(ITEM, None, pos, pos + 8, length, parent, enc)
            elements.append(item)
            siblings.append(item)
            if kind == _FRAGMENTS:
                if length == UNDEFINED_LENGTH:
                    self.fail(f"a fragment of {self.describe(parent)} has an undefined length.")
                pos += 8 + length
                if pos > bound:
                    self.fail(f"a fragment of {self.describe(parent)} runs past its end.")
                item.end = pos
                continue
            item.children = []
            if length == UNDEFINED_LENGTH:
                item.length = child_end = None
                child_bound = bound
            else:
                child_end = child_bound = pos + 8 + length
                if child_end > bound:
                    self.fail(f"an item of {self.describe(parent)} runs past the end of "
                              f"{'the file' if bound == n else 'its sequence'}.")
            stack.append((_DATASET, item, child_end, child_bound, enc))
            kind, parent, end, bound, enc, implicit, header, siblings = _frame_state(stack[-1])
            pos += 8

    def skip_unlisted(self, mv, pos, enc, top_max, keep_tags, keep_groups, threshold, skipped):
        """Skip top-level leaves a sparse walk does not list; return where the next one starts.

        A tight loop for the common case; anything unusual (a listed tag, a sequence, an
        undefined length, a bad VR, a length past the end) is left to the main loop. Value
        ranges go to ``skipped`` unless it is ``None``.
        """
        n = len(mv)
        stop = min(top_max, threshold)
        if enc.implicit_vr:
            unpack = enc.implicit_header.unpack_from
            while pos + 8 <= n:
                group, number, length = unpack(mv, pos)
                tag = group << 16 | number
                if tag > stop or tag in keep_tags or group in keep_groups or not number or \
                        length == UNDEFINED_LENGTH or group == 0xFFFE or _implicit_vr(tag) == "SQ":
                    return pos
                if pos + 8 + length > n:
                    return pos
                if skipped is not None:
                    skipped.append((pos + 8, pos + 8 + length))
                pos += 8 + length
            return pos
        unpack = enc.short_header.unpack_from
        long_length = enc.u32.unpack_from
        while pos + 8 <= n:
            group, number, vr, length = unpack(mv, pos)
            tag = group << 16 | number
            if tag > stop or tag in keep_tags or group in keep_groups or not number or \
                    vr == b"SQ" or group == 0xFFFE:
                return pos
            if vr in _LONG_LENGTH_VR_BYTES:
                if pos + 12 > n:
                    return pos
                length = long_length(mv, pos + 8)[0]
                end = pos + 12 + length
            elif vr in _VR_BYTES:
                end = pos + 8 + length
            else:
                return pos
            if length == UNDEFINED_LENGTH or end > n:
                return pos
            if skipped is not None:
                skipped.append((end - length, end))
            pos = end
        return pos

    def describe(self, element):
        if element.tag is None:
            return "the dataset"
        if element.tag == ITEM:
            return f"an item of {self.describe(element.parent)}"
        where = "" if element.offset is None else f" at offset {element.offset:,}"
        return f"element {tag_text(element.tag)} {keyword_for_tag(element.tag)}".rstrip() + where

"""Files of one series share a layout: what de-identifying one gave is replayed for the next.

The files of a series nearly always hold the same elements, in the same order, with the same
lengths; their values differ where the instances differ (SOP Instance UID, Instance Number,
Image Position, acquisition times...). De-identifying each of them from scratch (walk, plan,
edit, re-read, validate) does the same work to the same end, but for the values that follow the
file's own: its new UIDs. A :class:`Layout` keeps what de-identifying one file gave, reduced to

- its header up to the pixel data's value, as one integer masked to the bytes that decided
  something: every element and item header, every value the plan read (identifying values, the
  character set, the SOP Class, private creators...) or the editor reads (transfer syntax, group
  lengths, private creators). Free are the values of elements kept as they are without being
  read, of elements removed or replaced by a fixed value, the UIDs replaced by keyed ones, and
  the preamble (zeroed in every output);
- its output as segments: stretches of the input, new bytes, and the UIDs that follow the
  file's own.

A file whose masked header equals a layout's, of the same size, with the same elements after
its pixel data (if any: they are compared whole),
whose replaced values differ from their fixed replacements, and whose new UIDs have the lengths
the layout's had, gets that output with its own input stretches and new UIDs: the bytes, report
and mapping de-identifying it in full gives (a test holds them equal), so which files a process
replays never changes a result.

Lengths may differ where nothing else depends on them: the values of top-level elements kept as
they are without being read (a series' Instance Number, Image Position, Slice Location take more
or fewer characters from one instance to the next), in groups without a group length, and the new
UIDs of top-level elements (keyed UIDs are one or two digits shorter now and then) in such groups
or in the file meta group, whose group length is then set as the editor sets it. The output's
bytes from there on move by the difference, as a full run's do. Anything else is de-identified in full, and may become a layout.
A layout replayed on its own file must give what the full run gave, byte for byte, or it is
not kept: the editor's self-check (:func:`dcmstudio.edit.verify_unchanged`) that file passed then
holds for every file it fits. Replayed outputs pass the residual scan like any other. A layout
is used only after the file it came from passed the re-read and the validation with no new
error: those hold for a replayed output too, whose header is that file's but for values of the
same lengths copied from its input, or keyed UIDs.
"""

import bisect
import itertools
import struct

from dcmstudio import uids
from dcmstudio.deid import residual
from dcmstudio.deid.plan import decoded_texts, learn_values
from dcmstudio.deid.tags import PIXEL_DATA, PIXEL_REPRESENTATION, SPECIFIC_CHARACTER_SET
from dcmstudio.elements import ITEM

TRANSFER_SYNTAX_UID = 0x00020010
# Encapsulated pixel data (always little endian): items, then the sequence delimiter; a tag read
# as one little-endian 32-bit number has its group in the low half.
_ITEM_HEADER = struct.Struct("<II")
FRAGMENT_ITEM, SEQUENCE_DELIMITER = 0xE000FFFE, 0xE0DDFFFE
PREAMBLE = 128
# Layouts kept per job: a series has a few (its UIDs' lengths differ with the instance number).
KEPT = 8
# Elements after the pixel data (Data Set Trailing Padding) are compared whole, up to this size.
TRAILER = 4096
# Decoded values a learned layout remembers (a series' instance UIDs are new in every file).
LEARNED_TEXTS_KEPT = 4096
# Where a walk stopped, it had read the next element's header: 8 bytes at most.
_NEXT_HEADER = 8
_INPUT, _NEW, _UID = 0, 1, 2
# Values whose length may differ from one file of a series to the next (text; numbers in binary
# VRs have the length of their count).
VARIABLE_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
                          "UR", "UT"})


def _read_by_editor(tag):
    """Values the editor or the walker reads whatever the edits: group lengths, the transfer
    syntax, the character set, private creators."""
    element = tag & 0xFFFF
    return not element or tag in (TRANSFER_SYNTAX_UID, SPECIFIC_CHARACTER_SET) or \
        (tag >> 16 & 1 and 0x10 <= element <= 0xFF)


def _uid_text(raw):
    return bytes(raw).decode("ascii", "replace").rstrip("\x00 ")


def _encoded_uid(uid):
    raw = uid.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


class Layout:
    """One de-identified file reduced to what a file of the same layout needs (see the module).

    Build one with :meth:`of`; :meth:`replay` applies it.
    """

    __slots__ = ("size", "pixels_at", "encapsulated", "trailer", "mask", "key", "runs", "variables", "unmoved",
                 "variants", "differs", "slots", "slot_shifts", "slot_lengths", "meta_length", "same_uids",
                 "segments", "dicm", "report", "patient_key", "other_ids", "pixel_range")

    @classmethod
    def of(cls, plan, emap, pieces, changes, pixel_range):
        """The layout of a file de-identified in full, or ``None`` when it cannot be replayed
        (deflated, pixel data that is not the last element or not of defined length, a change
        in or after the pixel data, a UID element with several values replaced...)."""
        data = emap.data
        pixels = emap.top_level(PIXEL_DATA)
        if emap.deflated or plan.masks or pixel_range is None or pixels is None or \
                (pixels.length is None and not pixels.is_fragments) or len(data) - pixels.end > TRAILER:
            return None
        start = pixels.value_offset
        ordered = sorted(changes, key=lambda change: tuple(change["input_range"]))
        if any(change["input_range"][1] > pixels.offset and change["input_range"][0] < pixels.end
               for change in ordered):
            return None
        ordered = [change for change in ordered if change["input_range"][1] <= pixels.offset]
        out_start = start + sum((d - c) - (b - a) for (a, b), (c, d) in
                                ((change["input_range"], change["byte_range"]) for change in ordered))
        if tuple(pixel_range) != (out_start, out_start + pixels.end - start):
            return None
        head = residual.cut(pieces, 0, out_start)
        by_range = {tuple(change["input_range"]): change for change in ordered if change["op"] == "set"}
        slot_of, slots = {}, []
        for node, only_instances in plan.uid_slots:
            change = by_range.get((node.offset, node.end))
            if change is None or node in slot_of:
                return None
            old = _uid_text(data[node.value_offset:node.value_offset + node.length])
            encoded = _encoded_uid(plan.job.new_uid(old))
            header = node.value_offset - node.offset
            begin, end = change["byte_range"]
            if head[begin + header:end] != encoded:
                return None  # the editor wrote another value (kept equal to another UID)
            slot_of[node] = len(slots)
            slots.append((node.value_offset, node.value_offset + node.length, node.tag, only_instances,
                          head[begin:begin + header], len(encoded), old))
        grouped = {node.tag >> 16 for node in emap.root.children if node.tag is not None and not node.tag & 0xFFFF}
        layout = cls()
        layout.size = len(data)
        layout.pixels_at = start
        layout.encapsulated = pixels.length is None
        # after the pixel data: the same input, the same output
        layout.trailer = (pixels.end, bytes(data[pixels.end:]),
                          residual.cut(pieces, out_start + pixels.end - start, None))
        layout.dicm = bytes(data[PREAMBLE:PREAMBLE + 4]) == b"DICM"
        layout.segments, position = [], 0
        for change in ordered:
            (a, b), (c, d) = change["input_range"], change["byte_range"]
            if a > position:
                layout.segments.append((_INPUT, position, a))
            slot = next((index for node, index in slot_of.items() if (node.offset, node.end) == (a, b)), None)
            layout.segments.append((_UID, slot) if slot is not None else (_NEW, bytes(head[c:d])))
            position = b
        layout.segments.append((_INPUT, position, start))
        layout.slots = [slot[:6] for slot in slots]
        olds = [slot[6] for slot in slots]
        layout.same_uids = [olds.index(old) for old in olds]
        # a new UID of another length: the file meta's group length follows it (0002,0000 is read,
        # so the same in every file of the layout); elsewhere, only where no group length does
        layout.slot_lengths = [_length_field(node) if node.parent is emap.root and
                               (node.tag >> 16 == 2 or node.tag >> 16 not in grouped) else None for node in slot_of]
        layout.meta_length = None
        meta_length = emap.top_level(0x00020000)
        if meta_length is not None and meta_length.length == 4 and any(
                field is not None and slot[2] >> 16 == 2 for field, slot in zip(layout.slot_lengths, slots)):
            value = meta_length.value_offset
            out = value + sum((d - c) - (b - a) for (a, b), (c, d) in
                              ((change["input_range"], change["byte_range"]) for change in ordered) if b <= value)
            layout.meta_length = (out, int.from_bytes(head[out:out + 4], "little"),
                                  int.from_bytes(data[value:value + 4], "little"))
        elif any(field is not None and slot[2] >> 16 == 2 for field, slot in zip(layout.slot_lengths, slots)):
            layout.slot_lengths = [field if slot[2] >> 16 != 2 else None
                                   for field, slot in zip(layout.slot_lengths, slots)]
        layout.mask, layout.key, layout.runs, layout.variables, differs = _mask(plan, emap, ordered, slot_of, start,
                                                                                head, grouped)
        layout.unmoved = [0] * (len(layout.variables) + 1)
        layout.variants = []
        # each place in the layout's file with the index of the shift that moves it in a file of
        # the layout: how many values of other lengths may come before it
        ends = [end for _, _, end, _ in layout.variables]
        before = lambda position: bisect.bisect_right(ends, position)  # noqa: E731
        layout.segments = [(_INPUT, segment[1], segment[2], before(segment[1]), before(segment[2]))
                           if segment[0] == _INPUT else segment for segment in layout.segments]
        layout.differs = [(start, end, new, before(start)) for start, end, new in differs]
        layout.slot_shifts = [before(slot[0]) for slot in slots]
        layout.patient_key = plan.patient_key
        layout.other_ids = list(plan.other_ids)
        layout.pixel_range = tuple(pixel_range)
        counts = {}
        for element in plan.elements:
            counts[element["action"]] = counts.get(element["action"], 0) + 1
        layout.report = {"actions": counts, "elements": plan.elements, "changes": len(changes),
                         "burned_in": plan.burned_in, "notes": list(plan.notes),
                         "pixel_range": layout.pixel_range, "plain_charset": plan.plain_charset}
        # Replayed on its own file, a layout must give exactly what the full run gave: the
        # editor's self-check then holds for every file it is replayed on (whose bytes outside
        # the changes are copied from the same offsets, and whose new UIDs fill the same places).
        again = layout.replay(plan.job, data, plan.name, None)
        if again is None:
            return None
        # Byte for byte outside the pixel data's value, which both take from the same input bytes
        # (the replay by construction, the full run as the editor's self-check vouched): its
        # pixel data is not compared, nor joined (a large file would be held twice more).
        out_end = out_start + pixels.end - start
        if sum(len(piece) for piece in again[0]) != sum(len(piece) for piece in pieces) or \
                residual.cut(again[0], 0, out_start) != head or \
                residual.cut(again[0], out_end, None) != residual.cut(pieces, out_end, None):
            return None
        return layout

    def replay(self, job, data, name, identifiers, known=None, min_unread=0):
        """De-identify ``data`` as the file this layout came from was, or return ``None`` if it
        does not have its layout.

        With ``known``, only ``data[:known]`` was read (the rest stands in for the file's other
        bytes): the file must have the layout's header within them, then its pixel data (of
        defined length, at least ``min_unread`` bytes) and nothing after it, which a replay never
        reads.

        Returns
        -------
        (pieces, origins, report_fields, patient) or None
            ``report_fields`` holds the report's fields that do not depend on the file's name.
            The UIDs replaced are added to ``identifiers`` (unless ``None``).
        """
        view = memoryview(data)
        if len(data) == self.size and int.from_bytes(view[:self.pixels_at], "little") & self.mask == self.key:
            shifts = self.unmoved  # every length the layout's (most files of a series)
        else:
            shifts = self._variant(view)
            if shifts is None:
                return None
        moved = shifts[-1]  # how much longer than the layout's file this one is, before its pixel data
        if known is not None and (self.encapsulated or self.trailer[1] or self.pixels_at + moved > known
                                  or len(data) - self.pixels_at - moved < min_unread):
            return None  # it would need bytes not read
        if view[self.trailer[0] + moved:] != self.trailer[1]:
            return None
        if self.encapsulated and _fragments_end(view, self.pixels_at + moved) != self.trailer[0] + moved:
            return None  # its fragments end elsewhere: what follows them is not the layout's
        if any(view[start + shifts[index]:end + shifts[index]] == new for start, end, new, index in self.differs):
            return None  # set to the value it already has: no change, unlike in the layout's file
        olds = []
        for (start, end, tag, only_instances, _, _), index in zip(self.slots, self.slot_shifts):
            old = _uid_text(view[start + shifts[index]:end + shifts[index]])
            if not old or old.startswith(uids.DICOM_ROOT) or \
                    (only_instances and not uids.is_remappable(tag, old)):
                return None
            olds.append(old)
        if [olds.index(old) for old in olds] != self.same_uids:
            return None
        news = [_encoded_uid(job.new_uid(old)) for old in olds]
        longer = [len(new) - slot[5] for new, slot in zip(news, self.slots)]
        if any(more and field is None for more, field in zip(longer, self.slot_lengths)):
            return None  # a new UID of another length would move what depends on its place
        out = bytearray()
        for segment in self.segments:
            if segment[0] == _INPUT:
                out += view[segment[1] + shifts[segment[3]]:segment[2] + shifts[segment[4]]]
            elif segment[0] == _NEW:
                out += segment[1]
            else:
                header = self.slots[segment[1]][4]
                if longer[segment[1]]:
                    at, field = self.slot_lengths[segment[1]]
                    header = header[:at] + field.pack(len(news[segment[1]])) + header[at + field.size:]
                out += header
                out += news[segment[1]]
        if self.dicm:
            out[:PREAMBLE] = bytes(PREAMBLE)
        report = self.report
        meta_longer = sum(more for more, slot in zip(longer, self.slots) if slot[2] >> 16 == 2)
        if meta_longer:
            at, written, original = self.meta_length
            out[at:at + 4] = (written + meta_longer).to_bytes(4, "little")
            # the editor lists a group length it changed among the changes
            report = {**report, "changes": report["changes"] - (written != original)
                      + (written + meta_longer != original)}
        if moved or any(longer):
            after = moved + sum(longer)
            report = {**report, "pixel_range": (self.pixel_range[0] + after, self.pixel_range[1] + after)}
        pixels_at = self.pixels_at + moved
        pieces, origins = [bytes(out), view[pixels_at:self.trailer[0] + moved]], [None, pixels_at]
        if self.trailer[2]:
            pieces.append(self.trailer[2])
            origins.append(None)
        for old, slot in zip(olds, self.slots):
            if identifiers is not None and uids.is_remappable(slot[2], old):
                identifiers.instance_uids.add(old)
        patient = job.patient(*self.patient_key)
        for original in self.other_ids:
            job.pseudonym_for_id(original)
        return pieces, origins, report, patient

    def _variant(self, view):
        """:meth:`_shifts` of ``view``, by a variant of the layout met before (lengths of files
        of a series come in a few combinations: each has its own mask of the header, compared at
        once) or else by :meth:`_shifts`, the combination then remembered as a variant."""
        size = len(view)
        for index, (length, shifts, mask, key) in enumerate(self.variants):
            if length == size and int.from_bytes(view[:self.pixels_at + shifts[-1]], "little") & mask == key:
                self.variants.insert(0, self.variants.pop(index))
                return shifts
        shifts = self._shifts(view)
        if shifts is not None:
            # the runs where this file has them, and between them the variable values' lengths
            mask = bytearray(self.pixels_at + shifts[-1])
            for (start, stop, run_mask, _), shift in zip(self.runs, shifts):
                mask[start + shift:stop + shift] = run_mask.to_bytes(stop - start, "little")
            for (at, field, _, _), shift in zip(self.variables, shifts):
                mask[at + shift:at + shift + field.size] = b"\xff" * field.size
            end, mask = len(mask), int.from_bytes(mask, "little")
            self.variants.insert(0, (size, shifts, mask, int.from_bytes(view[:end], "little") & mask))
            del self.variants[KEPT:]
        return shifts

    def _shifts(self, view):
        """Whether ``view`` has this layout's header, but for the lengths of its variable values:
        then, per variable value, how much longer than the layout's the file is before its end
        (the first 0, the last the whole difference before the pixel data); else ``None``."""
        shifts = [0]
        moved = 0
        for (start, stop, mask, key), variable in itertools.zip_longest(self.runs, self.variables):
            if int.from_bytes(view[start + moved:stop + moved], "little") & mask != key:
                return None
            if variable is None:
                break
            at, field, end, length = variable
            if at + moved + field.size > len(view):
                return None
            moved += field.unpack_from(view, at + moved)[0] - length
            shifts.append(moved)
        if len(view) != self.size + moved:
            return None
        return shifts


def _fragments_end(view, position):
    """Where encapsulated pixel data whose first item starts at ``position`` ends (after its
    Sequence Delimitation Item), walking the item headers only; ``None`` if it does not."""
    size = len(view)
    while position + 8 <= size:
        tag, length = _ITEM_HEADER.unpack_from(view, position)
        if tag == SEQUENCE_DELIMITER:
            return position + 8
        if tag != FRAGMENT_ITEM or length == 0xFFFFFFFF:
            return None
        position += 8 + length
    return None


def _length_field(node):
    """Where an element's length is in its header, and how it is written: ``(offset from the
    element's start, struct)`` (the length ends the header)."""
    encoding = node.encoding
    field = encoding.u32 if encoding.implicit_vr or node.value_offset - node.offset == 12 else encoding.u16
    return node.value_offset - node.offset - field.size, field


def _mask(plan, emap, ordered, slot_of, end, head, grouped):
    """The header bytes a file must share with the layout's: as ``mask`` and ``key`` integers
    for a file whose lengths are all the layout's, and as ``(start, stop, mask, key)`` runs
    between its variable values (text values of top-level elements kept as they are, never read,
    in groups without a group length: ``(length field's offset, its struct, value's end,
    length)``), which may be longer or shorter in a file of the layout; and the ``(start, end,
    new value)`` of values replaced by fixed ones (they must differ again)."""
    data = emap.data
    covering = [(change["input_range"], change) for change in ordered if change["op"] in ("set", "delete")]
    # the changes in input order: those that start at or before an element are a prefix; the
    # furthest any of that prefix reaches says at once whether one may cover it (most do not)
    starts = [a for (a, _), _ in covering]
    reach = list(itertools.accumulate((b for (_, b), _ in covering), max))
    free, differs, variables = [], [], []
    if emap.preamble_length:
        free.append((0, PREAMBLE))
    for node in emap.elements:
        if node.children is not None or node.tag in (None, ITEM) or not node.length or \
                node.value_offset + node.length > end or node in plan.read or _read_by_editor(node.tag):
            continue
        change = None
        before = bisect.bisect_right(starts, node.offset)
        if before and reach[before - 1] >= node.end:
            change = next(c for (_, b), c in covering[:before] if node.end <= b)
        value = (node.value_offset, node.value_offset + node.length)
        if node in slot_of:
            free.append(value)
        elif node in plan.edited:
            if change is None:
                continue  # the edit found the value it sets: that value decided it
            if change["op"] == "set" and tuple(change["input_range"]) == (node.offset, node.end):
                c, d = change["byte_range"]
                differs.append((*value, bytes(head[c + node.value_offset - node.offset:d])))
            free.append(value)
        elif change is None:
            free.append(value)  # kept as it is, never read
            if node.parent is emap.root and node.vr in VARIABLE_VRS and node.tag >> 16 not in grouped | {2}:
                at, field = _length_field(node)
                variables.append((node.offset + at, field, value[1], node.length))
    mask = bytearray(b"\xff") * end
    for start, stop in free:
        mask[start:stop] = bytes(stop - start)
    view = memoryview(data)
    whole = int.from_bytes(mask, "little")
    runs, start = [], 0
    for at, field, stop, _ in variables:
        runs.append((start, at))
        start = stop
    runs.append((start, end))
    runs = [(start, stop, mask_of, int.from_bytes(view[start:stop], "little") & mask_of)
            for start, stop, mask_of in ((start, stop, int.from_bytes(mask[start:stop], "little")) for start, stop in runs)]
    return whole, int.from_bytes(view[:end], "little") & whole, runs, variables, differs


class Layouts:
    """The layouts of one job's files, the newest first (at most ``KEPT``), for de-identifying
    (:class:`Layout`) and for the first pass (:class:`LearnedLayout`): state that changes how
    fast, never what, a job writes; a worker may keep one per job."""

    def __init__(self):
        self._layouts = []
        self._learned = []
        self.replayed = 0
        self.learned = 0

    def learn(self, job, data):
        """Learn ``data``'s values by the first learned layout it has; whether one fitted."""
        for index, layout in enumerate(self._learned):
            if layout.learn(job, data):
                self.learned += 1
                self._learned.insert(0, self._learned.pop(index))
                return True
        return False

    def add_learned(self, layout):
        self._learned.insert(0, layout)
        del self._learned[KEPT:]

    def replay(self, job, data, name, identifiers, known=None, min_unread=0):
        """The first layout's :meth:`Layout.replay` that fits ``data``, or ``None``."""
        for index, layout in enumerate(self._layouts):
            result = layout.replay(job, data, name, identifiers, known, min_unread)
            if result is not None:
                self.replayed += 1
                self._layouts.insert(0, self._layouts.pop(index))  # the series' current layout first
                return result
        return None

    def add(self, layout):
        self._layouts.insert(0, layout)
        del self._layouts[KEPT:]


class LearnedLayout:
    """The first pass's reading of one file's header, for the files of its layout: where each
    identifying value lies and what it is learned as.

    The header up to the pixel data's element (as far as the walk read) is compared whole but for
    the values of plain elements and the preamble; the values the walk or the decoding depend on
    (transfer syntax, character set, group lengths, Pixel Representation) are compared too. A file
    that matches has its values learned from the same places as this one's, in the same order:
    what walking and planning it would learn.
    """

    __slots__ = ("end", "mask", "key", "reads", "patient", "decoded")

    @classmethod
    def of(cls, plan, emap):
        """The layout of a file whose values ``plan`` (collect only) learned, or ``None``."""
        data = emap.data
        end = emap.walk_end + _NEXT_HEADER
        if emap.deflated or emap.complete or len(data) < end:
            return None
        free = [(0, PREAMBLE)] if emap.preamble_length else []
        free += [(node.value_offset, node.value_offset + node.length) for node in emap.elements
                 if node.children is None and node.tag not in (None, ITEM) and node.length
                 and node.value_offset + node.length <= end and not _read_by_editor(node.tag)
                 and node.tag != PIXEL_REPRESENTATION]
        layout = cls()
        layout.end = end
        mask = bytearray(b"\xff") * end
        for start, stop in free:
            mask[start:stop] = bytes(stop - start)
        layout.mask = int.from_bytes(mask, "little")
        layout.key = int.from_bytes(memoryview(data)[:end], "little") & layout.mask
        layout.reads = [(how, node.tag, plan.decoding(node)) for node, how in plan.learned_from]
        layout.patient = [plan.decoding(node) for node in plan.patient_nodes]
        layout.decoded = {}
        return layout

    def learn(self, job, data):
        """Learn ``data``'s values into ``job`` if it has this layout; whether it had."""
        if len(data) < self.end or \
                int.from_bytes(memoryview(data)[:self.end], "little") & self.mask != self.key:
            return False
        job.patient(*("\\".join(self._texts(data, ("patient", index), decoding))
                      for index, decoding in enumerate(self.patient)))
        for index, (how, tag, decoding) in enumerate(self.reads):
            learn_values(job.identifiers, how, tag, self._texts(data, index, decoding))
        return True

    def _texts(self, data, read, decoding):
        """:func:`~dcmstudio.deid.plan.decoded_texts` of the layout's ``read``, remembered by
        the value's bytes: the files of a series repeat most values (names, IDs, dates, study
        UIDs)."""
        if decoding is None:
            return []
        key = (read, bytes(data[decoding[0]:decoding[1]]))
        texts = self.decoded.get(key)
        if texts is None:
            texts = decoded_texts(data, decoding)
            if len(self.decoded) < LEARNED_TEXTS_KEPT:
                self.decoded[key] = texts
        return texts

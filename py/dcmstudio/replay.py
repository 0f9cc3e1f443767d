"""Editing the files of a series the way the previous one was edited, when their headers agree.

The files of one series nearly always share the layout of their header: the same elements, in
the same order, with the same lengths. Only some values differ (SOPInstanceUID,
InstanceNumber, ImagePositionPatient...). For such a file, the same edit list gives the same
output pieces: the same new bytes, cut into the same input stretches. :class:`SeriesReplay`
keeps what the last fully edited file gave, and applies it to the next file after one
comparison, instead of walking the header and working the edits out again.

What must agree is everything the walk and the edits could have read:

- every byte of the walked header, element headers (tags, VRs, lengths), item headers and
  delimiters included, up to where the walk stopped and the header it stopped at;
- the values the walker or the edits read: the transfer syntax, the character set, private
  creators, PixelRepresentation, group lengths, UIDs compared, values a character set change
  re-encodes, values found equal to the value an edit sets (which makes the edit no change);
- values found to differ from the value an edit sets must differ again (they need not be equal).

Free to differ are the values nothing read: those of elements the walk skipped by their length,
those the edits deleted or replaced by a different value (their old values are decoded again for
the report), and the preamble. An edit list with templates or ``remap_uids`` gives per-file values, so it
is never replayed. Outputs of a replay pass the same self-check as any other
(:func:`dcmstudio.edit.verify_unchanged`).
"""

from dcmstudio.values import same_value

# Output pieces smaller than this are joined into one; larger ones stay views of the input.
SMALL_PIECE = 1 << 16
# Where a walk stopped, it read the next element's header: 8 bytes at most.
_NEXT_HEADER = 8
_PREAMBLE = (0, 128)


def coalesce(chunks, origins):
    """Join the small pieces of an output into one, so a file is written in few writes.

    Large stretches of the input stay views (never copied).

    Parameters
    ----------
    chunks : list of bytes-like
        The output, in order.
    origins : list of (int or None)
        Per chunk, the input offset it was cut from, ``None`` for new bytes.

    Returns
    -------
    chunks, origins : list, list
        The joined pieces get the origin ``None``.
    """
    joined, joined_origins, small = [], [], []
    for chunk, origin in zip(chunks, origins):
        if len(chunk) < SMALL_PIECE:
            small.append(chunk)
            continue
        if small:
            joined.append(b"".join(small))
            joined_origins.append(None)
            small = []
        joined.append(chunk)
        joined_origins.append(origin)
    if small:
        joined.append(b"".join(small))
        joined_origins.append(None)
    return joined, joined_origins


class Rendered:
    """One file's edited output, as the renderer or a replay gives it.

    Attributes
    ----------
    chunks, origins : list
        The output pieces (already coalesced) and their input offsets (see :func:`coalesce`).
    changes : list of dict
        The report's changes, old values decoded from this file.
    absent : list of dict
        The edits that matched nothing.
    transfer_syntax : str or None
    data : bytes-like
        What the changes' input offsets refer to (a deflated file's inflated dataset).
    dataset_out_offset : int or None
        For a deflated file, where the output's dataset starts; ``None`` otherwise.
    """

    def __init__(self, chunks, origins, changes, absent, transfer_syntax, data,
                 dataset_out_offset=None):
        self.chunks = chunks
        self.origins = origins
        self.changes = changes
        self.absent = absent
        self.transfer_syntax = transfer_syntax
        self.data = data
        self.dataset_out_offset = dataset_out_offset


class _Recipe:
    """One edited file, reduced to what its successor needs to be edited the same way."""

    __slots__ = ("compiled", "check_end", "mask", "key", "walk_end", "tail", "pieces", "changes",
                 "redecode", "absent", "transfer_syntax", "differs")


class SeriesReplay:
    """The last edit of a series, kept so the next file with the same header can reuse it.

    One per task: create it before the first file, pass it to
    :func:`dcmstudio.edit.edit_bytes` in ``context["replay"]`` for every file. It holds a few
    kilobytes (the compared header bytes and the new bytes), never a file.
    """

    def __init__(self):
        self._recipe = None
        self.replayed = 0  # files edited by replay, for the curious and for tests
        # what the last file edited in full gained in validation errors (dcmstudio.jobs.edit_item)
        self.new_errors = []

    def replay(self, data, compiled):
        """Edit ``data`` as the remembered file was edited, or return ``None`` if it differs.

        Parameters
        ----------
        data : bytes or bytearray
            The whole input file.
        compiled : list
            The compiled edit list (the very list object the recipe was made with).

        Returns
        -------
        Rendered or None
        """
        recipe = self._recipe
        if recipe is None or recipe.compiled is not compiled:
            return None
        size = len(data)
        rest = size - recipe.walk_end
        if rest < recipe.tail or (recipe.tail < _NEXT_HEADER and rest != recipe.tail):
            return None
        view = memoryview(data)
        if int.from_bytes(view[:recipe.check_end], "little") & recipe.mask != recipe.key:
            return None
        # a value that differed from its new value must differ again, or setting it is no change
        if any(same_value(view[start:end], encoded, vr) for start, end, encoded, vr in recipe.differs):
            return None
        chunks, origins = [], []
        for piece in recipe.pieces:
            if isinstance(piece, tuple):
                start, end = piece
                chunks.append(view[start:size if end is None else end])
                origins.append(start)
            else:
                chunks.append(piece)
                origins.append(None)
        chunks, origins = coalesce(chunks, origins)
        changes = [dict(change) for change in recipe.changes]
        for index, start, end, decode in recipe.redecode:
            changes[index]["old"] = decode(bytes(view[start:end]))
        self.replayed += 1
        return Rendered(chunks, origins, changes, list(recipe.absent), recipe.transfer_syntax, data)

    def remember(self, compiled, emap, reads, chunks, origins, changes, redecode, absent, differs=()):
        """Keep a fully edited file's result for the files after it.

        Parameters
        ----------
        compiled : list
            The compiled edit list.
        emap : dcmstudio.elements.ElementMap
            The file's walk, with ``skipped`` recorded.
        reads : list of (int, int)
            Every input value range the edits read (besides the walker's transfer syntax).
        chunks, origins : list
            The output before :func:`coalesce` (small input stretches still views).
        changes : list of dict
            The report's changes.
        redecode : list of (int, int, int, callable)
            ``(change index, start, end, decode)``: changes whose ``old`` is
            ``decode(input[start:end])``.
        absent : list of dict
        differs : list of (int, int, bytes, str)
            ``(start, end, encoded, vr)``: input values the edits found different from the new
            value ``encoded`` (they need not be equal in the next file, only different again).
        """
        self._recipe = None
        if emap.deflated or emap.skipped is None:
            return
        data = emap.data
        size = len(data)
        transfer_syntax = emap.top_level(0x00020010)
        if transfer_syntax is not None and transfer_syntax.length is not None:
            reads = reads + [(transfer_syntax.value_offset,
                              transfer_syntax.value_offset + transfer_syntax.length)]
        free = list(emap.skipped)
        free += [(e.value_offset, e.value_offset + e.length) for e in emap.elements
                 if e.children is None and e.value_offset is not None and e.length]
        if emap.preamble_length:
            free.append(_PREAMBLE)
        read_ranges = sorted(reads)
        free = sorted(r for r in free if not _overlaps(r, read_ranges))
        recipe = _Recipe()
        recipe.compiled = compiled
        recipe.walk_end = emap.walk_end
        recipe.tail = min(size - emap.walk_end, _NEXT_HEADER)
        # The header as one integer, masked to the compared bytes: one AND tells a match.
        recipe.check_end = emap.walk_end + recipe.tail
        mask = bytearray(b"\xff") * recipe.check_end
        for start, end in free:
            mask[start:end] = bytes(end - start)
        recipe.mask = int.from_bytes(mask, "little")
        recipe.key = int.from_bytes(memoryview(data)[:recipe.check_end], "little") & recipe.mask
        recipe.pieces = [chunk if origin is None else
                         (origin, None if origin + len(chunk) == size else origin + len(chunk))
                         for chunk, origin in zip(chunks, origins)]
        recipe.changes = changes
        recipe.redecode = redecode
        recipe.absent = absent
        recipe.transfer_syntax = emap.transfer_syntax
        recipe.differs = list(differs)
        self._recipe = recipe


def _overlaps(span, sorted_spans):
    start, end = span
    return any(s < end and start < e for s, e in sorted_spans)

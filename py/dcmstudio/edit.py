"""Edits → new bytes, where only the edited elements and the lengths that enclose them change.

An edit is a plain dict, so it travels as JSON between the page, the worker and saved edit lists::

    {"op": "set", "path": "RequestAttributesSequence[0].RequestedProcedureID", "value": "RP-42"}
    {"op": "add", "path": '(0009,"ACME 1.0",02)', "value": "x", "vr": "LO"}
    {"op": "delete", "path": "(0040,0275)[*].(0040,1001)"}
    {"op": "remap_uids"}

:func:`apply_edits` walks a file's bytes (:mod:`dcmstudio.elements`), applies the edits in order
to that layout, then writes the output as slices of the input with new bytes spliced in: each
changed value, the length of every defined-length item and sequence around it, and any group
length (such as (0002,0000)) of a group whose size changed. Pixel data is copied, never decoded.
A self-check then proves that outside the reported byte ranges the output equals the input.
"""

import functools
import os
import re
import struct
import zlib
from typing import NamedTuple

from pydicom.datadict import dictionary_VR, keyword_for_tag, private_dictionary_VR, tag_for_keyword

from dcmstudio import uids, values
from dcmstudio.charset import UNIVERSAL_TERM, character_set, is_defined_term
from dcmstudio.elements import (ALL_VRS, EXPLICIT_LE, IMPLICIT_LE, ITEM, LONG_LENGTH_VRS, Element,
                                KeepOnly, in_force, tag_name, tag_text, walk)
from dcmstudio.errors import DicomStudioError, EditError, InvalidDicomError
from dcmstudio.replay import Rendered, coalesce

OPS = ("set", "add", "delete", "remap_uids")
TEMPLATE_FIELDS = ("index", "uid", "name")

SPECIFIC_CHARACTER_SET = 0x00080005
SOP_INSTANCE_UID = 0x00080018
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
TRANSFER_SYNTAX_UID = 0x00020010
PIXEL_REPRESENTATION = 0x00280103
PIXEL_DATA = 0x7FE00010
# Always walked, whatever the edits: they decide how values are encoded.
_ALWAYS_WALKED = PIXEL_REPRESENTATION

_TEMPLATE = re.compile(r"\{\{|\}\}|\{(\w*)(?::([^{}]*))?\}|[{}]")


class Step(NamedTuple):
    """One element of a path, with the item(s) of it that the path goes on into.

    Attributes
    ----------
    tag : int or None
        The tag, or ``None`` for a private element named by its creator.
    group, creator, element : int, str, int or None
        For ``(gggg,"CREATOR",ee)``: the odd group, the private creator string and the element
        number within the creator's block (0x00–0xFF).
    item : int, "*" or None
        An item index, every item, or none (the step names the element itself).
    """

    tag: int = None
    group: int = None
    creator: str = None
    element: int = None
    item: object = None


_STEP = re.compile(
    r"""\s*(?:
        \(\s*(?P<pgroup>[0-9A-Fa-f]{4})\s*,\s*(?P<quote>["'])(?P<creator>.*?)(?P=quote)\s*,
            \s*(?P<pelem>[0-9A-Fa-f]{2})\s*\)
      | \(\s*(?P<group>[0-9A-Fa-f]{4})\s*,\s*(?P<elem>[0-9A-Fa-f]{4})\s*\)
      | (?P<group2>[0-9A-Fa-f]{4}),(?P<elem2>[0-9A-Fa-f]{4})
      | (?P<hex>[0-9A-Fa-f]{8})(?![A-Za-z0-9])
      | (?P<keyword>[A-Za-z][A-Za-z0-9]*)
    )\s*(?:\[\s*(?P<item>\d+|\*)\s*\])?\s*""",
    re.VERBOSE,
)


@functools.lru_cache(maxsize=1024)
def parse_path(text):
    """Parse a path to an element (or an item) at any depth.

    Parameters
    ----------
    text : str
        Steps joined by ``.``; each step is a keyword (``PatientName``), a tag
        (``(0010,0010)``, ``0010,0010`` or ``00100010``) or a private element by creator and
        element number (``(0009,"GEMS_IDEN_01",02)``), followed by ``[n]`` (item n, from 0) or
        ``[*]`` (every item) when the path goes on into a sequence's items. A last step with an
        item index names the item itself (to delete it, or to add it).

    Returns
    -------
    tuple of Step

    Raises
    ------
    EditError
        The text is not a path, names an unknown keyword, or misses an item index.

    Examples
    --------
    >>> parse_path("(0040,0275)[*].(0040,1001)")[0]
    Step(tag=4194933, group=None, creator=None, element=None, item='*')
    """
    if not isinstance(text, str) or not text.strip():
        raise EditError("an edit needs a path such as PatientName or (0010,0010).")
    steps, pos = [], 0
    while True:
        match = _STEP.match(text, pos)
        if not match:
            raise EditError(f"the path {text!r} cannot be read at character {pos + 1}: expected a "
                            f"keyword, (gggg,eeee) or (gggg,\"CREATOR\",ee).")
        steps.append(_step_from_match(match, text))
        pos = match.end()
        if pos == len(text):
            break
        if text[pos] != ".":
            raise EditError(f"the path {text!r} cannot be read at character {pos + 1}: expected "
                            f"'.' between steps.")
        pos += 1
    for step in steps[:-1]:
        if step.item is None:
            raise EditError(f"the path {text!r} goes into {_step_text(step)} without an item "
                            f"index: write {_step_text(step)}[0] or {_step_text(step)}[*].")
    return tuple(steps)


def _step_from_match(match, text):
    item = match.group("item")
    item = None if item is None else item if item == "*" else int(item)
    if match.group("pgroup"):
        group = int(match.group("pgroup"), 16)
        creator = match.group("creator").strip()
        if not group & 1:
            raise EditError(f"the path {text!r} names a private creator in group {group:04X}, "
                            f"which is not private (private groups are odd).")
        if not creator or len(creator) > 64 or not creator.isprintable() or "\\" in creator:
            raise EditError(f"the private creator {creator!r} in {text!r} must be 1 to 64 "
                            f"printable characters without a backslash.")
        return Step(group=group, creator=creator, element=int(match.group("pelem"), 16), item=item)
    if match.group("keyword"):
        tag = tag_for_keyword(match.group("keyword"))
        if tag is None:
            raise EditError(f"{match.group('keyword')!r} in the path {text!r} is not a DICOM "
                            f"keyword; use (gggg,eeee) for private or unlisted elements.")
    elif match.group("hex"):
        tag = int(match.group("hex"), 16)
    else:
        group = match.group("group") or match.group("group2")
        elem = match.group("elem") or match.group("elem2")
        tag = int(group, 16) << 16 | int(elem, 16)
    if tag >> 16 == 0xFFFE:
        raise EditError(f"the path {text!r} names an item delimiter {tag_text(tag)}; name the "
                        f"sequence and an item index instead, e.g. Sequence[0].")
    return Step(tag=tag, item=item)


def _step_text(step):
    if step.tag is None:
        base = f'({step.group:04X},"{step.creator}",{step.element:02X})'
    else:
        base = tag_name(step.tag)
    return base if step.item is None else f"{base}[{step.item}]"


def format_path(steps):
    """The canonical text of parsed steps (keywords where the dictionary has them)."""
    return ".".join(_step_text(step) for step in steps)


class _Edit(NamedTuple):
    index: int
    op: str
    path: str
    steps: tuple
    value: object
    vr: str
    templated: bool


def validate_edits(edits):
    """Check an edit list before it is applied to any file.

    Checks what can be known without a file: the op, the path, the VR, the templates, and for
    standard elements whose value has no template, that the value suits the element's VR and
    multiplicity (character set questions wait for each file).

    Parameters
    ----------
    edits : list of dict
        ``{"op", "path", "value", "vr"}`` dicts (see the module docstring). ``"vr"`` is used
        where the file cannot say: a new element, or a UN or implicit-VR private element;
        an element's VR written in the file always wins. Other keys are ignored, so a page may
        keep its own notes in them.

    Raises
    ------
    EditError
        A sentence naming the edit (by its position, from 1) and what is wrong.
    """
    _compile(edits, None)


def _compile(edits, file):
    if not isinstance(edits, (list, tuple)):
        raise EditError("the edits must be a list of {\"op\", \"path\", ...} objects.", file=file)
    # A job applies the same list to every file: compile it once.
    key = repr(edits)
    compiled = _compiled_cache.get(key)
    if compiled is None:
        compiled = [_compile_one(i, edit, file) for i, edit in enumerate(edits)]
        if len(_compiled_cache) > 16:
            _compiled_cache.clear()
        _compiled_cache[key] = compiled
    return compiled


_compiled_cache = {}


def _compile_one(index, edit, file):
    where = f"edit {index + 1}"
    if not isinstance(edit, dict):
        raise EditError(f"{where} is not an {{\"op\": ..., \"path\": ...}} object.", file=file)
    op = edit.get("op")
    if op not in OPS:
        raise EditError(f"{where} has op {op!r}; the ops are {', '.join(OPS)}.", file=file)
    if op == "remap_uids":
        return _Edit(index, op, "", (), None, None, False)
    try:
        steps = parse_path(edit.get("path"))
    except EditError as exc:
        raise EditError(f"{where}: {exc.message}", file=file) from None
    path = edit["path"]
    last = steps[-1]
    vr = edit.get("vr")
    if vr is not None and vr not in ALL_VRS:
        raise EditError(f"{where} ({path}) has VR {vr!r}, which is not a DICOM VR.", file=file)
    if op == "set" and last.item is not None:
        raise EditError(f"{where} sets {path}, which names an item; set the item's elements, or "
                        f"use add/delete for the item itself.", file=file)
    if op in ("set", "add") and last.item is None and "value" not in edit:
        if not (op == "add" and _is_sequence_tag(last.tag, vr)):
            raise EditError(f"{where} ({op} {path}) has no value; give \"value\" (\"\" for an "
                            f"empty one).", file=file)
    if op == "add" and last.item == "*":
        raise EditError(f"{where} adds {path}: give the index of the new item (the current "
                        f"number of items), not [*].", file=file)
    for step in steps:
        tag = step.tag
        if tag is None:
            continue
        if tag == TRANSFER_SYNTAX_UID:
            raise EditError(f"{where} changes (0002,0010) TransferSyntaxUID: that needs the whole "
                            f"dataset re-encoded, which an editor of bytes does not do.", file=file)
        if tag & 0xFFFF == 0:
            raise EditError(f"{where} edits the group length {tag_text(tag)}: group lengths are "
                            f"kept right automatically.", file=file)
        if tag >> 16 == 2 and step is not steps[0]:
            raise EditError(f"{where}: group 0002 elements exist only at the top level.", file=file)
    if op == "set" and last.tag == PIXEL_DATA:
        raise EditError(f"{where} sets (7FE0,0010) PixelData: pixel data is never re-encoded "
                        f"here; delete it or leave it.", file=file)
    value = edit.get("value")
    if not _plain_value(value):
        raise EditError(f"{where} ({path}) has a value of type {type(value).__name__}; a value is "
                        f"text, a number, bytes, or a list of them.", file=file)
    templated = _has_template(value, where, path, file)
    if op in ("set", "add") and not templated and last.tag is not None and last.item is None:
        _precheck_value(value, last.tag, vr, where, path, file)
    return _Edit(index, op, path, steps, value, vr, templated)


def _plain_value(value):
    if isinstance(value, (list, tuple)):
        return all(_plain_value(v) and not isinstance(v, (list, tuple)) for v in value)
    return value is None or isinstance(value, (str, int, float, bytes, bytearray))


def _is_sequence_tag(tag, vr):
    if vr is not None:
        return vr == "SQ"
    try:
        return tag is not None and dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


def _precheck_value(value, tag, vr, where, path, file):
    try:
        vr = vr or dictionary_VR(tag)
    except KeyError:
        return
    if vr == "SQ" or " or " in vr:
        return
    # UTF-8 encodes any text, so only the value's form, length and multiplicity are judged here.
    values.encode_value(value, vr, tag=tag, charset=character_set((UNIVERSAL_TERM,)),
                        where=f"{where} ({path})", file=file)


def _has_template(value, where, path, file):
    if isinstance(value, (list, tuple)):
        return any([_has_template(v, where, path, file) for v in value])
    if not isinstance(value, str) or ("{" not in value and "}" not in value):
        return False
    for match in _TEMPLATE.finditer(value):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name, spec = match.group(1), match.group(2)
        if name not in TEMPLATE_FIELDS:
            raise EditError(f"{where} ({path}) has {token!r} in its value; the templates are "
                            f"{{index}}, {{index:04d}}, {{uid}} and {{name}} (write {{{{ and }}}} "
                            f"for literal braces).", file=file)
        try:
            format(1 if name == "index" else "x", spec or "")
        except ValueError:
            raise EditError(f"{where} ({path}) has the template {token!r}, whose format "
                            f"{spec!r} does not apply to {name}.", file=file) from None
    return True


def expand_template(value, fields):
    """Replace ``{index}``, ``{index:04d}``, ``{uid}``, ``{name}`` in a value (lists too).

    Parameters
    ----------
    value : object
        Strings are expanded; lists element by element; anything else is returned as is.
    fields : dict
        ``{"index": int, "uid": str, "name": str}``.
    """
    if isinstance(value, (list, tuple)):
        return [expand_template(v, fields) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match):
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return format(fields[match.group(1)], match.group(2) or "")

    return _TEMPLATE.sub(replace, value)


def _walk_plan(compiled):
    """What a walk must list for these edits: ``(stop_after, keep)``, or ``(None, None)``.

    The walk can stop after the last top-level element an edit can reach, and list only the
    top-level elements the edits name, plus what decides how values are encoded (character
    set, pixel representation), what must follow (SOP Instance UID), private creators, and the
    element after each addition (where it goes). ``remap_uids`` and edits of (0008,0005) (which
    re-encode the text it governs) need everything.
    """
    limit = _ALWAYS_WALKED
    tags = {SPECIFIC_CHARACTER_SET, PIXEL_REPRESENTATION, SOP_INSTANCE_UID}
    groups, successors = set(), set()
    for edit in compiled:
        if edit.op == "remap_uids" or any(s.tag == SPECIFIC_CHARACTER_SET for s in edit.steps):
            return None, None  # every UID, or every text value a character set governs
        first = edit.steps[0]
        if first.tag is None:
            groups.add(first.group)
            top = first.group << 16 | 0xFFFF
            if edit.op == "add":
                successors.update((first.group << 16, top))
        else:
            top = first.tag
            tags.add(top)
            if top >> 16 & 1 and top & 0xFFFF >= 0x1000:
                tags.add(top & 0xFFFF0000 | top >> 8 & 0xFF)  # its private creator
            if edit.op == "add":
                successors.add(top)
        if top in (SOP_INSTANCE_UID, MEDIA_STORAGE_SOP_INSTANCE_UID):
            top = SOP_INSTANCE_UID  # the other one is kept equal to it
        limit = max(limit, top)
    return limit, KeepOnly(tags, groups, successors)


def apply_edits(in_path, out_path, edits, *, context=None):
    """Apply edits to one file, writing a new file; the input is never modified.

    Parameters
    ----------
    in_path, out_path : str
        Where to read and where to write (MEMFS paths in the page).
    edits : list of dict
        Applied in order, each to the result of the ones before (see :func:`validate_edits`).
    context : dict, optional
        Per-job state: ``"index"`` (1-based position of the file in the job, default 1),
        ``"uid_map"`` (a :class:`dcmstudio.uids.UidMap` shared by every file of the job, so
        ``remap_uids`` keeps references between files; default a new one per file), ``"name"``
        (for ``{name}`` and messages; default the input's file name).

    Returns
    -------
    dict
        ``{"file", "changes", "absent", "unchanged_bytes_verified", "size_in", "size_out",
        "transfer_syntax", "deflated"}``. Each change is ``{"op", "path", "tag", "vr", "old",
        "new", "byte_range", "input_range", "edit"}``: ``op`` is ``set``, ``add``, ``delete``,
        ``length`` (a sequence's or item's length field) or ``group_length``; ``byte_range`` is
        ``[start, end)`` in the output and ``input_range`` the same bytes' place in the input
        (offsets in the inflated dataset for a deflated file); ``edit`` is the position of the
        edit that caused it (``None`` for lengths); ``cause`` is ``"remap_uids"`` or
        ``"kept equal to ..."`` where that applies. ``absent`` lists ``{"op", "path", "edit"}``
        for edits that matched nothing in this file.

    Raises
    ------
    NotDicomError, InvalidDicomError
        The input cannot be walked.
    EditError
        An edit cannot be made in this file (its value does not suit the element's VR or the
        file's character set, a private element has no known VR, ...).
    DicomStudioError
        The self-check found a difference outside the reported changes (nothing is written).
    """
    context = dict(context or {})
    context.setdefault("name", os.path.basename(in_path))
    with open(in_path, "rb") as f:
        data = f.read()
    output, report = edit_bytes(data, edits, context=context)
    with open(out_path, "wb") as f:
        f.writelines(output)
    return report


def edit_bytes(data, edits, *, context=None):
    """Apply edits to a file held in memory; the building block of :func:`apply_edits`.

    Parameters
    ----------
    data : bytes, bytearray or memoryview
        The whole input file.
    edits : list of dict
    context : dict, optional
        As for :func:`apply_edits` (``"name"`` defaults to ``"file"``), ``"walk_whole"`` (walk
        to the end of the file, not only as far as the edits' tags go: for elements out of tag
        order after the pixel data), ``"pixels_unread"`` (``data`` ends where the value of the
        pixel data, the file's last element, starts: the walk stops before it; the edits must
        not reach it, see :func:`reaches_pixel_data`), and ``"replay"``: a
        :class:`dcmstudio.replay.SeriesReplay` shared by the files of one task, so that a file
        whose header agrees with the previous one's is edited without being walked again.

    Returns
    -------
    output : list of bytes-like
        The output file in pieces (slices of ``data`` and new bytes): write them in order, or
        ``b"".join`` them. ``[data]`` itself when nothing changed.
    report : dict
        As returned by :func:`apply_edits`.
    """
    output, _, report = edit_output(data, edits, context=context)
    return output, report


def edit_output(data, edits, *, context=None):
    """:func:`edit_bytes`, also saying where in ``data`` each output piece was cut from.

    Returns
    -------
    output : list of bytes-like
    origins : list of (int or None)
        Per piece, its offset in ``data`` when it is ``data``'s own bytes from there, ``None``
        for new bytes (and for every piece of a deflated file, whose output is deflated anew).
    report : dict
    """
    context = context or {}
    name = context.get("name") or "file"
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)  # the self-check compares with bytes.startswith
    compiled = _compile(edits, name)
    replay = context.get("replay") if _replayable(compiled) else None
    result = replay.replay(data, compiled) if replay is not None else None
    if result is None:
        result = _edit_walked(data, compiled, name, context, replay)
    changes = result.changes
    output, origins = result.chunks, result.origins
    deflated = result.dataset_out_offset is not None
    if changes:
        verify_unchanged(result.data, output, changes, name, origins=origins)
        if deflated:
            output = _deflate_dataset(output, result.dataset_out_offset)
            origins = [None] * len(output)
    else:
        # nothing changed: the input's own bytes, deflated stream included
        output, origins = [data], [0]
    report = {
        "file": name,
        "changes": changes,
        "absent": result.absent,
        "unchanged_bytes_verified": True,
        "size_in": len(data),
        "size_out": sum(len(piece) for piece in output),
        "transfer_syntax": result.transfer_syntax,
        "deflated": deflated,
    }
    return output, origins, report


def reaches_pixel_data(edits):
    """Whether any of ``edits`` may change, remove or add a top-level element at or after
    (7FE0,0010) Pixel Data (``remap_uids`` never does: it changes UIDs; nor do edits of the
    character set, which re-encode text)."""
    return _reaches_pixel_data(_compile(edits, "file"))


def _reaches_pixel_data(compiled):
    for edit in compiled:
        if edit.op == "remap_uids":
            continue
        first = edit.steps[0]
        if (first.tag if first.tag is not None else first.group << 16 | 0xFFFF) >= PIXEL_DATA:
            return True
    return False


def _replayable(compiled):
    """Whether these edits give every file of one layout the same new bytes (no per-file values)."""
    return all(edit.op != "remap_uids" and not edit.templated for edit in compiled)


def _edit_walked(data, compiled, name, context, replay):
    """Walk ``data``, apply the edits, render the output (see :func:`edit_bytes`).

    Returns a :class:`dcmstudio.replay.Rendered`; ``replay`` (a
    :class:`dcmstudio.replay.SeriesReplay` or ``None``) remembers it for the next file.
    """
    # "walk_whole": the edits may reach elements out of tag order after the pixel data, where a
    # walk that stops after the last tag they name would never arrive
    limit, keep = (None, None) if context.get("walk_whole") else _walk_plan(compiled)
    if context.get("pixels_unread"):
        # ``data`` ends where the value of its last element, the pixel data, starts (see
        # dcmstudio.jobs.read_item_for_edit): the walk stops before it, which no edit reaches
        if _reaches_pixel_data(compiled):
            raise EditError("these edits reach the pixel data, which was not read.", file=name)
        limit = PIXEL_DATA - 1 if limit is None else limit
    emap = walk(data, name, stop_after=limit, keep=keep, record_skipped=replay is not None)
    try:
        session = _Session(emap, name, context)
        for edit in compiled:
            session.apply(edit)
        session.keep_instance_uids_equal()
        renderer = _Renderer(session)
        renderer.render()
    except (EditError, InvalidDicomError):
        raise
    except (ValueError, IndexError, KeyError, OverflowError, UnicodeDecodeError, TypeError,
            struct.error) as exc:
        raise InvalidDicomError(f"the file could not be edited: its bytes do not hold what their "
                                f"headers say ({type(exc).__name__}: {exc}).", file=name) from None
    if replay is not None:
        replay.remember(compiled, emap, session.reads, *renderer.uncoalesced, renderer.changes,
                        renderer.redecode, session.absent, session.differs)
    return Rendered(renderer.chunks, renderer.origins, renderer.changes, session.absent,
                    emap.transfer_syntax, emap.data,
                    renderer.dataset_out_offset if emap.deflated else None)


def _deflate_dataset(output, dataset_offset):
    """Deflate everything from ``dataset_offset`` on, chunk by chunk (PS3.5 A.5)."""
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    result, position = [], 0
    for piece in output:
        piece = memoryview(piece)
        cut = max(0, min(len(piece), dataset_offset - position))
        if cut:
            result.append(piece[:cut])
        if cut < len(piece):
            result.append(compressor.compress(piece[cut:]))
        position += len(piece)
    result.append(compressor.flush())
    if sum(len(piece) for piece in result) % 2:
        result.append(b"\x00")  # the deflated stream is padded to an even length
    return result


def verify_unchanged(original, output, changes, name, origins=None):
    """Raise unless ``output`` equals ``original`` everywhere outside the changes' byte ranges.

    The changes' ranges say, for every output byte outside them, which input byte it must be
    (their shifts accumulate). Bytes the editor wrote anew are compared with the input byte for
    byte. A piece copied from the input needs no comparison when ``origins`` says it was cut
    from exactly the input offset the changes imply: the two were computed independently, and
    a slice of the input at that offset cannot differ from it. This keeps the check from
    comparing a whole series' pixel data with itself.

    Parameters
    ----------
    original : bytes
    output : list of bytes-like
        The edited file in pieces, as :func:`edit_bytes` returns it.
    changes : list of dict
        Each with ``input_range`` and ``byte_range`` (see :func:`apply_edits`).
    name : str
    origins : list of (int or None), optional
        Per piece, the input offset it was sliced from (``None`` for new bytes). Without it
        every byte is compared.

    Raises
    ------
    DicomStudioError
        With the offset of the first byte that differs (a bug in dcmstudio, not in the file).
    """
    # unchanged spans: (input start, output start, length)
    spans, i, o = [], 0, 0
    for (a, b), (c, d) in sorted((tuple(ch["input_range"]), tuple(ch["byte_range"]))
                                 for ch in changes):
        if a < i or a - i != c - o:
            _mismatch(original, output, i, o, name)
        spans.append((i, o, a - i))
        i, o = b, d
    total = sum(len(piece) for piece in output)
    if len(original) - i != total - o:
        _mismatch(original, output, i, o, name)
    spans.append((i, o, len(original) - i))
    origins = origins or [None] * len(output)
    index, piece, piece_start = -1, memoryview(b""), 0
    for in_start, out_start, length in spans:
        while length:
            while out_start >= piece_start + len(piece):
                piece_start += len(piece)
                index += 1
                piece = memoryview(output[index])
            offset = out_start - piece_start
            part = piece[offset:offset + length]
            origin = origins[index]
            if (origin is None or origin + offset != in_start) and \
                    not original.startswith(part, in_start):
                _mismatch(original, output, in_start, out_start, name)
            in_start += len(part)
            out_start += len(part)
            length -= len(part)


def _mismatch(original, output, i, o, name):
    edited = b"".join(output)
    span = min(len(original) - i, len(edited) - o)
    first = next((k for k in range(span) if original[i + k] != edited[o + k]), span)
    raise DicomStudioError(
        f"the edited bytes differ from the input outside the reported changes (input offset "
        f"{i + first}, output offset {o + first}); nothing was written. This is a bug in "
        f"dcmstudio.", file=name)


class _Session:
    """The edits' effect on one walked file, recorded beside the walked layout."""

    def __init__(self, emap, name, context):
        self.emap = emap
        self.name = name
        self.data = emap.data
        self.index = context.get("index", 1)
        self.uid_map = context.get("uid_map")
        self.fields = None
        self.new_values = {}  # Element → its new encoded value (changed or created leaves)
        self.deleted = set()
        self.dirty = set()  # containers with a change somewhere inside
        self.cause = {}  # Element → (edit index, cause text or None)
        self.absent = []
        self.charsets = {}  # dataset → the CharacterSet in force there
        self.input_charsets = {}  # the same in the input, for the old values the report shows
        self.reads = []  # [start, end) of every input value read (what a replay must compare)
        # (start, end, encoded, vr): input values found to differ from a new value (a replay
        # must find them different too)
        self.differs = []

    # --- reading the current state -------------------------------------------------------

    def live(self, container):
        return [c for c in container.children if c not in self.deleted]

    def find(self, container, tag):
        for child in container.children:
            if child.tag == tag and child not in self.deleted:
                return child
        return None

    def raw_value(self, node):
        new = self.new_values.get(node)
        if new is not None:
            return new
        end = node.value_offset + node.length
        self.reads.append((node.value_offset, end))
        return bytes(self.data[node.value_offset:end])

    def text_values(self, node):
        return values.split_values(self.raw_value(node).decode("latin-1"))

    def character_set(self, container, original=False):
        """The character set in force in ``container``: its own (0008,0005) or inherited.

        With ``original``, the one in force there in the input, whatever the edits did.
        """
        def own(dataset):
            charset = self.find(dataset, SPECIFIC_CHARACTER_SET)
            return None if charset is None else character_set(self.text_values(charset))

        def own_in_input(dataset):
            charset = next((c for c in dataset.children
                            if c.tag == SPECIFIC_CHARACTER_SET and c.offset is not None), None)
            if charset is None:
                return None
            end = charset.value_offset + charset.length
            self.reads.append((charset.value_offset, end))
            return character_set(values.split_values(bytes(self.data[charset.value_offset:end])
                                                     .decode("latin-1")))
        if original:
            return in_force(container, self.input_charsets, own_in_input, character_set(()))
        return in_force(container, self.charsets, own, character_set(()))

    def pixel_representation(self):
        node = self.find(self.emap.root, PIXEL_REPRESENTATION)
        if node is None or node.length != 2:
            return 0
        return node.encoding.u16.unpack(self.raw_value(node))[0]

    def creator_of(self, container, tag):
        creator = self.find(container, (tag & 0xFFFF0000) | (tag >> 8 & 0xFF))
        if creator is None or creator.children is not None:
            return None
        return self.text_values(creator)[0]

    def dataset_encoding(self, container, tag):
        if container.tag == ITEM:
            return container.encoding
        if tag >> 16 == 2:
            meta = self.find(container, 0x00020001) or self.find(container, 0x00020000)
            return meta.encoding if meta is not None else EXPLICIT_LE
        return self.emap.encoding

    # --- paths -------------------------------------------------------------------------------

    def step_tag(self, container, step, create=False, edit=None):
        """The tag a step names in ``container`` (private creators looked up or reserved)."""
        if step.tag is not None:
            return step.tag
        group = step.group
        free = set(range(0x10, 0x100))
        for child in self.live(container):
            if child.tag >> 16 != group:
                continue
            element = child.tag & 0xFFFF
            if 0x10 <= element <= 0xFF:
                free.discard(element)
                if child.children is None and self.text_values(child)[0] == step.creator:
                    return group << 16 | element << 8 | step.element
            elif element >= 0x1000:
                free.discard(element >> 8)  # a block in use even if its creator is missing
        if not create:
            return None
        if not free:
            raise EditError(f"edit {edit.index + 1} ({edit.path}): group {group:04X} has no free "
                            f"private block for creator {step.creator!r}.", file=self.name)
        block = min(free)
        creator = self.create_leaf(container, group << 16 | block, "LO", step.creator, edit)
        self.insert(container, creator)
        return group << 16 | block << 8 | step.element

    def containers(self, steps, edit):
        """The datasets (root or items) the last step of ``steps`` is looked up in."""
        datasets = [self.emap.root]
        for step in steps[:-1]:
            found = []
            for dataset in datasets:
                creating = edit.op == "add" and step.item == 0
                tag = self.step_tag(dataset, step, create=creating, edit=edit)
                sequence = self.find(dataset, tag)
                if sequence is None and creating:
                    sequence = self.create_sequence(dataset, tag, edit)
                if sequence is None:
                    continue
                found.extend(self.items_of(sequence, step, edit))
            datasets = found
        return datasets

    def items_of(self, sequence, step, edit):
        if sequence.children is None or sequence.is_fragments:
            raise EditError(f"edit {edit.index + 1} ({edit.path}): {tag_name(sequence.tag)} is not "
                            f"a sequence of items in this file.", file=self.name)
        items = self.live(sequence)
        if step.item == "*":
            return items
        if step.item < len(items):
            return [items[step.item]]
        if edit.op == "add" and step.item == len(items):
            return [self.create_item(sequence, edit)]
        return []

    # --- edits ---------------------------------------------------------------------------------

    def apply(self, edit):
        if edit.op == "remap_uids":
            self.remap_uids(edit)
            return
        last = edit.steps[-1]
        matched = False
        for container in self.containers(edit.steps, edit):
            tag = self.step_tag(container, last, create=edit.op == "add" and last.item is None,
                                edit=edit)
            node = self.find(container, tag) if tag is not None else None
            if last.item is not None:
                matched |= self.apply_to_items(container, node, tag, last, edit)
            elif node is None and edit.op == "add":
                self.add_element(container, tag, edit)
                matched = True
            elif node is not None and edit.op == "delete":
                self.delete(node, edit)
                matched = True
            elif node is not None:
                self.set_value(node, self.value_for(edit), edit, edit.vr)
                matched = True
        if not matched:
            self.absent.append({"op": edit.op, "path": edit.path, "edit": edit.index})

    def apply_to_items(self, container, sequence, tag, last, edit):
        if edit.op == "add":
            if sequence is None:
                if last.item != 0:
                    raise EditError(f"edit {edit.index + 1} ({edit.path}): the sequence is absent, "
                                    f"so its first new item is [0].", file=self.name)
                sequence = self.create_sequence(container, tag, edit)
            if last.item != len(self.live(sequence)):
                raise EditError(f"edit {edit.index + 1} ({edit.path}): a new item goes at the "
                                f"end, index [{len(self.live(sequence))}] in this file.",
                                file=self.name)
            self.create_item(sequence, edit)
            return True
        if sequence is None:
            return False
        items = self.items_of(sequence, last, edit)
        for item in items:
            self.delete(item, edit)
        return bool(items)

    def value_for(self, edit):
        if not edit.templated:
            return edit.value
        if self.fields is None:
            uid = self.uid_map.new_for(f"file:{self.index}") if self.uid_map is not None else uids.new_uid()
            self.fields = {"index": self.index, "uid": uid, "name": self.name}
        return expand_template(edit.value, self.fields)

    def vr_for(self, container, tag, vr_given, edit):
        """The VR to encode a value of ``tag`` with, when the file's own header cannot say."""
        if vr_given:
            return vr_given
        if tag >> 16 & 1:
            creator = self.creator_of(container, tag)
            if 0x10 <= tag & 0xFFFF <= 0xFF:
                return "LO"
            if creator is not None:
                try:
                    vr = private_dictionary_VR(tag, creator)
                    if vr != "UN":
                        return values.resolve_vr(vr, self.pixel_representation())
                except KeyError:
                    pass
            raise EditError(f"edit {edit.index + 1} ({edit.path}): the VR of private element "
                            f"{tag_text(tag)} is not known; give it as \"vr\".", file=self.name)
        try:
            return values.resolve_vr(dictionary_VR(tag), self.pixel_representation())
        except KeyError:
            raise EditError(f"edit {edit.index + 1} ({edit.path}): {tag_text(tag)} is not in the "
                            f"DICOM dictionary; give its VR as \"vr\".", file=self.name) from None

    def encode(self, node, container, value, vr, edit):
        where = f"edit {edit.index + 1} ({edit.path}) for {tag_name(node.tag)}"
        encoded = values.encode_value(value, vr, tag=node.tag,
                                      charset=self.character_set(container),
                                      little_endian=node.encoding.little_endian, where=where,
                                      file=self.name)
        header_vr = node.vr if not node.encoding.implicit_vr else None
        if header_vr is not None and header_vr not in LONG_LENGTH_VRS and \
                len(encoded) > values.SHORT_LENGTH_LIMIT:
            raise EditError(f"{where}: {len(encoded)} bytes do not fit VR {header_vr}'s 16-bit "
                            f"length (at most {values.SHORT_LENGTH_LIMIT}).", file=self.name)
        return encoded

    def set_value(self, node, value, edit, vr_given=None, cause=None):
        if node.children is not None:
            raise EditError(f"edit {edit.index + 1} ({edit.path}): {tag_name(node.tag)} is a "
                            f"sequence; set its items' elements, or delete it.", file=self.name)
        if node.tag == PIXEL_DATA:
            raise EditError(f"edit {edit.index + 1} ({edit.path}): pixel data is never "
                            f"re-encoded here.", file=self.name)
        container = node.parent
        vr = node.vr
        if node.encoding.implicit_vr or vr == "UN":
            vr = values.resolve_vr(vr, self.pixel_representation())
            if vr == "UN":
                if isinstance(value, (bytes, bytearray)) or vr_given:
                    vr = vr_given or "UN"
                else:
                    vr = self.vr_for(container, node.tag, None, edit)
        # otherwise the VR written in the file wins over one the edit gives
        encoded = self.encode(node, container, value, vr, edit)
        self.change(node, encoded, edit, cause, vr)

    def change(self, node, encoded, edit, cause=None, vr=None):
        """Give ``node`` the value ``encoded``; its input value again is no change at all."""
        if node.tag == SPECIFIC_CHARACTER_SET:
            self.recode_for_character_set(node.parent, edit,
                                          lambda: self.store(node, encoded, edit, cause, vr))
        else:
            self.store(node, encoded, edit, cause, vr)

    def store(self, node, encoded, edit, cause, vr):
        if node.offset is not None and self.same_as_input(node, encoded, vr):
            # undoes an earlier edit's change of it, if any
            if self.new_values.pop(node, None) is not None:
                del self.cause[node]
            return
        if self.new_values.get(node) == encoded:
            return
        self.new_values[node] = encoded
        if node.offset is not None or node not in self.cause:  # an added one keeps its adder
            self.cause[node] = (edit.index, cause)
        self.mark_dirty(node.parent)

    def same_as_input(self, node, encoded, vr):
        """Whether ``encoded`` says what the input value of ``node`` says; either way, remember
        what a replay must find again for the answer to hold."""
        start, end = node.value_offset, node.value_offset + node.length
        same = values.same_value(self.data[start:end], encoded, vr)
        if same:
            self.reads.append((start, end))
        else:
            self.differs.append((start, end, encoded, vr))
        return same

    def recode_for_character_set(self, dataset, edit, make_change):
        """Change the (0008,0005) of ``dataset`` with ``make_change()``, re-encoding the text it governs.

        Every text value of ``dataset`` and of the items below it that inherit its character set
        is decoded in the character set it had and encoded in the new one; values whose bytes
        stay the same (ASCII, nearly always) are not touched.

        Raises
        ------
        EditError
            The new value is not a defined term, or a value cannot be read in the old character
            set or written in the new one.
        """
        scope = self.datasets_within(dataset)
        before = {d: self.character_set(d) for d in scope}
        make_change()
        self.charsets.clear()
        after = self.character_set(dataset)
        if after == before[dataset]:
            return
        own = self.find(dataset, SPECIFIC_CHARACTER_SET)
        undefined = [t for t in (after.terms if own is not None else ())
                     if t and not is_defined_term(t)]
        if undefined:
            raise EditError(f"edit {edit.index + 1} ({edit.path}): {undefined[0]!r} is not a defined "
                            f"term of (0008,0005) Specific Character Set (PS3.3 C.12.1.1.2), such as "
                            f"ISO_IR 100 or {UNIVERSAL_TERM}.", file=self.name)
        for container in scope:
            new = self.character_set(container)
            if new != before[container]:
                for node in self.live(container):
                    self.recode(node, before[container], new, edit)

    def datasets_within(self, dataset):
        """``dataset`` and every item of a sequence below it, at any depth."""
        found, stack = [], [dataset]
        while stack:
            container = stack.pop()
            found.append(container)
            for node in self.live(container):
                if node.children is not None and not node.is_fragments:
                    stack.extend(self.live(node))
        return found

    def recode(self, node, old, new, edit):
        """Re-encode one text value from character set ``old`` into ``new``."""
        vr = self.text_vr(node, edit)
        if vr is None or node.tag == SPECIFIC_CHARACTER_SET:
            return
        raw = self.raw_value(node)
        if raw.isascii() and b"\x1b" not in raw:
            return  # ASCII reads the same in every character set
        change = (f"edit {edit.index + 1} ({edit.path}) changes (0008,0005) Specific Character Set "
                  f"from {old.text()} to {new.text()}")
        where = _node_path(node, self.deleted)
        try:
            text = old.decode(raw, vr)
        except (UnicodeError, ValueError, LookupError):
            raise EditError(f"{change}, but the value of {where} is not text in {old.text()}, so it "
                            f"cannot be re-encoded: set or delete it in an edit before this one.",
                            file=self.name) from None
        texts = [text] if vr in values.SINGLE_VALUED_TEXT_VRS else text.split("\\")
        try:
            encoded = values.encode_text(texts, vr, new)
        except EditError as exc:
            raise EditError(f"{change}, which cannot hold the value of {where}: {exc.message}",
                            file=self.name) from None
        self.change(node, encoded, edit, f"re-encoded for (0008,0005) {new.text()}", vr)

    def text_vr(self, node, edit):
        """The VR of ``node`` if its value is text in the character set, else ``None``."""
        if node.children is not None or node.tag == ITEM:
            return None
        vr = node.vr
        if node.encoding.implicit_vr or vr == "UN":
            vr = values.resolve_vr(vr)
            if vr == "UN":
                try:
                    vr = self.vr_for(node.parent, node.tag, None, edit)
                except EditError:
                    return None  # a private element of unknown VR: not known to be text
        return vr if vr in values.CHARSET_VRS else None

    def mark_dirty(self, container):
        while container is not None and container not in self.dirty:
            self.dirty.add(container)
            container = container.parent

    def delete(self, node, edit):
        if node.tag == TRANSFER_SYNTAX_UID:
            raise EditError(f"edit {edit.index + 1} ({edit.path}) would delete the transfer "
                            f"syntax, without which the file cannot be read.", file=self.name)
        if node.tag == SPECIFIC_CHARACTER_SET:
            self.recode_for_character_set(node.parent, edit, lambda: self.deleted.add(node))
        else:
            self.deleted.add(node)
        self.cause[node] = (edit.index, None)
        self.mark_dirty(node.parent)
        self.charsets.clear()

    def add_element(self, container, tag, edit):
        if tag >> 16 == 2 and (container is not self.emap.root or self.emap.meta_offset is None):
            raise EditError(f"edit {edit.index + 1} ({edit.path}): this file has no File Meta "
                            f"Information group to add {tag_text(tag)} to.", file=self.name)
        vr = self.vr_for(container, tag, edit.vr, edit)
        if vr == "SQ":
            if edit.value not in (None, "", [], ()):
                raise EditError(f"edit {edit.index + 1} ({edit.path}): a sequence is added "
                                f"empty; add its items' elements with paths such as "
                                f"{edit.path}[0].Keyword.", file=self.name)
            self.create_sequence(container, tag, edit)
            return
        node = self.create_leaf(container, tag, vr, self.value_for(edit), edit)
        if tag == SPECIFIC_CHARACTER_SET:
            self.recode_for_character_set(container, edit, lambda: self.insert(container, node))
        else:
            self.insert(container, node)

    def create_leaf(self, container, tag, vr, value, edit):
        node = Element(tag, vr, None, None, 0, container, self.dataset_encoding(container, tag))
        encoded = self.encode(node, container, value, vr, edit)
        self.new_values[node] = encoded
        self.cause[node] = (edit.index, None)
        return node

    def create_sequence(self, container, tag, edit):
        vr = self.vr_for(container, tag, edit.vr if edit.steps[-1].tag == tag else None, edit)
        if vr not in ("SQ", "UN"):
            raise EditError(f"edit {edit.index + 1} ({edit.path}): {tag_name(tag)} has VR {vr}, "
                            f"not a sequence.", file=self.name)
        node = Element(tag, "SQ", None, None, None, container,
                       self.dataset_encoding(container, tag))
        node.children = []
        self.cause[node] = (edit.index, None)
        self.insert(container, node)
        return node

    def create_item(self, sequence, edit):
        item = Element(ITEM, None, None, None, None, sequence, sequence.encoding)
        if sequence.children:
            item.encoding = sequence.children[0].encoding
        elif sequence.vr == "UN" and not sequence.encoding.implicit_vr:
            item.encoding = IMPLICIT_LE  # PS3.5 6.2.2
        item.children = []
        self.cause[item] = (edit.index, None)
        sequence.children.append(item)
        self.mark_dirty(sequence)
        return item

    def insert(self, container, node):
        children = container.children
        position = next((i for i, child in enumerate(children) if child.tag > node.tag),
                        len(children))
        children.insert(position, node)
        self.mark_dirty(container)
        self.charsets.clear()

    def remap_uids(self, edit):
        if self.uid_map is None:
            self.uid_map = uids.UidMap()
        stack = [self.emap.root]
        while stack:
            container = stack.pop()
            for node in self.live(container):
                if node.children is not None:
                    if not node.is_fragments:
                        stack.append(node)
                    continue
                if node.tag == ITEM or not self.is_uid(node):
                    continue
                old = self.text_values(node)
                new = [self.uid_map[uid] if uids.is_remappable(node.tag, uid) else uid
                       for uid in old]
                if new != list(old):
                    encoded = values.encode_value(new, "UI", tag=node.tag, file=self.name,
                                                  where=f"{tag_name(node.tag)}")
                    self.change(node, encoded, edit, cause="remap_uids")

    def is_uid(self, node):
        if node.encoding.implicit_vr or node.vr == "UN":
            try:
                return dictionary_VR(node.tag) == "UI"
            except KeyError:
                return False
        return node.vr == "UI"

    def keep_instance_uids_equal(self):
        """(0002,0003) follows (0008,0018) when either was edited (SOPInstanceUID wins)."""
        root = self.emap.root
        sop = self.find(root, SOP_INSTANCE_UID)
        media = self.find(root, MEDIA_STORAGE_SOP_INSTANCE_UID)
        if sop is None or media is None:
            return
        sop_changed, media_changed = sop in self.new_values, media in self.new_values
        if not (sop_changed or media_changed):
            return
        source, target = (sop, media) if sop_changed else (media, sop)
        if self.text_values(source) != self.text_values(target):
            edit_index = self.cause[source][0]
            self.new_values[target] = self.raw_value(source)
            self.cause[target] = (edit_index, f"kept equal to {tag_name(source.tag)}")
            self.mark_dirty(target.parent)


class _Renderer:
    """Write the edited file as slices of the input and new bytes, recording every change.

    Untouched elements cost nothing here: a cursor remembers where the input was last copied
    from, and each stretch between touched elements is emitted as one slice (merged with its
    neighbours when they are contiguous), so pixel data and untouched headers are never copied
    before the final write.
    """

    def __init__(self, session):
        self.session = session
        self.data = session.data
        self.chunks = []
        self.origins = []  # per chunk: its offset in the input, or None for new bytes
        self.pos = 0
        self.run_start = self.run_end = None
        self.changes = []
        self.redecode = []  # (change index, start, end, decode): an old value read for the report
        self.inside_new = 0
        self.dataset_out_offset = None
        self.touched = session.dirty | set(session.cause)

    def render(self):
        emap = self.session.emap
        first = emap.meta_offset if emap.meta_offset is not None else emap.dataset_offset
        self.original(0, first)
        size_change = self.children(emap.root, first, emap.walk_end)
        self.dataset_out_offset = emap.dataset_offset + size_change.get(2, 0)
        self.original(emap.walk_end, len(self.data))
        self.flush()
        # the pieces as cut (what a replay reuses), then joined for writing
        self.uncoalesced = (self.chunks, self.origins)
        self.chunks, self.origins = coalesce(self.chunks, self.origins)
        return self.chunks

    # --- output ----------------------------------------------------------------------------------

    def original(self, start, end):
        if start == end:
            return
        if self.run_end == start:
            self.run_end = end
        else:
            self.flush()
            self.run_start, self.run_end = start, end
        self.pos += end - start

    def flush(self):
        if self.run_start is not None:
            self.chunks.append(memoryview(self.data)[self.run_start:self.run_end])
            self.origins.append(self.run_start)
            self.run_start = self.run_end = None

    def new_bytes(self, data):
        self.flush()
        self.chunks.append(data)
        self.origins.append(None)
        self.pos += len(data)

    def placeholder(self, size):
        self.flush()
        self.chunks.append(None)
        self.origins.append(None)
        self.pos += size
        return len(self.chunks) - 1

    # --- structure -------------------------------------------------------------------------------

    def children(self, container, content_start, content_end):
        """Render a container's content: the elements of a dataset, or a sequence's items.

        Returns the size change per group; a dataset's group lengths follow their group's.
        """
        session = self.session
        touched = self.touched
        nodes = container.children
        changed_groups = {node.tag >> 16 for node in nodes if node in touched}
        if not changed_groups:
            self.original(content_start, content_end)
            return {}
        cursor = content_start
        group_lengths = []
        size_change = {}
        for position, node in enumerate(nodes):
            group = node.tag >> 16
            is_group_length = (not node.tag & 0xFFFF and group in changed_groups
                               and node.offset is not None and node.length == 4
                               and node.children is None and node not in session.deleted
                               and node not in session.new_values)
            if node not in touched and not is_group_length:
                continue  # copied with the stretch it belongs to
            if node.offset is None:
                start_in = next((s.offset for s in nodes[position + 1:] if s.offset is not None),
                                content_end)
            else:
                start_in = node.offset
            self.original(cursor, start_in)
            cursor = start_in
            if is_group_length:
                self.original(node.offset, node.value_offset)
                group_lengths.append((node, self.placeholder(4), self.pos - 4))
                cursor = node.end
                continue
            start = self.pos
            self.node(node, start_in)
            size_before = 0
            if node.offset is not None:
                size_before = node.end - node.offset
                cursor = node.end
            size_change[group] = size_change.get(group, 0) + self.pos - start - size_before
        self.original(cursor, content_end)
        for node, slot, out_start in group_lengths:
            session.reads.append((node.value_offset, node.value_offset + 4))
            raw = self.data[node.value_offset:node.value_offset + 4]
            old = node.encoding.u32.unpack(raw)[0]
            new = old + size_change.get(node.tag >> 16, 0)
            self.chunks[slot] = node.encoding.u32.pack(new & 0xFFFFFFFF)
            if new != old:
                self.record("group_length", node, (node.value_offset, node.value_offset + 4),
                            (out_start, out_start + 4), old, new)
        return size_change

    def node(self, node, start_in):
        session = self.session
        if node in session.deleted:
            if node.offset is not None and not self.inside_new:
                self.record("delete", node, (node.offset, node.end), (self.pos, self.pos),
                            self.describe_old(node), None)
                if node.children is None and node.tag != ITEM:
                    self.note_old_value(node)
        elif node.offset is None:
            self.new_node(node, start_in)
        elif node.children is None:
            self.changed_leaf(node)
        else:
            self.container(node)

    def changed_leaf(self, node):
        value = self.session.new_values[node]
        header = bytearray(self.data[node.offset:node.value_offset])
        length_size = 4 if node.encoding.implicit_vr or node.vr in LONG_LENGTH_VRS else 2
        packer = node.encoding.u32 if length_size == 4 else node.encoding.u16
        header[-length_size:] = packer.pack(len(value))
        start = self.pos
        self.new_bytes(bytes(header) + value)
        old_raw = self.data[node.value_offset:node.value_offset + node.length]
        decode_old = self.decoder(node, original=True)
        self.record("set", node, (node.offset, node.end), (start, self.pos),
                    decode_old(old_raw), self.decode(node, value))
        self.note_old_value(node, decode_old)

    def container(self, node):
        """A sequence or item with a change inside: re-render it, fixing a defined length."""
        start = self.pos
        header_length = node.value_offset - node.offset
        defined = node.length is not None
        if defined:
            slot = self.placeholder(header_length)
        else:
            self.original(node.offset, node.value_offset)
        content_end = node.end - (0 if defined else 8)
        self.children(node, node.value_offset, content_end)
        if not defined:
            self.original(content_end, node.end)
            return
        new_length = self.pos - start - header_length
        header = bytearray(self.data[node.offset:node.value_offset])
        header[-4:] = node.encoding.u32.pack(new_length)
        self.chunks[slot] = bytes(header)
        if new_length != node.length:
            field = (node.value_offset - 4, node.value_offset)
            self.record("length", node, field, (start + header_length - 4, start + header_length),
                        node.length, new_length)

    def new_node(self, node, start_in):
        """An element or item an edit created, inserted at input offset ``start_in``."""
        start = self.pos
        self.inside_new += 1
        if node.children is None:
            value = self.session.new_values[node]
            self.new_bytes(_header(node, len(value)) + value)
            shown = self.decode(node, value)
        else:
            slot = self.placeholder(_header_length(node))
            self.children(node, start_in, start_in)
            self.chunks[slot] = _header(node, self.pos - start - _header_length(node))
            shown = self.describe_new(node)
        self.inside_new -= 1
        if not self.inside_new:
            self.record("add", node, (start_in, start_in), (start, self.pos), None, shown)

    # --- report ----------------------------------------------------------------------------------

    def record(self, op, node, input_range, byte_range, old, new):
        edit, cause = self.session.cause.get(node, (None, None))
        change = {
            "op": op,
            "path": self.path(node),
            "tag": tag_text(node.tag) if node.tag != ITEM else "item",
            "vr": node.vr,
            "old": old,
            "new": new,
            "byte_range": list(byte_range),
            "input_range": list(input_range),
            "edit": None if op in ("length", "group_length") else edit,
        }
        if cause and op not in ("length", "group_length"):
            change["cause"] = cause
        self.changes.append(change)

    def path(self, node):
        return _node_path(node, self.session.deleted)

    def decoder(self, node, original=False):
        """``decode(raw)`` for values of ``node``: a function that holds nothing of the file.

        With ``original``, for its value in the input (in the input's character set).
        """
        vr = node.vr
        if vr == "UN" or node.encoding.implicit_vr:
            try:
                vr = dictionary_VR(node.tag)
            except KeyError:
                vr = "UN"
        return functools.partial(values.decode_value, vr=vr, tag=node.tag,
                                 encodings=self.session.character_set(node.parent, original).codecs,
                                 little_endian=node.encoding.little_endian,
                                 implicit_vr=node.encoding.implicit_vr)

    def decode(self, node, raw):
        return self.decoder(node)(raw)

    def note_old_value(self, node, decode=None):
        """The last change's ``old`` was decoded from ``node``'s input value: a replay on
        another file decodes that file's value instead (with ``decode``, if already made)."""
        self.redecode.append((len(self.changes) - 1, node.value_offset,
                              node.value_offset + node.length,
                              decode or self.decoder(node, original=True)))

    def describe_old(self, node):
        if node.tag == ITEM:
            return f"<item of {len(node.children or ())} elements>"
        if node.children is not None:
            return f"<sequence of {len(node.children)} items>"
        return self.decoder(node, original=True)(
            self.data[node.value_offset:node.value_offset + node.length])

    def describe_new(self, node):
        live = [c for c in node.children if c not in self.session.deleted]
        if node.tag == ITEM:
            return f"<item of {len(live)} elements>"
        return f"<sequence of {len(live)} items>"


def _node_path(node, deleted):
    """The path of an element or item, with item indexes as in the input (in the output for new
    items)."""
    parts = []
    while node is not None and node.tag is not None:
        if node.tag == ITEM:
            siblings = node.parent.children
            if node.offset is not None:
                index = sum(1 for s in siblings[:siblings.index(node)] if s.offset is not None)
            else:
                index = sum(1 for s in siblings[:siblings.index(node)] if s not in deleted)
            parts.append(f"[{index}]")
        else:
            parts.append("." + tag_name(node.tag))
        node = node.parent
    return "".join(reversed(parts)).lstrip(".")


def _header_length(node):
    if node.tag == ITEM or node.encoding.implicit_vr:
        return 8
    return 12 if node.vr in LONG_LENGTH_VRS else 8


def _header(node, length):
    """The header of an element or item an edit created, for a value of ``length`` bytes."""
    encoding = node.encoding
    tag = encoding.tag.pack(node.tag >> 16, node.tag & 0xFFFF)
    if node.tag == ITEM or encoding.implicit_vr:
        return tag + encoding.u32.pack(length)
    if node.vr in LONG_LENGTH_VRS:
        return tag + node.vr.encode() + b"\x00\x00" + encoding.u32.pack(length)
    return tag + node.vr.encode() + encoding.u16.pack(length)


_SCRIPT_HEAD = '''#!/usr/bin/env python3
"""Apply an edit list exported by dcmstudio to every DICOM file in a folder, with pydicom.

Usage: python {script_name} IN_DIR OUT_DIR

Files are read in name order and written under the same names; {{index}} is a file's 1-based
position, {{uid}} a new UID made for each file, {{name}} its file name. Elements that a "set"
or "delete" names but a file lacks are left alone, as dcmstudio does.

The edits, in order:
{summary}
"""
import os
import sys
import uuid

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset

UID_MAP = {{}}  # old UID -> new UID, shared by every file so references between files follow
BINARY_VRS = ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT")


def new_uid():
    return "2.25." + str(uuid.uuid4().int)


def fill(value, fields):
    """Expand the {{index}}, {{uid}} and {{name}} templates."""
    if isinstance(value, list):
        return [fill(v, fields) for v in value]
    return value.format(**fields) if isinstance(value, str) else value


def coerce(vr, value):
    """Numbers written as text become numbers for binary VRs; tags given as text become tags."""
    if isinstance(value, str) and "\\\\" in value and vr in BINARY_VRS:
        value = value.split("\\\\")
    if isinstance(value, list) and vr in ("OB", "UN"):
        return bytes(value)
    if isinstance(value, list):
        value = [coerce_one(vr, v) for v in value]
        return value[0] if len(value) == 1 else value
    return coerce_one(vr, value)


def coerce_one(vr, value):
    if not isinstance(value, str) or vr not in BINARY_VRS:
        return value
    if vr in ("FL", "FD"):
        return float(value)
    if vr == "AT":
        text = value.strip("() ").replace(",", "")
        return int(text, 16) if len(text) == 8 else pydicom.datadict.tag_for_keyword(value)
    return int(value)


def private_tag(dataset, group, creator, element, create):
    """The tag of a private element named by its creator; reserves a block when adding."""
    try:
        return dataset.private_block(group, creator, create=create).get_tag(element)
    except KeyError:
        return None


def items(dataset, tag, index, create=False):
    """The items of a sequence a path goes into: one (index), all ("*"), or none."""
    if tag is None:
        return []
    if tag not in dataset:
        if not (create and index == 0):
            return []
        dataset.add_new(tag, "SQ", [])
    sequence = dataset[tag].value
    if index == "*":
        return list(sequence)
    if create and index == len(sequence):
        sequence.append(Dataset())
    return [sequence[index]] if index < len(sequence) else []


def put(dataset, tag, vr, value):
    """Set an element, adding it (in tag order: pydicom sorts on writing) when absent."""
    if tag in dataset:
        dataset[tag].value = coerce(dataset[tag].VR, value)
    else:
        vr = vr or dictionary_VR(tag)
        dataset.add_new(tag, vr, [] if vr == "SQ" else coerce(vr, value))


def delete_items(dataset, tag, index):
    if tag in dataset:
        sequence = dataset[tag].value
        if index == "*":
            sequence.clear()
        elif index < len(sequence):
            del sequence[index]


def is_remappable(tag, uid):
    """Same rule as dcmstudio: instance UIDs change; class, syntax and well-known UIDs stay."""
    keyword = keyword_for_tag(tag)
    if not uid or uid.startswith("{dicom_root}"):
        return False
    return not keyword or not ("SOPClass" in keyword or "ClassUID" in keyword
                               or "TransferSyntax" in keyword or keyword in {not_remapped!r})


def remap_uids(ds):
    def remap(dataset, element):
        if element.VR == "UI" and element.value:
            old = element.value if element.VM > 1 else [element.value]
            new = [UID_MAP.setdefault(u, new_uid()) if is_remappable(element.tag, u) else u
                   for u in old]
            element.value = new if element.VM > 1 else new[0]
    ds.walk(remap)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.walk(remap)


def edit(ds, index, name):
    fields = {{"index": index, "uid": new_uid(), "name": name}}
'''

_SCRIPT_TAIL = '''

def main(in_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    names = sorted(n for n in os.listdir(in_dir) if os.path.isfile(os.path.join(in_dir, n)))
    for index, name in enumerate(names, start=1):
        ds = pydicom.dcmread(os.path.join(in_dir, name))
        edit(ds, index, name)
        ds.save_as(os.path.join(out_dir, name))


if __name__ == "__main__":
    main(*sys.argv[1:3])
'''


def codify(edits, script_name="edit_dicom.py"):
    """A standalone pydicom script that applies the same edits to every file of a folder.

    The script does with pydicom's dataset model what :func:`apply_edits` does on the bytes
    (pydicom rewrites the whole file; dcmstudio changes only the edited bytes). A person can
    read it, keep it, and run it without dcmstudio: ``python edit_dicom.py IN_DIR OUT_DIR``.

    Parameters
    ----------
    edits : list of dict
        An edit list (checked with :func:`validate_edits`).
    script_name : str
        The name the script's usage line gives.

    Returns
    -------
    str
        Python source.
    """
    compiled = _compile(edits, None)
    summary = "\n".join(f"  {e.index + 1}. {_describe_edit(e)}" for e in compiled) or "  (none)"
    lines = [_SCRIPT_HEAD.format(script_name=script_name, summary=summary,
                                 dicom_root=uids.DICOM_ROOT,
                                 not_remapped=set(sorted(uids.NOT_REMAPPED_KEYWORDS)))]
    touches_instance_uid = False
    for edit in compiled:
        lines.append(f"    # {edit.index + 1}. {_describe_edit(edit)}")
        if edit.op == "remap_uids":
            lines.append("    remap_uids(ds)")
            touches_instance_uid = True
            continue
        touches_instance_uid |= any(s.tag in (SOP_INSTANCE_UID, MEDIA_STORAGE_SOP_INSTANCE_UID)
                                    for s in edit.steps)
        lines.extend(_codify_edit(edit))
    if not compiled:
        lines.append("    pass")
    if touches_instance_uid:
        lines.append("    # (0002,0003) MediaStorageSOPInstanceUID stays equal to SOPInstanceUID")
        lines.append('    if "SOPInstanceUID" in ds and getattr(ds, "file_meta", None) is not None:')
        lines.append("        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID")
    lines.append(_SCRIPT_TAIL)
    return "\n".join(lines)


def _describe_edit(edit):
    if edit.op == "remap_uids":
        return "remap_uids: every instance UID gets a new UID, the same one in every file"
    text = f"{edit.op} {format_path(edit.steps)}"
    if edit.op != "delete" and edit.value is not None:
        text += f" = {edit.value!r}"
    return text.replace('"""', "'''")


def _codify_edit(edit):
    """Nested loops over the items a path goes through, then one statement."""
    adding = edit.op == "add"
    lines, indent, dataset = [], "    ", "ds"
    steps = edit.steps
    for depth, step in enumerate(steps[:-1], start=1):
        if depth == 1 and step.tag is not None and step.tag >> 16 == 2:
            dataset = "ds.file_meta"
        key = _codify_key(step, dataset, adding and step.item == 0)
        index = repr(step.item)
        create = ", create=True" if adding and step.item == 0 else ""
        lines.append(f"{indent}for item{depth} in items({dataset}, {key}, {index}{create}):")
        indent += "    "
        dataset = f"item{depth}"
    last = steps[-1]
    if len(steps) == 1 and last.tag is not None and last.tag >> 16 == 2:
        dataset = "ds.file_meta"
    key = _codify_key(last, dataset, adding and last.item is None)
    value = f"fill({edit.value!r}, fields)" if edit.templated else repr(edit.value)
    if last.item is not None:
        if adding:
            lines.append(f"{indent}items({dataset}, {key}, {last.item!r}, create=True)")
        else:
            lines.append(f"{indent}delete_items({dataset}, {key}, {last.item!r})")
    elif edit.op == "delete":
        lines.append(f"{indent}if {key} in {dataset}:")
        lines.append(f"{indent}    del {dataset}[{key}]")
    elif adding:
        lines.append(f"{indent}put({dataset}, {key}, {edit.vr!r}, {value})")
    else:
        lines.append(f"{indent}if {key} in {dataset}:")
        lines.append(f"{indent}    put({dataset}, {key}, None, {value})")
    return lines


def _codify_key(step, dataset, create):
    if step.tag is None:
        return (f"private_tag({dataset}, 0x{step.group:04X}, {step.creator!r}, "
                f"0x{step.element:02X}, {create})")
    keyword = keyword_for_tag(step.tag)
    return repr(keyword) if keyword else f"0x{step.tag:08X}"

"""Long tasks run step by step, so the worker can report progress and cancel between steps.

A task kind is a class registered with :func:`register`; it is created with its options, handed one
item at a time (usually one loaded file), then finished. Its results are plain dicts; downloads
are named by path (see :mod:`dcmstudio.api`).
"""

import bisect
import dataclasses
import itertools
import json
import os
import shutil
import sys
import warnings
import zlib
from typing import NamedTuple, Optional

from . import header
from .archive import CHUNK_SIZE, ChunkSink, Unread, ZipWriter, member_header, member_name, piece_length
from .bounded import BoundedFile
from .catalog import nested_too_deep, too_deep
from .errors import DicomStudioError, InvalidDicomError, unreadable_as_error
from .replay import SMALL_PIECE

# Input stretches at least this long reach the page as references, not copies.
REFERENCED_PIECE = 1 << 16

_KINDS = {}
_running = {}
_ids = itertools.count(1)


def register(kind):
    """Class decorator: make a task class available to the page under ``kind``."""
    def decorate(cls):
        _KINDS[kind] = cls
        return cls
    return decorate


class Job:
    """Base of task kinds: holds the options and a scratch folder for outputs.

    Subclasses implement ``step(item) -> dict`` and may override ``finish() -> dict``.
    ``reads`` tells the worker what to fetch of each item's file ahead of its step: ``"whole"``,
    or ``"head"`` (its first bytes, as ``item["head"]``; the step reads the rest itself if it
    needs it).
    """

    reads = "whole"

    def __init__(self, options, count, scratch):
        self.options = options
        self.count = count
        self.scratch = scratch
        self.index = 0

    def step(self, item):
        raise NotImplementedError

    def finish(self):
        return {}

    def cancel(self):
        shutil.rmtree(self.scratch, ignore_errors=True)


class ZipJob(Job):
    """A task whose output is one ZIP, streamed to the page member by member."""

    zip_name = "output.zip"

    def __init__(self, options, count, scratch):
        super().__init__(options, count, scratch)
        self.sink = ChunkSink(os.path.join(scratch, "zip"))
        self.zip = ZipWriter(self.sink)

    def chunks(self, final=False):
        """The ZIP's parts written since the last call, for the worker to move to the page:
        chunk files (``path``) and stretches of loaded files (``source``, ``offset``,
        ``length``; see :class:`dcmstudio.archive.ChunkSink`)."""
        parts = self.sink.take_chunks(final=final)
        return [{**part, "name": self.zip_name, "mime": "application/zip",
                 "final": final and i == len(parts) - 1} for i, part in enumerate(parts)]

    def member_parts(self, member, size, crc, parts):
        """One output file of a task shared out (``container`` ``"members"`` or ``"files"``) as
        the page takes it: ``member`` (name, size, CRC: None for a file in a folder) and
        ``chunks``, its ``parts`` named after it, the last one marked final."""
        mime = "application/zip" if self.container == "members" else "application/dicom"
        chunks = [{**part, "name": member, "mime": mime, "final": i == len(parts) - 1} for i, part in enumerate(parts)]
        return {"member": {"name": member, "size": size, "crc": crc}, "chunks": chunks}

    def finish_zip(self):
        self.zip.close()
        return self.chunks(final=True)

    def directory_record(self, output, item):
        """With the option ``dicomdir`` of a folder save (``container`` ``"files"``), the step's
        ``directory_record``: the output's directory records (``output``: a path, or its pieces),
        made from its header (see :func:`dcmstudio.dicomdir.record_source`); else nothing."""
        if not (self.options.get("dicomdir") and self.container == "files"):
            return {}
        from . import dicomdir
        if not isinstance(output, str):
            output = _PiecesReader(output)
        return {"directory_record": dicomdir.record_source(output, item["name"], item.get("index", self.index + 1))}


def start(kind, options, count, output_path):
    """Create a task; return its id."""
    cls = _KINDS.get(kind)
    if cls is None:
        raise DicomStudioError(f"there is no task called '{kind}'")
    job_id = next(_ids)
    scratch = output_path(f"job{job_id}")
    os.makedirs(scratch, exist_ok=True)
    _running[job_id] = cls(options, count, scratch)
    return job_id


def reads(job_id):
    """What the worker fetches ahead of each step of a task (see :class:`Job`)."""
    return _job(job_id).reads


def _job(job_id):
    job = _running.get(job_id)
    if job is None:
        raise DicomStudioError(f"task {job_id} is not running (it finished or was cancelled)")
    return job


def step(job_id, item):
    job = _job(job_id)
    result = job.step(item)
    job.index += 1
    return result


def finish(job_id):
    job = _running.pop(job_id, None)
    if job is None:
        raise DicomStudioError(f"task {job_id} is not running (it finished or was cancelled)")
    return job.finish()


def cancel(job_id):
    job = _running.pop(job_id, None)
    if job is not None:
        job.cancel()


# ---- Task kinds ----------------------------------------------------------------------------------

def read_file(path, name=None):
    """A whole file as bytes, read with one call where the system allows (no buffered reader:
    in the page each file object costs more than reading half a megabyte).

    Raises
    ------
    UnreadableFileError
        The file cannot be read any more (in the page: moved, deleted or changed on disk since
        the user opened it).
    """
    with unreadable_as_error(name or os.path.basename(path)):
        return _read_whole(path, name or os.path.basename(path))


def read_item(item):
    """The bytes of a job item's file: from ``item["local"]`` when the worker fetched them ahead
    (a scratch copy, deleted here), else from ``item["path"]``. Offsets into them are offsets
    into ``item["path"]`` either way."""
    local = item.get("local")
    if local:
        try:
            return _read_whole(local)
        finally:
            os.remove(local)
    return read_file(item["path"], item.get("name"))


def take_prefetched_head(item):
    """The first bytes of an item's file that the worker fetched ahead of its step (``item["head"]``,
    a scratch copy, deleted here), or None when it fetched none."""
    head_path = item.get("head")
    if not head_path:
        return None
    try:
        return _read_whole(head_path)
    finally:
        os.remove(head_path)


def read_item_for_edit(item, head_only=False, read_head=None, cut=False, stand_in=None):
    """The bytes of a job item's file an edit needs, and where the bytes not read begin.

    With ``head_only`` and a head that shows the file ending with its pixel data, the pixel
    data's value is not read: zeros stand in for it, at its place, and ``tail`` is its offset;
    with ``cut`` as well, ``data`` ends at ``tail`` instead (nothing stands in for the value:
    the file's size is not held in memory, see :func:`with_unread_tail`). ``stand_in``: a
    zeroed ``bytearray`` of the file's size the caller made with ``read_head`` copied in, used
    instead of a new one.
    The head is the one the worker fetched (``item["head"]``, a scratch copy of the file's first
    bytes, deleted here), or else the file's first :data:`HEAD_BYTES` read in place (the command).
    Output pieces from ``tail`` on are then never the file's bytes: they must reach the page as
    references to the opened file, or be copied from it (an edit neither reads nor changes them).
    Otherwise the whole file is read, and ``tail`` is None.

    Returns
    -------
    data : bytes or bytearray
    tail : int or None
    size : int
        The file's size.
    """
    name = item.get("name") or os.path.basename(item["path"])
    head = take_prefetched_head(item) if read_head is None else None
    if read_head is not None:
        head, size = read_head  # what head_and_size gave the caller
    elif head is not None:
        size = None
    elif head_only:
        with unreadable_as_error(name):
            head, size = _read_head(item["path"])
    else:
        data = read_item(item)
        return data, None, len(data)
    if head_only:
        if size is None:
            with unreadable_as_error(name):
                size = os.stat(item["path"]).st_size
        if len(head) == size:
            return head, None, size
        tail = header.pixel_data_tail(head, size)
        # A shorter stretch of input would be joined with its neighbours into new bytes (see
        # dcmstudio.replay.coalesce), zeros and all: it is read.
        if tail is not None and size - tail >= SMALL_PIECE:
            if cut:
                return bytes(memoryview(head)[:tail]), tail, size
            if stand_in is not None and len(stand_in) == size:
                data = stand_in  # the file's size once, not twice
                data[tail:len(head)] = bytes(len(head) - tail)
            else:
                held_whole(size, name)
                data = bytearray(size)  # zeroed as it is allocated: only the head is copied in
            data[:tail] = memoryview(head)[:tail]
            return data, tail, size
    data = read_file(item["path"], item.get("name"))
    return data, None, len(data)


# The pixel data element's header: tag, VR, 2 reserved bytes and a 4-byte length in explicit VR.
_PIXEL_HEADER = 12


def with_unread_tail(pieces, origins, report, data, tail, size):
    """The output of an edit of ``data``, a file's bytes cut where its pixel data's value
    starts (``tail``; see :func:`read_item_for_edit`), with the value put back as an
    :class:`~dcmstudio.archive.Unread` piece, and the report's sizes those of the whole file; or ``None`` when the
    edit did not keep the pixel data element as the output's unchanged end (it was edited or
    removed, or something was added after it): the file must then be read whole."""
    kept = data[max(0, tail - _PIXEL_HEADER):tail]
    if any(change["input_range"][1] > tail - len(kept) for change in report["changes"]):
        return None
    if b"".join(pieces)[-len(kept):] != kept:  # the output's header only: a few KB
        return None
    report["size_in"], report["size_out"] = size, report["size_out"] + size - tail
    return pieces + [Unread(tail, size - tail)], origins + [tail]


# A ZIP member's CRC reads the bytes of an Unread piece in chunks of this size.
CRC_CHUNK = 16 << 20


def crc_of_stretch(path, offset, length, crc, name):
    """``zlib.crc32`` of ``length`` bytes of the file at ``path`` from ``offset``, continuing
    ``crc``, read ``CRC_CHUNK`` at a time (in the page, each read is one slice of the opened
    file); a file that is shorter now, or cannot be read, is named."""
    with unreadable_as_error(name), open(path, "rb", buffering=0) as f:
        f.seek(offset)
        left = length
        while left:
            chunk = f.read(min(left, CRC_CHUNK))
            if not chunk:
                raise DicomStudioError(f"{name} is shorter than when it was opened (changed on disk since?); "
                                       "it was not written.", file=name)
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
    return crc


def head_and_size(item):
    """A job item's first bytes (the worker's fetched head, deleted here, else the first
    :data:`HEAD_BYTES` of the file) and the file's size."""
    name = item.get("name") or os.path.basename(item["path"])
    head = take_prefetched_head(item)
    with unreadable_as_error(name):
        if head is None:
            return _read_head(item["path"])
        return head, os.stat(item["path"]).st_size


def unread_kept(pieces, origins, tail, size):
    """Whether the output ``pieces`` hold the input's unread bytes (from ``tail`` to ``size``, see
    :func:`read_item_for_edit`) only as pieces of their own, whose origins say so: never the
    zeros that stand in for them inside new bytes. True when all was read (``tail`` None)."""
    if tail is None:
        return True
    return sum(len(piece) for piece, origin in zip(pieces, origins) if origin is not None and origin >= tail) \
        == size - tail


def split_at_tail(pieces, origins, tail):
    """``pieces`` and ``origins`` with the piece that straddles ``tail`` cut in two there, so
    that every piece is wholly before ``tail`` or wholly from it on (see
    :func:`read_item_for_edit`)."""
    if tail is None:
        return pieces, origins
    cut_pieces, cut_origins = [], []
    for piece, origin in zip(pieces, origins):
        if origin is not None and origin < tail < origin + len(piece):
            cut = tail - origin
            cut_pieces += [piece[:cut], piece[cut:]]
            cut_origins += [origin, tail]
        else:
            cut_pieces.append(piece)
            cut_origins.append(origin)
    return cut_pieces, cut_origins


# As much of a file as the page's worker fetches ahead of a head-only step (static/worker.js).
HEAD_BYTES = 64 * 1024


def _read_head(path):
    """The file's first :data:`HEAD_BYTES` (fewer if it is shorter) and its size, with one open."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, HEAD_BYTES, 0), os.fstat(fd).st_size
    finally:
        os.close(fd)


# The largest object this Python can hold: 2 GiB in the page's 32-bit Python.
LARGEST_HELD = sys.maxsize


def held_whole(size, name):
    """Refuse, with a sentence, to hold a file of ``size`` bytes whole in memory where one Python
    object cannot be that large (:data:`LARGEST_HELD`)."""
    if size > LARGEST_HELD:
        raise DicomStudioError(
            f"{name} is {size / 2**30:.1f} GiB: this task needs the whole file in memory, and the "
            f"page's Python holds at most 2 GiB at once. It was left out; the command-line tool "
            f"(dcmstudio) can process it.", file=name)


def _read_whole(path, name=None):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        held_whole(size, name or os.path.basename(path))
        parts, got = [], 0
        while got < size:
            part = os.read(fd, size - got)
            if not part:
                break  # the file shrank while being read
            parts.append(part)
            got += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        os.close(fd)


class _PiecesReader:
    """A read-only file over a list of bytes-like pieces, so an output can be re-read unjoined;
    it ends where an :class:`~dcmstudio.archive.Unread` piece starts (re-reads stop before the pixel data)."""

    def __init__(self, pieces):
        pieces = itertools.takewhile(lambda piece: not isinstance(piece, Unread), pieces)
        self._pieces = [memoryview(piece).cast("B") for piece in pieces]
        self._starts = list(itertools.accumulate((len(p) for p in self._pieces), initial=0))
        self._position = 0

    def read(self, size=-1):
        end = self._starts[-1] if size is None or size < 0 else min(self._starts[-1], self._position + size)
        out = bytearray()
        index = bisect.bisect_right(self._starts, self._position) - 1
        while self._position < end:
            piece, start = self._pieces[index], self._starts[index]
            chunk = piece[self._position - start:end - start]
            out += chunk
            self._position += len(chunk)
            index += 1
        return bytes(out)

    def seek(self, offset, whence=0):
        base = {0: 0, 1: self._position, 2: self._starts[-1]}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self):
        return self._position


def check_reread(pieces, name):
    """Re-read an output's header with pydicom, as whoever receives it will; refuse it if that fails.

    Every job kind calls this (or :func:`check_reread_file`) before it offers a DICOM output: a
    file dcmstudio could edit at the byte level may still be one pydicom cannot parse.
    """
    _reread(_PiecesReader(pieces), name)


def check_reread_file(path, name):
    """:func:`check_reread` for an output written to ``path`` (its header only is read)."""
    with BoundedFile(path) as f:
        _reread(f, name)


def _reread(source, name):
    import pydicom
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(source, stop_before_pixels=True, force=True)
            if not len(ds) and not len(ds.file_meta):
                raise ValueError("it holds no elements")
    except Exception as exc:  # noqa: BLE001 -- any failure to re-read means: not offered
        if nested_too_deep(exc):  # the input nests as deep: the sentence its readers say
            raise InvalidDicomError(too_deep(name, "when its output was read back") + " The output was "
                                    "not offered.", file=name) from exc
        raise DicomStudioError(f"the file written from {name} could not be read back with pydicom "
                               f"({type(exc).__name__}: {exc}); it was not offered.", file=name) from exc


def _check_part10(pieces, name):
    """The cheap re-read every output gets before it is offered: preamble and 'DICM' prefix."""
    head = bytearray()
    for piece in pieces:
        head += piece[:132 - len(head)]
        if len(head) >= 132:
            break
    if head[128:132] != b"DICM":
        raise DicomStudioError("the edited file lost its DICM prefix; it was not offered", file=name)


def listed_errors(findings):
    """Validation findings as a job's report lists them: ``[{"path", "rule", "message"}]``."""
    return [{"path": f["path"], "rule": f["rule"], "message": f["message"]} for f in findings]


def new_errors_of(data, pieces, name):
    """The errors an output (``pieces``) gained over its input (``data``), both in memory; see
    :func:`dcmstudio.validate.new_errors_in`. The output is still offered: the user decides."""
    from . import validate
    return listed_errors(validate.new_errors_in(data, pieces, name))


class EditedItem(NamedTuple):
    """One file as :func:`edit_item` edited it."""

    pieces: list
    """The output, as :func:`dcmstudio.edit.edit_output` gives it; with a ``tail``, the last
    piece is the :class:`~dcmstudio.archive.Unread` pixel data."""
    origins: list
    """Per piece, its offset in the input, or None for new bytes."""
    report: dict
    """:func:`dcmstudio.edit.edit_output`'s report, plus ``new_errors``: the validation errors
    the output has and the input had not (see :func:`new_errors_of`); with ``say_cut_short``,
    ``cut_short`` too (see :func:`edit_item`)."""
    part10: bool
    """Whether the input had a DICM prefix (so the output has one)."""
    tail: Optional[int]
    """Where the input's bytes that were not read begin (see :func:`read_item_for_edit`): the
    pieces from there on stand in for them and must go as references. None: all was read."""


def edit_item(item, edits, context, head_only=False, say_cut_short=False):
    """One file edited as the edit task edits it (read, edited, its output checked); the command
    (:mod:`dcmstudio.cli.tasks`) calls it too. ``head_only``: see :func:`read_item_for_edit`.

    An edit that does not reach the pixel data edits a file cut short inside it as it is: its
    output is cut short in the same place. With ``say_cut_short`` (the command's; the page knows
    it from opening the file), the report's ``cut_short`` then says where the input ends (see
    :func:`dcmstudio.catalog.pixel_data_truncation`), else it is None. A file read from its head
    only is whole: its pixel data was seen to end the file.

    Returns
    -------
    EditedItem
    """
    from . import edit
    replay = context.get("replay")
    replayed = replay.replayed if replay is not None else None
    # edits that reach the pixel data need it read
    data, tail, size = read_item_for_edit(item, head_only and not edit.reaches_pixel_data(edits), cut=True)
    pieces, origins, report = edit.edit_output(data, edits, context=context if tail is None
                                               else {**context, "pixels_unread": True})
    if tail is not None:
        whole = with_unread_tail(pieces, origins, report, data, tail, size)
        if whole is None:
            # the edit reaches the pixel data, or adds after it: it needs the whole file
            data, tail = read_file(item["path"], item["name"]), None
            pieces, origins, report = edit.edit_output(data, edits, context=context)
        else:
            pieces, origins = whole
    if say_cut_short:
        from .catalog import pixel_data_truncation
        report["cut_short"] = None if tail is not None else pixel_data_truncation(item["path"], item["name"], data)
    part10 = data[128:132] == b"DICM"
    if part10:
        _check_part10(pieces, item["name"])
    # A replayed file's header is laid out byte for byte as the last one walked, re-read and
    # validated, with the same new values: it gains exactly the errors that one gained (the values
    # replay does not compare are not edited, so they are the input's, errors included).
    if replay is not None and replay.replayed != replayed:
        report["new_errors"] = list(replay.new_errors)
        return EditedItem(pieces, origins, report, part10, tail)
    try:
        check_reread(pieces, item["name"])
    except DicomStudioError:
        if replay is not None:
            replay.__init__()  # never replay a layout that failed
        raise
    # an unchanged output is its input (as the job knows it: with a tail, its head and the
    # pixel data not read)
    known = data if tail is None else [data, pieces[-1]]
    report["new_errors"] = new_errors_of(known, pieces, item["name"]) if report["changes"] else []
    if replay is not None:
        replay.new_errors = report["new_errors"]
    return EditedItem(pieces, origins, report, part10, tail)


@register("edit")
class EditJob(ZipJob):
    """Byte-level edits over many files (see :mod:`dcmstudio.edit`), one consistent UID map.

    Options: ``edits`` (list of edit dicts), ``single`` (True: the one file is offered under its
    own name instead of a ZIP), ``zip_name``, ``key`` (hex; new UIDs are derived from it, so every
    worker of a job spread over several gives the same answers), ``container``:

    - ``"zip"`` (default): one ZIP streamed by this job;
    - ``"members"``: each file as a ZIP member (local header, then its bytes), in parts named by
      the member, for the page to put in order; the page asks :func:`dcmstudio.archive.
      central_directory` for the end;
    - ``"files"``: each file's bytes alone, in parts named by its relative path (a folder save).

    Each item: ``{"path", "name"}`` of a loaded file, and optionally ``"index"`` (its 1-based
    position in the whole job, for ``{index}``) and ``"member"`` (its name in the output).
    Every file's full report goes to a JSON-lines file offered beside the output, so nothing held
    in memory grows with the series.
    """

    def __init__(self, options, count, scratch):
        from . import edit, replay, uids
        self.edits = options["edits"]
        edit.validate_edits(self.edits)
        self.single = bool(options.get("single")) and count == 1
        self.zip_name = options.get("zip_name") or "edited.zip"
        self.container = options.get("container") or "zip"
        if self.container not in ("zip", "members", "files"):
            raise DicomStudioError(f"an edit job writes a zip, members or files, not '{self.container}'")
        # A ZIP member's CRC needs every byte; a file in a folder only what is edited.
        self.reads = "head" if self.container == "files" else "whole"
        super().__init__(options, count, scratch)
        key = options.get("key")
        self.uid_map = uids.UidMap(key=bytes.fromhex(key) if key else None)
        self.replay = replay.SeriesReplay()
        self.first_report = None
        self.edited = 0
        self.changes = 0
        self.with_new_errors = 0
        self.failures = []
        self.report_path = os.path.join(scratch, "report.jsonl")
        self.report_file = open(self.report_path, "w", encoding="utf-8")

    def step(self, item):
        name = item["name"]
        index = item.get("index", self.index + 1)
        context = {"index": index, "uid_map": self.uid_map, "name": name, "replay": self.replay}
        try:
            # A folder save takes unchanged pixel data from the opened file: only heads are read;
            # so does one file offered alone, and a ZIP for a file the worker fetched only the
            # head of (a large one), whose CRC is then read in chunks (see Unread).
            head_only = self.reads == "head" or self.single or (self.container == "members" and bool(item.get("head")))
            pieces, origins, report, _, tail = edit_item(item, self.edits, context, head_only=head_only)
            record = self.directory_record(pieces, item)
        except DicomStudioError as exc:
            return self._failed(name, index, exc)
        # Large stretches of the input go to the page as references to the file it opened.
        sources = [(item["path"], origin) if origin is not None and (piece_length(piece) >= REFERENCED_PIECE
                                                                     or tail is not None and origin >= tail)
                   else None for piece, origin in zip(pieces, origins)]
        member = member_name(item.get("member") or name)
        if self.container != "zip" and not self.single:
            try:
                record.update(self._member(member, pieces, sources, name))
            except DicomStudioError as exc:  # the pixel data read for the CRC no longer reads
                return self._failed(name, index, exc)
        self.edited += 1
        self.changes += len(report["changes"])
        self.with_new_errors += bool(report["new_errors"])
        self.first_report = self.first_report or {**report, "index": index}
        done = {"changes": len(report["changes"]), "new_errors": report["new_errors"]}
        if self.single:
            # in parts, its unchanged pixel data a reference to the opened file: never whole in
            # memory, however large the file
            out_name = member_name(name).rsplit("/", 1)[-1]
            self.report_file.write(json.dumps({**report, "member": out_name}) + "\n")
            for piece, source in zip(pieces, sources):
                if source is not None:
                    self.sink.expect_reference(*source, piece_length(piece))
                self.sink.write(piece)
            parts = self.sink.take_chunks(final=True)
            return {**done, "chunks": [{**part, "name": out_name, "mime": "application/dicom",
                                        "final": i == len(parts) - 1} for i, part in enumerate(parts)]}
        if self.container == "zip":
            member = self.zip.add_pieces(pieces, name, sources)
            self.report_file.write(json.dumps({**report, "member": member}) + "\n")
            return {**done, "member": {"name": member}, "chunks": self.chunks()}
        self.report_file.write(json.dumps({**report, "member": member}) + "\n")
        return {**done, **record}

    def _failed(self, name, index, exc):
        """One bad file does not stop the series: it is reported and left out."""
        self.failures.append({"file": name, "message": exc.message, "index": index})
        self.report_file.write(json.dumps({"file": name, "error": exc.message}) + "\n")
        return {"changes": 0, "error": {"file": name, "message": exc.message}}

    def _member(self, member, pieces, sources, name=None):
        """One output file as parts for the page: ``member`` (name, size, CRC) and ``chunks``;
        ``name``: its input's, named if its unread pixel data cannot be read for the CRC."""
        size = sum(piece_length(piece) for piece in pieces)
        crc = None  # a file in a folder needs none (and its pixel data may not have been read)
        if self.container == "members":
            crc = 0
            for piece, source in zip(pieces, sources):
                crc = crc_of_stretch(source[0], piece.offset, piece.length, crc, name or member) \
                    if isinstance(piece, Unread) else zlib.crc32(piece, crc)
            self.sink.write(member_header(member, size, crc))
        for piece, source in zip(pieces, sources):
            if source is not None:
                self.sink.expect_reference(*source, piece_length(piece))
            self.sink.write(piece)
        return self.member_parts(member, size, crc, self.sink.take_chunks(final=True))

    def finish(self):
        self.report_file.close()
        summary = {"files": self.edited, "failed": self.failures, "changes": self.changes,
                   "files_with_new_errors": self.with_new_errors}
        result = {"summary": summary, "first_report": self.first_report}
        if self.single:
            return result
        stem = os.path.splitext(self.zip_name)[0]
        report = {"path": self.report_path, "name": f"{stem}_report.jsonl", "mime": "application/x-ndjson"}
        if self.container != "zip":
            return {**result, "outputs": [report]}
        return {**result, "chunks": self.finish_zip(), "outputs": [report]}

    def cancel(self):
        self.report_file.close()
        super().cancel()


# Edits of the kinds a person makes first: a name, a description, a private element removed.
_WARM_UP_EDITS = [
    {"op": "set", "path": "PatientName", "value": "Warmed^Up"},
    {"op": "set", "path": "StudyDescription", "value": "WARM-UP"},
    {"op": "delete", "path": "(0009,1002)"},
]


def prepare_edit(scratch):
    """Edit a made-up series once per process, as a shared edit task does (into a ZIP's members
    and into a folder's files), and throw it away: a worker's first edit otherwise pays for
    imports, the IODs' tables (its outputs are validated) and code run for the first time, which
    measured 0.2-0.45 s of CPU per worker of the page, within the person's wait. Nothing of it
    reaches a later task: each task has its own UID map and layouts.
    """
    os.makedirs(scratch, exist_ok=True)
    paths = _warm_up_series(scratch)
    for container in ("members", "files"):
        folder = os.path.join(scratch, container)
        os.makedirs(folder)
        job = EditJob({"edits": _WARM_UP_EDITS, "container": container, "key": bytes(32).hex()}, len(paths), folder)
        for index, path in enumerate(paths, start=1):
            name = os.path.basename(path)
            answer = job.step({"path": path, "name": name, "index": index, "member": name})
            if answer.get("error"):  # a warm-up that fails says so, not a cold worker later
                raise DicomStudioError(f"the edit warm-up failed: {answer['error']['message']}")
        job.finish()


_warmed_up = set()  # the kinds of task this process has warmed up for (see WarmUpJob)


class WarmUpJob(Job):
    """A worker's warm-up for a kind of task (``warm_up``: a function of a scratch folder), done
    when it opens, once per process and ``kind``: the page opens it with no items on every worker
    ahead of such a task. Finishing answers ``{"prepared": bool}`` (whether it ran now)."""

    kind = None
    warm_up = None

    def __init__(self, options, count, scratch):
        super().__init__(options, count, scratch)
        self.prepared = self.kind not in _warmed_up
        try:
            if self.prepared:
                type(self).warm_up(scratch)
                _warmed_up.add(self.kind)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def finish(self):
        return {"prepared": self.prepared}


@register("edit_prepare")
class EditPrepareJob(WarmUpJob):
    """A worker's warm-up for edits (see :func:`prepare_edit`)."""

    kind = "edit"
    warm_up = staticmethod(prepare_edit)


@register("write_series")
class WriteSeriesJob(ZipJob):
    """The volume opened in :mod:`dcmstudio.api` written as a DICOM series, streamed as a ZIP.

    Options: ``options`` for :func:`dcmstudio.series.plan_series`, ``volume`` (the opened
    :class:`dcmstudio.volume.Volume`, passed by the api), ``zip_name``. One step per file (or per
    frame of one multi-frame file); items carry nothing but their position.
    """

    def __init__(self, options, count, scratch):
        from . import series
        self.zip_name = options.get("zip_name") or "series.zip"
        super().__init__(options, count, scratch)
        folder = os.path.splitext(os.path.basename(self.zip_name))[0]
        multiframe = bool(options["options"].get("multiframe"))
        # The series goes into this job's own ZipWriter (one archive, closed by finish_zip).
        self.writer = series.SeriesWriter(options["volume"], options["options"], os.path.join(scratch, folder),
                                          zip_to=None if multiframe else self.zip, keep_files=multiframe)
        self.multiframe_name = self.writer.plan.names[0] if multiframe else None

    def step(self, item):
        if not self.writer.done:
            self.writer.step()
        return {"chunks": self.chunks()}

    def finish(self):
        result = self.writer.finish()
        if self.multiframe_name:
            # One multi-frame file is offered as itself, not inside a ZIP.
            path = result["paths"][0]
            return {"result": _plain(result), "outputs": [{"path": path, "name": self.multiframe_name,
                                                            "mime": "application/dicom"}]}
        return {"result": _plain(result), "chunks": self.finish_zip()}

    def cancel(self):
        self.writer.cancel()
        super().cancel()


def _plain(result):
    """The writer's result without MEMFS paths, which mean nothing to the page."""
    return {k: v for k, v in result.items() if k not in ("paths", "zip_path")}


# What codecs says of a file without pixel data; in a lossy run such a file may still need writing.
NO_PIXEL_DATA = "has no (7FE0,0010) Pixel Data"


def compress_item(item, out, target, verify, lossy_settings=None, new_uid_of=None, follow_references=True):
    """One file written to ``out`` in ``target`` as the compress task writes it, its output
    checked; the command calls it too. Returns :func:`dcmstudio.codecs.compress`'s report, with
    ``new_errors`` (see :func:`new_errors_of`; the input is read again only when the output has
    errors). With ``lossy_settings`` (see :func:`dcmstudio.codecs.compress`) and
    ``follow_references``, a file without pixel data that refers to an instance in ``new_uid_of``
    is written again with its references followed (and a new UID of its own when it has one in
    ``new_uid_of``)."""
    from . import codecs, validate
    name = item["name"]
    local = item.get("local")  # a copy the worker fetched ahead: read, then deleted
    try:
        report = codecs.compress(local or item["path"], out, target, name=name, verify=verify,
                                 lossy_settings=lossy_settings, new_uid_of=new_uid_of)
    except DicomStudioError as exc:
        if lossy_settings is None or not new_uid_of or not follow_references or NO_PIXEL_DATA not in exc.message:
            raise
        report = _follow_references(item, out, new_uid_of, exc.message)
    finally:
        if local and os.path.exists(local):
            os.remove(local)
    with open(out, "rb") as f:
        if f.read(132)[128:] != b"DICM":
            raise DicomStudioError(f"The file written from {name} has no DICM prefix; it was "
                                   "not offered.", file=name)
    check_reread_file(out, name)
    report["new_errors"] = listed_errors(validate.new_errors(item["path"], out, name))
    return report


class _SelectedInstances:
    """A UID map for the byte-level editor's ``remap_uids`` that replaces only the UIDs of the
    instances recompressed in the run, and leaves every other UID as it is."""

    def __init__(self, new_uid_of):
        self.new_uid_of = new_uid_of

    def __getitem__(self, old):
        return self.new_uid_of.get(old, old)


def _follow_references(item, out, new_uid_of, no_pixels):
    """A file without pixel data in a lossy run (a presentation state, an SR...): its references
    to recompressed instances rewritten by the byte-level editor, every other byte kept."""
    import io

    import pydicom

    from . import codecs, edit, lossy
    name = item["name"]
    data = read_item(item)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    own = str(header.get("SOPInstanceUID") or "")
    followed = sorted(lossy.remap_instance_uids(header, new_uid_of) - {own})
    if not followed:
        raise DicomStudioError(f"{no_pixels.rstrip('.')}, and refers to no image recompressed in this run.", file=name)
    pieces, _, report = edit.edit_output(data, [{"op": "remap_uids"}],
                                         context={"uid_map": _SelectedInstances(new_uid_of), "name": name})
    if data[128:132] == b"DICM":
        _check_part10(pieces, name)
    with open(out, "wb") as f:
        f.writelines(pieces)
    size = sum(len(piece) for piece in pieces)
    syntax = codecs.describe_transfer_syntax(report["transfer_syntax"])
    return {"transfer_syntax": syntax, "source_transfer_syntax": syntax,
            "frames": 0, "input_bytes": len(data), "output_bytes": size, "verified": False,
            "not_verified_because": "it has no pixel data: only its references to recompressed instances changed",
            "dropped": [], "references_followed": followed,
            "sop_instance_uid": {"old": own, "new": new_uid_of.get(own, own)}}


@register("compress")
class CompressJob(ZipJob):
    """Loaded files written again in another transfer syntax (see :mod:`dcmstudio.codecs`).

    Options: ``transfer_syntax`` (a UID :func:`dcmstudio.api.compress_choices` offers),
    ``verify`` (decode each output and compare every frame with its source; default True),
    ``single`` (True: the one file is offered as itself, not in a ZIP), ``zip_stem`` (the ZIP is
    ``<zip_stem>_<syntax>.zip``), ``container`` (as in the edit task: ``"zip"``, the default,
    ``"members"`` or ``"files"``, for a task shared out over several workers). Each item:
    ``{"path", "name"}`` of a loaded file, ``sop_instance_uid`` when known, and ``member`` (its
    name in the output) when shared out. A file that cannot be written is reported and left out;
    the others go on.

    A lossy target needs ``lossy``: ``{"ratio": float}`` for JPEG 2000, ``{"quality": int}`` for
    JPEG Baseline (see :class:`dcmstudio.lossy.LossySettings`), and takes ``instances`` (the SOP
    Instance UIDs of every selected file: each gets a new UID, and references to it in the other
    outputs follow it) and ``key`` (hex; new UIDs are derived from it, as in the edit task, so
    every worker knows the new UID of every file). Files without pixel data (a presentation state,
    an SR) are written last, with their references followed to the images that were written: in a
    ZIP, when the task finishes; shared out, their step answers ``{"later": true}`` and the page
    sends them again once every other file is done, each with ``last_round``: the SOP Instance
    UIDs of the files that failed (each failed step names its own as ``for_last_round``).
    """

    def __init__(self, options, count, scratch):
        from . import codecs, uids
        self._codecs = codecs
        self.target, self.lossy = compress_target(options)
        self.new_uid_of = None
        if self.lossy is not None:
            key = bytes.fromhex(options["key"]) if options.get("key") else os.urandom(32)
            self.new_uid_of = {uid: uids.keyed_uid(key, uid) for uid in options.get("instances") or [] if uid}
        self.suffix = compress_suffix(self.target)
        self.verify = bool(options.get("verify", True))
        self.single = bool(options.get("single")) and count == 1
        self.zip_name = f"{options.get('zip_stem') or 'dcmstudio'}_{self.suffix}.zip"
        self.container = options.get("container") or "zip"
        if self.container not in ("zip", "members", "files"):
            raise DicomStudioError(f"a compress job writes a zip, members or files, not '{self.container}'")
        super().__init__(options, count, scratch)
        self.reports = []
        self.failures = []
        # Lossy runs write files without pixel data last, once it is known which images were written.
        self.deferred = []
        self.unwritten = {}  # SOP Instance UID -> name, of the files that failed

    def step(self, item):
        name = item["name"]
        out = os.path.join(self.scratch, f"{self.index}.dcm")
        if "last_round" in item:
            unwritten = set(item["last_round"])
            new_uid_of = {uid: new for uid, new in self.new_uid_of.items() if uid not in unwritten}
        try:
            if "last_round" in item:
                report = compress_item(item, out, self.target, self.verify, self.lossy, new_uid_of)
            else:
                # files without pixel data wait for the end (see _write_deferred)
                report = compress_item(item, out, self.target, self.verify, self.lossy, self.new_uid_of,
                                       follow_references=False)
            record = self.directory_record(out, item)
        except DicomStudioError as exc:
            if os.path.exists(out):
                os.remove(out)
            if self.lossy is not None and NO_PIXEL_DATA in exc.message and self.new_uid_of \
                    and "last_round" not in item:
                if self.container != "zip":
                    return {"report": None, "later": True}
                self.deferred.append(item)
                return {"report": None, "deferred": {"file": name, "message": "written last, once the images it "
                                                     "refers to are (if it refers to any)"}}
            self.failures.append({"file": name, "message": exc.message})
            self.unwritten[item.get("sop_instance_uid")] = name
            return {"report": None, "error": {"file": name, "message": exc.message},
                    "for_last_round": item.get("sop_instance_uid")}
        return {**self._written(item, out, report), **record}

    def _written(self, item, out, report):
        name = item["name"]
        report = {"file": name, **report}
        self.reports.append(report)
        if self.single:
            stem = os.path.splitext(member_name(name).rsplit("/", 1)[-1])[0] or "file"
            out_name = member_name(f"{stem}_{self.suffix}.dcm")
            return {"report": report, "outputs": [{"path": out, "name": out_name, "mime": "application/dicom"}]}
        if self.container != "zip":
            report["member"] = member_name(item.get("member") or name)
            return {"report": report, "new_errors": report["new_errors"], **self._member(report["member"], out)}
        report["member"] = self.zip.add_file(out, name)
        os.remove(out)
        return {"report": report, "chunks": self.chunks()}

    def _member(self, member, out):
        """The output at ``out`` as parts for the page: ``member`` (name, size, CRC) and ``chunks``
        (a ZIP member's local header, for ``"members"``, then the file itself, moved, not copied)."""
        size = os.path.getsize(out)
        crc = None
        chunks = []
        if self.container == "members":
            crc = 0
            with open(out, "rb") as f:
                for block in iter(lambda: f.read(CHUNK_SIZE), b""):
                    crc = zlib.crc32(block, crc)
            self.sink.write(member_header(member, size, crc))
            chunks = self.sink.take_chunks(final=True)
        return self.member_parts(member, size, crc, chunks + [{"path": out}])

    def _write_deferred(self):
        """Files without pixel data in a lossy run, written with their references to the images
        that were written (and only those) followed; returns their steps' results."""
        written = {r["sop_instance_uid"]["old"]: r["sop_instance_uid"]["new"] for r in self.reports}
        own = {item.get("sop_instance_uid") for item in self.deferred}
        new_uid_of = {**{uid: new for uid, new in self.new_uid_of.items() if uid in own}, **written}
        results = []
        for item in self.deferred:
            out = os.path.join(self.scratch, f"deferred_{len(results)}.dcm")
            try:
                report = compress_item(item, out, self.target, self.verify, self.lossy, new_uid_of)
            except DicomStudioError as exc:
                if os.path.exists(out):
                    os.remove(out)
                self.failures.append({"file": item["name"], "message": exc.message})
                results.append({"report": None, "error": {"file": item["name"], "message": exc.message}})
                continue
            results.append(self._written(item, out, report))
        return results

    def finish(self):
        deferred = self._write_deferred() if self.deferred else []
        summary = compress_summary(self.options, self.reports, self.failures, self.unwritten)
        if self.single or self.container != "zip":
            return {"summary": summary, "reports": self.reports}
        deferred_results = [{k: v for k, v in step.items() if k != "chunks"} for step in deferred]
        return {"summary": summary, "reports": self.reports, "deferred": deferred_results,
                "chunks": [chunk for step in deferred for chunk in step.get("chunks", [])] + self.finish_zip()}


def compress_target(options):
    """The transfer syntax a compress task's ``options`` ask for and, when it is lossy, its
    settings (see :class:`CompressJob`).

    Returns
    -------
    target : pydicom.uid.UID
    lossy_settings : dcmstudio.lossy.LossySettings or None

    Raises
    ------
    DicomStudioError
        A syntax dcmstudio does not write, a lossy one without its setting, or a lossless one with one.
    """
    import pydicom

    from . import codecs, lossy
    target = pydicom.uid.UID(str(options.get("transfer_syntax") or ""))
    if target in lossy.LOSSY_TARGETS:
        # Lossy only when asked for with its setting: LossySettings refuses anything less.
        return target, lossy.LossySettings.from_options(target, options.get("lossy") or {})
    if target not in codecs.LOSSLESS_TARGETS:
        raise DicomStudioError(f"'{target}' is not a transfer syntax dcmstudio writes; choose a lossless one, or "
                               "JPEG 2000 or JPEG Baseline with a ratio or quality.")
    if options.get("lossy"):
        raise DicomStudioError(f"{target.name} is lossless: it takes no ratio or quality.")
    return target, None


def compress_summary(options, reports, failures, unwritten):
    """What a compress task wrote, from every written file's report: counts, sizes, checks and,
    for a lossy run, its setting and the outputs that refer to a selected file that was not
    written (``unwritten``: its SOP Instance UID -> its name). The page asks for it when the task
    was shared out over several workers; a task that ran alone finishes with it."""
    from . import codecs
    target, settings = compress_target(options)
    summary = {"files": len(reports), "failed": failures,
               "input_bytes": sum(r["input_bytes"] for r in reports),
               "output_bytes": sum(r["output_bytes"] for r in reports),
               "verified": sum(1 for r in reports if r["verified"]),
               "files_with_new_errors": sum(1 for r in reports if r["new_errors"]),
               "transfer_syntax": codecs.describe_transfer_syntax(target)}
    if settings is not None:
        summary["lossy"] = settings.as_dict()
        summary["dangling_references"] = [
            {"file": r["file"], "refers_to": [unwritten[uid] for uid in r.get("references_followed", [])
                                              if uid in unwritten]}
            for r in reports if any(uid in unwritten for uid in r.get("references_followed", []))]
    return summary


def compress_suffix(target):
    """The short name of transfer syntax ``target`` (a UID) in the compress task's output names."""
    import pydicom
    target = pydicom.uid.UID(str(target))
    return {**_SYNTAX_SUFFIXES, **_LOSSY_SUFFIXES}.get(target, target.keyword or "converted")


# Short names for output files, by target transfer syntax.
_SYNTAX_SUFFIXES = {
    "1.2.840.10008.1.2.5": "rle",
    "1.2.840.10008.1.2.1.99": "deflated",
    "1.2.840.10008.1.2.1": "uncompressed",
}
_LOSSY_SUFFIXES = {"1.2.840.10008.1.2.4.91": "j2k_lossy", "1.2.840.10008.1.2.4.50": "jpeg_lossy"}


def deidentify_item(deidentifier, item, index, learned=False, with_origins=False, head_only=False):
    """One file de-identified as the deid task does it (read, de-identified by ``deidentifier``
    as the ``index``-th file, its output checked); the command calls it too. Its output depends
    only on the file, ``index`` and what the deidentifier shares with every file of the job (key,
    options, what the first pass learned), never on the files de-identified before it.

    With ``head_only`` (the command, writing into a folder, no pixel mask for the file) the
    pixel data that ends the file is not read, as for an edit (see :func:`read_item_for_edit`):
    the pieces from ``tail`` on (returned last) stand in for it. If the de-identification did not
    keep them as pieces of their own, :class:`UnreadBytesNeeded` is raised before any check:
    the caller de-identifies the file again, read whole, with a fresh deidentifier.

    Returns
    -------
    pieces, report
        As :meth:`dcmstudio.deid.Deidentifier.deidentify` gives them; the report also lists
        ``new_errors`` (see :func:`new_errors_of`).
    part10 : bool
        Whether the input had a DICM prefix.
    origins : list of (int or None)
        With ``with_origins``, last: per piece, the input offset it is a copy of, or ``None``.
    """
    replayed, read_head, data = None, None, None
    if head_only and learned:
        # a file of a layout met before is replayed from its head alone: a match of the layout's
        # header says where its pixel data starts, which walking the head would say
        read_head = head_and_size(item)
        head, size = read_head
        if len(head) < size:
            held_whole(size, item["name"])
            data = bytearray(size)  # zeroed as it is allocated: only the head is copied in
            data[:len(head)] = head
            replayed = deidentifier.replay_head(data, item["name"], index=index, known=len(head),
                                                min_unread=SMALL_PIECE)
    if replayed is not None:
        pieces, origins, report = replayed
        tail = origins[1]  # the pixel data's value, the replay's second piece
    else:
        data, tail, _ = read_item_for_edit(item, head_only, read_head, stand_in=data)
        pieces, origins, report = deidentifier.deidentify_output(data, item["name"], index=index, learned=learned)
    pieces, origins = split_at_tail(pieces, origins, tail)
    if not unread_kept(pieces, origins, tail, len(data)):
        raise UnreadBytesNeeded(item["name"])
    part10 = data[128:132] == b"DICM"
    if part10:
        _check_part10(pieces, item["name"])
    if deidentifier.replayed:
        # the header of a file whose re-read and validation found nothing new, with values of
        # the same lengths from this file's input or keyed UIDs (see dcmstudio.deid.layouts)
        report["new_errors"] = []
    else:
        check_reread(pieces, item["name"])
        report["new_errors"] = new_errors_of(data, pieces, item["name"])
        deidentifier.output_checked(report["new_errors"])
    if head_only:
        return pieces, report, part10, origins, tail
    return (pieces, report, part10, origins) if with_origins else (pieces, report, part10)


class UnreadBytesNeeded(Exception):
    """A head-only step found that the output needs the bytes it did not read (see
    :func:`deidentify_item`)."""


@register("deid")
class DeidJob(ZipJob):
    """De-identification to PS3.15 (see :mod:`dcmstudio.deid`), one consistent mapping per task.

    Options: those of :class:`dcmstudio.deid.DeidOptions` and ``zip_name``. Each item:
    ``{"path", "name"}`` of a loaded file, or ``{"path", "name", "learn": true}``: a first pass
    over every file (these steps come before the first file is written; the page sends one per
    file, so the pass shows progress and can be cancelled) learns their identifying values
    from their headers, so a name first met in a later file is scrubbed from earlier ones
    too. Each de-identifying step returns the file's report without its
    per-element list (residual-scan hits and burned-in flags included); every full report goes
    to a JSON-lines download. Finishing offers that file and the mapping as CSV and JSON
    (their names say they are identifying) beside the ZIP.
    """

    def __init__(self, options, count, scratch):
        from . import deid
        self._deid = deid
        super().__init__(options, count, scratch)
        self.zip_name = options.get("zip_name") or "deidentified.zip"
        self.deidentifier = deid.Deidentifier(options, scratch=scratch, session=True)
        self.learned = set()  # (path, name) of the files the first pass read
        self.written = False
        self.learn_steps = 0  # output names are numbered by the de-identifying steps alone
        self.with_new_errors = 0
        self.report_path = os.path.join(scratch, "deid_report.jsonl")
        self.report_file = open(self.report_path, "w", encoding="utf-8")

    def step(self, item):
        name = item["name"]
        if item.get("learn"):
            if self.written:
                raise DicomStudioError("the first pass (learning identifiers) must come before the first "
                                       "file is de-identified.", file=name)
            self.learn_steps += 1
            if self.deidentifier.learn_file(item["path"], name):
                self.learned.add((item["path"], name))
            return {"learned": name}
        self.written = True
        try:
            learned = (item["path"], name) in self.learned
            pieces, report, _, origins = deidentify_item(self.deidentifier, item, self.index + 1 - self.learn_steps,
                                                         learned, with_origins=True)
        except DicomStudioError as exc:
            # One bad file does not stop the series: it is reported and left out.
            self.deidentifier.failures.append({"file": name, "message": exc.message})
            self.report_file.write(json.dumps({"file": name, "error": exc.message}) + "\n")
            return {"report": None, "error": {"file": name, "message": exc.message}}
        # the pixel data goes to the page as a reference to the file it opened, not a copy
        sources = [(item["path"], origin) if origin is not None and len(piece) >= REFERENCED_PIECE
                   else None for piece, origin in zip(pieces, origins)]
        report["member"] = self.zip.add_pieces(pieces, report["output"], sources)
        self.with_new_errors += bool(report["new_errors"])
        self.report_file.write(json.dumps(report) + "\n")
        return {"report": {k: v for k, v in report.items() if k != "elements"},
                "chunks": self.chunks()}

    def finish(self):
        self.report_file.close()
        stem = os.path.splitext(self.zip_name)[0]
        report = {"path": self.report_path, "name": self._deid.mapping.report_name(stem),
                  "mime": "application/x-ndjson"}
        outputs = self.deidentifier.write_mapping(self.scratch) + [report]
        return {"summary": {**self.deidentifier.summary(), "files_with_new_errors": self.with_new_errors},
                "outputs": outputs, "chunks": self.finish_zip()}

    def cancel(self):
        self.report_file.close()
        super().cancel()


def _share_options(options):
    """A shared deid task's options without its own (``key``: the job's key as hex, derived
    once by the page for every worker), and that key as bytes."""
    options = dict(options)
    key = options.pop("key", None)
    return options, bytes.fromhex(key) if key else None


def _added_since(mapping, count):
    """The ``(key, value)`` pairs added to the dict ``mapping`` since it held ``count`` of them
    (dicts keep their insertion order), oldest first."""
    return list(itertools.islice(reversed(mapping.items()), len(mapping) - count))[::-1]


def fold_learned(files, shares):
    """What a pooled first pass learned (see :class:`DeidLearnJob`), folded once for the whole
    job: every worker's de-identifying share and the merge get this, not a list per file.

    Parameters
    ----------
    files : list of dict
        The step answers that taught something (``identifiers``, ``patients``), in input order;
        those that taught nothing may be left out (they change nothing).
    shares : list of dict
        Each share's finish answer.

    Returns
    -------
    dict
        ``{"identifiers": the job's identifying values (as
        :meth:`~dcmstudio.deid.identifiers.Identifiers.to_plain`), "patients": [each patient
        as first met, in input order]}``: merged in input order, so it does not depend on which
        worker learned which file.
    """
    from .deid.identifiers import Identifiers
    merged = Identifiers()
    for plain in [f["identifiers"] for f in files] + [s["identifiers"] for s in shares]:
        merged.update(Identifiers.from_plain(plain))
    patients = {}
    for file in files:
        for plain in file["patients"]:
            patients.setdefault(plain["key"], plain)
    return {"identifiers": merged.to_plain(), "patients": list(patients.values())}


@register("deid_learn")
class DeidLearnJob(Job):
    """One worker's share of deid's first pass (see :class:`DeidJob`), for a job the page
    shares out over its workers (:class:`DeidShareJob` does the de-identifying steps).

    Options: those of :class:`dcmstudio.deid.DeidOptions`, and ``key`` (hex). Each item:
    ``{"path", "name", "index"}`` (``index``: its 1-based position among the job's files), and
    ``head`` where the worker fetched the file's first bytes ahead (a scratch copy, deleted
    here: the values are learned from it when the header ends inside it). Each
    step answers what the file taught that this share had not met yet, in the order met:
    ``{"learned": bool, "identifiers": names and IDs (as
    :meth:`~dcmstudio.deid.identifiers.Identifiers.to_plain`), "patients": [new patients],
    "output": the name it will get, or None}``; finishing answers the dates and UIDs of the
    whole share (``{"identifiers"}``: sets, their order does not matter).
    """

    reads = "head"

    def __init__(self, options, count, scratch):
        from . import deid
        options, key = _share_options(options)
        super().__init__(options, count, scratch)
        self.deidentifier = deid.Deidentifier(options, scratch=scratch, session=True, key=key)

    def step(self, item):
        job, found = self.deidentifier, self.deidentifier.identifiers
        texts, ideographs, patients = len(found.texts), len(found.ideographs), len(job.patients)
        job.last_patient = None
        learned = False
        head = take_prefetched_head(item)
        if head is not None:
            try:
                job.learn_identifiers(head, item["name"])
                learned = True
            except DicomStudioError:
                pass  # a longer header: learn_file reads on
        learned = learned or job.learn_file(item["path"], item["name"])
        patient = job.last_patient if learned else None
        return {
            "learned": learned,
            "identifiers": {"texts": _added_since(found.texts, texts),
                            "ideographs": _added_since(found.ideographs, ideographs),
                            "dates": [], "instance_uids": []},
            "patients": [dataclasses.asdict(p) for _, p in _added_since(job.patients, patients)],
            # the output's name, as the de-identifying step will give it (the page names members first)
            "output": job._output_name(item["name"], patient, item["index"]) if patient else None,
        }

    def finish(self):
        found = self.deidentifier.identifiers
        return {"identifiers": {"texts": [], "ideographs": [], "dates": sorted(found.dates),
                                "instance_uids": sorted(found.instance_uids)}}


@register("deid_share")
class DeidShareJob(ZipJob):
    """One worker's share of the de-identifying steps of a job the page shares out over its
    workers, after the first pass (:class:`DeidLearnJob`) learned every file's values.

    Options: those of :class:`dcmstudio.deid.DeidOptions`, ``key`` (hex: the job's, the same
    in every worker), ``learned`` (see :func:`fold_learned`), ``container``
    (``"members"`` or ``"files"``, as :class:`EditJob`: into a folder, only a file's head is
    read, unless a pixel mask applies to it). Each item: ``{"path", "name",
    "index", "member", "learned"}`` (``learned``: whether the first pass read the file), and
    ``changed`` when the worker found the file's header is no longer the one the page kept from
    opening it, which the first pass learned from (the file is then refused with a sentence). Each
    step answers as :class:`EditJob`'s (``member``, ``chunks``), with the file's ``report``
    (without its per-element list) and its report ``line`` (JSON). Finishing answers
    ``{"mapping"}``: the share's mapping and totals (:class:`dcmstudio.deid.mapping.Share`), for
    :func:`merge_deid_shares`. The file's output depends only on the file, its index and what
    the job shares, never on the files this worker did before.
    """

    _member = EditJob._member

    def __init__(self, options, count, scratch):
        from . import deid
        from .deid.identifiers import Identifiers
        options, key = _share_options(options)
        self.container = options.pop("container", None) or "members"
        if self.container not in ("members", "files"):
            raise DicomStudioError(f"a shared deid task writes members or files, not '{self.container}'")
        learned = options.pop("learned")
        # into a folder, as an edit: the pixel data that ends a file is referenced, not read
        self.reads = "head" if self.container == "files" else "whole"
        super().__init__(options, count, scratch)
        # ``dicomdir`` is the folder save's (see ZipJob.directory_record), not de-identification's
        profile_options = {name: value for name, value in options.items() if name != "dicomdir"}
        self.deidentifier = deid.Deidentifier(profile_options, scratch=scratch, session=True, key=key)
        self.deidentifier.identifiers = Identifiers.from_plain(learned["identifiers"])
        self.share = deid.mapping.Share()
        self._elements = (None, None)  # the element list encoded last, and its JSON text

    def _line(self, report):
        """``json.dumps(report)``, with the element list encoded once for the files that share it
        (a layout's: every file it replays)."""
        elements, text = self._elements
        if report["elements"] is not elements:
            elements, text = report["elements"], json.dumps(report["elements"])
            self._elements = (elements, text)
        keys = list(report)
        at = keys.index("elements")
        before = json.dumps({key: report[key] for key in keys[:at]})
        after = json.dumps({key: report[key] for key in keys[at + 1:]})
        return f"{before[:-1]}{', ' if at else ''}\"elements\": {text}{', ' if at + 1 < len(keys) else ''}{after[1:]}"

    def step(self, item):
        import copy
        job, name = self.deidentifier, item["name"]
        learned, shared = bool(item.get("learned")), job.identifiers
        if not learned:
            # a file the first pass could not read learns its own values, for itself alone
            job.identifiers = copy.deepcopy(shared)
        uids, other_ids = len(job.uid_map), len(job.other_ids)
        tail = None
        try:
            if item.get("changed"):
                # its first pass learned from the header the page kept when it was opened
                raise DicomStudioError(f"{name} changed on disk since it was opened: its header is not the one "
                                       "its identifying values were learned from. It was not de-identified; "
                                       "open it again.", file=name)
            if self.reads == "head" and not job.options.masks_for(name):
                try:
                    pieces, report, _, origins, tail = deidentify_item(job, item, item["index"], learned,
                                                                       head_only=True)
                except UnreadBytesNeeded:
                    # its output needs the bytes not read: again, read whole (the same answer)
                    pieces, report, _, origins = deidentify_item(job, {**item, "head": None}, item["index"],
                                                                 learned, with_origins=True)
            else:
                pieces, report, _, origins = deidentify_item(job, item, item["index"], learned, with_origins=True)
            record = self.directory_record(pieces, item)
        except DicomStudioError as exc:
            # One bad file does not stop the series: it is reported and left out.
            self.share.fail(item["index"], name, exc.message)
            return {"report": None, "error": {"file": name, "message": exc.message},
                    "line": json.dumps({"file": name, "error": exc.message})}
        finally:
            job.identifiers = shared
        report["member"] = member = member_name(item.get("member") or report["output"])
        sources = [(item["path"], origin) if origin is not None and (len(piece) >= REFERENCED_PIECE
                                                                     or tail is not None and origin >= tail)
                   else None for piece, origin in zip(pieces, origins)]
        self.share.add(item["index"], job.last_patient, _added_since(job.uid_map, uids),
                       _added_since(job.other_ids, other_ids), report)
        return {"report": {k: v for k, v in report.items() if k != "elements"}, "line": self._line(report),
                **self._member(member, pieces, sources), **record}

    def finish(self):
        return {"mapping": self.share.to_plain()}


# Files of the made-up series a worker edits or de-identifies to warm up (see WarmUpJob): the
# later ones are replayed from the layout the first made, as a series' files are.
_WARM_UP_FILES = 4


def _warm_up_series(folder):
    """A made-up CT series of :data:`_WARM_UP_FILES` tiny files in ``folder`` (no one's data);
    returns their paths."""
    import io
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
    paths = []
    for number in range(1, _WARM_UP_FILES + 1):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"2.25.1{number}"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Warm^Up", "WARM-UP-1", "19700101"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "2.25.2", "2.25.3", "2.25.4"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20200101", "120000", "A1", "1"
        ds.Modality, ds.InstitutionName, ds.ReferringPhysicianName = "CT", "Warm-up Hospital", "Doe^Jo"
        ds.SeriesNumber, ds.InstanceNumber, ds.ImageType = 1, number, ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, number], [1, 0, 0, 0, 1, 0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", 256, 256
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.KVP = -1024, 1, 120
        ds.PixelData = bytes(2 * 256 * 256)  # more than a head: the folder replays from heads
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        paths.append(os.path.join(folder, f"warm-up-{number}.dcm"))
        with open(paths[-1], "wb") as f:
            f.write(buffer.getvalue())
    return paths


def prepare_deid(scratch):
    """De-identify a made-up series once per process, as a shared deid task does (first pass,
    steps into a ZIP's members and into a folder's files, merge), and throw it away: a worker's
    first de-identification otherwise pays for imports, the profile's and the IODs' tables and
    code run for the first time (~0.2 s of a fresh Pyodide), within the person's wait. Nothing
    of it reaches a later task: each task has its own layouts, mapping and identifiers.
    """
    paths = _warm_up_series(scratch)
    options = {"key": bytes(32).hex()}
    items = [{"path": path, "name": os.path.basename(path), "index": i} for i, path in enumerate(paths, start=1)]
    scratches = (os.path.join(scratch, f"part{number}") for number in itertools.count())
    for number in range(4):
        os.makedirs(os.path.join(scratch, f"part{number}"))
    learn = DeidLearnJob(options, len(items), next(scratches))
    steps = [json.loads(json.dumps(learn.step(item))) for item in items]
    learned = fold_learned(steps, [learn.finish()])
    for container in ("members", "files"):
        share = DeidShareJob({**options, "learned": learned, "container": container}, len(items), next(scratches))
        for item, learned_step in zip(items, steps):
            if container == "files":
                head = os.path.join(share.scratch, "head")
                with open(head, "wb") as f:
                    f.write(read_file(item["path"])[:HEAD_BYTES])
                item = {**item, "head": head}
            answer = json.loads(json.dumps(share.step({**item, "member": item["name"],
                                                         "learned": learned_step["learned"]})))
            if answer.get("error"):  # a warm-up that fails says so, not a cold worker later
                raise DicomStudioError(f"the de-identification warm-up failed: {answer['error']['message']}")
        mapping = share.finish()["mapping"]
    merge_deid_shares(options, learned, [mapping], next(scratches))


@register("deid_prepare")
class DeidPrepareJob(WarmUpJob):
    """A worker's warm-up for de-identification (see :func:`prepare_deid`)."""

    kind = "deid"
    warm_up = staticmethod(prepare_deid)


def merge_deid_shares(options, learned, shares, folder, zip_name="deidentified.zip", failures=()):
    """The mapping and summary of a deid job shared out over workers, as one process gives them.

    Parameters
    ----------
    options : dict
        The job's options (``key`` and the shares' own are ignored: the mapping needs no key).
    learned : dict
        What the first pass learned (see :func:`fold_learned`): its patients come first.
    shares : list of dict
        Each share's finish answer's ``mapping`` (see :class:`DeidShareJob`), in any order.
    folder : str
        Where the mapping's files are written.
    failures : list of [int, str, str]
        ``[index, file, message]`` of the files whose step failed outside any share's account
        (the worker answered an error instead of the step).

    Returns
    -------
    dict
        ``{"summary", "outputs", "report_name"}``: the summary of
        :meth:`dcmstudio.deid.Deidentifier.summary` (with ``files_with_new_errors``), the
        mapping's files (see :func:`dcmstudio.deid.mapping.write`), the report's name.
    """
    from . import deid
    options, _ = _share_options(options)
    for own in ("learned", "container"):
        options.pop(own, None)
    merged = deid.Deidentifier(options, key=b"")
    for plain in learned["patients"]:
        merged.patients.setdefault(plain["key"], deid.Patient(**plain))
    with_new_errors = deid.mapping.merge_shares(merged, shares, failures)
    os.makedirs(folder, exist_ok=True)
    return {"summary": {**merged.summary(), "files_with_new_errors": with_new_errors},
            "outputs": merged.write_mapping(folder),
            "report_name": deid.mapping.report_name(os.path.splitext(zip_name)[0])}


@register("validate")
class ValidateJob(Job):
    """Loaded files checked against their IODs and PS3.5 (see :mod:`dcmstudio.validate`).

    Options: ``report_stem`` (the reports are ``<report_stem>_validation.json`` and ``.txt``),
    ``shared`` (True: one share of a task spread over several workers, see below).
    Each item: ``{"path", "name"}`` of a loaded file (and ``"head"``, its first bytes the worker
    fetched ahead); each step answers ``{"report"}``. Finishing offers both reports as downloads
    and answers ``{"summary"}``. Shared out, finishing answers the share's summary only: the page
    gathers the steps' reports in the order of the files and has :func:`validation_reports` make
    the two reports of the whole run.
    """

    reads = "head"

    def __init__(self, options, count, scratch):
        from . import validate
        self._validate = validate
        super().__init__(options, count, scratch)
        self.stem = options.get("report_stem") or "dcmstudio"
        self.reports = []

    def step(self, item):
        head = take_prefetched_head(item)
        report = self._validate.validate_file(item["path"], item["name"], head=head)
        self.reports.append(report)
        return {"report": report}

    def finish(self):
        if self.options.get("shared"):
            return {"summary": validation_summary(self.reports)}
        return validation_reports(self.reports, self.stem, self.scratch)


def validation_reports(reports, stem, scratch):
    """The JSON and text reports of a validation run, written under ``scratch``, and its summary.

    Parameters
    ----------
    reports : list of dict
        Every file's report (:func:`dcmstudio.validate.validate_file`), in the order of the files.
    stem : str
        The reports are ``<stem>_validation.json`` and ``<stem>_validation.txt``.
    scratch : str
        An existing folder.

    Returns
    -------
    dict
        ``{"summary", "outputs"}``.
    """
    from . import validate
    outputs = []
    for suffix, mime, text in (("json", "application/json", validate.report_json(reports)),
                               ("txt", "text/plain;charset=utf-8", validate.report_text(reports))):
        path = os.path.join(scratch, f"validation.{suffix}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        outputs.append({"path": path, "name": f"{stem}_validation.{suffix}", "mime": mime})
    return {"summary": validation_summary(reports), "outputs": outputs}


def validation_summary(reports):
    """Files, errors, warnings and files with errors of a validation run's ``reports``."""
    return {"files": len(reports), "errors": sum(r["errors"] for r in reports),
            "warnings": sum(r["warnings"] for r in reports),
            "files_with_errors": sum(1 for r in reports if r["errors"])}

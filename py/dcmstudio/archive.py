"""ZIP archives written file by file, so a whole series never sits in memory at once.

Members are stored, not deflated: DICOM pixel data compresses poorly with deflate and storing
keeps the archive's cost close to a plain copy. ZIP64 is used automatically past 4 GiB.
"""

import os
import re
import shutil
import struct
import zipfile

from .errors import DicomStudioError

CHUNK_SIZE = 1 << 20
# What a member name may hold (APPNOTE 4.4.17: relative, "/" only; most unzip tools and file
# systems also refuse control characters, Windows' reserved ones and names over 255 bytes).
MAX_MEMBER_BYTES = 255
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_RESERVED_CHARACTERS = re.compile(r'[<>:"|?*]')  # Windows cannot name a file with these
_DRIVE = re.compile(r"^[A-Za-z]:")
# Pieces per writev call, well under the usual IOV_MAX (1024).
_IOV_BATCH = 256


def member_name(name, keep_end=None):
    """A safe ZIP member name for a file the user called ``name``.

    Relative, with ``/`` as the only separator (backslashes become ``/``, a drive such as ``C:``
    and leading slashes go), no empty, ``.`` or ``..`` parts, no NUL or control characters (they
    go), no Windows-reserved ones (each becomes ``_``), at most 255 bytes in UTF-8 (the stem is
    shortened, the suffix kept); ``"file"`` when nothing is left.

    Parameters
    ----------
    name : str
    keep_end : int, optional
        How many characters at the end must survive shortening (default: the suffix).
    """
    text = _DRIVE.sub("", str(name).replace("\\", "/"))
    parts = [_RESERVED_CHARACTERS.sub("_", _CONTROL_CHARACTERS.sub("", part)) for part in text.split("/")]
    parts = [part for part in parts if part.strip() not in ("", ".", "..")]
    text = "/".join(parts) or "file"
    if len(text.encode("utf-8")) <= MAX_MEMBER_BYTES:
        return text
    if keep_end is None:
        stem, dot, suffix = parts[-1].rpartition(".")
        keep_end = len(suffix) + 1 if dot and stem and len(suffix) <= 16 else 0
    head, tail = text[:len(text) - keep_end], text[len(text) - keep_end:]
    budget = MAX_MEMBER_BYTES - len(tail.encode("utf-8"))
    head = head.encode("utf-8")[:max(0, budget)].decode("utf-8", "ignore").rstrip("/")
    return (head + tail).lstrip("/") or "file"


def unique_member(name, taken):
    """:func:`member_name` of ``name``, with ``_2``, ``_3``… before its suffix if its case-folded
    form is in ``taken`` (the file systems an archive is extracted to often ignore case)."""
    name = member_name(name)
    if name.casefold() not in taken:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or "/" in suffix:
        stem, suffix = name, ""
    n = 2
    while True:
        ending = f"_{n}.{suffix}" if suffix else f"_{n}"
        candidate = member_name(stem + ending, keep_end=len(ending))  # a long stem is shortened
        if candidate.casefold() not in taken:
            return candidate
        n += 1


class ZipWriter:
    """Append files to a ZIP on disk (MEMFS in the page) one at a time.

    Parameters
    ----------
    path : str or file-like
        Where the archive is written (an existing file is replaced), or a writable stream such as
        :class:`ChunkSink`, which zipfile treats as unseekable (sizes go in data descriptors).

    Examples
    --------
    >>> with ZipWriter("/out/series.zip") as z:            # doctest: +SKIP
    ...     z.add_file("/work/0001.dcm", "series/0001.dcm")
    """

    def __init__(self, path):
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._names = set()
        # a sink that can stand a stretch of a loaded file for its bytes (see ChunkSink)
        self._refer = getattr(path, "expect_reference", None)

    def unique_name(self, name):
        """Return the member name for a file called ``name`` (see :func:`unique_member`)."""
        return unique_member(name, self._names)

    def add_file(self, source_path, name):
        """Copy the file at ``source_path`` into the archive as ``name``; return the name used."""
        name = self.unique_name(name)
        self._names.add(name.casefold())
        with open(source_path, "rb") as src, self._zip.open(name, "w", force_zip64=True) as dst:
            shutil.copyfileobj(src, dst, CHUNK_SIZE)
        return name

    def add_bytes(self, data, name):
        """Write ``data`` into the archive as ``name``; return the name used."""
        return self.add_pieces([data], name)

    def add_pieces(self, pieces, name, sources=None):
        """Write the bytes-like ``pieces``, in order, as one member ``name``; return the name used.

        Lets an edited file go straight from its slices into the archive, never joined in memory.

        Parameters
        ----------
        pieces : list of bytes-like
        name : str
        sources : list of (tuple or None), optional
            Per piece, ``(path, offset)`` when the piece is exactly the bytes of the file at
            ``path`` from ``offset`` on. A :class:`ChunkSink` then hands the page a reference to
            those bytes instead of a copy (the CRC is still computed from the piece).
        """
        name = self.unique_name(name)
        self._names.add(name.casefold())
        refer = self._refer if sources else None
        with self._zip.open(name, "w", force_zip64=True) as dst:
            for index, piece in enumerate(pieces):
                if refer is not None and sources[index] is not None:
                    refer(*sources[index], len(piece))
                dst.write(piece)
        return name

    def close(self):
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Unread:
    """Stands in an output for the ``length`` bytes of its input from ``offset`` on that were
    never read: the pixel data that ends a file whose head alone was read (see
    :func:`dcmstudio.jobs.with_unread_tail`). It reaches the page as a reference to the opened
    file (:meth:`ChunkSink.expect_reference`), and a ZIP member's CRC-32 is read from that file
    in bounded chunks (:func:`dcmstudio.jobs.crc_of_stretch`), so a file of any size costs only
    its head in the worker's heap. It has no ``len()``, which stops at 2 GiB in the page's
    32-bit Python: see :func:`piece_length`."""

    __slots__ = ("offset", "length")

    def __init__(self, offset, length):
        self.offset, self.length = offset, length


def piece_length(piece):
    """How many bytes an output piece stands for: ``len()``, or an :class:`Unread`'s length."""
    return piece.length if isinstance(piece, Unread) else len(piece)


class ChunkSink:
    """A write-only stream that lands in parts the page assembles, so a ZIP can leave MEMFS as
    it grows.

    A part is either a numbered file of the bytes written, or a reference to a stretch of a
    loaded file: an edited DICOM file's pixel data is the input's own bytes, and the page can
    take them from the file the user opened (``File.slice``) instead of from a copy. The worker
    moves each finished part to the page (which keeps them as Blob parts) and deletes the file,
    so neither the wasm heap nor MEMFS ever holds the whole archive.

    Written pieces are kept (by reference) until they add up to ``chunk_size``, then written to
    a new file sized first and filled with one ``writev``: each byte is copied once, from the
    wasm heap into the file. MEMFS would grow a file written piecemeal by 12.5 % at a time,
    copying it each time, and gathering the pieces in a buffer first would copy every byte
    twice.

    Parameters
    ----------
    directory : str
        Where chunk files are written; created if missing.
    chunk_size : int
        Bytes after which the gathered pieces become a chunk file.

    Notes
    -----
    ``bytes`` and read-only views are kept as they are until their chunk is written; anything
    writable (a ``bytearray`` its writer may reuse) is copied when it is written.
    """

    def __init__(self, directory, chunk_size=4 << 20):
        self.directory = directory
        self.chunk_size = chunk_size
        os.makedirs(directory, exist_ok=True)
        self._position = 0
        self._count = 0
        self._finished = []
        self._pieces = []
        self._gathered = 0
        self._expected = None

    def expect_reference(self, path, offset, length):
        """The next write is ``length`` bytes of the file at ``path`` from ``offset``: it becomes
        a reference part ``{"source", "offset", "length"}`` instead of bytes."""
        self._expected = (path, offset, length)

    def write(self, data):
        size = piece_length(data)
        expected, self._expected = self._expected, None
        if expected is not None and expected[2] == size:
            self._flush_chunk()  # parts stay in stream order
            self._finished.append({"source": expected[0], "offset": expected[1], "length": size})
            self._position += size
            return size
        if isinstance(data, Unread):
            raise ValueError("bytes that were not read can only be written as a reference")
        if not size:
            return 0
        if not isinstance(data, bytes) and not (isinstance(data, memoryview) and data.readonly):
            data = bytes(data)
        self._pieces.append(data)
        self._gathered += size
        self._position += size
        if self._gathered >= self.chunk_size:
            self._flush_chunk()
        return size

    def _flush_chunk(self):
        if not self._pieces:
            return
        self._count += 1
        path = os.path.join(self.directory, f"chunk-{self._count:06d}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, self._gathered)  # one allocation of the final size
            written = 0
            for first in range(0, len(self._pieces), _IOV_BATCH):
                written += os.writev(fd, self._pieces[first:first + _IOV_BATCH])
            if written != self._gathered:
                raise OSError(f"a chunk of the archive was written short ({written} of "
                              f"{self._gathered} bytes)")
        finally:
            os.close(fd)
        self._finished.append({"path": path})
        self._pieces = []
        self._gathered = 0

    def tell(self):
        return self._position

    def seek(self, *args):
        raise OSError("a ChunkSink cannot seek")

    def flush(self):
        pass

    def take_chunks(self, final=False):
        """The finished parts not yet taken, in order; ``final`` also writes the rest.

        Each is ``{"path"}`` (a chunk file, for the taker to delete) or ``{"source", "offset",
        "length"}`` (a stretch of a loaded file).
        """
        if final:
            self._flush_chunk()
        taken, self._finished = self._finished, []
        return taken

    def close(self):
        self._flush_chunk()


def read_parts(parts):
    """The bytes of :meth:`ChunkSink.take_chunks` parts, joined (for scripts and tests; the
    page assembles them as Blob parts)."""
    joined = bytearray()
    for part in parts:
        if "path" in part:
            with open(part["path"], "rb") as f:
                joined += f.read()
        else:
            with open(part["source"], "rb") as f:
                f.seek(part["offset"])
                joined += f.read(part["length"])
    return bytes(joined)


# ---- A ZIP written by several workers ------------------------------------------------------------
# When a job is spread over several workers, each worker makes whole members (a local header and
# the file's bytes, with its CRC) without knowing where in the archive they will land, and the
# page puts them in order; the central directory, which needs every member's offset, is made last
# from the list. zipfile cannot split its work this way, so the few records are written here, as
# APPNOTE.TXT 6.3 lays them out: stored members, UTF-8 names, ZIP64 wherever a field overflows.

_ZIP64_LIMIT = 0xFFFFFFFF
_UTF8_NAMES = 1 << 11
_DOS_DATE_1980 = (0 << 11, (0 << 9) | (1 << 5) | 1)  # 00:00:00, 1980-01-01: outputs are reproducible


def member_header(name, size, crc):
    """The local file header of a stored member: what precedes its bytes in the archive.

    Parameters
    ----------
    name : str
        The member's name (relative, ``/``-separated).
    size : int
        The member's length in bytes.
    crc : int
        Its CRC-32.

    Returns
    -------
    bytes
    """
    encoded = name.encode("utf-8")
    extra = b""
    sizes = (size, size)
    version = 20
    if size >= _ZIP64_LIMIT:
        extra = struct.pack("<HHQQ", 1, 16, size, size)
        sizes = (_ZIP64_LIMIT, _ZIP64_LIMIT)
        version = 45
    time, date = _DOS_DATE_1980
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, version, _UTF8_NAMES, 0, time, date, crc & 0xFFFFFFFF,
                       *sizes, len(encoded), len(extra)) + encoded + extra


def central_directory(members, start):
    """The central directory and end records of an archive whose members are all written.

    Parameters
    ----------
    members : list of dict
        In archive order, each ``{"name", "size", "crc", "offset"}``: the offset of its local
        header from the start of the archive.
    start : int
        Where the central directory begins (the archive's length so far).

    Returns
    -------
    bytes
        Everything that follows the last member, ZIP64 records included where needed.
    """
    records = []
    for member in members:
        encoded = member["name"].encode("utf-8")
        size, offset = member["size"], member["offset"]
        wide = [v for v in (size, size, offset) if v >= _ZIP64_LIMIT]
        # The ZIP64 field holds, in this order, only those of the sizes and offset that overflow.
        extra = struct.pack("<HH", 1, 8 * len(wide)) + b"".join(struct.pack("<Q", v) for v in wide) if wide else b""
        version = 45 if wide else 20
        time, date = _DOS_DATE_1980
        records.append(struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | version, version, _UTF8_NAMES, 0, time, date,
            member["crc"] & 0xFFFFFFFF, min(size, _ZIP64_LIMIT), min(size, _ZIP64_LIMIT), len(encoded), len(extra),
            0, 0, 0, 0o100644 << 16, min(offset, _ZIP64_LIMIT)) + encoded + extra)
    directory = b"".join(records)
    count, length = len(members), len(directory)
    tail = b""
    if count >= 0xFFFF or length >= _ZIP64_LIMIT or start >= _ZIP64_LIMIT:
        end64 = start + length
        tail = (struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, length, start)
                + struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
    tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                        min(length, _ZIP64_LIMIT), min(start, _ZIP64_LIMIT), 0)
    return directory + tail


def member_names(names):
    """Names for the members of one archive, one per input name, each unique.

    Parameters
    ----------
    names : list of str
        The user's names for the files (relative paths from a folder, or bare names).

    Returns
    -------
    list of str
        :func:`member_name` of each; a repeated name (letter case aside) gets ``_2``, ``_3``…
        before its suffix.
    """
    taken = set()
    result = []
    for name in names:
        candidate = unique_member(name, taken)
        taken.add(candidate.casefold())
        result.append(candidate)
    return result


# Opening a ZIP the user dropped: what its members may add up to, against archives that
# inflate to far more than the page can hold (a "zip bomb").
MAX_OPENED_BYTES = 512 << 20
MAX_OPENED_MEMBERS = 20000


def opened_members(path, name, max_bytes=MAX_OPENED_BYTES, max_members=MAX_OPENED_MEMBERS):
    """Read the files inside a ZIP the user opened, for the page to open like dropped files.

    Parameters
    ----------
    path : str
        The archive.
    name : str
        The user's name for it, for messages.
    max_bytes, max_members : int
        Refuse archives whose files add up to more (as declared, and as actually inflated).

    Yields
    ------
    tuple
        ``(member name, bytes)`` for each file, folders skipped, in the archive's order.

    Raises
    ------
    DicomStudioError
        The file is not a readable ZIP, is encrypted, or is too large to open in the page.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DicomStudioError(f"{name} cannot be opened as a ZIP archive: {exc}.", file=name) from exc
    with archive:
        files = [info for info in archive.infolist() if not info.is_dir()]
        declared = sum(info.file_size for info in files)
        if len(files) > max_members or declared > max_bytes:
            raise DicomStudioError(f"{name} holds {len(files)} files of {declared / 1e6:.0f} MB in all: more than "
                                   f"the page opens from one archive ({max_members} files, {max_bytes / 1e6:.0f} "
                                   "MB). Unzip it and open its files or folders.", file=name)
        inflated = 0
        for info in files:
            if info.flag_bits & 0x1:
                raise DicomStudioError(f"{name} is encrypted ({info.filename}): unzip it with its password "
                                       "first.", file=name)
            try:
                with archive.open(info) as member:
                    data = member.read(max_bytes - inflated + 1)
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError) as exc:
                raise DicomStudioError(f"{name}: its member {info.filename} cannot be read: {exc}.",
                                       file=name) from exc
            inflated += len(data)
            if inflated > max_bytes:
                raise DicomStudioError(f"{name} inflates to more than {max_bytes / 1e6:.0f} MB: unzip it and "
                                       "open its files or folders.", file=name)
            yield info.filename, data

"""File objects that never read, or inflate, more than a file can hold.

pydicom allocates whatever a length in the file declares before it reads: a 343-byte file whose
one length says 1 GiB makes it reserve 1 GiB, and the wasm heap never shrinks afterwards. A
deflated file inflates in one ``zlib.decompress`` call, however far (2 MB can become 2 GiB).
Everything that hands a user's file to pydicom goes through :class:`BoundedFile` (reads cut at
the file's end, so a bad length costs nothing and is reported by ``catalog.read_dicom``) and,
for a deflated dataset, :class:`InflatingReader` (inflates only as far as it is read, up to
:func:`inflation_cap`). A read that keeps every value (a tree, a dump, pixels) first measures the
whole inflated size with :func:`measure_inflated`, a piece at a time: the cap then counts the bytes
of all values together, and a bomb made of many values each under it costs no memory either.
"""

import io
import os
import zlib

from dcmstudio.errors import InvalidDicomError

# Reads up to this size cannot reserve much; only larger ones are checked against the file.
_SMALL_READ = 1 << 16
# A deflated dataset may inflate to this multiple of the file's size, or to _MIN_INFLATION_CAP
# (short files of mostly empty pixels are legitimately very compressible), never beyond
# MAX_INFLATED_SIZE (one Python object stays well under Pyodide's 2 GiB limit).
INFLATION_RATIO = 64
_MIN_INFLATION_CAP = 64 << 20
MAX_INFLATED_SIZE = 1 << 30
# Compressed bytes read, and inflated bytes made, per step: small, so that measuring or skipping
# through a bomb costs a few times this much memory, whatever the file.
_INFLATE_CHUNK = 1 << 16
# Bytes kept behind the read position of an InflatingReader: pydicom steps back at most one
# element header (12 bytes) to stop before pixel data.
_KEPT_BEHIND = 256


def inflation_cap(compressed_size):
    """How many bytes a deflated dataset of ``compressed_size`` bytes may inflate to."""
    return min(MAX_INFLATED_SIZE, max(_MIN_INFLATION_CAP, INFLATION_RATIO * compressed_size))


def inflation_refusal(name, cap):
    """The sentence for a deflated dataset that inflates past ``cap`` bytes."""
    return (f"{name} is not valid DICOM: its deflated data set inflates to more than {cap:,} bytes "
            f"({INFLATION_RATIO} times the file's size, at least {_MIN_INFLATION_CAP >> 20} MiB), "
            f"which no real file does; it is refused rather than filling the memory.")


def measure_inflated(source, name, cap):
    """Return how many bytes the raw deflate stream ``source`` inflates to, holding one piece at a time.

    Parameters
    ----------
    source : bytes-like or file object
        The compressed bytes, or a file positioned at the stream's first byte (read to its end).
    name : str
        The user's name for the file, for the message.
    cap : int
        How many inflated bytes are allowed in all.

    Returns
    -------
    tuple
        ``(size, ended)``: the inflated size, and whether the stream reached its end (False for a
        cut stream, whose inflated part is ``size`` bytes).

    Raises
    ------
    InvalidDicomError
        Past ``cap`` bytes (:func:`inflation_refusal`), or for data that is not a deflate stream.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = _ViewReader(source)  # fed a piece at a time: zlib copies what it has not consumed
    pending = b""
    exhausted = False
    size = 0
    try:
        while not inflater.eof:
            if not pending and not exhausted:
                pending = source.read(_INFLATE_CHUNK)
                exhausted = not pending
            piece = len(inflater.decompress(pending, _INFLATE_CHUNK))
            pending = inflater.unconsumed_tail
            size += piece
            if size > cap:
                raise InvalidDicomError(inflation_refusal(name, cap), file=name)
            if not piece and not pending and exhausted:
                break  # a cut stream: nothing more comes
    except zlib.error as exc:
        raise InvalidDicomError(f"{name} is not valid DICOM: its deflated data set cannot be inflated "
                                f"({exc}).", file=name) from exc
    return size, inflater.eof


class _ViewReader:
    """``read(n)`` over bytes in memory, as slices of them (no copies)."""

    def __init__(self, data):
        self._view = memoryview(data)
        self._position = 0

    def read(self, size):
        piece = self._view[self._position:self._position + size]
        self._position += len(piece)
        return piece


class BoundedFile:
    """A binary file opened for reading whose reads never ask for more than is left in it.

    ``read(n)`` with ``n`` past the end returns what remains, as a plain file does, but without
    first reserving ``n`` bytes; a seek past the end stops one byte past it. It is not an
    ``io.BufferedReader``, so pydicom re-opens it with this class (``BoundedFile(path, "rb")``)
    when it reads a deferred value later.

    Parameters
    ----------
    path : str
        The file.
    mode : str
        ``"rb"`` only (the signature of ``open``, which pydicom calls it with).
    """

    def __init__(self, path, mode="rb"):
        if mode != "rb":
            raise ValueError("BoundedFile is read-only")
        self._file = open(path, "rb")  # noqa: SIM115 -- closed by close() / __exit__
        self.name = path
        self.size = os.fstat(self._file.fileno()).st_size
        self.tell = self._file.tell

    def read(self, size=-1):
        if size is None or size < 0:
            size = self.size
        if size > _SMALL_READ:
            size = max(0, min(size, self.size - self._file.tell()))
        return self._file.read(size)

    def seek(self, offset, whence=io.SEEK_SET):
        # Past the end is only ever one byte past it: a position beyond 2 GiB would overflow
        # in wasm32 (a C long) where CPython would seek, and no read can reach it anyway.
        if whence == io.SEEK_CUR:
            offset += self._file.tell()
        elif whence == io.SEEK_END:
            offset += self.size
        return self._file.seek(min(max(0, offset), self.size + 1))

    def readinto(self, buffer):
        return self._file.readinto(buffer)

    def seekable(self):
        return True

    def readable(self):
        return True

    @property
    def closed(self):
        return self._file.closed

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class InflatingReader:
    """The inflated form of a deflated data set, inflated only as far as it is read or skipped.

    Seeking forward inflates and discards; only a few bytes behind the read position are kept,
    so skipping a large value costs no memory. Past :func:`inflation_cap` bytes it refuses.

    Parameters
    ----------
    source : file object
        Positioned at the deflated stream's first byte (just past the file meta group).
    name : str
        The user's name for the file, for the message.
    cap : int
        How many inflated bytes are allowed.
    """

    def __init__(self, source, name, cap):
        self._source = source
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buffer = bytearray()
        self._base = 0  # offset of _buffer[0] in the inflated stream
        self._position = 0
        self._ended = False
        self.name = name
        self.cap = cap
        # Where a read asked for more than the inflated data holds (a cut or a corrupt length).
        self.cut_at = None

    @property
    def inflated_size(self):
        """How many bytes have been inflated so far (all of them once the stream has ended)."""
        return self._inflated_end()

    @property
    def stream_cut(self):
        """Whether the compressed data ran out before the deflate stream's end."""
        return self._ended and not self._inflater.eof

    def _inflated_end(self):
        return self._base + len(self._buffer)

    def _inflate_to(self, end):
        """Inflate until ``end`` bytes exist (or the stream ends)."""
        while self._inflated_end() < end and not self._ended:
            if self._inflated_end() > self.cap:
                raise InvalidDicomError(inflation_refusal(self.name, self.cap), file=self.name)
            # Keep only what lies behind the read position by a little: earlier bytes are done with.
            drop = min(self._position - _KEPT_BEHIND - self._base, len(self._buffer))
            if drop > _INFLATE_CHUNK:
                del self._buffer[:drop]
                self._base += drop
            want = min(end - self._inflated_end(), _INFLATE_CHUNK) + 1
            tail = self._inflater.unconsumed_tail
            chunk = tail if tail else self._source.read(_INFLATE_CHUNK)
            if not chunk and not tail:
                self._ended = True  # truncated stream: what was inflated is all there is
                break
            try:
                self._buffer += self._inflater.decompress(chunk, want)
            except zlib.error as exc:
                raise InvalidDicomError(f"{self.name} is not valid DICOM: its deflated data set "
                                        f"cannot be inflated ({exc}).", file=self.name) from exc
            self._ended = self._inflater.eof

    def read(self, size=-1):
        if size is None or size < 0:
            end = self.cap + 1
        else:
            end = self._position + size
            if end > self.cap:  # a declared length no data set within the cap can hold
                raise InvalidDicomError(
                    f"{inflation_refusal(self.name, self.cap)[:-1]} (a value at byte {self._position:,} "
                    f"of it declares {size:,} bytes).", file=self.name)
        self._inflate_to(end)
        start = self._position - self._base
        data = bytes(self._buffer[start:start + (end - self._position)])
        if len(data) < end - self._position and (data or self._position > self._inflated_end()):
            self.cut_at = self._position if self.cut_at is None else self.cut_at
        self._position += len(data)
        return data

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            self._inflate_to(self.cap + 1)
            offset += self._inflated_end()
        if offset < self._base:
            raise OSError(f"cannot seek back to {offset} in the inflated data of {self.name}")
        self._position = offset
        return offset

    def tell(self):
        return self._position

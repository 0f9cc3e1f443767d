"""Voxel data read straight into its final array, raw or deflated, with errors that say how short.

Headers lie and downloads get cut: every reader that knows how many bytes it needs reads them
here, so a short file gives one clear sentence and the data is decompressed into a buffer of
the final size (one copy of the volume, not two).
"""

import zlib

import numpy as np

from ..errors import VolumeError

CHUNK = 1 << 20

# zlib's wbits for the two wrappings we meet: zlib (MetaImage .zraw) and gzip (NRRD, .gz).
ZLIB_WBITS = zlib.MAX_WBITS
GZIP_WBITS = zlib.MAX_WBITS | 16


def read_exact(fileobj, dtype, count, name):
    """Read ``count`` values of ``dtype`` from ``fileobj``'s position into a new 1-D array."""
    nbytes = count * dtype.itemsize
    buffer = np.empty(nbytes, dtype=np.uint8)
    got = fileobj.readinto(memoryview(buffer))
    while got < nbytes:
        more = fileobj.readinto(memoryview(buffer)[got:])
        if not more:
            raise VolumeError(
                f"The header promises {nbytes} bytes of voxel data but only {got} are there: the"
                " file is truncated or its header is wrong.", file=name)
        got += more
    return buffer.view(dtype)


def inflate_exact(fileobj, dtype, count, wbits, name):
    """Decompress ``count`` values of ``dtype`` from ``fileobj`` (zlib or gzip per ``wbits``)."""
    nbytes = count * dtype.itemsize
    buffer = np.empty(nbytes, dtype=np.uint8)
    out = memoryview(buffer)
    inflater = zlib.decompressobj(wbits)
    got = 0
    pending = b""
    try:
        while got < nbytes:
            if not pending:
                pending = fileobj.read(CHUNK)
                if not pending:
                    rest = inflater.flush()[:nbytes - got]
                    out[got:got + len(rest)] = rest
                    got += len(rest)
                    break
            # Bounded output keeps the working set to one chunk besides the final buffer.
            chunk = inflater.decompress(pending, min(CHUNK, nbytes - got))
            pending = inflater.unconsumed_tail
            out[got:got + len(chunk)] = chunk
            got += len(chunk)
            if inflater.eof:
                break
    except zlib.error as exc:
        raise VolumeError(f"The compressed voxel data is corrupt ({exc}).", file=name) from exc
    if got < nbytes:
        raise VolumeError(
            f"The header promises {nbytes} bytes of voxel data but the compressed stream holds"
            f" only {got}: the file is truncated or its header is wrong.", file=name)
    return buffer.view(dtype)

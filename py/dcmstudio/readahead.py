"""Reading a file whose first bytes were fetched ahead.

In the page, every read of an opened file is a request to the browser (about a millisecond each,
whatever its size), so the worker fetches the first bytes of many files at once, concurrently,
before Python describes them. :class:`HeadFile` serves reads from those bytes and goes to the file
itself only for what lies past them (a header longer than the head).
"""

import io
import os

from dcmstudio.bounded import BoundedFile


class HeadFile(io.RawIOBase):
    """A read-only file object: ``head`` (the file's first bytes), then the file at ``path``.

    Parameters
    ----------
    path : str
        The whole file, opened only if a read goes past ``head``.
    head : bytes
        The file's first ``len(head)`` bytes (all of them when the file is that short).
    size : int, optional
        The file's size; ``os.path.getsize(path)`` by default.
    """

    def __init__(self, path, head, size=None):
        super().__init__()
        self.name = path
        self._head = head
        self.size = self._size = os.path.getsize(path) if size is None else size
        self._pos = 0
        self._file = None

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._pos = min(base + offset, self._size + 1)  # as BoundedFile: never far past the end
        return self._pos

    def read(self, size=-1):
        # never more than is left: a corrupt declared length reserves nothing (see bounded.py)
        left = max(0, self._size - self._pos)
        size = left if size is None or size < 0 else min(size, left)
        end = self._pos + size
        if end <= len(self._head) or len(self._head) >= self._size:
            data = self._head[self._pos:end]
        else:
            if self._file is None:
                self._file = BoundedFile(self.name)
            self._file.seek(self._pos)
            data = self._file.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self):
        if self._file is not None:
            self._file.close()
        super().close()

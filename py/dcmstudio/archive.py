"""ZIP archives written file by file, so a whole series never sits in memory at once.

Members are stored, not deflated: DICOM pixel data compresses poorly with deflate and storing
keeps the archive's cost close to a plain copy. ZIP64 is used automatically past 4 GiB.
"""

import os
import shutil
import zipfile

CHUNK_SIZE = 1 << 20


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

    def unique_name(self, name):
        """Return ``name``, or ``name`` with ``_2``, ``_3``… before its suffix if already used."""
        if name not in self._names:
            return name
        stem, dot, suffix = name.rpartition(".")
        if not dot or "/" in suffix:
            stem, suffix = name, ""
        n = 2
        while True:
            candidate = f"{stem}_{n}.{suffix}" if suffix else f"{stem}_{n}"
            if candidate not in self._names:
                return candidate
            n += 1

    def add_file(self, source_path, name):
        """Copy the file at ``source_path`` into the archive as ``name``; return the name used."""
        name = self.unique_name(name)
        self._names.add(name)
        with open(source_path, "rb") as src, self._zip.open(name, "w", force_zip64=True) as dst:
            shutil.copyfileobj(src, dst, CHUNK_SIZE)
        return name

    def add_bytes(self, data, name):
        """Write ``data`` into the archive as ``name``; return the name used."""
        name = self.unique_name(name)
        self._names.add(name)
        self._zip.writestr(name, data)
        return name

    def close(self):
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ChunkSink:
    """A write-only stream that lands in numbered files, so a ZIP can leave MEMFS as it grows.

    The worker moves each finished chunk to the page (which keeps them as Blob parts) and deletes
    it, so neither the wasm heap nor MEMFS ever holds the whole archive.

    Parameters
    ----------
    directory : str
        Where chunk files are written; created if missing.
    """

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._position = 0
        self._count = 0
        self._pending = []
        self._current = None

    def write(self, data):
        if self._current is None:
            self._count += 1
            path = os.path.join(self.directory, f"chunk-{self._count:06d}")
            self._current = open(path, "wb")
            self._pending.append(path)
        self._current.write(data)
        self._position += len(data)
        return len(data)

    def tell(self):
        return self._position

    def seek(self, *args):
        raise OSError("a ChunkSink cannot seek")

    def flush(self):
        pass

    def take_chunks(self):
        """Close the current chunk and return the paths of all chunks not yet taken, in order."""
        if self._current is not None:
            self._current.close()
            self._current = None
        taken, self._pending = self._pending, []
        return taken

    def close(self):
        if self._current is not None:
            self._current.close()
            self._current = None

"""The command's inputs and outputs: files found under the INPUTs, and the OUTPUT folder or ZIP.

Inputs are only ever read. An output folder keeps the inputs' relative paths; an output ``.zip``
holds the same names, written member by member with :class:`dcmstudio.archive.ZipWriter`.
Writing into an input folder (or over an input file) is refused before anything is read.
"""

import errno
import os
from typing import NamedTuple

from dcmstudio.archive import ZipWriter
from dcmstudio.errors import DicomStudioError


class UsageError(DicomStudioError):
    """The command line cannot be carried out as given (exit status 2)."""


class Inputs:
    """Every file under the INPUTs, in a stable order, with the name its output will keep.

    Iterating walks the folders again rather than holding the list, so memory does not grow
    with the number of files; ``len()`` is the count found when checking.

    Parameters
    ----------
    inputs : list of str
        Files and folders; folders are walked recursively (links to folders not followed).

    Notes
    -----
    Each item is ``{"path", "name", "index"}``: ``name`` is the path relative to its folder
    INPUT, prefixed by that folder's own name when several INPUTs are given; a file INPUT keeps
    its base name. ``index`` counts from 1. Names cannot repeat: within a folder they are
    distinct paths, and the INPUTs' own names are checked to be distinct.

    Raises
    ------
    UsageError
        An INPUT does not exist, two INPUTs have the same name, or no file was found.
    """

    def __init__(self, inputs):
        self.inputs = list(inputs)
        tops = {}
        for given in self.inputs:
            if not os.path.exists(given):
                raise UsageError(f"{given}: no such file or folder.")
            top = os.path.basename(os.path.normpath(os.path.abspath(given)))
            if top in tops and len(self.inputs) > 1:
                raise UsageError(f"{tops[top]} and {given} would both be written as {top}; give them "
                                 "from folders with different names.")
            tops[top] = given
        self.count = sum(1 for _ in self._files())
        if not self.count:
            raise UsageError("no files were found in " + ", ".join(self.inputs) + ".")

    def _files(self):
        for given in self.inputs:
            if not os.path.isdir(given):
                yield given, os.path.basename(given)
                continue
            prefix = os.path.basename(os.path.normpath(os.path.abspath(given))) if len(self.inputs) > 1 else ""
            for folder, dirs, names in os.walk(given):
                dirs.sort()
                # the folder's path relative to INPUT, once per folder (not per file)
                relative = os.path.relpath(folder, given).replace(os.sep, "/")
                start = "/".join(part for part in (prefix, relative if relative != "." else "") if part)
                for file_name in sorted(names):
                    yield os.path.join(folder, file_name), f"{start}/{file_name}" if start else file_name

    def __len__(self):
        return self.count

    def __iter__(self):
        for index, (path, name) in enumerate(self._files(), 1):
            yield {"path": os.path.abspath(path), "name": name, "index": index}


def check_output(output, inputs):
    """Refuse an OUTPUT that is, or lies inside, an INPUT folder, or that is an INPUT file.

    Raises
    ------
    UsageError
    """
    target = os.path.realpath(output)
    for given in inputs:
        source = os.path.realpath(given)
        if target == source or (os.path.isdir(source) and _inside(target, source)):
            raise UsageError(f"the output {output} is inside the input {given}: dcmstudio never "
                             "writes into its inputs; choose another output.")
        if os.path.isdir(target) and _inside(source, target):
            raise UsageError(f"the input {given} is inside the output {output}; choose another output.")


def _inside(path, folder):
    return os.path.commonpath([path, folder]) == folder


def is_zip(output):
    return output.lower().endswith(".zip")


class Output:
    """Where a command's files go: a folder (created as needed) or a ZIP written as they come.

    Parameters
    ----------
    output : str
        A folder, or a path ending in ``.zip`` (an existing ZIP is replaced).

    Notes
    -----
    Per-file workers write straight into a folder (``folder``); for a ZIP they hand their bytes
    back and :meth:`add` appends them, so the archive has one writer.
    """

    def __init__(self, output):
        self.path = output
        self.zip = None
        if is_zip(output):
            parent = os.path.dirname(os.path.abspath(output))
            os.makedirs(parent, exist_ok=True)
            self.zip = ZipWriter(output)
            self.folder = None
        else:
            os.makedirs(output, exist_ok=True)
            self.folder = output

    def add(self, name, pieces):
        """Append one output (bytes-like pieces) to the ZIP; return the name used."""
        return self.zip.add_pieces(pieces, name)

    def beside(self, file_name):
        """A path next to the output (outside it): for the reports that must not travel with the data."""
        base = os.path.normpath(os.path.abspath(self.path))
        stem = os.path.splitext(os.path.basename(base))[0] if self.zip else os.path.basename(base)
        return os.path.join(os.path.dirname(base), f"{stem}.{file_name}")

    def close(self):
        if self.zip is not None:
            self.zip.close()


class FromInput(NamedTuple):
    """An output piece that is the input's own bytes, not read: ``length`` bytes from ``offset``
    of the input file, copied by :func:`write_checked`."""

    offset: int
    length: int


def write_checked(folder, name, pieces, dicom=True, source=None):
    """Write ``pieces`` as ``folder/name`` (through a temporary name), then re-read what was written.

    A :class:`FromInput` piece is copied from the file ``source`` by :func:`copy_range`, without
    passing through Python. The re-read checks the size and, for DICOM, the preamble's ``DICM``
    prefix, so no half-written or empty file is left under the output's name.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    DicomStudioError
        The file on disk is not what was meant to be written (nothing is left under its name).
    """
    path = os.path.join(folder, *name.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = path + ".part"
    size = 0
    source_fd = None
    try:
        # one open for writing and reading back (each open costs on a busy or network file system)
        with open(part, "w+b") as f:
            for piece in pieces:
                if isinstance(piece, FromInput):
                    if source_fd is None:
                        source_fd = os.open(source, os.O_RDONLY)
                    f.flush()
                    copy_range(source_fd, f.fileno(), piece.offset, piece.length)
                    f.seek(0, os.SEEK_END)  # past what the system copied
                    size += piece.length
                else:
                    f.write(piece)
                    size += len(piece)
            f.flush()
            head = os.pread(f.fileno(), 132, 0)
            on_disk = os.fstat(f.fileno()).st_size
    finally:
        if source_fd is not None:
            os.close(source_fd)
    if on_disk != size or (dicom and head[128:132] != b"DICM"):
        os.remove(part)
        raise DicomStudioError(f"the output written for {name} did not read back as written; it was "
                               "removed.", file=name)
    os.replace(part, path)
    return path


# What copy_file_range and sendfile say where they cannot copy between these two files
# (another file system on older kernels, a file system or system without the call).
_CANNOT_COPY_HERE = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP,
                     errno.ENOTSOCK, errno.EBADF}
_CHUNK = 1 << 20


def copy_range(source_fd, target_fd, offset, length):
    """Append ``length`` bytes of ``source_fd`` from ``offset`` at ``target_fd``'s position.

    In the kernel where the system can (``os.copy_file_range``, else ``os.sendfile``), else by
    reading and writing a chunk at a time. The source's own position is not used or moved.

    Returns
    -------
    int
        The bytes copied: fewer than ``length`` only when the source is shorter (it changed on
        disk since its head was read); the caller's size check then refuses the output.
    """
    end = offset + length
    for system_copy in _system_copies():
        try:
            while offset < end:
                copied = system_copy(source_fd, target_fd, offset, end - offset)
                if not copied:
                    return length - (end - offset)  # the end of the source
                offset += copied
        except OSError as exc:
            if exc.errno not in _CANNOT_COPY_HERE:
                raise
            continue  # what was copied stays; the next way goes on from there
        return length
    while offset < end:
        chunk = os.pread(source_fd, min(_CHUNK, end - offset), offset)
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            view = view[os.write(target_fd, view):]
        offset += len(chunk)
    return length - (end - offset)


def _system_copies():
    """The kernel's file-to-file copies this system has, best first."""
    if hasattr(os, "copy_file_range"):
        yield lambda source, target, offset, count: os.copy_file_range(source, target, count, offset)
    if hasattr(os, "sendfile"):
        yield lambda source, target, offset, count: os.sendfile(target, source, offset, count)

"""The few exception types dcmstudio raises on user input.

Every error names the file (and, where it applies, the element) in a sentence a user can act on.
``dcmstudio.api`` turns them into ``{"ok": False, "error": {...}}`` results.
"""

import contextlib
import errno


class DicomStudioError(Exception):
    """Base class: a problem with the user's input or request, described in a sentence.

    Parameters
    ----------
    message : str
        What is wrong and, where possible, what to do about it.
    file : str, optional
        The name of the file concerned.
    """

    def __init__(self, message, file=None):
        super().__init__(message)
        self.message = message
        self.file = file

    def __str__(self):
        return f"{self.file}: {self.message}" if self.file else self.message


class NotDicomError(DicomStudioError):
    """The input is not a DICOM file (no DICM prefix and no plausible dataset start)."""


class InvalidDicomError(DicomStudioError):
    """The input looks like DICOM but its encoding is broken (truncated, bad lengths, ...)."""


class EditError(DicomStudioError):
    """A requested edit cannot be made (unknown path, value invalid for its VR, ...)."""


class VolumeError(DicomStudioError):
    """A volume cannot be read or written as asked (unsupported variant, bad geometry, ...)."""


class UnreadableFileError(DicomStudioError):
    """A file the user opened can no longer be read (moved, deleted or changed on disk since)."""


def unreadable_message(name):
    """The sentence for a file whose bytes the browser (or the system) refused to give."""
    return (f"{name} could not be read: it was moved, deleted or changed on disk after it was opened. "
            "Open it again to include it.")


@contextlib.contextmanager
def unreadable_as_error(name):
    """Turn an I/O error while reading the file ``name`` into :class:`UnreadableFileError`.

    In the page, opened files are read from the user's disk on demand; a file changed there since
    reads as an I/O error (errno EIO), which would otherwise surface as an internal failure.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EIO, errno.ENOENT):
            raise
        raise UnreadableFileError(unreadable_message(name), file=name) from exc

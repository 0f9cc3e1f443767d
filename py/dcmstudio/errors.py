"""The few exception types dcmstudio raises on user input.

Every error names the file (and, where it applies, the element) in a sentence a user can act on.
``dcmstudio.api`` turns them into ``{"ok": False, "error": {...}}`` results.
"""


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

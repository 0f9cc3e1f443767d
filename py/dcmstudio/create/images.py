"""PNG and JPEG files as DICOM pixels: first what each holds (header only), then its pixels.

Pillow decodes (in Pyodide too). ``SourceImage`` reads only the header when constructed, so a
multi-frame object can be planned from many files before any of them is decoded, and then decoded
one at a time. Pillow is imported on first use: the page loads it only for this workbench.
"""

import importlib
import os
import struct
import warnings

import numpy as np

from dcmstudio.errors import DicomStudioError

FORMATS = ("PNG", "JPEG")
# What each pixel format becomes in DICOM.
GRAY8, GRAY16, COLOR = "gray8", "gray16", "color"
_MODE_KINDS = {
    "1": GRAY8, "L": GRAY8, "LA": GRAY8, "La": GRAY8,
    "I": GRAY16, "I;16": GRAY16, "I;16B": GRAY16, "I;16L": GRAY16, "I;16N": GRAY16,
    "P": COLOR, "PA": COLOR, "RGB": COLOR, "RGBA": COLOR, "RGBa": COLOR, "RGBX": COLOR,
    "CMYK": COLOR, "YCbCr": COLOR, "LAB": COLOR, "HSV": COLOR,
}
# EXIF orientations 5 to 8 turn the picture a quarter: width and height swap.
_QUARTER_TURN_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112
_MAX_DIMENSION = 65535  # (0028,0010) Rows and (0028,0011) Columns are US
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
# What Pillow's plugins raise on damaged files; wasm32 raises OverflowError where CPython does not.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, OverflowError, IndexError, KeyError,
                  TypeError, ZeroDivisionError, struct.error)


class SourceImage:
    """One PNG or JPEG file, described from its header without decoding its pixels.

    Parameters
    ----------
    path : str
        The image file.
    name : str, optional
        The user's name for it, for messages (the path's last part by default).

    Attributes
    ----------
    format : str
        "PNG" or "JPEG".
    kind : str
        ``GRAY8``, ``GRAY16`` or ``COLOR``: the DICOM pixel format that keeps all it holds.
    rows, columns : int
        Its size as displayed (after the EXIF orientation of a photograph is applied).
    has_alpha : bool
        Whether it has transparency, which DICOM cannot hold (8-bit images are flattened onto
        black; the transparency of 16-bit ones is dropped).

    Raises
    ------
    DicomStudioError
        When the file is not a PNG or JPEG that Pillow can read, or is too large for DICOM.
    """

    def __init__(self, path, name=None):
        self.path = path
        self.name = name or os.path.basename(path)
        with self._open() as img:
            self.format = img.format
            self.mode = img.mode
            self.has_alpha = img.mode in _ALPHA_MODES or "transparency" in img.info
            width, height = img.size
            try:
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1) if img.format == "JPEG" else 1
            except _DECODE_ERRORS:
                orientation = 1  # damaged EXIF: show the picture as stored
        if self.format not in FORMATS:
            raise DicomStudioError(f"{self.name} is a {self.format} image; a Secondary Capture can "
                                   "be made from a PNG or a JPEG.", file=self.name)
        self.kind = _MODE_KINDS.get(self.mode)
        if self.kind is None:
            raise DicomStudioError(f"{self.name} has pixel mode {self.mode}, which cannot be stored "
                                   "as DICOM pixels: save it as 8- or 16-bit grayscale or RGB.",
                                   file=self.name)
        self.orientation = orientation
        if orientation in _QUARTER_TURN_ORIENTATIONS:
            width, height = height, width
        if not (0 < width <= _MAX_DIMENSION and 0 < height <= _MAX_DIMENSION):
            raise DicomStudioError(f"{self.name} is {width}×{height} pixels; DICOM allows 1 to "
                                   f"{_MAX_DIMENSION} rows and columns.", file=self.name)
        self.rows, self.columns = height, width

    @property
    def is_lossy(self):
        """Whether the pixels have been through lossy compression (a JPEG)."""
        return self.format == "JPEG"

    def _open(self):
        Image = _pillow("Image")
        try:
            with warnings.catch_warnings():
                # Pillow only warns about decompression bombs below twice its limit: refuse them all.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return Image.open(self.path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DicomStudioError(f"{self.name} is too large to decode safely in the page ({exc}).",
                                   file=self.name) from exc
        except (_pillow().UnidentifiedImageError, *_DECODE_ERRORS) as exc:
            raise DicomStudioError(f"{self.name} is not an image Pillow can read (PNG or JPEG "
                                   "expected).", file=self.name) from exc

    def pixels(self, kind=None):
        """Decode the pixels into the DICOM layout of ``kind`` (default: this image's own kind).

        Parameters
        ----------
        kind : str, optional
            ``GRAY8``, ``GRAY16`` or ``COLOR``. A grayscale image can be asked for as ``COLOR``
            (its gray copied to R, G and B); nothing else converts.

        Returns
        -------
        numpy.ndarray
            (rows, columns) uint8 or uint16, or (rows, columns, 3) uint8 RGB.

        Raises
        ------
        DicomStudioError
            When the file is truncated or corrupt, or holds 32-bit values beyond 16 bits.
        """
        kind = kind or self.kind
        if kind != self.kind and not (kind == COLOR and self.kind == GRAY8):
            raise DicomStudioError(f"{self.name} is {self.kind} and cannot be stored as {kind} "
                                   "without losing values.", file=self.name)
        with self._open() as img:
            try:
                img = _pillow("ImageOps").exif_transpose(img) if self.orientation != 1 else img
                array = _to_array(_without_alpha(img), self.kind)
            except _DECODE_ERRORS as exc:
                raise DicomStudioError(f"{self.name} could not be decoded (truncated or corrupt: "
                                       f"{exc}).", file=self.name) from exc
        if self.kind == GRAY16 and array.dtype != np.uint16:
            if array.size and (array.min() < 0 or array.max() > np.iinfo(np.uint16).max):
                raise DicomStudioError(f"{self.name} holds values outside 0…65535, more than "
                                       "16-bit DICOM pixels can keep.", file=self.name)
            array = array.astype(np.uint16)
        if kind == COLOR and array.ndim == 2:
            array = np.repeat(array[:, :, np.newaxis], 3, axis=2)
        if array.shape[:2] != (self.rows, self.columns):
            raise DicomStudioError(f"{self.name} decoded to {array.shape[1]}×{array.shape[0]} "
                                   f"pixels, not the {self.columns}×{self.rows} its header gives.",
                                   file=self.name)
        return np.ascontiguousarray(array)


def _without_alpha(img):
    """Flatten the transparency of an 8-bit image onto black, as a dark DICOM viewer would show it."""
    has_transparency = img.mode in ("L", "P", "RGB") and "transparency" in img.info
    if img.mode not in _ALPHA_MODES and not has_transparency:
        return img
    flat_mode = "L" if img.mode in ("L", "LA", "La") else "RGB"
    Image = _pillow("Image")
    black = Image.new("RGBA", img.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, img.convert("RGBA")).convert(flat_mode)


def _to_array(img, kind):
    if kind == GRAY8:
        return np.asarray(img.convert("L"))
    if kind == COLOR:
        return np.asarray(img.convert("RGB"))
    return np.asarray(img)


def _pillow(module=None):
    """Import Pillow (or one of its modules) now, saying plainly if the page has not loaded it."""
    try:
        return importlib.import_module(f"PIL.{module}" if module else "PIL")
    except ImportError as exc:
        raise DicomStudioError("Pillow, which decodes PNG and JPEG, is not loaded: images cannot "
                               "be read here.") from exc

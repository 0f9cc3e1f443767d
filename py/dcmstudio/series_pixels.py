"""How a volume's voxel values become DICOM pixels, exactly where they can, and how far off if not.

``real value = stored pixel × (0028,1053) *Rescale Slope* + (0028,1052) *Rescale Intercept*``.

- 8- and 16-bit integers are stored as they are (8-bit grey goes to 16 bits where the IOD wants
  16: CT, MR); the volume's own scaling (NIfTI scl_*, a DICOM source's rescale) is carried over.
- Other integers, and floats holding whole numbers, are stored exactly when their range fits 16
  bits, shifted by an intercept if need be (e.g. 100000..130000 → 0..30000 + 100000).
- Everything else (floats, wide integers) is quantised to 65,536 levels spanning its range: with
  the intercept at the minimum and the slope at range / 65535, the largest error is about half a
  slope, the least 16 bits can do for values spread over the range. The error is measured on
  every voxel (with the slope and intercept as written, 16-character DS strings) and reported.
- NaN and infinity cannot be stored and are refused; never are float bytes put under an
  integer header.
"""

from dataclasses import dataclass

import numpy as np
from pydicom.valuerep import format_number_as_ds

from .errors import VolumeError

UINT16_LEVELS = 65535


def format_ds(value):
    """A number as a DS string of at most 16 characters (never '-0')."""
    value = float(value)
    return format_number_as_ds(value if value != 0 else 0.0)


@dataclass
class PixelEncoding:
    """How voxel values become stored pixels: ``real = stored * slope + intercept``.

    Attributes
    ----------
    stored_dtype : numpy.dtype
        ``u1``, ``<u2`` or ``<i2``.
    samples : int
        1 (grey) or 3 (RGB).
    slope, intercept : str
        As written to the file (DS).
    offset : int
        Stored = voxel - offset (an exact shift into 16 bits).
    quantise : bool
        Stored = rint((real - intercept) / slope), clipped to 0..65535.
    max_abs_error : float
        Largest |decoded - real| over the volume (0.0 when exact; else measured).
    value_range : tuple or None
        (min, max) of the real values, where they were scanned.
    """

    stored_dtype: np.dtype
    samples: int
    slope: str
    intercept: str
    offset: int = 0
    quantise: bool = False
    max_abs_error: float = 0.0
    value_range: tuple = None

    @property
    def bits(self):
        return self.stored_dtype.itemsize * 8

    @property
    def signed(self):
        return self.stored_dtype.kind == "i"

    @property
    def exact(self):
        """True when the stored integers are the volume's own (only DS rounding can differ)."""
        return not self.quantise

    @property
    def identity(self):
        return float(self.slope) == 1.0 and float(self.intercept) == 0.0

    def stored_slice(self, volume, k):
        """Slice ``k`` as the contiguous little-endian array written to the file."""
        values = volume.voxels[k]
        if self.quantise:
            real = values.astype(np.float64) * volume.slope + volume.intercept
            stored = np.rint((real - float(self.intercept)) / float(self.slope))
            return np.clip(stored, 0, UINT16_LEVELS).astype(self.stored_dtype)
        if self.offset:
            return (values.astype(np.int64) - self.offset).astype(self.stored_dtype)
        if values.dtype == self.stored_dtype:
            return values
        return values.astype(self.stored_dtype)


def choose_encoding(volume, sixteen_bit, exact, unsigned=False):
    """Pick how the volume's values are stored; see the module docstring.

    Parameters
    ----------
    volume : Volume
    sixteen_bit : bool
        True when the IOD needs 16 bits (CT, MR); else 8-bit data stays 8-bit.
    exact : bool
        Refuse, rather than quantise, values that 16 bits cannot hold exactly.
    unsigned : bool
        Store unsigned pixels only (Multi-frame Grayscale SC), shifting signed ones by 32768.

    Returns
    -------
    PixelEncoding

    Raises
    ------
    VolumeError
        NaN or infinite values; RGB that is not 8-bit; values that cannot be stored exactly
        when ``exact`` is asked.
    """
    key = ("encoding", sixteen_bit, exact, unsigned)
    if key not in volume.memo:
        volume.memo[key] = _choose_encoding(volume, sixteen_bit, exact, unsigned)
    return volume.memo[key]


def _choose_encoding(volume, sixteen_bit, exact, unsigned):
    name = volume.source_name
    dtype = volume.voxels.dtype
    if volume.components == 3:
        if dtype != np.uint8:
            raise VolumeError(f"RGB volumes must hold 8-bit values, not {dtype}.", file=name)
        return _integer_encoding(volume, "u1", 3)
    if dtype in (np.bool_, np.uint8) and not sixteen_bit:
        return _integer_encoding(volume, "u1")
    if dtype in (np.bool_, np.uint8, np.uint16):
        return _integer_encoding(volume, "<u2")
    if dtype in (np.int8, np.int16):
        if unsigned:
            return _integer_encoding(volume, "<u2", offset=-32768)
        return _integer_encoding(volume, "<i2")
    low, high, integral = _scan(volume)
    if dtype.kind == "f" and integral and -2.0**53 <= low and high <= 2.0**53:
        dtype, low, high = np.dtype(np.int64), int(low), int(high)
    if dtype.kind in "iu":
        low, high = int(low), int(high)
        candidates = ("<i2", "<u2") if dtype.kind == "i" else ("<u2", "<i2")
        for candidate in candidates[1:] if unsigned else candidates:
            if _fits(low, high, candidate):
                return _integer_encoding(volume, candidate, value_range=(low, high))
        if high - low <= UINT16_LEVELS:
            return _integer_encoding(volume, "<u2", offset=low, value_range=(low, high))
    real = sorted((low * volume.slope + volume.intercept, high * volume.slope + volume.intercept))
    return _quantised(volume, float(real[0]), float(real[1]), exact)


def _scan(volume):
    """Min, max and whether all are whole numbers, one slice at a time; refuse NaN and infinity."""
    low, high, integral = np.inf, -np.inf, True
    for k in range(volume.voxels.shape[0]):
        values = volume.voxels[k]
        if values.dtype.kind == "f":
            if not np.all(np.isfinite(values)):
                raise VolumeError(f"Slice {k + 1} holds NaN or infinite values, which DICOM pixels"
                                  " cannot store; replace them first.", file=volume.source_name)
            integral = integral and bool(np.all(values == np.floor(values)))
        low, high = min(low, values.min()), max(high, values.max())
    return low, high, integral


def _fits(low, high, dtype):
    info = np.iinfo(dtype)
    return info.min <= low and high <= info.max


def _integer_encoding(volume, dtype, samples=1, offset=0, value_range=None):
    """Stored = voxel - offset, exactly; the error left is the DS rounding of slope/intercept."""
    slope = volume.slope
    intercept = volume.intercept + offset * slope
    encoding = PixelEncoding(np.dtype(dtype), samples, format_ds(slope), format_ds(intercept),
                             offset=offset)
    if value_range is not None:
        encoding.value_range = tuple(sorted(v * slope + volume.intercept for v in value_range))
        largest = max(abs(value_range[0] - offset), abs(value_range[1] - offset))
    else:
        info = np.iinfo(encoding.stored_dtype)
        largest = max(abs(int(info.min)), abs(int(info.max)))
    encoding.max_abs_error = float(abs(float(encoding.slope) - slope) * largest
                                   + abs(float(encoding.intercept) - intercept))
    return encoding


def _quantised(volume, low, high, exact):
    """The uint16 encoding spanning [low, high], with its largest error measured."""
    name = volume.source_name
    if exact:
        raise VolumeError(
            f"The values ({low:.6g} to {high:.6g}, type {volume.voxels.dtype}) cannot be stored"
            " exactly in 16-bit DICOM pixels; untick 'exact' to store them with a rescale slope"
            " and intercept (the largest error is then shown).", file=name)
    slope = format_ds((high - low) / UINT16_LEVELS if high > low else 1.0)
    intercept = format_ds(low)
    encoding = PixelEncoding(np.dtype("<u2"), 1, slope, intercept, quantise=True,
                             value_range=(low, high))
    error = 0.0
    for k in range(volume.voxels.shape[0]):
        real = volume.voxels[k].astype(np.float64) * volume.slope + volume.intercept
        decoded = encoding.stored_slice(volume, k) * float(slope) + float(intercept)
        error = max(error, float(np.max(np.abs(decoded - real))))
    encoding.max_abs_error = error
    return encoding

"""Lossy compression: the settings a person chose, what the header must then say, and how far the
pixels moved.

dcmstudio writes two lossy transfer syntaxes, never unless asked: JPEG 2000 (1.2.840.10008.1.2.4.91)
at a chosen compression ratio, and JPEG Baseline (1.2.840.10008.1.2.4.50) at a chosen quality, for
8-bit samples. :mod:`dcmstudio.codecs` does the writing; this module holds the rest:

- :class:`LossySettings` checks the choice (a ratio for JPEG 2000, a quality for JPEG Baseline);
- :func:`mark_lossy` records the compression in the header as PS3.3 C.7.6.1.1.5 asks:
  (0028,2110) *Lossy Image Compression* "01", the achieved ratio appended to (0028,2112) *Lossy
  Image Compression Ratio* and the method to (0028,2114) *Lossy Image Compression Method*
  (earlier values stay: a source that was already lossy keeps its history), Value 1 of (0008,0008)
  *Image Type* DERIVED and a line in (0008,2111) *Derivation Description*, as DCMTK's codecs do;
- :func:`remap_instance_uids` gives the output its new SOP Instance UID, and makes every reference
  to an instance recompressed in the same run follow it;
- :class:`Fidelity` measures each frame decoded again against its source: PSNR and the largest
  absolute error.
"""

import math

import numpy as np
from pydicom import uid as uids
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from . import uids as new_uids
from .errors import DicomStudioError

# (0028,2114) Defined Terms (PS3.3 C.7.6.1.1.5.1), by transfer syntax.
LOSSY_METHODS = {
    uids.JPEG2000: "ISO_15444_1",
    uids.JPEGBaseline8Bit: "ISO_10918_1",
}
LOSSY_TARGETS = frozenset(LOSSY_METHODS)

# The ratio a JPEG 2000 output aims at: above 1 (else nothing is gained), at most 1000.
RATIO_RANGE = (1.5, 1000.0)
# Pillow's JPEG quality scale (the IJG one): 1 worst ... 100 best.
QUALITY_RANGE = (1, 100)
# CID 7202: how the Source Image Sequence item relates the output to what it was made from.
_UNCOMPRESSED_PREDECESSOR = ("121320", "DCM", "Uncompressed predecessor")
_LOSSY_PREDECESSOR = ("121330", "DCM", "Lossy compressed predecessor")
_DERIVATION_LIMIT = 1024  # (0008,2111) is ST: 1024 characters at most


class LossySettings:
    """A lossy target and its one setting, checked.

    Parameters
    ----------
    transfer_syntax_uid : str
        JPEG 2000 (1.2.840.10008.1.2.4.91) or JPEG Baseline (1.2.840.10008.1.2.4.50).
    ratio : float, optional
        JPEG 2000 only, and required there: the compression ratio aimed at, uncompressed bytes
        (as (0028,0100) *Bits Allocated* stores them) over compressed bytes.
    quality : int, optional
        JPEG Baseline only, and required there: 1 (smallest) to 100 (best).

    Raises
    ------
    DicomStudioError
        If the target is not lossy, or its setting is missing, of the other kind or out of range.
    """

    def __init__(self, transfer_syntax_uid, *, ratio=None, quality=None):
        target = uids.UID(str(transfer_syntax_uid))
        if target not in LOSSY_TARGETS:
            raise DicomStudioError(f"{target} is not a lossy transfer syntax dcmstudio writes; choose JPEG 2000 "
                                   f"({uids.JPEG2000}) or JPEG Baseline ({uids.JPEGBaseline8Bit}).")
        self.target = target
        self.method = LOSSY_METHODS[target]
        self.ratio = self.quality = None
        if target == uids.JPEG2000:
            if quality is not None:
                raise DicomStudioError("JPEG 2000 is written at a compression ratio, not a quality.")
            self.ratio = _number_in(ratio, RATIO_RANGE, "The JPEG 2000 compression ratio", float)
        else:
            if ratio is not None:
                raise DicomStudioError("JPEG Baseline is written at a quality (1 to 100), not a compression ratio.")
            self.quality = _number_in(quality, QUALITY_RANGE, "The JPEG Baseline quality", int)

    @classmethod
    def from_options(cls, transfer_syntax_uid, options):
        """Settings from a job's or a command's options dict (``ratio`` / ``quality``)."""
        return cls(transfer_syntax_uid, ratio=options.get("ratio"), quality=options.get("quality"))

    def describe(self):
        """The setting as a phrase, e.g. ``"JPEG 2000 at ratio 10:1"``."""
        if self.ratio is not None:
            return f"JPEG 2000 at ratio {self.ratio:g}:1"
        return f"JPEG Baseline at quality {self.quality}"

    def as_dict(self):
        """``{"transfer_syntax", "method", "ratio", "quality"}`` for reports."""
        return {"transfer_syntax": str(self.target), "method": self.method, "ratio": self.ratio,
                "quality": self.quality}


def _number_in(value, bounds, label, kind):
    low, high = bounds
    try:
        number = kind(value)
        if kind is int and number != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise DicomStudioError(f"{label} must be a number from {low:g} to {high:g}; "
                               f"{'none was given' if value is None else f'{value!r} is not one'}.") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise DicomStudioError(f"{label} must be from {low:g} to {high:g}, not {value!r}.")
    return number


def why_not_lossy(settings, header):
    """Why this image cannot be written with these settings (a sentence fragment), or None.

    Parameters
    ----------
    settings : LossySettings
    header : pydicom.dataset.Dataset
        The image's header (everything before its pixel data).
    """
    photometric = str(header.get("PhotometricInterpretation", ""))
    if photometric == "PALETTE COLOR":
        return ("has (0028,0004) Photometric Interpretation PALETTE COLOR: its pixels are indices into a "
                "colour table, which lossy compression would turn into other colours")
    if settings.target != uids.JPEGBaseline8Bit:
        return None
    bits_allocated = header.get("BitsAllocated")
    bits_stored = header.get("BitsStored", bits_allocated)
    if bits_allocated != 8 or bits_stored != 8:
        return (f"has {bits_stored}-bit samples in {bits_allocated}-bit words; JPEG Baseline holds 8-bit "
                "samples only (choose JPEG 2000)")
    if header.get("PixelRepresentation", 0):
        return "has signed samples ((0028,0103) Pixel Representation 1), which JPEG Baseline does not hold"
    return None


def achieved_ratio(header, frames, compressed_bytes):
    """Uncompressed pixel bytes (rows x columns x samples x Bits Allocated / 8, every frame) over
    the bytes of the compressed frames."""
    uncompressed = (int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1))
                    * int(header.BitsAllocated) // 8 * frames)
    return uncompressed / max(1, compressed_bytes)


def _format_ratio(ratio):
    """A DS value of at most 16 characters, 3 significant digits as DCMTK writes them."""
    return f"{ratio:.3g}" if ratio < 1e15 else "1e15"


def _values(dataset, keyword):
    value = dataset.get(keyword)
    if value in (None, ""):
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple, MultiValue)) else [str(value)]


def mark_lossy(header, settings, ratio, *, derivation=True):
    """Record in ``header`` (changed in place) that its pixel data was just lossy compressed.

    Parameters
    ----------
    header : pydicom.dataset.Dataset
    settings : LossySettings
    ratio : float
        The ratio achieved (see :func:`achieved_ratio`).
    derivation : bool
        Whether to add the line to (0008,2111) *Derivation Description* (False where the object's
        IOD does not hold it).
    """
    ratios = _values(header, "LossyImageCompressionRatio")
    methods = _values(header, "LossyImageCompressionMethod")
    header.LossyImageCompression = "01"
    header.LossyImageCompressionRatio = [*ratios, _format_ratio(ratio)]
    header.LossyImageCompressionMethod = [*methods, settings.method]
    image_type = _values(header, "ImageType")
    if image_type:
        header.ImageType = ["DERIVED", *image_type[1:]]
    if not derivation:
        return
    line = f"Lossy compression with {settings.describe()}, compression ratio {_format_ratio(ratio)}"
    earlier = str(header.get("DerivationDescription") or "").strip()
    header.DerivationDescription = (f"{earlier}; {line}" if earlier else line)[-_DERIVATION_LIMIT:]


def add_predecessor(header, sop_class_uid, sop_instance_uid, source_was_lossy):
    """Append to (0008,2112) *Source Image Sequence* the instance the output was compressed from."""
    value, scheme, meaning = _LOSSY_PREDECESSOR if source_was_lossy else _UNCOMPRESSED_PREDECESSOR
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    item.PurposeOfReferenceCodeSequence = Sequence([code])
    items = list(header.get("SourceImageSequence") or [])
    header.SourceImageSequence = Sequence([*items, item])


def remap_instance_uids(dataset, new_uid_of):
    """Replace, everywhere in ``dataset`` (in place, nested items included), each instance UID that
    ``new_uid_of`` maps.

    Only UI elements that name an instance are touched (see :func:`dcmstudio.uids.is_remappable`):
    a SOP Class UID equal by chance to a mapped value stays.

    Parameters
    ----------
    dataset : pydicom.dataset.Dataset
    new_uid_of : dict of str to str
        Old SOP Instance UID to new one, for every instance recompressed in the run.

    Returns
    -------
    set of str
        The old UIDs that were replaced.
    """
    replaced = set()

    def visit(ds, element):
        if element.VR != "UI":
            return
        value = element.value
        if value in (None, ""):
            return
        old = [str(v) for v in value] if isinstance(value, (list, tuple, MultiValue)) else [str(value)]
        new = [new_uid_of.get(uid, uid) if new_uids.is_remappable(element.tag, uid) else uid for uid in old]
        if new != old:
            replaced.update(o for o, n in zip(old, new) if o != n)
            element.value = new if len(new) > 1 else new[0]

    dataset.walk(visit)
    return replaced


class Fidelity:
    """How far decoded frames are from their sources, accumulated frame by frame.

    Parameters
    ----------
    bits_stored : int
        (0028,0101) *Bits Stored*: the peak of the PSNR is ``2**bits_stored - 1``.
    """

    def __init__(self, bits_stored):
        self.peak = float(2 ** int(bits_stored) - 1)
        self.squared_error = 0.0
        self.samples = 0
        self.largest_error = 0

    def add(self, source, decoded):
        """Count one frame: ``source`` and ``decoded`` arrays of the same shape."""
        if source.shape != decoded.shape:
            raise DicomStudioError(f"the decoded frame is {decoded.shape}, its source {source.shape}")
        difference = decoded.astype(np.float64) - source.astype(np.float64)
        self.squared_error += float(np.square(difference).sum())
        self.samples += difference.size
        self.largest_error = max(self.largest_error, int(np.abs(difference).max(initial=0)))

    def report(self):
        """``{"psnr_db": float or None (identical), "max_abs_error": int, "rmse": float}``."""
        mse = self.squared_error / max(1, self.samples)
        psnr = None if mse == 0 else 10 * math.log10(self.peak ** 2 / mse)
        return {"psnr_db": None if psnr is None else round(psnr, 2), "max_abs_error": self.largest_error,
                "rmse": round(math.sqrt(mse), 4)}

"""Secondary Capture images: one frame from a PNG or JPEG, many frames from images or a volume.

``SecondaryCaptureImage`` plans the object from the sources' headers (and checks them) at
construction; ``save`` then writes the header and streams the frames after it one at a time, so
no more than one decoded frame is in memory, however many there are.
"""

import os
import struct

import numpy as np
from pydicom.uid import (
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
)

from dcmstudio.create import base
from dcmstudio.create.images import COLOR, GRAY8, GRAY16, SourceImage
from dcmstudio.errors import DicomStudioError, EditError

_MULTIFRAME_SOP_CLASSES = {
    GRAY8: MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    GRAY16: MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    COLOR: MultiFrameTrueColorSecondaryCaptureImageStorage,
}
# (Samples per Pixel, Photometric Interpretation, Bits Allocated) of each kind; all unsigned.
_PIXEL_LAYOUTS = {GRAY8: (1, "MONOCHROME2", 8), GRAY16: (1, "MONOCHROME2", 16), COLOR: (3, "RGB", 8)}
_CONVERSION_TYPES = ("WSD", "SD", "SI", "DI", "DF", "DV", "SYN", "DRW")
_PIXEL_DATA_TAG = (0x7FE0, 0x0010)
_UINT16_MAX = int(np.iinfo(np.uint16).max)
# The options the SC builders understand besides the series ones (see SeriesOptions).
SC_OPTIONS = ("ConversionType", "BurnedInAnnotation", "ImageComments", "PixelSpacing",
              "WindowCenter", "WindowWidth")
VOLUME_OPTIONS = SC_OPTIONS + ("SpacingBetweenSlices",)


class FrameSource:
    """Where the frames of an object come from: their count, size, pixel kind and a generator.

    Parameters
    ----------
    kind : str
        ``GRAY8``, ``GRAY16`` or ``COLOR``.
    rows, columns, count : int
        Frame size and number of frames.
    frames : callable
        Called once by ``save``; returns an iterator of ``count`` arrays of that size and kind.
    lossy : bool
        Whether the pixels have been through lossy compression before (JPEG sources).
    rescale : tuple of float, optional
        (intercept, slope) turning stored values back into the source's values.
    notes : list of str
        What the conversion changed, for the report.
    frame_vector : tuple, optional
        (keyword, values) of the attribute that (0028,0009) *Frame Increment Pointer* names.
    burned_in_default : str
        (0028,0301) *Burned In Annotation* unless the user says otherwise: "YES" for pictures
        (screenshots and photographs often show names), "NO" for volumes.
    """

    def __init__(self, kind, rows, columns, count, frames, *, lossy=False, rescale=None, notes=(),
                 frame_vector=None, burned_in_default="YES"):
        self.kind, self.rows, self.columns, self.count = kind, rows, columns, count
        self.frames = frames
        self.lossy = lossy
        self.rescale = rescale
        self.notes = list(notes)
        self.frame_vector = frame_vector
        self.burned_in_default = burned_in_default

    @property
    def frame_bytes(self):
        samples, _, bits = _PIXEL_LAYOUTS[self.kind]
        return self.rows * self.columns * samples * bits // 8


def images_source(paths, names=None, *, file):
    """Plan frames from PNG/JPEG files (headers only): one kind and size for all.

    A grayscale 8-bit image among colour ones is stored as colour; 8- and 16-bit grayscale do not
    mix, and every image must have the same size.
    """
    if not paths:
        raise EditError("No image was given: choose at least one PNG or JPEG.", file=file)
    names = list(names) if names else [None] * len(paths)
    if len(names) != len(paths):
        raise EditError(f"{len(paths)} images but {len(names)} names were given.", file=file)
    images = [SourceImage(path, name) for path, name in zip(paths, names)]
    first = images[0]
    for image in images[1:]:
        if (image.rows, image.columns) != (first.rows, first.columns):
            raise EditError(f"{image.name} is {image.columns}×{image.rows} pixels but {first.name} "
                            f"is {first.columns}×{first.rows}: the frames of one object must all "
                            "have the same size.", file=image.name)
    kinds = {image.kind for image in images}
    if GRAY16 in kinds and len(kinds) > 1:
        other = next(image for image in images if image.kind != GRAY16)
        sixteen = next(image for image in images if image.kind == GRAY16)
        raise EditError(f"{sixteen.name} is 16-bit grayscale but {other.name} is {other.kind}: "
                        "convert them to one pixel format first.", file=other.name)
    kind = COLOR if COLOR in kinds else kinds.pop()
    notes = []
    promoted = [image.name for image in images if image.kind != kind]
    if promoted:
        notes.append(f"Stored as colour: {', '.join(promoted)} (grayscale) copied to R, G and B.")
    flattened = [image.name for image in images if image.has_alpha]
    if flattened:
        notes.append(f"Transparency dropped (flattened onto black): {', '.join(flattened)}.")
    lossy = [image.name for image in images if image.is_lossy]
    if lossy:
        notes.append(f"Decoded from JPEG, so marked as lossy compressed: {', '.join(lossy)}.")
    return FrameSource(kind, first.rows, first.columns, len(images),
                       lambda: (image.pixels(kind) for image in images),
                       lossy=bool(lossy), notes=notes,
                       frame_vector=("PageNumberVector", list(range(1, len(images) + 1))))


def volume_source(volume, *, spacing_between_slices=None, file):
    """Plan frames from a volume array (frames, rows, columns) or (frames, rows, columns, 3).

    uint8 stays 8-bit; RGB must be uint8. Other integers are kept exactly in 16 bits, shifted by
    a (0028,1052) *Rescale Intercept* when they are negative; a wider range, or fractions, are
    scaled linearly into 0…65535 (the report says so and gives the largest error).
    """
    array = np.asarray(volume)
    if array.ndim == 4 and array.shape[3] == 3 and array.dtype == np.uint8:
        kind = COLOR
    elif array.ndim == 3 and (array.dtype.kind in "iub" or array.dtype.kind == "f"):
        kind = None
    else:
        raise EditError(f"A volume of shape {array.shape} and type {array.dtype} cannot become a "
                        "multi-frame image: give (frames, rows, columns) numbers or "
                        "(frames, rows, columns, 3) uint8 RGB.", file=file)
    count, rows, columns = array.shape[:3]
    if not (count and 0 < rows <= _UINT16_MAX and 0 < columns <= _UINT16_MAX):
        raise EditError(f"A volume of shape {array.shape} cannot become DICOM frames (1 to "
                        f"{_UINT16_MAX} rows and columns, at least one frame).", file=file)
    notes, rescale = [], None
    if kind is None:
        kind, convert, rescale, notes = _grayscale_plan(array, file)
    else:
        convert = np.ascontiguousarray
    frame_vector = None
    if spacing_between_slices is not None:
        spacing = _positive_number("SpacingBetweenSlices", spacing_between_slices, file)
        frame_vector = ("SliceLocationVector", [round(i * spacing, 6) for i in range(count)])
    return FrameSource(kind, rows, columns, count, lambda: (convert(frame) for frame in array),
                       rescale=rescale, notes=notes, frame_vector=frame_vector,
                       burned_in_default="NO")


def _grayscale_plan(array, file):
    """Choose 8 or 16 bits and the conversion of each frame for a grayscale volume."""
    if array.dtype == np.bool_:
        return GRAY8, lambda f: f.astype(np.uint8) * np.uint8(255), None, [
            "A mask: false and true stored as 0 and 255."]
    if array.dtype == np.uint8:
        return GRAY8, np.ascontiguousarray, None, []
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise EditError("The volume holds NaN or infinite values, which DICOM pixels cannot "
                        "hold: replace them first.", file=file)
    low, high = float(array.min()), float(array.max())
    integral = array.dtype.kind in "iu" or all(np.array_equal(f, np.round(f)) for f in array)
    if integral and high - low <= _UINT16_MAX:
        offset = 0.0 if low >= 0 and high <= _UINT16_MAX else low
        notes = [f"Stored values are shifted by {offset:g}; (0028,1052) Rescale Intercept gives "
                 "them back."] if offset else []
        return GRAY16, lambda f: (f - offset).astype(np.uint16), (offset, 1.0), notes
    slope = (high - low) / _UINT16_MAX if high > low else 1.0
    notes = [f"Values {low:g}…{high:g} scaled into 16 bits (slope {slope:.6g}): each is kept to "
             f"within {slope / 2:.3g}."]
    return GRAY16, lambda f: np.round((f - low) / slope).astype(np.uint16), (low, slope), notes


def _positive_number(keyword, value, file):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and number > 0):
        raise EditError(f"{keyword} '{value}' must be a positive number (millimetres).", file=file)
    return number


class SecondaryCaptureImage:
    """A Secondary Capture object: single-frame SC, or one of the three multi-frame SC IODs.

    Parameters
    ----------
    source : FrameSource
        Its frames. One frame from one image gives a (single-frame) Secondary Capture Image;
        otherwise the multi-frame Grayscale Byte, Grayscale Word or True Color SC Image.
    patient_study : base.PatientStudy
    options : base.SeriesOptions
        With the SC keys: ``ConversionType`` (default "WSD", workstation),
        ``BurnedInAnnotation`` (YES/NO; default YES from pictures, NO from volumes),
        ``ImageComments``, ``PixelSpacing`` ([row, column] mm), ``WindowCenter`` and
        ``WindowWidth`` (in rescaled values where a rescale applies).
    multiframe : bool
        Whether to make a multi-frame SC even from one frame.
    file : str
        The name of the object, for messages.

    Raises
    ------
    EditError
        On an invalid option, naming it.
    """

    def __init__(self, source, patient_study, options, *, multiframe, file):
        self.source = source
        self.file = file
        samples, photometric, bits = _PIXEL_LAYOUTS[source.kind]
        if multiframe:
            sop_class = _MULTIFRAME_SOP_CLASSES[source.kind]
        elif source.count == 1:
            sop_class = SecondaryCaptureImageStorage
        else:
            raise EditError(f"A Secondary Capture Image holds one frame, not {source.count}: make "
                            "a multi-frame one.", file=file)
        ds = base.new_dataset(sop_class, "OT", patient_study, options)
        # Empty: the body part of a picture is unknown (absent, dciodvfy counts an error).
        ds.Laterality = ""
        conversion_type = base.checked_choice(options, "ConversionType", "WSD", _CONVERSION_TYPES, file)
        base.add_secondary_capture_equipment(ds, conversion_type)
        ds.PatientOrientation = ""
        ds.BurnedInAnnotation = base.checked_choice(options, "BurnedInAnnotation",
                                                    source.burned_in_default, base.YES_NO, file)
        comments = base.checked_text("ImageComments", options.get("ImageComments"), file)
        if comments:
            ds.ImageComments = comments
        if source.lossy:
            ds.LossyImageCompression = "01"
            ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.SamplesPerPixel = samples
        ds.PhotometricInterpretation = photometric
        if samples == 3:
            ds.PlanarConfiguration = 0
        ds.Rows, ds.Columns = source.rows, source.columns
        ds.BitsAllocated = ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        if options.get("PixelSpacing") is not None:
            ds.PixelSpacing = [_positive_number("PixelSpacing", v, file)
                               for v in _pair(options.get("PixelSpacing"), "PixelSpacing", file)]
        if multiframe:
            self._add_multiframe(ds)
        if options.get("WindowCenter") is not None or options.get("WindowWidth") is not None:
            _add_window(ds, options, photometric, file)
        self.dataset = ds

    def _add_multiframe(self, ds):
        source = self.source
        ds.NumberOfFrames = source.count
        keyword, values = source.frame_vector or ("PageNumberVector",
                                                  list(range(1, source.count + 1)))
        ds.FrameIncrementPointer = keyword
        setattr(ds, keyword, values)
        if source.kind != COLOR:
            ds.PresentationLUTShape = "IDENTITY"
            intercept, slope = source.rescale or (0.0, 1.0)
            ds.RescaleIntercept = base.decimal_string(intercept)
            ds.RescaleSlope = base.decimal_string(slope)
            ds.RescaleType = "US"

    def save(self, out_path):
        """Write the object, streaming its frames; return the report of :func:`base.report`.

        Raises
        ------
        DicomStudioError
            When a source cannot be decoded (the partial output is removed).
        """
        ds, source = self.dataset, self.source
        try:
            base.save(ds, out_path)
            _append_pixel_data(out_path, source)
            written = base.check_written(out_path, self.file)
        except BaseException:
            if os.path.exists(out_path):
                os.remove(out_path)
            raise
        return base.report(written, out_path, source.notes, rows=source.rows,
                           columns=source.columns, frames=source.count,
                           photometric_interpretation=str(ds.PhotometricInterpretation),
                           bits_allocated=int(ds.BitsAllocated))


def _append_pixel_data(out_path, source):
    """Append (7FE0,0010) *Pixel Data* after the header, one frame at a time."""
    total = source.frame_bytes * source.count
    padding = total % 2
    vr = b"OW" if _PIXEL_LAYOUTS[source.kind][2] == 16 else b"OB"
    with open(out_path, "ab") as f:
        f.write(struct.pack("<HH2sHL", *_PIXEL_DATA_TAG, vr, 0, total + padding))
        count = 0
        for frame in source.frames():
            data = np.ascontiguousarray(frame, dtype=frame.dtype.newbyteorder("<"))
            if data.nbytes != source.frame_bytes:
                raise DicomStudioError(f"Frame {count + 1} has {data.nbytes} bytes, not the "
                                       f"{source.frame_bytes} planned.",
                                       file=os.path.basename(out_path))
            f.write(data)
            count += 1
        if count != source.count:
            raise DicomStudioError(f"{count} frames were produced, not the {source.count} planned.",
                                   file=os.path.basename(out_path))
        f.write(b"\0" * padding)


def _pair(value, key, file):
    if isinstance(value, str):
        value = value.replace("\\", " ").replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise EditError(f"{key} '{value}' must be two numbers (row spacing, column spacing).",
                        file=file)
    return value


def _add_window(ds, options, photometric, file):
    if photometric == "RGB":
        raise EditError("A window applies to grayscale images only; this one is colour.", file=file)
    center, width = base.checked_window(options.get("WindowCenter"), options.get("WindowWidth"), file)
    ds.WindowCenter = base.decimal_string(center)
    ds.WindowWidth = base.decimal_string(width)


def create_secondary_capture(image_path, out_path, patient=None, study=None, options=None, *,
                             image_name=None):
    """Make a Secondary Capture Image (1.2.840.10008.5.1.4.1.1.7) from one PNG or JPEG.

    Parameters
    ----------
    image_path : str
        The PNG or JPEG.
    out_path : str
        Where to write the DICOM file.
    patient, study : dict, optional
        See :class:`base.PatientStudy` (e.g. from :func:`base.patient_study_from`).
    options : dict, optional
        ``SeriesDescription``, ``SeriesNumber``, ``InstanceNumber``, ``SeriesInstanceUID`` and
        the SC keys of :class:`SecondaryCaptureImage`.
    image_name : str, optional
        The user's name for the image, for messages.

    Returns
    -------
    dict
        ``{"path", "size", "sop_class_uid", "sop_class_name", "sop_instance_uid",
        "series_instance_uid", "study_instance_uid", "notes", "rows", "columns", "frames",
        "photometric_interpretation", "bits_allocated"}``.
    """
    file = os.path.basename(out_path)
    patient_study = base.PatientStudy(patient, study, file=file)
    series = base.SeriesOptions(options, SC_OPTIONS, file=file)
    source = images_source([image_path], [image_name], file=file)
    image = SecondaryCaptureImage(source, patient_study, series, multiframe=False, file=file)
    return image.save(out_path)


def create_multiframe(image_paths, out_path, patient=None, study=None, options=None, *,
                      image_names=None):
    """Make a multi-frame SC (Grayscale Byte, Grayscale Word or True Color) from several images.

    Frames follow the order of ``image_paths``; (0018,2001) *Page Number Vector* numbers them.
    Arguments and result as for :func:`create_secondary_capture`, with lists of paths and names.
    """
    file = os.path.basename(out_path)
    patient_study = base.PatientStudy(patient, study, file=file)
    series = base.SeriesOptions(options, SC_OPTIONS, file=file)
    source = images_source(list(image_paths), image_names, file=file)
    image = SecondaryCaptureImage(source, patient_study, series, multiframe=True, file=file)
    return image.save(out_path)


def create_multiframe_from_volume(volume, out_path, patient=None, study=None, options=None):
    """Make a multi-frame SC from a volume array, frame by frame.

    Parameters
    ----------
    volume : array_like
        (frames, rows, columns) of numbers, or (frames, rows, columns, 3) uint8 RGB. See
        :func:`volume_source` for how values are kept.
    out_path, patient, study
        As for :func:`create_secondary_capture`.
    options : dict, optional
        As for :func:`create_secondary_capture`, plus ``SpacingBetweenSlices`` (mm), which makes
        (0018,2005) *Slice Location Vector* the frame increment.

    Returns
    -------
    dict
        As for :func:`create_secondary_capture`.
    """
    file = os.path.basename(out_path)
    patient_study = base.PatientStudy(patient, study, file=file)
    series = base.SeriesOptions(options, VOLUME_OPTIONS, file=file)
    source = volume_source(volume, spacing_between_slices=series.get("SpacingBetweenSlices"), file=file)
    image = SecondaryCaptureImage(source, patient_study, series, multiframe=True, file=file)
    return image.save(out_path)

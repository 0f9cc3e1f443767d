"""Grayscale Softcopy Presentation State: how to show one grayscale image, with a text note.

The presentation state refers to one image (all its frames), belongs to that image's patient and
study, and carries: the image's modality rescale (so the window is in its units), a window
(Softcopy VOI LUT), a displayed area showing the whole image, a text annotation on one graphic
layer, and the presentation LUT that keeps MONOCHROME1 images the way round they are meant to be.
"""

import math
import os

from pydicom.dataset import Dataset
from pydicom.uid import GrayscaleSoftcopyPresentationStateStorage

from dcmstudio.catalog import as_invalid_dicom, read_dicom
from dcmstudio.create import base
from dcmstudio.errors import EditError

GSPS_OPTIONS = ("ContentLabel", "ContentDescription", "ContentCreatorName", "TextBox",
                "WindowExplanation")
_LAYER = "ANNOTATION"
_TEXT_MAX = 1024  # (0070,0006) Unformatted Text Value is ST
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
# Where the note goes by default: a band across the top of the image, in fractions of its size.
_DEFAULT_TEXT_BOX = (0.02, 0.02, 0.98, 0.12)
_MODALITY_LUT_KEYWORDS = ("RescaleIntercept", "RescaleSlope")


class GrayscalePresentationState:
    """A GSPS (1.2.840.10008.5.1.4.1.1.11.1) for one image, checked at construction.

    Parameters
    ----------
    image : pydicom.dataset.Dataset
        The referenced image's header (no pixel data needed). Patient and study are copied from it.
    text : str
        The annotation shown on the image ("" for none).
    window_center, window_width : float
        The window, in the image's rescaled units (e.g. HU); the width at least 1.
    options : base.SeriesOptions
        With ``ContentLabel`` (CS, default "ANNOTATION"), ``ContentDescription``,
        ``ContentCreatorName``, ``WindowExplanation`` and ``TextBox`` ([left, top, right,
        bottom] in pixels, default a band across the top of the image).
    image_name : str
        The user's name for the image, for messages.
    file : str
        The name of the object, for messages.

    Raises
    ------
    EditError
        When the image is not grayscale or lacks what a presentation state needs, or on an
        invalid text, window or option.
    """

    def __init__(self, image, text, window_center, window_width, options, *, image_name, file):
        rows, columns, photometric = _image_geometry(image, image_name)
        text = "" if text is None else str(text)
        if len(text) > _TEXT_MAX:
            raise EditError(f"The annotation text has {len(text)} characters; at most {_TEXT_MAX} "
                            "fit in (0070,0006) Unformatted Text Value.", file=file)
        center, width = base.checked_window(window_center, window_width, file)
        patient_study = base.PatientStudy.from_dataset(image, file=image_name)
        ds = base.new_dataset(GrayscaleSoftcopyPresentationStateStorage, "PR", patient_study, options,
                              content_date=False)
        # Empty: which side of the body the image shows is the image's business, not known here.
        ds.Laterality = ""
        ds.ContentLabel = base.checked_text("ContentLabel", options.get("ContentLabel", _LAYER), file)
        ds.ContentDescription = base.checked_text("ContentDescription",
                                                  options.get("ContentDescription"), file)
        ds.ContentCreatorName = base.checked_text("ContentCreatorName",
                                                  options.get("ContentCreatorName"), file)
        ds.PresentationCreationDate = ds.InstanceCreationDate
        ds.PresentationCreationTime = ds.InstanceCreationTime
        ds.ReferencedSeriesSequence = [_series_reference(image)]
        ds.DisplayedAreaSelectionSequence = [_displayed_area(image, rows, columns, image_name)]
        _copy_modality_lut(image, ds, image_name)
        voi = Dataset()
        voi.WindowCenter = base.decimal_string(center)
        voi.WindowWidth = base.decimal_string(width)
        explanation = base.checked_text("WindowCenterWidthExplanation",
                                        options.get("WindowExplanation"), file)
        if explanation:
            voi.WindowCenterWidthExplanation = explanation
        ds.SoftcopyVOILUTSequence = [voi]
        if text:
            box = _text_box(options.get("TextBox"), rows, columns, file)
            ds.GraphicLayerSequence = [_graphic_layer()]
            ds.GraphicAnnotationSequence = [_text_annotation(text, box)]
        # MONOCHROME1 shows low values white: INVERSE keeps that on a P-value display.
        ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
        self.dataset = ds
        self.window = (center, width)

    def save(self, out_path):
        """Write the presentation state; return the report of :func:`base.report` plus the window."""
        base.save(self.dataset, out_path)
        written = base.check_written(out_path, os.path.basename(out_path))
        ref = self.dataset.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
        return base.report(written, out_path,
                           referenced_sop_instance_uid=str(ref.ReferencedSOPInstanceUID),
                           window_center=self.window[0], window_width=self.window[1])


def _image_geometry(image, name):
    with as_invalid_dicom(name, "while reading its image attributes"):
        photometric = str(image.get("PhotometricInterpretation", "")).strip()
        rows, columns = int(image.get("Rows") or 0), int(image.get("Columns") or 0)
    base.check_referable(image, name, "a presentation state")
    if not rows or not columns:
        raise EditError(f"{name} is not an image (no (0028,0010) Rows / (0028,0011) Columns): a "
                        "presentation state needs one.", file=name)
    if photometric not in _GRAYSCALE:
        raise EditError(f"{name} has (0028,0004) Photometric Interpretation '{photometric}'; a "
                        "grayscale presentation state applies to MONOCHROME1 or MONOCHROME2 "
                        "images only.", file=name)
    return rows, columns, photometric


def _series_reference(image):
    series = Dataset()
    series.SeriesInstanceUID = image.SeriesInstanceUID
    series.ReferencedImageSequence = [base.sop_reference(image)]
    return series


def _displayed_area(image, rows, columns, name):
    area = Dataset()
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [columns, rows]
    area.PresentationSizeMode = "SCALE TO FIT"
    with as_invalid_dicom(name, "while reading (0028,0030) Pixel Spacing"):
        spacing = [float(v) for v in image.get("PixelSpacing") or []]
        aspect = [int(v) for v in image.get("PixelAspectRatio") or []]
    if len(spacing) == 2 and all(v > 0 for v in spacing):
        area.PresentationPixelSpacing = image.PixelSpacing
    elif len(aspect) == 2 and all(v > 0 for v in aspect):
        area.PresentationPixelAspectRatio = aspect
    else:
        area.PresentationPixelAspectRatio = [1, 1]
    return area


def _copy_modality_lut(image, ds, name):
    """Copy the image's rescale (or Modality LUT) so the window means the same values."""
    with as_invalid_dicom(name, "while reading its Modality LUT"):
        if "ModalityLUTSequence" in image:
            ds.ModalityLUTSequence = image.ModalityLUTSequence
            return
        if not all(keyword in image for keyword in _MODALITY_LUT_KEYWORDS):
            return
        ds.RescaleIntercept = image.RescaleIntercept
        ds.RescaleSlope = image.RescaleSlope
        default_type = "HU" if image.get("Modality") == "CT" else "US"
        ds.RescaleType = str(image.get("RescaleType") or default_type)


def _graphic_layer():
    layer = Dataset()
    layer.GraphicLayer = _LAYER
    layer.GraphicLayerOrder = 1
    layer.GraphicLayerDescription = "Text annotation"
    return layer


def _text_box(box, rows, columns, file):
    if box is None:
        left, top, right, bottom = _DEFAULT_TEXT_BOX
        return [left * columns, top * rows, right * columns, bottom * rows]
    try:
        box = [float(v) for v in box]
    except (TypeError, ValueError):
        box = []
    if (len(box) != 4 or not all(math.isfinite(v) for v in box)
            or not (0 <= box[0] < box[2] <= columns and 0 <= box[1] < box[3] <= rows)):
        raise EditError(f"TextBox {box} must be [left, top, right, bottom] in pixels inside the "
                        f"{columns}×{rows} image, left < right and top < bottom.", file=file)
    return box


def _text_annotation(text, box):
    note = Dataset()
    note.BoundingBoxAnnotationUnits = "PIXEL"
    note.UnformattedTextValue = text
    note.BoundingBoxTopLeftHandCorner = box[:2]
    note.BoundingBoxBottomRightHandCorner = box[2:]
    note.BoundingBoxTextHorizontalJustification = "LEFT"
    annotation = Dataset()
    annotation.GraphicLayer = _LAYER
    annotation.TextObjectSequence = [note]
    return annotation


def create_gsps(referenced_image_path, out_path, text, window_center, window_width, options=None, *,
                image_name=None):
    """Make a Grayscale Softcopy Presentation State for one image, with a note and a window.

    Parameters
    ----------
    referenced_image_path : str
        The grayscale DICOM image it applies to (its header is read; patient and study are
        copied from it).
    out_path : str
        Where to write the DICOM file.
    text : str
        The annotation shown over the image ("" for none).
    window_center, window_width : float
        The window in the image's rescaled units (e.g. HU for CT).
    options : dict, optional
        ``SeriesDescription``, ``SeriesNumber``, ``InstanceNumber``, ``SeriesInstanceUID``,
        ``ContentLabel``, ``ContentDescription``, ``ContentCreatorName``, ``WindowExplanation``,
        ``TextBox`` ([left, top, right, bottom] pixels).
    image_name : str, optional
        The user's name for the image, for messages.

    Returns
    -------
    dict
        ``{"path", "size", "sop_class_uid", "sop_class_name", "sop_instance_uid",
        "series_instance_uid", "study_instance_uid", "notes", "referenced_sop_instance_uid",
        "window_center", "window_width"}``.
    """
    file = os.path.basename(out_path)
    image_name = image_name or os.path.basename(referenced_image_path)
    series = base.SeriesOptions(options, GSPS_OPTIONS, file=file)
    image = read_dicom(referenced_image_path, image_name, stop_before_pixels=True)
    state = GrayscalePresentationState(image, text, window_center, window_width, series,
                                       image_name=image_name, file=file)
    return state.save(out_path)

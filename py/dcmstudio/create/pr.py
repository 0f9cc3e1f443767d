"""Grayscale Softcopy Presentation State: how to show grayscale images, with notes and drawings.

The presentation state refers to one image (all its frames) or a few of the same geometry, belongs
to the first image's patient and study, and carries: the image's modality rescale (so the window is
in its units), a window (Softcopy VOI LUT), a displayed area (the whole image, or the part shown
when zoomed and panned), a text annotation on one graphic layer, graphics (polylines, ellipses,
points and their labels) on a layer of their own, and the presentation LUT that keeps MONOCHROME1
images the way round they are meant to be. Graphic coordinates are in PIXEL units: (column, row)
with (0, 0) the top left corner of the top left pixel (PS3.3 C.10.5.1.1).
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
GRAPHICS_LAYER = "MEASUREMENTS"
_GRAPHIC_POINTS = {"POINT": (1, 1), "POLYLINE": (2, None), "INTERPOLATED": (2, None), "CIRCLE": (2, 2),
                   "ELLIPSE": (4, 4)}
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

    def __init__(self, image, text, window_center, window_width, options, *, image_name, file,
                 more_images=(), graphics=(), displayed_area=None):
        rows, columns, photometric = _image_geometry(image, image_name)
        images = [image, *(i for i in more_images if i.SOPInstanceUID != image.SOPInstanceUID)]
        for other in images[1:]:
            if (int(other.get("Rows") or 0), int(other.get("Columns") or 0)) != (rows, columns):
                raise EditError(f"The images of one presentation state must share a size: {image_name} is "
                                f"{columns}×{rows}, {other.SOPInstanceUID} is not.", file=file)
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
        ds.ReferencedSeriesSequence = _series_references(images)
        ds.DisplayedAreaSelectionSequence = [_displayed_area(image, rows, columns, image_name)]
        if displayed_area is not None:
            _select_area(ds.DisplayedAreaSelectionSequence[0], displayed_area, rows, columns, file)
        _copy_modality_lut(image, ds, image_name)
        voi = Dataset()
        voi.WindowCenter = base.decimal_string(center)
        voi.WindowWidth = base.decimal_string(width)
        explanation = base.checked_text("WindowCenterWidthExplanation",
                                        options.get("WindowExplanation"), file)
        if explanation:
            voi.WindowCenterWidthExplanation = explanation
        ds.SoftcopyVOILUTSequence = [voi]
        layers, annotations = [], []
        if text:
            box = _text_box(options.get("TextBox"), rows, columns, file)
            layers.append(_graphic_layer())
            annotations.append(_text_annotation(text, box))
        if graphics:
            layers.append(_graphic_layer(GRAPHICS_LAYER, len(layers) + 1, "Measurements drawn on the image"))
            annotations.extend(_graphic_annotations(graphics, images, file))
        if layers:
            ds.GraphicLayerSequence = layers
            ds.GraphicAnnotationSequence = annotations
        # MONOCHROME1 shows low values white: INVERSE keeps that on a P-value display.
        ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
        self.dataset = ds
        self.window = (center, width)

    def save(self, out_path):
        """Write the presentation state; return the report of :func:`base.report` plus the window."""
        base.save(self.dataset, out_path)
        written = base.check_written(out_path, os.path.basename(out_path))
        ref = self.dataset.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
        annotations = self.dataset.get("GraphicAnnotationSequence") or []
        return base.report(written, out_path,
                           referenced_sop_instance_uid=str(ref.ReferencedSOPInstanceUID),
                           window_center=self.window[0], window_width=self.window[1],
                           graphics=sum(len(a.get("GraphicObjectSequence") or []) for a in annotations))


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


def _series_references(images):
    """One Referenced Series item per series, listing its images."""
    by_series = {}
    for image in images:
        by_series.setdefault(str(image.SeriesInstanceUID), []).append(base.sop_reference(image))
    items = []
    for uid, references in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = uid
        series.ReferencedImageSequence = references
        items.append(series)
    return items


def _select_area(area, corners, rows, columns, file):
    """Set the displayed area to ``corners`` ``[left, top, right, bottom]`` (1-based pixel numbers),
    kept inside the image: dciodvfy reads a corner left of or above the image as an error (it takes
    the SL values as unsigned), and the margin around a zoomed-out image says nothing."""
    try:
        left, top, right, bottom = (int(round(float(v))) for v in corners)
    except (TypeError, ValueError, OverflowError):
        left = top = right = bottom = 0
    if not (left < right and top < bottom) or max(abs(left), abs(top), abs(right), abs(bottom)) > 2 ** 30:
        raise EditError(f"The displayed area {corners} must be [left, top, right, bottom] pixel numbers with "
                        "left < right and top < bottom.", file=file)
    left, top = max(1, left), max(1, top)
    right, bottom = min(columns, right), min(rows, bottom)
    if not (left < right and top < bottom):
        raise EditError(f"The displayed area {corners} does not overlap the {columns}×{rows} image.", file=file)
    area.DisplayedAreaTopLeftHandCorner = [left, top]
    area.DisplayedAreaBottomRightHandCorner = [right, bottom]


def _graphic_annotations(graphics, images, file):
    """Graphic Annotation items on the graphics layer, one per image (and frame) drawn on.

    Each of ``graphics`` is ``{"image": index into images, "frame": 1-based or None,
    "graphic_type", "points": [[column, row], ...], "closed": bool, "text": str, "anchor": [column,
    row]}``; ``text`` (optional) is a label shown at ``anchor``.
    """
    by_target = {}
    for i, graphic in enumerate(graphics, 1):
        where = f"graphic {i}"
        if not isinstance(graphic, dict):
            raise EditError(f"{where} must be a mapping with graphic_type, points and image.", file=file)
        index = graphic.get("image", 0)
        if not isinstance(index, int) or not 0 <= index < len(images):
            raise EditError(f"{where} refers to image {index!r}, not one of the {len(images)} presented.",
                            file=file)
        image = images[index]
        frames = int(image.get("NumberOfFrames") or 1)
        frame = graphic.get("frame")
        if frames > 1 and (not isinstance(frame, int) or not 1 <= frame <= frames):
            raise EditError(f"{where} needs the frame it is drawn on (1 to {frames}).", file=file)
        key = (index, frame if frames > 1 else None)
        objects, texts = by_target.setdefault(key, ([], []))
        objects.append(_graphic_object(graphic, where, file))
        label = str(graphic.get("text") or "")
        if label:
            texts.append(_anchored_text(label, graphic.get("anchor"), where, file))
    annotations = []
    for (index, frame), (objects, texts) in by_target.items():
        reference = base.sop_reference(images[index])
        if frame:
            reference.ReferencedFrameNumber = frame
        annotation = Dataset()
        annotation.ReferencedImageSequence = [reference]
        annotation.GraphicLayer = GRAPHICS_LAYER
        annotation.GraphicObjectSequence = objects
        if texts:
            annotation.TextObjectSequence = texts
        annotations.append(annotation)
    return annotations


def _finite_points(points, where, file):
    try:
        points = [(float(x), float(y)) for x, y in points or []]
    except (TypeError, ValueError, OverflowError):
        points = []
    if not points or not all(math.isfinite(v) for p in points for v in p):
        raise EditError(f"{where} needs (column, row) points of finite numbers.", file=file)
    return points


def _graphic_object(graphic, where, file):
    kind = str(graphic.get("graphic_type") or "").upper()
    if kind not in _GRAPHIC_POINTS:
        raise EditError(f"{where}: the graphic type must be one of {', '.join(_GRAPHIC_POINTS)}.", file=file)
    points = _finite_points(graphic.get("points"), where, file)
    closes_itself = len(points) >= 4 and points[0] == points[-1]
    closed = (bool(graphic.get("closed")) or closes_itself) and kind in ("POLYLINE", "INTERPOLATED")
    if closed and points[0] != points[-1]:
        points.append(points[0])
    fewest, most = _GRAPHIC_POINTS[kind]
    if len(points) < fewest or (most and len(points) > most):
        raise EditError(f"{where}: a {kind} takes {fewest}{'' if most == fewest else ' or more'} points.",
                        file=file)
    item = Dataset()
    item.GraphicAnnotationUnits = "PIXEL"
    item.GraphicDimensions = 2
    item.NumberOfGraphicPoints = len(points)
    item.GraphicData = [v for point in points for v in point]
    item.GraphicType = kind
    if kind in ("CIRCLE", "ELLIPSE") or closed:
        item.GraphicFilled = "N"
    return item


def _anchored_text(text, anchor, where, file):
    if len(text) > _TEXT_MAX:
        raise EditError(f"{where}: its label has {len(text)} characters; at most {_TEXT_MAX} fit.", file=file)
    if not anchor:
        raise EditError(f"{where}: its label needs an anchor point.", file=file)
    note = Dataset()
    note.AnchorPointAnnotationUnits = "PIXEL"
    note.UnformattedTextValue = text
    note.AnchorPoint = list(_finite_points([anchor], f"{where}'s label anchor", file)[0])
    note.AnchorPointVisibility = "N"
    return note


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


def _graphic_layer(name=_LAYER, order=1, description="Text annotation"):
    layer = Dataset()
    layer.GraphicLayer = name
    layer.GraphicLayerOrder = order
    layer.GraphicLayerDescription = description
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

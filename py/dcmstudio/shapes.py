"""What an SR or a presentation state draws on images, for the viewer to show over them.

An SR's spatial coordinates (SCOORD content items, with the IMAGE they are selected from; PS3.3
C.18.6) and a presentation state's graphic and text objects (PS3.3 C.10.5) become plain shapes in
image coordinates ((column, row), (0, 0) the top left corner of the top left pixel, as in
:mod:`dcmstudio.measure`), each naming the SOP instance and frame it belongs to. What cannot be
drawn that way (3-D coordinates, display-relative units, coordinates with no image) is said in a
sentence instead of being dropped silently.
"""

from pydicom.multival import MultiValue

from .catalog import as_invalid_dicom, read_dicom
from .errors import DicomStudioError

_SR_CLASSES = ("1.2.840.10008.5.1.4.1.1.88.",)
_PRESENTATION_CLASSES = ("1.2.840.10008.5.1.4.1.1.11.",)
_TRACKING_IDENTIFIER = ("112039", "DCM")
_MEASUREMENT_GROUP = ("125007", "DCM")
_ANGLE = ("1483009", "SCT")


def _concept(item, keyword="ConceptNameCodeSequence"):
    codes = item.get(keyword)
    if not codes:
        return None
    return (str(codes[0].get("CodeValue", "")), str(codes[0].get("CodingSchemeDesignator", "")))


def _values(data):
    return list(data) if isinstance(data, (list, tuple, MultiValue)) else [data]


def _pairs(data):
    values = [float(v) for v in _values(data)]
    return [[values[i], values[i + 1]] for i in range(0, len(values) - 1, 2)]


def _frames(reference):
    """0-based frames a reference names, or [None] for all of them."""
    numbers = reference.get("ReferencedFrameNumber")
    if numbers in (None, ""):
        return [None]
    return [int(n) - 1 for n in _values(numbers)]


def _shape(graphic_type, points, parent_concept=None):
    """``(kind, points)`` the viewer draws for a graphic type, or None when it has no such shape."""
    if graphic_type == "POINT":
        return "point", points[:1]
    if graphic_type == "MULTIPOINT":
        return "points", points
    if graphic_type == "ELLIPSE" and len(points) == 4:
        return "ellipse", points
    if graphic_type == "CIRCLE" and len(points) == 2:
        (cx, cy), (px, py) = points
        r = ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5
        return "ellipse", [[cx - r, cy], [cx + r, cy], [cx, cy - r], [cx, cy + r]]
    if graphic_type in ("POLYLINE", "INTERPOLATED") and len(points) >= 2:
        if len(points) >= 4 and points[0] == points[-1]:
            return "polygon", points[:-1]
        if len(points) == 3 and parent_concept == _ANGLE:
            return "angle", points
        return ("length" if len(points) == 2 else "polyline"), points
    return None


def _sr_shapes(ds):
    shapes, not_shown = [], []

    def walk(items, label, parent_concept):
        for item in items or []:
            concept = _concept(item)
            value_type = str(item.get("ValueType", ""))
            if concept == _MEASUREMENT_GROUP and value_type == "CONTAINER":
                tracking = [c for c in item.get("ContentSequence") or [] if _concept(c) == _TRACKING_IDENTIFIER]
                label = str(tracking[0].get("TextValue", "")) if tracking else label
            if value_type == "SCOORD3D":
                not_shown.append(f"{label or 'A region'}: 3-D coordinates (SCOORD3D) are not drawn on images.")
            elif value_type == "SCOORD":
                _sr_scoord(item, label, parent_concept, shapes, not_shown)
            walk(item.get("ContentSequence"), label, concept)

    walk(ds.get("ContentSequence"), "", None)
    return shapes, not_shown


def _sr_scoord(item, label, parent_concept, shapes, not_shown):
    graphic_type = str(item.get("GraphicType", ""))
    shape = _shape(graphic_type, _pairs(item.get("GraphicData") or []), parent_concept)
    images = [c for c in item.get("ContentSequence") or [] if c.get("ValueType") == "IMAGE"]
    what = label or "A region"
    if shape is None:
        not_shown.append(f"{what}: a {graphic_type or 'graphic'} with these points cannot be drawn.")
        return
    if not images:
        not_shown.append(f"{what}: its coordinates name no image they belong to.")
        return
    for image in images:
        for reference in image.get("ReferencedSOPSequence") or []:
            for frame in _frames(reference):
                shapes.append({"sop_instance_uid": str(reference.ReferencedSOPInstanceUID), "frame": frame,
                               "kind": shape[0], "points": shape[1], "label": label})


def _presentation_shapes(ds):
    shapes, not_shown = [], []
    everything = [r for series in ds.get("ReferencedSeriesSequence") or []
                  for r in series.get("ReferencedImageSequence") or []]
    for annotation in ds.get("GraphicAnnotationSequence") or []:
        layer = str(annotation.get("GraphicLayer", ""))
        references = annotation.get("ReferencedImageSequence") or everything

        def place(kind, points, label):
            for reference in references:
                for frame in _frames(reference):
                    shapes.append({"sop_instance_uid": str(reference.ReferencedSOPInstanceUID), "frame": frame,
                                   "kind": kind, "points": points, "label": label, "layer": layer})

        for graphic in annotation.get("GraphicObjectSequence") or []:
            graphic_type = str(graphic.get("GraphicType", ""))
            if str(graphic.get("GraphicAnnotationUnits", "")) != "PIXEL":
                not_shown.append(f"A {graphic_type} on layer {layer} is placed relative to the display, "
                                 "not the image: it is not drawn.")
                continue
            shape = _shape(graphic_type, _pairs(graphic.get("GraphicData") or []))
            if shape is None:
                not_shown.append(f"A {graphic_type} on layer {layer} with these points cannot be drawn.")
                continue
            place(*shape, "")
        for text in annotation.get("TextObjectSequence") or []:
            value = str(text.get("UnformattedTextValue", ""))
            anchored = str(text.get("AnchorPointAnnotationUnits", "")) == "PIXEL"
            boxed = str(text.get("BoundingBoxAnnotationUnits", "")) == "PIXEL"
            if text.get("AnchorPoint") and anchored:
                place("text", _pairs(text.AnchorPoint), value)
            elif text.get("BoundingBoxTopLeftHandCorner") and boxed:
                place("text", _pairs(text.BoundingBoxTopLeftHandCorner), value)
            else:
                not_shown.append(f"The text '{value[:40]}' on layer {layer} is placed relative to the display, "
                                 "not the image: it is not drawn.")
    return shapes, not_shown


def shapes_of(path, name):
    """The shapes an SR (SCOORD content items) or a presentation state draws on images.

    Parameters
    ----------
    path, name : str
        The SR or presentation state, and the name the user knows it by.

    Returns
    -------
    dict
        ``{"object": "SR" | "presentation state", "shapes": [{"sop_instance_uid", "frame" (from 0,
        None for every frame), "kind" ("point", "points", "length", "polyline", "angle", "polygon",
        "ellipse" or "text"), "points": [[x, y], ...], "label", "layer" (presentation states)}],
        "not_shown": [sentences]}``.

    Raises
    ------
    DicomStudioError
        If the file is neither an SR nor a presentation state, or as :func:`dcmstudio.catalog.read_dicom`.
    """
    ds = read_dicom(path, name, stop_before_pixels=True)
    sop_class = str(ds.get("SOPClassUID", ""))
    with as_invalid_dicom(name, "while reading what it draws"):
        if sop_class.startswith(_SR_CLASSES):
            shapes, not_shown = _sr_shapes(ds)
            kind = "SR"
        elif sop_class.startswith(_PRESENTATION_CLASSES):
            shapes, not_shown = _presentation_shapes(ds)
            kind = "presentation state"
        else:
            raise DicomStudioError(f"{name} is neither a structured report nor a presentation state: it draws "
                                   "nothing on images.", file=name)
    return {"object": kind, "shapes": shapes, "not_shown": not_shown}

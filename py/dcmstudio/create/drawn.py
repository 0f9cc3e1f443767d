"""Measurements drawn in the viewer, written as DICOM: a TID 1500 SR and a GSPS.

The page sends what was drawn (shape, points, image, frame, label, coded finding, site and
qualitative evaluations); every number is measured again here by :mod:`dcmstudio.measure` from the
image itself, so what the objects hold never depends on the page's arithmetic.

A drawn item is ``{"kind": "length" | "angle" | "point" | "polygon" | "ellipse", "points": [[x, y],
...] (image coordinates, see :mod:`dcmstudio.measure`), "image": index into the images, "frame":
from 0, "label": str, "uid": tracking UID (optional), "finding", "finding_site": codes (optional),
"qualitative": [{"name": code, "value": code}] (optional)}``.
"""

import os

from dcmstudio import measure
from dcmstudio.catalog import read_dicom
from dcmstudio.create import base
from dcmstudio.create.pr import GSPS_OPTIONS, GrayscalePresentationState
from dcmstudio.create.sr import SR_OPTIONS, MeasurementReport
from dcmstudio.errors import EditError

# UCUM units of the values measured (CID 7181); a length without pixel spacing is in pixels.
_UNITS = {"mm": "UCUM.Millimeter", "mm2": "UCUM.SquareMillimeter", "deg": "UCUM.Degree",
          "HU": "UCUM.HounsfieldUnit", None: "UCUM.NoUnits"}
_PIXELS = {"value": "{pixels}", "scheme": "UCUM", "meaning": "pixels"}
_SQUARE_PIXELS = {"value": "{square pixels}", "scheme": "UCUM", "meaning": "square pixels"}
_STATISTICS = (("mean", "SCT.Mean"), ("sd", "SCT.StandardDeviation"), ("min", "SCT.Minimum"),
               ("max", "SCT.Maximum"))
_SYMBOLS = {"mm": "mm", "px": "px"}


def _measured(drawn, images):
    """Each drawn item checked and measured again: ``[(item, image, measurement)]``."""
    if not isinstance(drawn, list) or not drawn:
        raise EditError("Nothing was drawn: draw a length, a region or a point on the image first.")
    results = []
    for i, item in enumerate(drawn, 1):
        if not isinstance(item, dict):
            raise EditError(f"Drawn item {i} must be a mapping with kind, points, image and frame.")
        index, frame = item.get("image"), item.get("frame", 0)
        if not isinstance(index, int) or not 0 <= index < len(images):
            raise EditError(f"Drawn item {i} refers to image {index!r}, not one of the {len(images)} given.")
        if not isinstance(frame, int) or frame < 0:
            raise EditError(f"Drawn item {i}: frame {frame!r} is not a frame number (from 0).")
        image = images[index]
        results.append((item, index, measure.measure(image["path"], image["name"], frame, item.get("kind"),
                                                     item.get("points"))))
    return results


def _unit(units):
    return _UNITS.get(units, "UCUM.NoUnits")


def _coordinates(kind, points, index, frame):
    graphic = {"point": "POINT", "ellipse": "ELLIPSE"}.get(kind, "POLYLINE")
    if kind == "polygon":
        points = [*points, points[0]]
    return {"graphic_type": graphic, "points": points, "image": index, "frame": frame + 1}


def _group(item, index, result, number):
    kind, points, frame = result["kind"], result["points"], item.get("frame", 0)
    in_mm = result["units"] == "mm"
    group = {"tracking_id": str(item.get("label") or f"{kind} {number}").strip()[:64],
             "tracking_uid": item.get("uid") or None,
             "finding": item.get("finding") or None, "finding_site": item.get("finding_site") or None,
             "qualitative": item.get("qualitative") or [], "measurements": []}
    where = _coordinates(kind, points, index, frame)
    if kind == "length":
        group["measurements"].append({"name": "SCT.Length", "value": result["length"],
                                      "unit": _unit("mm") if in_mm else _PIXELS, "coordinates": where})
    elif kind == "angle" and result["angle"] is not None:
        group["measurements"].append({"name": "SCT.Angle", "value": result["angle"], "unit": _unit("deg"),
                                      "coordinates": where})
    else:
        group["region"] = where
    if kind in measure.REGION_KINDS:
        group["measurements"].append({"name": "SCT.Area", "value": result["area"],
                                      "unit": _unit("mm2") if in_mm else _SQUARE_PIXELS})
        stats = result.get("stats")
        if stats:
            group["measurements"].extend({"name": name, "value": stats[key], "unit": _unit(stats["units"])}
                                         for key, name in _STATISTICS)
    return group


def label_of(item, result, number):
    """The text shown next to a drawn item: its label and what it measures ("L1 · 23.4 mm")."""
    unit = _SYMBOLS[result["units"]]
    parts = [str(item.get("label") or f"{result['kind']} {number}")]
    if "length" in result:
        parts.append(f"{result['length']:.1f} {unit}")
    if result.get("angle") is not None:
        parts.append(f"{result['angle']:.1f}°")
    if "area" in result:
        parts.append(f"{result['area']:.1f} {unit}²")
    stats = result.get("stats")
    if stats:
        parts.append(f"mean {stats['mean']:.1f}{' ' + stats['units'] if stats['units'] else ''}")
    if result.get("value") is not None:
        parts.append(f"{result['value']:.1f}{' ' + result['value_units'] if result.get('value_units') else ''}")
    return " · ".join(parts)


def create_report_from_drawn(drawn, images, out_path, observer, procedure, options=None):
    """A Comprehensive SR (TID 1500) with one measurement group per drawn item.

    Parameters
    ----------
    drawn : list of dict
        See the module's docstring.
    images : list of {"path", "name"}
        The images drawn on; the report joins the first one's patient and study.
    out_path : str
    observer : str or dict
        The person reporting ("Family^Given") or ``{"name", "organization"}``.
    procedure : code
        The procedure reported (see :func:`dcmstudio.create.measurement_report_choices`).
    options : dict, optional
        As :func:`dcmstudio.create.create_measurement_report`.

    Returns
    -------
    dict
        The report of :func:`dcmstudio.create.create_measurement_report`.
    """
    file = os.path.basename(out_path)
    measured = _measured(drawn, images)
    headers = [read_dicom(i["path"], i["name"], stop_before_pixels=True) for i in images]
    for header, image in zip(headers, images):
        base.check_referable(header, image["name"], "the report")
    form = {"observer": observer, "procedure": procedure,
            "groups": [_group(item, index, result, n) for n, (item, index, result) in enumerate(measured, 1)]}
    patient_study = base.PatientStudy.from_dataset(headers[0], file=images[0]["name"])
    series = base.SeriesOptions(options, SR_OPTIONS, file=file)
    return MeasurementReport(form, patient_study, series, headers, file=file).save(out_path)


def create_gsps_from_drawn(drawn, images, out_path, window_center, window_width, displayed_area=None,
                           options=None):
    """A GSPS showing the drawn items as graphics with their labels, the window and the area shown.

    Parameters
    ----------
    drawn, images : list
        As :func:`create_report_from_drawn`; the first image is the one shown, whose size, rescale
        and pixel spacing the presentation state takes.
    out_path : str
    window_center, window_width : float
        The window in the images' modality units.
    displayed_area : [left, top, right, bottom], optional
        1-based pixel numbers of the part of the image shown (None: all of it).
    options : dict, optional
        As :func:`dcmstudio.create.create_gsps`.

    Returns
    -------
    dict
        The report of :func:`dcmstudio.create.create_gsps`, with ``graphics`` (how many).
    """
    file = os.path.basename(out_path)
    measured = _measured(drawn, images)
    headers = [read_dicom(i["path"], i["name"], stop_before_pixels=True) for i in images]
    graphics = []
    for n, (item, index, result) in enumerate(measured, 1):
        where = _coordinates(result["kind"], result["points"], index, item.get("frame", 0))
        graphics.append({"image": index, "frame": where["frame"], "graphic_type": where["graphic_type"],
                         "points": where["points"], "text": label_of(item, result, n),
                         "anchor": result["points"][-1]})
    series = base.SeriesOptions(options, GSPS_OPTIONS, file=file)
    state = GrayscalePresentationState(headers[0], "", window_center, window_width, series,
                                       image_name=images[0]["name"], file=file, more_images=headers[1:],
                                       graphics=graphics, displayed_area=displayed_area)
    return state.save(out_path)

"""Measurements drawn on a frame: lengths, angles, points and regions with their statistics.

Coordinates are image coordinates as DICOM gives them to SR SCOORD (PS3.3 C.18.6.1.1) and to
presentation states in PIXEL units (C.10.5.1.1): ``(x, y)`` = (column, row), continuous, with
``(0, 0)`` the top left corner of the top left pixel, so the centre of pixel (row r, column c) is
``(c + 0.5, r + 0.5)`` and the bottom right corner of the image is ``(Columns, Rows)``.

A pixel belongs to a region when its centre lies inside it (even-odd rule for polygons; on the
ellipse's boundary counts as inside). Statistics are of the modality values (after the modality
LUT or rescale: Hounsfield units for CT) of those pixels; the standard deviation is the
population's (numpy's ``std`` with ``ddof=0``).

Lengths and areas are in mm when the frame has a pixel spacing, with the attribute named
((0028,0030) Pixel Spacing, per frame in enhanced objects, or (0018,1164) Imager Pixel Spacing),
else in pixels. Row spacing scales y, column spacing scales x.
"""

import math

import numpy as np

from .errors import DicomStudioError
from .pixels import modality_frame, pixel_spacing

# How many points each kind takes: (fewest, most); None: no limit.
KINDS = {"point": (1, 1), "length": (2, None), "angle": (3, 3), "polygon": (3, None), "ellipse": (4, 4)}
REGION_KINDS = ("polygon", "ellipse")
_MAX_POINTS = 10000


def checked_points(kind, points, name):
    """``points`` as an (n, 2) float array, or a ``DicomStudioError`` that says what is wrong.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    points : sequence of (x, y)
        Image coordinates (see the module's docstring).
    name : str
        The image's name, for messages.
    """
    if kind not in KINDS:
        raise DicomStudioError(f"'{kind}' is not a measurement this page knows "
                               f"({', '.join(KINDS)}).", file=name)
    fewest, most = KINDS[kind]
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        array = np.empty((0, 0))
    if array.ndim != 2 or array.shape[1:] != (2,) or not np.isfinite(array).all():
        raise DicomStudioError(f"The {kind} on {name} needs its points as (x, y) pairs of finite "
                               "numbers.", file=name)
    count = len(array)
    if count < fewest or (most is not None and count > most) or count > _MAX_POINTS:
        wanted = f"{fewest}" if fewest == most else f"at least {fewest}"
        raise DicomStudioError(f"A {kind} takes {wanted} points; {count} were given on {name}.",
                               file=name)
    return array


def _scaled(points, spacing):
    """Points in mm (x by the column spacing, y by the row spacing), or unchanged in pixels."""
    if spacing is None:
        return points
    return points * np.array([spacing[1], spacing[0]])


def path_length(points, spacing=None):
    """Length of the open path through ``points`` (mm with ``spacing``, else pixels)."""
    scaled = _scaled(points, spacing)
    return float(np.hypot(*np.diff(scaled, axis=0).T).sum())


def angle_degrees(points, spacing=None):
    """The angle at the middle of three points, in degrees (0 to 180), in the patient's geometry."""
    a, vertex, b = _scaled(points, spacing)
    u, v = a - vertex, b - vertex
    norms = np.hypot(*u) * np.hypot(*v)
    if norms == 0:
        return None
    return math.degrees(math.atan2(abs(u[0] * v[1] - u[1] * v[0]), float(u @ v)))


def polygon_area(points, spacing=None):
    """Area enclosed by the polygon (shoelace formula), mm² with ``spacing``, else pixels²."""
    x, y = _scaled(points, spacing).T
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def ellipse_axes(points):
    """``(centre, unit major direction, semi-major, semi-minor)`` of an SCOORD ELLIPSE.

    The four points are the two ends of the major axis, then the two ends of the minor axis.
    """
    major, minor = points[:2], points[2:]
    centre = major.mean(axis=0)
    axis = major[1] - major[0]
    semi_major = float(np.hypot(*axis)) / 2
    semi_minor = float(np.hypot(*(minor[1] - minor[0]))) / 2
    direction = axis / (2 * semi_major) if semi_major else np.array([1.0, 0.0])
    return centre, direction, semi_major, semi_minor


def ellipse_area(points, spacing=None):
    """Area of the ellipse: π·a·b in pixels², times the area of one pixel for mm²."""
    _, _, a, b = ellipse_axes(points)
    pixel_area = 1.0 if spacing is None else spacing[0] * spacing[1]
    return math.pi * a * b * pixel_area


def _box(points, rows, columns):
    """Rows and columns of the pixels whose centres may fall inside the points' bounding box."""
    lo = np.floor(points.min(axis=0) - 0.5).astype(int)
    hi = np.ceil(points.max(axis=0) + 0.5).astype(int)
    c0, r0 = max(lo[0], 0), max(lo[1], 0)
    c1, r1 = min(hi[0], columns), min(hi[1], rows)
    return r0, max(r0, r1), c0, max(c0, c1)


def polygon_mask(points, rows, columns):
    """Boolean (rows, columns) mask of the pixels whose centres are inside the polygon."""
    mask = np.zeros((rows, columns), dtype=bool)
    r0, r1, c0, c1 = _box(points, rows, columns)
    if r0 == r1 or c0 == c1:
        return mask
    ys, xs = np.mgrid[r0:r1, c0:c1] + 0.5
    inside = np.zeros(ys.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(points, np.roll(points, -1, axis=0)):
        if y1 == y2:
            continue  # a horizontal edge never crosses the ray
        crosses = (y1 > ys) != (y2 > ys)
        x_at = x1 + (ys - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (xs < x_at)
    mask[r0:r1, c0:c1] = inside
    return mask


def ellipse_mask(points, rows, columns):
    """Boolean (rows, columns) mask of the pixels whose centres are inside the ellipse."""
    mask = np.zeros((rows, columns), dtype=bool)
    centre, direction, a, b = ellipse_axes(points)
    if a == 0 or b == 0:
        return mask
    reach = np.array([a, a])
    r0, r1, c0, c1 = _box(np.array([centre - reach, centre + reach]), rows, columns)
    if r0 == r1 or c0 == c1:
        return mask
    ys, xs = np.mgrid[r0:r1, c0:c1] + 0.5
    dx, dy = xs - centre[0], ys - centre[1]
    along = dx * direction[0] + dy * direction[1]
    across = -dx * direction[1] + dy * direction[0]
    mask[r0:r1, c0:c1] = (along / a) ** 2 + (across / b) ** 2 <= 1
    return mask


def region_mask(kind, points, rows, columns):
    """The mask of a ``polygon`` or ``ellipse`` (see :func:`polygon_mask`, :func:`ellipse_mask`)."""
    return (polygon_mask if kind == "polygon" else ellipse_mask)(points, rows, columns)


def region_statistics(values, mask):
    """Mean, standard deviation (population), min, max and count of ``values`` under ``mask``."""
    inside = values[mask]
    if not inside.size:
        return None
    return {"mean": float(inside.mean()), "sd": float(inside.std()), "min": float(inside.min()),
            "max": float(inside.max()), "count": int(inside.size)}


def measure(path, name, frame, kind, points):
    """Measure one drawn shape on one frame of a file.

    Parameters
    ----------
    path, name : str
        The file and the name the user knows it by.
    frame : int
        From 0.
    kind : str
        ``point``, ``length`` (2 or more points: an open polyline), ``angle`` (3: the vertex in
        the middle), ``polygon`` (3 or more, closed) or ``ellipse`` (4: major axis ends, minor
        axis ends).
    points : list of [x, y]
        Image coordinates (see the module's docstring).

    Returns
    -------
    dict
        ``{"kind", "points", "spacing": {"row", "column", "source"} or None, "units": "mm" or
        "px", "notes": [sentences]}`` and, by kind, ``length``, ``angle`` (degrees),
        ``area`` (mm² or px²), ``value`` (the pixel under a point) and ``stats`` (``{"mean",
        "sd", "min", "max", "count", "units"}`` for regions of greyscale images, else None).

    Raises
    ------
    DicomStudioError
        On a malformed shape, or as :func:`dcmstudio.pixels.modality_frame`.
    """
    points = checked_points(kind, points, name)
    header, values, units = modality_frame(path, name, frame)
    rows, columns = int(header.Rows), int(header.Columns)
    found = pixel_spacing(header, frame)
    spacing = found[:2] if found else None
    result = {"kind": kind, "points": points.tolist(), "notes": [], "units": "mm" if spacing else "px",
              "spacing": {"row": found[0], "column": found[1], "source": found[2]} if found else None}
    if not found:
        result["notes"].append(f"{name} has no pixel spacing: sizes are in pixels.")
    if kind == "length":
        result["length"] = path_length(points, spacing)
    elif kind == "angle":
        result["angle"] = angle_degrees(points, spacing)
    elif kind == "point":
        col, row = int(math.floor(points[0][0])), int(math.floor(points[0][1]))
        inside = 0 <= row < rows and 0 <= col < columns
        result["value"] = float(values[row, col]) if inside and values is not None else None
        result["stats"] = None
    else:
        area = polygon_area if kind == "polygon" else ellipse_area
        result["area"] = area(points, spacing)
        result["stats"] = None
        if values is None:
            result["notes"].append(f"{name} is a colour image: regions have no statistics.")
        else:
            stats = region_statistics(values, region_mask(kind, points, rows, columns))
            if stats is None:
                result["notes"].append("The region holds no pixel centre of the image.")
            else:
                result["stats"] = {**stats, "units": units}
    if kind == "point" or kind in REGION_KINDS:
        result["value_units"] = units
    return result

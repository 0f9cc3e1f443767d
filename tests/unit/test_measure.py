"""Measurements on a frame: geometry in mm or pixels, masks by pixel centres, region statistics."""

import json
import math

import numpy as np
import pydicom
import pytest
from conftest import bundled

from dcmstudio import api
from dcmstudio.errors import DicomStudioError
from dcmstudio.measure import ellipse_mask, measure, polygon_mask

CT = str(bundled("CT_small.dcm"))


def hounsfield(path=CT):
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def rectangle(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


@pytest.fixture
def spaced(tmp_path):
    """CT_small written again with the spacing attributes given (None: removed)."""
    def make(pixel_spacing=None, imager_spacing=None):
        ds = pydicom.dcmread(CT)
        del ds.PixelSpacing
        if pixel_spacing:
            ds.PixelSpacing = pixel_spacing
        if imager_spacing:
            ds.ImagerPixelSpacing = imager_spacing
        path = tmp_path / f"ct_{pixel_spacing}_{imager_spacing}.dcm"
        ds.save_as(path)
        return str(path)
    return make


def test_a_rectangle_holds_the_pixels_whose_centres_it_covers():
    """(0,0)-(2,2) covers pixel centres (0.5, 0.5) … (1.5, 1.5): exactly 2 × 2 pixels."""
    mask = polygon_mask(np.array(rectangle(0, 0, 2, 2), float), 5, 5)
    assert mask.sum() == 4 and mask[:2, :2].all()
    assert not polygon_mask(np.array(rectangle(0.6, 0.6, 1.4, 1.4), float), 5, 5).any()


def test_a_polygon_outside_the_image_is_clipped():
    mask = polygon_mask(np.array(rectangle(-10, -10, 3, 3), float), 8, 8)
    assert mask.sum() == 9


def test_ct_roi_statistics_are_numpys_on_the_same_pixels():
    result = measure(CT, "CT_small.dcm", 0, "polygon", rectangle(40, 50, 60, 62))
    values = hounsfield()[50:62, 40:60]
    stats = result["stats"]
    assert stats["count"] == values.size == 240
    assert stats["mean"] == pytest.approx(values.mean())
    assert stats["sd"] == pytest.approx(values.std())
    assert (stats["min"], stats["max"]) == (values.min(), values.max())
    assert stats["units"] == "HU"
    assert result["area"] == pytest.approx(20 * 12 * 0.661468 ** 2)
    assert result["spacing"]["source"] == "PixelSpacing" and result["units"] == "mm"


def test_a_triangle_follows_the_even_odd_rule_at_pixel_centres():
    points = np.array([[10, 10], [30, 10], [10, 30]], float)
    rows, cols = np.mgrid[0:40, 0:40] + 0.5
    expected = (rows > 10) & (cols > 10) & (cols + rows < 40)
    assert (polygon_mask(points, 40, 40) == expected).all()


def test_an_ellipse_mask_is_the_ellipse_equation_at_pixel_centres():
    # A tilted ellipse: major axis from (20, 20) to (60, 60), minor of length 20 across it.
    c = np.array([40.0, 40.0])
    u = np.array([1, 1]) / math.sqrt(2)
    v = np.array([-1, 1]) / math.sqrt(2)
    a, b = math.hypot(20, 20), 10.0
    points = np.array([c - a * u, c + a * u, c - b * v, c + b * v])
    ys, xs = np.mgrid[0:80, 0:80] + 0.5
    d = np.stack([xs - 40, ys - 40], axis=-1)
    expected = ((d @ u) / a) ** 2 + ((d @ v) / b) ** 2 <= 1
    assert (ellipse_mask(points, 80, 80) == expected).all()
    result = measure(CT, "CT_small.dcm", 0, "ellipse", points.tolist())
    assert result["stats"]["count"] == expected.sum()
    assert result["stats"]["mean"] == pytest.approx(hounsfield()[:80, :80][expected].mean())
    assert result["area"] == pytest.approx(math.pi * a * b * 0.661468 ** 2)


def test_length_uses_row_and_column_spacing_and_names_the_attribute(spaced):
    path = spaced(pixel_spacing=[0.5, 0.25])  # rows 0.5 mm apart, columns 0.25 mm apart
    across = measure(path, "a.dcm", 0, "length", [[10, 10], [30, 10]])
    down = measure(path, "a.dcm", 0, "length", [[10, 10], [10, 30]])
    assert (across["length"], down["length"]) == (pytest.approx(5.0), pytest.approx(10.0))
    assert across["spacing"] == {"row": 0.5, "column": 0.25, "source": "PixelSpacing"}
    polyline = measure(path, "a.dcm", 0, "length", [[10, 10], [30, 10], [30, 30]])
    assert polyline["length"] == pytest.approx(15.0)


def test_imager_pixel_spacing_is_used_and_named_when_pixel_spacing_is_absent(spaced):
    result = measure(spaced(imager_spacing=[0.2, 0.2]), "dx.dcm", 0, "length", [[0, 0], [3, 4]])
    assert result["length"] == pytest.approx(1.0)
    assert result["spacing"]["source"] == "ImagerPixelSpacing"


def test_without_spacing_sizes_are_in_pixels_and_the_note_says_so(spaced):
    result = measure(spaced(), "bare.dcm", 0, "polygon", rectangle(0, 0, 4, 5))
    assert result["units"] == "px" and result["spacing"] is None
    assert result["area"] == 20.0
    assert "bare.dcm has no pixel spacing" in result["notes"][0]


def test_angle_is_measured_in_the_patients_geometry(spaced):
    square = measure(CT, "CT_small.dcm", 0, "angle", [[20, 10], [10, 10], [10, 20]])
    assert square["angle"] == pytest.approx(90.0)
    # With rows twice as far apart as columns, a 45° diagonal in pixels is steeper in mm.
    stretched = measure(spaced(pixel_spacing=[2.0, 1.0]), "s.dcm", 0, "angle", [[20, 10], [10, 10], [20, 20]])
    assert stretched["angle"] == pytest.approx(math.degrees(math.atan2(2, 1)))


def test_a_point_reads_the_modality_value_of_the_pixel_it_is_in():
    result = measure(CT, "CT_small.dcm", 0, "point", [[33.7, 21.2]])
    assert result["value"] == hounsfield()[21, 33]
    assert result["value_units"] == "HU"


def test_a_colour_image_has_sizes_but_no_statistics():
    path = str(bundled("SC_rgb_dcmtk_+eb+cr.dcm"))
    result = measure(path, "SC_rgb_dcmtk_+eb+cr.dcm", 0, "polygon", rectangle(0, 0, 10, 10))
    assert result["stats"] is None and result["area"] == 100.0
    assert "colour image" in result["notes"][-1]


@pytest.mark.parametrize("kind, points, words", [
    ("circle", [[0, 0]], "not a measurement"),
    ("length", [[0, 0]], "takes at least 2 points; 1 were given on CT_small.dcm"),
    ("angle", [[0, 0], [1, 1]], "takes 3 points"),
    ("polygon", [[0, 0], [1, "x"], [2, 2]], "(x, y) pairs of finite numbers"),
    ("ellipse", [[0, 0], [1, 1], [2, float("nan")], [3, 3]], "finite numbers"),
    ("point", "nonsense", "(x, y) pairs"),
])
def test_a_malformed_shape_is_refused_in_a_sentence_naming_the_image(kind, points, words):
    with pytest.raises(DicomStudioError) as caught:
        measure(CT, "CT_small.dcm", 0, kind, points)
    assert words in caught.value.message


def test_the_api_answers_with_the_measurement_or_an_error():
    ok = json.loads(api.call("measure", json.dumps({"path": CT, "name": "CT_small.dcm", "frame": 0,
                                                      "kind": "length", "points": [[0, 0], [3, 4]]})))
    assert ok["ok"] and ok["measurement"]["length"] == pytest.approx(5 * 0.661468)
    bad = json.loads(api.call("measure", json.dumps({"path": CT, "name": "CT_small.dcm", "frame": 0,
                                                       "kind": "length", "points": []})))
    assert not bad["ok"] and bad["error"]["file"] == "CT_small.dcm"

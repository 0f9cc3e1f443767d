"""Measurements drawn in the viewer as a TID 1500 SR and a GSPS, judged by highdicom, dcmtk and
dicom3tools, and read back into shapes for the viewer."""

import json
import math
import os

import numpy as np
import pydicom
import pytest
from conftest import bundled
from test_create_judges import PATIENT, STUDY, dciodvfy, needs, run, tool

from dcmstudio import api, create, measure, shapes
from dcmstudio.create.drawn import create_gsps_from_drawn, create_report_from_drawn
from dcmstudio.errors import DicomStudioError

CT = str(bundled("CT_small.dcm"))
IMAGES = [{"path": CT, "name": "CT_small.dcm"}]
SITE = {"value": "39607008", "scheme": "SCT", "meaning": "Lung structure"}
SHAPE_ROUND = {"name": "SCT.Shape", "value": "SCT.Round"}
ELLIPSE = [[30.0, 40.0], [70.0, 40.0], [50.0, 30.0], [50.0, 50.0]]
DRAWN = [
    {"kind": "length", "points": [[10.5, 20.25], [60.0, 80.5]], "image": 0, "frame": 0, "label": "L1",
     "finding": "SCT.Nodule", "finding_site": SITE},
    {"kind": "polygon", "points": [[40, 50], [60, 50], [60, 62], [40, 62]], "image": 0, "frame": 0, "label": "R1",
     "finding": "SCT.Lesion", "qualitative": [SHAPE_ROUND]},
    {"kind": "ellipse", "points": ELLIPSE, "image": 0, "frame": 0, "label": "E1"},
    {"kind": "point", "points": [[12.5, 99.5]], "image": 0, "frame": 0, "label": "P1"},
    {"kind": "angle", "points": [[20, 10], [10, 10], [10, 20]], "image": 0, "frame": 0, "label": "A1"},
]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drawn")
    sr = create_report_from_drawn(DRAWN, IMAGES, str(folder / "sr.dcm"), "Doe^Jane", "LN.CTUnspecifiedBodyRegion")
    gsps = create_gsps_from_drawn(DRAWN, IMAGES, str(folder / "gsps.dcm"), 40, 400, [20, 10, 100, 90])
    return sr, gsps


def measured(i):
    d = DRAWN[i]
    return measure.measure(CT, "CT_small.dcm", 0, d["kind"], d["points"])


def test_highdicom_reads_each_region_with_its_statistics_as_a_planar_roi_group(made):
    hd = pytest.importorskip("highdicom")
    sr = hd.sr.srread(made[0]["path"])
    report = sr.content
    groups = {g.tracking_identifier: g for g in report.get_planar_roi_measurement_groups()}
    assert set(groups) == {"R1", "E1", "P1"}
    polygon = groups["R1"]
    assert polygon.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    assert polygon.roi.value.tolist() == [[40, 50], [60, 50], [60, 62], [40, 62], [40, 50]]
    source = polygon.roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert source.ReferencedSOPInstanceUID == pydicom.dcmread(CT).SOPInstanceUID
    values = {m.name.meaning: (m.value, m.unit.value) for m in polygon.get_measurements()}
    stats = measured(1)["stats"]
    hu = pydicom.dcmread(CT).pixel_array[50:62, 40:60].astype(float) - 1024
    assert values["Mean"] == (pytest.approx(hu.mean()), "[hnsf'U]") and stats["mean"] == pytest.approx(hu.mean())
    assert values["Standard Deviation"][0] == pytest.approx(hu.std())
    assert values["Minimum"][0] == hu.min() and values["Maximum"][0] == hu.max()
    assert values["Area"] == (pytest.approx(20 * 12 * 0.661468 ** 2), "mm2")
    assert polygon.finding_type.meaning == "Lesion"
    evaluations = polygon.get_qualitative_evaluations(name=hd.sr.CodedConcept("300842002", "SCT", "Shape"))
    assert [(e.name.meaning, e.value.meaning) for e in evaluations] == [("Shape", "Round")]
    assert groups["E1"].roi.graphic_type == hd.sr.GraphicTypeValues.ELLIPSE
    assert groups["E1"].roi.value.tolist() == ELLIPSE
    assert groups["P1"].roi.graphic_type == hd.sr.GraphicTypeValues.POINT
    assert len({g.tracking_uid for g in groups.values()}) == 3


def test_highdicom_reads_lengths_and_angles_with_the_coordinates_they_were_measured_on(made):
    hd = pytest.importorskip("highdicom")
    report = hd.sr.srread(made[0]["path"]).content
    groups = {g.tracking_identifier: g for g in report.get_image_measurement_groups()}
    assert set(groups) == {"L1", "A1"}
    (length,) = groups["L1"].get_measurements()
    assert (length.name.meaning, length.unit.value) == ("Length", "mm")
    assert length.value == pytest.approx(math.hypot(49.5, 60.25) * 0.661468)
    (where,) = length.referenced_coordinates
    assert where.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    assert where.value.tolist() == [[10.5, 20.25], [60.0, 80.5]]
    assert groups["L1"].finding_type.meaning == "Nodule"
    assert [s.value.value for s in groups["L1"].finding_sites] == ["39607008"]
    (angle,) = groups["A1"].get_measurements()
    assert (angle.value, angle.unit.value) == (pytest.approx(90.0), "deg")


@needs("dciodvfy")
@pytest.mark.parametrize("which", [0, 1])
def test_the_sr_and_the_gsps_pass_dciodvfy_with_zero_errors(made, which):
    errors, _ = dciodvfy(made[which]["path"])
    assert errors == []


@needs("dsrdump")
def test_dsrdump_shows_the_regions_and_measurements(made):
    code, output = run(tool("dsrdump"), made[0]["path"])
    assert code == 0, output
    assert "Image Region" in output and "ELLIPSE" in output and "POLYLINE" in output
    assert "[hnsf'U]" in output and "Shape" in output and "Round" in output


def test_the_gsps_holds_the_drawings_window_and_displayed_area(made):
    ds = pydicom.dcmread(made[1]["path"])
    assert [layer.GraphicLayer for layer in ds.GraphicLayerSequence] == ["MEASUREMENTS"]
    (annotation,) = ds.GraphicAnnotationSequence
    types = [g.GraphicType for g in annotation.GraphicObjectSequence]
    assert types == ["POLYLINE", "POLYLINE", "ELLIPSE", "POINT", "POLYLINE"]
    closed = annotation.GraphicObjectSequence[1]
    assert closed.NumberOfGraphicPoints == 5 and closed.GraphicFilled == "N"
    labels = [t.UnformattedTextValue for t in annotation.TextObjectSequence]
    assert labels[0].startswith("L1 · ") and labels[0].endswith(" mm")
    assert " HU" in labels[1]
    voi = ds.SoftcopyVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (40, 400)
    area = ds.DisplayedAreaSelectionSequence[0]
    corners = [*area.DisplayedAreaTopLeftHandCorner, *area.DisplayedAreaBottomRightHandCorner]
    assert corners == [20, 10, 100, 90]


@pytest.mark.parametrize("which, object_kind", [(0, "SR"), (1, "presentation state")])
def test_what_was_drawn_comes_back_as_shapes_on_the_image(made, which, object_kind):
    found = shapes.shapes_of(made[which]["path"], "x.dcm")
    assert found["object"] == object_kind and found["not_shown"] == []
    uid = pydicom.dcmread(CT).SOPInstanceUID
    drawn = {(s["kind"], tuple(map(tuple, s["points"]))) for s in found["shapes"] if s["kind"] != "text"}
    # A presentation state has no angles: its three-point polyline is drawn as one.
    kinds = {"angle": "polyline"} if which == 1 else {}
    expected = {(kinds.get(d["kind"], d["kind"]), tuple(tuple(map(float, p)) for p in d["points"])) for d in DRAWN}
    assert drawn == expected
    assert {s["sop_instance_uid"] for s in found["shapes"]} == {uid}
    if which == 0:
        assert {s["label"] for s in found["shapes"]} == {"L1", "R1", "E1", "P1", "A1"}


def test_a_multiframe_image_is_referenced_by_frame(tmp_path):
    volume = np.arange(3 * 20 * 30, dtype=np.int16).reshape(3, 20, 30)
    mf = create.create_multiframe_from_volume(volume, str(tmp_path / "mf.dcm"), PATIENT, STUDY,
                                              {"PixelSpacing": [0.5, 0.5], "SpacingBetweenSlices": 2})["path"]
    drawn = [{"kind": "polygon", "points": [[2, 2], [8, 2], [8, 6]], "image": 0, "frame": 2, "label": "R"}]
    images = [{"path": mf, "name": "mf.dcm"}]
    sr = create_report_from_drawn(drawn, images, str(tmp_path / "sr.dcm"), "Doe^Jane", "LN.CTUnspecifiedBodyRegion")
    gsps = create_gsps_from_drawn(drawn, images, str(tmp_path / "gsps.dcm"), 0, 100)
    for path in (sr["path"], gsps["path"]):
        (shape,) = shapes.shapes_of(path, "x.dcm")["shapes"][:1]
        assert shape["frame"] == 2
    if tool("dciodvfy"):
        assert dciodvfy(sr["path"])[0] == [] and dciodvfy(gsps["path"])[0] == []


def test_a_displayed_area_beyond_the_image_is_kept_inside_it(tmp_path):
    gsps = create_gsps_from_drawn(DRAWN[:1], IMAGES, str(tmp_path / "g.dcm"), 40, 400, [-77, 21, 207, 108])
    area = pydicom.dcmread(gsps["path"]).DisplayedAreaSelectionSequence[0]
    assert [*area.DisplayedAreaTopLeftHandCorner, *area.DisplayedAreaBottomRightHandCorner] == [1, 21, 128, 108]
    if tool("dciodvfy"):
        assert dciodvfy(gsps["path"])[0] == []
    with pytest.raises(DicomStudioError, match="does not overlap"):
        create_gsps_from_drawn(DRAWN[:1], IMAGES, str(tmp_path / "h.dcm"), 40, 400, [200, 200, 300, 300])


def test_coordinates_without_an_image_are_named_not_dropped():
    found = shapes.shapes_of(str(bundled("test-SR.dcm")), "test-SR.dcm")
    assert found["shapes"] == []
    assert found["not_shown"] == ["A region: its coordinates name no image they belong to."]


def test_shapes_not_drawable_are_named_not_dropped(made, tmp_path):
    ds = pydicom.dcmread(made[1]["path"])
    ds.GraphicAnnotationSequence[0].GraphicObjectSequence[0].GraphicAnnotationUnits = "DISPLAY"
    ds.save_as(tmp_path / "display.dcm")
    found = shapes.shapes_of(str(tmp_path / "display.dcm"), "display.dcm")
    assert "relative to the display" in found["not_shown"][0]
    with pytest.raises(DicomStudioError, match="neither a structured report nor a presentation state"):
        shapes.shapes_of(CT, "CT_small.dcm")


@pytest.mark.parametrize("drawn, words", [
    ([], "Nothing was drawn"),
    ([{**DRAWN[0], "image": 3}], "refers to image 3"),
    ([{**DRAWN[0], "points": [[1, 1]]}], "takes at least 2 points"),
])
def test_bad_drawings_are_refused_in_a_sentence(tmp_path, drawn, words):
    with pytest.raises(DicomStudioError, match=words):
        create_report_from_drawn(drawn, IMAGES, str(tmp_path / "sr.dcm"), "Doe^Jane", "LN.CTUnspecifiedBodyRegion")


def test_the_endpoints_offer_both_objects_and_read_them_back_as_shapes():
    def call(endpoint, **args):
        return json.loads(api.call(endpoint, json.dumps(args)))

    sr = call("create_report_from_drawn", drawn=DRAWN, images=IMAGES, observer="Doe^Jane",
              procedure="LN.CTUnspecifiedBodyRegion")
    assert sr["ok"] and sr["created"]["name"] == "CT_small_measurements_SR.dcm"
    assert (sr["created"]["groups"], sr["created"]["regions"]) == (5, 5)
    gsps = call("create_gsps_from_drawn", drawn=DRAWN, images=IMAGES, window_center=40, window_width=400,
                displayed_area=None)
    assert gsps["ok"] and gsps["created"]["graphics"] == 5
    for result in (sr, gsps):
        path = result["outputs"][0]["path"]
        found = call("shapes", path=path, name=result["created"]["name"])
        assert found["ok"] and len([s for s in found["shapes"]["shapes"] if s["kind"] != "text"]) == 5
        os.remove(path)
    refused = call("create_report_from_drawn", drawn=DRAWN, images=IMAGES, observer="",
                   procedure="LN.CTUnspecifiedBodyRegion")
    assert not refused["ok"] and "needs an observer" in refused["error"]["message"]
    not_drawing = call("shapes", path=CT, name="CT_small.dcm")
    assert not not_drawing["ok"] and not_drawing["error"]["file"] == "CT_small.dcm"

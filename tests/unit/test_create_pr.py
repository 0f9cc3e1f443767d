"""Grayscale Softcopy Presentation State: references, window, annotation, presentation LUT."""

import pydicom
import pytest
from conftest import bundled
from test_create_judges import dciodvfy, needs

from dcmstudio.create import create_gsps
from dcmstudio.errors import EditError, InvalidDicomError, NotDicomError

TEXT = "Läsion → prüfen 病変"


def make(tmp_path, image, text=TEXT, center=40, width=400, options=None, name="pr.dcm"):
    report = create_gsps(str(image), str(tmp_path / name), text, center, width, options)
    return report, pydicom.dcmread(report["path"])


def test_gsps_refers_to_the_image_and_joins_its_study(tmp_path):
    ct = pydicom.dcmread(bundled("CT_small.dcm"))
    report, ds = make(tmp_path, bundled("CT_small.dcm"))
    assert ds.SOPClassUID == pydicom.uid.GrayscaleSoftcopyPresentationStateStorage
    assert ds.Modality == "PR"
    series = ds.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ct.SeriesInstanceUID
    assert series.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID
    assert report["referenced_sop_instance_uid"] == ct.SOPInstanceUID
    assert (ds.StudyInstanceUID, ds.PatientID) == (ct.StudyInstanceUID, ct.PatientID)
    assert ds.SeriesInstanceUID != ct.SeriesInstanceUID


def test_window_is_in_the_images_rescaled_units(tmp_path):
    ct = pydicom.dcmread(bundled("CT_small.dcm"))
    _, ds = make(tmp_path, bundled("CT_small.dcm"), center=-600, width=1500)
    voi = ds.SoftcopyVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (-600, 1500)
    assert (ds.RescaleIntercept, ds.RescaleSlope) == (ct.RescaleIntercept, ct.RescaleSlope)
    assert ds.RescaleType == "HU"
    assert ds.PresentationLUTShape == "IDENTITY"


def test_text_annotation_sits_on_its_own_layer(tmp_path):
    _, ds = make(tmp_path, bundled("MR_small.dcm"), options={"TextBox": [5, 6, 60, 20]})
    layer = ds.GraphicLayerSequence[0].GraphicLayer
    annotation = ds.GraphicAnnotationSequence[0]
    note = annotation.TextObjectSequence[0]
    assert annotation.GraphicLayer == layer
    assert note.UnformattedTextValue == TEXT
    assert note.BoundingBoxAnnotationUnits == "PIXEL"
    assert (list(note.BoundingBoxTopLeftHandCorner), list(note.BoundingBoxBottomRightHandCorner)) == (
        [5, 6], [60, 20])


def test_without_text_there_is_no_annotation(tmp_path):
    _, ds = make(tmp_path, bundled("MR_small.dcm"), text="")
    assert "GraphicAnnotationSequence" not in ds and "GraphicLayerSequence" not in ds


def test_displayed_area_is_the_whole_image_at_its_pixel_spacing(tmp_path):
    mr = pydicom.dcmread(bundled("MR_small.dcm"))
    _, ds = make(tmp_path, bundled("MR_small.dcm"))
    area = ds.DisplayedAreaSelectionSequence[0]
    assert list(area.DisplayedAreaBottomRightHandCorner) == [mr.Columns, mr.Rows]
    assert list(area.PresentationPixelSpacing) == list(mr.PixelSpacing)


@pytest.fixture
def monochrome1(tmp_path):
    ds = pydicom.dcmread(bundled("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    return path


def test_monochrome1_image_keeps_its_inverse_look(tmp_path, monochrome1):
    _, ds = make(tmp_path, monochrome1)
    assert ds.PresentationLUTShape == "INVERSE"


@needs("dciodvfy")
def test_gsps_for_monochrome1_and_for_mr_pass_dciodvfy(tmp_path, monochrome1):
    for image, name in ((monochrome1, "m1.dcm"), (bundled("MR_small.dcm"), "mr.dcm")):
        report, _ = make(tmp_path, image, name=name)
        assert dciodvfy(report["path"])[0] == []


def test_colour_image_is_refused(tmp_path):
    with pytest.raises(EditError, match="MONOCHROME1 or MONOCHROME2 images only") as caught:
        make(tmp_path, bundled("SC_rgb_small_odd.dcm"))
    assert caught.value.file == "SC_rgb_small_odd.dcm"


def test_an_object_without_pixels_is_refused(tmp_path):
    with pytest.raises(EditError, match="is not an image"):
        make(tmp_path, bundled("rtplan.dcm"))


@pytest.mark.parametrize("center, width, options, words", [
    (40, 0, None, "at least 1"),
    ("wide", 400, None, "must be numbers"),
    (40, 400, {"TextBox": [0, 0, 500, 10]}, "inside the 64×64 image"),
    (40, 400, {"TextBox": [10, 10, 5, 20]}, "left < right"),
    (40, 400, {"ContentLabel": "has spaces and lower"}, "(0070,0080) Content Label"),
    (40, 400, {"Shutter": True}, "Unknown option"),
])
def test_invalid_window_and_options_are_refused(tmp_path, center, width, options, words):
    with pytest.raises(EditError) as caught:
        make(tmp_path, bundled("MR_small.dcm"), center=center, width=width, options=options)
    assert words in caught.value.message


def test_text_longer_than_an_st_value_is_refused(tmp_path):
    with pytest.raises(EditError, match="at most 1024"):
        make(tmp_path, bundled("MR_small.dcm"), text="x" * 1025)


def test_referenced_file_that_is_not_dicom_or_is_broken(tmp_path):
    text = tmp_path / "note.txt"
    text.write_text("just words " * 30)
    with pytest.raises(NotDicomError):
        make(tmp_path, text)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(bundled("MR_small.dcm").read_bytes()[:600])
    with pytest.raises(InvalidDicomError, match="truncated"):
        make(tmp_path, cut)


def test_a_latin1_patient_name_is_carried_over_into_utf8(tmp_path):
    ds = pydicom.dcmread(bundled("MR_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jörg"
    latin1 = tmp_path / "latin1.dcm"
    ds.save_as(latin1)
    assert "Müller".encode("latin-1") in latin1.read_bytes()
    report, pr = make(tmp_path, latin1)
    assert (pr.SpecificCharacterSet, pr.PatientName) == ("ISO_IR 192", "Müller^Jörg")
    assert "Müller".encode("utf-8") in open(report["path"], "rb").read()


@pytest.mark.parametrize("keyword, value, words", [
    ("SOPClassUID", "1.2.840.10008.5.1.4.1.1.2.999", "no SOP class of the standard"),
    ("SOPInstanceUID", "102.840.1.2", "invalid (0008,0018) SOP Instance UID"),
    ("SeriesInstanceUID", "", "has no (0020,000E) Series Instance UID"),
])
def test_an_image_whose_uids_cannot_be_referred_to_is_refused(tmp_path, keyword, value, words):
    ds = pydicom.dcmread(bundled("MR_small.dcm"))
    setattr(ds, keyword, value)
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    with pytest.raises(EditError) as caught:
        make(tmp_path, bad)
    assert words in caught.value.message

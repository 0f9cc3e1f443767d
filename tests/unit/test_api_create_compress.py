"""The Create and Compress endpoints of dcmstudio.api and the "compress" job, called as the
worker calls them: JSON in, JSON out, downloads named by path.

The builders and codecs have their own tests (test_create_*, test_codecs); these check what the
boundary adds: output names and MEMFS paths, inputs removed, errors as sentences naming the file,
and a compress job that streams a ZIP, reports every file and survives a bad one.
"""

import io
import json
import os
import shutil
import zipfile

import numpy as np
import pydicom
import pytest
from conftest import bundled
from test_create_judges import SR_FORM, dciodvfy, gradient, make_pdf, needs, run, tool, write_png

from dcmstudio import api

CT = bundled("CT_small.dcm")
MR_RLE = bundled("MR_small_RLE.dcm")
RTPLAN = bundled("rtplan.dcm")
RLE = pydicom.uid.RLELossless
DEFLATED = pydicom.uid.DeflatedExplicitVRLittleEndian
EXPLICIT = pydicom.uid.ExplicitVRLittleEndian


def call(endpoint, **args):
    return json.loads(api.call(endpoint, json.dumps(args)))


def take_output(result):
    """Move the one output of a result out of the scratch area, as the worker does."""
    (output,) = result["outputs"]
    assert os.path.isfile(output["path"]) and output["mime"] == "application/dicom"
    return output["name"], output["path"]


# ---- Create ------------------------------------------------------------------------------------

def test_choices_offer_the_report_forms_codes():
    result = call("create_choices")
    assert result["ok"]
    sr = result["sr"]
    assert "DICOM" in sr["source"]
    assert any(c["keyword"] == "SCT.Diameter" for c in sr["measurements"])
    assert any(c["value"] == "mm" for c in sr["units"])


def test_patient_study_of_a_loaded_file():
    result = call("create_patient_study", path=str(CT), name="CT_small.dcm")
    assert result["ok"]
    ds = pydicom.dcmread(CT, stop_before_pixels=True)
    assert result["patient"]["PatientName"] == str(ds.PatientName)
    assert result["study"]["StudyInstanceUID"] == ds.StudyInstanceUID


def test_patient_study_of_a_file_that_is_not_dicom_is_a_sentence(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = call("create_patient_study", path=str(notes), name="notes.txt")
    assert not result["ok"] and result["error"]["file"] == "notes.txt"
    assert result["error"]["type"] in ("NotDicomError", "InvalidDicomError")


def test_secondary_capture_is_named_after_the_picture_and_its_input_removed(tmp_path):
    pytest.importorskip("PIL")
    picture = gradient(channels=3)
    png = write_png(tmp_path / "0-holiday.png", picture)
    result = call("create_image", image_paths=[png], image_names=["holiday.png"],
                  patient={"PatientName": "Doe^Jane"}, options={"SeriesDescription": "Photos"})
    assert result["ok"], result
    name, path = take_output(result)
    assert name == "holiday_SC.dcm" and result["created"]["name"] == name
    assert "path" not in result["created"]
    assert not os.path.exists(png), "the picture put in MEMFS for this object was left there"
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert str(ds.PatientName) == "Doe^Jane" and ds.SeriesDescription == "Photos"
    assert np.array_equal(ds.pixel_array, picture)


def test_multiframe_keeps_the_order_of_the_pictures(tmp_path):
    pytest.importorskip("PIL")
    frames = [gradient(seed=i) for i in range(3)]
    paths = [write_png(tmp_path / f"{i}.png", f) for i, f in enumerate(frames)]
    result = call("create_image", image_paths=paths, image_names=["b.png", "a.png", "c.png"],
                  multiframe=True)
    assert result["ok"], result
    name, path = take_output(result)
    assert name == "b_multiframe.dcm" and result["created"]["frames"] == 3
    assert np.array_equal(pydicom.dcmread(path).pixel_array, np.stack(frames))


def test_several_pictures_for_a_single_frame_object_are_refused_with_a_sentence(tmp_path):
    pytest.importorskip("PIL")
    paths = [write_png(tmp_path / f"{i}.png", gradient(seed=i)) for i in range(2)]
    result = call("create_image", image_paths=paths, image_names=["a.png", "b.png"])
    assert not result["ok"]
    assert "multi-frame" in result["error"]["message"]
    assert not any(os.path.exists(p) for p in paths)


def test_no_picture_is_refused_with_a_sentence():
    result = call("create_image", image_paths=[], image_names=[])
    assert not result["ok"] and "PNG or JPEG" in result["error"]["message"]


def test_a_file_that_is_not_a_picture_is_refused_by_name(tmp_path):
    pytest.importorskip("PIL")
    fake = tmp_path / "0-scan.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = call("create_image", image_paths=[str(fake)], image_names=["scan.png"])
    assert not result["ok"]
    assert result["error"]["file"] == "scan.png" and "scan.png" in result["error"]["message"]


def test_encapsulated_pdf_carries_the_document_whole(tmp_path):
    pytest.importorskip("PIL")
    pdf = make_pdf(tmp_path / "letter.pdf")
    data = open(pdf, "rb").read()
    result = call("create_pdf", pdf_path=pdf, pdf_name="letter.pdf", options={"DocumentTitle": "Letter"})
    assert result["ok"], result
    name, path = take_output(result)
    ds = pydicom.dcmread(path)
    assert name == "letter_pdf.dcm" and ds.DocumentTitle == "Letter"
    assert ds.EncapsulatedDocument[:len(data)] == data
    assert not os.path.exists(pdf)


def test_a_file_that_is_not_a_pdf_is_refused_by_name(tmp_path):
    fake = tmp_path / "letter.pdf"
    fake.write_bytes(b"<html>no</html>")
    result = call("create_pdf", pdf_path=str(fake), pdf_name="letter.pdf")
    assert not result["ok"] and "letter.pdf" in result["error"]["message"]


def test_measurement_report_joins_the_study_of_its_evidence():
    joined = call("create_patient_study", path=str(CT), name="CT_small.dcm")
    result = call("create_report", form=SR_FORM, patient=joined["patient"], study=joined["study"],
                  options={"CompletionFlag": "PARTIAL"}, evidence=[{"path": str(CT), "name": "CT_small.dcm"}])
    assert result["ok"], result
    name, path = take_output(result)
    ds = pydicom.dcmread(path)
    assert name == "measurement_report.dcm"
    assert ds.StudyInstanceUID == joined["study"]["StudyInstanceUID"] and ds.CompletionFlag == "PARTIAL"
    assert result["created"]["evidence"] == 1 and result["created"]["measurements"] == 3
    if tool("dsrdump"):
        code, output = run(tool("dsrdump"), path)
        assert code == 0, output


def test_a_report_form_error_names_the_field():
    form = {**SR_FORM, "groups": [{"tracking_id": "lesion 1", "measurements": [
        {"name": "SCT.Diameter", "value": "twelve", "unit": "mm"}]}]}
    result = call("create_report", form=form)
    assert not result["ok"]
    assert "measurement group 1, measurement 1" in result["error"]["message"]


def test_presentation_state_refers_to_its_image():
    result = call("create_presentation_state", path=str(CT), name="CT_small.dcm", text="Look here",
                  window_center=40, window_width=400, options={"ContentCreatorName": "Doe^Jane"})
    assert result["ok"], result
    name, path = take_output(result)
    ds = pydicom.dcmread(path)
    image = pydicom.dcmread(CT, stop_before_pixels=True)
    assert name == "CT_small_GSPS.dcm"
    reference = ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == image.SOPInstanceUID
    assert ds.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == "Look here"
    assert float(ds.SoftcopyVOILUTSequence[0].WindowWidth) == 400


@needs("dciodvfy")
def test_every_created_kind_passes_dciodvfy(tmp_path):
    pytest.importorskip("PIL")
    png = write_png(tmp_path / "p.png", gradient())
    pdf = make_pdf(tmp_path / "d.pdf")
    joined = call("create_patient_study", path=str(CT), name="CT_small.dcm")
    results = [
        call("create_image", image_paths=[png], image_names=["p.png"], patient=joined["patient"]),
        call("create_pdf", pdf_path=pdf, pdf_name="d.pdf", study=joined["study"]),
        call("create_report", form=SR_FORM, evidence=[{"path": str(CT), "name": "CT_small.dcm"}],
             patient=joined["patient"], study=joined["study"]),
        call("create_presentation_state", path=str(CT), name="CT_small.dcm", text="x",
             window_center=40, window_width=400),
    ]
    for result in results:
        assert result["ok"], result
        name, path = take_output(result)
        errors, _ = dciodvfy(path)
        assert not errors, f"{name}: {errors}"


# ---- Compress ----------------------------------------------------------------------------------

def run_job(kind, options, items):
    """Drive a job as worker.js does; return (finish result, steps, {download name: bytes})."""
    started = call("job_start", kind=kind, options=options, count=len(items))
    assert started["ok"], started
    downloads = {}

    def collect(result):
        for chunk in result.get("chunks", []):
            with open(chunk["path"], "rb") as f:
                downloads[chunk["name"]] = downloads.get(chunk["name"], b"") + f.read()
            os.remove(chunk["path"])
        for output in result.get("outputs", []):
            with open(output["path"], "rb") as f:
                downloads[output["name"]] = f.read()
            os.remove(output["path"])

    steps = []
    for item in items:
        step = call("job_step", job=started["job"], item=item)
        if step["ok"]:
            collect(step)
        steps.append(step)
    finished = call("job_finish", job=started["job"])
    assert finished["ok"], finished
    collect(finished)
    return finished, steps, downloads


def test_compress_choices_are_the_three_lossless_targets_the_page_writes():
    result = call("compress_choices")
    assert result["ok"]
    assert [t["uid"] for t in result["targets"]] == [RLE, DEFLATED, EXPLICIT]
    assert [t["compressed"] for t in result["targets"]] == [True, True, False]


@pytest.mark.parametrize("target", [RLE, DEFLATED])
def test_many_files_compressed_into_one_zip_pixel_identical(target):
    items = [{"path": str(CT), "name": "ct/CT_small.dcm"}, {"path": str(MR_RLE), "name": "mr/MR_small_RLE.dcm"}]
    finished, steps, downloads = run_job("compress", {"transfer_syntax": target, "zip_stem": "study"}, items)
    suffix = {RLE: "rle", DEFLATED: "deflated"}[target]
    assert list(downloads) == [f"study_{suffix}.zip"]
    assert finished["summary"]["files"] == 2 and finished["summary"]["verified"] == 2
    assert [s["report"]["file"] for s in steps] == ["ct/CT_small.dcm", "mr/MR_small_RLE.dcm"]
    with zipfile.ZipFile(io.BytesIO(downloads[f"study_{suffix}.zip"])) as z:
        assert z.namelist() == ["ct/CT_small.dcm", "mr/MR_small_RLE.dcm"]
        for item, member in zip(items, z.namelist()):
            written = pydicom.dcmread(io.BytesIO(z.read(member)))
            assert written.file_meta.TransferSyntaxUID == target
            assert np.array_equal(written.pixel_array, pydicom.dcmread(item["path"]).pixel_array)


def test_one_file_is_offered_as_itself_with_the_syntax_in_its_name():
    finished, steps, downloads = run_job("compress", {"transfer_syntax": EXPLICIT, "single": True},
                                         [{"path": str(MR_RLE), "name": "MR_small_RLE.dcm"}])
    assert list(downloads) == ["MR_small_RLE_uncompressed.dcm"]
    written = pydicom.dcmread(io.BytesIO(downloads["MR_small_RLE_uncompressed.dcm"]))
    assert written.file_meta.TransferSyntaxUID == EXPLICIT
    assert np.array_equal(written.pixel_array, pydicom.dcmread(MR_RLE).pixel_array)
    assert steps[0]["report"]["source_transfer_syntax"]["uid"] == RLE


def test_a_file_without_pixels_is_reported_and_the_others_go_on():
    items = [{"path": str(RTPLAN), "name": "rtplan.dcm"}, {"path": str(CT), "name": "CT_small.dcm"}]
    finished, steps, downloads = run_job("compress", {"transfer_syntax": RLE}, items)
    assert steps[0]["ok"] and steps[0]["report"] is None
    assert "rtplan.dcm" in steps[0]["error"]["message"] and "Pixel Data" in steps[0]["error"]["message"]
    assert finished["summary"]["files"] == 1
    assert finished["summary"]["failed"] == [{"file": "rtplan.dcm", "message": steps[0]["error"]["message"]}]
    with zipfile.ZipFile(io.BytesIO(downloads["dcmstudio_rle.zip"])) as z:
        assert z.namelist() == ["CT_small.dcm"]


def test_a_lossy_target_without_its_setting_is_refused_before_any_file_is_touched():
    started = call("job_start", kind="compress", options={"transfer_syntax": pydicom.uid.JPEGBaseline8Bit}, count=1)
    assert not started["ok"] and "quality must be a number from 1 to 100; none was given" in started["error"]["message"]
    started = call("job_start", kind="compress", options={"transfer_syntax": pydicom.uid.JPEGExtended12Bit}, count=1)
    assert not started["ok"] and "not a transfer syntax dcmstudio writes" in started["error"]["message"]


@pytest.mark.skipif(tool("dcmdump") is None, reason="dcmdump is not available here")
def test_dcmdump_parses_what_the_job_wrote(tmp_path):
    for target in (RLE, DEFLATED, EXPLICIT):
        _, _, downloads = run_job("compress", {"transfer_syntax": target, "single": True},
                                  [{"path": str(CT), "name": "CT_small.dcm"}])
        ((name, data),) = downloads.items()
        (tmp_path / name).write_bytes(data)
        code, output = run(shutil.which("dcmdump"), str(tmp_path / name))
        assert code == 0 and "PixelData" in output, output


def test_a_form_error_names_no_file_the_person_has_not_seen():
    result = call("create_report", form={**SR_FORM, "observer": ""})
    assert not result["ok"] and result["error"]["file"] is None
    assert "observer" in result["error"]["message"]

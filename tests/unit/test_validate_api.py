"""Validation at the worker's boundary: the ``validate`` endpoint, the "validate" job with its two
reports, and Create refusing an object that fails validation."""

import json
import os

import pydicom
import pytest
from conftest import bundled

from dcmstudio import api, create


def call(endpoint, **args):
    return json.loads(api.call(endpoint, json.dumps(args)))


def test_endpoint_reports_each_file_and_survives_a_non_dicom_one(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM at all")
    result = call("validate", files=[{"path": str(bundled("CT_small.dcm")), "name": "ct/CT_small.dcm"},
                                     {"path": str(junk), "name": "notes.txt"}])
    assert result["ok"]
    ct, notes = result["reports"]
    assert (ct["name"], ct["iod"], ct["errors"]) == ("ct/CT_small.dcm", "CT Image", 0)
    assert notes["errors"] == 1 and notes["findings"][0]["rule"] == "unreadable"
    assert "not DICOM" in notes["findings"][0]["message"]


def test_job_steps_then_offers_json_and_text_reports(tmp_path):
    broken = tmp_path / "broken.dcm"
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    del ds.PatientID
    ds.save_as(broken)
    started = call("job_start", kind="validate", options={"report_stem": "series_2"}, count=2)
    assert started["ok"]
    job = started["job"]
    steps = [call("job_step", job=job, item={"path": str(p), "name": n})
             for p, n in ((bundled("MR_small.dcm"), "MR_small.dcm"), (broken, "broken.dcm"))]
    assert [s["report"]["errors"] for s in steps] == [0, 1]
    finished = call("job_finish", job=job)
    assert finished["summary"] == {"files": 2, "errors": 1, "warnings": finished["summary"]["warnings"],
                                   "files_with_errors": 1}
    names = {o["name"]: o["path"] for o in finished["outputs"]}
    assert set(names) == {"series_2_validation.json", "series_2_validation.txt"}
    document = json.loads(open(names["series_2_validation.json"], encoding="utf-8").read())
    assert [f["name"] for f in document["files"]] == ["MR_small.dcm", "broken.dcm"]
    text = open(names["series_2_validation.txt"], encoding="utf-8").read()
    assert "broken.dcm: CT Image — 1 error(s)" in text and "PatientID" in text


def test_create_refuses_an_object_that_fails_validation(monkeypatch, tmp_path):
    """A builder that leaves out a Type 1 attribute: the download is blocked and the reason given."""
    picture = tmp_path / "p.png"
    from PIL import Image
    Image.new("L", (8, 8), 7).save(picture)
    real = create.create_secondary_capture

    def careless(*args, **kwargs):
        report = real(*args, **kwargs)
        ds = pydicom.dcmread(report["path"])
        del ds.ConversionType
        ds.save_as(report["path"])
        return report

    monkeypatch.setattr(create, "create_secondary_capture", careless)
    # the outputs folder is the process's: other tests' objects (a p_SC.dcm Create offered) stay there
    before = outputs_named("p_SC.dcm")
    result = call("create_image", image_paths=[str(picture)], image_names=["p.png"])
    assert not result["ok"]
    message = result["error"]["message"]
    assert "p_SC.dcm was not offered" in message and "ConversionType" in message and "type1-missing" in message
    assert outputs_named("p_SC.dcm") == before


def outputs_named(name):
    """Every file called ``name`` in the folder the api writes its outputs to."""
    top = os.path.dirname(api.output_path("x"))
    return {os.path.join(folder, name) for folder, _, files in os.walk(top) if name in files}


def test_create_offers_an_object_that_passes():
    pytest.importorskip("PIL")
    result = call("create_presentation_state", path=str(bundled("CT_small.dcm")), name="CT_small.dcm",
                  text="look here", window_center=40, window_width=400)
    assert result["ok"], result
    assert os.path.isfile(result["outputs"][0]["path"])


def test_an_object_made_from_a_loaded_file_is_refused_only_for_errors_of_its_own(monkeypatch, tmp_path):
    """The presentation state's image lacks Patient ID (Type 2); an object that carries the same gap
    is offered (the person already has that error), one that adds an error is not."""
    source = tmp_path / "ct.dcm"
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    del ds.PatientID
    ds.save_as(source)

    def builder(extra_fault):
        def build(image_path, out, *args, **kwargs):
            made = pydicom.dcmread(image_path)
            if extra_fault:
                made.StudyInstanceUID = ""
            made.save_as(out)
            return {"path": out}
        return build

    monkeypatch.setattr(create, "create_gsps", builder(extra_fault=False))
    same = call("create_presentation_state", path=str(source), name="ct.dcm", text="x", window_center=40,
                window_width=400)
    assert same["ok"], same
    monkeypatch.setattr(create, "create_gsps", builder(extra_fault=True))
    worse = call("create_presentation_state", path=str(source), name="ct.dcm", text="x", window_center=40,
                 window_width=400)
    assert not worse["ok"] and "StudyInstanceUID" in worse["error"]["message"]
    assert "PatientID" not in worse["error"]["message"]

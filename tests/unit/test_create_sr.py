"""TID 1500 measurement reports: the content tree, the form checks, and a second reader's view."""

import copy
import json
import os
import pathlib
import subprocess
import sys

import pydicom
import pytest
from conftest import bundled
from test_create_judges import PATIENT, SR_FORM, STUDY

from dcmstudio.create import create_measurement_report, measurement_report_choices, patient_study_from
from dcmstudio.create import sr_codes
from dcmstudio.create.sr import coded
from dcmstudio.errors import EditError, NotDicomError


def concept(item):
    code = item.ConceptNameCodeSequence[0]
    return (code.CodeValue, code.CodingSchemeDesignator)


def child(item, value, scheme="DCM"):
    found = [c for c in item.ContentSequence if concept(c) == (value, scheme)]
    assert len(found) == 1, f"expected one ({value}, {scheme}) under {concept(item)}"
    return found[0]


@pytest.fixture
def report_ds(tmp_path):
    ct = str(bundled("CT_small.dcm"))
    ps = patient_study_from(ct)
    report = create_measurement_report(SR_FORM, str(tmp_path / "sr.dcm"), ps["patient"], ps["study"],
                                       evidence_paths=[ct])
    return report, pydicom.dcmread(report["path"])


def test_root_is_an_imaging_measurement_report_following_tid_1500(report_ds):
    report, ds = report_ds
    assert ds.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert (ds.ValueType, concept(ds)) == ("CONTAINER", ("126000", "DCM"))
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.ContentTemplateSequence[0].MappingResource == "DCMR"
    language = child(ds, "121049")
    assert language.ConceptCodeSequence[0].CodeValue == "en-US"
    assert child(ds, "121008").PersonName == "Doe^Jane"
    assert child(ds, "121058").ConceptCodeSequence[0].CodeValue == "25045-6"
    assert (ds.CompletionFlag, ds.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    assert (report["groups"], report["measurements"], report["evidence"]) == (2, 3, 1)


def test_measurement_groups_carry_tracking_finding_and_measurements(report_ds):
    _, ds = report_ds
    groups = child(ds, "126010").ContentSequence
    assert [concept(g) for g in groups] == [("125007", "DCM")] * 2
    first = groups[0]
    assert first.ContentTemplateSequence[0].TemplateIdentifier == "1501"
    assert child(first, "112039").TextValue == "lesion 1"
    assert child(first, "112040").UID.startswith("2.25.")
    assert child(first, "121071").ConceptCodeSequence[0].CodeValue == "27925004"
    assert child(first, "363698007", "SCT").RelationshipType == "HAS CONCEPT MOD"
    diameter = child(first, "81827009", "SCT")
    measured = diameter.MeasuredValueSequence[0]
    assert (diameter.ValueType, float(measured.NumericValue)) == ("NUM", 12.5)
    assert measured.MeasurementUnitsCodeSequence[0].CodeValue == "mm"
    assert child(groups[0], "112040").UID != child(groups[1], "112040").UID


def test_evidence_in_the_reports_study_is_current_and_listed_in_the_image_library(report_ds):
    _, ds = report_ds
    ct = pydicom.dcmread(bundled("CT_small.dcm"))
    study = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert study.StudyInstanceUID == ct.StudyInstanceUID == ds.StudyInstanceUID
    sop = study.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert sop.ReferencedSOPInstanceUID == ct.SOPInstanceUID
    image = child(child(child(ds, "111028"), "126200"), "260753009", "SCT")
    assert image.ValueType == "IMAGE"
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID
    assert "PertinentOtherEvidenceSequence" not in ds


def test_evidence_from_another_study_is_pertinent_other_evidence(tmp_path):
    mr = str(bundled("MR_small.dcm"))
    report = create_measurement_report(SR_FORM, str(tmp_path / "sr.dcm"), PATIENT, STUDY,
                                       evidence_paths=[mr])
    ds = pydicom.dcmread(report["path"])
    assert "CurrentRequestedProcedureEvidenceSequence" not in ds
    assert ds.PertinentOtherEvidenceSequence[0].StudyInstanceUID == pydicom.dcmread(mr).StudyInstanceUID


def test_a_value_with_more_digits_than_a_decimal_string_holds_keeps_them_in_fd(tmp_path):
    form = copy.deepcopy(SR_FORM)
    form["groups"][0]["measurements"][0]["value"] = 12.345678901234567
    ds = pydicom.dcmread(create_measurement_report(form, str(tmp_path / "sr.dcm"), PATIENT)["path"])
    group = child(ds, "126010").ContentSequence[0]
    measured = child(group, "81827009", "SCT").MeasuredValueSequence[0]
    assert len(str(measured.NumericValue)) <= 16
    assert measured.FloatingPointValue == 12.345678901234567


def test_highdicom_reads_the_report_as_a_tid_1500_measurement_report(report_ds):
    hd = pytest.importorskip("highdicom")
    report, _ = report_ds
    sr = hd.sr.srread(report["path"])
    assert isinstance(sr.content, hd.sr.MeasurementReport)
    groups = sr.content.get_image_measurement_groups()
    assert [g.tracking_identifier for g in groups] == ["lesion 1", "lesion 2"]
    measurements = [(m.name.meaning, m.value, m.unit.value) for m in groups[0].get_measurements()]
    assert measurements == [("Diameter", 12.5, "mm"), ("Volume", 1023.75, "mm3")]


def form_with(path, value):
    """SR_FORM with the field at ``path`` (keys and indexes) set to ``value``, or removed if None."""
    form = copy.deepcopy(SR_FORM)
    target = form
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return form


@pytest.mark.parametrize("path, value, words", [
    (("groups",), [], "at least one measurement group"),
    (("observer",), None, "needs an observer"),
    (("procedure",), None, "procedure reported needs a code"),
    (("groups", 0, "measurements"), [], "measurement group 1 needs at least one measurement, qualitative evaluation or image region"),
    (("groups", 1, "tracking_id"), " ", "measurement group 2 needs a tracking identifier"),
    (("groups", 0, "measurements", 1, "value"), "twelve",
     "measurement group 1, measurement 2: the value 'twelve' is not a finite number"),
    (("groups", 0, "measurements", 0, "name"), "SCT.NoSuchThing",
     "'SCT.NoSuchThing' for measurement group 1, measurement 1, name is not one of the codes"),
    (("groups", 0, "finding"), {"value": "1", "scheme": "SCT"},
     "measurement group 1, finding lacks its meaning"),
    (("groups", 0, "tracking_uid"), "1.02", "(0040,A124) UID '1.02'"),
])
def test_form_errors_name_the_field(tmp_path, path, value, words):
    with pytest.raises(EditError) as caught:
        create_measurement_report(form_with(path, value), str(tmp_path / "sr.dcm"), PATIENT)
    assert words in caught.value.message
    assert caught.value.file == "sr.dcm"


def test_two_groups_with_one_tracking_uid_are_refused(tmp_path):
    form = copy.deepcopy(SR_FORM)
    for group in form["groups"]:
        group["tracking_uid"] = "2.25.1234"
    with pytest.raises(EditError, match="same tracking UID"):
        create_measurement_report(form, str(tmp_path / "sr.dcm"))


def test_evidence_that_is_not_dicom_is_refused_by_name(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("plain text, long enough to look at " * 10)
    with pytest.raises(NotDicomError) as caught:
        create_measurement_report(SR_FORM, str(tmp_path / "sr.dcm"), evidence_paths=[str(text)],
                                  evidence_names=["image.dcm"])
    assert caught.value.file == "image.dcm"


def test_every_offered_choice_is_accepted_by_the_form():
    choices = measurement_report_choices()
    assert choices.pop("source") == "pydicom 3.0.2 concept dictionary, DICOM 2024c"
    assert set(choices) == {"procedures", "measurements", "units", "finding_sites", "findings", "qualitative"}
    for concept in choices["qualitative"]:
        choices.setdefault("qualitative values", []).extend(concept.pop("values"))
    for field, entries in choices.items():
        assert entries, field
        for entry in entries:
            code = coded(entry["keyword"], field, "x.dcm", unit=field == "units")
            assert (code.value, code.scheme_designator) == (entry["value"], entry["scheme"])


def test_units_may_be_bare_ucum_expressions():
    assert coded("mm", "unit", "x.dcm", unit=True).meaning == "mm"
    assert coded("mm3", "unit", "x.dcm", unit=True).meaning == "cubic millimeter"
    custom = coded("mg/dL", "unit", "x.dcm", unit=True)
    assert (custom.value, custom.scheme_designator) == ("mg/dL", "UCUM")


def test_code_table_is_what_pydicoms_dictionary_gives():
    """Fails when pydicom is upgraded without regenerating sr_codes.json (see sr_codes.py)."""
    assert sr_codes.generate() == json.loads(sr_codes.TABLE.read_text(encoding="utf-8"))


@pytest.mark.skipif(sys.platform == "emscripten", reason="needs a fresh interpreter (subprocess)")
def test_making_a_report_does_not_load_pydicoms_concept_dictionary(tmp_path):
    """pydicom.sr.codedict costs 1.8–4 s in Pyodide; the generated table replaces it."""
    script = (
        "import sys\n"
        "from dcmstudio.create import create_measurement_report, measurement_report_choices\n"
        "from test_create_judges import SR_FORM\n"
        f"create_measurement_report(SR_FORM, {str(tmp_path / 'sr.dcm')!r})\n"
        "measurement_report_choices()\n"
        "print(sorted(m for m in sys.modules if m.startswith('pydicom.sr')))\n"
    )
    here = pathlib.Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent.parent / "py"), str(here)])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

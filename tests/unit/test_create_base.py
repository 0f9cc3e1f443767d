"""Patient and study attributes, series options and the checks every created object shares."""

import datetime

import pytest
from conftest import bundled
from test_create_judges import PATIENT, STUDY

from dcmstudio.create import base, patient_study_from
from dcmstudio.errors import EditError, InvalidDicomError, NotDicomError


def test_typed_in_values_from_html_inputs_become_dicom_dates_and_times():
    study = base.PatientStudy(PATIENT, {"StudyDate": "2024-03-01", "StudyTime": "09:05"}, file="x.dcm")
    assert study.values["PatientBirthDate"] == "19700203"
    assert study.values["StudyDate"] == "20240301"
    assert study.values["StudyTime"] == "090500"
    assert study.values["PatientSex"] == "M"


def test_a_new_study_gets_a_2_25_uid_and_todays_date():
    values = base.PatientStudy(PATIENT, STUDY, file="x.dcm").values
    assert values["StudyInstanceUID"].startswith("2.25.")
    assert values["StudyDate"] == datetime.date.today().strftime("%Y%m%d")
    again = base.PatientStudy(PATIENT, STUDY, file="x.dcm").values
    assert again["StudyInstanceUID"] != values["StudyInstanceUID"]


@pytest.mark.parametrize("patient, study, words", [
    ({"PatientBirthDate": "2024-02-30"}, None, ["(0010,0030) Patient's Birth Date", "not a date"]),
    ({"PatientSex": "X"}, None, ["(0010,0040) Patient's Sex", "M, F or O"]),
    ({"PatientName": "A" * 65}, None, ["(0010,0010) Patient's Name", "64"]),
    ({"PatientID": "a\\b"}, None, ["(0010,0020) Patient ID", "backslash"]),
    ({"PatientName": "Doe^J\x06"}, None, ["(0010,0010) Patient's Name", "control character 0x06"]),
    (None, {"StudyTime": "25:00"}, ["(0008,0030) Study Time", "not a time"]),
    (None, {"StudyDate": "30040826"}, ["(0008,0020) Study Date", "1000–2999"]),
    (None, {"StudyInstanceUID": "102.840.1"}, ["(0020,000D) Study Instance UID", "not a valid UID"]),
    (None, {"StudyInstanceUID": "1.2.03"}, ["(0020,000D) Study Instance UID"]),
    (None, {"AccessionNumber": "12345678901234567"}, ["(0008,0050) Accession Number", "16"]),
    ({"PatientAge": "40Y"}, None, ["'PatientAge' is not one of the attributes"]),
    ("Doe^John", None, ["mapping of DICOM keywords"]),
])
def test_invalid_typed_in_values_are_refused_naming_the_element(patient, study, words):
    with pytest.raises(EditError) as caught:
        base.PatientStudy(patient, study, file="new.dcm")
    assert caught.value.file == "new.dcm"
    for word in words:
        assert word in caught.value.message


def test_patient_study_from_a_loaded_file_copies_its_patient_and_study():
    result = patient_study_from(str(bundled("CT_small.dcm")), "ct.dcm")
    assert result["patient"]["PatientName"] == "CompressedSamples^CT1"
    assert result["patient"]["PatientID"] == "1CT1"
    assert result["study"]["StudyInstanceUID"] == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert result["study"]["StudyDate"] == "20040119"
    assert set(result["patient"]) == set(base.PATIENT_KEYWORDS)
    assert set(result["study"]) == set(base.STUDY_KEYWORDS)
    # What it returns is accepted as it is by every builder.
    base.PatientStudy(result["patient"], result["study"], file="x.dcm")


def test_patient_study_from_a_non_dicom_file_says_so(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n" * 20)
    with pytest.raises(NotDicomError) as caught:
        patient_study_from(str(text))
    assert caught.value.file == "notes.txt"


def test_patient_study_from_a_truncated_file_is_invalid_dicom(tmp_path):
    data = bundled("CT_small.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:700])
    with pytest.raises(InvalidDicomError):
        patient_study_from(str(cut))


def test_series_options_refuse_unknown_names_and_bad_numbers():
    with pytest.raises(EditError, match="Unknown option"):
        base.SeriesOptions({"SeriesColour": "red"}, file="x.dcm")
    with pytest.raises(EditError, match=r"\(0020,0011\) Series Number 'two'"):
        base.SeriesOptions({"SeriesNumber": "two"}, file="x.dcm")
    options = base.SeriesOptions({"SeriesNumber": "7"}, file="x.dcm")
    assert options.series_number == 7 and options.series_uid.startswith("2.25.")


@pytest.mark.parametrize("center, width, words", [
    ("a", 10, "must be numbers"), (40, 0.5, "at least 1"), (float("nan"), 10, "finite"),
])
def test_window_values_are_checked(center, width, words):
    with pytest.raises(EditError, match=words):
        base.checked_window(center, width, "x.dcm")

"""Encapsulated PDF: the PDF comes back byte for byte, non-PDFs are refused."""

import os

import pydicom
import pytest
from test_create_judges import PATIENT, STUDY, make_pdf

from dcmstudio.create import create_encapsulated_pdf
from dcmstudio.errors import DicomStudioError, EditError


@pytest.fixture
def pdf(tmp_path):
    pytest.importorskip("PIL")
    return make_pdf(tmp_path / "Befund Müller.pdf")


def test_pdf_comes_back_byte_for_byte(tmp_path, pdf):
    report = create_encapsulated_pdf(pdf, str(tmp_path / "o.dcm"), PATIENT, STUDY)
    ds = pydicom.dcmread(report["path"])
    original = open(pdf, "rb").read()
    assert ds.SOPClassUID == pydicom.uid.EncapsulatedPDFStorage
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.EncapsulatedDocumentLength == len(original) == report["document_bytes"]
    assert ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength] == original
    assert ds.DocumentTitle == "Befund Müller" == report["document_title"]
    assert (ds.Modality, ds.BurnedInAnnotation) == ("DOC", "YES")


def test_odd_length_pdf_is_padded_and_its_true_length_kept(tmp_path, pdf):
    data = open(pdf, "rb").read()
    odd = tmp_path / "odd.pdf"
    odd.write_bytes(data if len(data) % 2 else data + b"\n")
    report = create_encapsulated_pdf(str(odd), str(tmp_path / "o.dcm"),
                                     options={"DocumentTitle": "Übersicht",
                                              "BurnedInAnnotation": "no"})
    ds = pydicom.dcmread(report["path"])
    assert os.path.getsize(odd) % 2 == 1
    assert len(ds.EncapsulatedDocument) == os.path.getsize(odd) + 1
    assert ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength] == odd.read_bytes()
    assert (ds.DocumentTitle, ds.BurnedInAnnotation) == ("Übersicht", "NO")


def test_a_pdf_without_its_end_marker_is_kept_with_a_note(tmp_path, pdf):
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(open(pdf, "rb").read()[:-200])
    report = create_encapsulated_pdf(str(cut), str(tmp_path / "o.dcm"))
    assert any("truncated" in note for note in report["notes"])


def test_a_file_that_is_not_a_pdf_is_refused_by_name(tmp_path):
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"<html>not a pdf</html>")
    with pytest.raises(DicomStudioError, match="not a PDF") as caught:
        create_encapsulated_pdf(str(fake), str(tmp_path / "o.dcm"), pdf_name="scan.pdf")
    assert caught.value.file == "scan.pdf"
    assert not os.path.exists(tmp_path / "o.dcm")


def test_invalid_document_options_are_refused(tmp_path, pdf):
    with pytest.raises(EditError, match="BurnedInAnnotation"):
        create_encapsulated_pdf(pdf, str(tmp_path / "o.dcm"), options={"BurnedInAnnotation": "perhaps"})
    with pytest.raises(EditError, match=r"\(0042,0010\) Document Title"):
        create_encapsulated_pdf(pdf, str(tmp_path / "o.dcm"), options={"DocumentTitle": "x" * 2000})

"""A person creates DICOM objects in Chromium: a Secondary Capture and a multi-frame SC from
pictures, an Encapsulated PDF, a TID 1500 measurement report and a presentation state. Each
download is judged in CPython by pydicom, dciodvfy (0 errors) and, for the SR, dsrdump."""

import shutil
import subprocess
import time

import numpy as np
import pydicom
import pytest

from conftest import ARTIFACTS, open_files
from test_page_inspect import CT, assert_same_origin_only, wait_for_files

PIL = pytest.importorskip("PIL.Image")


def picture(rows, columns, seed, channels=3):
    rng = np.random.default_rng(seed)
    shape = (rows, columns, channels) if channels else (rows, columns)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def minimal_pdf():
    """A one-page PDF written by hand, with a correct cross-reference table."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R >>"]
    stream = b"BT /F1 12 Tf 20 50 Td (dcmstudio) Tj ET"
    objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def dciodvfy_errors(path):
    if not shutil.which("dciodvfy"):
        return []
    result = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def click_and_download(page, button, tmp_path, then):
    """Click `button`, save the download it starts under its own name, wait for `then` to show."""
    with page.expect_download(timeout=60000) as download_info:
        page.click(button)
    download = download_info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    page.wait_for_selector(then)
    return path


def create_and_download(page, tmp_path):
    return click_and_download(page, "#create-run", tmp_path, "#create-result h2")


def choose_kind(page, kind):
    page.click("#tab-create")
    page.check(f"#create-kind-{kind}")


def select_only(page, name):
    """Make one loaded file the selection at left."""
    page.locator(".file-tree .row.instance", has_text=name).first.click()


def wait_for_copied_patient(page):
    deadline = time.time() + 30
    while time.time() < deadline and "joins study" not in page.inner_text("#create-ps-note"):
        time.sleep(0.1)
    assert "joins study" in page.inner_text("#create-ps-note"), page.inner_text("#create-ps-note")


def finish(page, server):
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_secondary_capture_and_multiframe_from_pictures(page, server, tmp_path):
    open_files(page, [CT])
    wait_for_files(page, 1)
    ct = pydicom.dcmread(CT, stop_before_pixels=True)
    png_pixels = picture(30, 40, seed=1)
    png = tmp_path / "photo.png"
    PIL.fromarray(png_pixels).save(png)

    choose_kind(page, "sc")
    wait_for_copied_patient(page)
    page.set_input_files("#create-sc-file", str(png))
    assert "photo.png" in page.inner_text("#create-sc-chosen")
    page.fill("#create-opt-SeriesDescription", "Clinical photo")
    path = create_and_download(page, tmp_path)
    assert path.name == "photo_SC.dcm"
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert ds.StudyInstanceUID == ct.StudyInstanceUID and ds.PatientID == ct.PatientID
    assert ds.SeriesDescription == "Clinical photo"
    assert np.array_equal(ds.pixel_array, png_pixels)
    assert not dciodvfy_errors(path)
    assert "Secondary Capture Image Storage" in page.inner_text("#create-result")

    # Three frames, picked out of order: they go in by name; a JPEG among them.
    frames = [picture(24, 32, seed=s) for s in range(3)]
    names = ["frame_10.png", "frame_2.jpg", "frame_1.png"]
    for frame, name in zip(frames, names):
        PIL.fromarray(frame).save(tmp_path / name, quality=95)
    choose_kind(page, "multiframe")
    page.set_input_files("#create-multiframe-file", [str(tmp_path / n) for n in names])
    listed = page.locator("#create-multiframe-chosen li").all_inner_texts()
    assert [t.split(" ")[0] for t in listed] == ["frame_1.png", "frame_2.jpg", "frame_10.png"]
    path = create_and_download(page, tmp_path)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.MultiFrameTrueColorSecondaryCaptureImageStorage
    assert ds.NumberOfFrames == 3
    assert np.array_equal(ds.pixel_array[0], frames[2]) and np.array_equal(ds.pixel_array[2], frames[0])
    assert ds.LossyImageCompression == "01"  # a JPEG was among the frames
    assert not dciodvfy_errors(path)
    finish(page, server)


def test_encapsulated_pdf_with_a_typed_in_patient(page, server, tmp_path):
    pdf = tmp_path / "discharge letter.pdf"
    pdf.write_bytes(minimal_pdf())
    choose_kind(page, "pdf")
    assert page.is_checked("#create-ps-type") and page.is_disabled("#create-ps-copy")
    page.set_input_files("#create-pdf-file", str(pdf))
    page.fill("#create-PatientName", "Łukasiewicz^Zoë")
    page.fill("#create-PatientID", "P-77")
    page.fill("#create-PatientBirthDate", "1961-04-12")
    page.select_option("#create-PatientSex", "F")
    page.fill("#create-StudyDescription", "Lettres")
    page.fill("#create-opt-DocumentTitle", "Discharge letter")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "create-pdf-form.png"))
    path = create_and_download(page, tmp_path)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.EncapsulatedPDFStorage
    assert str(ds.PatientName) == "Łukasiewicz^Zoë" and ds.PatientBirthDate == "19610412"
    assert ds.PatientSex == "F" and ds.DocumentTitle == "Discharge letter"
    document = ds.EncapsulatedDocument
    assert document[: ds.EncapsulatedDocumentLength] == pdf.read_bytes()
    assert not dciodvfy_errors(path)
    finish(page, server)


def test_measurement_report_from_the_form(page, server, tmp_path):
    open_files(page, [CT])
    wait_for_files(page, 1)
    ct = pydicom.dcmread(CT, stop_before_pixels=True)
    choose_kind(page, "sr")
    page.wait_for_selector("#create-sr-g1-m1-name")
    wait_for_copied_patient(page)
    page.fill("#create-sr-observer", "Doe^Jane")
    page.fill("#create-sr-organization", "Hôpital Nord")
    page.select_option("#create-sr-procedure", "LN.CTUnspecifiedBodyRegion")
    page.fill("#create-sr-g1-tracking", "nodule A")
    page.select_option("#create-sr-g1-finding", "SCT.Nodule")
    page.fill("#create-sr-g1-m1-value", "12.5")
    page.click("text=Add measurement")
    page.select_option("#create-sr-g1-m2-name", "SCT.Volume")
    page.fill("#create-sr-g1-m2-value", "1023.75")
    unit = page.eval_on_selector("#create-sr-g1-m2-unit", "s => [...s.options].find(o => o.textContent.startsWith('mm3')).value")
    page.select_option("#create-sr-g1-m2-unit", unit)
    page.click("#create-sr-add-group")
    # The second group's value is left empty: refused with a sentence naming it.

    page.click("#create-run")
    page.wait_for_selector("#create-error:not(:empty)")
    message = page.inner_text("#create-error")
    assert "measurement group 2, measurement 1" in message, message
    page.fill("#create-sr-g2-m1-value", "7")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "create-sr-form.png"), full_page=True)

    path = create_and_download(page, tmp_path)
    assert page.inner_text("#create-error") == ""
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert ds.StudyInstanceUID == ct.StudyInstanceUID and str(ds.PatientName) == str(ct.PatientName)
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID

    def numbers(item):
        for child in item.get("ContentSequence", []):
            if child.ValueType == "NUM":
                yield float(child.MeasuredValueSequence[0].NumericValue)
            yield from numbers(child)
    assert sorted(numbers(ds)) == [7.0, 12.5, 1023.75]
    assert "3 measurements" in page.inner_text("#create-result")

    if shutil.which("dsrdump"):
        result = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "nodule A" in result.stdout
    assert not dciodvfy_errors(path)
    finish(page, server)


def test_presentation_state_for_the_selected_image(page, server, tmp_path):
    open_files(page, [CT])
    wait_for_files(page, 1)
    select_only(page, "CT_small")
    ct = pydicom.dcmread(CT, stop_before_pixels=True)
    choose_kind(page, "gsps")
    page.wait_for_selector("#create-gsps-info:has-text('window')")
    assert page.input_value("#create-gsps-width") != ""  # started from the image's own window
    page.fill("#create-gsps-text", "Compare with prior")
    page.fill("#create-gsps-center", "40")
    page.fill("#create-gsps-width", "400")
    page.fill("#create-gsps-explanation", "soft tissue")
    path = create_and_download(page, tmp_path)
    assert path.name == "CT_small_GSPS.dcm"
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.GrayscaleSoftcopyPresentationStateStorage
    assert ds.StudyInstanceUID == ct.StudyInstanceUID
    reference = ds.ReferencedSeriesSequence[0]
    assert reference.SeriesInstanceUID == ct.SeriesInstanceUID
    assert reference.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID
    assert ds.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == "Compare with prior"
    voi = ds.SoftcopyVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (40.0, 400.0)
    assert voi.WindowCenterWidthExplanation == "soft tissue"
    assert not dciodvfy_errors(path)
    finish(page, server)


def test_a_file_that_is_not_a_pdf_is_refused_with_a_sentence(page, server, tmp_path):
    fake = tmp_path / "scan.pdf"
    fake.write_bytes(b"<html>not a pdf</html>")
    choose_kind(page, "pdf")
    page.click("#create-run")
    page.wait_for_selector("#create-error:not(:empty)")
    assert "Choose a PDF" in page.inner_text("#create-error")
    page.set_input_files("#create-pdf-file", str(fake))
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    page.click("#create-run")
    page.wait_for_selector("#create-error:has-text('scan.pdf')")
    message = page.inner_text("#create-error")
    assert "is not a PDF" in message and len(message) > 30, message
    time.sleep(0.5)
    assert not downloads
    assert page.get_attribute("#create-error", "role") == "alert"
    finish(page, server)

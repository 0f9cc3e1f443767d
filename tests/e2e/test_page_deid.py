"""De-identify a series in Chromium with a secret; judge the ZIP with pydicom; same secret, same bytes."""

import io
import zipfile

import pydicom

from conftest import ARTIFACTS, open_files
from test_page_edit import SERIES_SIZE, make_series
from test_page_inspect import assert_same_origin_only, wait_for_files


def run_deid(page, tmp_path, label):
    with page.expect_download(timeout=60000) as download_info:
        page.click("#deid-run")
    path = tmp_path / f"{label}.zip"
    download_info.value.save_as(path)
    page.wait_for_selector("#deid-report h2")
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_deidentify_series_consistently_and_reproducibly(page, server, tmp_path):
    paths = make_series(tmp_path)
    originals = [pydicom.dcmread(p) for p in paths]
    open_files(page, paths)
    wait_for_files(page, SERIES_SIZE)
    page.locator(".file-tree .row.series").first.click()
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    assert "2026c" in page.inner_text("#deid-edition")
    page.fill("#deid-secret", "correct horse battery staple")
    page.check("#deid-dates-1")  # shift dates by a per-patient offset

    page.click("#deid-preview")
    page.wait_for_selector("#deid-report table.changes")
    preview = page.inner_text("#deid-report")
    assert "null" not in preview and "(removed)" in preview  # old → new, no stray null
    # each change says what it does (dcmstudio.deid.actions) and what decided it
    assert "removed (basic)" in preview
    assert "shifted by the patient's date offset; a time stays (retain_long_modified_dates)" in preview
    pseudonym = page.inner_text("#deid-report h2").split("→")[1].strip().split("/")[0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "deid-preview.png"))

    first = run_deid(page, tmp_path, "first")
    assert len(first) == SERIES_SIZE
    # every download offered, folded ones included (the bar shows the newest few)
    tasks = " ".join(page.eval_on_selector_all("#tasks a.download", "links => links.map((a) => a.textContent)"))
    assert "IDENTIFYING-deid-mapping.csv" in tasks and "IDENTIFYING-uid_mapping.csv" in tasks
    assert "IDENTIFYING-patient_id_mapping.csv" in tasks and "IDENTIFYING-deidentified_report.jsonl" in tasks
    assert "none of the original identifying values is left" in page.inner_text("#deid-report")

    new_uid_of = {}
    for data in first.values():
        ds = pydicom.dcmread(io.BytesIO(data))
        assert b"CompressedSamples" not in data
        assert ds.PatientIdentityRemoved == "YES"
        codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        assert {"113100", "113107"} <= codes
        assert ds.SOPInstanceUID not in {o.SOPInstanceUID for o in originals}
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        new_uid_of[int(ds.InstanceNumber)] = ds.SOPInstanceUID
    # References follow: each file refers to the new UID of the one before it.
    for data in first.values():
        ds = pydicom.dcmread(io.BytesIO(data))
        if "ReferencedImageSequence" in ds:
            assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_uid_of[int(ds.InstanceNumber) - 1]
    assert {pydicom.dcmread(io.BytesIO(d)).PatientID for d in first.values()} == {pseudonym}  # the preview's

    second = run_deid(page, tmp_path, "second")
    assert second == first, "the same secret must give identical bytes"
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_a_run_with_residual_hits_waits_for_the_persons_choice(page, server, tmp_path):
    paths = make_series(tmp_path)[:2]
    leaky = pydicom.dcmread(paths[1])
    family = str(leaky.PatientName).split("^")[0]
    leaky.Manufacturer = f"{family} Imaging"  # kept by the table: the scan must catch it
    leaky.save_as(paths[1], enforce_file_format=True)
    open_files(page, paths)
    wait_for_files(page, 2)
    page.locator(".file-tree .row.series").first.click()
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    page.click("#deid-run")
    page.wait_for_selector("#deid-choice")
    report = page.inner_text("#deid-report")
    assert "was not offered" in report and "Manufacturer" in report and family in report
    assert not downloads  # nothing offered before the choice
    with page.expect_download(timeout=60000) as download_info:
        page.click("#deid-keep-anyway")
    assert download_info.value.suggested_filename == "deidentified.zip"
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_the_profile_is_described_and_a_pixel_mask_can_be_added_from_the_keyboard(page, server, tmp_path):
    paths = make_series(tmp_path)
    open_files(page, paths[:1])
    wait_for_files(page, 1)
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    # what the profile does comes first; where its table comes from only on request
    edition = page.inner_text("#deid-edition")
    assert edition.startswith("Basic Application Confidentiality Profile") and ".whl" not in edition.split("\n")[0]
    page.check("#deid-clean-pixels")
    page.wait_for_selector("#deid-mask-form")
    page.focus("#deid-mask-x")
    for key, value in (("x", "2"), ("y", "3"), ("width", "20"), ("height", "10")):
        if key != "x":
            page.keyboard.press("Tab")
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    assert page.inner_text(".deid-mask-list").strip().startswith("x 2, y 3, 20 × 10 px")
    outputs = run_deid(page, tmp_path, "masked")
    [data] = outputs.values()
    pixels = pydicom.dcmread(io.BytesIO(data)).pixel_array
    source = pydicom.dcmread(paths[0]).pixel_array
    masked = pixels[3:13, 2:22]
    assert (masked == masked.flat[0]).all() and not (source[3:13, 2:22] == masked.flat[0]).all()  # one black
    assert (pixels[20:, 30:] == source[20:, 30:]).all()

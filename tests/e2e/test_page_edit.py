"""A person edits a whole series in Chromium and downloads it as a ZIP; CPython judges the result."""

import io
import json
import shutil
import subprocess
import zipfile

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from conftest import ARTIFACTS, open_files
from test_page_inspect import CT, assert_same_origin_only, wait_for_files

SERIES_SIZE = 5


def make_series(folder):
    """Five CT files of one series; each refers to the one before (to prove UID remapping follows)."""
    base = pydicom.dcmread(CT)
    # 128 KB of pixels: large enough to reach the ZIP as slices of the opened files
    base.Rows = base.Columns = 256
    base.PixelData = bytes(range(256)) * 512
    # no Data Set Trailing Padding: the pixel data ends each file, so a folder save reads only
    # the heads, as for most real series
    del base[0xFFFCFFFC]
    series_uid = pydicom.uid.generate_uid()
    uids = [pydicom.uid.generate_uid() for _ in range(SERIES_SIZE)]
    paths = []
    for i, uid in enumerate(uids):
        ds = base.copy()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = i + 1
        request = Dataset()
        request.RequestedProcedureID = "RP-OLD"
        request.ScheduledProcedureStepID = f"SPS{i}"
        ds.RequestAttributesSequence = Sequence([request])
        if i:
            ref = Dataset()
            ref.ReferencedSOPClassUID = ds.SOPClassUID
            ref.ReferencedSOPInstanceUID = uids[i - 1]
            ds.ReferencedImageSequence = Sequence([ref])
        path = folder / f"ct_{i + 1:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_edit_series_and_download_zip(page, server, tmp_path):
    paths = make_series(tmp_path)
    open_files(page, paths)
    wait_for_files(page, SERIES_SIZE)
    page.locator(".file-tree .row.series").first.click()
    page.click("#tab-edit")
    # A series selected: the scope is the series, and the page says how many files Apply writes.
    assert page.is_checked("#edit-scope-all")
    assert page.inner_text("#edit-scope-summary") == f"Apply writes {SERIES_SIZE} edited files, saved as a ZIP download."
    page.locator(".file-tree .row.instance").first.click()
    assert page.is_checked("#edit-scope-file")
    assert page.inner_text("#edit-scope-summary") == f"Apply writes 1 edited file: {paths[0].name}."
    page.locator(".file-tree .row.series").first.click()
    assert page.is_checked("#edit-scope-all")

    for op, path, value in [("set", "PatientName", "DOE^JANE"),
                            ("set", "RequestAttributesSequence[0].RequestedProcedureID", "RP-42"),
                            ("set", "StudyDescription", "A much longer study description {index:03d}"),
                            ("delete", "(0009,1002)", None)]:
        page.select_option("#edit-op", op)
        page.fill("#edit-path", path)
        if value is not None:
            page.fill("#edit-value", value)
        page.click("#edit-add")
    page.click("#edit-remap")
    page.wait_for_selector("#edit-pending li:nth-child(5)")
    assert "Pending changes (5)" in page.inner_text(".pending-head")

    page.click("#edit-preview")
    page.wait_for_selector("#edit-report table.changes")
    assert "RP-42" in page.inner_text("#edit-report")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "edit-preview.png"))

    with page.expect_download(timeout=60000) as download_info:
        page.click("#edit-apply")
    download = download_info.value
    assert download.suggested_filename.endswith(".zip")
    zip_path = tmp_path / "edited.zip"
    download.save_as(zip_path)

    with zipfile.ZipFile(zip_path) as z:
        assert z.testzip() is None
        names = sorted(z.namelist())
        assert names == [p.name for p in paths]
        edited = {n: z.read(n) for n in names}

    new_uids = {}
    for i, path in enumerate(paths):
        original = pydicom.dcmread(path)
        ds = pydicom.dcmread(io.BytesIO(edited[path.name]))
        assert ds.PatientName == "DOE^JANE"
        assert ds.RequestAttributesSequence[0].RequestedProcedureID == "RP-42"
        assert ds.RequestAttributesSequence[0].ScheduledProcedureStepID == f"SPS{i}"
        assert ds.StudyDescription == f"A much longer study description {i + 1:03d}"
        assert (0x0009, 0x1002) not in ds
        assert ds.SOPInstanceUID != original.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.PixelData == original.PixelData
        new_uids[original.SOPInstanceUID] = ds.SOPInstanceUID
        if i:
            previous = pydicom.dcmread(paths[i - 1]).SOPInstanceUID
            assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_uids[previous]
    assert len(set(new_uids.values())) == SERIES_SIZE

    if shutil.which("dcmdump"):
        out = tmp_path / "out"
        out.mkdir()
        for name, data in edited.items():
            (out / name).write_bytes(data)
            result = subprocess.run(["dcmdump", "-q", str(out / name)], capture_output=True, text=True)
            assert result.returncode == 0 and "E:" not in result.stderr, result.stderr

    assert "Edited 5 files" in page.inner_text("#tasks")
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_edit_list_round_trip_and_clear_errors(page, server, tmp_path):
    open_files(page, [CT])
    wait_for_files(page, 1)
    page.click("#tab-edit")
    # A value that its VR cannot hold is refused with a sentence, before anything runs.
    page.select_option("#edit-op", "set")
    page.fill("#edit-path", "NoSuchKeyword")
    page.fill("#edit-value", "x")
    page.click("#edit-add")
    page.wait_for_selector(".edit-form + .error:not(:empty)")
    assert "NoSuchKeyword" in page.inner_text(".edit-form + .error")

    page.fill("#edit-path", "PatientID")
    page.fill("#edit-value", "ID-{index:04d}")
    page.click("#edit-add")
    page.wait_for_selector("#edit-pending li .op-set")
    with page.expect_download() as download_info:
        page.click("#edit-export-json")
    saved = tmp_path / "edits.json"
    download_info.value.save_as(saved)
    assert json.loads(saved.read_text())["edits"] == [{"op": "set", "path": "PatientID", "value": "ID-{index:04d}"}]

    with page.expect_download() as download_info:
        page.click("#edit-export-script")
    script = tmp_path / "apply_edits.py"
    download_info.value.save_as(script)
    assert "pydicom" in script.read_text()
    compile(script.read_text(), "apply_edits.py", "exec")

    page.click("text=Clear")
    page.set_input_files("#edit-load", str(saved))
    page.wait_for_selector("#edit-pending li .op-set")
    assert "ID-{index:04d}" in page.inner_text("#edit-pending")
    assert_same_origin_only(page, server)


def test_an_edit_that_breaks_the_iod_is_listed_per_file(page, server, tmp_path):
    """Deleting Type 1 Modality from a series: every output is still written, and the page lists
    each file with the error it gained (issue 16), in the report and the task's message."""
    paths = make_series(tmp_path)
    open_files(page, paths)
    wait_for_files(page, SERIES_SIZE)
    page.locator(".file-tree .row.series").first.click()
    page.click("#tab-edit")
    page.select_option("#edit-op", "delete")
    page.fill("#edit-path", "Modality")
    page.click("#edit-add")
    page.wait_for_selector("#edit-pending li:nth-child(1)")
    with page.expect_download(timeout=60000) as download_info:
        page.click("#edit-apply")
    zip_path = tmp_path / "edited.zip"
    download_info.value.save_as(zip_path)
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == [p.name for p in paths]
    page.wait_for_selector("#edit-report .new-errors")
    lines = page.locator("#edit-report .new-errors li").all_inner_texts()
    assert [line.split(":")[0] for line in lines] == [p.name for p in paths]
    assert all("Modality (type1-missing)" in line for line in lines)
    assert f"{SERIES_SIZE} gained a validation error" in page.inner_text("#tasks")
    assert not page.page_errors

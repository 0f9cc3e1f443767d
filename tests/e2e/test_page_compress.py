"""A person compresses and decompresses loaded files in Chromium: RLE Lossless and Deflated round
trips are pixel-identical (pydicom decodes both), dcmdump parses every output, a file that cannot
be compressed is reported while the others go on, and a long job can be cancelled."""

import io
import shutil
import subprocess
import time
import zipfile

import numpy as np
import pydicom

from conftest import ARTIFACTS, open_files
from test_page_create import click_and_download
from test_page_inspect import CT, MR, TEST_FILES, assert_same_origin_only, wait_for_files

MR_RLE = TEST_FILES / "MR_small_RLE.dcm"
RTPLAN = TEST_FILES / "rtplan.dcm"


def choose_target(page, uid):
    page.click("#tab-compress")
    page.wait_for_selector("#compress-targets input")
    page.check(f"#compress-targets input[value='{uid}']")


def download(page, tmp_path):
    return click_and_download(page, "#compress-run", tmp_path, "#compress-summary")


def dcmdump_parses(path):
    if not shutil.which("dcmdump"):
        return
    result = subprocess.run(["dcmdump", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and "PixelData" in result.stdout, result.stdout + result.stderr


def same_pixels(data, source):
    written = pydicom.dcmread(io.BytesIO(data))
    assert np.array_equal(written.pixel_array, pydicom.dcmread(source).pixel_array)
    return written


def test_rle_and_deflate_round_trips_of_the_selection(page, server, tmp_path):
    open_files(page, [CT, MR, RTPLAN])
    wait_for_files(page, 3)
    choose_target(page, pydicom.uid.RLELossless)
    assert "3 files" in page.inner_text("#compress-scope")
    assert "(ZIP)" in page.inner_text("#compress-run")
    zip_path = download(page, tmp_path)
    assert zip_path.name == "dcmstudio_rle.zip"
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["CT_small.dcm", "MR_small.dcm"]
        for name, source in [("CT_small.dcm", CT), ("MR_small.dcm", MR)]:
            written = same_pixels(z.read(name), source)
            assert written.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
            assert written.SOPInstanceUID == pydicom.dcmread(source).SOPInstanceUID
            (tmp_path / f"rle_{name}").write_bytes(z.read(name))
            dcmdump_parses(tmp_path / f"rle_{name}")
    report = page.inner_text("#compress-report")
    assert "rtplan.dcm" in report and "Pixel Data" in report  # reported, not silently dropped
    assert "2 of 2 checked pixel-identical; 1 not written" in page.inner_text("#compress-summary")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compress-report.png"))

    # One file selected: it downloads as itself, deflated.
    page.locator(".file-tree .row.instance", has_text="CT_small").first.click()
    choose_target(page, pydicom.uid.DeflatedExplicitVRLittleEndian)
    assert "CT_small.dcm as Deflated" in page.inner_text("#compress-run")
    path = download(page, tmp_path)
    assert path.name == "CT_small_deflated.dcm"
    written = same_pixels(path.read_bytes(), CT)
    assert written.file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian
    dcmdump_parses(path)
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_decompress_an_rle_file(page, server, tmp_path):
    open_files(page, [MR_RLE])
    wait_for_files(page, 1)
    choose_target(page, pydicom.uid.ExplicitVRLittleEndian)
    path = download(page, tmp_path)
    assert path.name == "MR_small_RLE_uncompressed.dcm"
    written = same_pixels(path.read_bytes(), MR_RLE)
    assert written.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert "RLE Lossless → Explicit VR Little Endian" in page.inner_text("#compress-report")
    dcmdump_parses(path)
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_a_long_job_can_be_cancelled_and_offers_nothing(page, server, tmp_path):
    copies = []
    for i in range(60):
        path = tmp_path / f"ct_{i:03d}.dcm"
        shutil.copy(CT, path)
        copies.append(path)
    open_files(page, copies)
    wait_for_files(page, 60)
    choose_target(page, pydicom.uid.RLELossless)
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    page.click("#compress-run")
    # the compress task's own Cancel (the opening task may still be finishing)
    page.locator(".task.running:has-text('Writing') button", has_text="Cancel").click()
    page.wait_for_selector(".task.failed:has-text('cancelled')", timeout=60000)
    time.sleep(0.5)
    assert not downloads
    assert not page.is_disabled("#compress-run")
    assert not page.page_errors
    assert_same_origin_only(page, server)

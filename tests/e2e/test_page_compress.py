"""A person compresses and decompresses loaded files in Chromium: RLE Lossless and Deflated round
trips are pixel-identical (pydicom decodes both), dcmdump parses every output, a file that cannot
be compressed is reported while the others go on, and a long job can be cancelled."""

import io
import re
import shutil
import subprocess
import time
import zipfile

import numpy as np
import pydicom
import pytest

from conftest import ARTIFACTS, open_files
from test_page_create import click_and_download
from test_page_inspect import CT, MR, TEST_FILES, assert_same_origin_only, wait_for_files
from test_page_io import read_zip

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


# --- lossy ----------------------------------------------------------------------------------------

IMAGE_8BIT = TEST_FILES / "image_dfl.dcm"  # 8-bit grey, deflated


def reported_rows(page):
    """The report table as {file: [cells...]}."""
    rows = page.locator("#compress-report tbody tr")
    return {rows.nth(i).locator("td").first.inner_text(): rows.nth(i).locator("td").all_inner_texts()
            for i in range(rows.count())}


def measured(check_cell):
    """(ratio, PSNR, largest error) as the report cell 'ratio 10.4:1 · PSNR 79.5 dB · largest error 37' says."""
    match = re.search(r"ratio ([\d.]+):1 · PSNR ([\d.]+) dB · largest error (\d+)", check_cell)
    assert match, check_cell
    return float(match[1]), float(match[2]), int(match[3])


def psnr_and_largest_error(written, source):
    """PSNR against 2**BitsStored - 1, and the largest absolute error, from pydicom's own decoders."""
    original = pydicom.dcmread(source)
    difference = written.pixel_array.astype(np.float64) - original.pixel_array.astype(np.float64)
    mse = float(np.mean(np.square(difference)))
    return 10 * np.log10((2 ** original.BitsStored - 1) ** 2 / mse), int(np.abs(difference).max())


def screenshot_report(page, name):
    """The whole workbench with its report in view (the run button left it scrolled down)."""
    page.eval_on_selector(".compress-layout", "layout => { layout.scrollTop = 0; }")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def choose_lossy(page, uid, setting):
    page.click("#tab-compress")
    page.wait_for_selector("#compress-lossy-targets input")
    # lossless is the default, and nothing lossy shows until it is chosen
    assert page.is_checked("#compress-targets input[value='1.2.840.10008.1.2.5']")
    assert not page.is_visible("#compress-lossy-controls")
    page.check(f"#compress-lossy-targets input[value='{uid}']")
    assert page.is_visible("#compress-setting")
    assert page.is_checked("#compress-verify") and page.is_disabled("#compress-verify")  # always measured
    page.fill("#compress-setting", str(setting))
    assert page.is_disabled("#compress-run")  # not before the person confirms that pixels change
    page.check("#compress-lossy-confirm")
    assert not page.is_disabled("#compress-run")


def no_new_dciodvfy_errors(output, source, tmp_path):
    if not shutil.which("dciodvfy"):
        return
    errors = []
    for path in (source, output):
        if pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == \
                pydicom.uid.DeflatedExplicitVRLittleEndian:  # dciodvfy does not read deflate
            inflated = tmp_path / f"inflated_{path.name}"
            subprocess.run(["dcmconv", "+te", str(path), str(inflated)], check=True)
            path = inflated
        result = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
        errors.append({line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")})
    assert errors[1] <= errors[0], errors[1] - errors[0]


def test_lossy_jpeg_2000_is_chosen_explicitly_measured_and_references_follow(page, server, tmp_path):
    from dcmstudio.create.pr import create_gsps
    gsps = tmp_path / "ct_gsps.dcm"
    made = create_gsps(str(CT), str(gsps), "lesion", 40, 400)
    open_files(page, [CT, MR, gsps])
    wait_for_files(page, 3)
    choose_lossy(page, pydicom.uid.JPEG2000, 10)
    assert "(lossy, 10:1) (ZIP)" in page.inner_text("#compress-run")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compress-lossy-choice.png"))
    zip_path = download(page, tmp_path)
    assert zip_path.name == "dcmstudio_j2k_lossy.zip"
    rows = reported_rows(page)
    screenshot_report(page, "compress-lossy-report.png")
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["CT_small.dcm", "MR_small.dcm", "ct_gsps.dcm"]
        z.extractall(tmp_path / "out")
    new_uids = {}
    for name, source in [("CT_small.dcm", CT), ("MR_small.dcm", MR)]:
        path = tmp_path / "out" / name
        written = pydicom.dcmread(path)  # decoded by pydicom with pylibjpeg-openjpeg
        original = pydicom.dcmread(source)
        assert written.file_meta.TransferSyntaxUID == pydicom.uid.JPEG2000
        assert written.LossyImageCompression == "01" and written.LossyImageCompressionMethod == "ISO_15444_1"
        assert written.SOPInstanceUID != original.SOPInstanceUID
        assert written.SourceImageSequence[-1].ReferencedSOPInstanceUID == original.SOPInstanceUID
        new_uids[original.SOPInstanceUID] = written.SOPInstanceUID
        ratio, psnr, largest = measured(rows[name][4])
        assert float(written.LossyImageCompressionRatio) == pytest.approx(ratio, rel=0.01)
        assert ratio == pytest.approx(10, rel=0.15)
        expected_psnr, expected_largest = psnr_and_largest_error(written, source)
        assert psnr == pytest.approx(expected_psnr, abs=0.06) and largest == expected_largest
        dcmdump_parses(path)
        no_new_dciodvfy_errors(path, source, tmp_path)
    pr = pydicom.dcmread(tmp_path / "out" / "ct_gsps.dcm")
    referenced = pr.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert referenced == new_uids[pydicom.dcmread(CT).SOPInstanceUID]
    assert pr.SOPInstanceUID != made["sop_instance_uid"]
    assert "1 reference to recompressed files followed" in rows["ct_gsps.dcm"][5]
    assert rows["ct_gsps.dcm"][1] == "Explicit VR Little Endian → Explicit VR Little Endian"
    no_new_dciodvfy_errors(tmp_path / "out" / "ct_gsps.dcm", gsps, tmp_path)
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_lossy_jpeg_baseline_for_8_bit_data_and_a_sentence_for_the_rest(page, server, tmp_path):
    open_files(page, [IMAGE_8BIT, CT])
    wait_for_files(page, 2)
    choose_lossy(page, pydicom.uid.JPEGBaseline8Bit, 80)
    zip_path = download(page, tmp_path)
    rows = reported_rows(page)
    assert "JPEG Baseline holds 8-bit samples only" in rows["CT_small.dcm"][1]
    with zipfile.ZipFile(zip_path) as z:
        assert z.namelist() == ["image_dfl.dcm"]
        (tmp_path / "jpeg.dcm").write_bytes(z.read("image_dfl.dcm"))
    written = pydicom.dcmread(tmp_path / "jpeg.dcm")  # decoded by pydicom with Pillow
    assert written.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert written.LossyImageCompressionMethod == "ISO_10918_1"
    _, psnr, largest = measured(rows["image_dfl.dcm"][4])
    expected_psnr, expected_largest = psnr_and_largest_error(written, IMAGE_8BIT)
    assert psnr == pytest.approx(expected_psnr, abs=0.06) and largest == expected_largest
    no_new_dciodvfy_errors(tmp_path / "jpeg.dcm", IMAGE_8BIT, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot_report(page, "compress-lossy-jpeg-report.png")
    assert not page.page_errors
    assert_same_origin_only(page, server)


# --- shared out over the worker pool --------------------------------------------------------------

def compress_to_download(page):
    with page.expect_download(timeout=180000) as info:
        page.click("#compress-run")
    data = info.value.path().read_bytes()
    page.wait_for_selector(".task.running:has-text('Writing')", state="detached", timeout=60000)
    return data


def test_one_worker_or_two_compress_to_the_same_zip_byte_for_byte(browser, server, tmp_path):
    """Lossless and lossy; in the lossy run a GSPS follows its image's new UID, whichever worker wrote it."""
    from dcmstudio.create.pr import create_gsps
    from test_page_io import KEY, many_files, pool_page
    paths = many_files(tmp_path, 12)
    gsps = tmp_path / "gsps.dcm"
    create_gsps(str(paths[9]), str(gsps), "lesion", 40, 400)
    runs = {}
    for workers in (1, 2):
        context, page = pool_page(browser, server, workers, paths + [gsps, RTPLAN])
        page.evaluate("(key) => { window.dcmstudio.jobKey = key; }", KEY)
        choose_target(page, pydicom.uid.RLELossless)
        lossless = compress_to_download(page)
        assert "rtplan.dcm" in page.inner_text("#compress-report")  # named, not silently dropped
        choose_lossy(page, pydicom.uid.JPEG2000, 10)
        lossy = compress_to_download(page)
        rows = reported_rows(page)
        assert page.evaluate("window.dcmstudio.workbenches.find((w) => w.id === 'compress').lastRun.workers") == workers
        assert not page.page_errors
        assert_same_origin_only(page, server)
        context.close()
        runs[workers] = (lossless, lossy)
    assert runs[1] == runs[2]
    lossless, lossy = (read_zip(data) for data in runs[2])
    assert sorted(lossless) == sorted(p.name for p in paths)  # the GSPS has no pixel data: not in a lossless run
    for path in paths[::5]:
        written = same_pixels(lossless[path.name], path)
        assert written.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert sorted(lossy) == sorted(p.name for p in paths + [gsps])
    image = pydicom.dcmread(io.BytesIO(lossy[paths[9].name]))
    assert image.SOPInstanceUID != pydicom.dcmread(paths[9]).SOPInstanceUID
    pr = pydicom.dcmread(io.BytesIO(lossy["gsps.dcm"]))
    assert pr.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
    assert "1 reference to recompressed files followed" in rows["gsps.dcm"][5]


def test_several_files_are_written_into_a_folder_as_they_are_made(page, server, tmp_path):
    from test_page_io import OPFS_PICKERS, read_opfs
    assert page.evaluate(OPFS_PICKERS), "this Chromium offers no File System Access pickers"
    open_files(page, [CT, MR, RTPLAN])
    wait_for_files(page, 3)
    choose_target(page, pydicom.uid.DeflatedExplicitVRLittleEndian)
    page.select_option("#compress-save-to", "folder")
    assert "(into a folder)" in page.inner_text("#compress-run")
    page.click("#compress-run")
    page.wait_for_selector(".task.done:has-text('picked-folder')", timeout=60000)
    assert "Wrote 2 files" in page.inner_text(".task.done") and "1 could not be written" in page.inner_text(".task.done")
    for source in (CT, MR):
        written = same_pixels(read_opfs(page, f"picked-folder/{source.name}"), source)
        assert written.file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian
    assert "2 of 2 checked pixel-identical; 1 not written" in page.inner_text("#compress-summary")
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_cancel_stops_every_worker_and_offers_nothing(browser, server, tmp_path):
    from test_page_io import many_files, pool_page
    context, page = pool_page(browser, server, 2, many_files(tmp_path, 300))
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    choose_target(page, pydicom.uid.RLELossless)
    page.click("#compress-run")
    page.wait_for_selector(".task.running:has-text('Writing') progress[value]:not([value='0'])", timeout=60000)
    # timed in the page: from the click on Cancel to the task saying it was cancelled
    seconds = page.evaluate("""() => new Promise((resolve) => {
        const button = [...document.querySelectorAll('.task.running button')].find((b) => b.textContent === 'Cancel'
            && b.closest('.task').textContent.includes('Writing'));
        const started = performance.now();
        const seen = new MutationObserver(() => {
            if (document.querySelector('.task.failed')?.textContent.includes('cancelled')) {
                seen.disconnect();
                resolve((performance.now() - started) / 1000);
            }
        });
        seen.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
        button.click();
    })""")
    print(f"compress cancelled over 2 workers in {seconds:.2f} s")
    assert seconds < 2  # 0.5 s on a quiet machine; this one is shared
    page.wait_for_timeout(500)
    assert not downloads
    assert not page.is_disabled("#compress-run")
    assert not page.page_errors
    context.close()


BAD_DATE_IN_OUTPUTS = """
from dcmstudio import codecs
import pydicom
real = codecs.compress

def with_a_bad_date(in_path, out_path, target, **kwargs):
    report = real(in_path, out_path, target, **kwargs)
    if "bad" in kwargs.get("name", ""):
        ds = pydicom.dcmread(out_path)
        ds.StudyDate = "31.01.2024"
        ds.save_as(out_path)
    return report

codecs.compress = with_a_bad_date
"""


def test_outputs_that_gain_a_validation_error_are_noted_whichever_worker_wrote_them(browser, server, tmp_path):
    from test_page_io import many_files, pool_page
    paths = many_files(tmp_path, 8)
    bad = [paths[i].rename(paths[i].with_name(f"bad_{paths[i].name}")) for i in (2, 5)]
    paths = [p for i, p in enumerate(paths) if i not in (2, 5)] + bad
    context, page = pool_page(browser, server, 2, paths)
    # every worker's compressor spoils the date of the files named bad_*, as a faulty encoder would
    workers = [w for w in page.workers if "worker" in w.url or w.url.startswith("blob:")]
    assert len(workers) == 2
    for worker in workers:
        # after the later stage, which imports dcmstudio again: a patch before it would be lost
        worker.evaluate("async code => { await self.dcmstudio.settled; return self.dcmstudio.pyodide.runPythonAsync(code); }",
                        BAD_DATE_IN_OUTPUTS)
    choose_target(page, pydicom.uid.RLELossless)
    data = compress_to_download(page)
    assert len(read_zip(data)) == 8  # still written: the person decides
    assert "2 gained a validation error" in page.inner_text(".task.done")
    note = page.inner_text("#compress-report .new-errors")
    assert note.startswith("2 outputs gained a validation error")
    assert all(f"{p.name}: StudyDate" in note for p in bad)
    assert not page.page_errors
    context.close()

"""The wasm codecs in Chromium: JPEG-LS and JPEG 2000 files from pydicom's test set decode in the
page to the pixels CPython's pydicom gives (with pyjpegls and pylibjpeg-openjpeg, codecs we did not
write) and, for MR_small_*, to the uncompressed MR_small.dcm; the viewer draws them; Compress
writes JPEG-LS, JPEG 2000 and HTJ2K lossless that those judges read back pixel-identical, dcmdump
parses and dciodvfy finds no new error in; a codec whose wasm does not load is named, not hung on."""

import base64
import json
import time
import zipfile

import numpy as np
import pydicom
import pytest

from conftest import ARTIFACTS, open_files
from test_page_compress import choose_target, dcmdump_parses, download
from test_page_create import dciodvfy_errors
from test_page_image import canvas_rgba, show
from test_page_inspect import CT, MR, TEST_FILES, assert_same_origin_only, python_in_worker, wait_for_files

pytest.importorskip("jpeg_ls", reason="pyjpegls judges JPEG-LS in CPython (tests/requirements.txt)")
pytest.importorskip("openjpeg", reason="pylibjpeg-openjpeg judges JPEG 2000 in CPython (tests/requirements.txt)")

JPEG_LS = pydicom.uid.JPEGLSLossless
J2K = pydicom.uid.JPEG2000Lossless
HTJ2K = pydicom.uid.UID("1.2.840.10008.1.2.4.201")
RGB = TEST_FILES / "examples_rgb_color.dcm"

# Compressed test files the pydicom wheel bundles, and the uncompressed file each one encodes.
DECODED = {
    "MR_small_jpeg_ls_lossless.dcm": "MR_small.dcm",  # JPEG-LS lossless, signed 16-bit
    "MR_small_jp2klossless.dcm": "MR_small.dcm",      # JPEG 2000 lossless, signed 16-bit
    "JPEGLSNearLossless_16.dcm": None,                # JPEG-LS near-lossless, unsigned 16-bit
    "SC_rgb_jls_lossy_sample.dcm": None,              # JPEG-LS colour, sample-interleaved
    "JPEG2000.dcm": None,                             # JPEG 2000 lossy (9/7), signed 16-bit
    "693_J2KI.dcm": None,                             # JPEG 2000 lossy, signed 14 of 16 bits
    "J2K_pixelrep_mismatch.dcm": None,                # unsigned codestream in a signed header
    "GDCMJ2K_TextGBR.dcm": None,                      # a JP2 file, YBR_RCT colour
}

FRAME_IN_WORKER = """
import base64, json
from dcmstudio import codecs
arr, _ = codecs.PixelSource({path!r}, {name!r}).decode_frame(0)
json.dumps([str(arr.dtype), arr.shape, base64.b64encode(arr.tobytes()).decode()])
"""


def frame_in_the_page(page, file):
    """Frame 1 of a loaded file, decoded by dcmstudio inside the page's worker."""
    # Through the page's own request first: the worker answers it once the codecs are in.
    info = page.evaluate("f => window.dcmstudio.python.call('frame_info', f)", file)
    assert info["ok"] and info["info"]["decodable"], (file["name"], info)
    found = python_in_worker(page, FRAME_IN_WORKER.format(path=file["path"], name=file["name"]))
    dtype, shape, data = json.loads(found)
    return np.frombuffer(base64.b64decode(data), dtype=dtype).reshape(shape)


def loaded_files(page):
    return {f["name"]: f for f in page.evaluate("[...window.dcmstudio.files.files.values()].map(f => ({path: f.path, name: f.name}))")}


def judged(path):
    """Frame 1 as CPython's pydicom decodes it, with pyjpegls or pylibjpeg-openjpeg."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    return arr[0] if int(ds.get("NumberOfFrames") or 1) > 1 else arr


def test_jpeg_ls_and_jpeg_2000_decode_in_the_page_like_the_judges(page, server):
    open_files(page, [TEST_FILES / name for name in DECODED])
    wait_for_files(page, len(DECODED))
    files = loaded_files(page)
    for name, reference in DECODED.items():
        ours = frame_in_the_page(page, files[name])
        expected = judged(TEST_FILES / name)
        assert ours.dtype == expected.dtype and np.array_equal(ours, expected), name
        if reference:
            assert np.array_equal(ours, pydicom.dcmread(TEST_FILES / reference).pixel_array), name

    # The viewer draws them: colour JPEG 2000 (YBR_RCT in the file) as the judge's RGB.
    page.click("#tab-image")
    show(page, "GDCMJ2K_TextGBR.dcm", "RGB")
    assert np.array_equal(canvas_rgba(page)[..., :3], judged(TEST_FILES / "GDCMJ2K_TextGBR.dcm"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "image-jpeg2000.png"))
    show(page, "MR_small_jpeg_ls_lossless.dcm", "MONOCHROME2")
    show(page, "JPEG2000.dcm", "MONOCHROME2")
    assert not page.page_errors
    assert_same_origin_only(page, server)


def written(zip_path, name):
    with zipfile.ZipFile(zip_path) as z:
        return z.read(name)


def judged_copy(zip_path, source, tmp_path, target):
    """The written copy of `source`, checked against it by CPython's judges and dcmdump."""
    path = tmp_path / f"{target}_{source.name}"
    path.write_bytes(written(zip_path, source.name))
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == target
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(source).pixel_array), source.name
    assert ds.SOPInstanceUID == pydicom.dcmread(source).SOPInstanceUID
    dcmdump_parses(path)
    return path


def test_compress_writes_lossless_that_the_judges_read_back_identical(page, server, tmp_path):
    open_files(page, [CT, MR, RGB])
    wait_for_files(page, 3)
    for target in (JPEG_LS, J2K):
        choose_target(page, target)
        zip_path = download(page, tmp_path)
        assert "3 of 3 checked pixel-identical" in page.inner_text("#compress-summary")
        for source in (CT, MR, RGB):
            path = judged_copy(zip_path, source, tmp_path, target)
            new_errors = set(dciodvfy_errors(path)) - set(dciodvfy_errors(source))
            assert not new_errors, f"{source.name} as {target.name}: {new_errors}"
        # JPEG 2000 colour is written with its reversible colour transform, and says so.
        expected = "YBR_RCT" if target == J2K else "RGB"
        assert pydicom.dcmread(tmp_path / f"{target}_{RGB.name}").PhotometricInterpretation == expected

    # HTJ2K: greyscale only (dciodvfy predates HTJ2K: pylibjpeg-openjpeg is the judge here).
    choose_target(page, HTJ2K)
    zip_path = download(page, tmp_path)
    for source in (CT, MR):
        judged_copy(zip_path, source, tmp_path, HTJ2K)
    assert "greyscale only" in page.inner_text("#compress-report")
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_a_codec_whose_wasm_does_not_load_is_named_and_the_others_work(browser, server):
    # No service worker: once it controls the page, the worker's fetches are answered from its
    # cache and never reach the route.
    context = browser.new_context(viewport={"width": 1400, "height": 860}, service_workers="block")
    try:
        page = context.new_page()
        page.route("**/codecs/openjpegwasm-*.wasm", lambda route: route.fulfill(status=404, body="gone"))
        page.goto(server)
        page.wait_for_selector("body[data-python='ready']", timeout=120000)
        open_files(page, [TEST_FILES / "MR_small_jp2klossless.dcm", TEST_FILES / "MR_small_jpeg_ls_lossless.dcm"])
        wait_for_files(page, 2)
        page.click("#tab-image")
        page.get_by_role("treeitem", name="MR_small_jp2klossless.dcm").click()
        deadline = time.time() + 30
        while "did not load" not in page.inner_text(".image-stage") and time.time() < deadline:
            time.sleep(0.1)
        message = page.inner_text(".image-stage")
        assert "could not be decoded: the JPEG 2000 codec did not load (HTTP 404" in message, message
        show(page, "MR_small_jpeg_ls_lossless.dcm", "MONOCHROME2")
    finally:
        context.close()

"""The viewer in Chromium: MONOCHROME1/2, RGB, palette colour and multi-frame files, judged against
pydicom's own decoding of the same files."""

import time

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut

from conftest import ARTIFACTS, open_files
from test_page_inspect import CT, TEST_FILES, assert_same_origin_only, wait_for_files

RGB = TEST_FILES / "examples_rgb_color.dcm"
PALETTE = TEST_FILES / "examples_palette.dcm"
MULTIFRAME = TEST_FILES / "rtdose.dcm"
JPEG = TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm"  # JPEG baseline, YBR_FULL


def canvas_rgba(page):
    """The rendered frame as a (rows, columns, 4) array, read back from the canvas."""
    width, height, data = page.evaluate("""() => {
        const c = document.querySelector('#image-canvas');
        return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];
    }""")
    return np.array(data, dtype=np.uint8).reshape(height, width, 4)


def show(page, name, expect):
    page.get_by_role("button", name=name).click()
    deadline = time.time() + 20
    while time.time() < deadline:
        status = page.inner_text("#image-status")
        if expect in status:
            return status
        time.sleep(0.1)
    raise AssertionError(f"{name}: the viewer said {status!r}")


def test_viewer_renders_each_photometric_like_pydicom(page, server, tmp_path):
    mono1 = pydicom.dcmread(CT)
    mono1.PhotometricInterpretation = "MONOCHROME1"
    mono1_path = tmp_path / "ct_mono1.dcm"
    mono1.save_as(mono1_path)
    open_files(page, [CT, mono1_path, RGB, PALETTE, MULTIFRAME, JPEG])
    wait_for_files(page, 6)
    page.click("#tab-image")

    # MONOCHROME2 and MONOCHROME1 of the same pixels: the darkest and brightest pixels swap.
    stored = pydicom.dcmread(CT).pixel_array
    low, high = np.unravel_index(stored.argmin(), stored.shape), np.unravel_index(stored.argmax(), stored.shape)
    show(page, "CT_small.dcm", "MONOCHROME2")
    mono2_pixels = canvas_rgba(page)
    assert mono2_pixels.shape == (128, 128, 4)
    assert mono2_pixels[low][0] == 0 and mono2_pixels[high][0] == 255
    show(page, "ct_mono1.dcm", "MONOCHROME1")
    mono1_pixels = canvas_rgba(page)
    assert mono1_pixels[low][0] == 255 and mono1_pixels[high][0] == 0

    show(page, "examples_rgb_color.dcm", "RGB")
    rgb = pydicom.dcmread(RGB).pixel_array
    assert np.array_equal(canvas_rgba(page)[..., :3], rgb)

    show(page, "examples_palette.dcm", "PALETTE COLOR")
    palette = pydicom.dcmread(PALETTE)
    expected = apply_color_lut(palette.pixel_array, palette)
    expected = (expected >> 8).astype(np.uint8) if expected.dtype != np.uint8 else expected
    assert np.array_equal(canvas_rgba(page)[..., :3], expected)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "image-palette.png"))

    # JPEG baseline: decoded by Pillow, which the page loads after start-up (pydicom takes it up
    # late); decoders may round differently by a level or two.
    show(page, "SC_rgb_jpeg_dcmtk.dcm", "YBR_FULL")
    jpeg = pydicom.dcmread(JPEG).pixel_array  # pydicom converts to RGB
    difference = np.abs(canvas_rgba(page)[..., :3].astype(int) - jpeg.astype(int))
    assert difference.max() <= 3, difference.max()
    assert page.locator("#notice").is_hidden()

    # Multi-frame: keys move through the frames and each frame is its own picture.
    show(page, "rtdose.dcm", "frame 1 of 15")
    first = canvas_rgba(page)
    page.focus("#image-canvas")
    page.keyboard.press("ArrowDown")
    deadline = time.time() + 10
    while "frame 2 of 15" not in page.inner_text("#image-status") and time.time() < deadline:
        time.sleep(0.1)
    assert "frame 2 of 15" in page.inner_text("#image-status")
    assert not np.array_equal(first, canvas_rgba(page))

    # The value under the cursor.
    show(page, "CT_small.dcm", "MONOCHROME2")
    box = page.locator("#image-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    deadline = time.time() + 10
    while "stored" not in page.inner_text("#image-readout") and time.time() < deadline:
        page.mouse.move(box["x"] + box["width"] / 2 + 1, box["y"] + box["height"] / 2)
        time.sleep(0.2)
    readout = page.inner_text("#image-readout")
    assert "stored" in readout and "value" in readout
    assert not page.page_errors
    assert_same_origin_only(page, server)

"""The viewer in Chromium: MONOCHROME1/2, RGB, palette colour and multi-frame files, judged against
pydicom's own decoding of the same files; a series scrolled, zoomed, panned and windowed; a file
that cannot be decoded."""

import random
import re
import time

import numpy as np
import pydicom
from pydicom.encaps import encapsulate, generate_fragments
from pydicom.pixels import apply_color_lut
from pydicom.uid import generate_uid

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
    page.get_by_role("treeitem", name=name).click()
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
    page.focus("#image-stage")
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


SLICES = 24


def ct_series(folder, count=SLICES):
    """`count` slices of one CT series whose position order differs from their instance numbers and
    names; slice k (in position order) carries a bright 4-pixel-wide marker at columns 4k..4k+3."""
    folder.mkdir()
    series_uid = generate_uid()
    numbers = list(range(1, count + 1))
    numbers[3], numbers[4] = numbers[4], numbers[3]  # instance order is not position order
    names = [f"img_{random.Random(k).randrange(10**6):06d}_{k}.dcm" for k in range(count)]
    random.Random(7).shuffle(names)
    paths = []
    for k in range(count):
        ds = pydicom.dcmread(CT)
        pixels = ds.pixel_array.copy()
        pixels[:8, 4 * k:4 * k + 4] = pixels.max() + 500
        ds.PixelData = pixels.tobytes()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = numbers[k]
        ds.ImagePositionPatient = [-158.1, -179.0, -75.7 + 2.5 * k]
        for keyword in ("WindowCenter", "WindowWidth"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(folder / names[k])
        paths.append(folder / names[k])
    return paths


def marker(page):
    """Which slice (in position order) the canvas shows, from its bright marker."""
    top = canvas_rgba(page)[2, :, 0]
    columns = np.flatnonzero(top == 255)
    assert len(columns) == 4 and columns[0] % 4 == 0, columns
    return int(columns[0] // 4)


def wait_until(condition, what, seconds=20):
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def wait_for_slice(page, number, count=SLICES):
    """Wait until slice `number` (from 1) of `count` is drawn and labelled."""
    label = page.locator("#image-canvas")
    wait_until(lambda: (label.get_attribute("aria-label") or "").endswith(f"slice {number} of {count}"),
               f"slice {number} drawn; the canvas says {label.get_attribute('aria-label')!r}")
    assert page.inner_text("#image-frame-label") == f"{number} / {count}"
    assert marker(page) == number - 1


def test_a_series_scrolls_in_position_order_by_keys_wheel_and_slider(page, server, tmp_path):
    open_files(page, ct_series(tmp_path / "series"))
    wait_for_files(page, SLICES)
    page.click(".file-tree .row.series")
    page.click("#tab-image")
    wait_for_slice(page, 1)
    page.focus("#image-stage")
    for key, number in (("ArrowDown", 2), ("ArrowRight", 3), ("End", 24), ("PageUp", 14), ("ArrowUp", 13),
                        ("PageDown", 23), ("Home", 1)):
        page.keyboard.press(key)
        wait_for_slice(page, number)
    box = page.locator("#image-stage").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(3):
        page.mouse.wheel(0, 100)
    wait_for_slice(page, 4)
    page.mouse.wheel(0, -100)
    wait_for_slice(page, 3)
    page.eval_on_selector("#image-frame", "s => { s.value = '11'; s.dispatchEvent(new Event('input')); }")
    wait_for_slice(page, 12)
    assert page.locator("#image-file").input_value() == page.evaluate(
        "dcmstudio.workbenches.find((w) => w.id === 'image').stack[11].file.key")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "image-series.png"))

    # Slices next to the one shown are rendered ahead: the next one is drawn without waiting for Python.
    timings = page.evaluate("""async () => {
        const stage = document.querySelector('#image-stage');
        const canvas = document.querySelector('#image-canvas');
        const times = [];
        for (let i = 0; i < 5; i++) {
            await new Promise((r) => setTimeout(r, 700));
            const before = canvas.getAttribute('aria-label');
            const start = performance.now();
            stage.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
            while (canvas.getAttribute('aria-label') === before) await new Promise((r) => requestAnimationFrame(r));
            times.push(performance.now() - start);
        }
        return times;
    }""")
    print("next slice drawn after (ms):", [round(t) for t in timings])
    assert max(timings) < 100, timings
    wait_for_slice(page, 17)
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_zoom_pan_and_keyboard_window(page, server):
    open_files(page, [CT])
    wait_for_files(page, 1)
    page.click("#tab-image")
    status = show(page, "CT_small.dcm", "MONOCHROME2")
    canvas = page.locator("#image-canvas")
    fitted = canvas.bounding_box()
    stage = page.locator("#image-stage").bounding_box()
    assert fitted["width"] > 128 and abs(fitted["height"] - (stage["height"] - 16)) < 2

    page.get_by_role("button", name="1:1, one image pixel per screen pixel").click()
    assert round(canvas.bounding_box()["width"]) == 128
    page.mouse.move(stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    zoomed = canvas.bounding_box()
    assert zoomed["width"] > 128 * 1.5
    # Shift+drag pans by the distance dragged.
    x, y = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2
    page.keyboard.down("Shift")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 30, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    panned = canvas.bounding_box()
    assert abs(panned["x"] - zoomed["x"] - 60) < 2 and abs(panned["y"] - zoomed["y"] - 30) < 2
    assert page.inner_text("#image-status") == status  # panning does not window
    page.focus("#image-stage")
    page.keyboard.press("f")
    assert canvas.bounding_box() == fitted

    # Keyboard window: Shift+Up raises the level, Shift+Right widens the window.
    centre, width = (float(v) for v in re.search(r"C (\S+) / W (\S+)", status).groups())
    page.keyboard.press("Shift+ArrowUp")
    page.keyboard.press("Shift+ArrowRight")
    def window():
        return tuple(float(v) for v in re.search(r"C (\S+) / W (\S+)", page.inner_text("#image-status")).groups())

    wait_until(lambda: window()[1] != width and "set here" in page.inner_text("#image-status"),
               "the window set by keys")
    new_centre, new_width = window()
    assert new_centre > centre and new_width > width
    assert not page.page_errors


def test_a_file_that_cannot_be_decoded_clears_the_view_and_says_why(page, server, tmp_path):
    broken = pydicom.dcmread(TEST_FILES / "MR_small_RLE.dcm")
    fragment = bytearray(next(generate_fragments(broken.PixelData)))
    fragment[:4] = (200).to_bytes(4, "little")  # an RLE header has at most 15 segments
    broken.PixelData = encapsulate([bytes(fragment)])
    broken.save_as(tmp_path / "broken_rle.dcm")
    open_files(page, [CT, tmp_path / "broken_rle.dcm"])
    wait_for_files(page, 2)
    page.click("#tab-image")
    show(page, "CT_small.dcm", "MONOCHROME2")
    page.get_by_role("treeitem", name="broken_rle.dcm").click()
    message = page.locator("#image-message")
    message.wait_for(state="visible")
    assert "broken_rle.dcm" in message.inner_text() and "RLE" in message.inner_text()
    assert page.locator("#image-canvas").is_hidden()
    assert page.inner_text("#image-status") == "" and page.locator("#image-file").input_value()
    page.screenshot(path=str(ARTIFACTS / "image-broken.png"))
    # The next good file is shown again.
    show(page, "CT_small.dcm", "MONOCHROME2")
    assert page.locator("#image-canvas").is_visible() and message.is_hidden()
    assert not page.page_errors

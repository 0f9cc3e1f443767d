"""Measuring in Chromium: a length, a polygon ROI (mouse) and an ellipse (keys) drawn on CT_small,
the ROI's mean HU checked against numpy on the same pixels, kept through slice scrolling and zoom,
exported as a TID 1500 SR and a GSPS judged by highdicom, pydicom, dsrdump and dciodvfy, then both
opened again in the page and their shapes seen on the image."""

import re
import shutil
import subprocess
import time

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from conftest import ARTIFACTS, open_files
from test_page_inspect import CT, wait_for_files


def wait_for(page, predicate, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def to_client(page, x, y):
    """Client coordinates of image point (x, y) on the canvas as laid out now."""
    box = page.locator("#image-canvas").bounding_box()
    return box["x"] + x / 128 * box["width"], box["y"] + y / 128 * box["height"]


def two_slice_series(tmp_path):
    """CT_small and a copy one slice further on, in the same series."""
    paths = []
    for i in range(2):
        ds = pydicom.dcmread(CT)
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["measure17", str(i)])
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], float(i * 5)]
        if i:
            ds.PixelData = (ds.pixel_array + 7).astype(ds.pixel_array.dtype).tobytes()
        path = tmp_path / f"slice{i + 1}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def panel_text(page):
    """Each listed measurement as its label (an input's value) and what it says."""
    return page.evaluate("""() => [...document.querySelectorAll('#measure-list li')]
        .map(li => li.querySelector('input').value + ' ' + li.innerText).join('\\n')""")


def download(page, button, tmp_path):
    with page.expect_download(timeout=60000) as info:
        page.click(button)
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_measure_export_and_reopen(page, tmp_path):
    first, second = two_slice_series(tmp_path)
    open_files(page, [first, second])
    wait_for_files(page, 2)
    page.click(".file-tree .row.series")
    page.click("#tab-image")
    wait_for(page, lambda: "MONOCHROME2" in page.inner_text("#image-status") and
             "1 / 2" in page.inner_text("#image-frame-label"), "the first slice")

    # A length by dragging with the mouse.
    page.click("#tool-length")
    page.mouse.move(*to_client(page, 20, 30))
    page.mouse.down()
    page.mouse.move(*to_client(page, 50, 30), steps=4)
    page.mouse.move(*to_client(page, 80, 30), steps=4)
    page.mouse.up()
    wait_for(page, lambda: re.search(r"L1.*\d+\.\d mm", panel_text(page), re.S), "the length measured")

    # A polygon by clicks, closed with C.
    page.click("#tool-polygon")
    for x, y in [(40, 50), (60, 50), (60, 62), (40, 62)]:
        page.mouse.click(*to_client(page, x, y))
    page.keyboard.press("c")
    statistics = re.compile(r"R1.*mean (-?\d+\.\d) HU · SD (\d+\.\d).*· (\d+) px", re.S)
    text = wait_for(page, lambda: statistics.search(panel_text(page)), "the polygon's statistics")

    # An ellipse with the keys only: E, Enter at the cursor, Shift+arrows, Enter.
    page.keyboard.press("e")
    page.keyboard.press("Enter")
    for key in ["Shift+ArrowRight", "Shift+ArrowRight", "Shift+ArrowDown"]:
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    wait_for(page, lambda: re.search(r"E1.*mean", panel_text(page), re.S), "the ellipse's statistics")
    assert re.match(r"E1: \d+\.\d mm² mean -?\d+\.\d HU$", page.inner_text("#measure-status"))
    page.keyboard.press("Escape")

    # The page's mean against numpy on the pixels whose centres the polygon covers.
    ds = pydicom.dcmread(first)
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    points = page.evaluate("() => [...document.querySelectorAll('#measure-layer polygon')]"
                           ".map(p => [...p.points].map(q => [q.x, q.y]))")[0]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    rows = [r for r in range(128) if min(ys) < r + 0.5 < max(ys)]
    cols = [c for c in range(128) if min(xs) < c + 0.5 < max(xs)]
    region = hu[np.ix_(rows, cols)]
    assert int(text.group(3)) == region.size
    assert abs(float(text.group(1)) - region.mean()) <= 0.05
    assert abs(float(text.group(2)) - region.std()) <= 0.05

    # Zoomed and panned, the drawings stay on the image; the next slice has none, coming back shows them.
    page.locator("#image-stage").focus()
    page.keyboard.press("+")
    page.keyboard.press("+")
    canvas, layer = page.locator("#image-canvas").bounding_box(), page.locator("#measure-layer").bounding_box()
    assert all(abs(canvas[k] - layer[k]) < 1 for k in ("x", "y", "width", "height"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "measure-drawn-zoomed.png"))
    page.keyboard.press("End")
    wait_for(page, lambda: "2 / 2" in page.inner_text("#image-frame-label"), "the second slice")
    wait_for(page, lambda: "0 on this image, 3 in this series" in page.inner_text("#measure-summary"), "an empty slice")
    page.keyboard.press("Home")
    wait_for(page, lambda: "3 on this image" in page.inner_text("#measure-summary"), "the drawings back")
    page.keyboard.press("f")

    # Edited with keys: L1 selected, its first point picked with ], moved 10 px left with Shift+←.
    page.get_by_role("button", name="Select L1 to move it with the keys").click()
    page.keyboard.press("]")
    page.keyboard.press("Shift+ArrowLeft")
    wait_for(page, lambda: f"{70 * 0.661468:.1f} mm" in panel_text(page), "the longer length")

    # A finding and a qualitative evaluation for the ROI, then SR and GSPS.
    page.get_by_label("Finding of R1").select_option(label="Lesion")
    page.get_by_label("Qualitative evaluation of R1").select_option(label="Shape: Round")
    page.click("#measure-export > summary")
    page.fill("#measure-observer", "Doe^Jane")
    sr_path = download(page, "#measure-export-sr", tmp_path)
    wait_for(page, lambda: "measurement groups" in page.inner_text("#measure-export-note"), "the SR note")
    page.locator("#image-stage").focus()
    page.keyboard.press("+")
    page.keyboard.press("+")
    stage, canvas = page.locator("#image-stage").bounding_box(), page.locator("#image-canvas").bounding_box()
    shown = [(stage["x"] - canvas["x"]) / canvas["width"] * 128, (stage["y"] - canvas["y"]) / canvas["height"] * 128,
             (stage["x"] + stage["width"] - canvas["x"]) / canvas["width"] * 128,
             (stage["y"] + stage["height"] - canvas["y"]) / canvas["height"] * 128]
    gsps_path = download(page, "#measure-export-gsps", tmp_path)
    wait_for(page, lambda: "graphics" in page.inner_text("#measure-export-note"), "the GSPS note")

    hd = pytest.importorskip("highdicom")
    report = hd.sr.srread(sr_path).content
    rois = {g.tracking_identifier: g for g in report.get_planar_roi_measurement_groups()}
    assert set(rois) == {"R1", "E1"}
    mean = [m for m in rois["R1"].get_measurements() if m.name.meaning == "Mean"][0]
    assert mean.unit.value == "[hnsf'U]" and mean.value == pytest.approx(region.mean())
    assert rois["R1"].finding_type.meaning == "Lesion"
    lengths = report.get_image_measurement_groups()
    assert [g.tracking_identifier for g in lengths] == ["L1"]
    assert lengths[0].get_measurements()[0].value == pytest.approx(70 * 0.661468, abs=0.1)
    gsps = pydicom.dcmread(gsps_path)
    assert [g.GraphicType for g in gsps.GraphicAnnotationSequence[0].GraphicObjectSequence] == \
        ["POLYLINE", "POLYLINE", "ELLIPSE"]
    area = gsps.DisplayedAreaSelectionSequence[0]
    corners = [*area.DisplayedAreaTopLeftHandCorner, *area.DisplayedAreaBottomRightHandCorner]
    # The part of the image the stage shows, kept inside the image.
    assert corners == [max(1, int(np.floor(shown[0])) + 1), max(1, int(np.floor(shown[1])) + 1),
                       min(128, int(np.ceil(shown[2]))), min(128, int(np.ceil(shown[3])))]
    assert corners[1] > 1 and corners[3] < 128  # zoomed in: only some rows are shown
    for path in (sr_path, gsps_path):
        if shutil.which("dciodvfy"):
            out = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True).stderr
            assert not [line for line in out.splitlines() if line.startswith("Error")], out
    if shutil.which("dsrdump"):
        dump = subprocess.run(["dsrdump", str(sr_path)], capture_output=True, text=True)
        assert dump.returncode == 0 and "Image Region" in dump.stdout

    # Deleted from the list, then opened again: the SR and the GSPS draw their shapes over the
    # slice they reference, and say so.
    for label in ("L1", "R1", "E1"):
        page.get_by_role("button", name=f"Delete {label}").click()
    wait_for(page, lambda: "Nothing measured yet" in page.inner_text("#measure-summary"), "the drawings deleted")
    assert page.locator("#measure-layer .measure-shape").count() == 0
    open_files(page, [sr_path, gsps_path])
    wait_for_files(page, 4)
    page.click(".file-tree .row.series")
    page.click("#tab-image")
    note = wait_for(page, lambda: sr_path.name in page.inner_text("#measure-imported") and
                    gsps_path.name in page.inner_text("#measure-imported") and page.inner_text("#measure-imported"),
                    "the reopened objects")
    assert "3 shapes drawn on loaded images" in note
    imported = page.locator("#measure-layer .measure-shape.imported")
    assert imported.count() == 6  # three from the SR, three from the GSPS
    sr_polygon = page.evaluate("() => [...document.querySelectorAll('#measure-layer polygon.imported')]"
                               ".map(p => [...p.points].map(q => [q.x, q.y]))")
    assert [[round(v, 3) for v in q] for q in sr_polygon[0]] == [[round(v, 3) for v in q] for q in points]
    page.screenshot(path=str(ARTIFACTS / "measure-reopened.png"))
    assert page.page_errors == []


def touch(cdp, kind, points):
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
        {"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]})


def test_touch_pinch_zooms_and_one_finger_scrolls_the_series(page, tmp_path):
    open_files(page, two_slice_series(tmp_path))
    wait_for_files(page, 2)
    page.click(".file-tree .row.series")
    page.click("#tab-image")
    wait_for(page, lambda: "MONOCHROME2" in page.inner_text("#image-status"), "the first slice")
    cdp = page.context.new_cdp_session(page)
    before = int(page.inner_text("#image-zoom").rstrip("%"))
    box = page.locator("#image-stage").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    touch(cdp, "touchStart", [(cx - 40, cy), (cx + 40, cy)])
    for spread in range(50, 130, 10):
        touch(cdp, "touchMove", [(cx - spread, cy), (cx + spread, cy)])
    touch(cdp, "touchEnd", [])
    after = wait_for(page, lambda: int(page.inner_text("#image-zoom").rstrip("%")), "a zoom")
    assert after >= before * 2.5, (before, after)

    # Two fingers moving together pan the image by as much.
    left = page.locator("#image-canvas").bounding_box()["x"]
    touch(cdp, "touchStart", [(cx - 40, cy), (cx + 40, cy)])
    for dx in range(10, 60, 10):
        touch(cdp, "touchMove", [(cx - 40 + dx, cy), (cx + 40 + dx, cy)])
    touch(cdp, "touchEnd", [])
    assert abs(page.locator("#image-canvas").bounding_box()["x"] - left - 50) < 1

    touch(cdp, "touchStart", [(cx, cy - 60)])
    for dy in range(-50, 40, 10):
        touch(cdp, "touchMove", [(cx, cy + dy)])
    touch(cdp, "touchEnd", [])
    wait_for(page, lambda: "2 / 2" in page.inner_text("#image-frame-label"), "the next slice by touch")
    assert page.page_errors == []

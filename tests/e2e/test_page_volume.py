"""Volume → DICOM in Chromium: an oblique NIfTI written as a CT series, judged by pydicom and
dicom3tools; a broken volume is refused with a sentence and nothing is written; a loaded CT
series re-exported as CT with its acquisition, messages naming the user's files, and a slight
shear's position error shown."""

import gzip
import re
import shutil
import subprocess
import time
import zipfile

import nibabel as nib
import numpy as np
import pydicom

from conftest import ARTIFACTS, open_files
from test_page_inspect import CT, assert_same_origin_only, wait_for_files


def oblique_nifti(path):
    rng = np.random.default_rng(7)
    voxels = rng.integers(-1024, 3000, size=(24, 20, 9), dtype=np.int16)
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    rotation = rotation @ np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation * [0.7, 0.8, 2.5]
    affine[:3, 3] = [12.5, -40.0, 33.0]
    image = nib.Nifti1Image(voxels, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    nib.save(image, path)
    return voxels, affine


def test_oblique_nifti_to_ct_series(page, server, tmp_path):
    source = tmp_path / "oblique.nii.gz"
    voxels, affine = oblique_nifti(source)
    page.click("#tab-volume")
    page.set_input_files("#volume-files", [str(source)])
    page.wait_for_selector("#volume-plan dl", timeout=30000)
    assert "24 × 20 × 9" in page.inner_text("#volume-info")
    page.select_option("#volume-modality", "CT")
    page.fill("#volume-series-description", "Série oblique")
    page.fill("#volume-patient-name", "Müller^Jürgen")
    page.click("#volume-check")
    page.wait_for_selector("#volume-plan dd:has-text('CT Image Storage')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "volume-plan.png"))
    with page.expect_download(timeout=60000) as download_info:
        page.click("#volume-write")
    zip_path = tmp_path / "series.zip"
    download_info.value.save_as(zip_path)
    out = tmp_path / "series"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(out)
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 9

    # RAS (NIfTI) → LPS (DICOM): flip the first two rows of the affine.
    lps = np.diag([-1, -1, 1, 1]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    for k, path in enumerate(sorted(files, key=lambda p: pydicom.dcmread(p).InstanceNumber)):
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage
        assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "Müller^Jürgen"
        expected = lps[:3, 3] + k * spacing[2] * direction[:, 2]
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], expected, atol=1e-4)
        assert np.allclose([float(v) for v in ds.ImageOrientationPatient],
                           np.concatenate([direction[:, 0], direction[:, 1]]), atol=1e-6)
        assert np.allclose([float(v) for v in ds.PixelSpacing], [spacing[1], spacing[0]], atol=1e-6)
        real = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        assert np.array_equal(real, voxels[:, :, k].T)

    if shutil.which("dciodvfy"):
        for path in files:
            result = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
            errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
            assert not errors, f"{path.name}: {errors}"
    if shutil.which("dcentvfy"):
        result = subprocess.run(["dcentvfy", *map(str, files)], capture_output=True, text=True)
        assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_truncated_volume_is_refused_with_a_sentence(page, server, tmp_path):
    good = tmp_path / "good.nii.gz"
    oblique_nifti(good)
    data = gzip.decompress(good.read_bytes())
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(gzip.compress(data[: len(data) // 2]))
    page.click("#tab-volume")
    page.set_input_files("#volume-files", [str(broken)])
    deadline = time.time() + 30
    while time.time() < deadline and not page.inner_text("#volume-error"):
        time.sleep(0.1)
    message = page.inner_text("#volume-error")
    assert "broken.nii.gz" in message and len(message) > 30, message
    assert page.is_disabled("#volume-write")
    assert_same_origin_only(page, server)


def ct_series(folder, count=4, gap=2.5, duplicate=False):
    """A CT series from pydicom's CT_small, slices ``gap`` mm apart, under the user's names;
    SliceThickness (5 mm) differs from the gap, as it does on scanners."""
    base = pydicom.dcmread(CT)
    series_uid = pydicom.uid.generate_uid()
    paths = []
    for n in range(count):
        ds = base.copy()
        uid = pydicom.uid.generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = n + 1
        z = -75.7 + gap * (0 if duplicate and n == 1 else n)
        ds.ImagePositionPatient = [-158.135803, -179.035797, z]
        ds.WindowCenter, ds.WindowWidth = 40, 400
        path = folder / f"chest slice {n + 1}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def open_series_in_volume(page, paths):
    open_files(page, paths)
    wait_for_files(page, len(paths))
    page.locator(".file-tree .row.series").first.click()
    page.click("#tab-volume")
    page.click("#volume-use-series")


def test_ct_series_is_re_exported_as_ct_with_its_acquisition(page, server, tmp_path):
    paths = ct_series(tmp_path)
    open_series_in_volume(page, paths)
    page.wait_for_selector("#volume-plan dd:has-text('CT Image Storage')", timeout=30000)
    assert page.input_value("#volume-modality") == "CT"
    info = page.inner_text("#volume-info")
    assert "chest slice 1.dcm" in info and not re.search(r"\bf[0-9]+\b", info), info
    with page.expect_download(timeout=60000) as download_info:
        page.click("#volume-write")
    zip_path = tmp_path / "ct.zip"
    download_info.value.save_as(zip_path)
    out = tmp_path / "out"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(out)
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == len(paths)
    source = pydicom.dcmread(paths[0])
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage and ds.Modality == "CT"
        assert ds.SliceThickness == 5 and ds.SpacingBetweenSlices == 2.5
        assert ds.KVP == source.KVP and ds.Manufacturer == source.Manufacturer
        assert ds.PatientPosition == "FFS" and ds.WindowCenter == 40 and ds.WindowWidth == 400
        assert ds.PixelPaddingValue == -2000
    if shutil.which("dciodvfy"):
        for path in files:
            result = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
            errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
            assert not errors, f"{path.name}: {errors}"
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_series_messages_name_the_users_files(page, server, tmp_path):
    paths = ct_series(tmp_path, duplicate=True)
    open_series_in_volume(page, paths)
    deadline = time.time() + 30
    while time.time() < deadline and not page.inner_text("#volume-error"):
        time.sleep(0.1)
    message = page.inner_text("#volume-error")
    assert "chest slice 1.dcm and chest slice 2.dcm lie at the same position" in message, message
    assert not re.search(r"\bf[0-9]+\b", message), message
    assert_same_origin_only(page, server)


def test_slight_shear_shows_its_position_error(page, server, tmp_path):
    source = tmp_path / "lean.nii"
    voxels = np.arange(40 * 30 * 20, dtype=np.int16).reshape(40, 30, 20)
    affine = np.diag([0.9, 0.9, 2.0, 1.0])
    affine[:3, 2] += [0, 2.0 * 9e-5, 0]
    affine[:3, 3] = [-10, 20, 30]
    image = nib.Nifti1Image(voxels, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=0)
    nib.save(image, source)
    page.click("#tab-volume")
    page.set_input_files("#volume-files", [str(source)])
    page.wait_for_selector("#volume-plan dl", timeout=30000)
    shown = page.inner_text("#volume-position-error")
    assert "largest position error" in shown and "mm" in shown, shown
    error = float(re.search(r"error ([0-9.e-]+) mm", shown).group(1))
    assert 1e-4 < error < 0.01
    assert "not exactly perpendicular" in page.inner_text("#volume-info")


def wait_for_text(page, selector, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline and not page.inner_text(selector):
        time.sleep(0.1)
    return page.inner_text(selector)


def test_hdr_img_pair_opens_and_a_header_cannot_reach_other_files(page, server, tmp_path):
    voxels = np.arange(12 * 10 * 6, dtype=np.int16).reshape(12, 10, 6)
    pair = nib.Nifti1Pair(voxels, np.diag([0.8, 0.8, 2.0, 1.0]))
    pair.set_sform(pair.affine, code=1)
    nib.save(pair, tmp_path / "pair.hdr")
    page.click("#tab-volume")
    page.set_input_files("#volume-files", [str(tmp_path / "pair.hdr"), str(tmp_path / "pair.img")])
    page.wait_for_selector("#volume-plan dl", timeout=30000)
    assert "12 × 10 × 6" in page.inner_text("#volume-info")
    assert "pair.hdr" in page.inner_text("#volume-info")

    header = ("ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"
              "ElementDataFile = /etc/passwd\n")
    (tmp_path / "evil.mhd").write_text(header)
    (tmp_path / "data.raw").write_bytes(bytes(64))
    page.set_input_files("#volume-files", [str(tmp_path / "evil.mhd"), str(tmp_path / "data.raw")])
    message = wait_for_text(page, "#volume-error")
    assert "evil.mhd" in message and "'/etc/passwd'" in message and "not opened with it" in message, message
    assert page.is_disabled("#volume-write")
    assert not page.page_errors
    assert_same_origin_only(page, server)

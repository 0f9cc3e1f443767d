"""pixels: frames rendered for the viewer, judged against dcmtk's dcm2pnm and pydicom.

dcm2pnm (dcmtk) renders the same files with the same window; its 8-bit output and ours may differ
by one level of rounding, nothing more. Files with features the bundled set lacks (modality and
VOI LUT sequences, enhanced functional groups, MONOCHROME1, long multi-frames) are generated.
"""

import json
import os
import subprocess
import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import TEST_FILES_DIR, bundled, bundled_dicom_files
from dcmstudio import pixels
from dcmstudio.errors import DicomStudioError, InvalidDicomError, NotDicomError
from test_create_judges import needs, tool

OVERLAY = np.array(pixels.OVERLAY_RGB, dtype=np.uint8)


def rgba_of(path, frame=0, window=None, name="image.dcm"):
    data, info = pixels.render_frame(str(path), name, frame, window)
    assert len(data) == info["rows"] * info["columns"] * 4
    return np.frombuffer(data, np.uint8).reshape(info["rows"], info["columns"], 4), info


def dcm2pnm(path, tmp_path, *options):
    """dcmtk's rendering of `path` as an array (rows, columns, 1 or 3)."""
    out = tmp_path / "dcm2pnm.pnm"
    subprocess.run([tool("dcm2pnm"), *options, "+op", str(path), str(out)], check=True, capture_output=True, timeout=60)
    kind, width, height, _, data = out.read_bytes().split(maxsplit=4)
    channels = 3 if kind == b"P6" else 1
    return np.frombuffer(data[: int(width) * int(height) * channels], np.uint8).reshape(int(height), int(width), channels)


def assert_close_to_dcmtk(ours, reference, mask=None):
    """Every pixel (outside `mask`) within one 8-bit level of dcmtk's."""
    ours = ours[..., :3] if reference.shape[2] == 3 else ours[..., :1]
    difference = np.abs(ours.astype(int) - reference.astype(int))
    if mask is not None:
        difference = difference[~mask]
    assert difference.max() <= 1, f"{(difference > 1).sum()} pixels differ by up to {difference.max()}"


def write_image(path, pixel_array, **attributes):
    """A small valid image file holding `pixel_array` (frames, rows, columns) or (rows, columns)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.PatientName = "Test^Pixels"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    signed = pixel_array.dtype.kind == "i"
    bits = pixel_array.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = int(signed)
    if pixel_array.ndim == 3:
        ds.NumberOfFrames = pixel_array.shape[0]
    ds.Rows, ds.Columns = pixel_array.shape[-2:]
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixel_array.astype(pixel_array.dtype.newbyteorder("<")).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def ramp(rows=32, columns=48, top=4095, dtype=np.uint16):
    return np.linspace(0, top, rows * columns).reshape(rows, columns).astype(dtype)


@pytest.fixture(autouse=True)
def fresh_caches():
    pixels.forget()
    yield
    pixels.forget()


# --- against dcmtk ----------------------------------------------------------------------------

@needs("dcm2pnm")
@pytest.mark.parametrize(
    "name, window, options",
    [
        ("MR_small.dcm", None, ["+Wi", "1"]),
        ("MR_small_bigendian.dcm", None, ["+Wi", "1"]),
        ("CT_small.dcm", None, ["+Wm"]),
        ("CT_small.dcm", {"center": 40, "width": 400}, ["+Ww", "40", "400"]),
        ("CT_small.dcm", {"center": 40, "width": 400, "function": "SIGMOID"}, ["+Ww", "40", "400", "+Wfs"]),
        ("rtdose.dcm", None, ["+Wm"]),
        ("liver_1frame.dcm", None, ["+Wm"]),
        ("image_dfl.dcm", None, ["+Wm"]),
        ("examples_palette.dcm", None, []),
        ("examples_rgb_color.dcm", None, []),
        ("SC_ybr_full_422_uncompressed.dcm", None, []),
        ("SC_rgb_rle_16bit.dcm", None, []),
    ],
)
def test_rendering_matches_dcm2pnm(tmp_path, name, window, options):
    ours, _ = rgba_of(bundled(name), window=window, name=name)
    assert_close_to_dcmtk(ours, dcm2pnm(bundled(name), tmp_path, "-O", *options))


@needs("dcm2pnm")
def test_monochrome1_is_inverted_like_dcm2pnm(tmp_path):
    ds = pydicom.dcmread(bundled("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    ours, info = rgba_of(path)
    assert info["photometric"] == "MONOCHROME1"
    assert_close_to_dcmtk(ours, dcm2pnm(path, tmp_path, "-O", "+Wi", "1"))
    monochrome2, _ = rgba_of(bundled("MR_small.dcm"))
    assert np.array_equal(ours[..., :3], 255 - monochrome2[..., :3])


@needs("dcm2pnm")
@needs("dcmdjpeg")
@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", "examples_ybr_color.dcm"])
def test_jpeg_baseline_colour_matches_dcmtk(tmp_path, name):
    pytest.importorskip("PIL")
    decompressed = tmp_path / "plain.dcm"
    subprocess.run([tool("dcmdjpeg"), str(bundled(name)), str(decompressed)], check=True, timeout=60)
    ours, _ = rgba_of(bundled(name), name=name)
    reference = dcm2pnm(decompressed, tmp_path, "-O")
    # Two JPEG decoders and two YCbCr conversions: allow a little, on average nearly nothing.
    difference = np.abs(ours[..., :3].astype(int) - reference.astype(int))
    assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 3


@needs("dcm2pnm")
def test_overlay_is_burnt_in_where_dcm2pnm_draws_it(tmp_path):
    path = bundled("examples_overlay.dcm")
    ours, info = rgba_of(path)
    assert info["overlays"] == ["6000"]
    drawn = np.all(ours[..., :3] == OVERLAY, axis=-1)
    expected = pydicom.dcmread(path).overlay_array(0x6000).astype(bool)
    assert np.array_equal(drawn, expected)
    with_overlay = dcm2pnm(path, tmp_path, "+Wi", "1")
    assert (with_overlay[drawn] == 255).all()
    assert_close_to_dcmtk(ours, dcm2pnm(path, tmp_path, "-O", "+Wi", "1"), mask=drawn)


@needs("dcm2pnm")
def test_modality_and_voi_lut_sequences_match_dcm2pnm(tmp_path):
    stored = ramp(top=4095)
    modality = Dataset()
    modality.LUTDescriptor = [4096, 0, 16]
    modality.ModalityLUTType = "US"
    modality.add_new(0x00283006, "US", [2 * v for v in range(4096)])
    voi = Dataset()
    voi.LUTDescriptor = [8192, 0, 16]  # declares 16 bits, uses 12: common in the wild
    voi.LUTExplanation = "square root"
    voi.add_new(0x00283006, "US", [round(4095 * (v / 8191) ** 0.5) for v in range(8192)])
    path = write_image(
        tmp_path / "luts.dcm", stored,
        ModalityLUTSequence=Sequence([modality]), VOILUTSequence=Sequence([voi]),
    )
    info = pixels.frame_info(path, "luts.dcm")
    assert info["modality_lut"] and info["voi_lut"]
    assert info["voi_luts"] == [{"index": 0, "explanation": "square root"}]
    ours, rendered = rgba_of(path)
    assert rendered["voi_lut"] == 0 and rendered["window"] is None
    # +Mv: dcmtk too takes the entries' depth from the data, not from the descriptor.
    assert_close_to_dcmtk(ours, dcm2pnm(path, tmp_path, "-O", "+Wl", "1", "+Mv"))
    value = pixels.pixel_value(path, "luts.dcm", 0, 31, 47)
    assert value["stored"] == 4095 and value["rescaled"] == 8190


# --- pipeline details, against pydicom ---------------------------------------------------------

@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_functions_follow_ps3_3_like_pydicom(tmp_path, function):
    stored = ramp(top=255, dtype=np.uint8)
    path = write_image(tmp_path / "w.dcm", stored)
    ours, info = rgba_of(path, window={"center": 100, "width": 81, "function": function})
    assert info["window"] == {"center": 100.0, "width": 81.0, "function": function, "source": "argument"}
    ds = pydicom.dcmread(path)
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 100, 81, function
    expected = np.rint(pydicom.pixels.apply_windowing(stored.astype(float), ds))
    assert np.abs(ours[..., 0].astype(int) - expected).max() <= 1


@pytest.mark.parametrize("dtype, low, high", [(np.int16, -30000, 30000), (np.uint16, 7, 65535), (np.int32, -5, 900), (np.uint8, 0, 1)])
def test_min_max_window_spans_any_stored_range(tmp_path, dtype, low, high):
    stored = np.linspace(low, high, 40 * 50).reshape(40, 50).astype(dtype)
    ours, info = rgba_of(write_image(tmp_path / "span.dcm", stored))
    assert info["range"] == [float(low), float(high)]
    expected = np.rint((stored.astype(float) - low) / (high - low) * 255)
    assert np.abs(ours[..., 0].astype(int) - expected).max() <= 1
    assert (ours[..., 0] == ours[..., 1]).all() and (ours[..., 3] == 255).all()


def test_parametric_map_with_a_placeholder_window_is_windowed_by_its_values(tmp_path):
    # A float map (e.g. ADC in mm2/s) whose file says C 0.5 / W 1: that window turns it all white.
    values = np.linspace(0, 0.003, 16 * 24, dtype="<f4").reshape(16, 24)
    ds = pydicom.dcmread(write_image(tmp_path / "int.dcm", np.zeros((16, 24), np.uint16)))
    del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.30"
    ds.BitsAllocated = 32
    ds.WindowCenter, ds.WindowWidth = 0.5, 1
    ds.FloatPixelData = values.tobytes()
    ds.save_as(tmp_path / "pm.dcm", enforce_file_format=True)
    ours, info = rgba_of(tmp_path / "pm.dcm")
    assert info["window"]["source"] == "minmax"
    assert info["window"]["width"] == pytest.approx(0.003)
    expected = np.rint(values.astype(float) / 0.003 * 255)
    assert np.abs(ours[..., 0].astype(int) - expected).max() <= 1
    # A narrow LINEAR_EXACT window (any width > 0 is valid there) is still the file's.
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 0.0015, 0.003, "LINEAR_EXACT"
    ds.save_as(tmp_path / "pm_ok.dcm", enforce_file_format=True)
    assert rgba_of(tmp_path / "pm_ok.dcm")[1]["window"]["source"] == "file"


def test_rescale_reaches_the_readout_and_the_range():
    value = pixels.pixel_value(str(bundled("CT_small.dcm")), "CT_small.dcm", 0, 64, 64)
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    assert value["stored"] == int(ds.pixel_array[64, 64])
    assert value["rescaled"] == float(pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)[64, 64])
    _, info = rgba_of(bundled("CT_small.dcm"))
    modality = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
    assert info["range"] == [modality.min(), modality.max()]
    assert info["window"]["source"] == "minmax"


def enhanced_frames(tmp_path):
    """Three frames whose rescale and window differ per frame (functional groups)."""
    frames = np.stack([ramp(16, 16, 1000) for _ in range(3)])
    per_frame = []
    for i in range(3):
        transformation = Dataset()
        transformation.RescaleSlope = i + 1
        transformation.RescaleIntercept = -100 * i
        transformation.RescaleType = "US"
        window = Dataset()
        window.WindowCenter = 500 * (i + 1)
        window.WindowWidth = 1000
        window.WindowCenterWidthExplanation = f"frame {i + 1}"
        group = Dataset()
        group.PixelValueTransformationSequence = Sequence([transformation])
        group.FrameVOILUTSequence = Sequence([window])
        per_frame.append(group)
    return write_image(tmp_path / "enhanced.dcm", frames, PerFrameFunctionalGroupsSequence=Sequence(per_frame)), frames


def test_enhanced_objects_use_each_frames_functional_groups(tmp_path):
    path, frames = enhanced_frames(tmp_path)
    info = pixels.frame_info(path, "enhanced.dcm")
    assert info["frames"] == 3 and info["rescale"]["per_frame"]
    assert info["window_presets"] == [{"center": 500.0, "width": 1000.0, "explanation": "frame 1", "function": "LINEAR"}]
    for i in range(3):
        value = pixels.pixel_value(path, "enhanced.dcm", i, 15, 15)
        assert value["stored"] == int(frames[i, 15, 15])
        assert value["rescaled"] == frames[i, 15, 15] * (i + 1) - 100 * i
        assert value["units"] == "US"
        ours, rendered = rgba_of(path, frame=i)
        assert rendered["window"]["center"] == 500 * (i + 1)
        flat = Dataset()
        flat.PhotometricInterpretation, flat.BitsStored, flat.PixelRepresentation = "MONOCHROME2", 16, 0
        flat.WindowCenter, flat.WindowWidth = 500 * (i + 1), 1000
        modality = frames[i] * (i + 1.0) - 100 * i
        expected = np.clip(np.rint(pydicom.pixels.apply_windowing(modality, flat) / 65535 * 255), 0, 255)
        assert np.abs(ours[..., 0].astype(int) - expected).max() <= 1


def test_a_frame_of_a_long_native_file_is_read_alone(tmp_path):
    frames = np.random.default_rng(0).integers(0, 4096, size=(200, 256, 256), dtype=np.uint16)
    frames[137] = 1234
    path = write_image(tmp_path / "long.dcm", frames)
    assert os.path.getsize(path) > 25_000_000
    tracemalloc.start()
    ours, info = rgba_of(path, frame=137)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info["frames"] == 200 and info["range"] == [1234.0, 1234.0]
    # One frame is 128 KiB stored and 256 KiB as RGBA; the file is 25 MiB.
    assert peak < 4_000_000, f"rendering one frame allocated {peak} bytes at its peak"
    assert pixels.pixel_value(path, "long.dcm", 199, 3, 4)["stored"] == int(frames[199, 3, 4])


def test_cursor_readout_reuses_the_decoded_frame(tmp_path, monkeypatch):
    path = write_image(tmp_path / "f.dcm", np.stack([ramp(), ramp()]))
    calls = []
    original = pixels.PixelSource.decode_frame
    monkeypatch.setattr(pixels.PixelSource, "decode_frame", lambda self, i, **kw: calls.append(i) or original(self, i, **kw))
    pixels.render_frame(path, "f.dcm", 1)
    for col in range(10):
        pixels.pixel_value(path, "f.dcm", 1, 5, col)
    pixels.render_frame(path, "f.dcm", 1, {"center": 10, "width": 100})
    assert calls == [1]
    write_image(path, np.stack([ramp(top=9), ramp(top=9)]))
    pixels.forget(path)
    assert pixels.pixel_value(path, "f.dcm", 1, 31, 47)["stored"] == 9
    assert calls == [1, 1]


def test_frame_info_describes_presets_overlays_and_syntax():
    mr = pixels.frame_info(str(bundled("MR_small.dcm")), "MR_small.dcm")
    assert mr["has_pixels"] and mr["decodable"] and mr["why_not"] is None
    assert (mr["rows"], mr["columns"], mr["frames"], mr["samples"]) == (64, 64, 1, 1)
    assert mr["signed"] and mr["bits_stored"] == 16 and mr["photometric"] == "MONOCHROME2"
    assert mr["window_presets"][0]["center"] == 600.0 and mr["window_presets"][0]["width"] == 1600.0
    assert mr["suggested_presets"] == [] and mr["overlays"] == []
    assert mr["transfer_syntax"]["uid"] == ExplicitVRLittleEndian
    ct = pixels.frame_info(str(bundled("CT_small.dcm")), "CT_small.dcm")
    assert ct["rescale"] == {"slope": 1.0, "intercept": -1024.0, "type": None, "per_frame": False}
    assert {p["explanation"] for p in ct["suggested_presets"]} >= {"Lung", "Bone"}
    overlay = pixels.frame_info(str(bundled("examples_overlay.dcm")), "examples_overlay.dcm")
    assert overlay["overlays"][0]["group"] == "6000" and overlay["overlays"][0]["rows"] == 300


def test_deep_rgb_is_scaled_by_its_bits_stored(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 4096, size=(8, 10, 3), dtype=np.uint16)
    path = write_image(tmp_path / "rgb12.dcm", rgb[..., 0], SamplesPerPixel=3, PhotometricInterpretation="RGB",
                       PlanarConfiguration=0, BitsStored=12, HighBit=11)
    ds = pydicom.dcmread(path)
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    ours, _ = rgba_of(path)
    assert np.array_equal(ours[..., :3], (rgb >> 4).astype(np.uint8))


def overlay_plane(rows, columns, frames, seed):
    planes = np.random.default_rng(seed).integers(0, 2, size=(frames, rows, columns), dtype=np.uint8)
    return planes, np.packbits(planes.ravel(), bitorder="little").tobytes()


@pytest.mark.parametrize("count, origin, drawn_on", [(None, None, [0, 1, 2, 3]), (2, 2, [1, 2])])
def test_overlay_frames_follow_their_count_and_origin(tmp_path, count, origin, drawn_on):
    planes, packed = overlay_plane(10, 12, count or 1, seed=3)
    ds = pydicom.dcmread(write_image(tmp_path / "mf.dcm", np.zeros((4, 20, 20), np.uint16)))
    ds.add_new(0x60020010, "US", 10)
    ds.add_new(0x60020011, "US", 12)
    ds.add_new(0x60020040, "CS", "G")
    ds.add_new(0x60020050, "SS", [3, 5])
    ds.add_new(0x60020100, "US", 1)
    ds.add_new(0x60020102, "US", 0)
    if count:
        ds.add_new(0x60020015, "IS", count)
        ds.add_new(0x60020051, "US", origin)
    ds.add_new(0x60023000, "OW", packed + b"\0" * (len(packed) % 2))
    ds.save_as(tmp_path / "mf.dcm")
    for frame in range(4):
        ours, info = rgba_of(tmp_path / "mf.dcm", frame=frame)
        drawn = np.all(ours[..., :3] == OVERLAY, axis=-1)
        if frame not in drawn_on:
            assert info["overlays"] == [] and not drawn.any()
            continue
        expected = np.zeros((20, 20), bool)
        expected[2:12, 4:16] = planes[frame - drawn_on[0] if count else 0].astype(bool)
        assert info["overlays"] == ["6002"] and np.array_equal(drawn, expected)


def test_colour_files_report_no_window_and_readout_all_samples():
    path = str(bundled("examples_rgb_color.dcm"))
    _, info = rgba_of(path)
    assert info["window"] is None and info["range"] is None
    expected = pydicom.dcmread(path).pixel_array[100, 200]
    assert pixels.pixel_value(path, "rgb", 0, 100, 200)["stored"] == [int(v) for v in expected]


def test_multiframe_frames_differ_and_out_of_range_frame_is_refused():
    path = str(bundled("examples_ybr_color.dcm"))
    pytest.importorskip("PIL")
    first, _ = rgba_of(path, 0)
    last, info = rgba_of(path, 29)
    assert info["frames"] == 30 and not np.array_equal(first, last)
    with pytest.raises(DicomStudioError, match="30 frame"):
        pixels.render_frame(path, "us.dcm", 30)


def test_thumbnail_keeps_the_aspect_and_averages(tmp_path):
    stored = np.zeros((64, 128), np.uint8)
    stored[:, 64:] = 255
    path = write_image(tmp_path / "half.dcm", stored)
    data, width, height = pixels.thumbnail(path, "half.dcm", size=32)
    small = np.frombuffer(data, np.uint8).reshape(height, width, 4)
    assert (width, height) == (32, 16)
    assert (small[:, :16, :3] == 0).all() and (small[:, 16:, :3] == 255).all()
    assert (small[..., 3] == 255).all()
    data, width, height = pixels.thumbnail(str(bundled("MR_small.dcm")), "MR_small.dcm", size=100)
    assert (width, height) == (64, 64) and len(data) == 64 * 64 * 4


# Their pixel data is cut short: the header is fine, the frame cannot be read.
BROKEN_PIXELS = {"MR_truncated.dcm"}


@pytest.mark.parametrize("path", bundled_dicom_files(), ids=lambda p: str(p.relative_to(TEST_FILES_DIR)))
def test_every_bundled_file_renders_or_says_why_in_plain_values(path):
    name = path.name
    try:
        info = pixels.frame_info(str(path), name)
    except DicomStudioError as error:
        assert error.file == name
        return
    json.dumps(info)
    if not info["decodable"]:
        assert name in info["why_not"]
        return
    if name in BROKEN_PIXELS:
        with pytest.raises(InvalidDicomError, match=name):
            pixels.render_frame(str(path), name)
        return
    data, rendered = pixels.render_frame(str(path), name, info["frames"] - 1)
    json.dumps(rendered)
    assert len(data) == info["rows"] * info["columns"] * 4
    thumb, width, height = pixels.thumbnail(str(path), name)
    assert len(thumb) == width * height * 4 and max(width, height) <= 64
    json.dumps(pixels.pixel_value(str(path), name, 0, info["rows"] - 1, info["columns"] - 1))


# --- errors ------------------------------------------------------------------------------------

def test_undecodable_syntax_is_a_sentence_naming_file_and_syntax():
    info = pixels.frame_info(str(bundled("JPEG2000.dcm")), "JPEG2000.dcm")
    assert not info["decodable"]
    assert "JPEG2000.dcm" in info["why_not"] and "JPEG 2000" in info["why_not"]
    assert "cannot decode yet" in info["why_not"]
    with pytest.raises(DicomStudioError, match="cannot decode yet") as raised:
        pixels.render_frame(str(bundled("JPEG2000.dcm")), "JPEG2000.dcm")
    assert raised.value.file == "JPEG2000.dcm"


def test_12_bit_jpeg_extended_is_refused_with_the_reason():
    info = pixels.frame_info(str(bundled("JPGExtended.dcm")), "JPGExtended.dcm")
    assert not info["decodable"] and "12 bits" in info["why_not"]


def test_files_without_pixels_say_so():
    info = pixels.frame_info(str(bundled("reportsi.dcm")), "reportsi.dcm")
    assert info == {
        "has_pixels": False,
        "decodable": False,
        "why_not": "reportsi.dcm has no (7FE0,0010) Pixel Data.",
        "transfer_syntax": info["transfer_syntax"],
    }
    with pytest.raises(DicomStudioError, match="no \\(7FE0,0010\\)"):
        pixels.thumbnail(str(bundled("reportsi.dcm")), "reportsi.dcm")


def test_bad_windows_and_positions_are_refused(tmp_path):
    path = str(bundled("MR_small.dcm"))
    for window in ({"center": 1}, {"center": "a", "width": 3}, {"center": 1, "width": 0},
                   {"center": 1, "width": 10, "function": "CUBIC"}, {"voi_lut": 0}):
        with pytest.raises(DicomStudioError):
            pixels.render_frame(path, "MR_small.dcm", 0, window)
    with pytest.raises(DicomStudioError, match="outside"):
        pixels.pixel_value(path, "MR_small.dcm", 0, 64, 0)


def test_not_dicom_and_truncated_pixels(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(NotDicomError):
        pixels.frame_info(str(text), "notes.txt")
    with pytest.raises(InvalidDicomError, match="MR_truncated.dcm"):
        pixels.render_frame(str(bundled("MR_truncated.dcm")), "MR_truncated.dcm")


FUZZ_CASES = int(os.environ.get("DCMSTUDIO_FUZZ_CASES", "60"))


@pytest.mark.parametrize("name", ["MR_small.dcm", "examples_overlay.dcm", "MR_small_RLE.dcm", "examples_palette.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
def test_corrupted_files_raise_only_our_errors(tmp_path, name):
    """Flip bytes anywhere; only DicomStudioError may escape (DCMSTUDIO_FUZZ_CASES=2000 for more)."""
    original = bundled(name).read_bytes()
    rng = np.random.default_rng(sum(name.encode()))
    path = tmp_path / name
    for case in range(FUZZ_CASES):
        data = bytearray(original)
        for position in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
            data[position] = int(rng.integers(0, 256))
        if case % 5 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        path.write_bytes(bytes(data))
        pixels.forget()
        try:
            pixels.frame_info(str(path), name)
            pixels.render_frame(str(path), name, 0)
            pixels.pixel_value(str(path), name, 0, 0, 0)
        except DicomStudioError as error:
            assert error.file == name

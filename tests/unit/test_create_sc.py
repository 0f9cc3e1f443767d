"""Secondary Capture: pixels survive exactly, every source format is handled or refused clearly."""

import os
import tracemalloc

import numpy as np
import pydicom
import pytest
from test_create_judges import PATIENT, STUDY, gradient, write_png

from dcmstudio.create import create_multiframe, create_multiframe_from_volume, create_secondary_capture
from dcmstudio.errors import DicomStudioError, EditError

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


def read(report):
    return pydicom.dcmread(report["path"])


def test_8_bit_grayscale_png_round_trips_exactly(tmp_path):
    pixels = gradient()
    report = create_secondary_capture(write_png(tmp_path / "g.png", pixels), str(tmp_path / "o.dcm"),
                                      PATIENT, STUDY)
    ds = read(report)
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert (ds.PhotometricInterpretation, ds.BitsAllocated, ds.SamplesPerPixel) == ("MONOCHROME2", 8, 1)
    assert "NumberOfFrames" not in ds
    assert np.array_equal(ds.pixel_array, pixels)
    assert ds.ConversionType == "WSD" and ds.BurnedInAnnotation == "YES"
    assert "LossyImageCompression" not in ds


def test_16_bit_grayscale_png_keeps_all_16_bits(tmp_path):
    pixels = gradient(dtype=np.uint16)
    png = write_png(tmp_path / "w.png", pixels.astype(np.int32), "I")
    ds = read(create_secondary_capture(png, str(tmp_path / "o.dcm"), PATIENT, STUDY))
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 0)
    assert pixels.max() > 60000
    assert np.array_equal(ds.pixel_array, pixels)


def test_rgb_png_round_trips_exactly_interleaved(tmp_path):
    pixels = gradient(channels=3)
    ds = read(create_secondary_capture(write_png(tmp_path / "c.png", pixels), str(tmp_path / "o.dcm")))
    assert (ds.PhotometricInterpretation, ds.PlanarConfiguration) == ("RGB", 0)
    assert np.array_equal(ds.pixel_array, pixels)


def test_jpeg_is_decoded_as_pillow_decodes_it_and_marked_lossy(tmp_path):
    jpeg = tmp_path / "p.jpg"
    Image.fromarray(gradient(channels=3)).save(jpeg, quality=80)
    report = create_secondary_capture(str(jpeg), str(tmp_path / "o.dcm"))
    ds = read(report)
    with Image.open(jpeg) as img:
        assert np.array_equal(ds.pixel_array, np.asarray(img.convert("RGB")))
    assert (ds.LossyImageCompression, ds.LossyImageCompressionMethod) == ("01", "ISO_10918_1")
    assert any("lossy" in note for note in report["notes"])


def test_photograph_is_turned_upright_by_its_exif_orientation(tmp_path):
    jpeg = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(gradient(rows=40, columns=60, channels=3)).save(jpeg, exif=exif, quality=95)
    report = create_secondary_capture(str(jpeg), str(tmp_path / "o.dcm"))
    assert (report["rows"], report["columns"]) == (60, 40)
    assert read(report).pixel_array.shape == (60, 40, 3)


def test_transparency_is_flattened_onto_black_and_reported(tmp_path):
    rgba = gradient(channels=4)
    rgba[..., 3] = 0
    rgba[:10, :, 3] = 255
    report = create_secondary_capture(write_png(tmp_path / "a.png", rgba), str(tmp_path / "o.dcm"))
    pixels = read(report).pixel_array
    assert np.array_equal(pixels[:10], rgba[:10, :, :3])
    assert not pixels[10:].any()
    assert any("Transparency" in note for note in report["notes"])


def test_palette_png_becomes_rgb(tmp_path):
    png = tmp_path / "p.png"
    Image.fromarray(gradient(channels=3)).convert("P", palette=Image.Palette.ADAPTIVE).save(png)
    ds = read(create_secondary_capture(str(png), str(tmp_path / "o.dcm")))
    with Image.open(png) as img:
        assert np.array_equal(ds.pixel_array, np.asarray(img.convert("RGB")))


def test_multiframe_from_images_keeps_their_order_and_numbers_the_pages(tmp_path):
    frames = [gradient(seed=i) for i in range(4)]
    paths = [write_png(tmp_path / f"{i}.png", f) for i, f in enumerate(frames)]
    report = create_multiframe(paths[::-1], str(tmp_path / "o.dcm"), PATIENT, STUDY)
    ds = read(report)
    assert ds.SOPClassUID == pydicom.uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage
    assert ds.NumberOfFrames == 4 and report["frames"] == 4
    assert ds.FrameIncrementPointer == pydicom.tag.Tag("PageNumberVector")
    assert list(ds.PageNumberVector) == [1, 2, 3, 4]
    assert np.array_equal(ds.pixel_array, np.stack(frames[::-1]))


def test_multiframe_of_grayscale_and_colour_is_true_colour(tmp_path):
    gray, color = gradient(), gradient(channels=3, seed=1)
    paths = [write_png(tmp_path / "g.png", gray), write_png(tmp_path / "c.png", color)]
    report = create_multiframe(paths, str(tmp_path / "o.dcm"), image_names=["gray.png", "colour.png"])
    ds = read(report)
    assert ds.SOPClassUID == pydicom.uid.MultiFrameTrueColorSecondaryCaptureImageStorage
    assert np.array_equal(ds.pixel_array[0], np.repeat(gray[..., None], 3, axis=2))
    assert np.array_equal(ds.pixel_array[1], color)
    assert any("gray.png" in note for note in report["notes"])


def test_multiframe_16_bit_is_grayscale_word(tmp_path):
    frames = [gradient(dtype=np.uint16, seed=i) for i in range(2)]
    paths = [write_png(tmp_path / f"{i}.png", f.astype(np.int32), "I") for i, f in enumerate(frames)]
    ds = read(create_multiframe(paths, str(tmp_path / "o.dcm")))
    assert ds.SOPClassUID == pydicom.uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    assert np.array_equal(ds.pixel_array, np.stack(frames))


def test_images_of_different_sizes_are_refused_naming_both(tmp_path):
    a = write_png(tmp_path / "a.png", gradient(40, 50))
    b = write_png(tmp_path / "b.png", gradient(41, 50))
    with pytest.raises(EditError, match=r"b\.png is 50×41 pixels but a\.png is 50×40"):
        create_multiframe([a, b], str(tmp_path / "o.dcm"))
    assert not os.path.exists(tmp_path / "o.dcm")


def test_8_and_16_bit_grayscale_do_not_mix(tmp_path):
    a = write_png(tmp_path / "a.png", gradient())
    b = write_png(tmp_path / "b.png", gradient(dtype=np.uint16).astype(np.int32), "I")
    with pytest.raises(EditError, match="16-bit"):
        create_multiframe([a, b], str(tmp_path / "o.dcm"))


def test_signed_volume_is_kept_exactly_through_the_rescale_intercept(tmp_path):
    volume = np.random.default_rng(0).integers(-1024, 3000, size=(5, 16, 24)).astype(np.int16)
    report = create_multiframe_from_volume(volume, str(tmp_path / "o.dcm"), PATIENT, STUDY,
                                           {"SpacingBetweenSlices": 1.25})
    ds = read(report)
    assert ds.PixelRepresentation == 0 and float(ds.RescaleIntercept) == volume.min()
    restored = ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(restored, volume)
    assert [float(v) for v in ds.SliceLocationVector] == [0, 1.25, 2.5, 3.75, 5.0]
    assert ds.FrameIncrementPointer == pydicom.tag.Tag("SliceLocationVector")
    assert ds.BurnedInAnnotation == "NO"


def test_unsigned_16_bit_volume_needs_no_shift(tmp_path):
    volume = np.random.default_rng(1).integers(0, 65535, size=(3, 8, 8)).astype(np.uint16)
    report = create_multiframe_from_volume(volume, str(tmp_path / "o.dcm"))
    ds = read(report)
    assert float(ds.RescaleIntercept) == 0 and report["notes"] == []
    assert np.array_equal(ds.pixel_array, volume)


def test_float_volume_is_scaled_into_16_bits_within_half_a_step(tmp_path):
    volume = np.random.default_rng(2).normal(size=(3, 10, 12)) * 1000.0
    report = create_multiframe_from_volume(volume, str(tmp_path / "o.dcm"))
    ds = read(report)
    slope = float(ds.RescaleSlope)
    restored = ds.pixel_array * slope + float(ds.RescaleIntercept)
    assert np.abs(restored - volume).max() <= slope / 2 + 1e-6 * abs(volume).max()
    assert any("scaled into 16 bits" in note for note in report["notes"])


def test_whole_numbered_float_volume_is_kept_exactly(tmp_path):
    volume = np.arange(-500, 500, dtype=np.float32).reshape(4, 10, 25)
    ds = read(create_multiframe_from_volume(volume, str(tmp_path / "o.dcm")))
    assert np.array_equal(ds.pixel_array + float(ds.RescaleIntercept), volume)


def test_rgb_and_mask_volumes(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, size=(2, 6, 7, 3)).astype(np.uint8)
    ds = read(create_multiframe_from_volume(rgb, str(tmp_path / "rgb.dcm")))
    assert np.array_equal(ds.pixel_array, rgb)
    mask = np.zeros((2, 6, 7), dtype=bool)
    mask[0, 1:3, 2:4] = True
    ds = read(create_multiframe_from_volume(mask, str(tmp_path / "mask.dcm")))
    assert np.array_equal(ds.pixel_array, mask.astype(np.uint8) * 255)


@pytest.mark.parametrize("volume, words", [
    (np.zeros((4, 5)), "shape"),
    (np.zeros((2, 4, 5, 3), dtype=np.float32), "uint8 RGB"),
    (np.full((2, 3, 3), np.nan), "NaN"),
    (np.zeros((0, 3, 3)), "at least one frame"),
])
def test_volumes_that_cannot_be_frames_are_refused(tmp_path, volume, words):
    with pytest.raises(EditError, match=words):
        create_multiframe_from_volume(volume, str(tmp_path / "o.dcm"))


def _peak_memory_of_multiframe(tmp_path, frame, count):
    paths = [write_png(tmp_path / f"{count}_{i}.png", np.roll(frame, i, axis=0)) for i in range(count)]
    tracemalloc.start()
    try:
        create_multiframe(paths, str(tmp_path / f"{count}.dcm"))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_frames_are_decoded_one_at_a_time(tmp_path):
    """Peak memory does not grow with the number of frames: 16 frames cost what 2 do."""
    frame = gradient(384, 384, channels=3)
    few = _peak_memory_of_multiframe(tmp_path, frame, 2)
    many = _peak_memory_of_multiframe(tmp_path, frame, 16)
    assert many < 1.25 * few
    assert many < 4 * frame.nbytes
    assert os.path.getsize(tmp_path / "16.dcm") > 16 * frame.nbytes


@pytest.mark.parametrize("content, words", [
    (b"GIF89a" + bytes(100), "GIF image"),
    (b"hello, not an image", "not an image Pillow can read"),
])
def test_files_that_are_not_png_or_jpeg_are_refused_by_name(tmp_path, content, words):
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    if content.startswith(b"GIF"):
        Image.fromarray(gradient()).save(path, format="GIF")
    with pytest.raises(DicomStudioError, match=words) as caught:
        create_secondary_capture(str(path), str(tmp_path / "o.dcm"), image_name="upload.gif")
    assert caught.value.file == "upload.gif"


def test_a_truncated_png_fails_cleanly_and_leaves_no_partial_output(tmp_path):
    png = write_png(tmp_path / "g.png", gradient(200, 200))
    data = open(png, "rb").read()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DicomStudioError, match="truncated or corrupt"):
        create_multiframe([png, str(cut)], str(tmp_path / "o.dcm"))
    assert not os.path.exists(tmp_path / "o.dcm")


@pytest.mark.parametrize("options, words", [
    ({"ConversionType": "XYZ"}, "ConversionType 'XYZ' must be one of"),
    ({"BurnedInAnnotation": "maybe"}, "BurnedInAnnotation"),
    ({"PixelSpacing": [0.5]}, "two numbers"),
    ({"PixelSpacing": [0.5, -1]}, "positive"),
    ({"WindowCenter": 10, "WindowWidth": 0}, "at least 1"),
    ({"Colour": "red"}, "Unknown option"),
])
def test_invalid_options_are_refused_before_anything_is_written(tmp_path, options, words):
    png = write_png(tmp_path / "g.png", gradient())
    with pytest.raises(EditError, match=words):
        create_secondary_capture(png, str(tmp_path / "o.dcm"), options=options)
    assert not os.path.exists(tmp_path / "o.dcm")


def test_window_on_a_colour_image_is_refused(tmp_path):
    png = write_png(tmp_path / "c.png", gradient(channels=3))
    with pytest.raises(EditError, match="grayscale images only"):
        create_secondary_capture(png, str(tmp_path / "o.dcm"),
                                 options={"WindowCenter": 1, "WindowWidth": 2})

"""codecs: rewriting pixel data losslessly, and the hook through which browser codecs plug in.

Every output is read back by pydicom (whole file) and compared pixel for pixel with the source,
parsed by dcmdump, and checked by dciodvfy for new errors. dcmtk's own RLE codec (dcmcrle,
dcmdrle) and inflater (dcmconv) are the independent judges of our RLE and deflate bytes.
A browser codec is stood in for by Pillow's OpenJPEG (JPEG 2000 lossless) where available.
"""

import io
import os
import subprocess
import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom import uid as uids
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_fragmented_frames
from pydicom.sequence import Sequence

from conftest import bundled, cpu_clock
from dcmstudio import codecs, pixels
from dcmstudio.errors import DicomStudioError, InvalidDicomError
from test_create_judges import dciodvfy, needs, tool
from test_pixels import write_image

RLE = uids.RLELossless
DEFLATED = uids.DeflatedExplicitVRLittleEndian
EXPLICIT = uids.ExplicitVRLittleEndian
J2K_LOSSLESS = uids.JPEG2000Lossless

SOURCES = [
    "MR_small.dcm",  # signed 16-bit, trailing padding
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_RLE.dcm",
    "CT_small.dcm",
    "examples_overlay.dcm",  # 12 of 16 bits, an overlay in the header
    "examples_palette.dcm",
    "examples_rgb_color.dcm",
    "SC_rgb_small_odd.dcm",  # 27 bytes of pixels: padded to even
    "SC_ybr_full_422_uncompressed.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_rle_16bit_2frame.dcm",
    "image_dfl.dcm",
    "liver_1frame.dcm",  # 1 bit (native targets only)
    "rtdose.dcm",  # 32 bits, 15 frames (native targets only)
    "SC_rgb_jpeg_dcmtk.dcm",  # lossy JPEG: decoded once, then kept exactly
    "examples_ybr_color.dcm",
]
NATIVE_ONLY = {"liver_1frame.dcm", "rtdose.dcm"}
NEEDS_PILLOW = {"SC_rgb_jpeg_dcmtk.dcm", "examples_ybr_color.dcm"}


def cases():
    for name in SOURCES:
        for target in (EXPLICIT, DEFLATED, RLE):
            if target == RLE and name in NATIVE_ONLY:
                continue
            yield pytest.param(name, target, id=f"{name}->{target.name}")


def decoded(path):
    """Every frame as pydicom decodes the whole file (YBR as RGB), frames first."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    return arr.reshape((int(ds.get("NumberOfFrames") or 1), *arr.shape[-3 if ds.SamplesPerPixel > 1 else -2:]))


def inflated(path, tmp_path):
    """dcmtk's inflation of a deflated file (dciodvfy does not read deflate); other files as they are."""
    if pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID != DEFLATED:
        return str(path)
    out = tmp_path / f"inflated_{os.path.basename(path)}"
    subprocess.run([tool("dcmconv"), "+te", str(path), str(out)], check=True, capture_output=True, timeout=60)
    return str(out)


@pytest.mark.parametrize("name, target", cases())
def test_round_trip_is_pixel_identical(tmp_path, name, target):
    if name in NEEDS_PILLOW:
        pytest.importorskip("PIL")
    out = tmp_path / "out.dcm"
    result = codecs.compress(str(bundled(name)), str(out), target, name=name)
    assert result["verified"] and result["not_verified_because"] is None
    assert result["transfer_syntax"] == {"uid": target, "name": target.name}
    assert result["output_bytes"] == os.path.getsize(out)
    written = pydicom.dcmread(out)
    assert written.file_meta.TransferSyntaxUID == target
    assert written.SOPInstanceUID == pydicom.dcmread(bundled(name)).SOPInstanceUID
    assert np.array_equal(decoded(out), decoded(bundled(name)))
    back = tmp_path / "back.dcm"
    codecs.decompress(str(out), str(back))
    assert np.array_equal(decoded(back), decoded(bundled(name)))
    plain = pydicom.dcmread(back)
    if plain.BitsAllocated > 1 and plain.PhotometricInterpretation != "YBR_FULL_422":
        expected = decoded(back).size * plain.BitsAllocated // 8
        assert len(plain.PixelData) == expected + expected % 2


@needs("dcmdump")
@needs("dciodvfy")
@needs("dcmconv")
@pytest.mark.parametrize("name, target", cases())
def test_outputs_parse_in_dcmdump_and_add_no_dciodvfy_errors(tmp_path, name, target):
    if name in NEEDS_PILLOW:
        pytest.importorskip("PIL")
    out = tmp_path / "out.dcm"
    codecs.compress(str(bundled(name)), str(out), target, name=name)
    assert subprocess.run([tool("dcmdump"), str(out)], capture_output=True, timeout=60).returncode == 0
    before, _ = dciodvfy(inflated(bundled(name), tmp_path))
    after, _ = dciodvfy(inflated(out, tmp_path))
    assert set(after) <= set(before), "new dciodvfy errors: " + "; ".join(set(after) - set(before))


@needs("dcmdrle")
@pytest.mark.parametrize("name", ["MR_small.dcm", "examples_rgb_color.dcm", "SC_rgb_rle_16bit_2frame.dcm", "examples_palette.dcm"])
def test_dcmtk_decodes_our_rle_to_the_same_pixels(tmp_path, name):
    ours = tmp_path / "rle.dcm"
    codecs.compress(str(bundled(name)), str(ours), RLE)
    plain = tmp_path / "plain.dcm"
    subprocess.run([tool("dcmdrle"), str(ours), str(plain)], check=True, capture_output=True, timeout=60)
    assert np.array_equal(decoded(plain), decoded(bundled(name)))


@needs("dcmcrle")
def test_we_decode_dcmtks_rle_to_the_same_pixels(tmp_path):
    theirs = tmp_path / "dcmtk_rle.dcm"
    subprocess.run([tool("dcmcrle"), str(bundled("examples_overlay.dcm")), str(theirs)], check=True, timeout=60)
    out = tmp_path / "plain.dcm"
    assert codecs.decompress(str(theirs), str(out))["verified"]
    assert np.array_equal(decoded(out), decoded(bundled("examples_overlay.dcm")))


def test_multiframe_rle_has_one_fragment_per_frame_and_a_right_offset_table(tmp_path):
    pytest.importorskip("PIL")
    out = tmp_path / "rle.dcm"
    codecs.compress(str(bundled("examples_ybr_color.dcm")), str(out), RLE)
    ds = pydicom.dcmread(out)
    assert ds.NumberOfFrames == 30 and ds.PhotometricInterpretation == "RGB"
    frames = list(generate_fragmented_frames(ds.PixelData, number_of_frames=30))
    assert [len(f) for f in frames] == [1] * 30
    offsets = list(pydicom.encaps.parse_basic_offsets(io.BytesIO(ds.PixelData)))
    assert offsets == np.cumsum([0] + [len(f[0]) + 8 for f in frames[:-1]]).tolist()
    for index in (0, 17, 29):
        assert np.array_equal(pydicom.pixels.pixel_array(ds, index=index), decoded(bundled("examples_ybr_color.dcm"))[index])


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_implicit.dcm", "SC_ybr_full_422_uncompressed.dcm", "liver_1frame.dcm", "image_dfl.dcm"])
@pytest.mark.parametrize("target", [EXPLICIT, DEFLATED])
def test_native_little_endian_pixels_are_copied_byte_for_byte(tmp_path, name, target):
    out = tmp_path / "out.dcm"
    codecs.compress(str(bundled(name)), str(out), target)
    source, written = pydicom.dcmread(bundled(name)), pydicom.dcmread(out)
    assert written.PixelData == source.PixelData
    assert written.PhotometricInterpretation == source.PhotometricInterpretation


@pytest.mark.parametrize(
    "name, target, photometric",
    [
        ("SC_ybr_full_422_uncompressed.dcm", RLE, "YBR_FULL"),  # PS3.5 8.2.2: RLE colour is YBR_FULL
        ("SC_rgb_dcmtk_+eb+cy+np.dcm", RLE, "RGB"),  # JPEG YBR_FULL_422, decoded to RGB as dcmdjpeg does
        ("examples_ybr_color.dcm", EXPLICIT, "RGB"),  # ultrasound allows no YBR_FULL
        ("SC_rgb_jpeg_dcmtk.dcm", EXPLICIT, "RGB"),
    ],
)
def test_decoded_colour_is_described_as_it_is_written(tmp_path, name, target, photometric):
    if name not in ("SC_ybr_full_422_uncompressed.dcm",):
        pytest.importorskip("PIL")
    out = tmp_path / "out.dcm"
    codecs.compress(str(bundled(name)), str(out), target)
    written = pydicom.dcmread(out)
    assert written.PhotometricInterpretation == photometric and written.PlanarConfiguration == 0


def test_colour_by_plane_source_is_rewritten_colour_by_pixel(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    path = write_image(tmp_path / "planar.dcm", rgb[..., 0], SamplesPerPixel=3, PhotometricInterpretation="RGB",
                       PlanarConfiguration=1, BitsAllocated=8, BitsStored=8, HighBit=7)
    ds = pydicom.dcmread(path)
    ds.PixelData = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
    ds.save_as(path)
    rle, plain = tmp_path / "rle.dcm", tmp_path / "plain.dcm"
    codecs.compress(path, str(rle), RLE)
    codecs.decompress(str(rle), str(plain))
    written = pydicom.dcmread(plain)
    assert written.PlanarConfiguration == 0 and written.PixelData == rgb.tobytes()


def test_deflate_is_whole_dataset_and_smaller(tmp_path):
    out = tmp_path / "deflated.dcm"
    result = codecs.compress(str(bundled("CT_small.dcm")), str(out), DEFLATED)
    assert result["output_bytes"] < result["input_bytes"] * 0.8
    raw = out.read_bytes()
    assert b"CT_small" not in raw and b"ORIGINAL" not in raw  # the header is compressed too
    assert pydicom.dcmread(out).StudyDescription == pydicom.dcmread(bundled("CT_small.dcm")).StudyDescription


@needs("dcmconv")
def test_dcmtk_inflates_our_deflate_to_the_same_dataset(tmp_path):
    out = tmp_path / "deflated.dcm"
    codecs.compress(str(bundled("examples_overlay.dcm")), str(out), DEFLATED)
    plain = inflated(out, tmp_path)
    original, ours = pydicom.dcmread(bundled("examples_overlay.dcm")), pydicom.dcmread(plain)
    assert np.array_equal(ours.pixel_array, original.pixel_array)
    assert np.array_equal(ours.overlay_array(0x6000), original.overlay_array(0x6000))
    assert [e.tag for e in ours] == [e.tag for e in original]


@needs("dcmconv")
def test_big_endian_words_in_the_header_are_swapped(tmp_path):
    big = tmp_path / "big.dcm"
    subprocess.run([tool("dcmconv"), "+tb", str(bundled("examples_overlay.dcm")), str(big)], check=True, timeout=60)
    out = tmp_path / "little.dcm"
    codecs.decompress(str(big), str(out))
    original, ours = pydicom.dcmread(bundled("examples_overlay.dcm")), pydicom.dcmread(out)
    assert np.array_equal(ours.pixel_array, original.pixel_array)
    assert ours[0x60003000].value == original[0x60003000].value


def test_elements_after_the_pixel_data_are_kept_but_padding_and_signatures_dropped(tmp_path):
    path = write_image(tmp_path / "trailing.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8))
    ds = pydicom.dcmread(path)
    ds.add_new(0x7FE10010, "LO", "ACME 1.0")
    ds.add_new(0x7FE11001, "OB", b"private!")
    ds.add_new(0xFFFAFFFA, "SQ", Sequence([Dataset()]))
    ds.add_new(0xFFFCFFFC, "OB", b"\0" * 16)
    ds.save_as(path)
    for target in (RLE, DEFLATED, EXPLICIT):
        out = tmp_path / "out.dcm"
        result = codecs.compress(path, str(out), target)
        assert result["dropped"] == ["(FFFA,FFFA) Digital Signatures Sequence", "(FFFC,FFFC) Data Set Trailing Padding"]
        written = pydicom.dcmread(out)
        assert written[0x7FE11001].value == b"private!" and 0xFFFCFFFC not in written


def test_a_compressed_icon_is_dropped_when_decompressing(tmp_path):
    pytest.importorskip("PIL")
    ds = pydicom.dcmread(bundled("SC_rgb_jpeg_dcmtk.dcm"))
    icon = Dataset()
    for keyword in ("SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
                    "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration"):
        setattr(icon, keyword, ds[keyword].value)
    icon.PixelData = encapsulate(list(generate_fragmented_frames(ds.PixelData, number_of_frames=1))[0])
    icon["PixelData"].VR = "OB"
    icon["PixelData"].is_undefined_length = True
    ds.IconImageSequence = Sequence([icon])
    path = tmp_path / "icon.dcm"
    ds.save_as(path)
    out = tmp_path / "plain.dcm"
    result = codecs.decompress(str(path), str(out))
    assert result["dropped"] == ["(0088,0200) Icon Image Sequence (its pixel data was compressed)"]
    assert "IconImageSequence" not in pydicom.dcmread(out)


def test_lossy_jpeg_source_stays_marked_lossy(tmp_path):
    pytest.importorskip("PIL")
    ds = pydicom.dcmread(bundled("SC_rgb_jpeg_dcmtk.dcm"))
    del ds.LossyImageCompression
    path = tmp_path / "unmarked.dcm"
    ds.save_as(path)
    out = tmp_path / "plain.dcm"
    codecs.decompress(str(path), str(out))
    assert pydicom.dcmread(out).LossyImageCompression == "01"


def test_pillow_installed_after_pydicom_decodes_jpeg(tmp_path, monkeypatch):
    # The page loads Pillow after pydicom's import, which had found Pillow missing: stand that in
    # by withdrawing the plugin and Pillow from pydicom's module, then adopt it as the page does.
    pytest.importorskip("PIL")
    import pydicom.pixels.decoders.pillow as pillow_plugin
    decoder = pydicom.pixels.get_decoder(uids.JPEGBaseline8Bit)
    decoder.remove_plugin("pillow")
    monkeypatch.delattr(pillow_plugin, "Image")
    assert "pillow" not in decoder.available_plugins
    with pytest.raises(DicomStudioError):
        codecs.decompress(bundled("SC_rgb_jpeg_dcmtk.dcm"), str(tmp_path / "none.dcm"))

    assert str(uids.JPEGBaseline8Bit) in codecs.adopt_late_pillow()
    assert "pillow" in decoder.available_plugins
    out = tmp_path / "plain.dcm"
    codecs.decompress(bundled("SC_rgb_jpeg_dcmtk.dcm"), str(out))
    assert pydicom.dcmread(out).pixel_array.shape == (100, 100, 3)
    assert codecs.adopt_late_pillow() == codecs.adopt_late_pillow()  # a second call changes nothing


# --- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, target, message",
    [
        ("MR_small.dcm", uids.JPEGBaseline8Bit, "never compresses lossily unless asked"),
        ("MR_small.dcm", uids.JPEGExtended12Bit, "writes lossless transfer syntaxes, and lossy JPEG 2000 or"),
        ("MR_small.dcm", J2K_LOSSLESS, "no encoder for it"),
        ("rtdose.dcm", RLE, "8- or 16-bit"),
        ("liver_1frame.dcm", RLE, "1-bit"),
        ("JPEG2000.dcm", EXPLICIT, "cannot decode yet"),
        ("reportsi.dcm", RLE, "no \\(7FE0,0010\\)"),
    ],
)
def test_impossible_requests_are_refused_with_a_sentence(tmp_path, name, target, message):
    with pytest.raises(DicomStudioError, match=message) as raised:
        codecs.compress(str(bundled(name)), str(tmp_path / "out.dcm"), target, name=name)
    assert raised.value.file == name and name in raised.value.message


def test_broken_pixel_data_is_invalid_dicom_and_leaves_no_output(tmp_path):
    for target in (RLE, DEFLATED):
        with pytest.raises(InvalidDicomError, match="MR_truncated.dcm"):
            codecs.compress(str(bundled("MR_truncated.dcm")), str(tmp_path / "o.dcm"), target, name="MR_truncated.dcm")
        assert not (tmp_path / "o.dcm").exists()


FUZZ_CASES = int(os.environ.get("DCMSTUDIO_FUZZ_CASES", "40"))


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "image_dfl.dcm"])
def test_corrupted_sources_raise_only_our_errors(tmp_path, name):
    """Flip bytes; only DicomStudioError may escape compress (DCMSTUDIO_FUZZ_CASES=2000 for more)."""
    original = bundled(name).read_bytes()
    rng = np.random.default_rng(len(original))
    path = tmp_path / name
    for _ in range(FUZZ_CASES):
        data = bytearray(original)
        for position in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
            data[position] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
        for target in (RLE, DEFLATED, EXPLICIT):
            try:
                codecs.compress(str(path), str(tmp_path / "out.dcm"), target, name=name)
            except DicomStudioError as error:
                assert error.file == name


# --- the adapter for browser codecs ------------------------------------------------------------

def pillow_j2k():
    image = pytest.importorskip("PIL.Image")
    features = pytest.importorskip("PIL.features")
    if not features.check_codec("jpg_2000"):
        pytest.skip("this Pillow has no OpenJPEG")
    return image


@pytest.fixture
def registry():
    """Registered codecs are withdrawn after each test."""
    yield
    for ts in codecs.registered_decoders():
        codecs.unregister_decoder(ts)
    for ts in codecs.registered_encoders():
        codecs.unregister_encoder(ts)


def j2k_decoder(data, params):
    """A stand-in for a wasm JPEG 2000 decoder: unsigned 16-bit grey, bytes out."""
    image = pillow_j2k().open(io.BytesIO(data))
    return np.asarray(image, dtype="<u2").tobytes()


def j2k_encoder(data, params):
    assert params["samples_per_pixel"] == 1 and params["bits_allocated"] == 16
    pixels_in = np.frombuffer(data, "<u2").reshape(params["rows"], params["columns"])
    out = io.BytesIO()
    pillow_j2k().fromarray(pixels_in.astype(np.uint16), "I;16").save(out, "JPEG2000", irreversible=False, no_jp2=True)
    return out.getvalue()


def test_a_registered_decoder_makes_a_syntax_viewable(registry, tmp_path):
    pillow_j2k()
    seen = []

    def decoder(data, params):
        seen.append(params)
        return j2k_decoder(data, params)

    path = str(bundled("examples_overlay.dcm"))
    j2k = tmp_path / "j2k.dcm"
    codecs.register_encoder(J2K_LOSSLESS, j2k_encoder)
    codecs.compress(path, str(j2k), J2K_LOSSLESS, verify=False)
    assert not pixels.frame_info(str(j2k), "j2k.dcm")["decodable"]
    codecs.register_decoder(J2K_LOSSLESS, decoder)
    pixels.forget()
    assert pixels.frame_info(str(j2k), "j2k.dcm")["decodable"]
    ours, _ = pixels.render_frame(str(j2k), "j2k.dcm")
    assert ours == pixels.render_frame(path, "overlay.dcm")[0]
    assert seen[0] == {
        "transfer_syntax_uid": J2K_LOSSLESS, "rows": 300, "columns": 484, "samples_per_pixel": 1,
        "bits_allocated": 16, "bits_stored": 12, "pixel_representation": 0,
        "photometric_interpretation": "MONOCHROME2", "number_of_frames": 1,
    }
    codecs.unregister_decoder(J2K_LOSSLESS)
    pixels.forget()
    assert "cannot decode yet" in pixels.frame_info(str(j2k), "j2k.dcm")["why_not"]


@needs("dciodvfy")
def test_a_registered_encoder_round_trip_is_verified(registry, tmp_path):
    pillow_j2k()
    codecs.register_encoder(J2K_LOSSLESS, j2k_encoder)
    codecs.register_decoder(J2K_LOSSLESS, j2k_decoder)
    out = tmp_path / "j2k.dcm"
    result = codecs.compress(str(bundled("examples_overlay.dcm")), str(out), J2K_LOSSLESS)
    assert result["verified"] and result["output_bytes"] < result["input_bytes"]
    assert dciodvfy(out)[0] == dciodvfy(bundled("examples_overlay.dcm"))[0]
    back = tmp_path / "back.dcm"
    assert codecs.decompress(str(out), str(back))["verified"]
    assert np.array_equal(decoded(back), decoded(bundled("examples_overlay.dcm")))


def test_without_a_decoder_the_output_is_written_but_not_verified(registry, tmp_path):
    pillow_j2k()
    codecs.register_encoder(J2K_LOSSLESS, j2k_encoder)
    result = codecs.compress(str(bundled("examples_overlay.dcm")), str(tmp_path / "j.dcm"), J2K_LOSSLESS)
    assert not result["verified"] and "cannot decode yet" in result["not_verified_because"]


def test_an_encoder_that_changes_pixels_is_caught(registry, tmp_path):
    pillow_j2k()

    def lossy(data, params):
        return j2k_encoder(bytes(len(data)), params)  # all zeros

    codecs.register_encoder(J2K_LOSSLESS, lossy)
    codecs.register_decoder(J2K_LOSSLESS, j2k_decoder)
    out = tmp_path / "j.dcm"
    with pytest.raises(DicomStudioError, match="changed the pixels of frame 1"):
        codecs.compress(str(bundled("examples_overlay.dcm")), str(out), J2K_LOSSLESS)
    assert not out.exists()


def test_an_encoder_can_say_it_changed_the_colour_space(registry, tmp_path):
    def fake(data, params):
        assert params["photometric_interpretation"] == "RGB" and params["planar_configuration"] == 0
        return {"data": b"\xff\x4f\xff\x51 not really a codestream", "photometric_interpretation": "YBR_RCT"}

    codecs.register_encoder(J2K_LOSSLESS, fake)
    out = tmp_path / "rct.dcm"
    codecs.compress(str(bundled("examples_rgb_color.dcm")), str(out), J2K_LOSSLESS, verify=False)
    assert pydicom.dcmread(out).PhotometricInterpretation == "YBR_RCT"


def test_a_decoder_can_say_its_output_is_planar(registry, tmp_path):
    rgb = decoded(bundled("examples_rgb_color.dcm"))[0]

    def planar(data, params):
        return {"data": np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes(), "planar_configuration": 1}

    codecs.register_encoder(J2K_LOSSLESS, lambda data, params: b"\xff\x4f\xff\x51")
    out = tmp_path / "p.dcm"
    codecs.compress(str(bundled("examples_rgb_color.dcm")), str(out), J2K_LOSSLESS, verify=False)
    codecs.register_decoder(J2K_LOSSLESS, planar)
    arr, _ = codecs.PixelSource(str(out), "p.dcm").decode_frame(0)
    assert np.array_equal(arr, rgb)


def test_a_codec_that_did_not_load_is_named_until_one_is_registered(registry):
    path, name = str(bundled("MR_small_jp2klossless.dcm")), "jp2k.dcm"
    codecs.register_unavailable(J2K_LOSSLESS, "the JPEG 2000 codec did not load (HTTP 404)")
    try:
        pixels.forget()
        why = pixels.frame_info(path, name)["why_not"]
        assert why == (f"The pixel data of {name} is compressed with {J2K_LOSSLESS.name} ({J2K_LOSSLESS}), which "
                       "could not be decoded: the JPEG 2000 codec did not load (HTTP 404).")
        with pytest.raises(DicomStudioError, match="codec did not load"):
            codecs.compress(path, "/nonexistent/out.dcm", EXPLICIT, name=name)
        codecs.register_decoder(J2K_LOSSLESS, lambda data, params: bytes(64 * 64 * 2))
        pixels.forget()
        assert pixels.frame_info(path, name)["decodable"]
    finally:
        codecs.unregister_decoder(J2K_LOSSLESS)
    pixels.forget()
    assert "cannot decode yet" in pixels.frame_info(path, name)["why_not"]


class JsProxyStandIn:
    """What a JavaScript codec's result is in Pyodide: an object whose to_py() gives a dict."""

    def __init__(self, value):
        self.value = value

    def to_py(self):
        return self.value


def test_a_javascript_codec_result_and_error_are_understood(registry, tmp_path):
    rgb = decoded(bundled("examples_rgb_color.dcm"))[0]
    planar = memoryview(np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes())
    codecs.register_encoder(J2K_LOSSLESS, lambda data, params: JsProxyStandIn(memoryview(b"\xff\x4f\xff\x51")))
    out = tmp_path / "js.dcm"
    codecs.compress(str(bundled("examples_rgb_color.dcm")), str(out), J2K_LOSSLESS, verify=False)
    codecs.register_decoder(J2K_LOSSLESS, lambda data, params: JsProxyStandIn({"data": planar, "planar_configuration": 1}))
    assert np.array_equal(codecs.PixelSource(str(out), "js.dcm").decode_frame(0)[0], rgb)

    def refusing(data, params):
        raise RuntimeError("Error: HTJ2K is written here for greyscale only")  # a JsException's text

    codecs.register_encoder(J2K_LOSSLESS, refusing)
    with pytest.raises(DicomStudioError, match=r"Lossless Only\): HTJ2K is written here for greyscale only$"):
        codecs.compress(str(bundled("MR_small.dcm")), str(tmp_path / "no.dcm"), J2K_LOSSLESS)


# --- the page's wasm codecs (static/codecs.js), inside Pyodide only -------------------------------

JPEG_LS_LOSSLESS = uids.JPEGLSLossless
HTJ2K_LOSSLESS = uids.UID("1.2.840.10008.1.2.4.201")
# What the wasm encoders refuse, by design, with a sentence naming it, and which sources.
WASM_REFUSALS = ("1-bit pixel data", "up to 16 bits stored", "greyscale only", "colour of up to 8 bits",
                 "RGB colour transform")
_COLOUR_SOURCES = {name for name in SOURCES if name.startswith(("SC_", "examples_rgb", "examples_ybr"))}
WASM_REFUSED = {
    JPEG_LS_LOSSLESS: NATIVE_ONLY,
    J2K_LOSSLESS: NATIVE_ONLY | {"SC_rgb_rle_16bit_2frame.dcm", "SC_ybr_full_422_uncompressed.dcm"},
    HTJ2K_LOSSLESS: NATIVE_ONLY | _COLOUR_SOURCES,
}


@pytest.fixture
def wasm_codecs(registry):
    """The page's wasm codecs registered for one test (tests/pyodide/run.mjs loads them)."""
    wasm = pytest.importorskip("page_wasm_codecs", reason="the page's wasm codecs load in the Pyodide run only")
    assert not wasm.unavailable.to_py(), f"wasm codecs did not load: {wasm.unavailable.to_py()}"
    for ts, fn in wasm.decoders.to_py().items():
        codecs.register_decoder(ts, fn)
    for ts, fn in wasm.encoders.to_py().items():
        codecs.register_encoder(ts, fn)


@pytest.mark.parametrize("target", [JPEG_LS_LOSSLESS, J2K_LOSSLESS, HTJ2K_LOSSLESS], ids=lambda t: t.name)
def test_wasm_codecs_write_every_source_losslessly_or_say_why(wasm_codecs, tmp_path, target):
    refused = set()
    for name in SOURCES:
        out = tmp_path / f"{name}.dcm"
        try:
            result = codecs.compress(str(bundled(name)), str(out), target, name=name)
        except DicomStudioError as error:
            assert any(reason in str(error) for reason in WASM_REFUSALS), str(error)
            refused.add(name)
            continue
        assert result["verified"], name
        assert np.array_equal(decoded(out), decoded(bundled(name))), name
    assert refused == WASM_REFUSED[target]


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"])
def test_wasm_decoders_give_the_uncompressed_pixels(wasm_codecs, name):
    ours, _ = codecs.PixelSource(str(bundled(name)), name).decode_frame(0)
    assert np.array_equal(ours, pydicom.dcmread(bundled("MR_small.dcm"), force=True).pixel_array)


@pytest.mark.parametrize("name, syntax, said", [
    ("MR_small_jp2klossless.dcm", J2K_LOSSLESS, "JPEG 2000 could not decode this frame"),
    ("MR_small_jpeg_ls_lossless.dcm", JPEG_LS_LOSSLESS, "JPEG-LS could not decode this frame"),
])
def test_a_broken_codestream_is_named_and_the_codec_goes_on(wasm_codecs, tmp_path, name, syntax, said):
    ds = pydicom.dcmread(bundled(name))
    ds.PixelData = encapsulate([ds.PixelData[20:40] + bytes(100)])  # a codestream without its header
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    with pytest.raises(InvalidDicomError, match=said):
        codecs.PixelSource(str(broken), "broken.dcm").decode_frame(0)
    assert codecs.PixelSource(str(bundled(name)), name).decode_frame(0)[0].shape == (64, 64)


def test_registration_refuses_what_it_cannot_host():
    with pytest.raises(ValueError):
        codecs.register_decoder(EXPLICIT, j2k_decoder)
    with pytest.raises(ValueError):
        codecs.register_encoder(uids.JPEGExtended12Bit, j2k_encoder)
    with pytest.raises(TypeError):
        codecs.register_decoder(J2K_LOSSLESS, "not callable")


# --- cost ----------------------------------------------------------------------------------------

def test_rewriting_keeps_memory_per_frame_whatever_the_frame_count(tmp_path):
    peaks = []
    for count in (5, 40):
        frames = np.random.default_rng(count).integers(0, 1024, size=(count, 256, 256), dtype=np.uint16)
        path = write_image(tmp_path / f"{count}.dcm", frames)
        tracemalloc.start()
        result = codecs.compress(path, str(tmp_path / f"{count}_rle.dcm"), RLE, verify=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert result["frames"] == count
    # 40 frames hold 5.2 MB of pixels; the peak is that of one frame's work in both cases.
    assert peaks[1] < peaks[0] * 1.2 and peaks[1] < 8_000_000, peaks


def test_our_rle_bytes_are_pydicoms(tmp_path):
    """The numpy encoder writes exactly what pydicom's pure-Python encoder writes, ~10x faster."""
    rng = np.random.default_rng(7)
    encoder = pydicom.pixels.get_encoder(RLE)
    for arr in (
        rng.normal(0, 300, size=(64, 300)).astype(np.int16),
        np.repeat(rng.integers(0, 3, size=(40, 7, 3), dtype=np.uint8), 60, axis=1),  # runs past 128
        np.repeat(rng.integers(0, 2, size=(9, 500), dtype=np.uint16), 2, axis=0),
        rng.integers(0, 256, size=(1, 1), dtype=np.uint8),
    ):
        samples = arr.shape[2] if arr.ndim == 3 else 1
        expected = encoder.encode(
            arr, encoding_plugin="pydicom", rows=arr.shape[0], columns=arr.shape[1], samples_per_pixel=samples,
            bits_allocated=arr.dtype.itemsize * 8, bits_stored=arr.dtype.itemsize * 8,
            pixel_representation=int(arr.dtype.kind == "i"), planar_configuration=0, number_of_frames=1,
            photometric_interpretation="RGB" if samples == 3 else "MONOCHROME2",
        )
        assert codecs.rle_encode_frame(arr) == expected
    ct = rng.normal(0, 200, size=(512, 512)).astype(np.int16)
    # CPU time: the suite runs another process beside this one (tests/conftest.py)
    clock = cpu_clock()
    started = clock()
    codecs.rle_encode_frame(ct)
    ours = clock() - started
    started = clock()
    encoder.encode(ct, encoding_plugin="pydicom", rows=512, columns=512, samples_per_pixel=1, bits_allocated=16,
                   bits_stored=16, pixel_representation=1, photometric_interpretation="MONOCHROME2", number_of_frames=1)
    assert ours < (clock() - started) / 3

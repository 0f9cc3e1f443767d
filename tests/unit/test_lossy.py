"""Lossy compression: JPEG 2000 at a chosen ratio, JPEG Baseline at a chosen quality, never unless asked.

The JPEG 2000 codec is the page's wasm OpenJPEG in the Pyodide run, pylibjpeg-openjpeg in CPython;
JPEG Baseline is Pillow in both. Each output is read again by pydicom, and in CPython decoded by
pydicom's own plugins (pylibjpeg-openjpeg, Pillow) to check the PSNR and the largest error the
report gives; dciodvfy judges that no output gains an error over its input.
"""

import json
import math
import os
import zipfile

import numpy as np
import pydicom
import pytest
from pydicom import uid as uids
from pydicom.encaps import generate_frames

from conftest import bundled
from dcmstudio import codecs, jobs, lossy
from dcmstudio.create.pr import create_gsps
from dcmstudio.errors import DicomStudioError
from test_codecs import inflated
from test_create_judges import IN_PYODIDE, dciodvfy, needs

J2K = uids.JPEG2000
BASELINE = uids.JPEGBaseline8Bit


@pytest.fixture
def j2k_codec():
    """The JPEG 2000 codec of this runtime registered for one test, then withdrawn."""
    if IN_PYODIDE:
        wasm = pytest.importorskip("page_wasm_codecs", reason="the page's wasm codecs load in the Pyodide run only")
        for ts, fn in wasm.decoders.to_py().items():
            codecs.register_decoder(ts, fn)
        for ts, fn in wasm.encoders.to_py().items():
            codecs.register_encoder(ts, fn)
    elif not codecs.register_pylibjpeg_openjpeg():
        pytest.skip("pylibjpeg-openjpeg is not installed")
    codecs.adopt_late_pillow()
    yield
    for ts in codecs.registered_decoders():
        codecs.unregister_decoder(ts)
    for ts in codecs.registered_encoders():
        codecs.unregister_encoder(ts)


def frames_of(path):
    """Every frame as pydicom decodes the whole file with its own plugins (colour as RGB)."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.astype(np.float64)
    return arr.reshape((int(ds.get("NumberOfFrames") or 1), *arr.shape[-3 if ds.SamplesPerPixel > 1 else -2:]))


def psnr_and_largest_error(source, output, bits_stored):
    difference = frames_of(output) - frames_of(source)
    mse = float(np.mean(np.square(difference)))
    return 10 * math.log10((2 ** bits_stored - 1) ** 2 / mse), int(np.abs(difference).max())


def values(ds, keyword):
    """An element's values as a list of str (none when absent)."""
    value = ds.get(keyword)
    if value in (None, ""):
        return []
    return [str(v) for v in value] if isinstance(value, pydicom.multival.MultiValue) else [str(value)]


CASES = [
    ("CT_small.dcm", J2K, {"ratio": 10}),  # signed 16-bit
    ("MR_small.dcm", J2K, {"ratio": 5}),
    ("examples_overlay.dcm", J2K, {"ratio": 10}),  # 12 of 16 bits: the ratio is still against 16
    ("examples_rgb_color.dcm", J2K, {"ratio": 20}),  # RGB: the irreversible colour transform
    ("image_dfl.dcm", BASELINE, {"quality": 75}),  # 8-bit grey, deflated
    ("examples_rgb_color.dcm", BASELINE, {"quality": 50}),
    ("SC_rgb_jpeg_dcmtk.dcm", J2K, {"ratio": 20}),  # already lossy: history kept
    ("SC_rgb_rle_2frame.dcm", J2K, {"ratio": 10}),  # two frames: one ratio over both
    ("SC_rgb_rle_2frame.dcm", BASELINE, {"quality": 90}),
    ("SC_ybr_full_422_uncompressed.dcm", BASELINE, {"quality": 90}),  # YBR taken as RGB, then JPEG's own YCbCr
]
# A flat test image compresses further than the ratio asked: OpenJPEG's ratio is a bound, reached on detail.
FLAT = {"SC_rgb_rle_2frame.dcm"}


@pytest.mark.parametrize("name, ts, setting", CASES, ids=lambda v: str(v))
def test_lossy_output_says_so_and_its_report_is_what_pydicom_measures(j2k_codec, tmp_path, name, ts, setting):
    source = pydicom.dcmread(bundled(name))
    out = tmp_path / "out.dcm"
    report = codecs.compress(str(bundled(name)), str(out), ts, name=name,
                             lossy_settings=lossy.LossySettings(ts, **setting))
    ds = pydicom.dcmread(out)
    assert ds.file_meta.TransferSyntaxUID == ts
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == report["sop_instance_uid"]["new"]
    assert ds.SOPInstanceUID != source.SOPInstanceUID == report["sop_instance_uid"]["old"]
    assert ds.LossyImageCompression == "01"
    methods = values(ds, "LossyImageCompressionMethod")
    assert methods == values(source, "LossyImageCompressionMethod") + [lossy.LOSSY_METHODS[ts]]
    ratios = values(ds, "LossyImageCompressionRatio")
    assert len(ratios) == len(methods) and ratios[:-1] == values(source, "LossyImageCompressionRatio")
    # the achieved ratio is uncompressed bytes over compressed bytes, and it is what the header says
    frames = int(ds.get("NumberOfFrames") or 1)
    uncompressed = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8 * frames
    compressed = sum(len(frame) for frame in generate_frames(ds.PixelData, number_of_frames=frames))
    assert float(ratios[-1]) == pytest.approx(report["lossy"]["achieved_ratio"], rel=0.01)
    assert report["lossy"]["achieved_ratio"] == pytest.approx(uncompressed / compressed, rel=0.02)
    if "ratio" in setting and name not in FLAT:
        assert report["lossy"]["achieved_ratio"] == pytest.approx(setting["ratio"], rel=0.15)
    elif "ratio" in setting:
        assert report["lossy"]["achieved_ratio"] >= setting["ratio"] * 0.85
    assert ds.get("ImageType", ["DERIVED"])[0] == "DERIVED" and ("ImageType" in ds) == ("ImageType" in source)
    predecessor = ds.SourceImageSequence[-1]
    assert predecessor.ReferencedSOPInstanceUID == source.SOPInstanceUID
    was_lossy = source.file_meta.TransferSyntaxUID == BASELINE or source.get("LossyImageCompression") == "01"
    assert predecessor.PurposeOfReferenceCodeSequence[0].CodeValue == ("121330" if was_lossy else "121320")
    assert report["lossy"]["psnr_db"] > 25 and report["lossy"]["max_abs_error"] > 0


@pytest.mark.skipif(IN_PYODIDE, reason="pydicom's own JPEG 2000 plugin (pylibjpeg-openjpeg) runs in CPython only")
@pytest.mark.parametrize("name, ts, setting", CASES, ids=lambda v: str(v))
def test_the_reported_psnr_and_largest_error_are_what_pydicoms_own_decoders_find(j2k_codec, tmp_path, name, ts,
                                                                                  setting):
    if ts == J2K:
        pytest.importorskip("openjpeg")
    out = tmp_path / "out.dcm"
    measured = codecs.compress(str(bundled(name)), str(out), ts, name=name,
                               lossy_settings=lossy.LossySettings(ts, **setting))["lossy"]
    psnr, largest = psnr_and_largest_error(bundled(name), out, pydicom.dcmread(bundled(name)).BitsStored)
    assert measured["psnr_db"] == pytest.approx(psnr, abs=0.05)
    assert measured["max_abs_error"] == largest


@needs("dciodvfy")
@pytest.mark.parametrize("name, ts, setting", CASES, ids=lambda v: str(v))
def test_lossy_outputs_gain_no_dciodvfy_error(j2k_codec, tmp_path, name, ts, setting):
    out = tmp_path / "out.dcm"
    codecs.compress(str(bundled(name)), str(out), ts, name=name, lossy_settings=lossy.LossySettings(ts, **setting))
    before, _ = dciodvfy(inflated(bundled(name), tmp_path))  # dciodvfy does not read deflate
    after, _ = dciodvfy(out)
    assert set(after) <= set(before), set(after) - set(before)


def test_lossy_is_never_chosen_silently(j2k_codec, tmp_path):
    out = tmp_path / "out.dcm"
    for ts in (J2K, BASELINE):
        with pytest.raises(DicomStudioError, match="never compresses lossily unless asked"):
            codecs.compress(str(bundled("image_dfl.dcm")), str(out), ts, name="image_dfl.dcm")
    assert not out.exists()
    with pytest.raises(DicomStudioError, match="lossless"):
        jobs.start("compress", {"transfer_syntax": str(uids.RLELossless), "lossy": {"ratio": 10}}, 1,
                   lambda p: str(tmp_path / p))
    with pytest.raises(DicomStudioError, match="compression ratio must be"):
        jobs.start("compress", {"transfer_syntax": str(J2K)}, 1, lambda p: str(tmp_path / p))


@pytest.mark.parametrize("ts, setting, message", [
    (J2K, {}, "ratio must be a number from 1.5 to 1000; none was given"),
    (J2K, {"ratio": 1}, "from 1.5 to 1000, not 1"),
    (J2K, {"ratio": "ten"}, "'ten' is not one"),
    (J2K, {"ratio": float("nan")}, "from 1.5 to 1000"),
    (J2K, {"quality": 80}, "not a quality"),
    (BASELINE, {"quality": 101}, "from 1 to 100"),
    (BASELINE, {"quality": 80.5}, "is not one"),
    (BASELINE, {"ratio": 10}, "not a compression ratio"),
    (uids.RLELossless, {"ratio": 10}, "not a lossy transfer syntax"),
])
def test_settings_are_checked_with_a_sentence(ts, setting, message):
    with pytest.raises(DicomStudioError, match=message):
        lossy.LossySettings(ts, **setting)


@pytest.mark.parametrize("name, ts, setting, message", [
    ("CT_small.dcm", BASELINE, {"quality": 90}, "JPEG Baseline holds 8-bit samples only"),
    ("examples_palette.dcm", J2K, {"ratio": 10}, "PALETTE COLOR"),
    ("examples_palette.dcm", BASELINE, {"quality": 90}, "PALETTE COLOR"),
])
def test_what_lossy_compression_cannot_hold_is_refused_by_name(j2k_codec, tmp_path, name, ts, setting, message):
    out = tmp_path / "out.dcm"
    with pytest.raises(DicomStudioError, match=message) as caught:
        codecs.compress(str(bundled(name)), str(out), ts, name=name, lossy_settings=lossy.LossySettings(ts, **setting))
    assert name in str(caught.value) and not out.exists()


def test_a_source_without_measurable_output_is_not_kept(tmp_path):
    # JPEG 2000 encoded by a stand-in but no decoder: the output cannot be measured, so it is dropped
    codecs.register_encoder(J2K, lambda data, params: b"\xff\x4f\xff\x51" + bytes(16))
    try:
        out = tmp_path / "out.dcm"
        with pytest.raises(DicomStudioError, match="cannot be decoded again here to measure it"):
            codecs.compress(str(bundled("MR_small.dcm")), str(out), J2K, name="MR_small.dcm",
                            lossy_settings=lossy.LossySettings(J2K, ratio=10))
        assert not out.exists() and not os.path.exists(str(out) + ".frames")
    finally:
        codecs.unregister_encoder(J2K)


def test_fidelity_counts_every_sample():
    fidelity = lossy.Fidelity(8)
    fidelity.add(np.zeros((2, 2), np.uint8), np.array([[0, 0], [0, 2]], np.uint8))
    fidelity.add(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    report = fidelity.report()
    assert report["max_abs_error"] == 2
    assert report["psnr_db"] == pytest.approx(10 * math.log10(255 ** 2 / (4 / 8)), abs=0.01)
    assert lossy.Fidelity(8).report()["psnr_db"] is None  # nothing differs: no finite PSNR


def test_references_follow_the_instances_recompressed_in_the_run(j2k_codec, tmp_path):
    """A GSPS of image_dfl, selected with it: the GSPS is written last and points at the new UID."""
    gsps = tmp_path / "gsps.dcm"
    made = create_gsps(str(bundled("image_dfl.dcm")), str(gsps), "note", 128, 256)
    image_uid = pydicom.dcmread(bundled("image_dfl.dcm")).SOPInstanceUID
    items = [{"path": str(gsps), "name": "gsps.dcm", "sop_instance_uid": made["sop_instance_uid"]},
             {"path": str(bundled("image_dfl.dcm")), "name": "image_dfl.dcm", "sop_instance_uid": image_uid},
             {"path": str(bundled("CT_small.dcm")), "name": "CT_small.dcm"}]  # 16-bit: refused
    options = {"transfer_syntax": str(BASELINE), "lossy": {"quality": 80}, "key": "ab" * 16,
               "instances": [item.get("sop_instance_uid") for item in items]}
    scratch = tmp_path / "scratch"
    job = jobs.start("compress", options, len(items), lambda p: str(scratch / p))
    steps = [jobs.step(job, item) for item in items]
    assert steps[0]["deferred"]["file"] == "gsps.dcm"
    assert steps[1]["report"]["lossy"]["quality"] == 80
    assert steps[1]["report"]["new_errors"] == []  # our own validation, input against output
    assert "8-bit samples only" in steps[2]["error"]["message"]
    result = jobs.finish(job)
    new_image_uid = steps[1]["report"]["sop_instance_uid"]["new"]
    assert new_image_uid == lossy_uid(options["key"], image_uid)  # keyed: every worker agrees
    assert result["deferred"][0]["report"]["references_followed"] == [image_uid]
    assert result["deferred"][0]["report"]["new_errors"] == []
    assert result["summary"]["dangling_references"] == []
    zip_path = tmp_path / "out.zip"
    with open(zip_path, "wb") as f:
        for chunk in result["chunks"]:
            with open(chunk["path"], "rb") as part:
                f.write(part.read())
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["gsps.dcm", "image_dfl.dcm"]
        z.extractall(tmp_path / "unzipped")
    pr = pydicom.dcmread(tmp_path / "unzipped" / "gsps.dcm")
    image = pydicom.dcmread(tmp_path / "unzipped" / "image_dfl.dcm")
    assert image.SOPInstanceUID == new_image_uid
    referenced = pr.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert referenced == new_image_uid
    assert pr.SOPInstanceUID == lossy_uid(options["key"], made["sop_instance_uid"])
    assert pr.file_meta.MediaStorageSOPInstanceUID == pr.SOPInstanceUID
    # nothing else in the presentation state changed
    pr.SOPInstanceUID = made["sop_instance_uid"]
    pr.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID = image_uid
    assert pr == pydicom.dcmread(gsps)
    assert json.dumps(result["summary"])  # plain data for the page


def lossy_uid(key_hex, old):
    from dcmstudio import uids as new_uids
    return new_uids.keyed_uid(bytes.fromhex(key_hex), old)


def test_a_reference_to_an_image_not_written_is_named(j2k_codec, tmp_path):
    gsps = tmp_path / "gsps.dcm"
    made = create_gsps(str(bundled("CT_small.dcm")), str(gsps), "note", 40, 400)
    ct_uid = pydicom.dcmread(bundled("CT_small.dcm")).SOPInstanceUID
    items = [{"path": str(bundled("CT_small.dcm")), "name": "CT_small.dcm", "sop_instance_uid": ct_uid},
             {"path": str(gsps), "name": "gsps.dcm", "sop_instance_uid": made["sop_instance_uid"]}]
    options = {"transfer_syntax": str(BASELINE), "lossy": {"quality": 80},
               "instances": [item["sop_instance_uid"] for item in items]}
    job = jobs.start("compress", options, len(items), lambda p: str(tmp_path / "scratch" / p))
    for item in items:
        jobs.step(job, item)
    result = jobs.finish(job)
    # the CT could not be JPEG Baseline, so the GSPS refers to no image written: it is not written either
    assert result["summary"]["files"] == 0
    assert "refers to no image recompressed in this run" in result["deferred"][0]["error"]["message"]


def test_the_command_compresses_lossily_only_when_asked(tmp_path, capsys):
    from dcmstudio.cli import main
    if not codecs.register_pylibjpeg_openjpeg():
        pytest.skip("pylibjpeg-openjpeg is not installed")
    try:
        source = tmp_path / "in"
        source.mkdir()
        for name in ("CT_small.dcm", "MR_small.dcm"):
            (source / name).write_bytes(bundled(name).read_bytes())
        assert main(["compress", "-q", "--syntax", "j2k-lossy", str(source), "-o", str(tmp_path / "none")]) == 2
        assert "compression ratio must be a number" in capsys.readouterr().err
        assert main(["compress", "-q", "--syntax", "rle", "--ratio", "10", str(source),
                     "-o", str(tmp_path / "no")]) == 2
        report = tmp_path / "report.jsonl"
        assert main(["compress", "-q", "--syntax", "j2k-lossy", "--ratio", "8", str(source),
                     "-o", str(tmp_path / "out"), "--report", str(report)]) == 0
        lines = [json.loads(line) for line in report.read_text().splitlines()]
        for line in lines[:-1]:
            assert line["report"]["lossy"]["achieved_ratio"] == pytest.approx(8, rel=0.15)
            out = pydicom.dcmread(tmp_path / "out" / line["file"])
            assert out.file_meta.TransferSyntaxUID == J2K and out.LossyImageCompressionMethod == "ISO_15444_1"
            assert out.SOPInstanceUID == line["report"]["sop_instance_uid"]["new"]
    finally:
        for ts in codecs.registered_decoders():
            codecs.unregister_decoder(ts)
        for ts in codecs.registered_encoders():
            codecs.unregister_encoder(ts)


def test_attributes_the_iod_does_not_hold_are_not_added(j2k_codec, tmp_path):
    """An enhanced image has no top-level Source Image Sequence or Derivation Description."""
    ds = pydicom.dcmread(bundled("MR_small.dcm"))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = uids.EnhancedMRImageStorage
    enhanced = tmp_path / "enhanced.dcm"
    ds.save_as(enhanced)
    out = tmp_path / "out.dcm"
    codecs.compress(str(enhanced), str(out), J2K, name="enhanced.dcm",
                    lossy_settings=lossy.LossySettings(J2K, ratio=10))
    written = pydicom.dcmread(out)
    assert written.LossyImageCompression == "01" and written.LossyImageCompressionMethod == "ISO_15444_1"
    assert "SourceImageSequence" not in written and "DerivationDescription" not in written


def test_an_image_left_referring_to_one_not_written_is_named(j2k_codec, tmp_path):
    ct_uid = pydicom.dcmread(bundled("CT_small.dcm")).SOPInstanceUID
    ds = pydicom.dcmread(bundled("image_dfl.dcm"))
    reference = pydicom.Dataset()
    reference.ReferencedSOPClassUID = uids.CTImageStorage
    reference.ReferencedSOPInstanceUID = ct_uid
    ds.ReferencedImageSequence = [reference]
    referring = tmp_path / "referring.dcm"
    ds.save_as(referring)
    items = [{"path": str(referring), "name": "referring.dcm", "sop_instance_uid": ds.SOPInstanceUID},
             {"path": str(bundled("CT_small.dcm")), "name": "CT_small.dcm", "sop_instance_uid": ct_uid}]
    options = {"transfer_syntax": str(BASELINE), "lossy": {"quality": 90},
               "instances": [item["sop_instance_uid"] for item in items]}
    job = jobs.start("compress", options, len(items), lambda p: str(tmp_path / "scratch" / p))
    steps = [jobs.step(job, item) for item in items]
    assert steps[0]["report"]["references_followed"] == [ct_uid]
    # the CT is 16-bit: not written as JPEG Baseline, so the reference made to its new UID dangles, and says so
    dangling = jobs.finish(job)["summary"]["dangling_references"]
    assert dangling == [{"file": "referring.dcm", "refers_to": ["CT_small.dcm"]}]

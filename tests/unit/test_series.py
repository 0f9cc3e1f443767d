"""Writing a volume as a DICOM series: options, names, SOP classes, pixel values, UIDs, text,
the encoded header, streaming, cancel, and dciodvfy/dcentvfy as judges.

Each write-dicom failure FACTS.md lists has a test named after it (``test_seed_...``). The
external judges (dciodvfy, dcentvfy) skip in Pyodide and where they are not installed.
"""

import json
import os
import subprocess
import zipfile

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from test_create_judges import needs, tool
from test_volume import DIRECTIONS, ORIGIN, SPACING, sample_voxels, write_dicom_series

from dcmstudio.archive import ChunkSink, ZipWriter, read_parts
from dcmstudio.errors import VolumeError
from dcmstudio.series import SeriesWriter, file_name_formatter, make_plan, plan_series, write_series
from dcmstudio.series_header import (IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME,
                                     PER_SLICE, FileStart, Template, build_header, encode_dataset)
from dcmstudio.uids import new_uid
from dcmstudio.volume import Volume, read_volume

# dciodvfy warnings we accept, each for a reason: Laterality is honestly unknown; the Secondary
# Capture IOD does not list the Image Plane attributes that readers need to place the slices.
ALLOWED_WARNINGS = (
    "Laterality(0020,0060)> - is only permitted to be empty when actually unknown",
    "Missing attribute or value that would be needed to build DICOMDIR",
)
SC_PLANE_WARNINGS = ("SliceThickness", "SpacingBetweenSlices", "ImagePositionPatient",
                     "ImageOrientationPatient", "FrameOfReferenceUID",
                     "PositionReferenceIndicator", "SliceLocation")
# MR's IOD has no Modality LUT; values that need a rescale (floats) get one anyway, since every
# reader (pydicom, SimpleITK, dcm2niix) applies it: dciodvfy warns, and the values are right.
MR_RESCALE_WARNINGS = ("RescaleIntercept(0028,1052)", "RescaleSlope(0028,1053)")


def judge(*args):
    result = subprocess.run(args, capture_output=True, timeout=120)
    return (result.stdout + result.stderr).decode("utf-8", "replace")


def volume_of(dtype="int16", case="axial", **kwargs):
    return Volume(sample_voxels(dtype), SPACING, ORIGIN, DIRECTIONS[case],
                  source_name=kwargs.pop("source_name", "v.nii"), **kwargs)


def written(tmp_path, volume, options=None, name="out", **kwargs):
    result = write_series(volume, options or {}, str(tmp_path / name), **kwargs)
    return result, [pydicom.dcmread(p) for p in result["paths"]]


# ---- options and names -----------------------------------------------------------------------

def test_defaults_for_a_file_source():
    plan = plan_series(volume_of())
    assert plan["modality"] == "OT" and plan["sop_class_name"] == "Secondary Capture Image Storage"
    assert plan["file_names"][:2] == ["IM0001.dcm", "IM0002.dcm"] and plan["file_count"] == 6
    assert plan["options"]["series_description"] == "From v.nii"
    assert plan["study_uid_source"] == plan["series_uid_source"] == "new"
    assert plan["study_instance_uid"] is None and plan["exact"] is True


def test_plan_result_and_volume_summary_are_json_plain(tmp_path):
    volume = volume_of("float32", case="oblique")
    plan = plan_series(volume, {"modality": "MR"})
    result = write_series(volume, {"modality": "MR", "pattern": "{index}.dcm"},
                          str(tmp_path / "out"))
    for value in (plan, result, volume.summary()):
        assert json.loads(json.dumps(value, allow_nan=False)) == value


def test_a_plan_then_a_write_scan_the_values_once(monkeypatch, tmp_path):
    import dcmstudio.series_pixels as series_pixels
    volume = volume_of("float32")
    calls = []
    original = series_pixels._scan
    monkeypatch.setattr(series_pixels, "_scan", lambda v: calls.append(1) or original(v))
    plan = plan_series(volume, {"modality": "MR"})
    result = write_series(volume, {"modality": "MR"}, str(tmp_path / "out"))
    assert len(calls) == 1 and plan["max_abs_error"] == result["max_abs_error"]


def test_defaults_for_a_dicom_source_keep_patient_and_study(tmp_path):
    source = read_volume(write_dicom_series(tmp_path / "src", sample_voxels(), np.eye(3)))
    result, files = written(tmp_path, source)
    assert result["modality"] == "CT" and result["sop_class_name"] == "CT Image Storage"
    assert all(ds.StudyInstanceUID == "1.2.3.4" for ds in files)
    assert all(ds.FrameOfReferenceUID == "1.2.3.4.6" for ds in files)
    assert all(ds.SeriesInstanceUID not in ("1.2.3.4.5", "") for ds in files)
    assert files[0].PatientName == "Doe^Jane" and files[0].PatientID == "P-1"
    assert files[0].SeriesNumber == 1003 and files[0].StudyDescription == "Source study"
    kept, files = written(tmp_path, source, {"series_instance_uid": "keep"}, name="kept")
    assert kept["series_uid_source"] == "kept"
    assert {ds.SeriesInstanceUID for ds in files} == {"1.2.3.4.5"}


@pytest.mark.parametrize("options, words", [
    ({"colour": "red"}, "Unknown option"),
    ({"patient_name": "Doe\\Jane"}, "backslash"),
    ({"series_description": "x" * 65}, "longer than DICOM allows"),
    ({"modality": "C-T"}, "not a DICOM code"),
    ({"study_instance_uid": "1.2.03"}, "not a valid UID"),
    ({"series_instance_uid": "keep"}, "source is not DICOM"),
    ({"series_number": -1}, "whole number"),
    ({"first_instance_number": True}, "whole number"),
    ({"multiframe": "yes"}, "true or false"),
])
def test_invalid_options_are_refused_with_a_sentence(options, words):
    with pytest.raises(VolumeError, match=words):
        plan_series(volume_of(), options)


@pytest.mark.parametrize("pattern, first, expected", [
    ("IM%04d.dcm", 1, ["IM0001.dcm", "IM0002.dcm"]),
    ("%d", 9, ["9", "10"]),
    ("slice_%i.dcm", 1, ["slice_1.dcm", "slice_2.dcm"]),
    ("{index}.dcm", 99, ["99.dcm", "100.dcm"]),
    ("ct_{index:05d}", 1, ["ct_00001", "ct_00002"]),
    ("%%%3d.dcm", 1, ["%  1.dcm", "%  2.dcm"]),
])
def test_seed_patterns_other_than_percent_04d(pattern, first, expected):
    plan = plan_series(volume_of(), {"pattern": pattern, "first_instance_number": first})
    assert plan["file_names"][:2] == expected
    assert len(set(plan["file_names"])) == plan["file_count"]
    assert plan["instance_numbers"] == [first, first + 5]


@pytest.mark.parametrize("pattern", ["slice.dcm", "%d_%d.dcm", "a/%d.dcm", "%s.dcm", "{name}%d",
                                     "50%.dcm%d"])
def test_patterns_without_exactly_one_number_are_refused(pattern):
    with pytest.raises(VolumeError, match="pattern"):
        file_name_formatter(pattern)


def test_file_names_follow_instance_numbers(tmp_path):
    _, files = written(tmp_path, volume_of(), {"pattern": "s{index}.dcm",
                                               "first_instance_number": 7})
    for ds in files:
        assert os.path.basename(ds.filename) == f"s{ds.InstanceNumber}.dcm"
    assert sorted(ds.InstanceNumber for ds in files) == list(range(7, 13))


# ---- SOP class and IOD -----------------------------------------------------------------------

@pytest.mark.parametrize("modality, dtype, expected", [
    ("CT", "int16", "CT Image Storage"),
    ("MR", "uint16", "MR Image Storage"),
    ("PT", "float32", "Secondary Capture Image Storage"),
    ("OT", "uint8", "Secondary Capture Image Storage"),
])
def test_seed_sop_class_follows_the_modality(modality, dtype, expected):
    plan = plan_series(volume_of(dtype), {"modality": modality})
    assert plan["sop_class_name"] == expected


def test_rgb_is_secondary_capture_with_rgb_photometric(tmp_path):
    voxels = np.stack([sample_voxels("uint8")] * 3, axis=-1)
    voxels[..., 2] = 17
    volume = Volume(voxels, SPACING, ORIGIN, np.eye(3), source_name="rgb.nii")
    result, files = written(tmp_path, volume, {"modality": "CT"})
    assert result["sop_class_name"] == "Secondary Capture Image Storage"
    assert files[0].PhotometricInterpretation == "RGB" and files[0].SamplesPerPixel == 3
    np.testing.assert_array_equal(files[3].pixel_array, voxels[3])


IOD_CASES = {
    "CT": ("int16", 1, {"modality": "CT"}),
    "MR": ("uint16", 1, {"modality": "MR"}),
    "MR float": ("float32", 1, {"modality": "MR"}),
    "SC 8-bit": ("uint8", 1, {"modality": "OT"}),
    "SC 16-bit rescaled": ("float32", 1, {"modality": "PT"}),
    "SC RGB": ("uint8", 3, {"modality": "XC"}),
    "MF byte": ("uint8", 1, {"multiframe": True}),
    "MF word": ("int16", 1, {"multiframe": True, "modality": "CT"}),
    "MF word rescaled": ("float64", 1, {"multiframe": True, "modality": "MR"}),
    "MF RGB": ("uint8", 3, {"multiframe": True}),
}


def _iod_volume(dtype, components, case="oblique"):
    voxels = sample_voxels(dtype)
    if components == 3:
        voxels = np.stack([voxels, voxels // 2, 255 - voxels], axis=-1)
    return Volume(voxels, SPACING, ORIGIN, DIRECTIONS[case], source_name="v.nii")


@needs("dciodvfy")
@pytest.mark.parametrize("case", sorted(IOD_CASES))
def test_seed_type_1_and_2_attributes_dciodvfy_reports_no_error(tmp_path, case):
    dtype, components, options = IOD_CASES[case]
    options = dict(options, patient_name="Łukasiewicz^Zoë", study_description="Étude")
    result, _ = written(tmp_path, _iod_volume(dtype, components), options)
    for path in result["paths"]:
        lines = judge(tool("dciodvfy"), "-new", path).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        warnings = [line for line in lines if line.startswith("Warning")
                    and not any(allowed in line for allowed in ALLOWED_WARNINGS)
                    and not (result["sop_class_name"].startswith("Secondary")
                             and "not present in standard DICOM IOD" in line
                             and any(k in line for k in SC_PLANE_WARNINGS))
                    and not (case == "MR float" and any(k in line for k in MR_RESCALE_WARNINGS))]
        assert errors == [], "\n".join(lines)
        assert warnings == [], "\n".join(warnings)


@needs("dcentvfy")
@pytest.mark.parametrize("case", ["CT", "MR", "SC 16-bit rescaled", "SC RGB"])
def test_dcentvfy_finds_each_series_consistent(tmp_path, case):
    dtype, components, options = IOD_CASES[case]
    result, _ = written(tmp_path, _iod_volume(dtype, components), options)
    assert judge(tool("dcentvfy"), *result["paths"]).strip() == ""


# ---- pixel values ----------------------------------------------------------------------------

def decoded(files):
    """Real values as a DICOM reader computes them: stored * slope + intercept, [k, j, i]."""
    files = sorted(files, key=lambda ds: ds.InstanceNumber)
    return np.stack([ds.pixel_array * float(ds.get("RescaleSlope", 1))
                     + float(ds.get("RescaleIntercept", 0)) for ds in files])


@pytest.mark.parametrize("dtype", ["int16", "uint16", "uint8", "int8", "bool"])
def test_small_integers_are_stored_as_they_are(tmp_path, dtype):
    voxels = sample_voxels("int16") % 2 == 1 if dtype == "bool" else sample_voxels(dtype)
    volume = Volume(voxels, SPACING, ORIGIN, np.eye(3), source_name="v.nii")
    result, files = written(tmp_path, volume, {"modality": "CT", "exact": True})
    assert result["exact"] and result["max_abs_error"] == 0.0
    np.testing.assert_array_equal(decoded(files), volume.voxels)
    assert files[0].BitsAllocated == 16


def test_seed_int32_is_stored_exactly_when_its_range_fits(tmp_path):
    narrow = volume_of("int32")
    shifted = Volume(sample_voxels("int32") + 100_000, SPACING, ORIGIN, np.eye(3),
                     source_name="shift.nii")
    for volume in (narrow, shifted):
        result, files = written(tmp_path, volume, {"modality": "CT", "exact": True},
                                name=volume.source_name)
        assert result["exact"] and result["max_abs_error"] == 0.0
        np.testing.assert_array_equal(decoded(files), volume.voxels)
        assert files[0].BitsAllocated == 16 and "OW" == files[0]["PixelData"].VR


def test_seed_int32_beyond_16_bits_is_rescaled_with_its_error_reported(tmp_path):
    voxels = sample_voxels("int32") * 1000 - 300_000
    volume = Volume(voxels, SPACING, ORIGIN, np.eye(3), source_name="wide.nii")
    with pytest.raises(VolumeError, match="cannot be stored exactly"):
        write_series(volume, {"exact": True}, str(tmp_path / "refused"))
    assert not os.path.exists(tmp_path / "refused") and not os.path.exists(tmp_path / "refused.zip")
    result, files = written(tmp_path, volume)
    error = np.max(np.abs(decoded(files) - voxels))
    assert not result["exact"] and 0 < error <= result["max_abs_error"]
    assert result["max_abs_error"] <= (voxels.max() - voxels.min()) / 65535  # half a level, x2


def test_seed_float32_is_never_written_as_raw_float_bytes(tmp_path):
    volume = volume_of("float32")
    result, files = written(tmp_path, volume, {"modality": "MR"})
    for ds in files:
        assert ds.BitsAllocated == 16 and len(ds.PixelData) == ds.Rows * ds.Columns * 2
    error = np.max(np.abs(decoded(files) - volume.voxels.astype(np.float64)))
    assert error <= result["max_abs_error"] < 0.01
    assert result["value_range"] == pytest.approx([float(volume.voxels.min()),
                                                   float(volume.voxels.max())])


def test_whole_number_floats_are_stored_exactly(tmp_path):
    voxels = np.round(sample_voxels("float64"))
    volume = Volume(voxels, SPACING, ORIGIN, np.eye(3), source_name="f.nii")
    result, files = written(tmp_path, volume, {"exact": True})
    assert result["exact"] and files[0].PixelRepresentation == 1
    np.testing.assert_array_equal(decoded(files), voxels)


def test_volume_scaling_is_carried_into_the_rescale(tmp_path):
    volume = Volume(sample_voxels("int16"), SPACING, ORIGIN, np.eye(3), slope=0.5,
                    intercept=-10.0, source_name="scaled.nii")
    result, files = written(tmp_path, volume, {"modality": "CT", "exact": True})
    assert (files[0].RescaleSlope, files[0].RescaleIntercept) == (0.5, -10)
    np.testing.assert_array_equal(decoded(files), volume.voxels * 0.5 - 10)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_in_a_float_volume_is_refused_and_nothing_written(tmp_path, bad):
    voxels = sample_voxels("float32")
    voxels[3, 4, 5] = bad
    volume = Volume(voxels, SPACING, ORIGIN, np.eye(3), source_name="nan.nii")
    with pytest.raises(VolumeError, match="Slice 4 holds NaN or infinite") as caught:
        write_series(volume, {}, str(tmp_path / "out"))
    assert caught.value.file == "nan.nii"
    assert os.listdir(tmp_path) == []


# ---- geometry in the files -------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(DIRECTIONS))
def test_seed_geometry_for_every_direction(tmp_path, case):
    """Slice k at origin + k * spacing_k * third column: sagittal, coronal, oblique included."""
    direction = DIRECTIONS[case]
    _, files = written(tmp_path, volume_of(case=case), {"modality": "CT"})
    normal = np.cross(direction[:, 0], direction[:, 1])
    for ds in files:
        k = ds.InstanceNumber - 1
        position = np.asarray(ORIGIN) + k * SPACING[2] * direction[:, 2]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], position,
                                   atol=1e-4)
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient],
                                   np.concatenate([direction[:, 0], direction[:, 1]]), atol=1e-6)
        assert [float(v) for v in ds.PixelSpacing] == [SPACING[1], SPACING[0]]
        assert float(ds.SliceLocation) == pytest.approx(position @ normal, abs=1e-4)
        assert float(ds.SpacingBetweenSlices) == float(ds.SliceThickness) == SPACING[2]
        assert (ds.Rows, ds.Columns) == (10, 12)


def test_sagittal_secondary_capture_patient_orientation(tmp_path):
    _, files = written(tmp_path, volume_of(case="sagittal"))
    assert list(files[0].PatientOrientation) == ["P", "F"]


# ---- UIDs and text ---------------------------------------------------------------------------

def test_seed_uids_unique_over_100000():
    uids = [new_uid() for _ in range(100_000)]
    assert len(set(uids)) == len(uids)
    assert all(uid.startswith("2.25.") and len(uid) <= 64 for uid in uids[:1000])


def test_uids_in_written_series(tmp_path):
    first, files = written(tmp_path, volume_of(), name="a")
    second, _ = written(tmp_path, volume_of(), name="b")
    sops = [ds.SOPInstanceUID for ds in files]
    assert len(set(sops)) == len(sops) and all(uid.startswith("2.25.") for uid in sops)
    assert {ds.SeriesInstanceUID for ds in files} == {first["series_instance_uid"]}
    assert {ds.FrameOfReferenceUID for ds in files} == {first["frame_of_reference_uid"]}
    assert first["series_instance_uid"] != second["series_instance_uid"]
    assert all(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID for ds in files)


def test_given_uids_are_used(tmp_path):
    result, files = written(tmp_path, volume_of(), {"study_instance_uid": "1.2.826.0.1.3680043.9",
                                                    "series_instance_uid": "new"})
    assert {ds.StudyInstanceUID for ds in files} == {"1.2.826.0.1.3680043.9"}
    assert result["study_uid_source"] == "given" and result["series_uid_source"] == "new"


def test_seed_non_ascii_text_gets_iso_ir_192(tmp_path):
    options = {"patient_name": "Müller^Jürgen=山田^太郎",
               "series_description": "Coupe sagittale",
               "study_description": "Крупный план"}
    result, files = written(tmp_path, volume_of(), options)
    assert result["specific_character_set"] == "ISO_IR 192"
    for ds in files:
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert str(ds.PatientName) == "Müller^Jürgen=山田^太郎"
        assert ds.StudyDescription == "Крупный план"
    with open(result["paths"][0], "rb") as f:
        assert "Крупный план".encode("utf-8") in f.read(4000)


def test_ascii_text_has_no_character_set(tmp_path):
    _, files = written(tmp_path, volume_of(), {"patient_name": "Doe^Jane"})
    assert "SpecificCharacterSet" not in files[0]


# ---- the encoding shortcut is byte for byte what pydicom writes ------------------------------

def test_template_encoding_equals_pydicom_for_every_slice():
    volume = volume_of(case="oblique_left_handed")
    plan = make_plan(volume, {"modality": "CT", "patient_name": "Zoë^Ærø"})
    uids = {"study": new_uid(), "series": new_uid(), "frame_of_reference": new_uid(),
            "sop": [new_uid() for _ in plan.names]}
    header = build_header(plan, uids)
    template = Template(header, PER_SLICE, plan.character_set)
    for k in (0, 3, 5):
        values = {"SOPInstanceUID": uids["sop"][k], "InstanceNumber": str(k + 1),
                  "ImagePositionPatient": ["-1.5", "22", str(k)], "SliceLocation": f"{k}.25"}
        full = build_header(plan, uids)
        for keyword, value in values.items():
            setattr(full, keyword, value)
        assert template.encode(values) == encode_dataset(full, plan.character_set)


def test_file_start_equals_pydicom_file_meta():
    for uid in ("1.2.3", "2.25.1234567890123456789012345678901234567"):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_file_meta_info(fp, meta, enforce_standard=True)
        expected = b"\0" * 128 + b"DICM" + fp.getvalue()
        assert FileStart(pydicom.uid.CTImageStorage).encode(uid) == expected


# ---- streaming, ZIP, cancel ------------------------------------------------------------------

def test_zip_holds_every_file_and_nothing_after_its_end(tmp_path):
    result, files = written(tmp_path, volume_of())
    with zipfile.ZipFile(result["zip_path"]) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == [f"out/{n}" for n in result["file_names"]]
        for name, path in zip(names, result["paths"]):
            assert archive.read(name) == open(path, "rb").read()
    with open(result["zip_path"], "rb") as f:
        assert f.read()[-22:-18] == b"PK\x05\x06"


def test_zip_to_a_stream_and_without_keeping_files(tmp_path):
    sink = ChunkSink(str(tmp_path / "chunks"))
    result = write_series(volume_of(), {}, str(tmp_path / "out"), zip_to=sink, keep_files=False)
    sink.close()
    assert result["paths"] == [] and result["zip_path"] is None
    data = read_parts(sink.take_chunks())
    (tmp_path / "joined.zip").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "joined.zip") as archive:
        assert archive.testzip() is None and len(archive.namelist()) == 6
        assert archive.read("out/IM0002.dcm")[128:132] == b"DICM"
    assert not os.path.exists(tmp_path / "out")


def test_zip_to_the_callers_zip_writer(tmp_path):
    with ZipWriter(str(tmp_path / "job.zip")) as archive:
        archive.add_bytes(b"first", "readme.txt")
        result = write_series(volume_of(), {}, str(tmp_path / "out"), zip_to=archive,
                              keep_files=False)
        archive.add_bytes(b"last", "notes.txt")
    assert result["zip_path"] is None
    with zipfile.ZipFile(tmp_path / "job.zip") as archive:
        names = archive.namelist()
        assert names[0] == "readme.txt" and names[-1] == "notes.txt" and len(names) == 8
        assert archive.testzip() is None


def test_multiframe_zipped_without_keeping_the_file(tmp_path):
    result = write_series(volume_of(), {"multiframe": True}, str(tmp_path / "mf"),
                          zip_to=str(tmp_path / "mf.zip"), keep_files=False)
    assert result["paths"] == [] and sorted(os.listdir(tmp_path)) == ["mf.zip"]
    with zipfile.ZipFile(tmp_path / "mf.zip") as archive:
        assert archive.namelist() == ["mf/IM0001.dcm"]
        assert pydicom.dcmread(archive.open("mf/IM0001.dcm")).NumberOfFrames == 6


def test_progress_and_cancel_leave_nothing_behind(tmp_path):
    seen = []
    result = write_series(volume_of(), {}, str(tmp_path / "out"),
                          progress=lambda done, total: seen.append((done, total)),
                          should_cancel=lambda: len(seen) == 3)
    assert result["cancelled"] and seen == [(1, 6), (2, 6), (3, 6)]
    assert os.listdir(tmp_path) == []


def test_writer_steps_and_cancel_a_multiframe(tmp_path):
    writer = SeriesWriter(volume_of(), {"multiframe": True}, str(tmp_path / "mf"))
    assert writer.total == 6 and writer.step() == 1 and writer.step() == 2
    writer.cancel()
    assert os.listdir(tmp_path) == []


def test_existing_outputs_are_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "IM0003.dcm").write_bytes(b"precious")
    with pytest.raises(VolumeError, match="exists already"):
        write_series(volume_of(), {}, str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == ["IM0003.dcm"]
    assert not os.path.exists(tmp_path / "out.zip")


def test_multiframe_file_reads_back_as_the_same_volume(tmp_path):
    volume = volume_of("int16", case="oblique")
    result = write_series(volume, {"multiframe": True, "modality": "CT"}, str(tmp_path / "mf"))
    assert result["file_count"] == 1 and result["zip_path"] is None
    assert result["sop_class_name"] == "Multi-frame Grayscale Word Secondary Capture Image Storage"
    back = read_volume(result["paths"])
    np.testing.assert_allclose(back.direction, DIRECTIONS["oblique"], atol=1e-6)
    np.testing.assert_allclose(back.origin, ORIGIN, atol=1e-4)
    np.testing.assert_allclose(back.spacing, SPACING, atol=1e-6)
    np.testing.assert_array_equal(back.voxels * back.slope + back.intercept, volume.voxels)


@pytest.mark.parametrize("components", [1, 3])
def test_multiframe_with_an_odd_count_of_pixel_bytes_gets_its_pad_byte(tmp_path, components):
    # 35 × 29 × 5 bytes (× 3 for RGB) is odd: Pixel Data's value is padded to an even length.
    rng = np.random.default_rng(3)
    voxels = rng.integers(0, 256, size=(5, 29, 35) + ((3,) if components == 3 else ()),
                          dtype=np.uint8)
    volume = Volume(voxels, SPACING, ORIGIN, DIRECTIONS["oblique"], source_name="odd.mha")
    result, (ds,) = written(tmp_path, volume, {"multiframe": True})
    pixel_bytes = voxels.size
    assert pixel_bytes % 2 == 1
    assert len(ds.PixelData) == pixel_bytes + 1 and ds.PixelData[-1:] == b"\0"
    assert os.path.getsize(result["paths"][0]) == result["bytes_written"]
    np.testing.assert_array_equal(ds.pixel_array, voxels)
    back = read_volume(result["paths"])
    np.testing.assert_array_equal(back.voxels, voxels)
    if tool("dciodvfy"):
        errors = [line for line in judge(tool("dciodvfy"), "-new", result["paths"][0]).splitlines()
                  if line.startswith("Error")]
        assert errors == []


# ---- a DICOM source's acquisition is carried into its re-export ------------------------------

CT_ACQUISITION = {
    "SliceThickness": "1.0", "PatientPosition": "FFS", "KVP": "120", "Manufacturer": "ACME",
    "ManufacturerModelName": "Scanner 9", "InstitutionName": "Hôpital", "StationName": "CT1",
    "BodyPartExamined": "CHEST", "ConvolutionKernel": "B30f", "GantryDetectorTilt": "0",
    "WindowCenter": ["40", "-600"], "WindowWidth": ["400", "1500"], "SpiralPitchFactor": 0.9,
    "PatientWeight": "71.5", "AcquisitionNumber": "2",
    "PixelPaddingValue": -2000,
}


def ct_source(tmp_path, **extra):
    voxels = sample_voxels("int16")
    acquisition = dict(CT_ACQUISITION, **extra)
    # Dose modulation: the tube current differs from slice to slice, so no one value is right.
    acquisition["XRayTubeCurrent"] = lambda k: 100 + k
    paths = write_dicom_series(str(tmp_path / "source"), voxels, DIRECTIONS["oblique"],
                               extra=acquisition)
    return read_volume(paths), voxels


def assert_dciodvfy_clean(path):
    """No error, and no warning but those ALLOWED_WARNINGS and SC_PLANE_WARNINGS explain."""
    if not tool("dciodvfy"):
        return
    lines = judge(tool("dciodvfy"), "-new", path).splitlines()
    secondary = "Secondary Capture" in pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID.name
    unexpected = [line for line in lines if line.startswith(("Error", "Warning"))
                  and not any(allowed in line for allowed in ALLOWED_WARNINGS)
                  and not (secondary and "not present in standard DICOM IOD" in line
                           and any(k in line for k in SC_PLANE_WARNINGS))]
    assert unexpected == [], "\n".join(lines)


def test_re_export_keeps_the_source_acquisition(tmp_path):
    volume, _ = ct_source(tmp_path)
    plan = plan_series(volume)
    assert plan["modality"] == "CT" and plan["sop_class_name"] == "CT Image Storage"
    assert "KVP" in plan["carried_attributes"] and "XRayTubeCurrent" not in plan["carried_attributes"]
    assert any("differ from file to file" in note and "XRayTubeCurrent" in note
               for note in plan["notes"])
    result, files = written(tmp_path, volume)
    for ds in files:
        assert ds.SliceThickness == 1.0 and ds.SpacingBetweenSlices == pytest.approx(SPACING[2])
        assert ds.PatientPosition == "FFS" and ds.KVP == 120 and ds.Manufacturer == "ACME"
        assert ds.ManufacturerModelName == "Scanner 9" and ds.InstitutionName == "Hôpital"
        assert ds.StationName == "CT1" and ds.BodyPartExamined == "CHEST"
        assert ds.ConvolutionKernel == "B30f" and ds.SpiralPitchFactor == 0.9
        assert ds.PatientWeight == 71.5 and ds.AcquisitionNumber == 2
        assert list(ds.WindowCenter) == [40, -600] and list(ds.WindowWidth) == [400, 1500]
        # Stored as it was (int16, rescale kept), so the padding value is the source's.
        assert ds["PixelPaddingValue"].VR == "SS" and ds.PixelPaddingValue == -2000
        assert "XRayTubeCurrent" not in ds
    assert_dciodvfy_clean(result["paths"][0])


def test_re_export_as_another_modality_keeps_equipment_not_technique(tmp_path):
    volume, _ = ct_source(tmp_path)
    result, files = written(tmp_path, volume, {"modality": "OT"})
    ds = files[0]
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert ds.Manufacturer == "ACME" and ds.SliceThickness == 1.0 and ds.PatientPosition == "FFS"
    assert "KVP" not in ds and "ConvolutionKernel" not in ds and "SpiralPitchFactor" not in ds
    assert_dciodvfy_clean(result["paths"][0])


def test_multiframe_re_export_maps_the_padding_value_into_its_stored_values(tmp_path):
    volume, voxels = ct_source(tmp_path)
    result, (ds,) = written(tmp_path, volume, {"multiframe": True})
    # Multi-frame grey SC stores unsigned values: int16 is shifted by 32768, and so is the pad.
    assert ds.PixelRepresentation == 0 and ds["PixelPaddingValue"].VR == "US"
    assert ds.PixelPaddingValue == -2000 + 32768
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert measures.SliceThickness == 1.0
    assert_dciodvfy_clean(result["paths"][0])


def test_padding_value_is_not_carried_into_rescaled_values(tmp_path):
    voxels = sample_voxels("int16")
    paths = write_dicom_series(str(tmp_path / "source"), voxels, DIRECTIONS["axial"],
                               slopes=[1.0 + k / 10 for k in range(voxels.shape[0])],
                               extra={"PixelPaddingValue": -2000})
    volume = read_volume(paths)
    plan = plan_series(volume, {"modality": "CT"})
    assert "PixelPaddingValue" not in plan["carried_attributes"]


def test_mr_re_export_keeps_the_mr_technique(tmp_path):
    voxels = sample_voxels("uint16")
    paths = write_dicom_series(str(tmp_path / "source"), voxels, DIRECTIONS["sagittal"],
                               modality="MR", extra={
                                   "ScanningSequence": "SE", "SequenceVariant": "SK",
                                   "MRAcquisitionType": "2D", "RepetitionTime": "500",
                                   "EchoTime": "15", "MagneticFieldStrength": "3",
                                   "FlipAngle": "90", "SliceThickness": "3"})
    result, files = written(tmp_path, read_volume(paths))
    ds = files[0]
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage
    assert (ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType) == ("SE", "SK", "2D")
    assert (ds.RepetitionTime, ds.EchoTime, ds.MagneticFieldStrength) == (500, 15, 3)
    assert ds.SliceThickness == 3
    assert_dciodvfy_clean(result["paths"][0])


# ---- a shear under the tolerance is removed, and how far it moves voxels is said ---------------

def sheared_volume(cosine):
    """An oblique volume whose k axis leans towards i by ``cosine`` (under the tolerance)."""
    direction = DIRECTIONS["oblique"].copy()
    leaned = direction[:, 2] + cosine * direction[:, 0]
    direction[:, 2] = leaned / np.linalg.norm(leaned)
    return Volume(sample_voxels(), SPACING, ORIGIN, direction, source_name="lean.nii"), direction


def test_a_slight_shear_is_made_orthonormal_and_its_position_error_reported(tmp_path):
    volume, sheared = sheared_volume(8e-5)
    np.testing.assert_allclose(volume.direction.T @ volume.direction, np.eye(3), atol=1e-12)
    # The largest move over every voxel, computed the long way: old and new affine everywhere.
    k, j, i = np.meshgrid(*[np.arange(n) for n in volume.voxels.shape], indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()]) * np.asarray(SPACING)[:, None]
    expected = np.max(np.linalg.norm((sheared - volume.direction) @ index, axis=0))
    assert expected > 1e-4
    assert volume.max_position_error == pytest.approx(expected, rel=1e-9)
    assert any("not exactly perpendicular" in note for note in volume.notes)
    plan = plan_series(volume, {"modality": "CT"})
    assert plan["max_position_error"] == pytest.approx(expected, rel=1e-9)
    result, files = written(tmp_path, volume, {"modality": "CT"})
    # What a DICOM reader places, from what was written, is within the reported error.
    for n, ds in enumerate(sorted(files, key=lambda ds: ds.InstanceNumber)):
        position = np.asarray(ORIGIN) + n * SPACING[2] * sheared[:, 2]
        written_at = np.array([float(v) for v in ds.ImagePositionPatient])
        assert np.linalg.norm(written_at - position) <= result["max_position_error"] + 1e-5
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient]).reshape(2, 3)
        assert abs(orientation[0] @ orientation[1]) < 1e-6


def test_an_orthonormal_direction_moves_nothing():
    volume = volume_of(case="oblique_left_handed")
    assert volume.max_position_error == 0.0 and not volume.notes
    assert plan_series(volume)["max_position_error"] == 0.0
    np.testing.assert_array_equal(volume.direction, DIRECTIONS["oblique_left_handed"])


def test_a_failed_write_names_the_series_folder_not_where_it_lives(tmp_path):
    (tmp_path / "blocked").write_bytes(b"a file, not a folder")
    with pytest.raises(VolumeError) as caught:
        write_series(volume_of(), {}, str(tmp_path / "blocked" / "series"))
    message = str(caught.value)
    assert "'series'" in message and "failed" in message and str(tmp_path) not in message

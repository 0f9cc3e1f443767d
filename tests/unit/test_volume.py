"""Reading volumes: every format, every direction case, and bad input refused with a sentence.

Test files are generated here: NIfTI with nibabel, NRRD with pynrrd, MetaImage and VTK legacy by
hand (so the tests also run in Pyodide), and, where SimpleITK is installed (CPython only), by
ITK's own writers as a second opinion on the conventions. The writers are shared with
test_series_roundtrip.py.

Run the long fuzz with ``DCMSTUDIO_FUZZ=2000 python -m pytest tests/unit/test_volume.py -k fuzz``
(default: 30 damaged files per format).
"""

import importlib.util
import os
import random
import re
import sys
import zlib

import nibabel
import nrrd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from dcmstudio.errors import DicomStudioError, InvalidDicomError, VolumeError
from dcmstudio.volume import RAS_TO_LPS, Volume, preview_slices, read_volume

IN_PYODIDE = sys.platform == "emscripten"
FUZZ_COUNT = int(os.environ.get("DCMSTUDIO_FUZZ", "30"))

SHAPE_KJI = (6, 10, 12)          # slices, rows, columns: all different, to catch transpositions
SPACING = (0.7, 0.9, 1.3)        # i, j, k in mm
ORIGIN = (-12.5, 30.25, 100.0)   # LPS mm


def _rotation(a, b, c):
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _right_handed(i, j):
    i, j = np.asarray(i, float), np.asarray(j, float)
    return np.column_stack([i, j, np.cross(i, j)])


# Direction matrices in LPS: column n is the direction of index axis n (i, j, k).
DIRECTIONS = {
    "axial": np.eye(3),
    "axial_flipped": np.diag([1.0, -1.0, -1.0]),
    "sagittal": _right_handed([0, 1, 0], [0, 0, -1]),
    "coronal": _right_handed([1, 0, 0], [0, 0, -1]),
    "oblique": _rotation(0.3, -0.5, 0.7),
    "left_handed": np.diag([1.0, 1.0, -1.0]),
    "oblique_left_handed": _rotation(0.3, -0.5, 0.7) @ np.diag([1.0, 1.0, -1.0]),
}


def sample_voxels(dtype="int16", seed=0):
    """A deterministic [k, j, i] volume of ``dtype`` with distinct values along every axis."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*[np.arange(n) for n in SHAPE_KJI], indexing="ij")
    base = 100 * k + 10 * j + i
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (base * 1.5 + rng.normal(0, 0.25, SHAPE_KJI) - 200).astype(dtype)
    if dtype.kind == "u":
        return (base + rng.integers(0, 3, SHAPE_KJI)).astype(dtype)
    return (base * 3 - 900 + rng.integers(0, 3, SHAPE_KJI)).astype(dtype)


def affine_lps(direction, spacing=SPACING, origin=ORIGIN):
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction) * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


def write_nifti(path, voxels, direction, *, qform=True, sform=True, version=1):
    """A NIfTI file in RAS, as scanners' converters write it; voxels are [k, j, i]."""
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps(direction)
    klass = nibabel.Nifti1Image if version == 1 else nibabel.Nifti2Image
    data = np.asarray(voxels).transpose(2, 1, 0, *range(3, np.ndim(voxels)))
    image = klass(data, None)
    image.set_qform(affine, code=1 if qform else 0)
    image.set_sform(affine, code=1 if sform else 0)
    image.header.set_xyzt_units("mm", "sec")
    nibabel.save(image, str(path))
    return str(path)


def write_nrrd(path, voxels, direction, *, space="left-posterior-superior", encoding="raw",
               detached=False):
    """A NRRD file; ``space`` RAS converts the geometry; voxels are [k, j, i] (or [k, j, i, 3])."""
    to_space = np.diag([-1.0, -1.0, 1.0]) if space == "right-anterior-superior" else np.eye(3)
    rows = (to_space @ (np.asarray(direction) * np.asarray(SPACING))).T
    header = {"space": space, "space origin": to_space @ np.asarray(ORIGIN), "encoding": encoding}
    if np.ndim(voxels) == 4:
        # In pynrrd's 'C' order [k, j, i, c] has the colour axis fastest, first in the header.
        header["space directions"] = np.vstack([np.full(3, np.nan), rows])
        header["kinds"] = ["RGB-color", "domain", "domain", "domain"]
    else:
        header["space directions"] = rows
    path = str(path)
    nrrd.write(path, np.ascontiguousarray(voxels), header, index_order="C",
               detached_header=detached)
    return path


def write_metaimage(path, voxels, direction, *, compressed=False, data_file=None):
    """A MetaImage by hand (.mha, or .mhd with ``data_file``): ITK's conventions."""
    voxels = np.ascontiguousarray(voxels)
    element_type = {"int16": "MET_SHORT", "uint8": "MET_UCHAR", "float32": "MET_FLOAT",
                    "int32": "MET_INT", "uint16": "MET_USHORT", "float64": "MET_DOUBLE"}
    payload = voxels.astype(voxels.dtype.newbyteorder("<")).tobytes()
    if compressed:
        payload = zlib.compress(payload)
    lines = [
        "ObjectType = Image", "NDims = 3", "BinaryData = True", "BinaryDataByteOrderMSB = False",
        f"CompressedData = {compressed}",
        *([f"CompressedDataSize = {len(payload)}"] if compressed else []),
        "TransformMatrix = " + " ".join(repr(float(v)) for v in np.asarray(direction).T.ravel()),
        "Offset = " + " ".join(repr(float(v)) for v in ORIGIN),
        "AnatomicalOrientation = RAI",
        "ElementSpacing = " + " ".join(repr(float(v)) for v in SPACING),
        "DimSize = " + " ".join(str(n) for n in voxels.shape[2::-1]),
        *(["ElementNumberOfChannels = 3"] if voxels.ndim == 4 else []),
        f"ElementType = {element_type[voxels.dtype.name]}",
        f"ElementDataFile = {data_file or 'LOCAL'}",
    ]
    header = ("\n".join(lines) + "\n").encode()
    path = str(path)
    if data_file:
        with open(path, "wb") as f:
            f.write(header)
        with open(os.path.join(os.path.dirname(path), data_file), "wb") as f:
            f.write(payload)
    else:
        with open(path, "wb") as f:
            f.write(header + payload)
    return path


def write_vtk(path, voxels, *, binary=True, spacing=SPACING):
    """A VTK legacy STRUCTURED_POINTS file by hand (big-endian binary, or ASCII)."""
    vtk_type = {"int16": "short", "uint8": "unsigned_char", "float32": "float", "int32": "int"}
    voxels = np.ascontiguousarray(voxels)
    header = (
        "# vtk DataFile Version 3.0\ndcmstudio test\n" + ("BINARY" if binary else "ASCII")
        + "\nDATASET STRUCTURED_POINTS\n"
        + "DIMENSIONS " + " ".join(str(n) for n in voxels.shape[2::-1]) + "\n"
        + "SPACING " + " ".join(repr(float(v)) for v in spacing) + "\n"
        + "ORIGIN " + " ".join(repr(float(v)) for v in ORIGIN) + "\n"
        + f"POINT_DATA {voxels[..., 0].size if voxels.ndim == 4 else voxels.size}\n"
    )
    if voxels.ndim == 4:
        header += "COLOR_SCALARS colours 3\n"
    else:
        header += f"SCALARS values {vtk_type[voxels.dtype.name]} 1\nLOOKUP_TABLE default\n"
    if binary:
        payload = voxels.astype(voxels.dtype.newbyteorder(">")).tobytes()
    elif voxels.ndim == 4:
        payload = " ".join(f"{v / 255:.6f}" for v in voxels.ravel()).encode() + b"\n"
    else:
        payload = " ".join(str(v) for v in voxels.ravel()).encode() + b"\n"
    with open(str(path), "wb") as f:
        f.write(header.encode() + payload)
    return str(path)


def write_dicom_series(folder, voxels, direction, *, shuffle_names=True, slope=1.0,
                       intercept=0.0, slopes=None, extra=None, modality="CT"):
    """A plain CT series written with pydicom; file names deliberately not in slice order.

    ``extra`` maps keywords to a value for every file, or to a function of the slice index."""
    os.makedirs(folder, exist_ok=True)
    direction = np.asarray(direction)
    slices = voxels.shape[0]
    order = list(range(slices))
    if shuffle_names:
        random.Random(7).shuffle(order)
    study, series, frame = "1.2.3.4", "1.2.3.4.5", "1.2.3.4.6"
    paths = []
    for name_index, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = f"1.2.3.4.7.{k + 1}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.SeriesNumber, ds.SeriesDescription = modality, 3, "Axial source"
        ds.PatientName, ds.PatientID, ds.StudyDescription = "Doe^Jane", "P-1", "Source study"
        ds.InstanceNumber = k + 1
        position = np.asarray(ORIGIN) + k * SPACING[2] * direction[:, 2]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate([direction[:, 0],
                                                                          direction[:, 1]])]
        ds.PixelSpacing = [SPACING[1], SPACING[0]]
        ds.Rows, ds.Columns = voxels.shape[1], voxels.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, int(voxels.dtype.kind == "i")
        ds.RescaleSlope = slopes[k] if slopes is not None else slope
        ds.RescaleIntercept = intercept
        ds.PixelData = np.ascontiguousarray(voxels[k]).tobytes()
        for keyword, value in (extra or {}).items():
            setattr(ds, keyword, value(k) if callable(value) else value)
        path = os.path.join(folder, f"file{name_index:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def assert_geometry(volume, direction, spacing=SPACING, origin=ORIGIN, tolerance=1e-4):
    np.testing.assert_allclose(volume.spacing, spacing, atol=tolerance)
    np.testing.assert_allclose(volume.origin, origin, atol=tolerance)
    np.testing.assert_allclose(volume.direction, direction, atol=tolerance)


# ---- every reader, every direction ----------------------------------------------------------

@pytest.mark.parametrize("case", sorted(DIRECTIONS))
@pytest.mark.parametrize("version", [1, 2])
def test_nifti_geometry_becomes_lps(tmp_path, case, version):
    voxels = sample_voxels()
    path = write_nifti(tmp_path / "v.nii", voxels, DIRECTIONS[case], version=version)
    volume = read_volume([path])
    assert_geometry(volume, DIRECTIONS[case])
    assert volume.voxels.shape == SHAPE_KJI and volume.source_format == "nifti"
    np.testing.assert_array_equal(volume.voxels, voxels)


@pytest.mark.parametrize("which", ["qform only", "sform only"])
def test_nifti_takes_whichever_form_is_coded(tmp_path, which):
    path = write_nifti(tmp_path / "v.nii.gz", sample_voxels(), DIRECTIONS["oblique"],
                       qform=which == "qform only", sform=which == "sform only")
    assert_geometry(read_volume([path]), DIRECTIONS["oblique"])


def test_nifti_sform_wins_over_a_different_qform(tmp_path):
    voxels = sample_voxels()
    path = str(tmp_path / "v.nii")
    image = nibabel.Nifti1Image(voxels.T, None)
    image.set_qform(np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps(np.eye(3)), code=1)
    image.set_sform(np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps(DIRECTIONS["sagittal"]), code=2)
    nibabel.save(image, path)
    volume = read_volume([path])
    assert_geometry(volume, DIRECTIONS["sagittal"])
    assert any("qform and the sform differ" in note for note in volume.notes)


def test_nifti_scaling_is_kept_beside_integer_voxels(tmp_path):
    voxels = sample_voxels("int16")
    path = str(tmp_path / "v.nii")
    image = nibabel.Nifti1Image(voxels.T, np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps(np.eye(3)))
    image.header.set_slope_inter(0.5, -10)
    nibabel.save(image, path)
    volume = read_volume([path])
    assert volume.voxels.dtype == np.int16
    assert (volume.slope, volume.intercept) == (0.5, -10.0)
    np.testing.assert_array_equal(volume.voxels, voxels)


def test_nifti_rgb24_becomes_three_components(tmp_path):
    rgb = np.zeros(SHAPE_KJI, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"], rgb["G"], rgb["B"] = sample_voxels("uint8"), 7, 200
    path = write_nifti(tmp_path / "rgb.nii", rgb, np.eye(3))
    volume = read_volume([path])
    assert volume.components == 3 and volume.voxels.shape == SHAPE_KJI + (3,)
    np.testing.assert_array_equal(volume.voxels[..., 0], rgb["R"])
    assert np.all(volume.voxels[..., 2] == 200)


@pytest.mark.parametrize("case", ["axial", "oblique", "left_handed", "sagittal"])
@pytest.mark.parametrize("encoding", ["raw", "gzip", "ascii"])
def test_nrrd_geometry_and_encodings(tmp_path, case, encoding):
    voxels = sample_voxels()
    path = write_nrrd(tmp_path / "v.nrrd", voxels, DIRECTIONS[case], encoding=encoding)
    volume = read_volume([path])
    assert_geometry(volume, DIRECTIONS[case])
    np.testing.assert_array_equal(volume.voxels, voxels)


def test_nrrd_in_ras_space_is_converted(tmp_path):
    path = write_nrrd(tmp_path / "v.nrrd", sample_voxels(), DIRECTIONS["oblique"],
                      space="right-anterior-superior")
    assert_geometry(read_volume([path]), DIRECTIONS["oblique"])


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_nhdr_takes_its_data_file_from_the_same_drop(tmp_path, encoding):
    voxels = sample_voxels("float32")
    header = write_nrrd(tmp_path / "v.nhdr", voxels, DIRECTIONS["coronal"], encoding=encoding,
                        detached=True)
    data = [str(p) for p in tmp_path.iterdir() if not str(p).endswith(".nhdr")]
    assert len(data) == 1
    volume = read_volume([header] + data)
    assert_geometry(volume, DIRECTIONS["coronal"])
    np.testing.assert_array_equal(volume.voxels, voxels)


def test_nrrd_rgb_on_the_first_axis(tmp_path):
    voxels = np.stack([sample_voxels("uint8"), sample_voxels("uint8") // 2,
                       np.full(SHAPE_KJI, 9, np.uint8)], axis=-1)
    path = write_nrrd(tmp_path / "rgb.nrrd", voxels, DIRECTIONS["coronal"])
    assert b"sizes: 3 12 10 6" in open(path, "rb").read(400)
    volume = read_volume([path])
    assert volume.components == 3
    assert_geometry(volume, DIRECTIONS["coronal"])
    np.testing.assert_array_equal(volume.voxels, voxels)


def test_nrrd_other_components_are_refused(tmp_path):
    voxels = np.stack([sample_voxels("int16")] * 3, axis=-1)
    refused([write_nrrd(tmp_path / "vectors.nrrd", voxels, np.eye(3))], "RGB")


@pytest.mark.parametrize("case", ["axial_flipped", "oblique", "oblique_left_handed"])
@pytest.mark.parametrize("layout", ["mha", "mhd raw", "mhd zraw"])
def test_metaimage_geometry_and_layouts(tmp_path, case, layout):
    voxels = sample_voxels("float32")
    if layout == "mha":
        paths = [write_metaimage(tmp_path / "v.mha", voxels, DIRECTIONS[case])]
    else:
        compressed = layout.endswith("zraw")
        data_file = "v.zraw" if compressed else "v.raw"
        paths = [write_metaimage(tmp_path / "v.mhd", voxels, DIRECTIONS[case],
                                 compressed=compressed, data_file=data_file),
                 str(tmp_path / data_file)]
    volume = read_volume(paths)
    assert_geometry(volume, DIRECTIONS[case])
    np.testing.assert_array_equal(volume.voxels, voxels)


@pytest.mark.parametrize("size_first", [True, False])
def test_metaimage_element_spacing_wins_over_element_size(tmp_path, size_first):
    # ITK: ElementSize is the voxel's physical extent; the spacing is ElementSpacing when given.
    path = write_metaimage(tmp_path / "v.mha", sample_voxels(), np.eye(3))
    spacing_line = "ElementSpacing = " + " ".join(repr(float(v)) for v in SPACING)
    size_line = "ElementSize = 0.5 0.5 1.0"
    both = [size_line, spacing_line] if size_first else [spacing_line, size_line]
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data.replace(spacing_line.encode(), "\n".join(both).encode(), 1))
    assert_geometry(read_volume([path]), np.eye(3))
    if not IN_PYODIDE and importlib.util.find_spec("SimpleITK"):
        import SimpleITK
        np.testing.assert_allclose(SimpleITK.ReadImage(path).GetSpacing(), SPACING)


def test_metaimage_element_size_alone_is_the_spacing(tmp_path):
    path = write_metaimage(tmp_path / "v.mha", sample_voxels(), np.eye(3))
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data.replace(b"ElementSpacing", b"ElementSize", 1))
    assert_geometry(read_volume([path]), np.eye(3))


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_vtk_structured_points(tmp_path, binary, dtype):
    voxels = sample_voxels(dtype)
    volume = read_volume([write_vtk(tmp_path / "v.vtk", voxels, binary=binary)])
    assert_geometry(volume, np.eye(3))
    np.testing.assert_array_equal(volume.voxels, voxels)
    assert any("no patient orientation" in note for note in volume.notes)


def test_vtk_colour_scalars(tmp_path):
    voxels = np.stack([sample_voxels("uint8")] * 3, axis=-1)
    voxels[..., 1] = 255
    for binary in (True, False):
        volume = read_volume([write_vtk(tmp_path / f"c{binary}.vtk", voxels, binary=binary)])
        np.testing.assert_array_equal(volume.voxels, voxels)


@pytest.mark.parametrize("case", sorted(DIRECTIONS))
def test_simpleitk_files_agree_with_our_conventions(tmp_path, case):
    """ITK's own MetaImage, NRRD and NIfTI writers, read back by us: same geometry (LPS)."""
    sitk = pytest.importorskip("SimpleITK")
    voxels = sample_voxels()
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTIONS[case].ravel().tolist())
    for suffix in (".mha", ".nrrd", ".nii.gz"):
        path = str(tmp_path / f"itk{suffix}")
        sitk.WriteImage(image, path)
        volume = read_volume([path])
        assert_geometry(volume, DIRECTIONS[case])
        np.testing.assert_array_equal(volume.voxels, voxels)


def test_our_test_writers_agree_with_simpleitk(tmp_path):
    """The hand-written MetaImage and VTK writers above say what ITK understands."""
    sitk = pytest.importorskip("SimpleITK")
    voxels = sample_voxels()
    image = sitk.ReadImage(write_metaimage(tmp_path / "v.mha", voxels, DIRECTIONS["oblique"]))
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), DIRECTIONS["oblique"],
                               atol=1e-9)
    np.testing.assert_allclose(image.GetOrigin(), ORIGIN)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), voxels)
    image = sitk.ReadImage(write_vtk(tmp_path / "v.vtk", voxels))
    np.testing.assert_allclose(image.GetSpacing(), SPACING)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), voxels)


# ---- DICOM series ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["axial", "sagittal", "oblique", "left_handed"])
def test_dicom_series_is_sorted_by_position_not_name(tmp_path, case):
    voxels = sample_voxels()
    paths = write_dicom_series(tmp_path, voxels, DIRECTIONS[case])
    volume = read_volume(paths)
    expected = DIRECTIONS[case]
    if np.linalg.det(expected) < 0:
        # A DICOM reader stacks slices along row × column: the same voxels, k reversed.
        last = np.asarray(ORIGIN) + (SHAPE_KJI[0] - 1) * SPACING[2] * expected[:, 2]
        expected = expected @ np.diag([1.0, 1.0, -1.0])
        assert_geometry(volume, expected, origin=last)
        np.testing.assert_array_equal(volume.voxels, voxels[::-1])
    else:
        assert_geometry(volume, expected)
        np.testing.assert_array_equal(volume.voxels, voxels)
    assert volume.dicom["StudyInstanceUID"] == "1.2.3.4"
    assert volume.dicom["SeriesNumber"] == 3


def test_dicom_series_rescale_kept_or_applied(tmp_path):
    voxels = sample_voxels("uint16")
    same = read_volume(write_dicom_series(tmp_path / "same", voxels, np.eye(3), slope=2.0,
                                          intercept=-1024))
    assert (same.slope, same.intercept) == (2.0, -1024.0)
    np.testing.assert_array_equal(same.voxels, voxels)
    slopes = [1.0 + k / 10 for k in range(SHAPE_KJI[0])]
    mixed = read_volume(write_dicom_series(tmp_path / "mixed", voxels, np.eye(3), slopes=slopes))
    assert mixed.voxels.dtype == np.float64 and mixed.slope == 1.0
    expected = voxels * np.asarray(slopes)[:, None, None]
    np.testing.assert_allclose(mixed.voxels, expected)


def test_dicom_series_skips_files_that_are_not_dicom(tmp_path):
    paths = write_dicom_series(tmp_path, sample_voxels(), np.eye(3))
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    volume = read_volume(paths + [str(notes)])
    assert any("notes.txt" in note for note in volume.notes)


def test_dicom_series_refuses_uneven_duplicate_and_mixed_series(tmp_path):
    paths = write_dicom_series(tmp_path / "a", sample_voxels(), np.eye(3))
    positions = sorted(paths, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    with pytest.raises(VolumeError, match="not evenly spaced"):
        read_volume(positions[:2] + positions[3:])
    ds = pydicom.dcmread(positions[1])
    ds.ImagePositionPatient = pydicom.dcmread(positions[0]).ImagePositionPatient
    ds.save_as(positions[1])
    with pytest.raises(VolumeError, match="same position"):
        read_volume(paths)
    other = write_dicom_series(tmp_path / "b", sample_voxels(), np.eye(3))
    for path in other:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = "1.2.3.9"
        ds.save_as(path)
    with pytest.raises(VolumeError, match="2 series"):
        read_volume(positions + other)


def test_dicom_series_refuses_a_single_image(tmp_path):
    paths = write_dicom_series(tmp_path, sample_voxels(), np.eye(3))
    with pytest.raises(VolumeError, match="2-D image"):
        read_volume(paths[:1])


def test_broken_dicom_file_in_a_series_is_invalid_dicom(tmp_path):
    paths = write_dicom_series(tmp_path, sample_voxels(), np.eye(3))
    data = open(paths[2], "rb").read()
    with open(paths[2], "wb") as f:
        f.write(data[:len(data) - 100])
    with pytest.raises(InvalidDicomError) as caught:
        read_volume(paths)
    assert caught.value.file == os.path.basename(paths[2])


# ---- bad input: a sentence naming the file, never a guess ------------------------------------

def refused(paths, *words):
    with pytest.raises(VolumeError) as caught:
        read_volume([str(p) for p in paths])
    message = str(caught.value)
    for word in words:
        assert word in message, message
    return caught.value


def test_truncated_nii_gz(tmp_path):
    path = write_nifti(tmp_path / "v.nii.gz", sample_voxels(), np.eye(3))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    error = refused([path], "truncated")
    assert error.file == "v.nii.gz"


def test_nifti_header_that_lies_about_the_data_size(tmp_path):
    path = write_nifti(tmp_path / "v.nii", sample_voxels(), np.eye(3))
    image = nibabel.load(path)
    header = image.header.copy()
    header["dim"][3] = 60  # ten times the slices there are
    with open(path, "r+b") as f:
        f.write(header.binaryblock)
    refused([path], "promises", "v.nii")


def test_nrrd_and_metaimage_headers_that_lie(tmp_path):
    voxels = sample_voxels()
    path = write_nrrd(tmp_path / "v.nrrd", voxels, np.eye(3))
    text = open(path, "rb").read().replace(b"sizes: 12 10 6", b"sizes: 12 10 60")
    open(path, "wb").write(text)
    refused([path], "promises")
    path = write_nrrd(tmp_path / "g.nrrd", voxels, np.eye(3), encoding="gzip")
    text = open(path, "rb").read().replace(b"sizes: 12 10 6", b"sizes: 12 10 60")
    open(path, "wb").write(text)
    refused([path], "promises")
    path = write_metaimage(tmp_path / "v.mha", voxels, np.eye(3))
    text = open(path, "rb").read().replace(b"DimSize = 12 10 6", b"DimSize = 12 10 60")
    open(path, "wb").write(text)
    refused([path], "promises")
    path = write_metaimage(tmp_path / "z.mha", voxels, np.eye(3), compressed=True)
    text = open(path, "rb").read().replace(b"DimSize = 12 10 6", b"DimSize = 12 10 60")
    open(path, "wb").write(text)
    refused([path], "promises")


def test_two_file_formats_without_their_data_file(tmp_path):
    voxels = sample_voxels()
    # The data files exist beside the headers, but were not opened with them: not read.
    header = write_metaimage(tmp_path / "v.mhd", voxels, np.eye(3), data_file="v.raw")
    error = refused([header], "v.raw", "open both files together")
    assert error.file == "v.mhd"
    header = write_nrrd(tmp_path / "n.nhdr", voxels, np.eye(3), detached=True)
    refused([header], "open both files together")


def test_two_dimensional_images_are_refused(tmp_path):
    image = nibabel.Nifti1Image(np.zeros((12, 10), np.int16), np.eye(4))
    nibabel.save(image, str(tmp_path / "flat.nii"))
    refused([tmp_path / "flat.nii"], "2-D image")
    nrrd.write(str(tmp_path / "flat.nrrd"), np.zeros((12, 10), np.int16),
               {"space": "LPS", "space directions": np.array([[1.0, 0, 0], [0, 1.0, 0]]),
                "space origin": np.zeros(3)})
    refused([tmp_path / "flat.nrrd"], "2-D image")
    one_slice = sample_voxels()[:1]
    refused([write_metaimage(tmp_path / "one.mha", one_slice, np.eye(3))], "2-D image")


def test_four_dimensional_volumes_are_refused(tmp_path):
    data = np.zeros((12, 10, 6, 4), np.int16)
    image = nibabel.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0]))
    nibabel.save(image, str(tmp_path / "time.nii.gz"))
    refused([tmp_path / "time.nii.gz"], "4-D", "extract one volume")


def test_trailing_unit_dimensions_are_not_4d(tmp_path):
    data = sample_voxels().T[..., None]
    image = nibabel.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0]))
    nibabel.save(image, str(tmp_path / "one.nii"))
    assert read_volume([str(tmp_path / "one.nii")]).voxels.shape == SHAPE_KJI


def test_unknown_orientation_is_refused_not_guessed(tmp_path):
    path = write_nifti(tmp_path / "v.nii", sample_voxels(), np.eye(3), qform=False, sform=False)
    refused([path], "qform_code and sform_code are 0")
    nrrd.write(str(tmp_path / "v.nrrd"), sample_voxels(), {"spacings": [1, 1, 1]},
               index_order="C")
    refused([tmp_path / "v.nrrd"], "no 'space' field")
    nrrd.write(str(tmp_path / "s.nrrd"), sample_voxels(),
               {"space": "scanner-xyz", "space directions": np.eye(3)}, index_order="C")
    refused([tmp_path / "s.nrrd"], "not a patient space")


def test_sheared_grid_is_refused(tmp_path):
    sheared = np.eye(3)
    sheared[:, 2] = [0.0, 0.3, 0.95393920141]  # a tilted gantry
    refused([write_metaimage(tmp_path / "tilt.mha", sample_voxels(), sheared)], "perpendicular")


def test_unsupported_variants_are_refused(tmp_path):
    path = tmp_path / "cells.vtk"
    path.write_text("# vtk DataFile Version 3.0\nx\nASCII\nDATASET STRUCTURED_POINTS\n"
                    "DIMENSIONS 2 2 2\nSPACING 1 1 1\nORIGIN 0 0 0\nCELL_DATA 1\n"
                    "SCALARS s float 1\nLOOKUP_TABLE default\n0\n")
    refused([path], "CELL_DATA")
    path = tmp_path / "grid.vtk"
    path.write_text("# vtk DataFile Version 3.0\nx\nASCII\nDATASET RECTILINEAR_GRID\n")
    refused([path], "STRUCTURED_POINTS")
    complex_image = nibabel.Nifti1Image(np.zeros((4, 4, 4), np.complex64), np.eye(4))
    nibabel.save(complex_image, str(tmp_path / "c.nii"))
    refused([tmp_path / "c.nii"], "complex")
    mha = write_metaimage(tmp_path / "list.mhd", sample_voxels(), np.eye(3), data_file="v.raw")
    text = open(mha).read().replace("ElementDataFile = v.raw", "ElementDataFile = LIST")
    open(mha, "w").write(text)
    refused([mha], "LIST")


def test_two_volumes_in_one_drop_are_refused(tmp_path):
    a = write_nifti(tmp_path / "a.nii", sample_voxels(), np.eye(3))
    b = write_nrrd(tmp_path / "b.nrrd", sample_voxels(), np.eye(3))
    refused([a, b], "a.nii", "b.nrrd", "one volume at a time")


def test_formats_are_recognised_by_content_when_the_name_says_nothing(tmp_path):
    voxels = sample_voxels()
    for name, write in (("scan_a", lambda p: write_nrrd(p, voxels, np.eye(3))),
                        ("scan_b", lambda p: write_metaimage(p, voxels, np.eye(3))),
                        ("scan_c", lambda p: write_vtk(p, voxels))):
        path = write(tmp_path / (name + ".tmp"))
        os.rename(path, tmp_path / name)
        np.testing.assert_array_equal(read_volume([str(tmp_path / name)]).voxels, voxels)
    path = write_nifti(tmp_path / "n.nii", voxels, np.eye(3))
    os.rename(path, tmp_path / "scan_d")
    refused([tmp_path / "scan_d"], "rename it")


def test_misnamed_gzip_nifti(tmp_path):
    path = write_nifti(tmp_path / "v.nii.gz", sample_voxels(), np.eye(3))
    os.rename(path, tmp_path / "v.nii")
    refused([tmp_path / "v.nii"], "rename it")


# ---- fuzz: damaged files raise DicomStudioError and nothing else -----------------------------

def _damaged_copies(path, count, seed):
    data = open(path, "rb").read()
    rng = random.Random(seed)
    for n in range(count):
        damaged = bytearray(data)
        if n % 2:
            damaged = damaged[:rng.randrange(len(damaged))]
        else:
            for _ in range(rng.randint(1, 8)):
                position = rng.randrange(min(len(damaged), 600))  # aim at the header
                damaged[position] = rng.randrange(256)
        yield bytes(damaged)


@pytest.mark.parametrize("kind", ["nii", "nii.gz", "nrrd", "nrrd-gzip", "mha", "mha-zlib", "vtk",
                                  "vtk-ascii", "dicom"])
def test_fuzzed_files_raise_only_dicomstudio_errors(tmp_path, kind):
    voxels = sample_voxels()
    sources = {
        "nii": lambda: write_nifti(tmp_path / "s.nii", voxels, np.eye(3)),
        "nii.gz": lambda: write_nifti(tmp_path / "s.nii.gz", voxels, np.eye(3)),
        "nrrd": lambda: write_nrrd(tmp_path / "s.nrrd", voxels, np.eye(3)),
        "nrrd-gzip": lambda: write_nrrd(tmp_path / "s.nrrd", voxels, np.eye(3), encoding="gzip"),
        "mha": lambda: write_metaimage(tmp_path / "s.mha", voxels, np.eye(3)),
        "mha-zlib": lambda: write_metaimage(tmp_path / "s.mha", voxels, np.eye(3),
                                            compressed=True),
        "vtk": lambda: write_vtk(tmp_path / "s.vtk", voxels),
        "vtk-ascii": lambda: write_vtk(tmp_path / "s.vtk", voxels, binary=False),
        "dicom": lambda: write_dicom_series(tmp_path / "series", voxels, np.eye(3))[0],
    }
    source = sources[kind]()
    companions = []
    if kind == "dicom":
        companions = [str(p) for p in (tmp_path / "series").glob("*.dcm") if str(p) != source]
    # The damaged copy keeps the source's suffix (s.nii.gz -> damaged.nii.gz).
    damaged_path = os.path.join(os.path.dirname(source),
                                "damaged" + os.path.basename(source)[1:])
    outcomes = {"read": 0, "refused": 0}
    copies = _damaged_copies(source, FUZZ_COUNT, seed=zlib.crc32(kind.encode()))
    for n, damaged in enumerate(copies):
        with open(damaged_path, "wb") as f:
            f.write(damaged)
        try:
            read_volume([damaged_path] + companions)
            outcomes["read"] += 1
        except DicomStudioError as error:
            assert error.message, f"copy {n}: empty message"
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0, outcomes


# ---- the value itself ------------------------------------------------------------------------

def test_volume_checks_its_own_geometry():
    with pytest.raises(VolumeError, match="perpendicular"):
        Volume(sample_voxels(), SPACING, ORIGIN, [[1, 0.6, 0], [0, 0.8, 0], [0, 0, 1]])
    with pytest.raises(VolumeError, match="unit length"):
        Volume(sample_voxels(), SPACING, ORIGIN, [[1, 0.5, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(VolumeError, match="positive"):
        Volume(sample_voxels(), (0.7, 0, 1), ORIGIN, np.eye(3))
    with pytest.raises(VolumeError, match="shape"):
        Volume(np.zeros((3, 4, 5, 2)), SPACING, ORIGIN, np.eye(3))
    volume = Volume(sample_voxels().astype(">i2"), SPACING, ORIGIN, np.eye(3))
    assert volume.voxels.dtype.isnative


def test_slice_positions_follow_the_third_direction_column():
    direction = DIRECTIONS["oblique_left_handed"]
    volume = Volume(sample_voxels(), SPACING, ORIGIN, direction)
    assert not volume.right_handed
    np.testing.assert_allclose(volume.slice_position(4),
                               np.asarray(ORIGIN) + 4 * SPACING[2] * direction[:, 2])
    summary = volume.summary()
    assert summary["shape"] == [12, 10, 6] and summary["right_handed"] is False
    np.testing.assert_allclose(np.reshape(summary["direction"], (3, 3)).T, direction)


def test_ras_to_lps_flips_the_first_two_axes():
    assert np.array_equal(RAS_TO_LPS @ [1, 2, 3], [-1, -2, 3])


# ---- preview ---------------------------------------------------------------------------------

def test_preview_shows_each_plane_the_radiological_way():
    """A marker voxel at the patient's left, posterior, head corner lands where a reader expects."""
    voxels = np.zeros(SHAPE_KJI, np.int16)
    for case in ("axial", "sagittal", "coronal", "axial_flipped", "left_handed"):
        direction = DIRECTIONS[case]
        volume = Volume(voxels.copy(), SPACING, ORIGIN, direction)
        # Mark every voxel on the L-most, P-most and S-most half-planes with distinct values.
        k, j, i = np.meshgrid(*[np.arange(n) for n in SHAPE_KJI], indexing="ij")
        lps = np.einsum("ab,bkji->akji", direction * np.asarray(SPACING), np.stack([i, j, k]))
        centre = lps.reshape(3, -1).mean(axis=1)
        values = (100 * (lps[0] > centre[0]) + 10 * (lps[1] > centre[1])
                  + 1 * (lps[2] > centre[2])).astype(np.int16)
        volume = Volume(values, SPACING, ORIGIN, direction)
        preview = preview_slices(volume)
        low, high = preview["window"]

        def value(picture, row, column):
            return round(picture[row, column] / 255 * (high - low) + low)

        axial, coronal, sagittal = preview["axial"], preview["coronal"], preview["sagittal"]
        # axial: left of screen = patient's right (not L), top = anterior (not P)
        assert value(axial, 0, 0) // 10 % 10 == 0 and value(axial, -1, -1) // 10 % 10 == 1, case
        assert value(axial, 0, 0) // 100 == 0 and value(axial, 0, -1) // 100 == 1, case
        # coronal: top = head (S)
        assert value(coronal, 0, 0) % 10 == 1 and value(coronal, -1, 0) % 10 == 0, case
        # sagittal: left of screen = anterior, top = head
        assert value(sagittal, 0, 0) // 10 % 10 == 0 and value(sagittal, 0, -1) // 10 % 10 == 1
        assert value(sagittal, 0, 0) % 10 == 1, case
        assert all(preview[view].dtype == np.uint8 for view in ("axial", "coronal", "sagittal"))


def test_preview_aspect_and_rgb():
    volume = Volume(np.zeros(SHAPE_KJI + (3,), np.uint8), SPACING, ORIGIN, np.eye(3))
    preview = preview_slices(volume)
    assert preview["axial"].shape == (10, 12, 3)
    assert preview["pixel_spacing"]["axial"] == [0.9, 0.7]
    assert preview["pixel_spacing"]["sagittal"] == [1.3, 0.9]



# ---- the user's names, never internal ones --------------------------------------------------

def _under_internal_keys(tmp_path, paths):
    """The files as the page holds them: under keys f1, f2, … with the user's names apart."""
    folder = tmp_path / "in"
    folder.mkdir()
    keyed, names = [], []
    for n, path in enumerate(paths, 1):
        key = folder / f"f{n}"
        with open(path, "rb") as source, open(key, "wb") as target:
            target.write(source.read())
        keyed.append(str(key))
        names.append("scans/" + os.path.basename(path))
    return keyed, names


def test_messages_name_the_users_files_not_internal_keys(tmp_path):
    paths = write_dicom_series(tmp_path / "a", sample_voxels(), np.eye(3), shuffle_names=False)
    ds = pydicom.dcmread(paths[1])
    ds.ImagePositionPatient = pydicom.dcmread(paths[0]).ImagePositionPatient
    ds.save_as(paths[1])
    keyed, names = _under_internal_keys(tmp_path, paths)
    with pytest.raises(VolumeError) as caught:
        read_volume(keyed, names)
    message = str(caught.value)
    assert "scans/file000.dcm and scans/file001.dcm lie at the same position" in message
    assert not re.search(r"\bf[0-9]+\b", message), message


def test_volume_and_notes_name_the_users_files(tmp_path):
    paths = write_dicom_series(tmp_path / "a", sample_voxels(), np.eye(3), shuffle_names=False)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    keyed, names = _under_internal_keys(tmp_path, paths + [str(notes)])
    volume = read_volume(keyed, names)
    assert volume.source_name == "scans/file000.dcm"
    assert volume.notes == ["scans/notes.txt: skipped, not a DICOM image."]


def test_the_boundary_names_the_users_file_in_its_error(tmp_path):
    import json

    from dcmstudio import api

    paths = write_dicom_series(tmp_path / "a", sample_voxels(), np.eye(3), shuffle_names=False)
    ds = pydicom.dcmread(paths[2])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(paths[2])
    keyed, names = _under_internal_keys(tmp_path, paths)
    answer = json.loads(api.call("volume_open", json.dumps({"paths": keyed, "names": names})))
    assert answer["ok"] is False
    assert answer["error"]["file"] == "scans/file002.dcm"
    assert "scans/file000.dcm" in answer["error"]["message"]
    assert not re.search(r"\bf[0-9]+\b", json.dumps(answer["error"])), answer


# ---- Analyze and NIfTI .hdr + .img pairs ------------------------------------------------------

@pytest.mark.parametrize("case", ["axial_flipped", "oblique", "left_handed"])
def test_nifti_pair_opens_with_its_forms(tmp_path, case):
    voxels = sample_voxels("int16")
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps(DIRECTIONS[case])
    image = nibabel.Nifti1Pair(voxels.transpose(2, 1, 0), None)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nibabel.save(image, str(tmp_path / "pair.hdr"))
    volume = read_volume([str(tmp_path / "pair.hdr"), str(tmp_path / "pair.img")])
    assert_geometry(volume, DIRECTIONS[case])
    np.testing.assert_array_equal(volume.voxels, voxels)
    assert volume.source_name == "pair.hdr" and volume.source_format == "nifti"
    # The order of the files in the drop does not matter.
    again = read_volume([str(tmp_path / "pair.img"), str(tmp_path / "pair.hdr")])
    np.testing.assert_array_equal(again.voxels, voxels)
    if not IN_PYODIDE and importlib.util.find_spec("SimpleITK"):
        import SimpleITK
        itk = SimpleITK.ReadImage(str(tmp_path / "pair.hdr"))
        np.testing.assert_allclose(np.reshape(itk.GetDirection(), (3, 3)), volume.direction,
                                   atol=1e-5)
        np.testing.assert_allclose(itk.GetOrigin(), volume.origin, atol=1e-4)


def test_analyze_pair_opens_with_nibabels_convention_and_says_so(tmp_path):
    voxels = sample_voxels("int16")
    image = nibabel.AnalyzeImage(voxels.transpose(2, 1, 0), np.diag([*SPACING, 1.0]))
    nibabel.save(image, str(tmp_path / "old.hdr"))
    volume = read_volume([str(tmp_path / "old.hdr"), str(tmp_path / "old.img")])
    np.testing.assert_array_equal(volume.voxels, voxels)
    np.testing.assert_allclose(volume.spacing, SPACING)
    # Radiological storage: i runs to the patient's left, j to anterior, k to superior.
    np.testing.assert_allclose(volume.direction, np.diag([1.0, -1.0, 1.0]))
    assert volume.source_format == "analyze"
    assert any("Analyze 7.5 stores no orientation" in note for note in volume.notes)


def test_pair_halves_alone_are_refused_with_a_sentence(tmp_path):
    image = nibabel.Nifti1Pair(sample_voxels().transpose(2, 1, 0), np.eye(4))
    nibabel.save(image, str(tmp_path / "half.hdr"))
    error = refused([tmp_path / "half.hdr"], "half.img", "open both files together")
    assert error.file == "half.hdr"
    error = refused([tmp_path / "half.img"], "header (.hdr)")
    assert error.file == "half.img"


# ---- a header names its data file: only a file opened with it is read ------------------------

def _metaimage_naming(folder, data_file, voxels):
    """v.mhd whose ElementDataFile is ``data_file``; its bytes are written as v.raw beside it."""
    header = write_metaimage(folder / "v.mhd", voxels, np.eye(3), data_file="v.raw")
    with open(header, "rb") as f:
        text = f.read().replace(b"ElementDataFile = v.raw", f"ElementDataFile = {data_file}".encode())
    with open(header, "wb") as f:
        f.write(text)
    return header, str(folder / "v.raw")


def _nhdr_naming(folder, data_file, voxels):
    """v.nhdr whose data file is ``data_file``; pynrrd writes its bytes as v.raw beside it."""
    header = write_nrrd(folder / "v.nhdr", voxels, np.eye(3), detached=True)
    with open(header, "rb") as f:
        lines = [line for line in f.read().split(b"\n") if not line.startswith(b"data file")]
    lines.insert(-2, f"data file: {data_file}".encode())
    with open(header, "wb") as f:
        f.write(b"\n".join(lines))
    return header, str(folder / "v.raw")


@pytest.mark.parametrize("make", [_metaimage_naming, _nhdr_naming])
def test_a_header_cannot_reach_files_that_were_not_opened(tmp_path, make):
    voxels = sample_voxels()
    inner = tmp_path / "drop"
    inner.mkdir()
    # A file of the right size outside the drop, and one beside it that was not opened.
    secret = tmp_path / "secret.raw"
    secret.write_bytes(voxels.astype("<i2").tobytes())
    for data_file in (str(secret), "../secret.raw", "sub/../../secret.raw"):
        header, raw = make(inner, data_file, voxels)
        error = refused([header, raw], "secret.raw", "not opened with it")
        assert error.file == "v.mhd" if make is _metaimage_naming else "v.nhdr"
    header, raw = make(inner, "other.raw", voxels)
    (inner / "other.raw").write_bytes(voxels.astype("<i2").tobytes())
    refused([header, raw], "other.raw", "open both files together")


@pytest.mark.parametrize("make", [_metaimage_naming, _nhdr_naming])
def test_a_data_file_given_with_a_folder_is_the_opened_file_of_that_name(tmp_path, make):
    voxels = sample_voxels()
    header, raw = make(tmp_path, "/data/scans/v.raw", voxels)
    volume = read_volume([header, raw])
    np.testing.assert_array_equal(volume.voxels, voxels)
    assert any("'/data/scans/v.raw'" in note and "'v.raw'" in note for note in volume.notes)

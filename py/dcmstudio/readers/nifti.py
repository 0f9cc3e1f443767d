"""NIfTI-1 and NIfTI-2 volumes (.nii, .nii.gz), and .hdr + .img pairs (NIfTI-1 or Analyze 7.5),
read with nibabel.

The orientation follows the NIfTI rules: the sform when its code is above 0, else the qform when
its code is above 0; with both codes 0 the file says nothing about where the patient is, and we
refuse it rather than guess. NIfTI is RAS; the volume is converted to LPS.

An Analyze 7.5 header has no orientation at all. Its pair is read with nibabel's convention
(SPM's): voxels stored radiologically (the first axis running from the patient's right to
left, the second to anterior, the third to superior) and the origin from SPM's origin field,
else the volume's centre. The volume's notes say so, since left and right rest on that
convention.
"""

import gzip
import os
import sys
import zlib

import numpy as np

from ..errors import VolumeError
from ..volume import RAS_TO_LPS, OpenedFiles, Volume, require_3d, split_affine

GZIP_MAGIC = b"\x1f\x8b"

# xyzt_units spatial codes nibabel names, as a factor to mm.
UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001}


def read(path, opened=None):
    """Read a .nii, .nii.gz or .hdr (with its .img) file; see
    :func:`dcmstudio.volume.read_volume`.

    ``opened`` (:class:`dcmstudio.volume.OpenedFiles`) holds the files a .hdr may take its
    .img from, and the user's names; by default, ``path`` alone.
    """
    opened = opened or OpenedFiles([path])
    if path.lower().endswith(".hdr"):
        return _read_pair(path, opened)
    import nibabel

    name = opened.name(path)
    with open(path, "rb") as f:
        magic = f.read(2)
    if (magic == GZIP_MAGIC) != name.lower().endswith(".gz"):
        actual = "gzip-compressed" if magic == GZIP_MAGIC else "not compressed"
        raise VolumeError(f"The file is {actual} but its name says otherwise; rename it to"
                          f" end in {'.nii.gz' if magic == GZIP_MAGIC else '.nii'}.", file=name)
    try:
        # Mapping the file spares a copy in CPython; Pyodide's MEMFS would copy it anyway.
        image = nibabel.load(path, mmap=sys.platform != "emscripten")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise VolumeError(f"The file is truncated or corrupt: {exc}.", file=name) from exc
    except nibabel.filebasedimages.ImageFileError as exc:
        if magic == GZIP_MAGIC and _gzip_is_cut(path):
            raise VolumeError("The file is truncated: its gzip stream ends early.",
                              file=name) from exc
        raise VolumeError("This is not a NIfTI-1 or NIfTI-2 file (no valid header).",
                          file=name) from exc
    if not isinstance(image, (nibabel.Nifti1Image, nibabel.Nifti2Image)):
        raise VolumeError(f"This is a {type(image).__name__}, not a NIfTI-1 or NIfTI-2 image.",
                          file=name)
    header = image.header
    require_3d(image.shape, name)
    spacing, direction, origin, notes = _geometry(header, name)
    voxels, slope, intercept = _voxels(image, path, name)
    return Volume(voxels, spacing, origin, direction, slope, intercept,
                  source_format="nifti", source_name=name, notes=notes)


def _read_pair(path, opened):
    """A .hdr + .img pair: NIfTI-1 (its forms) or Analyze 7.5 (nibabel's convention)."""
    import nibabel

    name = opened.name(path)
    stem = os.path.basename(path)[:-len(".hdr")]
    # nibabel opens the .img beside the header itself: it must be a file opened with it.
    image_name = stem + (".IMG" if path.endswith(".HDR") else ".img")
    image_path, _ = opened.data_file(path, image_name, "voxel data (.img)")
    try:
        image = nibabel.load(path, mmap=sys.platform != "emscripten")
    except nibabel.filebasedimages.ImageFileError as exc:
        raise VolumeError("This is not an Analyze 7.5 or NIfTI-1 header (.hdr).",
                          file=name) from exc
    if not isinstance(image, (nibabel.Nifti1Pair, nibabel.AnalyzeImage)):
        raise VolumeError(f"This is a {type(image).__name__}, not an Analyze or NIfTI-1 pair.",
                          file=name)
    require_3d(image.shape, name)
    if isinstance(image, nibabel.Nifti1Pair):
        spacing, direction, origin, notes = _geometry(image.header, name)
    else:
        lps = RAS_TO_LPS @ np.asarray(image.affine, dtype=np.float64)[:3, :]
        spacing, direction = split_affine(lps[:, :3], name)
        origin = lps[:, 3]
        notes = [f"{name}: Analyze 7.5 stores no orientation; the voxels were taken as stored"
                 " radiologically (the first axis running to the patient's left) with the origin"
                 " from SPM's origin field or else the centre, as nibabel and SPM do: check left"
                 " and right before use."]
    voxels, slope, intercept = _voxels(image, image_path, opened.name(image_path))
    return Volume(voxels, spacing, origin, direction, slope, intercept,
                  source_format="nifti" if isinstance(image, nibabel.Nifti1Pair) else "analyze",
                  source_name=name, notes=notes)


def _gzip_is_cut(path):
    """Whether the gzip stream at ``path`` ends before its end (nibabel then says only that it
    cannot tell the file type)."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except (EOFError, zlib.error, gzip.BadGzipFile):
        return True
    return False


def _geometry(header, name):
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    if sform_code > 0:
        affine = sform
    elif qform_code > 0:
        affine = qform
    else:
        raise VolumeError(
            "Both qform_code and sform_code are 0, so the file does not say how its voxels lie"
            " in the patient; set a qform or an sform (e.g. with nibabel or fslorient) first.",
            file=name)
    notes = []
    if sform_code > 0 and qform_code > 0 and np.max(np.abs(sform - qform)) > 1e-3:
        notes.append(f"{name}: the qform and the sform differ; the sform was used, as the NIfTI"
                     " convention (and nibabel, FSL) has it.")
    unit = header.get_xyzt_units()[0]
    if unit == "unknown":
        notes.append(f"{name}: no spatial unit in the header; millimetres assumed, as ITK does.")
    factor = UNIT_TO_MM.get(unit, 1.0)
    lps = RAS_TO_LPS @ (np.asarray(affine, dtype=np.float64)[:3, :] * factor)
    spacing, direction = split_affine(lps[:, :3], name)
    return spacing, direction, lps[:, 3], notes


def _voxels(image, path, name):
    proxy = image.dataobj
    dtype = image.get_data_dtype()
    nbytes = int(np.prod(image.shape, dtype=np.int64)) * dtype.itemsize
    if not name.lower().endswith(".gz"):
        available = os.path.getsize(path) - proxy.offset
        if available < nbytes:
            raise VolumeError(
                f"The header promises {nbytes} bytes of voxel data but the file holds only"
                f" {max(available, 0)}: it is truncated or its header is wrong.", file=name)
    if dtype.names is None and dtype.kind not in "biuf":
        raise VolumeError(f"Voxels of type {dtype} are not supported.", file=name)
    if dtype.names is not None and dtype != np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")]):
        raise VolumeError(f"Voxels of type {dtype} are not supported (RGB24 is).", file=name)
    try:
        stored = proxy.get_unscaled()
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise VolumeError(
            f"The voxel data is truncated or corrupt ({exc}); the header promises {nbytes} bytes.",
            file=name) from exc
    # NIfTI stores x fastest: the Fortran-order (i, j, k) array is, transposed, a C-order [k, j, i].
    stored = stored.reshape(image.shape[:3], order="F").T
    if dtype.names is not None:
        stored = stored.view(np.uint8).reshape(stored.shape + (3,))
    slope, intercept = float(proxy.slope), float(proxy.inter)
    if dtype.kind == "f" and (slope, intercept) != (1.0, 0.0):
        # Float voxels gain nothing from keeping the scaling apart: apply it once, exactly.
        stored = stored.astype(np.float64) * slope + intercept
        slope, intercept = 1.0, 0.0
    return stored, slope, intercept

"""NRRD volumes (.nrrd, and .nhdr with its detached data file), header parsed by pynrrd.

Raw and gzip data are read here straight into the final array (exact sizes, clear errors, one
copy); the other encodings pynrrd knows (bzip2, ascii) go through pynrrd. The patient space must
be named (LPS, RAS or LAS); a file without one does not say where the patient is and is refused.
An RGB volume has its 3 colour components on the first (fastest) axis, as NRRD writes them.
"""

import os

import numpy as np

from ..errors import VolumeError
from ..volume import OpenedFiles, Volume, require_3d, split_affine
from .rawdata import GZIP_WBITS, inflate_exact, read_exact

# Factor turning each named space's vectors into LPS.
SPACE_TO_LPS = {
    "left-posterior-superior": np.diag([1.0, 1.0, 1.0]),
    "right-anterior-superior": np.diag([-1.0, -1.0, 1.0]),
    "left-anterior-superior": np.diag([1.0, -1.0, 1.0]),
}
SPACE_ALIASES = {"lps": "left-posterior-superior", "ras": "right-anterior-superior",
                 "las": "left-anterior-superior"}
COLOUR_KINDS = {"rgb-color", "3-color", "vector", "3-vector", "list", "point", "covariant-vector",
                "normal"}
UNIT_TO_MM = {"mm": 1.0, "millimeter": 1.0, "millimeters": 1.0, "m": 1000.0, "cm": 10.0,
              "um": 0.001, "micron": 0.001, "": 1.0}


def read(path, opened=None):
    """Read a .nrrd or .nhdr file; see :func:`dcmstudio.volume.read_volume`.

    ``opened`` (:class:`dcmstudio.volume.OpenedFiles`) holds the files a .nhdr may take its
    data from, and the user's names; by default, ``path`` alone.
    """
    import nrrd

    opened = opened or OpenedFiles([path])
    name = opened.name(path)
    with open(path, "rb") as fh:
        if not fh.read(7).startswith(b"NRRD000"):
            raise VolumeError("This is not a NRRD file (it does not start with NRRD000x).",
                              file=name)
        fh.seek(0)
        try:
            header = nrrd.read_header(fh)
        except (nrrd.NRRDError, ValueError) as exc:
            raise VolumeError(f"The NRRD header cannot be read: {exc}.", file=name) from exc
        header_end = fh.tell()
    sizes = [int(s) for s in header["sizes"]]
    colour_axis = _colour_axis(header, name)
    spatial_sizes = sizes[1:] if colour_axis else sizes
    require_3d(spatial_sizes, name)
    spacing, direction, origin, notes = _geometry(header, bool(colour_axis), name)
    dtype = _dtype(header, name)
    if colour_axis and (sizes[0] != 3 or dtype != np.uint8):
        raise VolumeError(
            f"Only RGB colour (3 components of uint8) is supported on a non-spatial axis; this"
            f" file has {sizes[0]} components of {dtype}.", file=name)
    voxels = _voxels(header, path, header_end, dtype, sizes, opened, notes)
    # NRRD's sizes run fastest first; the array is C-ordered, slowest first: [k, j, i(, c)].
    # (Trailing axes of size 1, which require_3d let through, are dropped.)
    spatial = spatial_sizes[:3]
    voxels = voxels.reshape(tuple(reversed(spatial)) + ((3,) if colour_axis else ()))
    return Volume(voxels, spacing, origin, direction, source_format="nrrd", source_name=name,
                  notes=notes)


def _colour_axis(header, name):
    """True when the first axis holds components (no space direction, a list-like kind)."""
    directions = header.get("space directions")
    kinds = [str(k).lower() for k in header.get("kinds", [])]
    if directions is None:
        return False
    nonspatial = [n for n, row in enumerate(np.asarray(directions, dtype=float))
                  if np.all(np.isnan(row))]
    if not nonspatial:
        return False
    if nonspatial != [0] or (kinds and kinds[0] not in COLOUR_KINDS):
        raise VolumeError(
            f"Axes {nonspatial} are not spatial (kinds {kinds}); only a 3-D volume, optionally"
            " with RGB components on the first axis, is supported.", file=name)
    return True


def _geometry(header, has_colour_axis, name):
    space = str(header.get("space", "")).lower()
    space = SPACE_ALIASES.get(space, space)
    if space not in SPACE_TO_LPS:
        if space:
            raise VolumeError(
                f"The space '{header['space']}' is not a patient space (LPS, RAS or LAS); the"
                " position of the patient is unknown.", file=name)
        raise VolumeError(
            "The header has no 'space' field, so it does not say how the voxels lie in the"
            " patient; add space, space directions and space origin.", file=name)
    if header.get("space directions") is None:
        raise VolumeError("The header has a space but no 'space directions'.", file=name)
    rows = np.asarray(header["space directions"], dtype=np.float64)
    if has_colour_axis:
        rows = rows[1:]
    if rows.shape != (3, 3):
        raise VolumeError(f"The space directions have shape {rows.shape}; 3 axes of 3 values are"
                          " expected.", file=name)
    units = [str(u).lower() for u in header.get("space units", ["mm"] * 3)]
    unknown = [u for u in units if u not in UNIT_TO_MM]
    if unknown:
        raise VolumeError(f"Space units {unknown} are not supported (mm, cm, m, um).", file=name)
    factors = np.array([UNIT_TO_MM[u] for u in units])
    to_lps = SPACE_TO_LPS[space]
    # One row per axis in NRRD; the volume wants one column per axis.
    matrix = to_lps @ (rows.T * factors[:, None])
    spacing, direction = split_affine(matrix, name)
    notes = []
    if header.get("space origin") is None:
        origin = np.zeros(3)
        notes.append(f"{name}: no space origin; (0, 0, 0) taken, as ITK does.")
    else:
        origin = to_lps @ (np.asarray(header["space origin"], dtype=np.float64) * factors)
    return spacing, direction, origin, notes


def _dtype(header, name):
    from nrrd.reader import _determine_datatype

    try:
        dtype = _determine_datatype(header)
    except Exception as exc:
        raise VolumeError(f"The voxel type '{header.get('type')}' is not supported: {exc}.",
                          file=name) from exc
    if dtype.kind not in "iuf":
        raise VolumeError(f"The voxel type '{header.get('type')}' is not supported.", file=name)
    return dtype


def _voxels(header, path, header_end, dtype, sizes, opened, notes):
    """The flat voxel data, from after the header or from the detached data file."""
    import nrrd

    name = opened.name(path)
    count = int(np.prod(sizes, dtype=np.int64))
    encoding = str(header.get("encoding", "")).lower()
    data_file = header.get("data file", header.get("datafile"))
    if data_file is not None:
        if str(data_file).upper().startswith("LIST") or " " in str(data_file).strip():
            raise VolumeError("A data file given as a LIST or a pattern is not supported.",
                              file=name)
        data_path, note = opened.data_file(path, data_file)
        notes += [note] if note else []
        data_name, start = opened.name(data_path), 0
        # pynrrd, when it reads the data below, opens the file the header names: this one.
        header.pop("datafile", None)
        header["data file"] = os.path.abspath(data_path)
    else:
        data_path, data_name, start = path, name, header_end
    line_skip = int(header.get("line skip", header.get("lineskip", 0)))
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    if encoding in ("raw", "gzip", "gz") and byte_skip >= 0:
        with open(data_path, "rb") as fh:
            fh.seek(start)
            for _ in range(line_skip):
                fh.readline()
            if encoding == "raw":
                fh.seek(byte_skip, os.SEEK_CUR)
                flat = read_exact(fh, dtype, count, data_name)
            elif byte_skip == 0:
                flat = inflate_exact(fh, dtype, count, GZIP_WBITS, data_name)
            else:
                flat = None
        if flat is not None:
            return flat
    try:
        # pynrrd reads attached data from the header's handle, and opens a detached file itself.
        with open(path, "rb") as fh:
            fh.seek(header_end)
            flat = nrrd.read_data(header, fh, path, index_order="C")
    except nrrd.NRRDError as exc:
        raise VolumeError(f"The voxel data cannot be read: {exc}.", file=data_name) from exc
    return np.ascontiguousarray(flat)

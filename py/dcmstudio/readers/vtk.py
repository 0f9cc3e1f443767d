"""VTK legacy STRUCTURED_POINTS volumes (.vtk), BINARY (big-endian) or ASCII.

Only the first point-data attribute is read, and it must be SCALARS (1 component) or
COLOR_SCALARS with 3 values (RGB). A legacy file has no orientation and no patient frame: its
axes are taken as LPS with the identity direction, as ITK's VTKImageIO (hence SimpleITK) does;
the volume's notes say so.
"""

import os

import numpy as np

from ..errors import VolumeError
from ..volume import Volume, require_3d
from .rawdata import read_exact

DATA_TYPES = {
    "unsigned_char": "u1", "char": "i1", "unsigned_short": "u2", "short": "i2",
    "unsigned_int": "u4", "int": "i4", "float": "f4", "double": "f8",
    "vtktypeint8": "i1", "vtktypeuint8": "u1", "vtktypeint16": "i2", "vtktypeuint16": "u2",
    "vtktypeint32": "i4", "vtktypeuint32": "u4", "vtktypeint64": "i8", "vtktypeuint64": "u8",
    "vtktypefloat32": "f4", "vtktypefloat64": "f8",
}
MAX_LINE = 4096


def read(path, name=None):
    """Read a legacy .vtk STRUCTURED_POINTS file; see :func:`dcmstudio.volume.read_volume`."""
    name = name or os.path.basename(path)
    with open(path, "rb") as f:
        header = _Lines(f, name)
        if not header.next().startswith("# vtk DataFile Version"):
            raise VolumeError("This is not a VTK legacy file (no '# vtk DataFile Version' line).",
                              file=name)
        header.next()  # the title
        mode = header.next().upper()
        if mode not in ("ASCII", "BINARY"):
            raise VolumeError(f"The third line must be ASCII or BINARY, not '{mode[:20]}'.",
                              file=name)
        dataset = header.next().split()
        if [w.upper() for w in dataset] != ["DATASET", "STRUCTURED_POINTS"]:
            raise VolumeError(
                f"Only DATASET STRUCTURED_POINTS is supported, not '{' '.join(dataset)[:40]}'.",
                file=name)
        geometry = {"SPACING": [1.0, 1.0, 1.0], "ORIGIN": [0.0, 0.0, 0.0]}
        while True:
            words = header.next().split()
            keyword = words[0].upper()
            if keyword == "POINT_DATA":
                break
            if keyword in ("DIMENSIONS", "SPACING", "ASPECT_RATIO", "ORIGIN") and len(words) == 4:
                key = "SPACING" if keyword == "ASPECT_RATIO" else keyword
                geometry[key] = _numbers(words[1:], name, keyword)
            else:
                raise VolumeError(
                    f"'{' '.join(words)[:40]}' is not supported before POINT_DATA (cell data, a"
                    " direction or field data cannot be read).", file=name)
        if "DIMENSIONS" not in geometry:
            raise VolumeError("The header has no DIMENSIONS line.", file=name)
        sizes = [int(v) for v in geometry["DIMENSIONS"]]
        require_3d(sizes, name)
        count = int(np.prod(sizes, dtype=np.int64))
        if int(_numbers(words[1:2], name, "POINT_DATA")[0]) != count:
            raise VolumeError(f"POINT_DATA {words[1]} does not match DIMENSIONS {sizes}.",
                              file=name)
        dtype, components, ascii_scale = _attribute(header, mode, name)
        if mode == "BINARY":
            flat = read_exact(header.data(), dtype.newbyteorder(">"), count * components, name)
        else:
            flat = _read_ascii(header.data(), dtype, count * components, ascii_scale, name)
    shape = tuple(reversed(sizes)) + ((3,) if components == 3 else ())
    # A negative spacing means an axis running backwards: keep it in the direction.
    signs = np.where(np.asarray(geometry["SPACING"]) < 0, -1.0, 1.0)
    spacing = np.abs(geometry["SPACING"])
    note = f"{name}: a VTK legacy file has no patient orientation; its axes are taken as LPS."
    return Volume(flat.reshape(shape), spacing, geometry["ORIGIN"], np.diag(signs),
                  source_format="vtk", source_name=name, notes=[note])


def _attribute(header, mode, name):
    """Parse the attribute header; return (dtype, components, scale for ASCII colour)."""
    words = header.next().split()
    kind = words[0].upper()
    if kind == "SCALARS" and len(words) in (3, 4):
        type_name = words[2].lower()
        if type_name not in DATA_TYPES:
            raise VolumeError(f"SCALARS of type '{type_name}' are not supported.", file=name)
        components = int(words[3]) if len(words) == 4 else 1
        if components != 1:
            raise VolumeError(f"SCALARS with {components} components are not supported.",
                              file=name)
        lookup = header.next().split()
        if not lookup or lookup[0].upper() != "LOOKUP_TABLE":
            raise VolumeError("SCALARS must be followed by a LOOKUP_TABLE line.", file=name)
        return np.dtype(DATA_TYPES[type_name]), 1, None
    if kind == "COLOR_SCALARS" and len(words) == 3:
        if words[2] != "3":
            raise VolumeError(f"COLOR_SCALARS with {words[2]} values: only RGB (3) is supported.",
                              file=name)
        # Binary colour is unsigned char; ASCII colour is floats in [0, 1].
        return np.dtype("u1"), 3, (255.0 if mode == "ASCII" else None)
    raise VolumeError(f"The first point data is '{' '.join(words)[:40]}'; only SCALARS or"
                      " COLOR_SCALARS can be read.", file=name)


def _read_ascii(fileobj, dtype, count, scale, name):
    tokens = fileobj.read().split()
    if len(tokens) < count:
        raise VolumeError(f"The header promises {count} values but the file holds {len(tokens)}.",
                          file=name)
    try:
        values = np.array(tokens[:count], dtype=np.float64)
    except ValueError:
        raise VolumeError("The ASCII voxel data holds something that is not a number.",
                          file=name) from None
    if scale is not None:
        values = np.rint(values * scale)
    return values.astype(dtype)


def _numbers(words, name, keyword):
    try:
        return [float(w) for w in words]
    except ValueError:
        raise VolumeError(f"{keyword} {' '.join(words)} is not a list of numbers.",
                          file=name) from None


class _Lines:
    """Non-blank header lines of a binary file, leaving it positioned at the data."""

    def __init__(self, fileobj, name):
        self._f = fileobj
        self._name = name

    def next(self):
        while True:
            line = self._f.readline(MAX_LINE)
            if not line:
                raise VolumeError("The header ends before the voxel data.", file=self._name)
            text = line.decode("latin-1").strip()
            if text:
                return text

    def data(self):
        return self._f

"""MetaImage volumes: .mha (header and data in one file) and .mhd with its .raw or .zraw.

MetaImage is ITK's own format, so its geometry is already LPS. ``TransformMatrix`` lists the
direction of each index axis in turn (ITK writes the direction matrix column by column), and
``AnatomicalOrientation`` is informational: ITK ignores it on reading, and so do we.
"""

import os

import numpy as np

from ..errors import VolumeError
from ..volume import OpenedFiles, Volume, require_3d, split_affine
from .rawdata import ZLIB_WBITS, inflate_exact, read_exact

ELEMENT_TYPES = {
    "MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2",
    "MET_INT": "i4", "MET_UINT": "u4", "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}
# Synonyms MetaIO accepts for the same field. (ElementSize is not one: it is the voxel's physical
# extent, which ITK takes as the spacing only when ElementSpacing is absent.)
ALIASES = {"Position": "Offset", "Origin": "Offset", "Rotation": "TransformMatrix",
           "Orientation": "TransformMatrix"}
MAX_HEADER = 1 << 16


def read(path, opened=None):
    """Read a .mha or .mhd file; see :func:`dcmstudio.volume.read_volume`.

    ``opened`` (:class:`dcmstudio.volume.OpenedFiles`) holds the files a .mhd may take its
    data from, and the user's names; by default, ``path`` alone.
    """
    opened = opened or OpenedFiles([path])
    name = opened.name(path)
    fields, data_offset = _header(path, name)
    if fields.get("ObjectType", "Image").lower() != "image":
        raise VolumeError(f"ObjectType is {fields['ObjectType']}; only Image is supported.",
                          file=name)
    ndims = _ints(fields, "NDims", name)[0]
    sizes = _ints(fields, "DimSize", name)
    if len(sizes) != ndims:
        raise VolumeError(f"DimSize has {len(sizes)} values but NDims is {ndims}.", file=name)
    require_3d(sizes, name)
    sizes = sizes[:3]
    channels = _ints(fields, "ElementNumberOfChannels", name, default=[1])[0]
    type_name = fields.get("ElementType", "")
    if type_name not in ELEMENT_TYPES:
        raise VolumeError(f"ElementType '{type_name}' is not supported.", file=name)
    dtype = np.dtype(ELEMENT_TYPES[type_name])
    big_endian = any(fields.get(k, "False").lower() == "true"
                     for k in ("BinaryDataByteOrderMSB", "ElementByteOrderMSB"))
    dtype = dtype.newbyteorder(">" if big_endian else "<")
    if channels != 1 and not (channels == 3 and dtype.itemsize == 1 and dtype.kind == "u"):
        raise VolumeError(
            f"{channels} channels of {type_name}: only grey or RGB (3 × MET_UCHAR) is supported.",
            file=name)
    if fields.get("BinaryData", "True").lower() != "true":
        raise VolumeError("Text (BinaryData = False) MetaImage data is not supported.", file=name)
    spacing, direction, origin = _geometry(fields, name)
    count = sizes[0] * sizes[1] * sizes[2] * channels
    notes = []
    flat = _voxels(fields, path, data_offset, dtype, count, opened, notes)
    shape = tuple(reversed(sizes)) + ((3,) if channels == 3 else ())
    return Volume(flat.reshape(shape), spacing, origin, direction, source_format="metaimage",
                  source_name=name, notes=notes)


def _header(path, name):
    """Parse ``Key = Value`` lines up to ElementDataFile (always last): (fields, data offset)."""
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER)
    fields, offset = {}, 0
    for raw_line in head.splitlines(keepends=True):
        offset += len(raw_line)
        line = raw_line.decode("latin-1").strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise VolumeError(f"Header line '{line[:60]}' is not 'Key = Value'.", file=name)
        key = key.strip()
        fields[ALIASES.get(key, key)] = value.strip()
        if key == "ElementDataFile":
            return fields, offset
    raise VolumeError("The header has no ElementDataFile line, so the data cannot be found.",
                      file=name)


def _ints(fields, key, name, default=None):
    try:
        return [int(v) for v in fields[key].split()]
    except KeyError:
        if default is not None:
            return default
        raise VolumeError(f"The header lacks {key}.", file=name) from None
    except ValueError:
        raise VolumeError(f"{key} = {fields[key]} is not a list of integers.", file=name) from None


def _floats(fields, key, count, name, default):
    if key not in fields:
        return np.asarray(default, dtype=np.float64)
    try:
        values = np.array([float(v) for v in fields[key].split()])
    except ValueError:
        raise VolumeError(f"{key} = {fields[key]} is not a list of numbers.", file=name) from None
    if values.size != count:
        raise VolumeError(f"{key} has {values.size} values; {count} are expected.", file=name)
    return values


def _geometry(fields, name):
    spacing_key = "ElementSpacing" if "ElementSpacing" in fields else "ElementSize"
    spacing = _floats(fields, spacing_key, 3, name, [1.0, 1.0, 1.0])
    origin = _floats(fields, "Offset", 3, name, [0.0, 0.0, 0.0])
    # Row n of TransformMatrix is the direction of index axis n (see the module docstring).
    axes = _floats(fields, "TransformMatrix", 9, name, np.eye(3).ravel()).reshape(3, 3)
    _, direction = split_affine(axes.T, name)
    if np.any(spacing <= 0):
        raise VolumeError(f"{spacing_key} {spacing.tolist()} is not positive.", file=name)
    return spacing, direction, origin


def _voxels(fields, path, data_offset, dtype, count, opened, notes):
    name = opened.name(path)
    data_file = fields["ElementDataFile"]
    compressed = fields.get("CompressedData", "False").lower() == "true"
    if data_file.upper() == "LOCAL":
        data_path, data_name = path, name
    elif data_file.upper().startswith("LIST") or len(data_file.split()) > 1:
        raise VolumeError("Data split over several files (LIST or a pattern) is not supported.",
                          file=name)
    else:
        data_path, note = opened.data_file(path, data_file)
        data_name = opened.name(data_path)
        notes += [note] if note else []
        data_offset = _ints(fields, "HeaderSize", name, default=[0])[0]
        if data_offset == -1 and not compressed:
            # MetaIO's convention: the data is the last bytes of the file.
            data_offset = os.path.getsize(data_path) - count * dtype.itemsize
        if data_offset < 0:
            raise VolumeError(f"HeaderSize {fields.get('HeaderSize')} does not fit the data file.",
                              file=name)
    with open(data_path, "rb") as f:
        f.seek(data_offset)
        if compressed:
            return inflate_exact(f, dtype, count, ZLIB_WBITS, data_name)
        return read_exact(f, dtype, count, data_name)

"""A 3-D image volume with its place in the patient, read from any of the formats we accept.

One value, :class:`Volume`, whatever the source: NIfTI-1/2, Analyze 7.5, NRRD, MetaImage, VTK
legacy STRUCTURED_POINTS, or an existing DICOM series. Its conventions are ITK's (so SimpleITK, the
judge in our tests, reads our output the same way):

- ``voxels`` is indexed ``[k, j, i]`` (slice, row, column), with a last axis of colour
  components when there is more than one; the real value of a voxel is
  ``voxels * slope + intercept``.
- ``spacing`` is ``(i, j, k)`` in mm; ``origin`` is the LPS position of voxel ``[0, 0, 0]`` in mm.
- ``direction`` is 3×3; column ``n`` is the LPS unit vector along index axis ``n`` (i, j, k).
  It may be left-handed; the position of voxel ``[k, j, i]`` is always
  ``origin + direction @ (spacing * (i, j, k))``. A direction within the tolerance of
  orthonormal is made exactly so, and the largest move of a voxel that causes is kept
  (``max_position_error``), as the rescale's largest value error is.

:func:`read_volume` picks the reader from the file names (else their first bytes), and takes a
two-file format's data file only from the files opened with it (:class:`OpenedFiles`). The readers live in ``dcmstudio.readers``;
they are imported on demand, since nibabel alone takes seconds to import in Pyodide.
"""

import os
import struct
from dataclasses import dataclass, field

import numpy as np

from .errors import DicomStudioError, InvalidDicomError, VolumeError

# Files whose name ends so are read by the reader named; anything else is tried as DICOM.
VOLUME_SUFFIXES = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".hdr": "nifti",  # an Analyze 7.5 or NIfTI-1 pair: the header, with its .img beside it
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "metaimage",
    ".mhd": "metaimage",
    ".vtk": "vtk",
}

SNIFF_BYTES = 4096

# How far two direction columns may be from perpendicular (cosine of their angle), and a
# column from unit length: NIfTI stores its matrices in float32, so exact zeros are rare.
ORTHOGONALITY_TOLERANCE = 1e-4

# Directions closer than this to orthonormal (D^T D against the identity) are taken as they
# are; others within the tolerance above are made orthonormal, and the move is measured.
EXACTLY_ORTHONORMAL = 1e-12
# A move from that of at least this much (mm) gets a note; any move is in the summary.
NOTED_POSITION_ERROR_MM = 1e-4

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])

_SUPPORTED_DTYPES = {np.dtype(t) for t in (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
    "float32", "float64", "bool")}


@dataclass
class Volume:
    """A 3-D volume: voxel array, geometry in LPS, and where it came from.

    Parameters
    ----------
    voxels : numpy.ndarray
        ``[k, j, i]`` or ``[k, j, i, c]`` (``c`` = 3 for RGB), C-contiguous, native byte order.
    spacing : tuple of float
        Voxel size along ``i``, ``j``, ``k`` in mm, each > 0.
    origin : tuple of float
        LPS position of voxel ``[0, 0, 0]`` in mm.
    direction : numpy.ndarray
        3×3; column ``n`` is the LPS unit vector of index axis ``n``. Orthonormal.
    slope, intercept : float
        Real value = ``voxels * slope + intercept`` (NIfTI scl_*, DICOM Rescale *).
    source_format : str
        ``"nifti"``, ``"analyze"``, ``"nrrd"``, ``"metaimage"``, ``"vtk"`` or ``"dicom"``.
    source_name : str
        Name of the file read (the first file for a DICOM series).
    dicom : dict
        For a DICOM source, the attributes a re-export keeps (UIDs, patient, study, and the
        acquisition's attributes every file agrees on); else empty. JSON-plain values.
    notes : list of str
        Sentences about choices a reader made that the user should know (e.g. units assumed).
    memo : dict
        Results derived from the voxels (e.g. their range), computed once: a plan and then the
        write that follows it need not scan a large volume twice. The voxels must therefore not
        be changed in place after construction.

    Attributes
    ----------
    max_position_error : float
        A direction whose axes are perpendicular and of unit length only within
        ``ORTHOGONALITY_TOLERANCE`` (float32 matrices, rounded DS strings, a slight shear) is
        replaced by the nearest orthonormal one, since DICOM slices have perpendicular axes:
        this is the largest distance (mm) any voxel moves by it, 0.0 when nothing moved.
    """

    voxels: np.ndarray
    spacing: tuple
    origin: tuple
    direction: np.ndarray
    slope: float = 1.0
    intercept: float = 0.0
    source_format: str = ""
    source_name: str = ""
    dicom: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    memo: dict = field(default_factory=dict, repr=False, compare=False)
    max_position_error: float = field(default=0.0, init=False)

    def __post_init__(self):
        name = self.source_name or None
        voxels = self.voxels
        if voxels.ndim not in (3, 4) or (voxels.ndim == 4 and voxels.shape[3] != 3):
            raise VolumeError(
                f"The voxel array has shape {voxels.shape}; a volume is [slices, rows, columns]"
                " with an optional last axis of 3 colour components.", file=name)
        if voxels.dtype.newbyteorder("=") not in _SUPPORTED_DTYPES:
            raise VolumeError(f"Voxels of type {voxels.dtype} are not supported.", file=name)
        if not voxels.dtype.isnative:
            voxels = voxels.astype(voxels.dtype.newbyteorder("="))
        self.voxels = np.ascontiguousarray(voxels)
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise VolumeError(f"Voxel spacing {self.spacing} is not positive and finite.",
                              file=name)
        if not all(np.isfinite(self.origin)):
            raise VolumeError(f"Origin {self.origin} is not finite.", file=name)
        check_orthonormal(self.direction, name)
        self._make_orthonormal()
        if not (np.isfinite(self.slope) and np.isfinite(self.intercept) and self.slope != 0):
            raise VolumeError(
                f"Value scaling (slope {self.slope}, intercept {self.intercept}) is not usable.",
                file=name)
        self.slope = float(self.slope)
        self.intercept = float(self.intercept)

    def _make_orthonormal(self):
        """Replace a nearly orthonormal direction by the nearest orthonormal one (polar
        decomposition); measure how far that moves the voxels and say so in a note."""
        direction = self.direction
        gram = direction.T @ direction
        if np.max(np.abs(gram - np.eye(3))) <= EXACTLY_ORTHONORMAL:
            return
        u, _, vt = np.linalg.svd(direction)
        nearest = u @ vt
        # The move is linear in (i, j, k) and zero at the origin: largest at a corner.
        moved = (direction - nearest) * np.asarray(self.spacing)
        last = np.asarray(self.shape, dtype=np.float64) - 1
        corners = np.array([[i, j, k] for i in (0, last[0]) for j in (0, last[1])
                            for k in (0, last[2])])
        self.max_position_error = float(np.max(np.linalg.norm(corners @ moved.T, axis=1)))
        self.direction = nearest
        if self.max_position_error >= NOTED_POSITION_ERROR_MM:
            skew = np.max(np.abs(gram - np.diag(np.diag(gram))))
            self.notes.append(
                f"{self.source_name or 'The volume'}: its voxel axes are not exactly perpendicular"
                f" (largest cosine between them {skew:.2g}); DICOM slices need perpendicular axes,"
                f" so they were made so, which moves voxels by up to"
                f" {self.max_position_error:.3g} mm.")

    @property
    def shape(self):
        """``(i, j, k)`` sizes: columns, rows, slices."""
        k, j, i = self.voxels.shape[:3]
        return (i, j, k)

    @property
    def components(self):
        """Values per voxel: 1 (grey) or 3 (RGB)."""
        return 1 if self.voxels.ndim == 3 else self.voxels.shape[3]

    @property
    def right_handed(self):
        """Whether ``k`` runs along ``i × j`` (True) or against it (left-handed)."""
        return bool(np.linalg.det(self.direction) > 0)

    def slice_position(self, k):
        """LPS position (mm) of voxel ``[k, 0, 0]``: origin + k · spacing_k · direction[:, 2]."""
        return np.asarray(self.origin) + k * self.spacing[2] * self.direction[:, 2]

    def affine_lps(self):
        """4×4 matrix from ``(i, j, k, 1)`` to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing)
        affine[:3, 3] = self.origin
        return affine

    def summary(self):
        """JSON-plain description for the page: size, type, geometry, source and notes."""
        return {
            "shape": list(self.shape),
            "components": self.components,
            "dtype": str(self.voxels.dtype),
            "slope": self.slope,
            "intercept": self.intercept,
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": self.direction.T.reshape(-1).tolist(),
            "right_handed": self.right_handed,
            "source_format": self.source_format,
            "source_name": self.source_name,
            "dicom": dict(self.dicom),
            "notes": list(self.notes),
            "max_position_error": self.max_position_error,
            "bytes": int(self.voxels.nbytes),
        }


def check_orthonormal(direction, file=None):
    """Raise VolumeError unless the columns of ``direction`` are unit length and perpendicular.

    DICOM describes a slice by two perpendicular unit vectors and places slices along a third:
    a sheared grid (a tilted gantry, an affine with skew) cannot be written without resampling,
    and we do not resample behind the user's back.
    """
    if not np.all(np.isfinite(direction)):
        raise VolumeError("The orientation matrix holds values that are not finite.", file=file)
    lengths = np.linalg.norm(direction, axis=0)
    if np.any(np.abs(lengths - 1) > ORTHOGONALITY_TOLERANCE):
        raise VolumeError(f"The orientation vectors are not of unit length: {lengths.tolist()}.",
                          file=file)
    gram = direction.T @ direction
    skew = np.max(np.abs(gram - np.diag(np.diag(gram))))
    if skew > ORTHOGONALITY_TOLERANCE:
        raise VolumeError(
            f"The voxel axes are not perpendicular (largest cosine between them {skew:.4g}): a"
            " sheared grid, e.g. from a tilted gantry, cannot be written as DICOM slices without"
            " resampling it first.", file=file)


def split_affine(matrix, file=None):
    """Split a 3×3 index-to-mm matrix (LPS) into ``(spacing, direction)``; refuse a sheared one."""
    matrix = np.asarray(matrix, dtype=np.float64)
    spacing = np.linalg.norm(matrix, axis=0)
    if not np.all(np.isfinite(spacing)) or np.any(spacing == 0):
        raise VolumeError(
            "The voxel-to-position matrix has an axis of zero or undefined length:"
            f" {matrix.tolist()}.",
            file=file)
    direction = matrix / spacing
    check_orthonormal(direction, file)
    return tuple(spacing), direction


def require_3d(shape, file):
    """Refuse shapes (i, j, k, …) that are not a 3-D volume of two or more slices."""
    if len(shape) < 3 or shape[2] < 2:
        raise VolumeError(
            f"This is a 2-D image (size {' × '.join(str(s) for s in shape)}); a series needs a"
            " 3-D volume of two or more slices.", file=file)
    extra = [s for s in shape[3:] if s != 1]
    if extra:
        raise VolumeError(
            f"This is a {len(shape)}-D image (size {' × '.join(str(s) for s in shape)}); only 3-D"
            " volumes can be written as a series: extract one volume first.", file=file)


def volume_format(path):
    """The reader name for ``path`` by its suffix, or None (then it is tried as DICOM)."""
    lower = os.path.basename(path).lower()
    for suffix, reader in VOLUME_SUFFIXES.items():
        if lower.endswith(suffix):
            return reader
    return None


def sniff_format(path):
    """The reader name for ``path`` by its first bytes, whatever its name; None if unknown."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return None
    if head.startswith(b"NRRD000"):
        return "nrrd"
    if head.startswith(b"# vtk DataFile"):
        return "vtk"
    if b"NDims" in head and b"ElementDataFile" in head and head[:1].isalpha():
        return "metaimage"
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] in (348, 540) and \
                (head[344:347] in (b"n+1", b"ni1") or head[4:7] in (b"n+2", b"ni2")):
            return "nifti"
    return None


def read_volume(paths, names=None):
    """Read one volume from the files of one drop.

    Parameters
    ----------
    paths : list of str
        Every file dropped together (in MEMFS in the page). One volume file (.nii, .nii.gz,
        .nrrd, .nhdr, .mha, .mhd, .vtk, or an Analyze/NIfTI .hdr) with, for .nhdr/.mhd/.hdr,
        its data file beside it; or the files of one DICOM series (files that are not DICOM are
        skipped and named in ``notes``). A header's data file is only ever one of these files.
    names : list of str, optional
        The user's name for each path, for messages (default: each path's base name).

    Returns
    -------
    Volume

    Raises
    ------
    VolumeError
        With a sentence naming the file: a companion is missing, the variant is not supported,
        the data is truncated or its header lies, the image is 2-D or 4-D, ...
    InvalidDicomError
        A file of a DICOM series is broken.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise VolumeError("No files were given.")
    if names is None or len(names) != len(paths):
        names = [os.path.basename(p) for p in paths]
    opened = OpenedFiles(paths, names)
    primaries = [p for p in paths if volume_format(p)]
    if not primaries:
        for path in paths:
            sniffed = sniff_format(path)
            if sniffed == "nifti":
                raise VolumeError("This is a NIfTI file without a .nii or .nii.gz name, which"
                                  " nibabel needs: rename it.", file=opened.name(path))
            if sniffed:
                primaries.append(path)
    lone_images = [p for p in paths if p.lower().endswith(".img")]
    if not primaries and lone_images:
        raise VolumeError("This is the image half of an Analyze or NIfTI pair: open its header"
                          " (.hdr) together with it.", file=opened.name(lone_images[0]))
    if len(primaries) > 1:
        listing = ", ".join(opened.name(p) for p in primaries)
        raise VolumeError(f"These files are each a volume: {listing}. Open one volume at a time.")
    if primaries:
        path = primaries[0]
        kind = volume_format(path) or sniff_format(path)
    else:
        kind, path = "dicom", None
    name = opened.name(path) if path else None
    try:
        return _read(kind, path, opened)
    except DicomStudioError:
        raise
    except MemoryError:
        raise VolumeError("The volume does not fit in memory.", file=name) from None
    except Exception as exc:  # a reader library's own error on bad input
        error = InvalidDicomError if kind == "dicom" else VolumeError
        raise error(f"This cannot be read as {kind.upper()}: {exc}.", file=name) from exc


def _read(kind, path, opened):
    if kind == "nifti":
        from .readers import nifti
        return nifti.read(path, opened)
    if kind == "nrrd":
        from .readers import nrrd
        return nrrd.read(path, opened)
    if kind == "metaimage":
        from .readers import metaimage
        return metaimage.read(path, opened)
    if kind == "vtk":
        from .readers import vtk
        return vtk.read(path, opened.name(path))
    from .readers import dicom_series
    return dicom_series.read(opened)


class OpenedFiles:
    """The files of one drop: their paths, the user's names for them, and the only files a
    volume header may name as its data file.

    A .mhd or .nhdr may name any path as its data file ('/etc/…', '../…'); reading it would
    reach files the user never opened. A data file is therefore looked up by its name among
    the files opened together, in the header's own folder.
    """

    def __init__(self, paths, names=None):
        self.paths = [os.fspath(p) for p in paths]
        names = names if names is not None else [os.path.basename(p) for p in self.paths]
        self._names = dict(zip(self.paths, names))

    def name(self, path):
        """The user's name for ``path``."""
        return self._names.get(path) or os.path.basename(path)

    def data_file(self, header_path, declared, what="voxel data"):
        """The opened file that ``header_path`` names ``declared``: ``(path, note or None)``.

        Raises
        ------
        VolumeError
            No file of that name was opened with the header: a sentence naming both.
        """
        header_name = self.name(header_path)
        declared = str(declared).strip()
        wanted = declared.replace("\\", "/").rsplit("/", 1)[-1]
        bare = wanted == declared.removeprefix("./")
        folder = os.path.dirname(header_path)
        for path in self.paths:
            if path != header_path and os.path.dirname(path) == folder \
                    and os.path.basename(path) == wanted and wanted not in ("", ".", ".."):
                note = None if bare else (
                    f"{header_name}: its {what} file is given as '{declared}'; the file"
                    f" '{self.name(path)}' opened with it was read instead (a header may name"
                    " only a file opened together with it).")
                return path, note
        where = "" if bare else (f" (named '{wanted}'; a header may not reach other files by a"
                                 f" path such as '{declared}')")
        raise VolumeError(
            f"Its {what} is in a separate file, '{declared}', which was not opened with it{where}:"
            f" open both files together.", file=header_name)


def _anatomical_axes(direction):
    """For L, P, S: the index axis (i=0, j=1, k=2) closest to it, and whether it runs along it."""
    remaining = [0, 1, 2]
    axes, signs = [None] * 3, [1] * 3
    cosines = np.abs(direction)
    for _ in range(3):
        candidates = np.full((3, 3), -1.0)
        for anatomical in range(3):
            if axes[anatomical] is None:
                candidates[anatomical, remaining] = cosines[anatomical, remaining]
        anatomical, index_axis = np.unravel_index(np.argmax(candidates), candidates.shape)
        axes[anatomical] = int(index_axis)
        signs[anatomical] = 1 if direction[anatomical, index_axis] > 0 else -1
        remaining.remove(index_axis)
    return axes, signs


def preview_slices(volume):
    """The middle slice across each anatomical axis, windowed to 8 bits for display.

    The volume is turned (flips and axis swaps only, no resampling) to the nearest L-P-S
    ordering, then shown the radiological way: axial from the feet (the patient's right on the
    left of the screen, anterior at the top), coronal from the front, sagittal from the
    patient's left (anterior on the left), head at the top.

    Returns
    -------
    dict
        ``"axial"``, ``"coronal"``, ``"sagittal"``: 2-D uint8 arrays (rows, columns), or
        (rows, columns, 3) for RGB; ``"pixel_spacing"``: for each, [row, column] spacing in mm,
        so the page can keep the aspect ratio; ``"window"``: the [low, high] real values shown
        as 0 and 255.
    """
    axes, signs = _anatomical_axes(volume.direction)
    array_axis = [2 - a for a in axes]  # index axis n (i, j, k) is array axis 2 - n
    spacing = [volume.spacing[a] for a in axes]
    voxels = volume.voxels
    middle = [voxels.shape[array_axis[n]] // 2 for n in range(3)]

    def plane(normal_axis, row_axis, column_axis, head_up):
        index = [slice(None)] * 3
        index[array_axis[normal_axis]] = middle[normal_axis]
        picture = voxels[tuple(index)]
        remaining = [a for a in range(3) if a != array_axis[normal_axis]]
        order = [remaining.index(array_axis[row_axis]), remaining.index(array_axis[column_axis])]
        picture = np.transpose(picture, order + ([2] if picture.ndim == 3 else []))
        if signs[row_axis] * (-1 if head_up else 1) < 0:
            picture = picture[::-1]
        if signs[column_axis] < 0:
            picture = picture[:, ::-1]
        return picture, [spacing[row_axis], spacing[column_axis]]

    left, posterior, superior = 0, 1, 2
    pictures = {"axial": plane(superior, posterior, left, False),
                "coronal": plane(posterior, superior, left, True),
                "sagittal": plane(left, superior, posterior, True)}
    if volume.components == 3:
        low, high = 0.0, 255.0
    else:
        # A sparse sample of the whole volume sets the window: robust to a few hot voxels.
        step = max(1, round((voxels.size / 1e6) ** (1 / 3)))
        sample = voxels[::step, ::step, ::step].astype(np.float64) * volume.slope \
            + volume.intercept
        sample = sample[np.isfinite(sample)]
        low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5])) if sample.size \
            else (0.0, 1.0)
        if high <= low:
            high = low + 1
    result = {"pixel_spacing": {}, "window": [low, high]}
    for view, (picture, pixel_spacing) in pictures.items():
        real = picture.astype(np.float64)
        if volume.components == 1:
            real = real * volume.slope + volume.intercept
        scaled = np.clip((np.nan_to_num(real, nan=low) - low) * (255.0 / (high - low)), 0, 255)
        result[view] = np.ascontiguousarray(np.rint(scaled).astype(np.uint8))
        result["pixel_spacing"][view] = [float(s) for s in pixel_spacing]
    return result

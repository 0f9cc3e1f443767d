"""An existing DICOM series (or one multi-frame file) as a volume, for re-export.

Slices are ordered by their position along the slice normal, never by file name. The files are
read twice, one at a time: headers first (to sort and check the geometry), then each file's
pixels straight into its place in the volume, so at most one file's pixels are held besides
the volume itself. Series whose slices are unevenly spaced, tilted, or of differing sizes are
refused with a sentence: resampling them would be a guess.
"""

import numpy as np
import pydicom
import pydicom.datadict
from pydicom.multival import MultiValue

from ..catalog import as_invalid_dicom, element_label, read_dicom
from ..errors import InvalidDicomError, NotDicomError, VolumeError
from ..volume import Volume, check_orthonormal

# Relative tolerance on slice gaps, and absolute (mm) on in-plane drift and duplicate positions:
# positions are DS strings of at most 16 characters, often rounded to 0.001 mm or coarser.
GAP_TOLERANCE = 0.01
POSITION_TOLERANCE_MM = 0.01
ORIENTATION_TOLERANCE = 1e-4

COLOUR_PHOTOMETRICS = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT"}
GREY_PHOTOMETRICS = {"MONOCHROME1", "MONOCHROME2"}

# Attributes a re-export keeps by default (dcmstudio.series reads this dict).
KEPT_ATTRIBUTES = (
    "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "PatientName", "PatientID",
    "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription", "SeriesDescription", "SeriesNumber",
    "Modality",
)
# Value representations a kept value is carried in, as JSON-plain text or numbers.
TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
            "UI", "UT"}
INTEGER_VRS = {"US", "SS", "UL", "SL", "UV", "SV"}
FLOAT_VRS = {"FD", "FL"}
# Found in an enhanced multi-frame file's shared functional groups when not at the top level.
SHARED_GROUP_ATTRIBUTES = {"SliceThickness": "PixelMeasuresSequence",
                           "WindowCenter": "FrameVOILUTSequence",
                           "WindowWidth": "FrameVOILUTSequence"}


def read(opened):
    """Read the DICOM files among ``opened`` (:class:`dcmstudio.volume.OpenedFiles`) as one
    volume (see ``volume.read_volume``); messages name the files by the user's names."""
    headers, skipped = _read_headers(opened)
    if not headers:
        names = ", ".join(skipped[:5]) + (" …" if len(skipped) > 5 else "")
        raise VolumeError(f"None of the files is a volume format we read or a DICOM image"
                          f" ({names}).", file=skipped[0] if len(skipped) == 1 else None)
    series = {}
    for path, ds in headers:
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((path, ds))
    if len(series) > 1:
        listing = "; ".join(f"{_describe(items[0][1])} ({len(items)} files)"
                            for items in series.values())
        raise VolumeError(f"The files belong to {len(series)} series: {listing}. Choose one"
                          " series to export.")
    notes = [f"{name}: skipped, not a DICOM image." for name in skipped]
    multiframe = [(p, ds) for p, ds in headers if int(ds.get("NumberOfFrames", 1) or 1) > 1]
    if multiframe:
        if len(headers) > 1:
            raise VolumeError("A multi-frame file cannot be combined with other files;"
                              " open it alone.", file=opened.name(multiframe[0][0]))
        return _read_multiframe(*headers[0], notes, opened.name(headers[0][0]))
    return _read_single_frames(headers, notes, [opened.name(p) for p, _ in headers])


def _read_headers(opened):
    headers, skipped = [], []
    for path in opened.paths:
        name = opened.name(path)
        try:
            ds = read_dicom(path, name, stop_before_pixels=True)
        except NotDicomError:
            skipped.append(name)
            continue
        sop_class = ds.get("SOPClassUID", ds.file_meta.get("MediaStorageSOPClassUID", ""))
        is_directory = sop_class == pydicom.uid.MediaStorageDirectoryStorage
        if is_directory or "Rows" not in ds or "Columns" not in ds:
            skipped.append(name)
            continue
        headers.append((path, ds))
    return headers, skipped


def _describe(ds):
    number = ds.get("SeriesNumber", "")
    description = ds.get("SeriesDescription", "") or "no description"
    return f"series {number} '{description}'".replace("series  ", "series ")


def _element(keyword):
    """A keyword as messages name it: '(0020,0037) ImageOrientationPatient'."""
    return element_label(pydicom.datadict.tag_for_keyword(keyword), keyword)


def _number_list(ds, keyword, count, name):
    """The ``count`` numbers of a DS element, or a VolumeError naming the element."""
    value = ds.get(keyword)
    values = list(value) if isinstance(value, MultiValue) else [] if value is None else [value]
    if len(values) != count:
        raise VolumeError(f"{_element(keyword)} is missing or does not hold {count} values.",
                          file=name)
    try:
        return np.array([float(v) for v in values])
    except (TypeError, ValueError):
        raise VolumeError(f"{_element(keyword)} '{value}' is not numeric.", file=name) from None


def _image_format(ds, name):
    """(rows, columns, samples, photometric) of one file, refusing what we cannot export."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    samples = int(ds.get("SamplesPerPixel", 1))
    if photometric in GREY_PHOTOMETRICS and samples == 1:
        pass
    elif photometric in COLOUR_PHOTOMETRICS and samples == 3:
        pass
    else:
        raise VolumeError(f"{_element('PhotometricInterpretation')} '{photometric}' with"
                          f" {samples} samples per pixel is not supported (grey or RGB is).",
                          file=name)
    return int(ds.Rows), int(ds.Columns), samples, photometric


def _rescale(item):
    """(slope, intercept) of a dataset or functional-group item; (1, 0) when absent."""
    try:
        return (float(item.get("RescaleSlope", 1) or 1),
                float(item.get("RescaleIntercept", 0) or 0))
    except (TypeError, ValueError):
        return None


def _sorted_geometry(positions, row, column, spacing_rc, names):
    """Order slices along the normal; return (order, origin, spacing, direction)."""
    normal = np.cross(row, column)
    direction = np.column_stack([row, column, normal])
    check_orthonormal(direction, names[0])
    positions = np.asarray(positions)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    if np.any(gaps < POSITION_TOLERANCE_MM):
        k = int(np.argmax(gaps < POSITION_TOLERANCE_MM))
        raise VolumeError(
            f"{names[order[k]]} and {names[order[k + 1]]} lie at the same position: the series"
            " holds more than one volume (echoes, phases or repeats). Choose one.")
    gap = (along[-1] - along[0]) / (len(along) - 1)
    if np.max(np.abs(gaps - gap)) > max(GAP_TOLERANCE * gap, POSITION_TOLERANCE_MM):
        raise VolumeError(
            f"The slices are not evenly spaced (gaps from {gaps.min():.4g} to {gaps.max():.4g}"
            " mm, missing or extra slices?); a volume needs one constant spacing.")
    drift = positions - positions[0] - np.outer(along - along[0], normal)
    if np.max(np.linalg.norm(drift, axis=1)) > max(GAP_TOLERANCE * gap, POSITION_TOLERANCE_MM):
        raise VolumeError(
            "The slices are not stacked along their normal (a tilted gantry or a sheared"
            " acquisition); it cannot be written as a volume without resampling.")
    spacing = (spacing_rc[1], spacing_rc[0], gap)
    return order, positions[0], spacing, direction


def _kept(datasets, voxels_are_stored, notes, name):
    """What a re-export keeps of the source: patient, study and series (from the first file),
    and the acquisition attributes of ``series_header.CARRIED_ATTRIBUTES`` on which every file
    agrees (those that differ are named in ``notes``). (0028,0120) *Pixel Padding Value* is a
    stored value, so it is kept only when the volume holds the stored values
    (``voxels_are_stored``)."""
    from ..series_header import CARRIED_ATTRIBUTES

    first = datasets[0]
    kept = {}
    for keyword in KEPT_ATTRIBUTES:
        value = first.get(keyword)
        if value is None or value == "":
            continue
        kept[keyword] = int(value) if keyword == "SeriesNumber" else str(value)
    carried = CARRIED_ATTRIBUTES + (("PixelPaddingValue",) if voxels_are_stored else ())
    varying = []
    for keyword in carried:
        values = [_plain_value(ds, keyword) for ds in datasets]
        if all(v == values[0] for v in values[1:]):
            if values[0] is not None:
                kept[keyword] = values[0]
        else:
            varying.append(keyword)
    if varying:
        notes.append(f"{name}: not carried, since their values differ from file to file and no"
                     f" one value is right for the series: {', '.join(varying)}.")
    return kept


def _plain_value(ds, keyword):
    """The value of ``keyword`` as JSON-plain text, number or list of them; None if absent,
    empty or of a kind not carried (bytes, sequences)."""
    element = ds[keyword] if keyword in ds else None
    if element is None and keyword in SHARED_GROUP_ATTRIBUTES:
        shared = ds.get("SharedFunctionalGroupsSequence")
        group = shared[0].get(SHARED_GROUP_ATTRIBUTES[keyword]) if shared else None
        element = group[0][keyword] if group and keyword in group[0] else None
    if element is None or element.value is None or element.value == "":
        return None
    if element.VR in TEXT_VRS:
        convert = str
    elif element.VR in INTEGER_VRS:
        convert = int
    elif element.VR in FLOAT_VRS:
        convert = float
    else:
        return None
    value = element.value
    try:
        if isinstance(value, (MultiValue, list, tuple)):
            return [convert(v) for v in value] or None
        return convert(value)
    except (TypeError, ValueError):
        return None


def _read_single_frames(headers, notes, names):
    if len(headers) < 2:
        raise VolumeError("This is a single 2-D image; a series needs a 3-D volume of two or more"
                          " slices.", file=names[0])
    first_path, first = headers[0]
    image_format = _image_format(first, names[0])
    row_col = _number_list(first, "ImageOrientationPatient", 6, names[0])
    pixel_spacing = _number_list(first, "PixelSpacing", 2, names[0])
    positions, rescales = [], []
    for (path, ds), name in zip(headers, names):
        if _image_format(ds, name) != image_format:
            raise VolumeError(f"Its image size or colour model differs from {names[0]}'s.",
                              file=name)
        if np.max(np.abs(_number_list(ds, "ImageOrientationPatient", 6, name) - row_col)) > \
                ORIENTATION_TOLERANCE:
            raise VolumeError(f"Its orientation differs from {names[0]}'s.", file=name)
        if np.max(np.abs(_number_list(ds, "PixelSpacing", 2, name) - pixel_spacing)) > 1e-6:
            raise VolumeError(f"Its pixel spacing differs from {names[0]}'s.", file=name)
        positions.append(_number_list(ds, "ImagePositionPatient", 3, name))
        rescales.append(_rescale(ds))
    if None in rescales:
        raise VolumeError(f"{_element('RescaleSlope')} or {_element('RescaleIntercept')} is not"
                          " a number.",
                          file=names[rescales.index(None)])
    order, origin, spacing, direction = _sorted_geometry(
        positions, row_col[:3], row_col[3:], pixel_spacing, names)
    rows, columns, samples, photometric = image_format
    shape = (len(headers), rows, columns) + ((3,) if samples == 3 else ())
    same_rescale = len(set(rescales)) == 1
    voxels = None
    for k, index in enumerate(order):
        path, name = headers[index][0], names[index]
        frame = _pixels(path, name)
        if frame.shape != shape[1:]:
            raise InvalidDicomError(f"Its pixel data has shape {frame.shape}, not {shape[1:]}.",
                                    file=name)
        if voxels is None:
            voxels = np.empty(shape, dtype=frame.dtype if same_rescale else np.float64)
        if same_rescale:
            voxels[k] = frame
        else:
            slope, intercept = rescales[index]
            voxels[k] = frame * slope + intercept
    slope, intercept = rescales[0] if same_rescale else (1.0, 0.0)
    if photometric == "MONOCHROME1":
        notes.append(f"{names[0]}: MONOCHROME1 (inverted grey) is written as MONOCHROME2; the"
                     " values are kept, so the display is inverted back to normal grey.")
    return Volume(voxels, spacing, origin, direction, slope, intercept, source_format="dicom",
                  source_name=names[order[0]],
                  dicom=_kept([ds for _, ds in headers], same_rescale, notes, names[0]),
                  notes=notes)


def _pixels(path, name):
    ds = read_dicom(path, name)
    with as_invalid_dicom(name, "while decoding its pixel data"):
        return ds.pixel_array


def _frame_item(ds, per_frame, index, keyword):
    """The item of functional group ``keyword`` for frame ``index``: per-frame, else shared."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    for group in (per_frame[index], shared[0] if shared else None):
        if group is not None and group.get(keyword):
            return group[keyword].value[0]
    return None


def _read_multiframe(path, header, notes, name):
    rows, columns, samples, photometric = _image_format(header, name)
    frames = int(header.NumberOfFrames)
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != frames:
        raise VolumeError("This multi-frame file has no per-frame functional groups, so its"
                          " frames cannot be placed in the patient.", file=name)
    positions, rescales = [], []
    orientation = spacing_rc = None
    for index in range(frames):
        position = _frame_item(header, per_frame, index, "PlanePositionSequence")
        plane = _frame_item(header, per_frame, index, "PlaneOrientationSequence")
        measures = _frame_item(header, per_frame, index, "PixelMeasuresSequence")
        if position is None or plane is None or measures is None:
            raise VolumeError(f"Frame {index + 1} lacks its plane position, orientation or pixel"
                              " measures.", file=name)
        row_col = _number_list(plane, "ImageOrientationPatient", 6, name)
        this_spacing = _number_list(measures, "PixelSpacing", 2, name)
        if orientation is None:
            orientation, spacing_rc = row_col, this_spacing
        elif np.max(np.abs(row_col - orientation)) > ORIENTATION_TOLERANCE or \
                np.max(np.abs(this_spacing - spacing_rc)) > 1e-6:
            raise VolumeError(f"Frame {index + 1} differs in orientation or pixel spacing.",
                              file=name)
        positions.append(_number_list(position, "ImagePositionPatient", 3, name))
        transform = _frame_item(header, per_frame, index, "PixelValueTransformationSequence")
        rescales.append(_rescale(transform if transform is not None else header))
    if None in rescales:
        raise VolumeError(f"{_element('RescaleSlope')} or {_element('RescaleIntercept')} is not"
                          " a number.", file=name)
    frame_names = [f"{name} frame {n + 1}" for n in range(frames)]
    order, origin, spacing, direction = _sorted_geometry(
        positions, orientation[:3], orientation[3:], spacing_rc, frame_names)
    pixels = _pixels(path, name)
    if pixels.shape[:3] != (frames, rows, columns):
        raise InvalidDicomError(f"Its pixel data has shape {pixels.shape}.", file=name)
    same_rescale = len(set(rescales)) == 1
    if same_rescale:
        # Frames stored in position order (the usual case) need no reordered copy.
        in_order = np.array_equal(order, np.arange(frames))
        voxels = pixels if in_order else np.ascontiguousarray(pixels[order])
        slope, intercept = rescales[0]
    else:
        voxels = np.empty(pixels.shape, dtype=np.float64)
        for k, index in enumerate(order):
            slope, intercept = rescales[index]
            voxels[k] = pixels[index] * slope + intercept
        slope, intercept = 1.0, 0.0
    del pixels
    return Volume(voxels, spacing, origin, direction, slope, intercept, source_format="dicom",
                  source_name=name, dicom=_kept([header], same_rescale, notes, name), notes=notes)

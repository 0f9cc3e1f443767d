"""Frames to display: the grayscale and colour pipelines of PS3.3 C.11, one frame at a time.

Monochrome: stored value -> modality LUT ((0028,3000) sequence or rescale slope/intercept,
per frame in enhanced objects) -> VOI ((0028,3010) VOI LUT sequence, or a window: the one asked
for, the file's first, else the frame's min/max) -> MONOCHROME1 inversion -> 8 bits. Colour: RGB,
YBR_FULL, YBR_FULL_422 (converted to RGB) and PALETTE COLOR (through the palette). Overlays
(60xx,3000) are burnt in as a colour. The result is RGBA bytes, rows x columns x 4, for a canvas.

Only the frame asked for is decoded (see :class:`dcmstudio.codecs.PixelSource`), and stored
frames are kept in a small LRU so that dragging a window or moving the cursor over the same frame
does not decode it again.
"""

import collections
import math
import os

import numpy as np
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, convert_color_space
from pydicom.tag import Tag

from .catalog import as_invalid_dicom, transfer_syntax_info
from .codecs import PixelSource
from .errors import DicomStudioError

OVERLAY_RGB = (255, 214, 0)
WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
# Common CT windows (centre, width in HU), offered besides the file's own presets.
CT_PRESETS = (
    ("Brain", 40, 80),
    ("Lung", -600, 1500),
    ("Mediastinum", 50, 350),
    ("Abdomen", 40, 400),
    ("Bone", 400, 1800),
)
# Past this many distinct stored values, map the frame directly rather than through a table.
_MAX_TABLE_SIZE = 1 << 20
_FRAME_CACHE_BYTES = 64 << 20
_SOURCE_CACHE_SIZE = 8


class _LRU:
    """A least-recently-used cache bounded by entry count and by the bytes its values hold."""

    def __init__(self, max_entries, max_bytes=None):
        self._items = collections.OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0

    def get(self, key):
        """The value cached under `key`, or None."""
        entry = self._items.get(key)
        if entry is None:
            return None
        self._items.move_to_end(key)
        return entry[0]

    def put(self, key, value, size=0):
        """Cache `value`, which holds `size` bytes, evicting the least recently used."""
        if key in self._items:
            self._bytes -= self._items.pop(key)[1]
        self._items[key] = (value, size)
        self._bytes += size
        while len(self._items) > self._max_entries or (
            self._max_bytes is not None and self._bytes > self._max_bytes and len(self._items) > 1
        ):
            _, (_, evicted) = self._items.popitem(last=False)
            self._bytes -= evicted

    def drop(self, predicate):
        """Forget every entry whose key satisfies `predicate`."""
        for key in [k for k in self._items if predicate(k)]:
            self._bytes -= self._items.pop(key)[1]


_sources = _LRU(_SOURCE_CACHE_SIZE)
_frames = _LRU(64, _FRAME_CACHE_BYTES)


def forget(path=None):
    """Drop what is cached about `path` (every file when None); call after rewriting a file."""
    _sources.drop(lambda key: path is None or key[0] == path)
    _frames.drop(lambda key: path is None or key[0][0] == path)


def _source(path, name):
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    source = _sources.get(key)
    if source is None:
        source = PixelSource(path, name)
        _sources.put(key, source)
    source.name = name
    return key, source


def _stored_frame(path, name, frame, use_cache=True):
    """Return ``(source, stored array, decoded photometric interpretation)`` for one frame."""
    key, source = _source(path, name)
    cached = _frames.get((key, frame)) if use_cache else None
    if cached is not None:
        return (source, *cached)
    arr, properties = source.decode_frame(frame)
    photometric = str(properties["photometric_interpretation"])
    if use_cache:
        _frames.put((key, frame), (arr, photometric), arr.nbytes)
    return source, arr, photometric


def _as_list(value):
    """An element's value as a list, whether it holds one value or several."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]


def _number(value):
    """A DS/IS value (or a multi-valued one's first value) as float, None when empty."""
    values = _as_list(value)
    return float(values[0]) if values and values[0] not in (None, "") else None


def _functional_item(header, frame, sequence_keyword):
    """The item of a functional group macro for `frame`: per-frame first, then shared."""
    for groups_keyword, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        groups = header.get(groups_keyword)
        if groups and index < len(groups):
            macro = groups[index].get(sequence_keyword)
            if macro:
                return macro[0]
    return None


def _rescale(header, frame):
    """``(slope, intercept, type)`` for `frame`, from the functional groups or the top level."""
    item = _functional_item(header, frame, "PixelValueTransformationSequence") or header
    slope = _number(item.get("RescaleSlope"))
    intercept = _number(item.get("RescaleIntercept"))
    kind = item.get("RescaleType") or None
    return (1.0 if slope is None else slope), (0.0 if intercept is None else intercept), kind


def _windows(header, frame):
    """The file's windows for `frame`: ``[{"center", "width", "explanation", "function"}]``."""
    item = _functional_item(header, frame, "FrameVOILUTSequence") or header
    centers = _as_list(item.get("WindowCenter"))
    widths = _as_list(item.get("WindowWidth"))
    explanations = _as_list(item.get("WindowCenterWidthExplanation"))
    function = str(item.get("VOILUTFunction") or "LINEAR").upper()
    windows = []
    for i, (center, width) in enumerate(zip(centers, widths)):
        if center is None or width is None or center == "" or width == "":
            continue
        windows.append(
            {
                "center": float(center),
                "width": float(width),
                "explanation": str(explanations[i]) if i < len(explanations) else "",
                "function": function if function in WINDOW_FUNCTIONS else "LINEAR",
            }
        )
    return windows


def _voi_luts(header):
    return [
        {"index": i, "explanation": str(item.get("LUTExplanation") or f"VOI LUT {i + 1}")}
        for i, item in enumerate(header.get("VOILUTSequence") or [])
        if "LUTDescriptor" in item and "LUTData" in item
    ]


def _overlay_groups(header):
    return [g for g in range(0x6000, 0x6020, 2) if Tag(g, 0x3000) in header]


def _overlay_value(header, group, element, default=None):
    element = header.get(Tag(group, element))
    return default if element is None or element.value in (None, "") else element.value


def frame_info(path, name):
    """Describe the pixel data of one file for the viewer.

    Parameters
    ----------
    path : str
        The file (MEMFS in the page).
    name : str
        The name the user knows it by, for messages.

    Returns
    -------
    dict
        ``has_pixels`` (bool); when True also ``rows``, ``columns``, ``frames``,
        ``photometric``, ``samples``, ``bits_allocated``, ``bits_stored``, ``signed``,
        ``rescale`` (``{"slope", "intercept", "type", "per_frame"}``), ``modality_lut``,
        ``voi_lut`` (bools), ``window_presets`` (the file's, ``[{"center", "width",
        "explanation", "function"}]``), ``voi_luts`` (``[{"index", "explanation"}]``),
        ``suggested_presets`` (common CT windows for CT, else empty), ``overlays``
        (``[{"group", "rows", "columns", "frames", "type", "label"}]``), ``transfer_syntax``
        (``{"uid", "name"}``), ``decodable`` and ``why_not`` (a sentence, or None). Without
        pixels: ``has_pixels`` False, ``decodable`` False, ``why_not`` and ``transfer_syntax``.

    Raises
    ------
    NotDicomError, InvalidDicomError
        If the file is not DICOM or its header is broken.
    """
    _, source = _source(path, name)
    info = {
        "has_pixels": source.has_pixels,
        "transfer_syntax": transfer_syntax_info(source.header),
        "why_not": source.why_not_decodable(),
    }
    info["decodable"] = info["why_not"] is None
    if not source.has_pixels:
        return info
    header = source.header
    with as_invalid_dicom(name, "while reading its image pixel description"):
        slope, intercept, kind = _rescale(header, 0)
        is_ct = header.get("Modality") == "CT" or kind == "HU"
        info.update(
            {
                "rows": int(header.Rows),
                "columns": int(header.Columns),
                "frames": source.frames,
                "photometric": str(header.get("PhotometricInterpretation", "")),
                "samples": int(header.get("SamplesPerPixel", 1)),
                "bits_allocated": int(header.BitsAllocated),
                "bits_stored": int(header.get("BitsStored", header.BitsAllocated)),
                "signed": bool(header.get("PixelRepresentation", 0)),
                "rescale": {
                    "slope": slope,
                    "intercept": intercept,
                    "type": str(kind) if kind else None,
                    "per_frame": _functional_item(header, 0, "PixelValueTransformationSequence") is not None,
                },
                "modality_lut": bool(header.get("ModalityLUTSequence")),
                "voi_lut": bool(header.get("VOILUTSequence")),
                "window_presets": _windows(header, 0),
                "voi_luts": _voi_luts(header),
                "suggested_presets": [
                    {"center": float(c), "width": float(w), "explanation": label, "function": "LINEAR"}
                    for label, c, w in CT_PRESETS
                ]
                if is_ct
                else [],
                "overlays": [
                    {
                        "group": f"{g:04X}",
                        "rows": int(_number(_overlay_value(header, g, 0x0010)) or 0),
                        "columns": int(_number(_overlay_value(header, g, 0x0011)) or 0),
                        "frames": int(_number(_overlay_value(header, g, 0x0015, 1))),
                        "type": str(_overlay_value(header, g, 0x0040, "G")),
                        "label": str(_overlay_value(header, g, 0x1500, "")),
                    }
                    for g in _overlay_groups(header)
                ],
            }
        )
    return info


def render_frame(path, name, frame=0, window=None):
    """Render one frame as RGBA bytes for a canvas.

    Parameters
    ----------
    path, name : str
        The file and the name the user knows it by.
    frame : int
        Frame index from 0.
    window : dict, optional
        ``{"center": float, "width": float, "function": "LINEAR"}`` (function optional),
        or ``{"voi_lut": int}`` to use one of the file's VOI LUTs. None: the file's first
        window, else its first VOI LUT, else the frame's min/max. Ignored for colour images.

    Returns
    -------
    tuple of (bytes, dict)
        RGBA, ``rows * columns * 4`` bytes, row by row; and ``{"rows", "columns", "frame",
        "frames", "photometric" (after decoding), "window" ({"center", "width", "function",
        "source": "argument" | "file" | "minmax"} or None), "voi_lut" (index or None),
        "range" ([min, max] of the modality values, or None for colour), "overlays"
        (groups drawn, e.g. ["6000"]), "overlay_problems" (sentences)}``.

    Raises
    ------
    DicomStudioError
        If the file has no pixel data, cannot be decoded here, `frame` or `window` is invalid.
    NotDicomError, InvalidDicomError
        If the file is not DICOM or is broken.
    """
    source, stored, photometric = _stored_frame(path, name, frame)
    rgba, info = _render(source, stored, photometric, frame, window)
    return rgba.tobytes(), info


def _render(source, stored, photometric, frame, window):
    name = source.name
    header = source.header
    rows, columns = stored.shape[:2]
    info = {
        "rows": rows,
        "columns": columns,
        "frame": frame,
        "frames": source.frames,
        "photometric": photometric,
        "window": None,
        "voi_lut": None,
        "range": None,
    }
    with as_invalid_dicom(name, f"while rendering frame {frame + 1}"):
        if stored.ndim == 2 and photometric in ("MONOCHROME1", "MONOCHROME2"):
            rgba, voi = _grey(source, stored, frame, window, invert=photometric == "MONOCHROME1")
            info.update(voi)
        elif stored.ndim == 2 and photometric == "PALETTE COLOR":
            table_lo, values = _value_table(stored)
            palette = apply_color_lut(values, header)
            palette = _to_8_bits(palette, int(header.RedPaletteColorLookupTableDescriptor[2]))
            rgba = _look_up(_as_rgba_words(palette, rgb=True), stored, table_lo)
        else:
            rgba = _as_rgba_words(_colour(header, stored, photometric, name), rgb=True)
        rgba = rgba.view(np.uint8).reshape(rows, columns, 4)
        info["overlays"], info["overlay_problems"] = _burn_overlays(rgba, source, frame)
    return rgba, info


def _as_rgba_words(colours, rgb):
    """Opaque RGBA as one little-endian 32-bit word per pixel, from 8-bit grey or RGB (..., 3)."""
    if rgb:
        words = colours[..., 0].astype("<u4")
        words |= colours[..., 1].astype("<u4") << 8
        words |= colours[..., 2].astype("<u4") << 16
    else:
        words = colours.astype("<u4") * 0x010101
    words |= 0xFF000000
    return words


def _grey(source, stored, frame, window, invert):
    """Map a monochrome frame through modality LUT, VOI and inversion to RGBA words."""
    header = source.header
    table_lo, values = _value_table(stored)
    modality = _modality(header, values, frame)
    choice = _choose_voi(source, frame, window, float(np.min(modality)), float(np.max(modality)),
                         float_pixels=stored.dtype.kind == "f")
    if choice["voi_lut"] is not None:
        mapped = _apply_voi_lut(header, modality, choice["voi_lut"])
    else:
        w = choice["window"]
        mapped = _apply_window(modality, w["center"], w["width"], w["function"])
    if invert:
        mapped = 255 - mapped
    # One gather from a table of finished words: the cheapest pass over the frame in wasm.
    rgba = _look_up(_as_rgba_words(mapped, rgb=False), stored, table_lo)
    choice["range"] = [float(np.min(modality)), float(np.max(modality))]
    return rgba, choice


def _value_table(stored):
    """``(lowest, every value from lowest to highest)`` when a table beats mapping each pixel.

    Mapping each distinct stored value once and then indexing keeps re-windowing cheap; a
    frame whose values spread wider than its pixel count (or than a million) is mapped
    directly: ``(None, stored)``.
    """
    if not np.issubdtype(stored.dtype, np.integer) or stored.dtype.kind == "b":
        return None, stored
    lo, hi = int(stored.min()), int(stored.max())
    if hi - lo >= min(_MAX_TABLE_SIZE, max(1 << 16, stored.size)):
        return None, stored
    return lo, np.arange(lo, hi + 1, dtype=np.int64)


def _look_up(table, stored, table_lo):
    """`table` indexed by each stored value (`table` is already per pixel when no table was made)."""
    if table_lo is None:
        return table
    if stored.dtype.itemsize <= 2:
        # The offset from the lowest value fits the unsigned type of the same size, even where
        # the signed subtraction wraps: no wider copy of the frame is needed.
        index = (stored - stored.dtype.type(table_lo)).view(f"u{stored.dtype.itemsize}")
    else:
        index = stored.astype(np.int64) - table_lo
    return table[index]


def _modality(header, values, frame):
    """Modality LUT or rescale of `values` (the frame's values or a table of them)."""
    if header.get("ModalityLUTSequence"):
        return apply_modality_lut(values, header)
    slope, intercept, _ = _rescale(header, frame)
    if slope == 1.0 and intercept == 0.0:
        return values
    return values.astype(np.float64) * slope + intercept


def _choose_voi(source, frame, window, lo, hi, float_pixels=False):
    name = source.name
    header = source.header
    luts = _voi_luts(header)
    if window is not None and "voi_lut" in window:
        index = window["voi_lut"]
        if not isinstance(index, int) or not 0 <= index < len(luts):
            raise DicomStudioError(
                f"{name} has {len(luts)} VOI LUT(s) in (0028,3010) VOI LUT Sequence; "
                f"there is no VOI LUT {index}.",
                file=name,
            )
        return {"voi_lut": index, "window": None}
    if window is not None:
        return {"voi_lut": None, "window": _checked_window(window, name) | {"source": "argument"}}
    file_windows = _windows(header, frame)
    # Float maps (parametric maps) often carry a placeholder LINEAR window of W <= 1, which PS3.3
    # C.11.2.1.2.1 makes a threshold: all white. LINEAR_EXACT allows any width above 0: kept.
    if float_pixels:
        file_windows = [w for w in file_windows if w["width"] > 1 or w["function"] == "LINEAR_EXACT"]
    if file_windows:
        first = file_windows[0]
        return {"voi_lut": None, "window": {k: first[k] for k in ("center", "width", "function")} | {"source": "file"}}
    if luts:
        return {"voi_lut": 0, "window": None}
    return {
        "voi_lut": None,
        "window": {"center": (lo + hi) / 2, "width": max(hi - lo, 1e-6), "function": "LINEAR_EXACT", "source": "minmax"},
    }


def _checked_window(window, name):
    try:
        center = float(window["center"])
        width = float(window["width"])
    except (KeyError, TypeError, ValueError):
        raise DicomStudioError(
            f"A window for {name} needs a numeric centre and width, not {window!r}.", file=name
        ) from None
    function = str(window.get("function") or "LINEAR").upper()
    if function not in WINDOW_FUNCTIONS:
        raise DicomStudioError(
            f"{function} is not a VOI LUT Function (0028,1056); use one of {', '.join(WINDOW_FUNCTIONS)}.",
            file=name,
        )
    smallest = 1.0 if function == "LINEAR" else 0.0
    if not math.isfinite(center) or not math.isfinite(width) or width < smallest or width == 0:
        raise DicomStudioError(
            f"A {function} window for {name} needs a finite centre and a width of at least "
            f"{'1' if function == 'LINEAR' else 'more than 0'} (got {center}/{width}).",
            file=name,
        )
    return {"center": center, "width": width, "function": function}


def _apply_window(values, center, width, function):
    """PS3.3 C.11.2.1.2 and C.11.2.1.3 with an output range of 0..255."""
    x = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    elif function == "LINEAR_EXACT":
        out = ((x - center) / width + 0.5) * 255.0
    elif width == 1:
        out = np.where(x <= center - 0.5, 0.0, 255.0)
    else:
        out = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _apply_voi_lut(header, modality, index):
    """Apply VOI LUT `index`, scaled to 0..255 by the largest value its data holds."""
    item = header.VOILUTSequence[index]
    entries, first, _ = item.LUTDescriptor
    entries = entries or 65536
    lut = apply_voi(np.arange(first, first + entries, dtype=np.int64), header, index)
    # Many files declare 16 bits per entry and use fewer: scale by the bits actually used.
    top = (1 << max(int(lut.max()).bit_length(), 1)) - 1
    mapped = apply_voi(np.rint(np.asarray(modality, dtype=np.float64)).astype(np.int64), header, index)
    return np.clip(np.rint(mapped.astype(np.float64) * 255.0 / top), 0, 255).astype(np.uint8)


def _colour(header, stored, photometric, name):
    """8-bit RGB of a colour frame."""
    if stored.ndim != 3 or stored.shape[2] != 3:
        raise DicomStudioError(
            f"{name} has (0028,0004) Photometric Interpretation {photometric} with "
            f"{1 if stored.ndim == 2 else stored.shape[2]} sample(s) per pixel, which the viewer cannot show.",
            file=name,
        )
    bits = int(header.get("BitsStored") or stored.dtype.itemsize * 8)
    if photometric in ("RGB", "YBR_ICT", "YBR_RCT"):
        # Decoded YBR_ICT/YBR_RCT arrive as RGB: the codec inverts the component transform.
        return _to_8_bits(stored, bits)
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        return convert_color_space(_to_8_bits(stored, bits), "YBR_FULL", "RGB")
    raise DicomStudioError(
        f"{name} has (0028,0004) Photometric Interpretation {photometric}, which the viewer cannot show.",
        file=name,
    )


def _to_8_bits(arr, bits):
    if arr.dtype == np.uint8 and bits <= 8:
        return arr
    shift = max(bits - 8, 0)
    return np.clip(arr.astype(np.int64) >> shift, 0, 255).astype(np.uint8)


def _burn_overlays(rgba, source, frame):
    """Paint each overlay plane that applies to `frame`; return (groups drawn, problems)."""
    header = source.header
    drawn, problems = [], []
    rows, columns = rgba.shape[:2]
    big_endian = source.transfer_syntax == "1.2.840.10008.1.2.2"
    for group in _overlay_groups(header):
        label = f"({group:04X},3000) Overlay Data"
        try:
            mask = _overlay_mask(header, group, frame, big_endian)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            problems.append(f"{label} of {source.name} was not drawn: {exc}.")
            continue
        if mask is None:
            continue
        origin = _overlay_value(header, group, 0x0050, [1, 1])
        top, left = int(origin[0]) - 1, int(origin[1]) - 1
        # Clip the plane to the image; the origin may lie outside it.
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + mask.shape[0], rows), min(left + mask.shape[1], columns)
        if r1 <= r0 or c1 <= c0:
            continue
        region = mask[r0 - top : r1 - top, c0 - left : c1 - left]
        rgba[r0:r1, c0:c1, :3][region] = OVERLAY_RGB
        drawn.append(f"{group:04X}")
    return drawn, problems


def _overlay_mask(header, group, frame, big_endian):
    """The overlay plane of `group` for image `frame` as a bool array, or None if none applies."""
    overlay_rows = _overlay_value(header, group, 0x0010)
    overlay_columns = _overlay_value(header, group, 0x0011)
    if not overlay_rows or not overlay_columns:
        raise ValueError("(60xx,0010) Overlay Rows or (60xx,0011) Overlay Columns is missing")
    if int(_overlay_value(header, group, 0x0100, 1)) != 1:
        raise ValueError("(60xx,0100) Overlay Bits Allocated is not 1")
    count = _overlay_value(header, group, 0x0015)
    if count is None:
        # A single-frame plane without (60xx,0015) applies to every frame.
        plane = 0
    else:
        plane = frame - (int(_overlay_value(header, group, 0x0051, 1)) - 1)
        if not 0 <= plane < int(count):
            return None
    element = header[Tag(group, 0x3000)]
    data = bytes(element.value)
    if big_endian and element.VR == "OW":
        data = np.frombuffer(data[: len(data) // 2 * 2], dtype=">u2").astype("<u2").tobytes()
    size = int(overlay_rows) * int(overlay_columns)
    start = plane * size
    if (start + size + 7) // 8 > len(data):
        raise ValueError("(60xx,3000) Overlay Data is shorter than its rows and columns need")
    first_byte = start // 8
    last_byte = (start + size + 7) // 8
    bits = np.unpackbits(np.frombuffer(data[first_byte:last_byte], dtype=np.uint8), bitorder="little")
    offset = start - first_byte * 8
    return bits[offset : offset + size].astype(bool).reshape(int(overlay_rows), int(overlay_columns))


def pixel_value(path, name, frame, row, col):
    """The stored and the modality (rescaled) value of one pixel.

    Parameters
    ----------
    path, name : str
    frame, row, col : int
        From 0.

    Returns
    -------
    dict
        ``{"row", "col", "frame", "stored": int | float | [samples], "rescaled": float |
        None, "units": str | None}``. ``rescaled`` is None for colour images; ``units`` is
        (0028,1054) Rescale Type when the file has it.

    Raises
    ------
    DicomStudioError
        If the position is outside the frame (and as :func:`render_frame`).
    """
    source, stored, photometric = _stored_frame(path, name, frame)
    rows, columns = stored.shape[:2]
    if not (0 <= row < rows and 0 <= col < columns):
        raise DicomStudioError(
            f"Row {row}, column {col} is outside the {rows} x {columns} frame of {name}.", file=name
        )
    value = stored[row, col]
    result = {"row": row, "col": col, "frame": frame, "rescaled": None, "units": None}
    if stored.ndim == 3:
        result["stored"] = [v.item() for v in value]
        return result
    result["stored"] = value.item()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        with as_invalid_dicom(name, "while applying its modality LUT"):
            result["rescaled"] = float(_modality(source.header, np.array([value]), frame)[0])
            kind = _rescale(source.header, frame)[2]
            result["units"] = str(kind) if kind else None
    return result


def modality_frame(path, name, frame):
    """One frame in the modality's units (after the modality LUT or rescale), for measuring.

    Returns
    -------
    tuple
        ``(header, values, units)``: the file's header (no pixel data), the frame as a 2-D
        float64 array (None for colour images, which have no modality units) and (0028,1054)
        Rescale Type ("HU" for CT when the file does not say), or None when unknown.
    """
    source, stored, photometric = _stored_frame(path, name, frame)
    header = source.header
    if stored.ndim == 3 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return header, None, None
    with as_invalid_dicom(name, "while applying its modality LUT"):
        values = np.asarray(_modality(header, stored, frame), dtype=np.float64)
        kind = _rescale(header, frame)[2]
        if not kind and header.get("Modality") == "CT" and not header.get("ModalityLUTSequence"):
            kind = "HU"
    return header, values, (str(kind) if kind else None)


def pixel_spacing(header, frame):
    """``(row spacing, column spacing, source keyword)`` in mm of one frame, or None.

    (0028,0030) Pixel Spacing (in the Pixel Measures functional group of enhanced objects, per
    frame or shared) is the spacing in the patient; (0018,1164) Imager Pixel Spacing, at the
    detector, is the fallback a projection radiograph may have alone.
    """
    measures = _functional_item(header, frame, "PixelMeasuresSequence")
    for item, keyword in ((measures, "PixelSpacing"), (header, "PixelSpacing"),
                          (header, "ImagerPixelSpacing")):
        if item is None:
            continue
        try:
            values = [float(v) for v in _as_list(item.get(keyword))]
        except (TypeError, ValueError):
            continue
        if len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values):
            return values[0], values[1], keyword
    return None


def thumbnail(path, name, size=64):
    """A small picture of the first frame, its aspect kept, at most `size` pixels a side.

    Returns
    -------
    tuple of (bytes, int, int)
        RGBA bytes, width, height (never larger than the image itself).

    Raises
    ------
    DicomStudioError
        As :func:`render_frame`.
    """
    source, stored, photometric = _stored_frame(path, name, 0, use_cache=False)
    rgba, _ = _render(source, stored, photometric, 0, None)
    small = _shrink(rgba, size)
    return small.tobytes(), small.shape[1], small.shape[0]


def _shrink(rgba, size):
    """Area-average `rgba` down to fit `size` x `size`."""
    rows, columns = rgba.shape[:2]
    scale = min(1.0, size / max(rows, columns))
    height, width = max(1, round(rows * scale)), max(1, round(columns * scale))
    if (height, width) == (rows, columns):
        return rgba
    row_starts = (np.arange(height) * rows) // height
    col_starts = (np.arange(width) * columns) // width
    # Sum blocks of rows first: the intermediate is only `height` rows tall.
    sums = np.add.reduceat(rgba, row_starts, axis=0, dtype=np.uint32)
    sums = np.add.reduceat(sums, col_starts, axis=1, dtype=np.uint32)
    counts = np.outer(np.diff(np.append(row_starts, rows)), np.diff(np.append(col_starts, columns)))
    return np.rint(sums / counts[..., None]).astype(np.uint8)

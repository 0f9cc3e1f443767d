"""Clean Pixel Data: masked rectangles blacked out in every frame."""

import os
import shutil
import tempfile

from dcmstudio.deid.tags import (BITS_ALLOCATED, COLUMNS, NUMBER_OF_FRAMES, PHOTOMETRIC_INTERPRETATION,
                                 PIXEL_DATA, PIXEL_REPRESENTATION, PLANAR_CONFIGURATION, ROWS, SAMPLES_PER_PIXEL)
from dcmstudio.elements import walk
from dcmstudio.errors import DicomStudioError

def mask_native_pixels(data, emap, pixels, masks, name):
    """Set the masked rectangles of every frame to the frame's darkest value (RGB: black)."""
    import numpy as np

    def number(tag, default=None):
        node = emap.top_level(tag)
        if node is None or not node.length:
            return default
        raw = bytes(emap.data[node.value_offset:node.value_offset + node.length])
        if node.vr == "IS" or tag == NUMBER_OF_FRAMES:
            return int(raw.decode("ascii").strip(" \x00") or default)
        return (node.encoding.u16.unpack(raw[:2]))[0]

    rows, columns = number(ROWS), number(COLUMNS)
    samples, bits = number(SAMPLES_PER_PIXEL, 1), number(BITS_ALLOCATED)
    planar, frames = number(PLANAR_CONFIGURATION, 0), number(NUMBER_OF_FRAMES, 1)
    node = emap.top_level(PHOTOMETRIC_INTERPRETATION)
    photometric = bytes(emap.data[node.value_offset:node.value_offset + node.length]).decode(
        "ascii", "replace").strip(" \x00") if node is not None else ""
    if not rows or not columns or bits not in (8, 16, 32) or \
            photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL"):
        raise DicomStudioError(
            f"Clean Pixel Data: {bits}-bit {photometric or 'unknown'} pixels cannot be masked "
            f"here (masking handles 8, 16 and 32-bit MONOCHROME, PALETTE COLOR, RGB and "
            f"YBR_FULL).", file=name)
    signed = number(PIXEL_REPRESENTATION, 0) == 1
    dtype = np.dtype(("i" if signed else "u") + str(bits // 8))
    dtype = dtype.newbyteorder("<" if pixels.encoding.little_endian else ">")
    frame_bytes = rows * columns * samples * bits // 8
    if pixels.length < frames * frame_bytes:
        raise DicomStudioError(f"Clean Pixel Data: (7FE0,0010) holds {pixels.length} bytes, fewer "
                               f"than {frames} frames of {frame_bytes}.", file=name)
    view = np.frombuffer(memoryview(data)[pixels.value_offset:
                                          pixels.value_offset + frames * frame_bytes], dtype)
    if samples == 1:
        frames_array = view.reshape(frames, rows, columns, 1)
    elif planar == 0:
        frames_array = view.reshape(frames, rows, columns, samples)
    else:
        frames_array = view.reshape(frames, samples, rows, columns).transpose(0, 2, 3, 1)
    black = [0, 128, 128] if photometric == "YBR_FULL" else None
    for frame in frames_array:
        fill = black if black is not None else (frame.min() if samples == 1 else 0)
        for rect in masks:
            frame[rect["y"]:rect["y"] + rect["height"], rect["x"]:rect["x"] + rect["width"]] = fill


def clean(pieces, name, masks, notes, scratch=None):
    """Black out the masked rectangles in every frame; compressed pixels are decoded first."""
    from dcmstudio import codecs  # numpy and Pillow: only when pixels are cleaned

    data = bytearray().join(pieces)
    emap = walk(data, name)
    pixels = emap.top_level(PIXEL_DATA)
    if pixels is None:
        notes.append("Clean Pixel Data: the file has no (7FE0,0010) Pixel Data.")
        return [data]
    if pixels.children is not None or emap.deflated:
        folder = tempfile.mkdtemp(dir=scratch)
        try:
            source, target = os.path.join(folder, "in.dcm"), os.path.join(folder, "out.dcm")
            with open(source, "wb") as f:
                f.write(data)
            result = codecs.decompress(source, target, name=name)
            with open(target, "rb") as f:
                data = bytearray(f.read())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        notes.append(f"Clean Pixel Data: decoded from {result['source_transfer_syntax']['name']}"
                     f" and stored uncompressed to mask it.")
        emap = walk(data, name)
        pixels = emap.top_level(PIXEL_DATA)
    mask_native_pixels(data, emap, pixels, masks, name)
    return [data]

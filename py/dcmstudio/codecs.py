"""Transfer syntaxes: read a file's frames one at a time, write them back compressed or not.

Decoding in Python: the native syntaxes, Deflated Explicit VR Little Endian and RLE Lossless
(pydicom's pure-Python handlers), JPEG Baseline and 8-bit JPEG Extended (Pillow). Every other
syntax - JPEG-LS, JPEG 2000, HTJ2K, JPEG Lossless - needs a codec offered from outside, in the
page a browser or wasm codec: :func:`register_decoder` and :func:`register_encoder` are that one
hook. A codec is a plain function ``fn(data: bytes, params: dict) -> bytes`` (see
:func:`register_decoder` for the exact layout), so JavaScript can offer one through Pyodide
(the page's static/codecs.js offers CharLS, OpenJPEG and OpenJPH so); :func:`register_unavailable`
records why a codec that was meant to be there is not.

Registered decoders become a pydicom decoding plugin, so pydicom still locates frames in the
encapsulated data, corrects signedness and reshapes; the codec only turns one frame's codestream
into samples.

Writing (:func:`compress`, :func:`decompress`) streams frame by frame to the output file: the
header is encoded by pydicom, the pixel data element is written here so that a 500-frame file
never sits decoded in memory. Lossless targets are written unless a lossy one is asked for by name
with its setting (:class:`dcmstudio.lossy.LossySettings`: JPEG 2000 at a ratio, JPEG Baseline at a
quality); each output is decoded again and compared frame by frame with its source before it is
reported as done: identical for lossless, measured (PSNR, largest error) for lossy.
"""

import copy
import hashlib
import importlib
import importlib.util
import io
import itertools
import math
import os
import struct
import warnings
import zlib

import numpy as np
import pydicom
from pydicom import uid as uids
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO, DicomFileLike
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import as_pixel_options, pack_bits

from . import iod, lossy
from .bounded import BoundedFile
from .catalog import as_invalid_dicom, pixel_data_truncation, read_dicom, transfer_syntax_info
from .errors import DicomStudioError, InvalidDicomError
from .uids import new_uid

# The label under which registered codecs appear among pydicom's plugins.
PLUGIN_LABEL = "dcmstudio"

PIXEL_DATA_TAGS = {
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
    0x7FE00010: "PixelData",
}
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM_TAG = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER_TAG = (0xFFFE, 0xE0DD)
# Trailing elements that become wrong once the pixel data is re-encoded.
_DROPPED_TRAILING_TAGS = {
    0xFFFAFFFA: "Digital Signatures Sequence",
    0xFFFCFFFC: "Data Set Trailing Padding",
}
_EXTENDED_OFFSET_TAGS = (0x7FE00001, 0x7FE00002)
_CHUNK_SIZE = 1 << 20
_MAX_FRAMES = 2**31 - 1  # the largest IS value
# One decoded frame must fit in one Python object well under Pyodide's 2 GiB limit.
_MAX_FRAME_BYTES = 1 << 30
# An RLE replicate run encodes at most 128 bytes in 2 (PS3.5 G.3.1); each frame has a 64-byte header.
_RLE_MAX_RATIO = 64
_RLE_HEADER_BYTES = 64
_RLE_BLOCK_BYTES = 1 << 16

_NATIVE_SYNTAXES = {
    uids.ImplicitVRLittleEndian,
    uids.ExplicitVRLittleEndian,
    uids.ExplicitVRBigEndian,
    uids.DeflatedExplicitVRLittleEndian,
}
# Decoded by Pillow; lossy by definition (JPEG processes 1, 2 and 4).
_LOSSY_JPEG_SYNTAXES = {uids.JPEGBaseline8Bit, uids.JPEGExtended12Bit}

# The page's HTJ2K codec is greyscale only (static/codecs.js, openjph's `colour: false`).
_GREYSCALE_ONLY_SYNTAXES = {uids.HTJ2KLossless, uids.HTJ2KLosslessRPCL, uids.HTJ2K}

# Targets compress() may write: lossless by definition, so SOP Instance UIDs stay.
LOSSLESS_TARGETS = {
    uids.ExplicitVRLittleEndian,
    uids.DeflatedExplicitVRLittleEndian,
    uids.RLELossless,
    uids.JPEGLossless,
    uids.JPEGLosslessSV1,
    uids.JPEGLSLossless,
    uids.JPEG2000Lossless,
    uids.HTJ2KLossless,
    uids.HTJ2KLosslessRPCL,
}

_decoders = {}
_encoders = {}
_unavailable = {}  # syntax -> why its codec is missing (e.g. the page's wasm did not load)

# pydicom's plugin protocol asks a module for the dependencies of unavailable plugins; a
# registered codec is always available, so there are none to name.
DECODER_DEPENDENCIES = {}


def _first_line(exc):
    # A JavaScript codec's Error arrives as a JsException whose text starts "Error: ".
    text = str(exc).strip().removeprefix("Error: ")
    return text.splitlines()[0] if text else type(exc).__name__


def describe_transfer_syntax(transfer_syntax_uid):
    """Return ``{"uid": str, "name": str}`` for a transfer syntax UID."""
    ts = pydicom.uid.UID(str(transfer_syntax_uid))
    name = ts.name if ts.is_transfer_syntax else "an unknown transfer syntax"
    return {"uid": str(ts), "name": name}


def registered_decoders():
    """Return the transfer syntax UIDs that have a registered decoder, sorted."""
    return sorted(_decoders)


def registered_encoders():
    """Return the transfer syntax UIDs that have a registered encoder, sorted."""
    return sorted(_encoders)


def register_decoder(transfer_syntax_uid, fn):
    """Offer a decoder for one encapsulated transfer syntax (a browser or wasm codec).

    Parameters
    ----------
    transfer_syntax_uid : str
        The syntax decoded, e.g. ``"1.2.840.10008.1.2.4.80"`` (JPEG-LS Lossless).
    fn : callable
        ``fn(data, params)``: `data` is one frame's codestream (``bytes``), `params` a plain
        ``dict`` with ``transfer_syntax_uid``, ``rows``, ``columns``, ``samples_per_pixel``,
        ``bits_allocated``, ``bits_stored``, ``pixel_representation`` (0 unsigned, 1 signed),
        ``photometric_interpretation`` and ``number_of_frames``. It returns the frame's samples
        as bytes-like: little endian, colour-by-pixel (RGBRGB...), each sample in the smallest
        of 1, 2 or 4 bytes that holds the codestream's precision, as signed or unsigned as the
        codestream says (pydicom corrects a mismatch with (0028,0103)); JPEG 2000 colour that
        used a component transform comes back as RGB. A codec that returns something else
        says so by returning a dict ``{"data": bytes, "planar_configuration": 1,
        "photometric_interpretation": ..., "bits_allocated": ...}`` (any of the last three).
        A JavaScript result (a typed array or an object, a JsProxy in Python) is taken through
        its ``to_py()``.

    Raises
    ------
    ValueError
        If the syntax is native or unknown to pydicom's decoding framework.
    """
    ts = pydicom.uid.UID(str(transfer_syntax_uid))
    if not callable(fn):
        raise TypeError("register_decoder needs a callable fn(data, params)")
    if not ts.is_compressed:
        raise ValueError(f"{ts} is not an encapsulated transfer syntax; nothing to register")
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise ValueError(f"pydicom cannot host a decoder for {ts}") from exc
    _decoders[ts] = fn
    _unavailable.pop(ts, None)
    if PLUGIN_LABEL not in decoder.available_plugins:
        decoder.add_plugin(PLUGIN_LABEL, (__name__, "decode_with_registered_codec"))


def register_unavailable(transfer_syntax_uid, reason):
    """Say why a syntax that was meant to have a decoder has none, e.g. its codec did not load.

    :func:`why_not_decodable` then gives this reason instead of "cannot decode yet".

    Parameters
    ----------
    transfer_syntax_uid : str
    reason : str
        Completes "... which could not be decoded: ", e.g. "the JPEG 2000 codec did not load
        (HTTP 404)".
    """
    ts = pydicom.uid.UID(str(transfer_syntax_uid))
    if ts not in _decoders:
        _unavailable[ts] = str(reason)


def unregister_decoder(transfer_syntax_uid):
    """Withdraw the decoder registered for `transfer_syntax_uid`, or the note that it is unavailable."""
    ts = pydicom.uid.UID(str(transfer_syntax_uid))
    _unavailable.pop(ts, None)
    if _decoders.pop(ts, None) is not None:
        get_decoder(ts).remove_plugin(PLUGIN_LABEL)


def register_encoder(transfer_syntax_uid, fn):
    """Offer an encoder for one encapsulated transfer syntax (a browser or wasm codec).

    Parameters
    ----------
    transfer_syntax_uid : str
        One of the lossless encapsulated syntaxes in :data:`LOSSLESS_TARGETS`, or a lossy one of
        :data:`dcmstudio.lossy.LOSSY_TARGETS`.
    fn : callable
        ``fn(data, params)``: `data` is one frame's samples, little endian, colour-by-pixel,
        ``bits_allocated // 8`` bytes each; `params` a plain ``dict`` with the keys listed in
        :func:`register_decoder` plus ``planar_configuration`` (always 0). It returns the
        codestream as bytes-like, or ``{"data": bytes, "photometric_interpretation": str}``
        when the codec changed the colour space (a JPEG 2000 reversible colour transform makes
        RGB into ``"YBR_RCT"``, an irreversible one into ``"YBR_ICT"``). For JPEG 2000 lossy,
        `params` also holds ``compression_ratio``, the ratio to ask of the codec relative to
        (0028,0101) *Bits Stored* bits per sample (as OpenJPEG counts it).

    Raises
    ------
    ValueError
        If the syntax is not a lossless encapsulated one.
    """
    ts = pydicom.uid.UID(str(transfer_syntax_uid))
    if not callable(fn):
        raise TypeError("register_encoder needs a callable fn(data, params)")
    if ts not in LOSSLESS_TARGETS | lossy.LOSSY_TARGETS or not ts.is_compressed:
        raise ValueError(
            f"{ts} is not an encapsulated transfer syntax dcmstudio writes"
        )
    _encoders[ts] = fn


def unregister_encoder(transfer_syntax_uid):
    """Withdraw the encoder registered for `transfer_syntax_uid`, if any."""
    _encoders.pop(pydicom.uid.UID(str(transfer_syntax_uid)), None)


def is_available(transfer_syntax_uid):
    """pydicom plugin protocol: whether a registered decoder handles `transfer_syntax_uid`."""
    return transfer_syntax_uid in _decoders


def _codec_params(runner):
    return {
        "transfer_syntax_uid": str(runner.transfer_syntax),
        "rows": runner.rows,
        "columns": runner.columns,
        "samples_per_pixel": runner.samples_per_pixel,
        "bits_allocated": runner.bits_allocated,
        "bits_stored": runner.bits_stored,
        "pixel_representation": runner.pixel_representation,
        "photometric_interpretation": str(runner.photometric_interpretation),
        "number_of_frames": runner.number_of_frames,
    }


def _split_codec_result(result):
    # A JavaScript codec's result arrives as a JsProxy: an object becomes a dict, bytes a memoryview.
    if hasattr(result, "to_py"):
        result = result.to_py()
    if isinstance(result, dict):
        return bytes(result["data"]), {k: v for k, v in result.items() if k != "data"}
    return bytes(result), {}


def _container_bits(precision):
    return 8 if precision <= 8 else 16 if precision <= 16 else 32


def decode_with_registered_codec(src, runner):
    """pydicom decoding plugin: hand one frame to the codec registered for its syntax."""
    ts = runner.transfer_syntax
    data, said = _split_codec_result(_decoders[ts](bytes(src), _codec_params(runner)))
    if runner.samples_per_pixel > 1:
        runner.set_option("planar_configuration", 0)
    if ts in uids.JPEG2000TransferSyntaxes:
        if runner.photometric_interpretation in ("YBR_ICT", "YBR_RCT"):
            runner.set_option("photometric_interpretation", "RGB")
        precision = runner.get_option("j2k_precision", runner.bits_stored)
        runner.set_option("bits_allocated", _container_bits(precision))
    elif ts in uids.JPEGLSTransferSyntaxes:
        precision = runner.get_option("jls_precision", runner.bits_stored)
        runner.set_option("bits_allocated", _container_bits(precision))
    for key in ("planar_configuration", "photometric_interpretation", "bits_allocated"):
        if key in said:
            runner.set_option(key, said[key])
    return data


def why_not_decodable(transfer_syntax_uid, bits_stored=8):
    """Return ``None`` if frames in this syntax can be decoded here, else the reason.

    Parameters
    ----------
    transfer_syntax_uid : str
    bits_stored : int
        (0028,0101) *Bits Stored*: Pillow decodes JPEG Extended only at 8 bits.

    Returns
    -------
    str or None
        A sentence fragment completing "The pixel data ...", e.g. "is compressed with
        JPEG 2000 (1.2.840.10008.1.2.4.91), which the page cannot decode yet".
    """
    ts = pydicom.uid.UID(str(transfer_syntax_uid))
    if ts in _NATIVE_SYNTAXES or ts == uids.RLELossless or ts in _decoders:
        return None
    if not ts.is_transfer_syntax:
        return f"uses the transfer syntax {ts}, which dcmstudio does not know"
    if ts in _unavailable:
        return f"is compressed with {ts.name} ({ts}), which could not be decoded: {_unavailable[ts]}"
    if ts in _LOSSY_JPEG_SYNTAXES:
        if not _pillow_decodes_jpeg():
            return f"is compressed with {ts.name} ({ts}), and Pillow, which decodes it, is not installed"
        if ts == uids.JPEGExtended12Bit and bits_stored > 8:
            return (
                f"is compressed with {ts.name} ({ts}) at {bits_stored} bits, "
                "which the page cannot decode yet (Pillow decodes 8-bit JPEG only)"
            )
        return None
    return f"is compressed with {ts.name} ({ts}), which the page cannot decode yet"


def _unsupported_variant(ts, header):
    """Why frames of a syntax decoded here cannot be in this variant, or None (a fragment)."""
    bits = header.get("BitsAllocated")
    samples = header.get("SamplesPerPixel") or 1
    if ts == uids.RLELossless and isinstance(bits, int) and bits % 8:
        return (f"is compressed with RLE Lossless at {bits} bit(s) allocated per sample, which is not "
                "supported (pydicom's RLE decoder reads 8, 16, 32 and 64 bits)")
    if ts in _GREYSCALE_ONLY_SYNTAXES and isinstance(samples, int) and samples > 1:
        return (f"is compressed with {ts.name} ({ts}) in colour ({samples} samples per pixel); the page "
                f"decodes greyscale {ts.name} only")
    return None


def adopt_late_pillow():
    """Let pydicom decode with Pillow when Pillow was installed after pydicom was imported.

    pydicom decides which decoding plugins exist when it is imported. The page loads Pillow only
    once Python is ready (so that start-up is shorter), by which time pydicom has marked its
    Pillow plugin unavailable; this looks again.

    Returns
    -------
    list of str
        The transfer syntax UIDs that Pillow now decodes.
    """
    module = importlib.import_module("pydicom.pixels.decoders.pillow")
    if not hasattr(module, "Image"):  # imported while Pillow was missing
        module = importlib.reload(module)
    adopted = []
    for ts in module.DECODER_DEPENDENCIES:
        decoder = get_decoder(ts)
        if "pillow" not in decoder.available_plugins and module.is_available(ts):
            try:
                decoder.remove_plugin("pillow")  # listed as unavailable
            except ValueError:
                pass
            decoder.add_plugin("pillow", (module.__name__, "_decode_frame"))
        if "pillow" in decoder.available_plugins:
            adopted.append(str(ts))
    return adopted


def _pillow_decodes_jpeg():
    return "pillow" in get_decoder(uids.JPEGBaseline8Bit).available_plugins


def _decoding_plugin(ts):
    """The plugin to decode `ts` with, so that CPython and Pyodide decode alike."""
    if ts == uids.RLELossless:
        return "pydicom"
    if ts in _LOSSY_JPEG_SYNTAXES and _pillow_decodes_jpeg():
        return "pillow"
    if ts.is_compressed:
        return PLUGIN_LABEL
    return ""


class PixelSource:
    """One file's pixel data, ready to be decoded a frame at a time.

    The header (everything before the pixel data) is parsed once; each frame is read from the
    file when asked for. A deflated file is inflated whole, as pydicom does.

    Parameters
    ----------
    path : str
        The file on disk (MEMFS in the page).
    name : str
        The name the user knows the file by, for messages.

    Raises
    ------
    NotDicomError
        If the file is not DICOM.
    InvalidDicomError
        If its header cannot be parsed or is truncated.
    """

    def __init__(self, path, name):
        self.path = path
        self.name = name
        self._dataset = None  # the whole dataset, for deflated files only
        self.header = read_dicom(path, name, stop_before_pixels=True)
        self.transfer_syntax = pydicom.uid.UID(transfer_syntax_info(self.header)["uid"])
        with as_invalid_dicom(name, "while looking for its pixel data"):
            if self.transfer_syntax == uids.DeflatedExplicitVRLittleEndian:
                self._dataset = read_dicom(path, name)
                self._locate_in_dataset()
            else:
                with BoundedFile(path) as f:
                    # Only the position where the header ends is wanted from this second pass.
                    pydicom.dcmread(f, stop_before_pixels=True, force=True, specific_tags=[0x7FE00010])
                    self._locate_in_file(f)
            self.options = self._decoding_options() if self.has_pixels else {}

    def _locate_in_file(self, f):
        self.value_offset = None
        self.pixel_tag = None
        self.value_length = 0
        little = self.transfer_syntax != uids.ExplicitVRBigEndian
        head = f.read(8)
        if len(head) < 8:
            return
        group, element = struct.unpack("<HH" if little else ">HH", head[:4])
        tag = (group << 16) | element
        if tag not in PIXEL_DATA_TAGS:
            return
        # Some writers encode the pixel data implicitly in an explicit file: look at the bytes.
        if head[4:6].isalpha() and head[4:6].isupper():
            self.pixel_vr = head[4:6].decode("ascii")
            (self.value_length,) = struct.unpack("<L" if little else ">L", f.read(4))
        else:
            self.pixel_vr = None
            (self.value_length,) = struct.unpack("<L" if little else ">L", head[4:8])
        self.pixel_tag = tag
        self.value_offset = f.tell()

    def _locate_in_dataset(self):
        self.value_offset = None
        self.pixel_tag = next((t for t in PIXEL_DATA_TAGS if t in self._dataset), None)
        if self.pixel_tag is not None:
            element = self._dataset[self.pixel_tag]
            self.pixel_vr = element.VR
            self.value_length = len(element.value)
            self.header = Dataset(
                {t: self._dataset.get_item(t) for t in self._dataset.keys() if t < self.pixel_tag}
            )
            self.header.file_meta = self._dataset.file_meta
            self.header.set_original_encoding(*self._dataset.original_encoding)

    @property
    def has_pixels(self):
        """Whether the file holds a pixel data element."""
        return self.pixel_tag is not None

    @property
    def keyword(self):
        """``"PixelData"``, ``"FloatPixelData"`` or ``"DoubleFloatPixelData"``."""
        return PIXEL_DATA_TAGS[self.pixel_tag]

    @property
    def is_native_little_endian(self):
        """Whether the value's bytes are already what an Explicit VR LE file holds."""
        return not self.transfer_syntax.is_compressed and self.transfer_syntax != uids.ExplicitVRBigEndian

    @property
    def frames(self):
        """(0028,0008) *Number of Frames*, 1 when absent."""
        return self.options["number_of_frames"]

    def _decoding_options(self):
        opts = as_pixel_options(self.header)
        opts["number_of_frames"] = self._checked_frame_count()
        opts["transfer_syntax_uid"] = self.transfer_syntax
        opts["pixel_keyword"] = self.keyword
        if self.pixel_vr:
            opts["pixel_vr"] = self.pixel_vr
        return opts

    def _checked_frame_count(self):
        """(0028,0008) *Number of Frames* as a count the pixel data can hold, else a sentence."""
        element = self.header.get(0x00280008)
        label = "(0028,0008) NumberOfFrames"
        if element is None or element.value in (None, ""):
            return 1
        try:
            if element.VM != 1 or isinstance(element.value, (bytes, bytearray)):
                raise ValueError
            text = str(element.value)
            try:
                count = int(text)
            except ValueError:
                number = float(text)
                if not number.is_integer():
                    raise
                count = int(number)
        except (ValueError, OverflowError, TypeError):
            raise InvalidDicomError(
                f"{self.name} is not valid DICOM: its {label} is {str(element.value)[:40]!r} "
                f"(VR {element.VR}), not one whole number of frames.", file=self.name) from None
        if count > _MAX_FRAMES:
            raise InvalidDicomError(
                f"{self.name} is not valid DICOM: its {label} is {text[:40]!r}, more frames than "
                f"an IS value can count ({_MAX_FRAMES:,}).", file=self.name)
        if count < 1:
            raise InvalidDicomError(
                f"{self.name} is not valid DICOM: its {label} is {count}; an image has at least "
                "one frame.", file=self.name)
        held = self._frames_held()
        if held is not None and count > held:
            raise InvalidDicomError(
                f"{self.name} is not valid DICOM: its {label} claims {count:,} frames, but its "
                f"(7FE0,0010) Pixel Data holds {held:,} at most.", file=self.name)
        self._check_frame_size(count)
        return count

    def _check_frame_size(self, count):
        """Refuse frames too large to decode here, or larger than their RLE data can encode."""
        header = self.header
        frame_bytes = (int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1))
                       * math.ceil(int(header.BitsAllocated) / 8))
        if frame_bytes > _MAX_FRAME_BYTES:
            raise DicomStudioError(
                f"The frames of {self.name} ({int(header.Rows)} x {int(header.Columns)} pixels) take "
                f"{frame_bytes:,} bytes each decoded, more than the page decodes "
                f"({_MAX_FRAME_BYTES:,}).", file=self.name)
        if self.transfer_syntax == uids.RLELossless and self._dataset is None:
            stored = max(0, os.path.getsize(self.path) - self.value_offset)
            if count * frame_bytes > _RLE_MAX_RATIO * stored + _RLE_HEADER_BYTES * count:
                raise InvalidDicomError(
                    f"{self.name} is not valid DICOM: {count:,} frame(s) of {frame_bytes:,} bytes "
                    f"cannot be encoded in the {stored:,} bytes of RLE data that follow its "
                    "(7FE0,0010) Pixel Data header.", file=self.name)

    def _frames_held(self):
        """How many frames the pixel data's bytes can hold (None where that cannot be told)."""
        if self.value_length == _UNDEFINED_LENGTH:  # a fragment holds one frame at most
            with BoundedFile(self.path) as f:
                f.seek(self.value_offset)
                items = _skip_fragments(f, self.transfer_syntax != uids.ExplicitVRBigEndian)
            return items - 1  # the first item is the Basic Offset Table
        if self.transfer_syntax.is_compressed:
            return None
        header = self.header
        bits_per_frame = (int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1))
                          * int(header.BitsAllocated))
        if bits_per_frame <= 0:
            return None
        length = self.value_length
        if self._dataset is None:  # the declared length may run past the file's end
            length = min(length, max(0, os.path.getsize(self.path) - self.value_offset))
        return length * 8 // bits_per_frame

    def why_not_decodable(self):
        """``None`` if the frames can be decoded here, else a sentence naming file and syntax."""
        if not self.has_pixels:
            return f"{self.name} has no (7FE0,0010) Pixel Data."
        reason = (why_not_decodable(self.transfer_syntax, self.header.get("BitsStored") or 8)
                  or _unsupported_variant(self.transfer_syntax, self.header))
        return f"The pixel data of {self.name} {reason}." if reason else None

    def decode_frame(self, index, as_rgb=False):
        """Return frame `index` (from 0) as ``(array, properties)``.

        The array has shape (rows, columns) or (rows, columns, samples); `properties` is
        pydicom's dict of the image pixel values that describe it (``photometric_interpretation``
        may differ from the header's, e.g. ``"YBR_FULL"`` for native ``"YBR_FULL_422"``,
        ``"RGB"`` for decoded ``"YBR_RCT"``). With `as_rgb` False (default) YBR samples stay
        YBR, as stored; with True pydicom converts them to RGB.

        Raises
        ------
        DicomStudioError
            If there is no pixel data, the syntax cannot be decoded or `index` is out of range.
        InvalidDicomError
            If the frame cannot be decoded.
        """
        reason = self.why_not_decodable()
        if reason:
            raise DicomStudioError(reason, file=self.name)
        if not 0 <= index < self.frames:
            raise DicomStudioError(
                f"{self.name} has {self.frames} frame(s); frame {index + 1} does not exist.",
                file=self.name,
            )
        decoder = get_decoder(self.transfer_syntax)
        plugin = _decoding_plugin(self.transfer_syntax)
        with as_invalid_dicom(self.name, f"while decoding frame {index + 1} of (7FE0,0010) Pixel Data"):
            if self._dataset is not None:
                return decoder.as_array(
                    self._dataset, index=index, raw=not as_rgb, decoding_plugin=plugin
                )
            with BoundedFile(self.path) as f:
                f.seek(self.value_offset)
                return decoder.as_array(
                    f, index=index, raw=not as_rgb, decoding_plugin=plugin, **self.options
                )

    def native_value_chunks(self):
        """Yield the pixel data value's bytes unchanged, in chunks (native sources only)."""
        if self._dataset is not None:
            yield self._dataset[self.pixel_tag].value
            return
        with BoundedFile(self.path) as f:
            f.seek(self.value_offset)
            remaining = self.value_length
            while remaining:
                chunk = f.read(min(_CHUNK_SIZE, remaining))
                if not chunk:
                    raise InvalidDicomError(
                        f"{self.name} ends inside its (7FE0,0010) Pixel Data.", file=self.name
                    )
                remaining -= len(chunk)
                yield chunk

    def trailing_elements(self):
        """Return the elements after the pixel data, and the names of those left out.

        Returns
        -------
        tuple of (pydicom.dataset.Dataset, list of str)
            The elements to write after the pixel data again; the labels of (FFFA,FFFA)
            *Digital Signatures Sequence* and (FFFC,FFFC) *Data Set Trailing Padding*, which
            re-encoding would make wrong, when present.
        """
        with as_invalid_dicom(self.name, "while reading the elements after the pixel data"):
            if self._dataset is not None:
                after = {t: self._dataset.get_item(t) for t in self._dataset.keys() if t > self.pixel_tag}
                trailing = Dataset(after)
                trailing.set_original_encoding(*self._dataset.original_encoding)
            else:
                little = self.transfer_syntax != uids.ExplicitVRBigEndian
                with BoundedFile(self.path) as f:
                    f.seek(self.value_offset)
                    if self.value_length == _UNDEFINED_LENGTH:
                        _skip_fragments(f, little)
                    else:
                        f.seek(self.value_length, 1)
                    trailing = read_dataset(
                        f,
                        is_implicit_VR=self.transfer_syntax == uids.ImplicitVRLittleEndian,
                        is_little_endian=little,
                    )
            dropped = []
            for tag, label in _DROPPED_TRAILING_TAGS.items():
                if tag in trailing:
                    del trailing[tag]
                    dropped.append(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {label}")
            return trailing, dropped


def _skip_fragments(f, little):
    """Move ``f`` past encapsulated pixel data's items and delimiter; return how many items."""
    fmt = "<HHL" if little else ">HHL"
    items = 0
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("the encapsulated pixel data has no sequence delimiter")
        group, element, length = struct.unpack(fmt, head)
        if (group, element) == _SEQUENCE_DELIMITER_TAG:
            return items
        items += 1
        if (group, element) != _ITEM_TAG:
            raise ValueError(f"expected an item tag in the encapsulated pixel data, found ({group:04X},{element:04X})")
        f.seek(length, 1)


def _frame_digest(arr):
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return hashlib.sha256(np.ascontiguousarray(little).tobytes()).digest()


def compress(in_path, out_path, transfer_syntax_uid, *, name=None, verify=True, lossy_settings=None,
             new_uid_of=None):
    """Write `in_path` again with its pixel data in `transfer_syntax_uid`, losslessly unless a lossy
    target is asked for with its setting.

    Parameters
    ----------
    in_path, out_path : str
        Source and destination files (MEMFS in the page); `out_path` is replaced.
    transfer_syntax_uid : str
        One of :data:`LOSSLESS_TARGETS`: Explicit VR Little Endian (uncompressed), Deflated
        Explicit VR Little Endian, RLE Lossless (:func:`rle_encode_frame`), or a syntax with a
        registered encoder.
    name : str, optional
        The file's name for messages; defaults to `in_path`.
    verify : bool
        Decode the output again and compare every frame with the source (default). A lossy
        output is always decoded again and measured.
    lossy_settings : dcmstudio.lossy.LossySettings, optional
        Required for a lossy target, refused for a lossless one: lossy is never chosen silently.
        The output then gets a new SOP Instance UID and says it was lossy compressed (see
        :func:`dcmstudio.lossy.mark_lossy`); its Source Image Sequence names the source.
    new_uid_of : dict of str to str, optional
        Lossy only: old SOP Instance UID to new one for every instance recompressed in the same
        run, this one included, so that references between them follow (see
        :func:`dcmstudio.lossy.remap_instance_uids`). By default this file gets a new random UID.

    Returns
    -------
    dict
        ``{"transfer_syntax": {"uid", "name"}, "source_transfer_syntax": {"uid", "name"},
        "frames": int, "input_bytes": int, "output_bytes": int, "verified": bool,
        "not_verified_because": str or None, "dropped": [str, ...]}``. `dropped` names the
        elements left out: an Icon Image Sequence whose pixels were compressed, trailing
        padding, digital signatures (which re-encoding invalidates). A lossy output adds
        ``"lossy": {"method", "ratio", "quality", "requested_ratio", "achieved_ratio", "psnr_db",
        "max_abs_error", "rmse"}`` (``psnr_db`` None when no sample changed),
        ``"sop_instance_uid": {"old", "new"}`` and ``"references_followed"`` (the other
        recompressed instances it refers to, by old UID).

    Raises
    ------
    DicomStudioError
        If the target is not a lossless syntax dcmstudio can write, the source cannot be
        decoded or encoded, or the output's pixels differ from the source's. Whatever fails,
        no partial `out_path` is left behind.
    NotDicomError, InvalidDicomError
        If the source is not DICOM or is broken.
    """
    name = name or str(in_path)
    target = pydicom.uid.UID(str(transfer_syntax_uid))
    source = PixelSource(in_path, name)
    _check_target(source, target, lossy_settings)
    # a file cut short inside its pixel data is said so, not found out by a frame that fails to decode
    with open(in_path, "rb") as f:
        cut = pixel_data_truncation(in_path, name, f.read(1 << 16))
    if cut:
        raise InvalidDicomError(f"{name} is truncated: {cut}. Its frames cannot all be decoded; it was not "
                                "rewritten.", file=name)
    try:
        with as_invalid_dicom(name, f"while writing it as {target.name}"):
            writer = _Rewriter(source, target, lossy_settings, new_uid_of)
            digests = writer.write(out_path)
        result = {
            "transfer_syntax": describe_transfer_syntax(target),
            "source_transfer_syntax": transfer_syntax_info(source.header),
            "frames": source.frames,
            "input_bytes": os.path.getsize(in_path),
            "output_bytes": os.path.getsize(out_path),
            "verified": False,
            "not_verified_because": "verification was not asked for" if not verify else None,
            "dropped": writer.dropped,
        }
        if lossy_settings is not None:
            result.update(writer.lossy_report())
            _measure(source, out_path, target, result)
        elif verify:
            _verify(source, out_path, target, digests, result)
    except BaseException:
        if os.path.exists(out_path):
            os.remove(out_path)
        raise
    return result


def _verify(source, out_path, target, digests, result):
    """Decode `out_path` and compare each frame with the source's (`digests`, or decoded again)."""
    written = PixelSource(out_path, source.name)
    reason = written.why_not_decodable()
    if reason:
        result["not_verified_because"] = reason
        return
    for index in range(written.frames):
        expected = digests[index] if digests is not None else _frame_digest(source.decode_frame(index)[0])
        if _frame_digest(written.decode_frame(index)[0]) != expected:
            raise DicomStudioError(
                f"Writing {source.name} as {target.name} changed the pixels of frame {index + 1}; "
                "the output was not kept.",
                file=source.name,
            )
    result["verified"] = True


def _measure(source, out_path, target, result):
    """Decode a lossy `out_path` and measure each frame against the source's; refuse what cannot be."""
    written = PixelSource(out_path, source.name)
    reason = written.why_not_decodable()
    if reason:
        raise DicomStudioError(f"{source.name} was written as {target.name} but cannot be decoded again here to "
                               f"measure it ({reason.rstrip('.')}); the output was not kept.", file=source.name)
    fidelity = lossy.Fidelity(source.header.get("BitsStored") or source.header.BitsAllocated)
    for index in range(written.frames):
        fidelity.add(source.decode_frame(index, as_rgb=True)[0], written.decode_frame(index, as_rgb=True)[0])
    result["lossy"].update(fidelity.report())
    result["verified"] = True


def decompress(in_path, out_path, *, name=None, verify=True):
    """Write `in_path` again with uncompressed pixel data (Explicit VR Little Endian).

    Same parameters, result and errors as :func:`compress`.
    """
    return compress(in_path, out_path, uids.ExplicitVRLittleEndian, name=name, verify=verify)


def _check_target(source, target, lossy_settings=None):
    name = source.name
    if target in lossy.LOSSY_TARGETS and lossy_settings is None:
        raise DicomStudioError(
            f"{name} cannot be written as {target.name} ({target}) without a chosen "
            f"{'compression ratio' if target == uids.JPEG2000 else 'quality'}: dcmstudio never "
            "compresses lossily unless asked to.",
            file=name,
        )
    if lossy_settings is not None and lossy_settings.target != target:
        raise DicomStudioError(f"{name}: lossy settings for {lossy_settings.target.name} were given for "
                               f"{target.name}.", file=name)
    if target not in LOSSLESS_TARGETS | lossy.LOSSY_TARGETS:
        raise DicomStudioError(
            f"{name} cannot be written as {describe_transfer_syntax(target)['name']} ({target}): "
            "dcmstudio writes lossless transfer syntaxes, and lossy JPEG 2000 or JPEG Baseline when asked.",
            file=name,
        )
    if target == uids.JPEGBaseline8Bit and target not in _encoders and not _pillow_encodes_jpeg():
        raise DicomStudioError(f"{name} cannot be written as {target.name}: Pillow, which encodes it, is not "
                               "installed.", file=name)
    if target.is_compressed and target not in (uids.RLELossless, uids.JPEGBaseline8Bit) and target not in _encoders:
        raise DicomStudioError(
            f"{name} cannot be written as {target.name} ({target}): no encoder for it is "
            "available in the page yet.",
            file=name,
        )
    reason = source.why_not_decodable()
    if reason:
        raise DicomStudioError(reason, file=name)
    if target.is_compressed and source.keyword != "PixelData":
        raise DicomStudioError(
            f"{name} holds ({source.pixel_tag >> 16:04X},{source.pixel_tag & 0xFFFF:04X}) "
            f"{source.keyword}, which DICOM stores uncompressed only.",
            file=name,
        )
    bits = source.header.get("BitsAllocated")
    if target.is_compressed and bits == 1:
        raise DicomStudioError(
            f"{name} has (0028,0100) Bits Allocated 1; dcmstudio does not compress 1-bit pixel data.",
            file=name,
        )
    why_not = lossy_settings and lossy.why_not_lossy(lossy_settings, source.header)
    if why_not:
        raise DicomStudioError(f"{name} cannot be written as {target.name}: it {why_not}.", file=name)
    if target == uids.RLELossless and bits not in (8, 16):
        raise DicomStudioError(
            f"{name} has (0028,0100) Bits Allocated {bits}; RLE Lossless holds 8- or 16-bit "
            "samples only (PS3.5 Table 8.2.2-1).",
            file=name,
        )


class _Rewriter:
    """One compress() call: the source's header made right for the target, then the writing."""

    def __init__(self, source, target, lossy_settings=None, new_uid_of=None):
        self.source = source
        self.target = target
        self.lossy = lossy_settings
        self.dropped = []
        # Native little-endian pixels going to a native target are copied byte for byte.
        self.copy_value = source.is_native_little_endian and not target.is_compressed
        # Decoding lossy JPEG colour includes its YCbCr to RGB step (as dcmdjpeg does): most
        # IODs do not allow the full-resolution YBR_FULL that would be left otherwise. Lossy
        # encoders take colour as RGB and apply their own colour transform.
        self.as_rgb = source.transfer_syntax in uids.JPEGTransferSyntaxes or lossy_settings is not None
        self.was_lossy = (source.transfer_syntax in _LOSSY_JPEG_SYNTAXES
                          or source.header.get("LossyImageCompression") == "01")
        with warnings.catch_warnings():
            # pydicom warns that the file it was read from is not copied (a copy needs none)
            warnings.filterwarnings("ignore", message=".*deepcopy the buffer-like", category=UserWarning)
            header = copy.deepcopy(source.header)
        for tag in list(header.keys()):
            if tag.group == 0x0002 or tag in _EXTENDED_OFFSET_TAGS:
                del header[tag]
        for item in header.get("IconImageSequence") or []:
            if "PixelData" in item and item["PixelData"].is_undefined_length:
                del header.IconImageSequence
                self.dropped.append("(0088,0200) Icon Image Sequence (its pixel data was compressed)")
                break
        if source.transfer_syntax in _LOSSY_JPEG_SYNTAXES and "LossyImageCompression" not in header:
            header.LossyImageCompression = "01"
        self.header = header
        self.trailing, dropped = source.trailing_elements()
        self.dropped += dropped
        if source.transfer_syntax == uids.ExplicitVRBigEndian:
            _swap_words_to_little_endian(self.header)
            _swap_words_to_little_endian(self.trailing)
        if lossy_settings is not None:
            self._new_instance(dict(new_uid_of or {}))

    def _new_instance(self, new_uid_of):
        """A lossy output is a new instance: new SOP Instance UID, references within the run followed."""
        meta = self.source.header.file_meta
        old = str(self.header.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or "")
        if not old:
            raise DicomStudioError(f"{self.source.name} has no (0008,0018) SOP Instance UID to replace.",
                                   file=self.source.name)
        new_uid_of.setdefault(old, new_uid())
        self.old_uid, self.new_uid = old, new_uid_of[old]
        followed = (lossy.remap_instance_uids(self.header, new_uid_of)
                    | lossy.remap_instance_uids(self.trailing, new_uid_of))
        self.references_followed = sorted(followed - {old})
        self.header.SOPInstanceUID = self.new_uid
        sop_class = self.header.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID")
        # Attributes the object's IOD does not hold (an enhanced image has no top-level Source Image
        # Sequence) are not added.
        self.defines = lambda keyword: keyword in self.header or bool(iod.attribute_requirements(sop_class, keyword))
        if self.defines("SourceImageSequence"):
            lossy.add_predecessor(self.header, sop_class, old, self.was_lossy)

    def lossy_report(self):
        """What a lossy output's report adds (see :func:`compress`)."""
        return {"lossy": {**self.lossy.as_dict(), "requested_ratio": self.lossy.ratio,
                          "achieved_ratio": round(self.ratio, 2)},
                "sop_instance_uid": {"old": self.old_uid, "new": self.new_uid},
                "references_followed": self.references_followed}

    def write(self, out_path):
        """Write the output file; return each source frame's digest (``None`` when copied)."""
        with open(out_path, "wb") as raw:
            raw.write(b"\0" * 128 + b"DICM")
            write_file_meta_info(DicomFileLike(raw), self._file_meta(), enforce_standard=True)
            if self.target.is_compressed:
                return self._write_encapsulated(raw)
            if self.target != uids.DeflatedExplicitVRLittleEndian:
                return self._write_native(raw)
            body = _DeflatingWriter(raw)
            digests = self._write_native(body)
            body.close()
            return digests

    def _file_meta(self):
        meta = FileMetaDataset()
        for element in self.source.header.file_meta:
            meta.add(copy.deepcopy(element))
        meta.TransferSyntaxUID = self.target
        if self.lossy is not None:
            meta.MediaStorageSOPInstanceUID = self.new_uid
        if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in self.header:
            meta.MediaStorageSOPClassUID = self.header.SOPClassUID
        if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in self.header:
            meta.MediaStorageSOPInstanceUID = self.header.SOPInstanceUID
        return meta

    def _encoded(self, dataset):
        buffer = DicomBytesIO()
        buffer.is_little_endian = True
        buffer.is_implicit_VR = False
        write_dataset(buffer, dataset, self.header.get("SpecificCharacterSet") or "iso8859")
        return buffer.getvalue()

    def _decoded_frames(self):
        """Yield the source's frames decoded; the header takes frame 1's colour space first."""
        for index in range(self.source.frames):
            arr, properties = self.source.decode_frame(index, as_rgb=self.as_rgb)
            if index == 0:
                self._set_colour_space(properties["photometric_interpretation"])
            yield arr

    def _write_encapsulated(self, raw):
        if self.lossy is not None:
            return self._write_lossy(raw)
        digests = []
        for index, arr in enumerate(self._decoded_frames()):
            fragment, said = self._encode(arr)
            if index == 0:
                if "photometric_interpretation" in said:
                    self.header.PhotometricInterpretation = said["photometric_interpretation"]
                raw.write(self._encoded(self.header))
                fragments = _EncapsulatedWriter(raw, self.source.frames)
            fragments.add(fragment)
            digests.append(_frame_digest(arr))
        fragments.close()
        raw.write(self._encoded(self.trailing))
        return digests

    def _write_lossy(self, raw):
        """Encode every frame into a scratch file first: the header holds the ratio they achieve."""
        sizes = []
        scratch = raw.name + ".frames"
        try:
            with open(scratch, "wb") as frames_file:
                for index, arr in enumerate(self._decoded_frames()):
                    fragment, said = self._encode(arr)
                    if index == 0 and "photometric_interpretation" in said:
                        self.header.PhotometricInterpretation = said["photometric_interpretation"]
                    frames_file.write(fragment)
                    sizes.append(len(fragment))
            self.ratio = lossy.achieved_ratio(self.header, len(sizes), sum(sizes))
            lossy.mark_lossy(self.header, self.lossy, self.ratio, derivation=self.defines("DerivationDescription"))
            raw.write(self._encoded(self.header))
            fragments = _EncapsulatedWriter(raw, len(sizes))
            with open(scratch, "rb") as frames_file:
                for size in sizes:
                    fragments.add(frames_file.read(size))
            fragments.close()
            raw.write(self._encoded(self.trailing))
        finally:
            if os.path.exists(scratch):
                os.remove(scratch)
        return None

    def _write_native(self, body):
        if self.copy_value:
            digests = None
            length = self.source.value_length
            chunks = self.source.native_value_chunks()
        else:
            digests = []
            length = _native_frame_length(self.header, self.source.frames, self.source.name)
            length *= self.source.frames
            frames = self._decoded_frames()
            first = next(frames)
            chunks = self._digested_bytes(itertools.chain([first], frames), digests)
        body.write(self._encoded(self.header))
        self._write_native_element(body, length, chunks)
        body.write(self._encoded(self.trailing))
        return digests

    def _digested_bytes(self, frames, digests):
        for arr in frames:
            digests.append(_frame_digest(arr))
            yield self._native_bytes(arr)

    def _set_colour_space(self, decoded_photometric):
        if self.header.get("SamplesPerPixel", 1) > 1:
            # As decoded: native YBR_FULL_422 upsampled to YBR_FULL, YBR_RCT as RGB, colour-by-pixel.
            self.header.PhotometricInterpretation = decoded_photometric
            self.header.PlanarConfiguration = 0

    def _stored_dtype(self):
        bits = self.header.BitsAllocated
        if self.source.keyword != "PixelData":
            return np.dtype(f"<f{bits // 8}")
        kind = "i" if self.header.get("PixelRepresentation", 0) else "u"
        return np.dtype(f"<{kind}{max(bits, 8) // 8}")

    def _native_bytes(self, arr):
        if self.header.BitsAllocated == 1:
            return pack_bits(arr, pad=False)
        return np.ascontiguousarray(arr.astype(self._stored_dtype())).tobytes()

    def _write_native_element(self, out, length, chunks):
        source = self.source
        bits = self.header.BitsAllocated
        vr = {"FloatPixelData": "OF", "DoubleFloatPixelData": "OD"}.get(source.keyword, "OB" if bits <= 8 else "OW")
        padded = length + (length % 2)
        if padded >= _UNDEFINED_LENGTH:
            raise DicomStudioError(
                f"{source.name}: uncompressed, its pixel data would exceed the 4 GiB a DICOM "
                "element can hold.",
                file=source.name,
            )
        tag = source.pixel_tag
        out.write(struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr.encode(), 0, padded))
        written = 0
        for chunk in chunks:
            out.write(chunk)
            written += len(chunk)
        if written != length:
            raise ValueError(f"the pixel data holds {written} bytes where {length} were expected")
        if padded != length:
            out.write(b"\0")

    def _encode(self, arr):
        """Return ``(codestream, what the codec said)`` for one decoded frame."""
        arr = arr.astype(self._stored_dtype(), copy=False)
        params = {
            "rows": self.header.Rows,
            "columns": self.header.Columns,
            "samples_per_pixel": self.header.get("SamplesPerPixel", 1),
            "bits_allocated": self.header.BitsAllocated,
            "bits_stored": self.header.BitsStored,
            "pixel_representation": self.header.get("PixelRepresentation", 0),
            "photometric_interpretation": str(self.header.PhotometricInterpretation),
            "planar_configuration": 0,
            "number_of_frames": 1,
        }
        try:
            if self.target in _encoders:
                params["transfer_syntax_uid"] = str(self.target)
                if self.lossy is not None and self.lossy.ratio is not None:
                    # OpenJPEG counts the ratio against Bits Stored; the report against Bits Allocated.
                    params["compression_ratio"] = self.lossy.ratio * params["bits_stored"] / params["bits_allocated"]
                return _split_codec_result(_encoders[self.target](arr.tobytes(), params))
            if self.target == uids.JPEGBaseline8Bit:
                return pillow_jpeg_encode_frame(arr, self.lossy.quality)
            return rle_encode_frame(arr), {}
        except MemoryError:
            raise
        except Exception as exc:
            raise DicomStudioError(
                f"{self.source.name} could not be encoded as {self.target.name}: {_first_line(exc)}",
                file=self.source.name,
            ) from exc


def register_pylibjpeg_openjpeg():
    """Register pylibjpeg-openjpeg, where it is installed (CPython), as the JPEG 2000 codec.

    The page registers its wasm OpenJPEG instead; this gives the command line and the tests the same
    library underneath, both ways, lossless (1.2.840.10008.1.2.4.90) and lossy (.91).

    Returns
    -------
    bool
        Whether it is installed (and now registered).
    """
    try:
        import openjpeg
        from openjpeg.utils import encode_array
    except ImportError:
        return False

    def decode(data, params):
        arr = openjpeg.decode(data)
        return np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False)).tobytes()

    def encode(data, params):
        kind = "i" if params["pixel_representation"] else "u"
        samples = params["samples_per_pixel"]
        shape = (params["rows"], params["columns"], *((samples,) if samples > 1 else ()))
        arr = np.frombuffer(data, f"<{kind}{params['bits_allocated'] // 8}").reshape(shape)
        ratio = params.get("compression_ratio")
        colour = samples > 1 and params["photometric_interpretation"] in ("RGB", "YBR_RCT", "YBR_ICT")
        photometric = 1 if colour else 2 if samples == 1 else 0  # sRGB, greyscale, unspecified
        codestream = encode_array(arr, bits_stored=params["bits_stored"], photometric_interpretation=photometric,
                                  use_mct=colour, compression_ratios=[ratio] if ratio else None)
        if not colour:
            return codestream
        return {"data": codestream, "photometric_interpretation": "YBR_ICT" if ratio else "YBR_RCT"}

    for ts in (uids.JPEG2000Lossless, uids.JPEG2000):
        register_decoder(ts, decode)
        register_encoder(ts, encode)
    return True


def lossy_choices():
    """The lossy targets that can be written now, each with its one setting.

    Returns
    -------
    list of dict
        ``{"uid", "name", "method", "setting": "ratio" or "quality", "min", "max", "default"}``:
        JPEG 2000 when an encoder for it is registered, JPEG Baseline (8-bit samples) when Pillow
        or a registered encoder writes it.
    """
    choices = []
    if uids.JPEG2000 in _encoders:
        low, high = lossy.RATIO_RANGE
        choices.append({**describe_transfer_syntax(uids.JPEG2000), "method": lossy.LOSSY_METHODS[uids.JPEG2000],
                        "setting": "ratio", "min": low, "max": high, "default": 10})
    if uids.JPEGBaseline8Bit in _encoders or _pillow_encodes_jpeg():
        low, high = lossy.QUALITY_RANGE
        choices.append({**describe_transfer_syntax(uids.JPEGBaseline8Bit),
                        "method": lossy.LOSSY_METHODS[uids.JPEGBaseline8Bit],
                        "setting": "quality", "min": low, "max": high, "default": 90})
    return choices


def _pillow_encodes_jpeg():
    return importlib.util.find_spec("PIL") is not None


def pillow_jpeg_encode_frame(arr, quality):
    """Encode one 8-bit frame as JPEG Baseline (ISO 10918-1 process 1) with Pillow.

    Parameters
    ----------
    arr : numpy.ndarray
        (rows, columns) greyscale or (rows, columns, 3) RGB, unsigned 8-bit.
    quality : int
        1 to 100 (the IJG scale).

    Returns
    -------
    tuple of (bytes, dict)
        The codestream, and for colour ``{"photometric_interpretation": "YBR_FULL_422"}``: Pillow
        stores colour as YCbCr with its chrominance halved horizontally.
    """
    from PIL import Image

    colour = arr.ndim == 3
    image = Image.fromarray(np.ascontiguousarray(arr.astype(np.uint8, copy=False)), "RGB" if colour else "L")
    out = io.BytesIO()
    # 4:2:2 (subsampling=1) is what YBR_FULL_422 describes; no progressive, no optimised tables' extras.
    image.save(out, "JPEG", quality=int(quality), subsampling=1 if colour else 0, progressive=False)
    return out.getvalue(), ({"photometric_interpretation": "YBR_FULL_422"} if colour else {})


_WORD_SIZES = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


def _swap_words_to_little_endian(dataset):
    """Byte-swap the OW, OL, OF, OD and OV values of a dataset read from a big endian file.

    pydicom re-encodes numbers for the new byte order but writes these values' bytes as read.
    """
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _swap_words_to_little_endian(item)
        elif element.VR in _WORD_SIZES and element.value:
            size = _WORD_SIZES[element.VR]
            whole = len(element.value) // size * size
            words = np.frombuffer(element.value[:whole], dtype=f">u{size}")
            element.value = words.astype(f"<u{size}").tobytes() + bytes(element.value[whole:])


def _native_frame_length(header, frames, name):
    pixels = header.Rows * header.Columns * header.get("SamplesPerPixel", 1)
    bits = header.BitsAllocated
    if bits == 1 and pixels % 8 and frames > 1:
        raise DicomStudioError(
            f"{name} has 1-bit frames of {pixels} pixels that do not end on a byte; dcmstudio "
            "cannot rewrite them uncompressed.",
            file=name,
        )
    return math.ceil(pixels * bits / 8)


class _EncapsulatedWriter:
    """(7FE0,0010) as OB of undefined length: offset table, one fragment per frame, delimiter."""

    def __init__(self, out, frames):
        self._out = out
        out.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, _UNDEFINED_LENGTH))
        # A single frame needs no offsets; several get a table filled in once their sizes are known.
        table_length = 4 * frames if frames > 1 else 0
        out.write(struct.pack("<HHL", 0xFFFE, 0xE000, table_length))
        self._table_position = out.tell()
        out.write(b"\0" * table_length)
        self._first_fragment = out.tell()
        self._offsets = []

    def add(self, fragment):
        """Write one frame's codestream as one item, padded to even length."""
        self._offsets.append(self._out.tell() - self._first_fragment)
        padded = bytes(fragment) + b"\0" * (len(fragment) % 2)
        self._out.write(struct.pack("<HHL", 0xFFFE, 0xE000, len(padded)))
        self._out.write(padded)

    def close(self):
        """Write the sequence delimiter and fill in the offset table."""
        self._out.write(struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))
        if len(self._offsets) > 1:
            if self._offsets[-1] > 0xFFFFFFFF:
                raise DicomStudioError("The compressed pixel data would exceed the 4 GiB an offset table can address.")
            end = self._out.tell()
            self._out.seek(self._table_position)
            self._out.write(struct.pack(f"<{len(self._offsets)}L", *self._offsets))
            self._out.seek(end)


class _DeflatingWriter:
    """A write-only file object that deflates (raw, no zlib header) into another file."""

    def __init__(self, raw):
        self._raw = raw
        self._deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)

    def write(self, data):
        self._raw.write(self._deflater.compress(data))
        return len(data)

    def close(self):
        """Write what the deflater still holds."""
        self._raw.write(self._deflater.flush())


def rle_encode_frame(arr):
    """Encode one frame as RLE Lossless (PS3.5 Annex G), byte for byte as pydicom's encoder does.

    pydicom's pure-Python encoder walks every byte in Python (0.3 s for a 512 x 512 16-bit
    frame in CPython); this one finds the runs with numpy and writes the same bytes.

    Parameters
    ----------
    arr : numpy.ndarray
        (rows, columns) or (rows, columns, samples), 8 or 16 bits per sample.

    Returns
    -------
    bytes
        The 64-byte RLE header followed by the segments: for each sample, its most significant
        byte first, each segment padded to even length.
    """
    arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
    rows, columns = arr.shape[:2]
    samples = arr.shape[2] if arr.ndim == 3 else 1
    width = arr.dtype.itemsize
    planes = arr.view(np.uint8).reshape(rows, columns, samples, width)
    segments = [
        _rle_encode_segment(planes[:, :, sample, byte]) for sample in range(samples) for byte in reversed(range(width))
    ]
    if len(segments) > 15:
        raise ValueError("RLE Lossless holds at most 15 segments")
    offsets = np.cumsum([64] + [len(s) for s in segments[:-1]])
    header = struct.pack(f"<L{len(segments)}L", len(segments), *offsets.tolist())
    return header + b"\0" * (64 - len(header)) + b"".join(segments)


def _rle_encode_segment(plane):
    """PackBits one byte plane row by row, padded to even length.

    Rows are independent in RLE, so a large plane is encoded in blocks of rows: the run
    arrays then stay near 64 K entries whatever the frame's size.
    """
    rows_per_block = max(1, _RLE_BLOCK_BYTES // plane.shape[1])
    encoded = b"".join(
        _rle_encode_rows(plane[top : top + rows_per_block]) for top in range(0, plane.shape[0], rows_per_block)
    )
    return encoded + b"\0" * (len(encoded) % 2)


def _rle_encode_rows(plane):
    """PackBits rows: repeats of 2+ bytes replicate, single bytes gather into literals."""
    columns = plane.shape[1]
    flat = plane.ravel()
    starts_run = np.ones(flat.size, dtype=bool)
    starts_run[1:] = flat[1:] != flat[:-1]
    starts_run[::columns] = True  # runs never cross a row
    starts = np.flatnonzero(starts_run)
    lengths = np.diff(np.append(starts, flat.size))
    values = flat[starts]

    # Single bytes gather into literal stretches, cut at each row start and at 128 bytes.
    single = lengths == 1
    after_single = np.concatenate(([False], single[:-1]))
    stretch_starts = single & (~after_single | (starts % columns == 0))
    single_index = np.flatnonzero(single)
    stretch_of = np.cumsum(stretch_starts[single]) - 1
    first_in_stretch = np.flatnonzero(stretch_starts[single])
    stretch_length = np.diff(np.append(first_in_stretch, single_index.size))
    position = np.arange(single_index.size) - first_in_stretch[stretch_of]
    opens_chunk = position % 128 == 0

    # Replicate runs: (129, v) per 128 bytes, then (257 - r, v) for r > 1 left, or (0, v) for 1.
    repeat_index = np.flatnonzero(~single)
    full_chunks = lengths[repeat_index] // 128
    rest = lengths[repeat_index] % 128

    size = np.zeros(starts.size, dtype=np.int32)
    size[single_index] = 1 + opens_chunk
    size[repeat_index] = 2 * full_chunks + 2 * (rest > 0)
    offset = np.cumsum(size) - size
    out = np.empty(int(offset[-1] + size[-1]), dtype=np.uint8)

    at = offset[single_index]
    chunk_length = np.minimum(128, stretch_length[stretch_of] - position)
    out[at[opens_chunk]] = chunk_length[opens_chunk] - 1
    out[at + opens_chunk] = values[single_index]

    pair_at = np.repeat(offset[repeat_index], full_chunks)
    pair_at += 2 * (np.arange(pair_at.size) - np.repeat(np.cumsum(full_chunks) - full_chunks, full_chunks))
    out[pair_at] = 129
    out[pair_at + 1] = np.repeat(values[repeat_index], full_chunks)
    has_rest = rest > 0
    tail_at = offset[repeat_index][has_rest] + 2 * full_chunks[has_rest]
    out[tail_at] = np.where(rest[has_rest] > 1, 257 - rest[has_rest], 0)
    out[tail_at + 1] = values[repeat_index][has_rest]
    return out.tobytes()

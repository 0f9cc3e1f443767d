"""The 128-byte preamble of a Part 10 file (PS3.15 E.1.1 item 7): zeroed, or the file refused.

An application may put anything in the preamble (PS3.10 7.1), so it may hold identifying data;
de-identified files get a zero preamble. A TIFF header there makes a dual-personality file
(PS3.10 7.1, Annex A): its TIFF side points into the pixel data and its own tags, which a
de-identifier of the DICOM side cannot vouch for, so such a file is refused with a sentence.
"""

import struct

from dcmstudio.errors import DicomStudioError

PREAMBLE_LENGTH = 128
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def check(data, name):
    """Refuse a TIFF/DICOM dual-personality file before anything is written.

    Raises
    ------
    DicomStudioError
        The preamble is a TIFF header whose first directory lies in the file.
    """
    if bytes(data[128:132]) == b"DICM" and _is_tiff_header(data):
        raise DicomStudioError(
            f"{name} is a TIFF/DICOM dual-personality file (its preamble is a TIFF header): its "
            f"TIFF side would stay readable with content this tool does not de-identify. Save it "
            f"again without the TIFF header (a zero preamble), then de-identify it.", file=name)


def zeroed(pieces):
    """``pieces`` of an output file with the preamble set to zeros (unchanged when it already
    is, or when the file has no preamble)."""
    head = bytearray()
    for piece in pieces:
        head += piece[:PREAMBLE_LENGTH + 4 - len(head)]
        if len(head) >= PREAMBLE_LENGTH + 4:
            break
    if head[PREAMBLE_LENGTH:PREAMBLE_LENGTH + 4] != b"DICM" or not any(head[:PREAMBLE_LENGTH]):
        return pieces
    out, skipped = [bytes(PREAMBLE_LENGTH)], 0
    for piece in pieces:
        if skipped < PREAMBLE_LENGTH:
            take = min(len(piece), PREAMBLE_LENGTH - skipped)
            skipped += take
            piece = piece[take:]
        if len(piece):
            out.append(piece)
    return out


def _is_tiff_header(data):
    """A classic TIFF header (PS3.10 Annex A) whose first image file directory lies in the
    file; a leftover header pointing elsewhere (as in some sample files) is just zeroed."""
    head = bytes(data[:8])
    if head[:4] not in TIFF_MAGIC[:2]:
        return False
    order = "<" if head[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", head[4:8])[0]
    if not 8 <= offset <= len(data) - 2:
        return False
    entries = struct.unpack(order + "H", bytes(data[offset:offset + 2]))[0]
    return 0 < entries and offset + 2 + 12 * entries + 4 <= len(data)

"""Seeded mutations of real files through the walker, the editor and the inspector.

Every input must either succeed or raise a DicomStudioError (never OverflowError, struct.error,
IndexError, ... which wasm32 and CPython raise differently), and none may take over 2 s.

The default run does 2,000 mutations (the same count runs inside Pyodide). The full CPython run:
``DCMSTUDIO_FUZZ_N=20000 python -m pytest tests/unit/test_edit_fuzz.py``.
"""

import os
import random
import struct
import time
import warnings

import pytest
from conftest import TEST_FILES_DIR, bundled

from dcmstudio.edit import edit_bytes
from dcmstudio.elements import walk
from dcmstudio.errors import DicomStudioError
from dcmstudio.uids import UidMap

FUZZ_N = int(os.environ.get("DCMSTUDIO_FUZZ_N", "2000"))
MAX_SECONDS = 2.0
SEED_FILES = [
    "CT_small.dcm",  # explicit VR LE, private elements, a sequence
    "MR_small_implicit.dcm",  # implicit VR LE
    "MR_small_bigendian.dcm",  # explicit VR BE
    "image_dfl.dcm",  # deflated
    "JPEG2000.dcm",  # encapsulated pixel data
    "UN_sequence.dcm",  # a sequence inside UN
    "rtplan.dcm",  # nested defined-length sequences
    "reportsi.dcm",  # deep undefined-length SR content tree
]
CHARSET_SEED = TEST_FILES_DIR.parent / "charset_files" / "chrJapMulti.dcm"  # ISO 2022
# Two lists: one that stops the walk early (Job A's shape), one that must read everything.
EDIT_LISTS = [
    [{"op": "set", "path": "PatientName", "value": "Fuzz^Edited"},
     {"op": "set", "path": "PatientID", "value": "FUZZ-{index:04d}"},
     {"op": "delete", "path": "(0009,1002)"},
     {"op": "set", "path": "RequestAttributesSequence[0].RequestedProcedureID", "value": "RP"}],
    [{"op": "add", "path": '(0009,"FUZZ 1.0",02)', "value": "x", "vr": "LO"},
     {"op": "set", "path": "(0008,1140)[*].ReferencedSOPInstanceUID", "value": "1.2.3"},
     {"op": "delete", "path": "BeamSequence[0]"},
     {"op": "add", "path": "OtherPatientIDsSequence[0].PatientID", "value": "OTHER"},
     {"op": "set", "path": "SOPInstanceUID", "value": "{uid}"},
     {"op": "remap_uids"}],
]
INTERESTING_32 = [0, 1, 2, 7, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
MARKERS = [b"\xfe\xff\x00\xe0", b"\xfe\xff\x0d\xe0", b"\xfe\xff\xdd\xe0", b"\xe0\x7f\x10\x00"]


def mutate(data, offsets, rng):
    """One random mutation, aimed at headers half of the time."""
    data = bytearray(data)
    kind = rng.randrange(8)
    at = rng.choice(offsets) if offsets and rng.random() < 0.6 else rng.randrange(len(data))
    if kind == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # a length field (32- or 16-bit) set to an interesting value
        value = rng.choice(INTERESTING_32)
        field = at + rng.choice([4, 6, 8])
        if rng.random() < 0.5:
            data[field:field + 4] = struct.pack("<L", value)
        else:
            data[field:field + 2] = struct.pack("<H", value & 0xFFFF)
    elif kind == 2:  # truncate
        del data[rng.randrange(len(data)):]
    elif kind == 3:  # insert junk
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 4:  # delete a span
        del data[at:at + rng.randint(1, 64)]
    elif kind == 5:  # duplicate a span
        data[at:at] = data[at:at + rng.randint(8, 256)]
    elif kind == 6:  # a VR replaced
        data[at + 4:at + 6] = rng.choice([b"SQ", b"UN", b"OB", b"UT", b"XX", b"\x00\x00", b"US"])
    else:  # a tag replaced by a delimiter or pixel data
        data[at:at + 4] = rng.choice(MARKERS)
    return bytes(data)


def seed_inputs():
    seeds = [bundled(name).read_bytes() for name in SEED_FILES] + [CHARSET_SEED.read_bytes()]
    inputs = []
    for data in seeds:
        emap = walk(data, "seed.dcm")
        # header offsets in the file's own coordinates (not the inflated ones)
        offsets = [e.offset for e in emap.elements] if not emap.deflated else []
        inputs.append((data, offsets))
    return inputs


def test_seed_files_are_different_and_all_edit_cleanly():
    inputs = seed_inputs()
    assert len({data for data, _ in inputs}) >= 6
    for data, _ in inputs:
        for edits in EDIT_LISTS:
            edit_bytes(data, edits, context={"uid_map": UidMap()})


def test_mutated_files_only_ever_raise_dicom_studio_errors(tmp_path):
    try:
        from dcmstudio import inspector
    except ImportError:  # another engineer's module; fuzz it once it exists
        inspector = None
    rng = random.Random(20240102)
    inputs = seed_inputs()
    path = tmp_path / "fuzzed.dcm"
    failures, slowest, outcomes = [], 0.0, {"ok": 0, "refused": 0}
    for case in range(FUZZ_N):
        data, offsets = inputs[case % len(inputs)]
        mutated = mutate(data, offsets, rng)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                whole = walk(mutated, "fuzzed.dcm")
                output, report = edit_bytes(
                    mutated, EDIT_LISTS[case % 2],
                    context={"index": case, "uid_map": UidMap(), "name": "fuzzed.dcm"})
                if report["changes"]:  # an edited file walks as cleanly as its input did
                    assert walk(b"".join(output), "fuzzed.dcm").complete == whole.complete
                if inspector is not None and case % 4 == 0:
                    path.write_bytes(mutated)
                    inspector.element_tree(str(path), "fuzzed.dcm")
            outcomes["ok"] += 1
        except DicomStudioError as exc:
            assert exc.file == "fuzzed.dcm", exc
            outcomes["refused"] += 1
        except Exception as exc:  # the failure this test exists to find
            failures.append(f"case {case} (seed {SEED_FILES[case % len(inputs)] if case % len(inputs) < len(SEED_FILES) else CHARSET_SEED.name}): {type(exc).__name__}: {exc}")
        slowest = max(slowest, time.perf_counter() - started)
    assert not failures, f"{len(failures)} uncaught: " + "; ".join(failures[:5])
    assert slowest < MAX_SECONDS, f"slowest input took {slowest:.2f} s"
    assert outcomes["ok"] and outcomes["refused"]  # the mutations reach both outcomes
    print(f"{FUZZ_N} mutations: {outcomes}, slowest {slowest * 1000:.0f} ms")


@pytest.mark.parametrize("value", INTERESTING_32)
def test_every_length_of_every_header_set_to_an_extreme(value):
    """Deterministic: each element's length field of CT_small.dcm in turn."""
    data = bundled("CT_small.dcm").read_bytes()
    emap = walk(data, "CT_small.dcm")
    for element in emap.elements:
        if element.offset is None:
            continue
        mutated = bytearray(data)
        field = element.value_offset - (2 if element.value_offset - element.offset == 8
                                         and element.tag != 0xFFFEE000 else 4)
        size = element.value_offset - field
        mutated[field:element.value_offset] = value.to_bytes(4, "little")[:size]
        try:
            edit_bytes(bytes(mutated), EDIT_LISTS[1], context={"uid_map": UidMap()})
        except DicomStudioError:
            pass

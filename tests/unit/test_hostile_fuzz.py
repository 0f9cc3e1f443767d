"""Hostile mutants of real files through every reader the page calls (issue 12's proof).

Mutation classes: a declared length near the file's end and far past it, deflate bombs, sequences
nested 10,000 deep, a duplicated tag, and (0028,0008) *Number of Frames* in every VR. Each mutant
goes through seven operations as the worker calls them (describe, tree, text dump, DICOM JSON,
frame info, render, an edit job's step) and each answer must be a result or a sentence naming
the file: no InternalError, no MemoryError, no single operation over 2 s (CPU time, of the Node
process in Pyodide), and no more memory than 4 times the file's size plus a fixed 4 MiB for the
reader's own structures, deflate bombs included (one made of many values that each fit the
inflation cap too: the cap counts the inflated bytes of all values together). Memory is what
tracemalloc saw at its peak, after a warm-up that loads what is loaded once (the IOD table); in
Pyodide it is the wasm heap's growth per operation (what the page pays: the heap never shrinks)
after room for what the rule allows was made in it, so that any growth breaks the rule,
or tracemalloc there too with ``DCMSTUDIO_HOSTILE_FUZZ_TRACEMALLOC=1`` (5-8 times slower).

The default run (the same inside Pyodide) samples ``DCMSTUDIO_HOSTILE_FUZZ_N`` mutants of
the length class (150), and every mutant of the other classes (103: the NumberOfFrames class writes each VR into
the native seed and one encapsulated seed). The full CPython run:
``DCMSTUDIO_HOSTILE_FUZZ_N=5000 python -m pytest tests/unit/test_hostile_fuzz.py -s``.
"""

import collections
import json
import os
import random
import struct
import tracemalloc
import warnings
import zlib

import pytest
from conftest import bundled, cpu_clock
from test_hostile import compressed_zeros, deflated_bomb

from dcmstudio import api
from dcmstudio.bounded import inflation_cap
from dcmstudio.elements import ALL_VRS, LONG_LENGTH_VRS, walk

FUZZ_N = int(os.environ.get("DCMSTUDIO_HOSTILE_FUZZ_N", "150"))
MAX_SECONDS = 2.0
FIXED_ALLOWANCE = 4 << 20


_clock = cpu_clock()
OPERATIONS = ("describe", "tree", "export_text", "export_json", "frame_info", "render_frame", "edit")
SEEDS = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm",
         "MR_small_RLE.dcm", "JPEG2000.dcm", "rtplan.dcm", "reportsi.dcm", "SC_rgb_rle_2frame.dcm"]
# How far a declared length lands from the end of the file: just before, at, just past, far past.
NEAR_END = (-9, -8, -2, -1, 0, 1, 2, 7, 8, 4096)
FAR_PAST = (1 << 20, 1 << 30, 0x7FFFFFFF, 0xFFFFFFFE)


IN_PYODIDE = os.environ.get("DCMSTUDIO_IN_PYODIDE") == "1"
# tracemalloc sees every allocation and makes the run 5-8 times slower; inside Pyodide the wasm
# heap's growth is measured instead (what the page pays: the heap never shrinks), unless this is set.
TRACE_IN_PYODIDE = os.environ.get("DCMSTUDIO_HOSTILE_FUZZ_TRACEMALLOC") == "1"


def wasm_heap_size():
    """The wasm heap's size in bytes inside Pyodide (it grows, never shrinks), else None."""
    if not IN_PYODIDE:
        return None
    import pyodide_js  # noqa: PLC0415 -- exists only in Pyodide
    return pyodide_js._module.HEAP8.length


class Outcomes:
    """Counts of what the operations answered per mutation class, and what broke the rules."""

    def __init__(self):
        self.counts = collections.Counter()
        self.mutants = collections.Counter()
        self.failures = []
        self.slowest = (0.0, "")
        self.worst_excess = (0, "nowhere")
        self.largest = collections.defaultdict(lambda: (0.0, "nothing"))
        self.traced = not IN_PYODIDE or TRACE_IN_PYODIDE

    def run(self, mutation, label, data, tmp_path):
        """Every operation on one mutant of class ``mutation``."""
        self.mutants[mutation] += 1
        path = tmp_path / f"m{sum(self.mutants.values())}.dcm"
        path.write_bytes(data)
        for operation in OPERATIONS:
            if not self.traced:
                # Room for what the rule allows, made before the clock: else a heap that happens to
                # be nearly full grows by the allocator's step (12 MiB) for any small allocation,
                # and what an operation is blamed for depends on the tests that ran before.
                bytearray(4 * len(data) + FIXED_ALLOWANCE)
            heap_before = wasm_heap_size()
            if self.traced:
                tracemalloc.start()
            started = _clock()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = _call(operation, str(path))
            finally:
                seconds = _clock() - started
                if self.traced:
                    grown = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
                else:
                    grown = wasm_heap_size() - heap_before
            where = f"{label} {operation}"
            kind = _outcome(result)
            self.counts[(mutation, operation, kind)] += 1
            if kind in ("InternalError", "MemoryError") or kind.startswith("unnamed"):
                self.failures.append(f"{where}: {json.dumps(result)[:300]}")
            if seconds > self.slowest[0]:
                self.slowest = (seconds, where)
            if grown / len(data) > self.largest[mutation][0]:
                self.largest[mutation] = (grown / len(data), f"{grown:,} bytes for {len(data):,} ({where})")
            # Beyond 4 times the file: the rule allows FIXED_ALLOWANCE of it.
            excess = grown - 4 * len(data)
            if excess > self.worst_excess[0]:
                self.worst_excess = (excess, f"{where}: {grown:,} bytes for a {len(data):,}-byte file")
            if seconds > MAX_SECONDS:
                self.failures.append(f"{where}: took {seconds:.2f} s")
            # traced: the peak of what it allocated; in the heap: any growth past the room made for
            # it means it needed more than the rule allows
            if grown > (4 * len(data) + FIXED_ALLOWANCE if self.traced else 0):
                self.failures.append(f"{where}: {grown:,} bytes allocated for a {len(data):,}-byte file"
                                     + ("" if self.traced else " (beyond the room the rule allows)"))
        api.call("forget", json.dumps({"paths": [str(path)]}))
        path.unlink()

    def check(self):
        """Fail on what broke the rules since the last check (the counts are kept for the summary)."""
        failures, self.failures = self.failures, []
        assert not failures, f"{len(failures)} broke the rules: " + "; ".join(failures[:5])

    def summary(self):
        table = collections.defaultdict(lambda: collections.defaultdict(dict))
        for (mutation, operation, kind), count in sorted(self.counts.items()):
            table[mutation][operation][kind] = count
        lines = [f"{sum(self.mutants.values())} mutants x {len(OPERATIONS)} operations"]
        for mutation, per_operation in table.items():
            lines.append(f"  {mutation} ({self.mutants[mutation]} mutants): "
                         + "; ".join(f"{operation} " + " ".join(f"{k} {n}" for k, n in kinds.items())
                                     for operation, kinds in per_operation.items())
                         + f"; most memory for its size {self.largest[mutation][0]:.1f}x: {self.largest[mutation][1]}")
        memory = "tracemalloc peak" if self.traced else "wasm heap growth"
        lines.append(f"slowest {self.slowest[0] * 1000:.0f} ms ({self.slowest[1]}); largest {memory} beyond "
                     f"4x the file: {self.worst_excess[0]:,} bytes ({self.worst_excess[1]}); the rule allows "
                     f"{FIXED_ALLOWANCE:,}")
        return "\n".join(lines)


def _call(operation, path):
    if operation == "edit":
        started = json.loads(api.call("job_start", json.dumps({
            "kind": "edit", "count": 1,
            "options": {"edits": [{"op": "set", "path": "PatientID", "value": "FUZZ"}]}})))
        step = json.loads(api.call("job_step", json.dumps({
            "job": started["job"], "item": {"path": path, "name": "fuzzed.dcm"}})))
        finished = json.loads(api.call("job_finish", json.dumps({"job": started["job"]})))
        for part in step.get("chunks", []) + finished.get("chunks", []) + finished.get("outputs", []):
            if "path" in part and os.path.exists(part["path"]):
                os.remove(part["path"])
        return step
    result = json.loads(api.call(operation, json.dumps({"path": path, "name": "fuzzed.dcm"})))
    for output in result.get("outputs", []):
        os.remove(output["path"])
    return result


def _outcome(result):
    """``ok``, ``refused`` (a sentence naming the file), or the error type."""
    if result.get("ok") and result.get("dicom") is False:
        return "refused" if "fuzzed.dcm" in result["reason"] else "unnamed " + result["reason"][:80]
    if result.get("ok") and "error" in result:  # a job step that left the file out
        message = result["error"]["message"]
        return "refused" if result["error"]["file"] == "fuzzed.dcm" else "unnamed " + message[:80]
    if result.get("ok"):
        return "ok"
    error = result["error"]
    if error["type"] in ("InternalError", "MemoryError"):
        return error["type"]
    return "refused" if "fuzzed.dcm" in error["message"] or error["file"] == "fuzzed.dcm" else \
        "unnamed " + error["message"][:80]


def _length_field(element):
    """``(offset, size)`` of an element's length field."""
    if element.header_length == 12:
        return element.value_offset - 4, 4
    return element.value_offset - (4 if element.tag == 0xFFFEE000 or element.vr is None
                                   or element.encoding.implicit_vr else 2), \
        4 if element.tag == 0xFFFEE000 or element.vr is None or element.encoding.implicit_vr else 2


def length_mutants(rng, count):
    """Mutants whose one declared length ends near the end of the file or far past it."""
    seeds = []
    for name in SEEDS:
        data = bundled(name).read_bytes()
        emap = walk(data, name)
        if emap.deflated:
            continue  # offsets are in the inflated copy; deflated files get bombs instead
        seeds.append((name, data, [e for e in emap.elements if e.offset is not None]))
    for _ in range(count):
        name, data, elements = rng.choice(seeds)
        element = rng.choice(elements)
        field, size = _length_field(element)
        if rng.random() < 0.6:
            value = len(data) - element.value_offset + rng.choice(NEAR_END)
        else:
            value = rng.choice(FAR_PAST)
        limit = 0xFFFF if size == 2 else 0xFFFFFFFF
        value = max(0, min(value, limit))
        order = "<" if element.encoding.little_endian else ">"
        mutated = bytearray(data)
        mutated[field:field + size] = struct.pack(order + ("H" if size == 2 else "L"), value)
        yield f"{name} length of {element.path or 'item'} = {value}", bytes(mutated)


def nested_mutant(depth):
    """CT_small.dcm with a private sequence nested ``depth`` deep (undefined lengths), before
    its pixel data."""
    data = bundled("CT_small.dcm").read_bytes()
    at = walk(data, "x").top_level(0x7FE00010).offset
    opening = (struct.pack("<HH2sHL", 0x0029, 0x1010, b"SQ", 0, 0xFFFFFFFF)
               + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF))
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    creator = struct.pack("<HH2sH", 0x0029, 0x0010, b"LO", 4) + b"FUZZ"
    return data[:at] + creator + opening * depth + closing * depth + data[at:]


def duplicated_mutants():
    """Each seed with one element written twice: in place, and again at the end of its group."""
    for name in ("CT_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm", "MR_small_RLE.dcm"):
        data = bundled(name).read_bytes()
        emap = walk(data, name)
        for tag in (0x00100010, 0x00280010, 0x00280008, 0x00080005, 0x300A00B0, 0x00020010):
            element = next((e for e in emap.root.children if e.tag == tag), None)
            if element is None:
                continue
            copy = data[element.offset:element.end]
            yield f"{name} {tag:08X} twice in a row", data[:element.end] + copy + data[element.end:]
            following = next((e for e in emap.root.children if e.offset > element.offset
                              and e.tag >> 16 != tag >> 16), None)
            if following is not None:
                yield (f"{name} {tag:08X} again at the end of its group",
                       data[:following.offset] + copy + data[following.offset:])


def _value_for(vr, rng):
    if vr in ("IS", "DS"):
        return rng.choice([b"2 ", b"0 ", b"-1", b"2147483647", b"1\\2 ", b"1.5 ", b"9" * 14, b"  "])
    if vr in ("US", "SS"):
        return struct.pack("<H", rng.choice([0, 1, 2, 0xFFFF]))
    if vr in ("UL", "SL", "FL", "AT", "OL", "OF"):
        return struct.pack("<L", rng.choice([0, 1, 2, 0x7FFFFFFF, 0xFFFFFFFF]))
    if vr in ("FD", "SV", "UV", "OD", "OV"):
        return rng.choice([struct.pack("<d", 1e300), struct.pack("<d", 2.0), struct.pack("<Q", 3)])
    if vr == "SQ":
        return struct.pack("<HHL", 0xFFFE, 0xE000, 0)
    return rng.choice([b"2 ", b"Doe^John", b"\x00\x01", b"\xff" * 6, b""])


NATIVE_FRAMES_SEED = "CT_small.dcm"
ENCAPSULATED_FRAMES_SEEDS = ("MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm")


def number_of_frames_mutants(rng):
    """(0028,0008) written in every VR DICOM defines, each in a file with native pixel data and in
    one with encapsulated pixel data (the three encapsulated seeds take turns)."""
    seeds = {}
    for name in (NATIVE_FRAMES_SEED, *ENCAPSULATED_FRAMES_SEEDS):
        data = bundled(name).read_bytes()
        emap = walk(data, name)
        existing = emap.top_level(0x00280008)
        following = next(e for e in emap.root.children if e.tag > 0x00280008)
        start = existing.offset if existing else following.offset
        seeds[name] = (data, start, existing.end if existing else following.offset)
    for number, vr in enumerate(sorted(ALL_VRS)):
        for name in (NATIVE_FRAMES_SEED, ENCAPSULATED_FRAMES_SEEDS[number % len(ENCAPSULATED_FRAMES_SEEDS)]):
            data, start, end = seeds[name]
            value = _value_for(vr, rng)
            if len(value) % 2:
                value += b" "
            if vr in LONG_LENGTH_VRS:
                element = struct.pack("<HH2sHL", 0x0028, 0x0008, vr.encode(), 0, len(value)) + value
            else:
                element = struct.pack("<HH2sH", 0x0028, 0x0008, vr.encode(), len(value)) + value
            yield f"{name} NumberOfFrames {vr} {value[:12]!r}", data[:start] + element + data[end:]


def many_values_bomb(cap, before_pixels):
    """image_dfl.dcm with 8 MiB zero-filled values adding up past ``cap``: (FFFC,FFFC) after
    its pixel data, or private OB elements (0029,1000+) before it, deflated again."""
    data = bundled("image_dfl.dcm").read_bytes()
    emap = walk(data, "image_dfl.dcm")
    inflated = bytes(emap.data[emap.dataset_offset:])
    at = walk(data, "x").top_level(0x7FE00010).offset - emap.dataset_offset if before_pixels else len(inflated)
    chunk = 8 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [data[:emap.dataset_offset], compressor.compress(inflated[:at])]
    if before_pixels:
        out.append(compressor.compress(struct.pack("<HH2sH", 0x0029, 0x0010, b"LO", 4) + b"FUZZ"))
    for number in range(cap // chunk + 2):
        tag = (0x0029, 0x1000 + number) if before_pixels else (0xFFFC, 0xFFFC)
        out.append(compressor.compress(struct.pack("<HH2sHL", *tag, b"OB", 0, chunk)))
        out.append(compressed_zeros(compressor, chunk))
    out += [compressor.compress(inflated[at:]), compressor.flush()]
    return b"".join(out)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    # What is loaded once and kept (modules, the IOD table the edit job validates with) is not
    # growth a file causes: load it before measuring.
    folder = tmp_path_factory.mktemp("warm")
    for name in ("CT_small.dcm", "image_dfl.dcm"):
        (folder / name).write_bytes(bundled(name).read_bytes())
        for operation in OPERATIONS:
            _call(operation, str(folder / name))
        api.call("forget", json.dumps({"paths": [str(folder / name)]}))
    found = Outcomes()
    heap_before = wasm_heap_size()
    yield found
    heap = "" if heap_before is None else \
        f"; wasm heap {heap_before >> 20} MiB before the mutants, {wasm_heap_size() >> 20} MiB after"
    print("\n" + found.summary() + heap)


def test_lengths_near_the_end_and_far_past_it(tmp_path, outcomes):
    rng = random.Random(20261206)
    for label, data in length_mutants(rng, FUZZ_N):
        outcomes.run("declared lengths", label, data, tmp_path)
    outcomes.check()


def test_deflate_bombs(tmp_path, outcomes):
    cap = inflation_cap(100_000)
    for before_pixels in (False, True):
        for padding in (cap + 1, 4 * cap):
            path = deflated_bomb(tmp_path, padding, before_pixels=before_pixels)
            data = path.read_bytes()
            path.unlink()
            where = "before" if before_pixels else "after"
            outcomes.run("deflate bombs", f"bomb of {padding:,} bytes {where} the pixels", data, tmp_path)
    # Many values, each under the cap, that add up past it: the cap counts them together.
    for before_pixels in (False, True):
        where = "before" if before_pixels else "after"
        outcomes.run("deflate bombs", f"many values adding up past the cap, {where} the pixels",
                     many_values_bomb(cap, before_pixels), tmp_path)
    outcomes.check()


def test_sequences_nested_ten_thousand_deep(tmp_path, outcomes):
    for depth in (65, 300, 10_000):
        outcomes.run("deep nesting", f"sequences nested {depth} deep", nested_mutant(depth), tmp_path)
    outcomes.check()


def test_a_duplicated_tag(tmp_path, outcomes):
    for label, data in duplicated_mutants():
        outcomes.run("a duplicated tag", label, data, tmp_path)
    outcomes.check()


def test_number_of_frames_in_every_vr(tmp_path, outcomes):
    rng = random.Random(8)
    for label, data in number_of_frames_mutants(rng):
        outcomes.run("NumberOfFrames in every VR", label, data, tmp_path)
    outcomes.check()
    assert outcomes.mutants["NumberOfFrames in every VR"] == len(ALL_VRS) * 2

"""Seeded mutations of real files through de-identification and its residual scan.

Every input must either be de-identified or refused with a DicomStudioError that names the file
(never OverflowError, struct.error, IndexError, ..., which wasm32 and CPython raise differently),
and no input may take over 2 s. The mutations and seeds are the editor's fuzz test's.

The default run does 400 mutations (the same count runs inside Pyodide). The full CPython run:
``DCMSTUDIO_DEID_FUZZ_N=5000 python -m pytest tests/unit/test_deid_fuzz.py``.
"""

import os
import random
import time
import warnings

from test_edit_fuzz import mutate, seed_inputs

from dcmstudio.deid import Deidentifier
from dcmstudio.elements import walk
from dcmstudio.errors import DicomStudioError

FUZZ_N = int(os.environ.get("DCMSTUDIO_DEID_FUZZ_N", "400"))
MAX_SECONDS = 2.0
OPTION_SETS = [
    {},
    {"retain_safe_private": True, "retain_long_modified_dates": True, "clean_descriptors": True,
     "clean_structured_content": True, "clean_graphics": True},
    {"retain_uids": True, "retain_long_full_dates": True, "clean_pixel_data": True,
     "pixel_masks": [{"x": 1, "y": 1, "width": 4, "height": 3}]},
]


def test_mutated_files_only_ever_raise_dicom_studio_errors():
    rng = random.Random(20261123)
    inputs = seed_inputs()
    jobs = [Deidentifier({"secret": "fuzz", **options}) for options in OPTION_SETS]
    failures, slowest, outcomes = [], 0.0, {"ok": 0, "refused": 0}
    for case in range(FUZZ_N):
        data, offsets = inputs[case % len(inputs)]
        mutated = mutate(data, offsets, rng)
        job = jobs[case % len(jobs)]
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pieces, report = job.deidentify(mutated, "fuzzed.dcm", index=case)
                walk(b"".join(pieces), "fuzzed.dcm")  # what it wrote walks cleanly
                assert report["file"] == "fuzzed.dcm"
            outcomes["ok"] += 1
        except DicomStudioError as exc:
            assert exc.file == "fuzzed.dcm", exc
            outcomes["refused"] += 1
        except Exception as exc:  # the failure this test exists to find
            failures.append(f"case {case} (options {case % len(jobs)}): "
                            f"{type(exc).__name__}: {exc}")
        slowest = max(slowest, time.perf_counter() - started)
    assert not failures, f"{len(failures)} uncaught: " + "; ".join(failures[:5])
    assert slowest < MAX_SECONDS, f"slowest input took {slowest:.2f} s"
    assert outcomes["ok"] and outcomes["refused"]
    print(f"{FUZZ_N} mutations: {outcomes}, slowest {slowest * 1000:.0f} ms")

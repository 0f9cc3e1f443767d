"""Seeded mutations of real files through the validator: every input gets a report, never an
exception (wasm32 and CPython raise different errors on broken bytes), and none takes over 2 s.

The mutations are test_edit_fuzz's. 1,000 run by default (inside Pyodide too); more with
``DCMSTUDIO_FUZZ_N=10000 python -m pytest tests/unit/test_validate_fuzz.py``.
"""

import os
import random
import time
import warnings

from test_edit_fuzz import mutate, seed_inputs

from dcmstudio import validate

FUZZ_N = int(os.environ.get("DCMSTUDIO_FUZZ_N", "1000")) // 2
MAX_SECONDS = 2.0


def test_mutated_files_always_get_a_report(tmp_path):
    rng = random.Random(20261206)
    inputs = seed_inputs()
    path = tmp_path / "fuzzed.dcm"
    failures, slowest, unreadable = [], 0.0, 0
    for case in range(FUZZ_N):
        data, offsets = inputs[case % len(inputs)]
        mutated = mutate(data, offsets, rng)
        path.write_bytes(mutated)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                whole = validate.validate_bytes(mutated, "fuzzed.dcm")
                from_file = validate.validate_file(str(path), "fuzzed.dcm")
            assert whole["name"] == from_file["name"] == "fuzzed.dcm"
            assert whole["errors"] == sum(f["severity"] == "error" for f in whole["findings"])
            unreadable += any(f["rule"] == "unreadable" for f in whole["findings"])
        except Exception as exc:  # noqa: BLE001 - the point: nothing may escape
            failures.append((case, f"{type(exc).__name__}: {exc}"))
        slowest = max(slowest, time.perf_counter() - started)
    assert failures == []
    assert slowest < MAX_SECONDS
    assert 0 < unreadable < FUZZ_N  # the mutations reach both outcomes

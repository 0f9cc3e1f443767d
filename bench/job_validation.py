"""What checking each output against its input (issue 16: ``new_errors``) costs the edit, deid and
compress jobs, per file: each job over the same files with the check and with it switched off.

    python bench/job_validation.py IN_DIR [FILES]     (CPython; Job A's CT series: bench-data/D1)
    node bench/job_validation_pyodide.mjs IN_DIR [FILES]   (the page's runtime)
"""

import json
import os
import sys
import tempfile
import time

if __name__ == "__main__" and "pyodide" not in sys.modules:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))

from dcmstudio import jobs, validate  # noqa: E402

# CPU time where the system keeps it (the machine may be shared); Pyodide has only the wall clock.
CLOCK = time.perf_counter if sys.platform == "emscripten" else time.process_time

CLEAN_EDITS = [  # bench/job_a_pyodide.mjs's
    {"op": "set", "path": "PatientName", "value": "Anonymous^Edited"},
    {"op": "set", "path": "PatientID", "value": "ANON-000123-EDITED"},
    {"op": "set", "path": "StudyDescription", "value": "CT CHEST WITH CONTRAST - RESEARCH EDIT (BENCH)"},
    {"op": "delete", "path": "(0009,1002)"},
    {"op": "set", "path": "(0040,0275)[0].(0040,1001)", "value": "RP-EDITED-42"},
]
BREAKING_EDITS = [{"op": "delete", "path": "StudyDate"}]  # every output gains an error: the input is checked too


def run(kind, options, paths, scratch):
    job = jobs.start(kind, options, len(paths), lambda name: os.path.join(scratch, name))
    started = CLOCK()
    for index, path in enumerate(paths, 1):
        jobs.step(job, {"path": path, "name": os.path.basename(path), "index": index,
                        "member": os.path.basename(path)})
    summary = jobs.finish(job)["summary"]
    return (CLOCK() - started) / len(paths) * 1000, summary.get("files_with_new_errors")


def measure(folder, count=None):
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))[:count]
    real = validate.new_errors_in, validate.new_errors
    cases = [("edit", {"edits": CLEAN_EDITS, "container": "members"}, paths),
             ("edit (breaking)", {"edits": BREAKING_EDITS, "container": "members"}, paths),
             ("deid", {}, paths[:60]),
             ("compress", {"transfer_syntax": "1.2.840.10008.1.2.5", "verify": False}, paths[:30])]
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        validate.validate_pieces(open(paths[0], "rb").read(), "warm-up")
        for label, options, files in cases:
            kind = label.split()[0]
            timings = {}
            for checked in (True, False) * 3:
                if not checked:
                    validate.new_errors_in = lambda *a: []
                    validate.new_errors = lambda *a: []
                ms, flagged = run(kind, options, files, scratch)
                validate.new_errors_in, validate.new_errors = real
                timings.setdefault(checked, []).append((ms, flagged))
            with_check = min(t for t, _ in timings[True])
            without = min(t for t, _ in timings[False])
            results[label] = {"files": len(files), "ms_per_file_checked": round(with_check, 2),
                              "ms_per_file_unchecked": round(without, 2),
                              "check_ms_per_file": round(with_check - without, 2),
                              "files_with_new_errors": timings[True][0][1]}
    return results


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None), indent=1))

"""The ``dcmstudio`` command beside the command-line tools people script, whole process each.

    python bench/cli.py [DATA_DIR] [--rounds 3] [--jobs 2]

DATA_DIR defaults to Job A's 300-file CT series (~/.cache/dcmstudio/bench-data/D1, made by
shared/peers/gen_data.py when absent). Timed, interleaved over the rounds, median reported, each a
whole process from start to exit (Python's start-up and imports included):

- de-identification: ``dcmstudio deid --jobs N`` (a secret, a folder output) vs dicognito (a venv
  made by bench/deid.py's set-up) vs gdcmanon (Debian libgdcm-tools; its Basic Profile encrypts the
  originals for a throwaway certificate);
- edit: Job A's five edits with ``dcmstudio edit --jobs N`` vs DCMTK dcmodify (shared/peers'
  a1_dcmodify.sh: a copy, then dcmodify in place, as a script would do it), and the bare copy.

Targets (issue 15): de-identification at most gdcmanon's time, edit at most dcmodify's.
Results: printed, and written to bench/results/cli.json.
"""

import argparse
import importlib.util
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
_spec = importlib.util.spec_from_file_location("bench_deid", ROOT / "bench" / "deid.py")
bench_deid = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_deid)

# Job A's edits (shared/peers/edits.py) in the page's edit-list form.
JOB_A_EDITS = [{"op": "set", "path": "PatientName", "value": "Anonymous^Edited"},
               {"op": "set", "path": "PatientID", "value": "ANON-000123-EDITED"},
               {"op": "set", "path": "StudyDescription", "value": "CT CHEST WITH CONTRAST - RESEARCH EDIT (BENCH)"},
               {"op": "delete", "path": "(0009,1002)"},
               {"op": "set", "path": "RequestAttributesSequence[0].RequestedProcedureID", "value": "RP-EDITED-42"}]


def timed(command, **kwargs):
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, **kwargs)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=pathlib.Path, default=bench_deid.DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    data = bench_deid.ensure_data(args.data)
    dicognito, dicognito_version = bench_deid.ensure_dicognito()
    for tool in ("gdcmanon", "dcmodify", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (Debian: libgdcm-tools, dcmtk, openssl)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "py")}
    command = [sys.executable, "-m", "dcmstudio.cli"]
    with tempfile.TemporaryDirectory(prefix="dcmstudio-bench-cli-") as work:
        work = pathlib.Path(work)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=bench",
                        "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"), "-days", "1"],
                       check=True, capture_output=True)
        (work / "edits.json").write_text(json.dumps({"dcmstudio_edits": 1, "edits": JOB_A_EDITS}))
        runs = {
            f"dcmstudio deid --jobs {args.jobs}": lambda out: timed(
                [*command, "deid", str(data), "-o", str(out), "--secret", bench_deid.SECRET, "-q",
                 "--jobs", str(args.jobs), "--report", os.devnull, "--mapping", str(out) + "-mapping"], env=env),
            "dicognito": lambda out: timed([str(dicognito), "-m", "dicognito", "--quiet", "-o", str(out),
                                            str(data)]),
            "gdcmanon": lambda out: timed(["gdcmanon", "-e", "-c", str(work / "cert.pem"), "-i", str(data),
                                           "-o", str(out)]),
            f"dcmstudio edit --jobs {args.jobs}": lambda out: timed(
                [*command, "edit", str(data), "-o", str(out), "--edits", str(work / "edits.json"), "-q",
                 "--jobs", str(args.jobs), "--report", os.devnull], env=env),
            "dcmodify": lambda out: timed(["sh", str(PEERS / "a1_dcmodify.sh"), str(data), str(out)]),
            "copy (floor)": lambda out: timed(["sh", str(PEERS / "cp_only.sh"), str(data), str(out)]),
        }
        times = {name: [] for name in runs}
        for round_ in range(args.rounds):
            for name, run in runs.items():
                out = work / f"out-{round_}-{len(times[name])}-{name.split()[0]}-{name.split()[-1]}"
                times[name].append(run(out))
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(str(out) + "-mapping", ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    deid, edit = f"dcmstudio deid --jobs {args.jobs}", f"dcmstudio edit --jobs {args.jobs}"
    result = {
        "files": len(list(data.iterdir())),
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "seconds_median": medians,
        "seconds_all": times,
        "ratios": {"deid / gdcmanon": medians[deid] / medians["gdcmanon"],
                   "deid / dicognito": medians[deid] / medians["dicognito"],
                   "edit / dcmodify": medians[edit] / medians["dcmodify"]},
        "versions": {"dicognito": dicognito_version},
    }
    print(json.dumps(result, indent=1))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "cli.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

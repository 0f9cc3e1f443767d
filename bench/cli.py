"""The ``dcmstudio`` command beside the command-line tools people script, whole process each.

    python bench/cli.py [DATA_DIR] [--rounds 3] [--jobs 2] [--files 2860] [--skip dicognito] [--pool-too]
                        [--baseline PY_DIR]

Run it with the test venv's Python (it has pydicom): ``~/.cache/dcmstudio/test-venv/bin/python``.
DATA_DIR defaults to Job A's 300-file CT series (~/.cache/dcmstudio/bench-data/D1, made by
shared/peers/gen_data.py when absent). ``--files N`` (more than DATA_DIR holds) times a folder of N
hard links to DATA_DIR's files under distinct names, ``im00000.dcm`` on (made once, kept beside
DATA_DIR as ``D1-N``; no extra space): 2,860 files is 1.5 GB, where start-up is amortised.

Timed, interleaved over the rounds, median reported, each a whole process from start to exit
(Python's start-up and imports included):

- de-identification: ``dcmstudio deid --jobs N`` (a secret, a folder output) vs dicognito (a venv
  made by bench/deid.py's set-up) vs gdcmanon (Debian libgdcm-tools; its Basic Profile encrypts the
  originals for a throwaway certificate);
- edit: Job A's five edits with ``dcmstudio edit --jobs N`` vs DCMTK dcmodify (shared/peers'
  a1_dcmodify.sh: a copy, then dcmodify in place, as a script would do it), and the bare copy;
- the floors under the command: the interpreter alone (``python -c pass``), the interpreter and
  ``import pydicom`` (which imports numpy and pydicom's pixel decoders), ``dcmstudio --help`` (the
  command without pydicom) and the interpreter with every module the per-file code imports;
- with ``--pool-too``, the command again with ``--pool always`` (worker processes started after the
  first file whatever the count: by default they start only when they pay, see ``--pool``);
- with ``--baseline PY_DIR``, the command from another copy of ``py/`` too, e.g. an earlier
  revision's: ``git archive REV py | tar -x -C /tmp/rev`` then ``--baseline /tmp/rev/py``.

The command runs as ``pip install`` leaves it: its modules compiled to bytecode first (where
PYTHONDONTWRITEBYTECODE is set, as on the project's machines, Python would otherwise compile
dcmstudio's 30-odd modules from source at every start, ~0.13 s). Each command run writes its
report to a file, whose summary says how many worker processes it started.

Each run's CPU seconds (user and system, its own and its children's) are kept too: on a machine
busy with other work, elapsed times favour runs with more processes (they get more of its share).

Targets (issue 15): de-identification at most gdcmanon's time, edit at most dcmodify's.
Results: printed, and written to bench/results/cli.json (cli-N.json with --files N).
"""

import argparse
import compileall
import importlib.util
import json
import os
import pathlib
import resource
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


_cpu = {}  # the CPU seconds (user + system, the process and all it waited for) of the last timed run


def timed(command, **kwargs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, **kwargs)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _cpu["last"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def linked_folder(data, count):
    """A folder of ``count`` hard links to ``data``'s files (in turn), ``im00000.dcm`` on."""
    sources = sorted(p for p in data.iterdir() if p.is_file())
    folder = data.parent / f"{data.name}-{count}"
    folder.mkdir(exist_ok=True)
    for i in range(count):
        path = folder / f"im{i:05d}.dcm"
        if not path.exists():
            os.link(sources[i % len(sources)], path)
    return folder


def worker_processes(report):
    """How many worker processes the command started (its report's summary)."""
    with open(report, encoding="utf-8") as f:
        return json.loads(f.readlines()[-1])["summary"].get("worker_processes")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=pathlib.Path, default=bench_deid.DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--files", type=int, help="time a folder of this many hard links to DATA_DIR's files")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME", help="leave out a run (e.g. dicognito)")
    parser.add_argument("--pool-too", action="store_true", help="the command with --pool always too")
    parser.add_argument("--baseline", type=pathlib.Path, metavar="PY_DIR",
                        help="also time the command from another copy of py/ (e.g. `git archive REV py`)")
    args = parser.parse_args()
    data = bench_deid.ensure_data(args.data)
    if args.files and args.files > len(list(data.iterdir())):
        data = linked_folder(data, args.files)
    dicognito, dicognito_version = bench_deid.ensure_dicognito()
    for tool in ("gdcmanon", "dcmodify", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (Debian: libgdcm-tools, dcmtk, openssl)")
    for py in (ROOT / "py", args.baseline):
        if py is not None:
            compileall.compile_dir(str(py / "dcmstudio"), quiet=1)  # as pip install does
    env = {**os.environ, "PYTHONPATH": str(ROOT / "py")}
    command = [sys.executable, "-m", "dcmstudio.cli"]
    pools = {}  # run name → worker processes started, per round
    with tempfile.TemporaryDirectory(prefix="dcmstudio-bench-cli-") as work:
        work = pathlib.Path(work)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=bench",
                        "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"), "-days", "1"],
                       check=True, capture_output=True)
        (work / "edits.json").write_text(json.dumps({"dcmstudio_edits": 1, "edits": JOB_A_EDITS}))

        def ours(name, subcommand, *extra, py=ROOT / "py"):
            def run(out):
                report = str(out) + "-report.jsonl"
                elapsed = timed([*command, subcommand, str(data), "-o", str(out), "-q", "--jobs", str(args.jobs),
                                 "--report", report, *extra], env={**env, "PYTHONPATH": str(py)})
                pools.setdefault(name, []).append(worker_processes(report))
                os.remove(report)
                return elapsed
            return run

        deid_options = ["--secret", bench_deid.SECRET]
        runs = {
            "python -c pass": lambda out: timed([sys.executable, "-c", "pass"]),
            "python -c 'import pydicom'": lambda out: timed([sys.executable, "-c", "import pydicom"]),
            "dcmstudio --help": lambda out: timed([*command, "--help"], env=env),
            "python -c 'import dcmstudio.cli.tasks'": lambda out: timed(
                [sys.executable, "-c", "import dcmstudio.cli, dcmstudio.cli.tasks"], env=env),
            f"dcmstudio deid --jobs {args.jobs}": lambda out: ours(
                f"dcmstudio deid --jobs {args.jobs}", "deid", *deid_options, "--mapping", str(out) + "-mapping")(out),
            "dicognito": lambda out: timed([str(dicognito), "-m", "dicognito", "--quiet", "-o", str(out),
                                            str(data)]),
            "gdcmanon": lambda out: timed(["gdcmanon", "-e", "-c", str(work / "cert.pem"), "-i", str(data),
                                           "-o", str(out)]),
            f"dcmstudio edit --jobs {args.jobs}": ours(f"dcmstudio edit --jobs {args.jobs}", "edit",
                                                       "--edits", str(work / "edits.json")),
            "dcmodify": lambda out: timed(["sh", str(PEERS / "a1_dcmodify.sh"), str(data), str(out)]),
            "copy (floor)": lambda out: timed(["sh", str(PEERS / "cp_only.sh"), str(data), str(out)]),
        }
        if args.pool_too:
            runs[f"dcmstudio deid --jobs {args.jobs} --pool always"] = lambda out: ours(
                f"dcmstudio deid --jobs {args.jobs} --pool always", "deid", *deid_options, "--mapping",
                str(out) + "-mapping", "--pool", "always")(out)
            runs[f"dcmstudio edit --jobs {args.jobs} --pool always"] = ours(
                f"dcmstudio edit --jobs {args.jobs} --pool always", "edit", "--edits", str(work / "edits.json"),
                "--pool", "always")
        if args.baseline:
            runs[f"baseline deid --jobs {args.jobs}"] = lambda out: ours(
                f"baseline deid --jobs {args.jobs}", "deid", *deid_options, "--mapping", str(out) + "-mapping",
                py=args.baseline)(out)
            runs[f"baseline edit --jobs {args.jobs}"] = ours(f"baseline edit --jobs {args.jobs}", "edit", "--edits",
                                                             str(work / "edits.json"), py=args.baseline)
        runs = {name: run for name, run in runs.items() if not any(skip in name for skip in args.skip)}
        times = {name: [] for name in runs}
        cpu = {name: [] for name in runs}
        for round_ in range(args.rounds):
            for name, run in runs.items():
                out = work / f"out-{round_}-{len(times[name])}"
                times[name].append(run(out))
                cpu[name].append(_cpu["last"])
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(str(out) + "-mapping", ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    deid, edit = f"dcmstudio deid --jobs {args.jobs}", f"dcmstudio edit --jobs {args.jobs}"
    ratios = {"deid / gdcmanon": medians[deid] / medians["gdcmanon"],
              "edit / dcmodify": medians[edit] / medians["dcmodify"],
              "python + import pydicom / gdcmanon": medians["python -c 'import pydicom'"] / medians["gdcmanon"],
              "python + import pydicom / dcmodify": medians["python -c 'import pydicom'"] / medians["dcmodify"]}
    if "dicognito" in medians:
        ratios["deid / dicognito"] = medians[deid] / medians["dicognito"]
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    ratios["cpu: deid / gdcmanon"] = cpu_medians[deid] / cpu_medians["gdcmanon"]
    ratios["cpu: edit / dcmodify"] = cpu_medians[edit] / cpu_medians["dcmodify"]
    if args.baseline:
        ratios["deid / baseline deid"] = medians[deid] / medians[f"baseline deid --jobs {args.jobs}"]
        ratios["edit / baseline edit"] = medians[edit] / medians[f"baseline edit --jobs {args.jobs}"]
    result = {
        "files": len(list(data.iterdir())),
        "bytes": sum(p.stat().st_size for p in data.iterdir()),
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "seconds_median": medians,
        "seconds_all": times,
        # a busy machine shares its cores among everyone's processes: two get more than one, so
        # CPU seconds compare the work each run does better than elapsed time does then
        "cpu_seconds_median": cpu_medians,
        "worker_processes_started": pools,
        "ratios": ratios,
        "versions": {"dicognito": dicognito_version},
    }
    print(json.dumps(result, indent=1))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / (f"cli-{args.files}.json" if args.files else "cli.json")).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

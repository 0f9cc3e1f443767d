"""De-identify a 300-file CT series in the page's runtime, beside dicognito and gdcmanon.

    python3 build.py                                   # dist/ holds the current dcmstudio
    python bench/deid.py [DATA_DIR] [--rounds 3]
    python bench/deid.py [DATA_DIR] --baseline PY_DIR   # same outputs as another copy of py/? (no timing)

DATA_DIR defaults to ~/.cache/dcmstudio/bench-data/D1 (made by shared/peers/gen_data.py when
absent). Needs Node 20 (the page's Pyodide, from dist/), dicognito in a venv under
~/.cache/dcmstudio/deid-peers-venv (created with pip when missing), gdcmanon (Debian
libgdcm-tools) and openssl (gdcmanon's Basic Profile encrypts the original values for a
certificate: a throwaway one is made).

Timed, interleaved over the rounds, median reported:
- dcmstudio in Pyodide once started (as job_a_pyodide.mjs: the files already in MEMFS, the deid
  task over every file and its streamed ZIP moved out of MEMFS), and its start-up apart;
- the page's runtime with N workers (bench/deid_pool.mjs: worker_threads, each with its own
  Pyodide, the files shared out as the page does: key derived once, pooled first pass, merge,
  pooled de-identification, one ZIP and one mapping), for each N of --workers, into a ZIP (in
  memory, as the page's download is made; and with its writing to disk, as gdcmanon's time has
  its files') and into a folder (the page's folder save: each file written as it comes,
  unchanged pixel data referenced, not read or copied through a worker, no CRC); the
  outputs of every N and both targets are compared byte for byte (member bytes = file bytes, the
  same mapping and report); each with cold workers (their first de-identification: imports, tables,
  code run for the first time) and with workers warmed up before the clock (the deid_prepare task
  on a made-up series, as the page does when the person comes to the De-identify workbench and
  while they pick the target; a ZIP download has no picker: its run is warm only if the person
  came to the workbench before);
- dcmstudio in CPython (the same library in-process), for reference;
- dicognito and gdcmanon, whole process.
Each output is deleted as soon as its run is timed (each tool then writes into the same state of
the kernel's page cache); one more, untimed round keeps them. Then every tool's output is searched
by dcmstudio's residual scan for the originals' identifying values, and checked for what it kept: private elements, dates, UIDs, (0012,0062).
Results: printed, and written to bench/results/deid.json.
"""

import argparse
import io
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
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "py"))

import pydicom  # noqa: E402

from dcmstudio import jobs  # noqa: E402
from dcmstudio.deid import Deidentifier  # noqa: E402

CACHE = pathlib.Path(os.environ.get("DCMSTUDIO_CACHE", pathlib.Path.home() / ".cache" / "dcmstudio"))
DEFAULT_DATA = CACHE / "bench-data" / "D1"
PEERS = ROOT.parent / "shared" / "peers"
DICOGNITO_VENV = CACHE / "deid-peers-venv"
SECRET = "bench secret"

# The page runtime's two output targets: bench/deid_pool.mjs's container for each.
TARGETS = {"zip": "members", "folder": "files"}
# How a pooled run's name says whether its workers were warmed up before the clock.
WARMED = {"cold": "", "warm": ", warmed up"}


def pool_name(workers, target, start):
    return f"dcmstudio page runtime, {workers} worker(s), {target}{WARMED[start]}"

NODE_JOB = """
import fs from "node:fs";
import path from "node:path";
import { startRuntime } from "%(runtime)s";
const [inDir, outZip] = process.argv.slice(2);
const started = performance.now();
const { pyodide, call, take } = await startRuntime();
// as the page's worker does once Python is ready (static/wb-deid.js): deid imported, its table read
call("deid_profile_info", {});
const startup = (performance.now() - started) / 1000;
const names = fs.readdirSync(inDir).sort();
for (const name of names) {
  const data = fs.readFileSync(path.join(inDir, name));
  pyodide.FS.writeFile(`/in/${name}`, new Uint8Array(data.buffer, data.byteOffset, data.length));
}
const t0 = performance.now();
const items = names.map((name) => ({ path: `/in/${name}`, name }));
const { job } = call("job_start", { kind: "deid", options: %(options)s, count: 2 * names.length });
const keySeconds = (performance.now() - t0) / 1000;  // mostly the secret's key stretching
// as the page does: a first pass learns every file's identifiers (headers only)
for (const item of items) call("job_step", { job, item: { ...item, learn: true } });
const learnSeconds = (performance.now() - t0) / 1000 - keySeconds;
const zipParts = [], others = {};
let hits = 0;
for (const name of names) {
  const result = call("job_step", { job, item: items[names.indexOf(name)] });
  hits += result.report ? result.report.residual.length : 0;
  zipParts.push(...take(result));
}
const final = call("job_finish", { job });
for (const part of final.chunks) { zipParts.push(pyodide.FS.readFile(part.path)); pyodide.FS.unlink(part.path); }
for (const part of final.outputs) { others[part.name] = pyodide.FS.readFile(part.path).length; pyodide.FS.unlink(part.path); }
const seconds = (performance.now() - t0) / 1000;
fs.writeFileSync(outZip, Buffer.concat(zipParts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length))));
console.log(JSON.stringify({ seconds, startup, keySeconds, learnSeconds, files: names.length, hits, summary: final.summary, outputs: others }));
"""


def ensure_data(data_dir):
    if data_dir.is_dir() and any(data_dir.iterdir()):
        return data_dir
    peers_python = pathlib.Path.home() / ".cache" / "dcmstudio-peers" / "venv" / "bin" / "python"
    target = data_dir.parent
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(peers_python), str(PEERS / "gen_data.py"), str(target)], check=True)
    return data_dir


def ensure_dicognito():
    python = DICOGNITO_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DICOGNITO_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "dicognito"], check=True)
    version = subprocess.run([str(python), "-m", "pip", "show", "dicognito"], capture_output=True,
                             text=True).stdout.split("Version: ")[1].split()[0]
    return python, version


def run_pyodide(data_dir, out_zip, script):
    result = subprocess.run(["node", str(script), str(data_dir), str(out_zip)], check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_pool(data_dir, out, workers, container="members", start="cold"):
    """bench/deid_pool.mjs: the page's runtime with ``workers`` workers, into a ZIP
    (``container`` "members") or a folder ("files"), ``start`` "cold" or "warm"; its timings."""
    options = json.dumps({"secret": SECRET, "zip_name": "deid.zip"})
    result = subprocess.run(["node", str(ROOT / "bench" / "deid_pool.mjs"), str(data_dir), str(out),
                             str(workers), options, container, start], check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_cpython(data_dir, out_dir):
    """The page's per-file function in-process (first pass, then each file read, de-identified,
    checked and written), for reference."""
    job = Deidentifier({"secret": SECRET})
    started = time.perf_counter()
    paths = sorted(data_dir.iterdir())
    learned = {path for path in paths if job.learn_file(str(path), path.name)}  # the first pass
    for index, path in enumerate(paths, start=1):
        pieces, report, _ = jobs.deidentify_item(job, {"path": str(path), "name": path.name}, index,
                                                 path in learned)
        with open(out_dir / f"{index:05d}.dcm", "wb") as f:
            f.writelines(pieces)
        assert report["file"] == path.name
    return time.perf_counter() - started


_cpu = {}  # CPU seconds (user + system, the process and its children) of the last timed run


def timed(command, **kwargs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, **kwargs)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _cpu["last"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed


def left_behind(data_dir, out_files):
    """What a tool's outputs still hold, judged by dcmstudio's residual scan and by pydicom."""
    scanner = Deidentifier({})
    originals = sorted(data_dir.iterdir())
    for path in originals:
        scanner.learn_identifiers(path.read_bytes(), path.name)
    source = pydicom.dcmread(originals[0], stop_before_pixels=True)
    hits_by = {}
    files_with_hits = 0
    private, same_dates, same_uids, marked, names = 0, 0, 0, 0, set()
    for relative, data in out_files:
        hits = scanner.residual_scan(data, relative, relative)
        files_with_hits += bool(hits)
        for hit in hits:
            key = f"{hit['kind']} in {hit['path'] if hit['where'] == 'value' else 'file name'}"
            hits_by[key] = hits_by.get(key, 0) + 1
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        private += sum(1 for e in ds.iterall() if e.tag.is_private)
        same_dates += ds.get("StudyDate", "") == source.get("StudyDate")
        same_uids += ds.get("StudyInstanceUID") == source.StudyInstanceUID
        marked += ds.get("PatientIdentityRemoved") == "YES"
        names.add(str(ds.get("PatientName", "")))
    count = len(out_files)
    return {
        "files": count,
        "files_with_residual_hits": files_with_hits,
        "residual_hits": dict(sorted(hits_by.items(), key=lambda kv: -kv[1])),
        "private_elements_kept": private,
        "files_with_original_study_date": same_dates,
        "files_with_original_study_uid": same_uids,
        "files_marked_patient_identity_removed": marked,
        "patient_names": sorted(names),
    }


def make_probe(data_dir, folder, count=20):
    """The first files of the series with identifying values planted where profiles differ: a
    private element, an element the table removes, a nested one, one the table does not list."""
    folder.mkdir()
    for path in sorted(data_dir.iterdir())[:count]:
        ds = pydicom.dcmread(path)
        who = f"{ds.PatientName} {ds.PatientID}"
        block = ds.private_block(0x0011, "PROBE 1.0", create=True)
        block.add_new(0x10, "LO", who)
        ds.IdentifyingComments = f"scanned for {who}"
        ds.OtherPatientIDsSequence = [pydicom.Dataset()]
        ds.OtherPatientIDsSequence[0].PatientID = f"{ds.PatientID}-OLD"
        ds.ManufacturerModelName = f"Synth 9000 (owner {ds.PatientName})"  # not in the table
        ds.save_as(folder / path.name)
    return folder


def run_tools_once(data_dir, out, dicognito, certificate, script):
    """Each tool over ``data_dir`` once, untimed; returns {tool: [(name, bytes)]}."""
    out.mkdir()
    run_pyodide(data_dir, out / "ours.zip", script)
    subprocess.run([str(dicognito), "-m", "dicognito", "--quiet", "-o", str(out / "dicognito"),
                    str(data_dir)], check=True, capture_output=True)
    subprocess.run(["gdcmanon", "-e", "-c", str(certificate), "-i", str(data_dir), "-o",
                    str(out / "gdcmanon")], check=True, capture_output=True)
    return {"dcmstudio": read_zip(out / "ours.zip"),
            "dicognito": read_folder(out / "dicognito"),
            "gdcmanon": read_folder(out / "gdcmanon")}


def read_folder(folder):
    return [(str(p.relative_to(folder)), p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()]


def read_zip(path):
    with zipfile.ZipFile(path) as archive:
        return [(name, archive.read(name)) for name in sorted(archive.namelist())]


# Option sets the baseline comparison runs (Basic first).
OPTION_SETS = [{}, {"retain_long_modified_dates": True, "clean_descriptors": True},
               {"retain_uids": True, "retain_device_identity": True},
               {"keep_names": True, "retain_patient_characteristics": True}]

DIGEST_JOB = """
import hashlib, json, pathlib, sys, tempfile
from dcmstudio import archive, jobs
from dcmstudio.deid import derive_key
data, options, container = pathlib.Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
plain = lambda value: json.loads(json.dumps(value))
scratch = pathlib.Path(tempfile.mkdtemp())
if sys.argv[4] == "warm":  # the worker warmed up first (see jobs.prepare_deid): the same outputs
    jobs.prepare_deid(tempfile.mkdtemp())
options = {"secret": "bench secret", "key": derive_key("bench secret")[0].hex(), **options}
items = [{"path": str(p), "name": p.name, "index": i} for i, p in enumerate(sorted(data.iterdir()), start=1)]
job = jobs.start("deid_learn", plain(options), len(items), lambda name: str(scratch / ("l-" + name)))
steps = [plain(jobs.step(job, item)) for item in items]
shares = [plain(jobs.finish(job))]
# a copy of py/ from before the shares folded the first pass once and kept their mapping to the end
folded = hasattr(jobs, "fold_learned")
learned = jobs.fold_learned(steps, shares) if folded else {"files": steps, "shares": shares}
names = archive.member_names([s["output"] or item["name"] for s, item in zip(steps, items)])
items = [{**item, "member": n, "learned": s["learned"]} for item, n, s in zip(items, names, steps)]
digest, merges = hashlib.sha256(), []
job = jobs.start("deid_share", plain({**options, "learned": learned, "container": container}), len(items),
                 lambda name: str(scratch / ("s-" + name)))
for item in items:
    step = plain(jobs.step(job, item))
    output, member = archive.read_parts(step.pop("chunks", [])), step.pop("member", None)
    digest.update(output[len(output) - member["size"]:] if member else b"")  # a ZIP member without its header
    merges.append(step.pop("merge", None))
    digest.update(json.dumps(step, sort_keys=True).encode())
if folded:
    merges = [plain(jobs.finish(job))["mapping"]]
merged = jobs.merge_deid_shares(options, plain(learned), merges, str(scratch / "map"))
for output in merged["outputs"]:
    digest.update(pathlib.Path(output["path"]).read_bytes())
print(digest.hexdigest())
"""


def outputs_digest(py_dir, data_dir, options, container, start="cold"):
    """sha256 of every output file, step answer (report, line) and mapping file of the
    page's pooled deid over ``data_dir`` in CPython into ``container`` ("members": a ZIP's,
    "files": a folder's), with the package in ``py_dir``; ``start`` "warm": after the worker's
    warm-up."""
    result = subprocess.run([sys.executable, "-c", DIGEST_JOB, str(data_dir), json.dumps(options), container, start],
                            check=True,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(py_dir)})
    return result.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=pathlib.Path, metavar="PY_DIR",
                        help="only check that another copy of py/ (e.g. an earlier revision's: `git archive REV "
                        "py | tar -x -C /tmp/rev`, then /tmp/rev/py) gives the same outputs, step answers and "
                        "mapping on the series, under Basic and a few option sets")
    parser.add_argument("--workers", default="1,2",
                        help="the page runtime's pool sizes to time, comma-separated (default 1,2)")
    parser.add_argument("--starts", default="cold,warm",
                        help="the page runtime's workers cold, warmed up before the clock, or both (default)")
    args = parser.parse_args()
    pools = [int(n) for n in args.workers.split(",") if n]
    starts = [start for start in args.starts.split(",") if start]
    data_dir = ensure_data(args.data)
    if args.baseline:
        same = True
        for options in OPTION_SETS:
            # a folder's files are the ZIP's members, whichever copy writes them
            digests = {(py, container, "cold"): outputs_digest(py, data_dir, options, container)
                       for py in (ROOT / "py", args.baseline) for container in ("members", "files")}
            digests[ROOT / "py", "members", "warm"] = outputs_digest(ROOT / "py", data_dir, options, "members", "warm")
            agree = len(set(digests.values())) == 1
            same &= agree
            print(f"{'same' if agree else 'DIFFERENT'}: {json.dumps(options)}  "
                  + "  ".join(f"{'ours' if py == ROOT / 'py' else 'baseline'} {container}{WARMED[start]} {digest[:16]}"
                              for (py, container, start), digest in digests.items()))
        sys.exit(0 if same else 1)
    dicognito, dicognito_version = ensure_dicognito()
    for tool in ("node", "gdcmanon", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (see the docstring)")
    gdcm_version = subprocess.run(["gdcmanon", "--version"], capture_output=True,
                                  text=True).stdout.strip()
    work = pathlib.Path(tempfile.mkdtemp(prefix="deid-bench-"))
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=dcmstudio-bench", "-keyout", str(work / "key.pem"),
                        "-out", str(work / "cert.pem")], check=True, capture_output=True)
        script = work / "deid_job.mjs"
        script.write_text(NODE_JOB % {
            "runtime": (ROOT / "bench" / "pyodide_runtime.mjs").as_posix(),
            "options": json.dumps({"secret": SECRET, "zip_name": "deid.zip"})})
        times = {"dcmstudio (Pyodide, started)": [], "  of which job start (key from secret)": [],
                 "dcmstudio start-up (Pyodide)": [],
                 "dcmstudio (CPython)": [], "dicognito": [], "gdcmanon": []}
        for n in pools:
            for start in starts:
                for target in TARGETS:
                    times[pool_name(n, target, start)] = []
                    if target == "zip":  # the folder's time includes its writes; the ZIP's is in memory
                        times[pool_name(n, "zip written to disk", start)] = []
                    for phase in ("key", "learn", "deid", "finish"):
                        times[f"  {n} worker(s), {target}{WARMED[start]}: {phase}"] = []
        pyodide_result = None
        # CPU seconds (every thread and child process of the run; the page runtime's from the job
        # start to its end, as its elapsed time): steadier than elapsed time on a busy machine
        cpu = {}
        load = []  # the 1-minute load average at each round's start
        # One more round than timed: its outputs are kept for the comparisons below, its times
        # dropped. In the timed rounds each tool's output goes as soon as it is timed: left on disk,
        # the GB a round writes made the kernel's page-cache writes slower for the tools that came
        # later (gdcmanon, last, took 0.5-0.75 s so, 0.20-0.25 s alone).
        for round_ in range(args.rounds + 1):
            if round_ < args.rounds:
                load.append(os.getloadavg()[0])
            pooled_runs = [f"pool{n}-{target}-{start}" for n in pools for start in starts for target in TARGETS]
            for tool in ("pyodide", *pooled_runs, "cpython", "dicognito", "gdcmanon"):
                out = work / f"{tool}-{round_}"
                # The run before wrote hundreds of MB: each tool starts once they are on disk, or
                # the kernel writes them back during the next tool's run.
                os.sync()
                if tool.startswith("pool"):
                    n, target, start = tool[4:].split("-")
                    pooled = run_pool(data_dir, out, int(n), TARGETS[target], start)
                    times[pool_name(n, target, start)].append(pooled["seconds"])
                    if target == "zip":
                        times[pool_name(n, "zip written to disk", start)].append(
                            pooled["seconds"] + pooled["zipWriteSeconds"])
                    cpu.setdefault(pool_name(n, target, start), []).append(pooled["cpuSeconds"])
                    for phase in ("key", "learn", "deid", "finish"):
                        times[f"  {n} worker(s), {target}{WARMED[start]}: {phase}"].append(pooled[f"{phase}Seconds"])
                elif tool == "pyodide":
                    pyodide_result = run_pyodide(data_dir, work / f"ours-{round_}.zip", script)
                    times["dcmstudio (Pyodide, started)"].append(pyodide_result["seconds"])
                    times["  of which job start (key from secret)"].append(
                        pyodide_result["keySeconds"])
                    times["dcmstudio start-up (Pyodide)"].append(pyodide_result["startup"])
                elif tool == "cpython":
                    out.mkdir()
                    times["dcmstudio (CPython)"].append(run_cpython(data_dir, out))
                elif tool == "dicognito":
                    times["dicognito"].append(timed([str(dicognito), "-m", "dicognito", "--quiet",
                                                     "-o", str(out), str(data_dir)]))
                    cpu.setdefault("dicognito", []).append(_cpu["last"])
                else:
                    times["gdcmanon"].append(timed(["gdcmanon", "-e", "-c", str(work / "cert.pem"),
                                                    "-i", str(data_dir), "-o", str(out)]))
                    cpu.setdefault("gdcmanon", []).append(_cpu["last"])
                if round_ < args.rounds:
                    for stale in (out, work / f"ours-{round_}.zip") if tool == "pyodide" else (out,):
                        shutil.rmtree(stale, ignore_errors=True)
                        stale.unlink(missing_ok=True)
                        pathlib.Path(f"{stale}.mapping.json").unlink(missing_ok=True)
        for values in [*times.values(), *cpu.values()]:
            del values[args.rounds:]  # the untimed round's
        medians = {tool: statistics.median(values) for tool, values in times.items()}
        cpu_medians = {tool: statistics.median(values) for tool, values in cpu.items()}
        ours = medians["dcmstudio (Pyodide, started)"]
        last = args.rounds
        # every pool size gives the same bytes: the ZIP, the mapping's files and the report; and
        # the folder the same files as the ZIP's members
        pooled_outputs = {(n, start): ((work / f"pool{n}-zip-{start}-{last}").read_bytes(),
                                       (work / f"pool{n}-zip-{start}-{last}.mapping.json").read_bytes())
                          for n in pools for start in starts}
        folder_outputs = {(n, start): (read_folder(work / f"pool{n}-folder-{start}-{last}"),
                                       (work / f"pool{n}-folder-{start}-{last}.mapping.json").read_bytes())
                          for n in pools for start in starts}
        zip_members = read_zip(work / f"pool{pools[0]}-zip-{starts[0]}-{last}")
        outputs = {
            "dcmstudio": read_zip(work / f"ours-{last}.zip"),
            "dicognito": read_folder(work / f"dicognito-{last}"),
            "gdcmanon": read_folder(work / f"gdcmanon-{last}"),
        }
        results = {
            "data": str(data_dir),
            "files": len(list(data_dir.iterdir())),
            "bytes": sum(p.stat().st_size for p in data_dir.iterdir()),
            "versions": {"dicognito": dicognito_version, "gdcmanon": gdcm_version},
            "rounds": args.rounds,
            "seconds_median": medians,
            "seconds_all": times,
            "ratio_to_dcmstudio_pyodide": {tool: seconds / ours for tool, seconds in medians.items()},
            "ratio_to_gdcmanon": {tool: seconds / medians["gdcmanon"] for tool, seconds in medians.items()},
            "cpu_seconds_median": cpu_medians,
            "cpu_ratio_to_gdcmanon": {tool: seconds / cpu_medians["gdcmanon"] for tool, seconds in cpu_medians.items()},
            "load_average_per_round": load,
            "pool_outputs_identical": len(set(pooled_outputs.values())) == 1,
            "folder_files_identical_to_zip_members": all(
                files == zip_members and mapping == pooled_outputs[pools[0], starts[0]][1]
                for files, mapping in folder_outputs.values()),
            "dcmstudio_job_summary": pyodide_result["summary"],
            "left_behind": {tool: left_behind(data_dir, files) for tool, files in outputs.items()},
        }
        probe = make_probe(data_dir, work / "probe")
        probe_outputs = run_tools_once(probe, work / "probe-out", dicognito, work / "cert.pem",
                                       script)
        results["probe_left_behind"] = {tool: left_behind(probe, files)
                                        for tool, files in probe_outputs.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "deid.json").write_text(json.dumps(results, indent=1))
    print(f"{results['files']} files, {results['bytes'] / 1e6:.1f} MB, {args.rounds} rounds "
          f"(median seconds; ratio = tool / dcmstudio in Pyodide once started)")
    for tool, seconds in medians.items():
        print(f"  {tool:40s} {seconds:7.2f} s   x{results['ratio_to_dcmstudio_pyodide'][tool]:.2f}"
              f"   {results['ratio_to_gdcmanon'][tool]:.2f}x gdcmanon")
    print(f"CPU seconds (median), ratio to gdcmanon's; 1-minute load at each round's start: "
          f"{', '.join(f'{x:.1f}' for x in load)}")
    for tool, seconds in cpu_medians.items():
        print(f"  {tool:40s} {seconds:7.2f} s   {results['cpu_ratio_to_gdcmanon'][tool]:.2f}x gdcmanon")
    print(f"  the page runtime's outputs with {args.workers} workers ({args.starts}) identical: "
          f"{results['pool_outputs_identical']}")
    print(f"  its folder's files identical to its ZIP's members (and the same mapping and report): "
          f"{results['folder_files_identical_to_zip_members']}")
    for title, key in (("the series", "left_behind"),
                       ("the probe (planted values, first 20 files)", "probe_left_behind")):
        print(f"\nWhat each left behind in {title}:")
        for tool, found in results[key].items():
            print(f"  {tool}: {found['files_with_residual_hits']}/{found['files']} files with "
                  f"residual hits; {found['private_elements_kept']} private elements kept; "
                  f"original study date in {found['files_with_original_study_date']}, original "
                  f"study UID in {found['files_with_original_study_uid']}; (0012,0062)=YES in "
                  f"{found['files_marked_patient_identity_removed']}; names "
                  f"{found['patient_names']}")
            for what, count in list(found["residual_hits"].items())[:8]:
                print(f"      {count:5d}  {what}")


if __name__ == "__main__":
    main()

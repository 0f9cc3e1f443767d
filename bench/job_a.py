"""Job A of shared/peers — edit 5 tags in a 300-file CT series — dcmstudio beside its peers.

    python bench/job_a.py [--rounds 5]

Runs, interleaved in the same rounds on the same data: DCMTK dcmodify (a1_dcmodify.sh), pydicom in
CPython (a2_pydicom.py), a bare copy (the floor) and dcmstudio's edit job in the page's runtime
(Pyodide in Node, dist/ as build.py made it, series already in MEMFS and described and the edits
checked, as the page does when files are opened and edits added; output a streamed ZIP whose
pixel data parts are stretches of the opened files, as the page's File.slice parts are).
Prints medians and ratios, checks every output with the peers' verify_a.py. Needs
../shared/peers/setup.sh to have run; data is generated once into the cache.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
PEERS_HOME = pathlib.Path(os.environ.get("PEERS_HOME", pathlib.Path.home() / ".cache" / "dcmstudio-peers"))
PEER_PYTHON = str(PEERS_HOME / "venv" / "bin" / "python")
DATA = pathlib.Path(os.environ.get("DCMSTUDIO_CACHE", pathlib.Path.home() / ".cache" / "dcmstudio")) / "bench-data"


def ensure_data():
    if not (DATA / "D1").is_dir() or len(os.listdir(DATA / "D1")) < 300:
        subprocess.run([PEER_PYTHON, str(PEERS / "gen_data.py"), str(DATA)], check=True)
    return DATA / "D1"


def timed(cmd, **kwargs):
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(f"{cmd[0]} failed: {result.stderr[-2000:]}")
    return elapsed, result.stdout


def verify(src, out_dir):
    _, text = timed([PEER_PYTHON, str(PEERS / "verify_a.py"), str(src), str(out_dir)], cwd=PEERS)
    return text.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    src = ensure_data()
    size = sum(p.stat().st_size for p in src.iterdir())
    work = pathlib.Path(tempfile.mkdtemp(prefix="dcmstudio-job-a-"))
    times = {"dcmodify": [], "pydicom (CPython)": [], "copy (floor)": [], "dcmstudio (page runtime)": []}
    runtime_info = None
    for _ in range(args.rounds):
        times["dcmodify"].append(timed(["sh", str(PEERS / "a1_dcmodify.sh"), str(src), str(work / "a1")])[0])
        times["pydicom (CPython)"].append(timed([PEER_PYTHON, str(PEERS / "a2_pydicom.py"), str(src), str(work / "a2")],
                                                cwd=PEERS)[0])
        times["copy (floor)"].append(timed(["sh", str(PEERS / "cp_only.sh"), str(src), str(work / "cp")])[0])
        _, out = timed(["node", str(ROOT / "bench" / "job_a_pyodide.mjs"), str(src), str(work / "ours.zip")])
        runtime_info = json.loads(out.strip().splitlines()[-1])
        times["dcmstudio (page runtime)"].append(runtime_info["seconds"])
    ours_dir = work / "ours"
    with zipfile.ZipFile(work / "ours.zip") as z:
        z.extractall(ours_dir)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"Job A: {len(os.listdir(src))} files, {size / 1e6:.1f} MB, median of {args.rounds} interleaved rounds")
    for name, value in medians.items():
        print(f"  {name:28s} {value:6.3f} s")
    ours = medians["dcmstudio (page runtime)"]
    print(f"  dcmstudio / dcmodify          {ours / medians['dcmodify']:.2f}x the time")
    print(f"  pydicom CPython / dcmstudio   {medians['pydicom (CPython)'] / ours:.2f}x faster")
    growth = runtime_info["heap_after"] - runtime_info["heap_before"]
    print(f"  wasm heap: {runtime_info['heap_before'] / 1e6:.0f} MB before, grew {growth / 1e6:.1f} MB "
          f"(largest file {runtime_info['largest_file'] / 1e6:.2f} MB)")
    print("  " + verify(src, ours_dir) + "  (dcmstudio)")
    print("  " + verify(src, work / "a1") + "  (dcmodify)")


if __name__ == "__main__":
    sys.exit(main())

"""Job B of shared/peers — a 512×512×300 int16 volume (D2.nii) to a 300-file series — dcmstudio
beside its peers, interleaved in the same rounds on the same data.

    python bench/job_b.py [--rounds 5]

SimpleITK's documented per-slice recipe (peers' b1_sitk.py) and a simple pydicom writer in
CPython (b2_pydicom.py) write files; dcmstudio runs in the page's runtime once started (Pyodide
in Node on dist/: open the volume, then the write_series job streaming its ZIP). Prints medians,
paired ratios, the wasm heap's growth per volume and the peers' verify_b.py verdicts.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
PEER_PYTHON = str(pathlib.Path(os.environ.get("PEERS_HOME", pathlib.Path.home() / ".cache" / "dcmstudio-peers"))
                  / "venv" / "bin" / "python")
DATA = pathlib.Path(os.environ.get("DCMSTUDIO_CACHE", pathlib.Path.home() / ".cache" / "dcmstudio")) / "bench-data"


def run(cmd):
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{cmd[:2]} failed: {result.stderr[-2000:]}")
    return time.perf_counter() - start, result.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not (DATA / "D2.nii").exists():
        subprocess.run([PEER_PYTHON, str(PEERS / "gen_data.py"), str(DATA)], check=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="dcmstudio-job-b-"))
    times = {"SimpleITK": [], "pydicom (CPython)": [], "dcmstudio (page runtime)": []}
    info = None
    for _ in range(args.rounds):
        times["SimpleITK"].append(run([PEER_PYTHON, str(PEERS / "b1_sitk.py"), str(DATA / "D2.nii"), str(work / "sitk")])[0])
        times["pydicom (CPython)"].append(run([PEER_PYTHON, str(ROOT / "bench" / "b2_pydicom.py"), str(DATA / "D2.nii"),
                                               str(work / "pydicom")])[0])
        _, out = run(["node", str(ROOT / "bench" / "job_b_pyodide.mjs"), str(DATA / "D2.nii"), str(work / "ours.zip")])
        info = json.loads(out.strip().splitlines()[-1])
        times["dcmstudio (page runtime)"].append(info["seconds"])
    with zipfile.ZipFile(work / "ours.zip") as z:
        z.extractall(work / "ours")
    ours_dir = next(p for p in (work / "ours").iterdir() if p.is_dir())
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"Job B: D2.nii 512×512×300 int16 → 300 files, median of {args.rounds} interleaved rounds")
    for name, value in medians.items():
        print(f"  {name:28s} {value:6.3f} s")
    ours = times["dcmstudio (page runtime)"]
    for peer in ("SimpleITK", "pydicom (CPython)"):
        paired = statistics.median(a / b for a, b in zip(ours, times[peer]))
        print(f"  dcmstudio / {peer:20s} {paired:.2f}x the time (paired)")
    print(f"  of which opening the volume {info['open_seconds']:.2f} s, writing {info['write_seconds']:.2f} s; "
          f"wasm heap grew {(info['heap_after'] - info['heap_before']) / info['volume_bytes']:.2f}x the volume")
    for name, folder in (("dcmstudio", ours_dir), ("SimpleITK", work / "sitk")):
        _, verdict = run([PEER_PYTHON, str(PEERS / "verify_b.py"), str(folder), str(DATA)])
        print(f"  [{name}] " + verdict.strip().replace("\n", "\n  "))


if __name__ == "__main__":
    main()

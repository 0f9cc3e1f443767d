"""What a person waits for in the page, beside DCMTK on the same files in the same run.

    python bench/e2e.py [--files 300] [--rounds 3] [--workers N]

Chromium (Debian's, headless) on the page that `build.py serve` serves; a fresh Chromium with its
own profile on disk for every case (an in-memory profile's quota cannot hold a 1.5 GB folder save). Each case is timed from handing the files to the file input to the last
byte of the output on disk:

- (a) zip: Job A's five edits (../shared/peers/edits.py), saved as a ZIP download;
- (b) folder: the same, written into a folder (the origin-private file system stands in for the
  folder picker, which a headless browser cannot answer);
- (c) deid: de-identification with the default options, saved as a ZIP download;
- dcmodify: ../shared/peers/a1_dcmodify.sh (copy the series, then dcmodify in place).

Prints the medians, each case's ratio to dcmodify, and the peak memory of all the browser's
processes (proportional set size, summed) above the same page before any file was opened, split
per kind of process (browser, renderer: the page and its workers, GPU, utilities), and the CPU
seconds the browser's processes used meanwhile (steadier than elapsed time on a busy machine), and
which threads used them;
where each job's steps spent their time in the workers (fetching, Python, handing over). --timeline
writes every sample, and the page's JS heap during the job; --collect-every N forces a garbage
collection every N seconds (in the page and/or its workers: --collect-in), which tells memory
held from garbage not collected yet. Every
output is checked: N files, each read back by pydicom with the edits in place. Job A's data is
made by bench/job_a.py (../shared/peers/gen_data.py); --files other than 300 hard-links those
files under new names.
"""

import argparse
import base64
import io
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

import pydicom

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))
from conftest import CHROMIUM_FLAGS, chromium_path, start_site_server  # noqa: E402
from job_a import PEERS, ensure_data, timed  # noqa: E402

EDITS = [
    {"op": "set", "path": "PatientName", "value": "Anonymous^Edited"},
    {"op": "set", "path": "PatientID", "value": "ANON-000123-EDITED"},
    {"op": "set", "path": "StudyDescription", "value": "CT CHEST WITH CONTRAST - RESEARCH EDIT (BENCH)"},
    {"op": "delete", "path": "(0009,1002)"},
    {"op": "set", "path": "(0040,0275)[0].(0040,1001)", "value": "RP-EDITED-42"},
]

OPFS_FOLDER = """async () => {
    const outputs = await import('./static/outputs.js');
    const root = await navigator.storage.getDirectory();
    outputs.pickers.folder = async () => root.getDirectoryHandle('bench-out', { create: true });
    return outputs.pickers.available;
}"""

READ_OPFS = """async (name) => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('bench-out');
    const bytes = new Uint8Array(await (await (await dir.getFileHandle(name)).getFile()).arrayBuffer());
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
}"""

LIST_OPFS = """async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('bench-out');
    const names = [];
    for await (const name of dir.keys()) names.push(name);
    return names;
}"""


CASE_TIMEOUT_MS = 1200000  # 20 min: longer means the page is stuck
TASK_BAR = "() => [...document.querySelectorAll('.task')].map((t) => t.textContent).join('\\n')"

# Where the time went, from the page's own marks (app.js, jobs.js): seconds per span.
PHASES = """() => {
    const at = Object.fromEntries(performance.getEntriesByType('mark')
        .filter((m) => m.name.startsWith('dcmstudio:')).map((m) => [m.name.slice(10), m.startTime]));
    const spans = [['opening', 'open', 'opened'], ['until job', 'opened', 'job'], ['job steps', 'job', 'job-steps'],
                   ['of which a first pass', 'job', 'job-before'], ['writing', 'job-steps', 'job-written']];
    return Object.fromEntries(spans.filter(([, a, b]) => a in at && b in at).map(([k, a, b]) => [k, (at[b] - at[a]) / 1000]));
}"""


def process_kind(pid):
    """What a Chromium process is: "browser", or its --type (renderer, gpu-process, utility...)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    kind = re.search(r"--type=(\S+)", cmd)
    if not kind:
        return "browser"
    sub = re.search(r"--utility-sub-type=(\S+)", cmd)
    return f"{kind.group(1)} ({sub.group(1).rsplit('.', 1)[-1]})" if sub else kind.group(1)


def process_tree(pid):
    """A process and all its descendants, by pid."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    stack, tree = [pid], []
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        tree.append(current)
    return tree


def browser_cpu(pid):
    """CPU seconds (user + system) the browser's processes have used so far: on a busy 2-core
    machine a steadier figure than elapsed time."""
    ticks = 0
    for current in process_tree(pid):
        try:
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def browser_cpu_by_thread(pid):
    """CPU seconds each kind of thread of the browser's processes has used so far, by
    "process kind: thread name" (e.g. "renderer: DedicatedWorker", "browser: ThreadPoolForeg";
    V8's background compilers and the blob and file threads have names of their own)."""
    by_thread = {}
    for current in process_tree(pid):
        kind = process_kind(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/comm") as f:
                    name = f.read().strip()
                with open(f"/proc/{current}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            key = f"{kind}: {name}"
            by_thread[key] = by_thread.get(key, 0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return by_thread


def browser_memory_by_kind(pid):
    """Proportional set size of a process and all its descendants (shared pages split), in bytes,
    summed per kind of process (see process_kind)."""
    by_kind = {}
    for current in process_tree(pid):
        try:
            with open(f"/proc/{current}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        kind = process_kind(current)
                        by_kind[kind] = by_kind.get(kind, 0) + int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return by_kind


def browser_memory(pid):
    """Proportional set size of a process and all its descendants, in bytes (shared pages split)."""
    return sum(browser_memory_by_kind(pid).values())


class PeakMemory:
    """Samples the browser's memory every 0.1 s in a thread: `.peak` is the largest total seen,
    `.at_peak` its split per kind of process then, `.peaks` each kind's own largest."""

    def __init__(self, pid):
        self.pid, self.peak, self.running = pid, 0, False
        self.at_peak, self.peaks = {}, {}
        self.samples = []  # (seconds since the start, by kind)

    def __enter__(self):
        self.running = True
        self.start = time.monotonic()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self):
        while self.running:
            by_kind = browser_memory_by_kind(self.pid)
            total = sum(by_kind.values())
            self.samples.append((time.monotonic() - self.start, by_kind))
            if total > self.peak:
                self.peak, self.at_peak = total, by_kind
            for kind, size in by_kind.items():
                self.peaks[kind] = max(self.peaks.get(kind, 0), size)
            time.sleep(0.1)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def browser_pid(profile):
    """The pid of the Chromium that runs with the profile folder `profile` (other Chromiums may
    run on the machine meanwhile, e.g. tests)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ")  # Chromium rewrites its argv as one string
        except OSError:
            continue
        if (cmd.split(b" ")[0].endswith(b"/chromium") and b"--type=" not in cmd
                and f"--user-data-dir={profile}".encode() in cmd):
            return int(entry)
    raise RuntimeError(f"no Chromium runs with the profile {profile}")


def fresh_page(p, url, workers, profile, flags=(), settled=False):
    """A new Chromium with its own profile on disk (`profile`): a context without one keeps its
    origin-private files in memory, with a quota far below a 1.5 GB study. With `settled`, waits
    until every worker's start-up is over, later stage included, as it is for a person who takes
    a few seconds to pick the files; else only until every worker is ready."""
    context = p.chromium.launch_persistent_context(profile, executable_path=chromium_path(), args=[*CHROMIUM_FLAGS, *flags],
                                                   accept_downloads=True)
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(f"{url}?workers={workers}" if workers else url)
    page.wait_for_selector("body[data-python='ready']", timeout=120000)
    size = page.evaluate("window.dcmstudio.python.size")
    page.wait_for_function("(n) => window.dcmstudio.python.available().length === n", arg=size, timeout=120000)
    if settled:
        page.evaluate("() => Promise.all(window.dcmstudio.python.available().map((w) => w.settled))")
    return context, page, size


class ZipOutputs:
    """The members of a downloaded ZIP, read one at a time (an archive may hold 10 GB)."""

    def __init__(self, path):
        self.zip = zipfile.ZipFile(path)

    def names(self):
        return self.zip.namelist()

    def read(self, name):
        return self.zip.read(name)


class FolderOutputs:
    """The files the page wrote into the origin-private folder, read back through the page."""

    def __init__(self, page):
        self.page = page

    def names(self):
        return self.page.evaluate(LIST_OPFS)

    def read(self, name):
        return base64.b64decode(self.page.evaluate(READ_OPFS, name))


def check_outputs(outputs, count, edited=True):
    """Every output is there, and each one reads back with pydicom (with Job A's edits)."""
    names = outputs.names()
    assert len(names) == count, f"{len(names)} outputs, expected {count}"
    for name in names:
        ds = pydicom.dcmread(io.BytesIO(outputs.read(name)))
        if not edited:
            assert ds.PatientName != "Anonymous^Edited", name
            continue
        assert ds.PatientName == "Anonymous^Edited" and ds.PatientID == "ANON-000123-EDITED", name
        assert ds.RequestAttributesSequence[0].RequestedProcedureID == "RP-EDITED-42", name
        assert (0x0009, 0x1002) not in ds, name


class CaseFailed(Exception):
    """The page said the task failed (its sentence is the message)."""


COLLECT_EVERY = 0  # seconds; 0: never (see --collect-every)
COLLECT_IN = ("page", "workers")
TIMELINE = None  # see --timeline


def collect_garbage(page):
    """A full garbage collection in the page and/or each of its workers (COLLECT_IN; Chromium
    started with --js-flags=--expose-gc)."""
    if "page" in COLLECT_IN:
        page.evaluate("() => gc()")
    for worker in page.workers if "workers" in COLLECT_IN else []:
        worker.evaluate("() => gc()")


JS_HEAP = "() => [performance.memory.usedJSHeapSize, performance.memory.totalJSHeapSize]"
heap_samples = []  # (seconds, page's JS heap used, its total), when --timeline is given


def wait_for_output(page, click, finished):
    """Clicks `click`, then waits until the task's output is complete: a download the browser has
    written whole (`finished` None), or a task row matching `finished` (a folder save). A failed
    task ends the wait at once with the page's own sentence, so a failure is never taken for a
    page that is still working."""
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    page.click(click)
    deadline = time.monotonic() + CASE_TIMEOUT_MS / 1000
    collected = time.monotonic()
    while time.monotonic() < deadline:
        if COLLECT_EVERY and time.monotonic() - collected > COLLECT_EVERY:
            collect_garbage(page)
            collected = time.monotonic()
        if TIMELINE and (not heap_samples or time.monotonic() - heap_samples[-1][0] > 2):
            heap_samples.append((time.monotonic(), *page.evaluate(JS_HEAP)))
        failed = page.query_selector(".task.failed")
        if failed:
            raise CaseFailed(failed.text_content())
        if finished is None and downloads:
            return downloads[0].path()  # returns once the browser has written the whole file
        if finished is not None and page.query_selector(finished):
            return None
        page.wait_for_timeout(50)
    raise TimeoutError(f"no output after {CASE_TIMEOUT_MS / 60000:.0f} minutes")


SPENT = "() => self.dcmstudio?.spent && { ...self.dcmstudio.spent }"


def worker_spent(page):
    """What each worker spent so far (static/worker.js `spent`): ms fetching, in Python, handing
    parts over, slicing opened files; how many reads of them it asked for."""
    return [s for s in (w.evaluate(SPENT) for w in page.workers) if s]


def run_case(page, case, paths):
    """One timed case in an open page; returns (seconds, its outputs)."""
    if case == "folder":
        assert page.evaluate(OPFS_FOLDER), "no File System Access in this Chromium"
    page.evaluate("(edits) => window.dcmstudio.edits.replace(edits)", EDITS)
    page.click("#tab-deid" if case == "deid" else "#tab-edit")
    start = time.perf_counter()
    page.set_input_files("#open-files", [str(p) for p in paths])
    page.wait_for_selector(".file-tree .row.all")
    if case == "deid":
        page.wait_for_selector("#deid-run:not([disabled])")
        path = wait_for_output(page, "#deid-run", None)
        return time.perf_counter() - start, ZipOutputs(path)
    page.check("#edit-scope-all")
    if case == "folder":
        page.select_option("#edit-save-to", "folder")
        wait_for_output(page, "#edit-apply", ".task.done:has-text('Edited')")
        return time.perf_counter() - start, FolderOutputs(page)
    path = wait_for_output(page, "#edit-apply", None)
    return time.perf_counter() - start, ZipOutputs(path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="pool size (default: the page's own choice)")
    parser.add_argument("--cases", default="zip,folder,deid")
    parser.add_argument("--collect-every", type=float, default=0,
                        help="seconds: force a garbage collection in the page and its workers this often (a probe: "
                        "what memory is garbage the engine has not collected yet)")
    parser.add_argument("--collect-in", default="page,workers",
                        help="where --collect-every collects: page, workers or both (comma-separated)")
    parser.add_argument("--timeline", help="write every memory sample (MB over the empty page, per process kind) "
                        "to this file, as tab-separated lines")
    parser.add_argument("--settled", action="store_true",
                        help="hand the files over once every worker's start-up is over, later stage included "
                        "(default: once every worker is ready, about 1.5 s sooner)")
    parser.add_argument("--distinct", type=int, default=40, help="files given other patients/studies/series")
    args = parser.parse_args()
    global COLLECT_EVERY, COLLECT_IN, TIMELINE
    COLLECT_EVERY, COLLECT_IN = args.collect_every, tuple(args.collect_in.split(","))
    TIMELINE = args.timeline
    source = sorted(ensure_data().iterdir())
    work = pathlib.Path(tempfile.mkdtemp(prefix="dcmstudio-e2e-"))
    data = work / "in"
    data.mkdir()
    for i in range(args.files):
        os.link(source[i % len(source)], data / f"im{i:05d}.dcm")
    # A sample gets its own patient, study and series, so the file tree groups more than one.
    for i in range(0, min(args.distinct, args.files)):
        path = data / f"im{i:05d}.dcm"
        ds = pydicom.dcmread(path)
        group = i % 4
        ds.PatientName, ds.PatientID = f"OTHER^PATIENT{group}", f"OTHER{group}"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{group}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.78.{group}"
        path.unlink()  # a file of its own, not a link any more
        ds.save_as(path)
    paths = sorted(data.iterdir())
    size = sum(p.stat().st_size for p in paths)
    cases = args.cases.split(",")
    times = {c: [] for c in ["dcmodify", *cases]}
    memory = {c: [] for c in cases}
    cpu = {c: [] for c in cases}  # the browser's CPU seconds per round
    threads = {c: [] for c in cases}  # per round: the CPU seconds of each kind of thread (browser_cpu_by_thread)
    phases = {c: [] for c in cases}
    split = {c: [] for c in cases}  # per round: kind of process → (+bytes at the peak, its own peak)
    server, url = start_site_server()
    from playwright.sync_api import sync_playwright
    try:
        with sync_playwright() as p:
            for round_ in range(args.rounds):
                times["dcmodify"].append(timed(["sh", str(PEERS / "a1_dcmodify.sh"), str(data), str(work / "a1")])[0])
                for case in cases:
                    profile = work / f"profile-{round_}-{case}"
                    context, page, workers = fresh_page(p, url, args.workers, str(profile),
                                                          (["--js-flags=--expose-gc"] if COLLECT_EVERY else [])
                                                          + (["--enable-precise-memory-info"] if TIMELINE else []),
                                                          settled=args.settled)
                    pid = browser_pid(profile)
                    time.sleep(1)  # let the helpers' start-up settle before the baseline
                    empty = browser_memory_by_kind(pid)
                    cpu_before = browser_cpu(pid)
                    threads_before = browser_cpu_by_thread(pid)
                    with PeakMemory(pid) as peak:
                        try:
                            seconds, outputs = run_case(page, case, paths)
                        except Exception:
                            # say where the page stood: its task bar, and a screenshot
                            print(f"{case} did not finish; the task bar says:\n" + page.evaluate(TASK_BAR))
                            page.screenshot(path=str(work / f"{case}-unfinished.png"))
                            raise
                    times[case].append(seconds)
                    cpu[case].append(browser_cpu(pid) - cpu_before)
                    # a thread that ended meanwhile took its CPU time with it: its kind undercounts
                    threads[case].append({name: max(0, seconds - threads_before.get(name, 0))
                                          for name, seconds in browser_cpu_by_thread(pid).items()})
                    phases[case].append(page.evaluate(PHASES))
                    # what the workers' job steps spent (a fresh page ran none before), summed over them
                    for key in ("fetching", "python", "handing", "slicing"):
                        phases[case][-1][f"workers {key}"] = sum(s[key] for s in worker_spent(page)) / 1000
                    memory[case].append(peak.peak - sum(empty.values()))
                    if args.timeline:
                        with open(args.timeline, "a") as f:
                            for at, used, total in heap_samples:
                                f.write(f"{case}\t{round_}\t{at - peak.start:.1f}\tpage JS heap used={used / 1e6:.0f}"
                                        f"\ttotal={total / 1e6:.0f}\n")
                            heap_samples.clear()
                            for at, by_kind in peak.samples:
                                f.write(f"{case}\t{round_}\t{at:.1f}\t" + "\t".join(
                                    f"{kind}={(size - empty.get(kind, 0)) / 1e6:.0f}"
                                    for kind, size in sorted(by_kind.items())) + "\n")
                    split[case].append({kind: (peak.at_peak.get(kind, 0) - empty.get(kind, 0),
                                               peak.peaks.get(kind, 0) - empty.get(kind, 0))
                                        for kind in sorted(set(empty) | set(peak.peaks))})
                    check_outputs(outputs, args.files, edited=case != "deid")
                    context.close()
                    shutil.rmtree(profile, ignore_errors=True)
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)  # the inputs are links, but dcmodify's copies are not
    base = statistics.median(times["dcmodify"])
    print(f"{args.files} files, {size / 1e6:.1f} MB, {workers} worker(s), median of {args.rounds} rounds, "
          "files handed over → output on disk")
    print(f"  {'dcmodify (copy + edit)':28s} {base:7.3f} s")
    for case in cases:
        median = statistics.median(times[case])
        print(f"  {'page: ' + case:28s} {median:7.3f} s  {median / base:5.2f}x dcmodify  "
              f"peak browser memory +{max(memory[case]) / 1e6:.0f} MB over the empty page  "
              f"browser CPU {statistics.median(cpu[case]):.2f} s")
        spans = {k: statistics.median(p[k] for p in phases[case] if k in p) for k in phases[case][0]}
        print("      " + ", ".join(f"{k} {v:.2f} s" for k, v in spans.items()))
        names = {name for round_ in threads[case] for name in round_}
        busiest = sorted(((statistics.median(r.get(name, 0) for r in threads[case]), name) for name in names),
                         reverse=True)
        print("      browser CPU by thread (median): " + ", ".join(
            f"{name} {seconds:.2f} s" for seconds, name in busiest if seconds >= 0.05))
        worst = split[case][memory[case].index(max(memory[case]))]
        print("      at the peak, per process kind (own peak): " + ", ".join(
            f"{kind} {at / 1e6:+.0f} MB ({own / 1e6:+.0f})" for kind, (at, own) in worst.items()))
    print("  every output: all files present, each read back by pydicom with the edits in place")


if __name__ == "__main__":
    sys.exit(main())

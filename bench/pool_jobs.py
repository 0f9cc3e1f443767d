"""Validate and Compress (RLE Lossless) of Job A's series in the page, with 1 worker and with 2.

    python bench/pool_jobs.py [--rounds 2] [--workers 1 2]

Chromium (Debian's, headless) on the page that `build.py serve` serves, a fresh browser context
every round. The files are opened first; each job is timed from the click on its button to the
end the person sees: the compressed ZIP downloaded, or both validation reports offered. Prints the
medians per number of workers. Every compressed ZIP is checked: every file, RLE, read back by pydicom.
"""

import argparse
import io
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
import zipfile

import pydicom

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))
from conftest import start_site_server  # noqa: E402
from e2e import fresh_page  # noqa: E402
from job_a import ensure_data  # noqa: E402


def opened(playwright, url, workers, paths, profile):
    context, page, _ = fresh_page(playwright, url, workers, str(profile), settled=True)
    page.set_input_files("#open-files", [str(p) for p in paths])
    page.wait_for_function("(n) => window.dcmstudio.files.files.size === n && !window.dcmstudio.files.pending",
                           arg=len(paths), timeout=300000)
    return context, page


def time_validate(page, count):
    page.click("#tab-validate")
    page.wait_for_selector(f"#validate-run:has-text('Validate {count} files')")
    started = time.perf_counter()
    page.click("#validate-run")
    page.wait_for_selector(f".task.done:has-text('Validated {count} files')", timeout=600000)
    return time.perf_counter() - started


def time_compress(page, count):
    page.click("#tab-compress")
    page.wait_for_selector("#compress-targets input")
    page.check(f"#compress-targets input[value='{pydicom.uid.RLELossless}']")
    started = time.perf_counter()
    with page.expect_download(timeout=600000) as info:
        page.click("#compress-run")
    data = info.value.path().read_bytes()
    seconds = time.perf_counter() - started
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        assert len(names) == count, f"the ZIP holds {len(names)} files, not {count}"
        for name in names[::37]:
            assert pydicom.dcmread(io.BytesIO(z.read(name))).file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    paths = sorted(ensure_data().glob("*.dcm"))
    from playwright.sync_api import sync_playwright
    server, url = start_site_server()
    profiles = pathlib.Path(tempfile.mkdtemp(prefix="dcmstudio-pool-jobs-"))
    times = {}
    try:
        with sync_playwright() as p:
            for round_ in range(args.rounds):
                for workers in args.workers:
                    context, page = opened(p, url, workers, paths, profiles / f"{round_}-{workers}")
                    times.setdefault(("validate", workers), []).append(time_validate(page, len(paths)))
                    times.setdefault(("compress", workers), []).append(time_compress(page, len(paths)))
                    context.close()
    finally:
        server.terminate()
        shutil.rmtree(profiles, ignore_errors=True)
    for (job, workers), seconds in sorted(times.items()):
        print(f"{job:9s} {len(paths)} files, {workers} worker(s): median {statistics.median(seconds):.2f} s "
              f"({', '.join(f'{s:.2f}' for s in seconds)})")


if __name__ == "__main__":
    main()

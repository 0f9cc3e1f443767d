"""Many files in one tab: open ~2,900 CT files (1.5 GB) in Chromium, edit them all, download the ZIP.

    python bench/big_series.py [--files 2860]

Uses Job A's data (bench/job_a.py makes it), hard-linked under new names. Reports the time to
open, to edit and stream the ZIP, the ZIP's size, and the wasm heap of the worker before and
after (it must not grow with the series: files live in MEMFS, outside the heap, and the ZIP
leaves in chunks). Checks the ZIP's member count and a sample of members with pydicom.
"""

import argparse
import io
import os
import pathlib
import sys
import tempfile
import time
import zipfile

import pydicom

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import CHROMIUM_FLAGS, chromium_path, start_site_server  # noqa: E402

DATA = pathlib.Path(os.environ.get("DCMSTUDIO_CACHE", pathlib.Path.home() / ".cache" / "dcmstudio")) / "bench-data" / "D1"
EDITS = [
    {"op": "set", "path": "PatientName", "value": "Anonymous^Edited"},
    {"op": "set", "path": "StudyDescription", "value": "CT CHEST WITH CONTRAST - RESEARCH EDIT (BENCH)"},
    {"op": "delete", "path": "(0009,1002)"},
    {"op": "set", "path": "(0040,0275)[0].(0040,1001)", "value": "RP-EDITED-42"},
]


def worker_heap(page):
    worker = next(w for w in page.workers)
    return worker.evaluate("() => self.dcmstudio.pyodide._module.HEAP8.length")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2860)
    args = parser.parse_args()
    sources = sorted(DATA.iterdir())
    if not sources:
        sys.exit(f"no data in {DATA}: run bench/job_a.py first")
    folder = pathlib.Path(tempfile.mkdtemp(prefix="dcmstudio-big-"))
    paths = []
    for i in range(args.files):
        path = folder / f"im{i:05d}.dcm"
        os.link(sources[i % len(sources)], path)
        paths.append(path)
    total = sum(p.stat().st_size for p in paths)
    server, url = start_site_server()
    from playwright.sync_api import sync_playwright
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            page = browser.new_page(accept_downloads=True)
            page.goto(url)
            page.wait_for_selector("body[data-python='ready']", timeout=120000)
            heap_start = worker_heap(page)
            start = time.perf_counter()
            page.set_input_files("#open-files", [str(p) for p in paths])
            while page.evaluate("window.dcmstudio.files.count()") < args.files:
                time.sleep(0.5)
            opened = time.perf_counter() - start
            heap_opened = worker_heap(page)
            page.locator(".file-tree .row.all").click()
            page.evaluate("edits => window.dcmstudio.edits.replace(edits)", EDITS)
            page.click("#tab-edit")
            page.check("#edit-scope-all")
            start = time.perf_counter()
            with page.expect_download(timeout=1800000) as download_info:
                page.click("#edit-apply")
            zip_path = folder / "edited.zip"
            download_info.value.save_as(zip_path)
            edited = time.perf_counter() - start
            heap_end = worker_heap(page)
            browser.close()
    finally:
        server.terminate()
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        sample = [pydicom.dcmread(io.BytesIO(z.read(n))) for n in names[:: max(1, len(names) // 20)]]
    assert len(names) == args.files, (len(names), args.files)
    assert all(str(ds.PatientName) == "Anonymous^Edited" for ds in sample)
    print(f"{args.files} files, {total / 1e9:.2f} GB: opened in {opened:.1f} s, edited and downloaded in "
          f"{edited:.1f} s; ZIP {zip_path.stat().st_size / 1e9:.2f} GB, {len(names)} members, sample of "
          f"{len(sample)} read back by pydicom")
    print(f"worker wasm heap: {heap_start / 1e6:.0f} MB at start, {heap_opened / 1e6:.0f} MB after opening, "
          f"{heap_end / 1e6:.0f} MB after editing")
    for p in paths:
        p.unlink()
    zip_path.unlink()


if __name__ == "__main__":
    main()

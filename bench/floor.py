"""What the browser alone costs for the page's I/O on this machine: the floor under bench/e2e.py.

    python bench/floor.py [--files 300] [--rounds 3]

A bare page (no Python, no dcmstudio code; served from a temporary folder) in the same Chromium
as bench/e2e.py, with a fresh on-disk profile, on the same files; beside dcmodify in the same run:

- heads: read the first 64 KiB of every file (what opening the files must read at least);
- read: read every byte of every file, shared over 2 workers, 8 reads in flight each (a ZIP
  needs each member's CRC-32, so every byte must be read once);
- zip download: a stored ZIP of the files, made of slices of them (no bytes read, CRCs left 0),
  handed to the browser as a download, until the file is on disk;
- folder: each file written whole into the origin-private file system (createWritable, 8 at a
  time), as a folder save does.

- zip edit floor: heads, then read, then zip download, in one page: no page can edit the files and
  save them as a ZIP download in less;
- folder edit floor: heads, then folder.

Each figure is timed from handing the files to the file input.
"""

import argparse
import functools
import http.server
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))
from conftest import CHROMIUM_FLAGS, chromium_path  # noqa: E402
from job_a import PEERS, ensure_data, timed  # noqa: E402

PAGE = """<!doctype html><meta charset="utf-8"><title>floor</title>
<input type="file" id="files" multiple><script type="module" src="floor.js"></script>"""

READER = """onmessage = async ({ data: { files, head } }) => {
  let next = 0, bytes = 0;
  const one = async () => {
    while (next < files.length) {
      const file = files[next++];
      const read = (await (head ? file.slice(0, 65536) : file).arrayBuffer()).byteLength;
      bytes += read;  // not `bytes += await …`, which would add to a stale total
    }
  };
  await Promise.all(Array.from({ length: 8 }, one));
  postMessage(bytes);
};"""

FLOOR = """const files = () => [...document.getElementById('files').files];
window.floor = {
  // every byte (or every head), shared over `workers` workers
  read: (head, workers = 2) => Promise.all(Array.from({ length: workers }, (_, w) => new Promise((resolve) => {
    const worker = new Worker('reader.js');
    worker.onmessage = ({ data }) => { worker.terminate(); resolve(data); };
    worker.postMessage({ files: files().filter((_, i) => i % workers === w), head });
  }))),
  // a stored ZIP of slices of the files, offered as a download
  zip: () => {
    const parts = [];
    const central = [];
    let offset = 0;
    const header = (fixed, name) => {  // a ZIP header of `fixed` bytes, then the name
      const bytes = new Uint8Array(fixed + name.length);
      bytes.set(name, fixed);
      return { bytes, view: new DataView(bytes.buffer) };
    };
    for (const file of files()) {
      const name = new TextEncoder().encode(file.name);
      const { bytes, view } = header(30, name);
      view.setUint32(0, 0x04034b50, true); view.setUint16(4, 20, true);
      view.setUint32(18, file.size, true); view.setUint32(22, file.size, true); view.setUint16(26, name.length, true);
      parts.push(bytes, file.slice(0));
      const entry = header(46, name);
      entry.view.setUint32(0, 0x02014b50, true); entry.view.setUint16(6, 20, true);
      entry.view.setUint32(20, file.size, true); entry.view.setUint32(24, file.size, true);
      entry.view.setUint16(28, name.length, true); entry.view.setUint32(42, offset, true);
      central.push(entry.bytes);
      offset += 30 + name.length + file.size;
    }
    const size = central.reduce((n, c) => n + c.length, 0);
    const end = new DataView(new ArrayBuffer(22));
    end.setUint32(0, 0x06054b50, true); end.setUint16(8, central.length, true); end.setUint16(10, central.length, true);
    end.setUint32(12, size, true); end.setUint32(16, offset, true);
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([...parts, ...central, end.buffer], { type: 'application/zip' }));
    link.download = 'floor.zip';
    link.click();
  },
  // each file written whole into the origin-private file system, 8 at a time
  folder: async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('floor', { create: true });
    const queue = files();
    const one = async () => {
      while (queue.length) {
        const file = queue.shift();
        const writable = await (await dir.getFileHandle(file.name, { create: true })).createWritable();
        await writable.write(file);
        await writable.close();
      }
    };
    await Promise.all(Array.from({ length: 8 }, one));
  },
};"""


def serve(folder):
    """A static server for `folder` on a free port, in a thread; returns (server, URL)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/index.html"


def run_case(p, url, case, paths, profile):
    """One timed case in a fresh Chromium; returns seconds from handing the files over to the end."""
    context = p.chromium.launch_persistent_context(str(profile), executable_path=chromium_path(),
                                                   args=CHROMIUM_FLAGS, accept_downloads=True)
    try:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(url)
        page.wait_for_function("() => window.floor !== undefined")
        downloads = []
        page.on("download", lambda download: downloads.append(download))
        start = time.perf_counter()
        page.set_input_files("#files", [str(path) for path in paths])
        if case in ("zip download", "zip edit floor"):
            if case == "zip edit floor":  # what an edit saved as a ZIP must do at least, one after the other
                page.evaluate("async () => { await window.floor.read(true); await window.floor.read(false); }")
            page.evaluate("() => window.floor.zip()")
            while not downloads:
                page.wait_for_timeout(10)
            written = pathlib.Path(downloads[0].path())  # returns once the whole file is on disk
            seconds = time.perf_counter() - start
            expected = sum(path.stat().st_size + 76 + 2 * len(path.name) for path in paths) + 22
            assert written.stat().st_size == expected, (written.stat().st_size, expected)
            return seconds
        if case in ("folder", "folder edit floor"):
            if case == "folder edit floor":
                page.evaluate("() => window.floor.read(true)")
            page.evaluate("() => window.floor.folder()")
            return time.perf_counter() - start
        read = sum(page.evaluate("(head) => window.floor.read(head)", case == "heads"))
        seconds = time.perf_counter() - start
        expected = sum(min(path.stat().st_size, 65536) if case == "heads" else path.stat().st_size for path in paths)
        assert read == expected, (case, read, expected)
        return seconds
    finally:
        context.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    source = sorted(ensure_data().iterdir())
    work = pathlib.Path(tempfile.mkdtemp(prefix="dcmstudio-floor-"))
    site, data = work / "site", work / "in"
    site.mkdir()
    data.mkdir()
    (site / "index.html").write_text(PAGE)
    (site / "floor.js").write_text(FLOOR)
    (site / "reader.js").write_text(READER)
    for i in range(args.files):
        os.link(source[i % len(source)], data / f"im{i:05d}.dcm")
    paths = sorted(data.iterdir())
    size = sum(path.stat().st_size for path in paths)
    cases = ["heads", "read", "zip download", "folder", "zip edit floor", "folder edit floor"]
    times = {case: [] for case in ["dcmodify", *cases]}
    server, url = serve(site)
    from playwright.sync_api import sync_playwright
    try:
        with sync_playwright() as p:
            for round_ in range(args.rounds):
                times["dcmodify"].append(timed(["sh", str(PEERS / "a1_dcmodify.sh"), str(data), str(work / "a1")])[0])
                for case in cases:
                    profile = work / f"profile-{round_}-{case.replace(' ', '-')}"
                    times[case].append(run_case(p, url, case, paths, profile))
                    shutil.rmtree(profile, ignore_errors=True)
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(times["dcmodify"])
    print(f"{args.files} files, {size / 1e6:.1f} MB, median of {args.rounds} rounds, the browser alone (no Python), "
          "files handed over → done")
    print(f"  {'dcmodify (copy + edit)':28s} {base:7.3f} s")
    for case in cases:
        median = statistics.median(times[case])
        print(f"  {case:28s} {median:7.3f} s  {median / base:5.2f}x dcmodify")


if __name__ == "__main__":
    sys.exit(main())

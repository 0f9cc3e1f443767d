"""A person's Inspect flow in Chromium: open files, see them grouped, read the tree, search, export.

Every test also checks that the page asked nothing of any other origin.
"""

import json
import pathlib
import re
import subprocess
import sys
import time

import pydicom
import pytest

from conftest import ARTIFACTS, ROOT, free_port, open_files, wait_until_serving

TEST_FILES = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"
CT = TEST_FILES / "CT_small.dcm"
MR = TEST_FILES / "MR_small.dcm"
NESTED = TEST_FILES / "rtplan.dcm"


def assert_same_origin_only(page, origin):
    off = page.request_log.off_origin(origin)
    assert not off, f"the page asked other origins: {off}"
    assert page.request_log, "no request was recorded at all: the log is broken"


def wait_for_files(page, count):
    deadline = time.time() + 60
    while time.time() < deadline:
        if page.locator(".file-tree .row.instance").count() >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} files were not listed within 60 s")


def test_page_starts_with_named_phases_and_no_errors(page, server):
    assert page.inner_text("#python-status") == "Python ready"
    timings = page.evaluate("window.dcmstudioPhaseTimings")
    assert list(timings) == ["runtime", "packages", "code", "ready"]
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_open_inspect_search_and_export(page, server, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    open_files(page, [CT, MR, NESTED, notes])
    wait_for_files(page, 3)

    # Grouped by patient; the text file is listed as skipped with its reason.
    tree_text = page.inner_text("#file-tree")
    assert "CompressedSamples^CT1" in tree_text
    skipped = page.inner_text("#skipped")
    assert "notes.txt" in skipped or "Skipped: 1 file" in skipped
    page.click("#skipped summary")
    assert "not DICOM" in page.inner_text("#skipped")

    page.get_by_role("treeitem", name="CT_small.dcm").click()
    page.wait_for_selector(".tag-tree .el")
    rows = page.inner_text(".tag-tree")
    assert "(0010,0010)" in rows and "CompressedSamples^CT1" in rows
    assert "(0002,0010)" in rows  # the file meta group is shown too

    # A tag written the plain way finds the element; a value finds it too.
    for query in ["0010,0010", "00100010", "0x00100010", "(0010,0010)", "PatientName", "CompressedSamples"]:
        page.fill("#tags-search", query)
        deadline = time.time() + 10
        # The search says "N matches", then "1 of N" once it has moved to the first; or "no match".
        while time.time() < deadline and not re.search(r"\d of \d|no match", page.inner_text("#tags-search-info")):
            time.sleep(0.05)
        info = page.inner_text("#tags-search-info")
        assert re.search(r"\d of \d", info), f"{query!r}: {info}"
        assert "(0010,0010)" in page.inner_text(".tag-tree .el.current")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inspect-search.png"))

    # A match inside a nested item is revealed (the sequence opens).
    page.get_by_role("treeitem", name="rtplan.dcm").click()
    page.wait_for_selector(".tag-tree .el")
    page.fill("#tags-search", "300a,00c0")  # BeamNumber, inside BeamSequence items
    deadline = time.time() + 10
    while time.time() < deadline and not page.locator(".tag-tree .el.current").count():
        time.sleep(0.05)
    assert "(300A,00C0)" in page.inner_text(".tag-tree .el.current")

    # DICOM JSON export: a download that CPython pydicom reads back to the same data set.
    page.get_by_role("treeitem", name="CT_small.dcm").click()
    page.wait_for_selector(".tag-tree .el")
    with page.expect_download() as download_info:
        page.click("#tags-export-json")
    download = download_info.value
    assert download.suggested_filename == "CT_small.json"
    path = tmp_path / "ct.json"
    download.save_as(path)
    restored = pydicom.Dataset.from_json(json.loads(path.read_text()))
    original = pydicom.dcmread(CT)
    assert restored.PatientName == original.PatientName
    assert restored.SOPInstanceUID == original.SOPInstanceUID
    assert restored.PixelData == original.PixelData

    with page.expect_download() as download_info:
        page.click("#tags-export-text")
    text_path = tmp_path / "dump.txt"
    download_info.value.save_as(text_path)
    dump = text_path.read_text()
    assert "(0010,0010) PN [CompressedSamples^CT1]" in dump

    assert not page.page_errors
    assert_same_origin_only(page, server)


@pytest.mark.parametrize("package", ["pillow", "numpy"])
def test_a_package_loaded_after_start_up_that_fails_leaves_inspection_working(browser, server, package, tmp_path):
    # numpy and Pillow arrive after "Python ready"; if one cannot be loaded, the page says what
    # may no longer work and goes on opening, inspecting, searching and exporting.
    # No service worker: once it controls the page, the worker's fetches are answered from its
    # cache and never reach the route.
    context = browser.new_context(accept_downloads=True, service_workers="block")
    context.route(f"**/{package}-*.whl", lambda route: route.abort())
    page = context.new_page()
    page.goto(server)
    page.wait_for_selector("body[data-python='ready']", timeout=120000)
    page.wait_for_selector("#notice:not([hidden])", timeout=60000)
    notice = page.inner_text("#notice")
    assert "could not all be loaded" in notice and "opening and inspecting files still work" in notice, notice
    open_files(page, [CT])
    wait_for_files(page, 1)
    page.get_by_role("treeitem", name="CT_small.dcm").click()
    page.wait_for_selector(".tag-tree .el")
    assert "CompressedSamples^CT1" in page.inner_text(".tag-tree")
    page.fill("#tags-search", "PatientName")
    page.wait_for_selector(".tag-tree .el.current", timeout=10000)
    with page.expect_download() as download_info:
        page.click("#tags-export-json")
    exported = tmp_path / "ct.json"
    download_info.value.save_as(exported)
    assert pydicom.Dataset.from_json(json.loads(exported.read_text())).PatientName == "CompressedSamples^CT1"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"later-stage-failed-{package}.png"))
    context.close()


def test_every_bundled_file_opens_or_explains_itself(page, server):
    files = sorted(p for p in TEST_FILES.rglob("*") if p.is_file())
    open_files(page, files)
    deadline = time.time() + 240
    while time.time() < deadline:
        listed = page.evaluate("window.dcmstudio.files.count() + window.dcmstudio.files.skipped.length")
        if listed >= len(files):
            break
        time.sleep(0.2)
    assert listed == len(files), f"only {listed} of {len(files)} files were listed or skipped"
    outcomes = page.evaluate("""async () => {
        const out = [];
        for (const f of window.dcmstudio.files.files.values()) {
            const r = await window.dcmstudio.python.call("tree", { path: f.path, name: f.name });
            out.push({ name: f.name, ok: r.ok, error: r.ok ? null : r.error });
        }
        return out;
    }""")
    assert len(outcomes) > 60
    for outcome in outcomes:
        if not outcome["ok"]:
            error = outcome["error"]
            assert error["type"] != "InternalError", outcome
            assert error["message"] and len(error["message"]) > 15, outcome
    for skipped in page.evaluate("window.dcmstudio.files.skipped"):
        assert len(skipped["reason"]) > 15, skipped
    # The worker is still alive and answering.
    assert page.evaluate("""() => {
        const first = [...window.dcmstudio.files.files.values()][0];
        return window.dcmstudio.python.call('describe', {path: first.path, name: 'again'});
    }""")["ok"]
    assert_same_origin_only(page, server)


EGRESS_PROBE = """
from js import fetch
try:
    await fetch("http://127.0.0.2:9/exfiltrate")
    result = "allowed"
except Exception as exc:
    result = "refused: " + str(exc)
result
"""


def python_in_worker(page, code):
    worker = next(w for w in page.workers if "worker" in w.url or w.url.startswith("blob:"))
    return worker.evaluate("code => self.dcmstudio.pyodide.runPythonAsync(code)", code)


def test_python_in_the_worker_cannot_reach_another_origin(page, server):
    assert python_in_worker(page, EGRESS_PROBE).startswith("refused")
    assert_same_origin_only(page, server)


def test_policy_binds_the_worker_where_the_host_sends_no_headers(browser, tmp_path):
    """A plain static host (right MIME types, no CSP header): the <meta> policy still binds."""
    port = free_port()
    script = (
        "import functools, http.server, sys\n"
        "h = http.server.SimpleHTTPRequestHandler\n"
        "h.extensions_map.update({'.wasm': 'application/wasm', '.mjs': 'text/javascript', '.js': 'text/javascript'})\n"
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), functools.partial(h, directory=sys.argv[1])).serve_forever()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(ROOT / "dist")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        headers = wait_until_serving(proc, url, 10)
        assert "Content-Security-Policy" not in headers
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-python='ready']", timeout=120000)
        assert python_in_worker(page, EGRESS_PROBE).startswith("refused")
        context.close()
    finally:
        proc.terminate()


def static_server(directory, script_mime):
    """A plain static server (no policy header) that sends static/worker.js as ``script_mime``."""
    port = free_port()
    script = (
        "import functools, http.server, sys\n"
        "class H(http.server.SimpleHTTPRequestHandler):\n"
        "    def guess_type(self, path):\n"
        f"        if path.endswith('worker.js'): return {script_mime!r}\n"
        "        return {'.wasm': 'application/wasm', '.mjs': 'text/javascript', '.js': 'text/javascript'}.get(\n"
        "            path[path.rfind('.'):], super().guess_type(path))\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), functools.partial(H, directory=sys.argv[1])).serve_forever()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(directory)])
    url = f"http://127.0.0.1:{port}/"
    wait_until_serving(proc, url, 10)
    return proc, url


def test_a_worker_that_cannot_load_is_reported_not_a_silent_hang(browser):
    proc, url = static_server(ROOT / "dist", "text/plain")
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#fatal:not([hidden])", timeout=30000)
        message = page.inner_text("#fatal")
        assert "could not start" in message or "failed" in message, message
        assert page.inner_text("#python-status") == "Python failed"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "worker-failed.png"))
        context.close()
    finally:
        proc.terminate()

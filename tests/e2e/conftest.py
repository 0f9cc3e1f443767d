"""A served dist/ and a headless Debian Chromium driven by Playwright, recording every request.

Never `playwright install` (it downloads a browser); the Debian chromium package is used instead.
Screenshots go to tests/artifacts/ (kept by CI as artifacts).
"""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path():
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "/usr/lib/chromium/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(proc, url, seconds):
    """Wait until the server `proc` answers at `url`; return the answer's headers.

    Raises RuntimeError with what the server printed if it exits, or after `seconds`.
    """
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.headers
        except OSError:
            if proc.poll() is not None:
                said = proc.stdout.read() if proc.stdout else f"exit status {proc.returncode}"
                raise RuntimeError(f"the server for {url} exited: {said}") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def start_site_server():
    """`python build.py serve` (which builds dist/ if needed) on a free port: (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "serve", "--port", str(port)],
                            cwd=ROOT, env={**os.environ, "DCMSTUDIO_QUIET": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    wait_until_serving(proc, url, 300)
    return proc, url


@pytest.fixture(scope="session")
def server():
    """The served dist/; yields its base URL."""
    proc, url = start_site_server()
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does this)")
    from playwright.sync_api import sync_playwright
    # Playwright gives every launch a new, empty profile of its own.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class RequestLog(list):
    """Every URL the page, its worker and its downloads asked for."""

    def off_origin(self, origin):
        return [u for u in self if not (u.startswith(origin) or u.startswith(("blob:", "data:")))]


@pytest.fixture
def page(browser, server, request):
    """A fresh page on the served app with Python ready; its requests are logged."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 860})
    log = RequestLog()
    context.on("request", lambda r: log.append(r.url))
    page = context.new_page()
    page.on("request", lambda r: log.append(r.url))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.request_log = log
    page.page_errors = errors
    page.goto(server)
    page.wait_for_selector("body[data-python='ready']", timeout=120000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def open_files(page, paths):
    """Load files through the page's file input, as a person picking them would."""
    page.set_input_files("#open-files", [str(p) for p in paths])

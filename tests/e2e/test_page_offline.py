"""Offline: after one visit the page reloads, opens, edits and downloads with the server gone,
from the service worker's cache of the whole build; and it can be installed (web app manifest)."""

import json
import time
import urllib.request

import pydicom

from conftest import ARTIFACTS, ROOT, open_files, start_site_server
from test_page_inspect import CT, wait_for_files


def wait_for(page, script, what, seconds=120):
    deadline = time.time() + seconds
    while True:
        value = page.evaluate(script)
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.25)


def test_reload_open_edit_and_download_with_the_server_stopped(browser, tmp_path):
    proc, url = start_site_server()
    origin = url.rstrip("/")
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
    requests = []
    context.on("request", lambda r: requests.append(r.url))
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        # A cache left by an older build, to be replaced when this build's worker takes over.
        page.evaluate("caches.open('dcmstudio-0000000000000000').then((c) => c.put('old', new Response('old')))")
        page.wait_for_selector("body[data-python='ready']", timeout=120000)
        wait_for(page, "navigator.serviceWorker.controller !== null", "the service worker controls the page")
        version = (ROOT / "dist" / "sw.js").read_text().splitlines()[0].split('"')[1]
        assert page.evaluate("caches.keys()") == [f"dcmstudio-{version}"]
        manifest = json.loads((ROOT / "dist" / "build-manifest.json").read_text())["sha256"]
        cached = page.evaluate(f"caches.open('dcmstudio-{version}').then((c) => c.keys())"
                               ".then((keys) => keys.map((r) => r.url))")
        assert {u[len(url):] for u in cached} >= set(manifest) - {"index.html"}

        # Installable: the manifest and its icons are served and name the page.
        web_manifest = page.evaluate("fetch('static/manifest.webmanifest').then((r) => r.json())")
        assert web_manifest["display"] == "standalone" and web_manifest["icons"]

        proc.terminate()
        proc.wait(10)
        try:
            urllib.request.urlopen(url, timeout=2)
            raise AssertionError("the server still answers")
        except OSError:
            pass

        page.reload()
        page.wait_for_selector("body[data-python='ready']", timeout=120000)
        open_files(page, [CT])
        wait_for_files(page, 1)
        page.click("#tab-edit")
        page.fill("#edit-path", "PatientName")
        page.fill("#edit-value", "OFFLINE^EDIT")
        page.click("#edit-add")
        page.wait_for_selector("#edit-pending li .op-set")
        with page.expect_download(timeout=60000) as download_info:
            page.click("#edit-apply")
        saved = tmp_path / "edited.dcm"
        download_info.value.save_as(saved)
        assert str(pydicom.dcmread(saved).PatientName) == "OFFLINE^EDIT"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "offline-edit.png"))
        assert not errors, errors
        off_origin = [u for u in requests if not u.startswith((origin, "blob:", "data:"))]
        assert not off_origin, off_origin
    finally:
        context.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)

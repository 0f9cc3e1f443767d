"""Make the README's screenshots in headless Chromium: a CT series scrolled in the viewer, dark
mode, the narrow layout. Uses the 300-slice CT of shared/peers/gen_data.py (D1):

    python docs/screenshots.py [series] [dark] [narrow]     (all three by default)

and prints how long each next slice took to appear while scrolling it (render-ahead at work).
"""

import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from conftest import CHROMIUM_FLAGS, chromium_path, open_files, start_site_server  # noqa: E402

DOCS = pathlib.Path(__file__).resolve().parent
DATA = pathlib.Path(os.environ.get("DCMSTUDIO_CACHE", pathlib.Path.home() / ".cache" / "dcmstudio")) / "bench-data" / "D1"

SCROLL_TIMINGS = """async (pause) => {
    const stage = document.querySelector('#image-stage');
    const canvas = document.querySelector('#image-canvas');
    const times = [];
    for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, pause));
        const before = canvas.getAttribute('aria-label');
        const start = performance.now();
        stage.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
        while (canvas.getAttribute('aria-label') === before) await new Promise((r) => requestAnimationFrame(r));
        times.push(Math.round(performance.now() - start));
    }
    return times;
}"""


def open_series(page, url, files):
    page.goto(url)
    page.wait_for_selector("body[data-python='ready']", timeout=120000)
    open_files(page, files)
    page.locator(".file-tree .row.instance").nth(len(files) - 1).wait_for(state="attached", timeout=120000)
    if page.locator("#drawer-toggle").is_visible():  # narrow: the file list is a drawer
        page.click("#drawer-toggle")
    page.click(".file-tree .row.series")
    page.click("#tab-image")
    page.wait_for_selector("#image-canvas:not([hidden])")


def series(browser, url, files):
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    open_series(page, url, files)
    page.focus("#image-stage")
    for _ in range(5):
        page.keyboard.press("PageDown")
    page.wait_for_timeout(1500)
    for pause in (300, 100, 0):
        print(f"next slice drawn after (ms), a key every {pause} ms:", page.evaluate(SCROLL_TIMINGS, pause))
    page.keyboard.press("Home")
    for _ in range(16):
        page.keyboard.press("PageDown")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(DOCS / "viewer-series.png"))


def dark(browser, url, files):
    page = browser.new_page(viewport={"width": 1280, "height": 760}, color_scheme="dark")
    open_series(page, url, files)
    page.click("#tab-tags")
    page.wait_for_selector(".tag-tree .el:not(.column-heads) .value")
    page.fill("#tags-search", "Patient")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(DOCS / "dark-mode.png"))


def narrow(browser, url, files):
    page = browser.new_page(viewport={"width": 390, "height": 780}, device_scale_factor=2)
    open_series(page, url, files)
    page.focus("#image-stage")
    for _ in range(12):
        page.keyboard.press("PageDown")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(DOCS / "narrow.png"))


SHOTS = {"series": series, "dark": dark, "narrow": narrow}


def main(names):
    from playwright.sync_api import sync_playwright
    files = sorted(DATA.glob("*.dcm"))
    proc, url = start_site_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            for name in names or SHOTS:
                SHOTS[name](browser, url, files)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main(sys.argv[1:])

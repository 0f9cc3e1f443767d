"""Make the README's screenshots in headless Chromium: a CT series scrolled in the viewer, dark
mode, the narrow layout. Uses the 300-slice CT of shared/peers/gen_data.py (D1):

    python docs/screenshots.py [DATA_DIR]

and prints how long each next slice took to appear while scrolling it (render-ahead at work).
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from conftest import CHROMIUM_FLAGS, chromium_path, open_files, start_site_server  # noqa: E402

DOCS = pathlib.Path(__file__).resolve().parent
DATA = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path.home() / ".cache/dcmstudio/bench-data/D1"

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
    page.locator(".file-tree .row.instance").nth(len(files) - 1).wait_for(timeout=120000)
    page.click(".file-tree .row.series")
    page.click("#tab-image")
    page.wait_for_selector("#image-canvas:not([hidden])")


def main():
    from playwright.sync_api import sync_playwright
    files = sorted(DATA.glob("*.dcm"))
    proc, url = start_site_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
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

            dark = browser.new_page(viewport={"width": 1280, "height": 760}, color_scheme="dark")
            open_series(dark, url, files)
            dark.click("#tab-tags")
            dark.wait_for_selector(".tag-tree .el:not(.column-heads) .value")
            dark.fill("#tags-search", "Patient")
            dark.wait_for_timeout(1500)
            dark.screenshot(path=str(DOCS / "dark-mode.png"))

            narrow = browser.new_page(viewport={"width": 390, "height": 780}, device_scale_factor=2)
            open_series(narrow, url, files)
            narrow.focus("#image-stage")
            for _ in range(12):
                narrow.keyboard.press("PageDown")
            narrow.wait_for_timeout(1500)
            narrow.screenshot(path=str(DOCS / "narrow.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()

"""Navigation → Python ready in Chromium, cold (empty profile) and warm (same profile, reload).

    python bench/startup.py [--runs 5]

Serves dist/ with build.py's server and prints the median of each; no timed assertions.
"""

import argparse
import pathlib
import shutil
import statistics
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import CHROMIUM_FLAGS, chromium_path, start_site_server  # noqa: E402


def ready_ms(page, url):
    page.goto(url)
    # wait_for_function would evaluate a string, which the page's policy rightly refuses.
    page.wait_for_selector("body[data-python='ready']", timeout=120000)
    ready, phases = page.evaluate("[window.dcmstudioReadyAt, window.dcmstudioPhaseTimings]")
    print(f"  ready at {ready:.0f} ms; worker phases began at (ms since worker start): {phases}")
    return ready


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-service-worker", action="store_true",
                        help="block the service worker (to see what it costs a warm start)")
    args = parser.parse_args()
    server, url = start_site_server()
    from playwright.sync_api import sync_playwright
    cold, warm = [], []
    try:
        with sync_playwright() as p:
            for _ in range(args.runs):
                profile = tempfile.mkdtemp(prefix="dcmstudio-bench-")
                context = p.chromium.launch_persistent_context(profile, executable_path=chromium_path(),
                                                               args=CHROMIUM_FLAGS,
                                                               service_workers="block" if args.no_service_worker
                                                               else "allow")
                page = context.new_page()
                cold.append(ready_ms(page, url))
                # A person's next visit comes after the service worker has cached the build: do not
                # time a reload that races its install (it fetches every file of the build).
                page.evaluate("async () => { const r = await navigator.serviceWorker?.ready; return r?.active?.state; }")
                page.wait_for_timeout(500)
                page.close()
                page = context.new_page()
                warm.append(ready_ms(page, url))
                context.close()
                shutil.rmtree(profile, ignore_errors=True)
    finally:
        server.terminate()
    print(f"navigation → Python ready, median of {args.runs}: cold {statistics.median(cold) / 1000:.2f} s, "
          f"warm {statistics.median(warm) / 1000:.2f} s")
    print("cold runs (ms):", [round(x) for x in cold])
    print("warm runs (ms):", [round(x) for x in warm])


if __name__ == "__main__":
    main()

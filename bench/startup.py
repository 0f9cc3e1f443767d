"""Navigation → Python ready in Chromium, cold (empty profile) and warm (same profile, reload).

    python bench/startup.py [--runs 5]

Serves dist/ with build.py's server and prints the median of each; no timed assertions. "Python
ready" is when files can be opened and inspected; it also prints when everything else (numpy,
Pillow, the volume readers, the wasm codecs: the later stage, which images and jobs wait for) has
loaded, as the answer time of a call that waits for it.
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
    """Milliseconds from navigation to "Python ready", and to the later stage loaded."""
    page.goto(url)
    # wait_for_function would evaluate a string, which the page's policy rightly refuses.
    page.wait_for_selector("body[data-python='ready']", timeout=120000)
    ready, phases = page.evaluate("[window.dcmstudioReadyAt, window.dcmstudioPhaseTimings]")
    # Any call outside opening and inspecting waits for the later stage and the codecs (worker.js).
    loaded = page.evaluate("async () => { await window.dcmstudio.python.call('deid_profile_info', {});"
                           " return performance.now(); }")
    print(f"  ready at {ready:.0f} ms, everything loaded at {loaded:.0f} ms; "
          f"worker phases began at (ms since worker start): {phases}")
    return ready, loaded


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-service-worker", action="store_true",
                        help="block the service worker (to see what it costs a warm start)")
    args = parser.parse_args()
    server, url = start_site_server()
    from playwright.sync_api import sync_playwright
    cold, warm = [], []  # (ready, loaded) of each run
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
    for label, index in (("Python ready", 0), ("everything loaded", 1)):
        print(f"navigation → {label}, median of {args.runs}: "
              f"cold {statistics.median(run[index] for run in cold) / 1000:.2f} s, "
              f"warm {statistics.median(run[index] for run in warm) / 1000:.2f} s")
    print("cold runs (ms, ready / loaded):", [(round(a), round(b)) for a, b in cold])
    print("warm runs (ms, ready / loaded):", [(round(a), round(b)) for a, b in warm])


if __name__ == "__main__":
    main()

"""axe-core, the accessibility checker, for the e2e tests only: never part of dist/.

Fetched once with `npm pack` into the cache folder outside the repository (as build.py fetches the
codecs) and checked by sha256; its script is evaluated in the page under test through the
browser's debugging protocol, so the page itself loads nothing more and its CSP stays as it is.
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile

AXE_VERSION = "4.14.1"
AXE_SHA256 = "e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745"  # of `npm pack`'s tarball
CACHE = pathlib.Path(os.environ.get("DCMSTUDIO_CACHE", pathlib.Path.home() / ".cache" / "dcmstudio")) / "test-npm"


def axe_source():
    """The text of axe.min.js from the pinned, checked tarball of axe-core."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tgz = CACHE / f"axe-core-{AXE_VERSION}.tgz"
    if not tgz.is_file():
        if shutil.which("npm") is None:
            raise RuntimeError(f"npm is needed once to fetch axe-core@{AXE_VERSION} for the accessibility tests")
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            subprocess.run(["npm", "pack", f"axe-core@{AXE_VERSION}", "--silent"], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
            shutil.move(next(pathlib.Path(tmp).glob("*.tgz")), tgz)
    actual = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if actual != AXE_SHA256:
        raise RuntimeError(f"{tgz} has sha256 {actual}, but tests/e2e/axe.py pins {AXE_SHA256}: delete it and "
                           "run again; if npm serves the same bytes, review that release before pinning it.")
    with tarfile.open(tgz) as archive:
        return archive.extractfile("package/axe.min.js").read().decode("utf-8")


def violations(page, source, context="document"):
    """axe's violations on `page` now (all its rules but the experimental ones), each as a short line."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(source)
    found = page.evaluate(f"""async () => {{
        const result = await axe.run({context}, {{ resultTypes: ['violations'] }});
        return result.violations.map((v) => ({{ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 4).map((n) => n.target.join(' ') + ': ' + n.failureSummary.split('\\n')[1]) }}));
    }}""")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in found]

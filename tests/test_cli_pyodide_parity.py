"""The command in CPython gives the bytes the page gives in Pyodide, for the same job.

The page's side runs inside Pyodide 0.27.7 in Node on build.py's dist/ (``tests/pyodide/run.mjs``,
the page's own runtime and wheels): ``tests/unit/test_cli_parity.py::test_page_digests_line``
runs the fixed jobs through ``dcmstudio.api`` as the worker does and prints the sha256 of every
output. The command's side is ``python -m dcmstudio.cli`` in this CPython, as a separate process
per run with a pool of two workers. Every output of every job must match.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from test_cli_parity import PARITY_LINE, cli_digests, copy_inputs, sha  # noqa: E402


def run_command(argv):
    env = {"PYTHONPATH": str(ROOT / "py"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "dcmstudio.cli", *argv, "--jobs", "2", "--pool", "always"], env=env,
                          capture_output=True, timeout=300).returncode


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js 20 is needed to run Pyodide")
def test_command_in_cpython_gives_the_pages_bytes_in_pyodide(tmp_path):
    result = subprocess.run(["node", str(ROOT / "tests" / "pyodide" / "run.mjs"), "-s",
                             "/repo/tests/unit/test_cli_parity.py::test_page_digests_line"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(PARITY_LINE)]
    assert len(lines) == 1, result.stdout[-5000:]
    page = json.loads(lines[0][len(PARITY_LINE):])
    # the same inputs: pydicom's files, and the one pydicom writes from them, are the same in both
    inputs = copy_inputs(str(tmp_path / "inputs"))
    assert page["inputs"] == {name: sha(pathlib.Path(path).read_bytes()) for path, name in inputs}
    command = cli_digests(str(tmp_path), run_command)
    for job in ("edit", "deid", "compress", "dump"):
        assert command[job] == page[job], job
    # 6 outputs and their residual scans, the mapping (4 files) and the report
    assert len(page["deid"]) == 17 and len(page["edit"]) == 6

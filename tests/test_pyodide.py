"""Runs tests/unit again inside Pyodide 0.27.7 in Node, on the dist/ that build.py made."""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js 20 is needed to run Pyodide")
def test_unit_suite_passes_inside_pyodide():
    result = subprocess.run(["node", str(ROOT / "tests" / "pyodide" / "run.mjs")], cwd=ROOT,
                            capture_output=True, text=True, timeout=1200)
    tail = "\n".join(result.stdout.splitlines()[-60:])
    print(result.stdout[-20000:])
    assert result.returncode == 0, f"unit tests failed inside Pyodide:\n{tail}\n{result.stderr[-3000:]}"
    assert " passed" in tail

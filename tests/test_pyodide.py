"""Runs tests/unit again inside Pyodide 0.27.7 in Node, on the dist/ that build.py made.

The run starts beside the CPython unit tests when both are in the session (see conftest.py);
this test waits for it and judges it.
"""

import shutil

import pytest

TIMEOUT = 1200


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js 20 is needed to run Pyodide")
def test_unit_suite_passes_inside_pyodide(pyodide_unit_run):
    status, output = pyodide_unit_run.result(timeout=TIMEOUT)
    tail = "\n".join(output.splitlines()[-60:])
    print(output[-20000:])
    assert status is not None, f"the unit tests inside Pyodide did not end within {TIMEOUT} s:\n{tail}"
    assert status == 0, f"unit tests failed inside Pyodide:\n{tail}"
    assert " passed" in tail

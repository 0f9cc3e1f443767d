"""The whole suite's order: the unit tests run in CPython while the same tests run inside Pyodide
in Node beside them (tests/test_pyodide.py); then the page's tests in Chromium, on their own.
And the process's locale, as each test found it.

Both unit runs are one process each, about as long as each other (2 to 3 minutes here): side by
side on two cores, the suite is shorter by one of them. The page's tests use every core (the
page, its workers, the browser) and have timing checks (a Cancel answered within 0.5 s), so
nothing runs beside them.
"""

import locale
import pathlib
import shutil
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYODIDE_UNIT_RUN = pytest.StashKey()


class PyodideUnitRun:
    """``node tests/pyodide/run.mjs`` (tests/unit inside Pyodide), started once, read once."""

    def __init__(self):
        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(["node", str(ROOT / "tests" / "pyodide" / "run.mjs")], cwd=ROOT,
                                        stdout=self.output, stderr=subprocess.STDOUT)

    def result(self, timeout):
        """``(exit status, everything it printed)`` once it has ended."""
        try:
            status = self.process.wait(timeout)
        finally:
            self.stop()
        self.output.seek(0)
        return status, self.output.read().decode("utf-8", "replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _runs_the_pyodide_suite(item):
    return item.path.name == "test_pyodide.py"


def _is_unit(item):
    return ROOT / "tests" / "unit" in item.path.parents


def pytest_collection_modifyitems(session, config, items):
    """The CPython unit tests first, then the Pyodide run's own test, then the rest as collected."""
    if any(_runs_the_pyodide_suite(item) for item in items):
        items[:] = ([item for item in items if _is_unit(item)]
                    + [item for item in items if _runs_the_pyodide_suite(item)]
                    + [item for item in items if not _is_unit(item) and not _runs_the_pyodide_suite(item)])


def pytest_collection_finish(session):
    """Start the Pyodide run now when it is among the tests to run and the unit tests go first."""
    items = session.items
    if (not session.config.option.collectonly and shutil.which("node") and items and _is_unit(items[0])
            and any(_runs_the_pyodide_suite(item) for item in items)):
        session.config.stash[PYODIDE_UNIT_RUN] = PyodideUnitRun()


def pytest_sessionfinish(session):
    run = session.config.stash.get(PYODIDE_UNIT_RUN, None)
    if run is not None:
        run.stop()  # a run cut short (-x, Ctrl-C) leaves no Node behind


@pytest.fixture
def pyodide_unit_run(request):
    """The Pyodide run of tests/unit: the one started beside the CPython unit tests, or a new one."""
    run = request.config.stash.get(PYODIDE_UNIT_RUN, None)
    return run if run is not None else PyodideUnitRun()


@pytest.fixture(autouse=True)
def locale_restored():
    """A test that leaves the process in another locale is undone after it: SimpleITK's readers
    leave it in "C", where Python's default encoding is ASCII and every later test that reads
    text (a file, a judge's output) would fail on its first non-ASCII byte."""
    before = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != before:
        locale.setlocale(locale.LC_ALL, before)

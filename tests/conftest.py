"""The whole suite's order: the unit tests run in CPython while the same tests run inside Pyodide
in Node beside them (tests/test_pyodide.py); then the page's tests in Chromium, on their own.
And the process's locale, as each test found it.

Both unit runs are one process each (a few unit tests start more: the command's worker pools, a
Dask cluster), about as long as each other (2 to 3 minutes here): side by side on two cores, the
suite is shorter by one of them. The unit tests' time limits are loose or in CPU time. The page's
tests use every core (the page, its workers, the browser) and time what a person waits for (a
Cancel answered within 0.5 s), so nothing runs beside them.
"""

import importlib.util
import locale
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
UNIT_TESTS = ROOT / "tests" / "unit"
PYODIDE_TEST = ROOT / "tests" / "test_pyodide.py"
PYODIDE_UNIT_RUN = pytest.StashKey()


class PyodideUnitRun:
    """``node tests/pyodide/run.mjs`` (tests/unit inside Pyodide, on dist/), started once, read once."""

    def __init__(self):
        if _build_script().needs_build():
            # dist/ older than its sources (tests/run.sh builds it first; a bare pytest may not)
            subprocess.run([sys.executable, str(ROOT / "build.py")], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(["node", str(ROOT / "tests" / "pyodide" / "run.mjs")], cwd=ROOT,
                                        stdout=self.output, stderr=subprocess.STDOUT)

    def result(self, timeout):
        """``(exit status or None if it did not end within ``timeout`` s, everything it printed)``."""
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            status = None
        self.stop()
        self.output.seek(0)
        return status, self.output.read().decode("utf-8", "replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _build_script():
    """The repository's build.py as a module (its name clashes with PyPA's ``build``)."""
    spec = importlib.util.spec_from_file_location("dcmstudio_build", ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runs_the_pyodide_suite(item):
    return item.path.resolve() == PYODIDE_TEST


def _is_unit(item):
    return UNIT_TESTS in item.path.resolve().parents


def pytest_collection_modifyitems(session, config, items):
    """The CPython unit tests first, then the Pyodide run's own test, then the rest as collected."""
    if any(_runs_the_pyodide_suite(item) for item in items):
        items[:] = ([item for item in items if _is_unit(item)]
                    + [item for item in items if _runs_the_pyodide_suite(item)]
                    + [item for item in items if not _is_unit(item) and not _runs_the_pyodide_suite(item)])


def pytest_collection_finish(session):
    """Start the Pyodide run now when only unit tests come before its test (the order set above
    holds: no --ff or --nf reordered it, no xdist worker runs a share of the items)."""
    items = session.items
    if session.config.option.collectonly or hasattr(session.config, "workerinput") or not shutil.which("node"):
        return
    first = next((i for i, item in enumerate(items) if _runs_the_pyodide_suite(item)), 0)
    if first and all(_is_unit(item) for item in items[:first]):
        session.config.stash[PYODIDE_UNIT_RUN] = PyodideUnitRun()


def pytest_sessionfinish(session):
    run = session.config.stash.get(PYODIDE_UNIT_RUN, None)
    if run is not None:
        run.stop()  # a run cut short (-x, Ctrl-C) leaves no Node behind


@pytest.fixture
def build_script():
    """build.py as a fresh module of its own (a test may patch its globals)."""
    return _build_script()


@pytest.fixture
def pyodide_unit_run(request):
    """The Pyodide run of tests/unit: the one started beside the CPython unit tests, or a new one."""
    run = request.config.stash.get(PYODIDE_UNIT_RUN, None) or PyodideUnitRun()
    yield run
    run.stop()
    run.output.close()


@pytest.fixture(autouse=True)
def locale_restored():
    """A test that leaves the process in another locale is undone after it: SimpleITK's readers
    leave it in "C", where Python's default encoding is ASCII and every later test that reads
    text (a file, a judge's output) would fail on its first non-ASCII byte."""
    before = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != before:
        locale.setlocale(locale.LC_ALL, before)

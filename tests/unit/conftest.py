"""Shared fixtures: the real files pydicom's wheel ships (never downloaded, see FACTS)."""

import os
import pathlib
import time

import pydicom
import pytest

TEST_FILES_DIR = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"


def bundled_dicom_files():
    """Every file under pydicom/data/test_files, sorted by name (DICOM or not)."""
    return sorted(p for p in TEST_FILES_DIR.rglob("*") if p.is_file())


@pytest.fixture
def test_files_dir():
    return TEST_FILES_DIR


def bundled(name):
    """Path of one bundled test file by its name relative to test_files."""
    path = TEST_FILES_DIR / name
    assert path.is_file(), f"pydicom's wheel no longer ships {name}"
    return path


def cpu_clock():
    """A clock of CPU time (a hang spins; other work on a shared machine, such as the suite's other
    unit run beside this one, does not count). Pyodide's process_time stands still: there, the
    CPU time of the Node process that runs it."""
    if os.environ.get("DCMSTUDIO_IN_PYODIDE") != "1":
        return time.process_time
    try:
        from js import process  # noqa: PLC0415 -- Node's process object, in the test runner only

        def node_cpu_seconds():
            used = process.cpuUsage()
            return (used.user + used.system) / 1e6
        node_cpu_seconds()
        return node_cpu_seconds
    except (ImportError, AttributeError):
        return time.perf_counter  # a browser: wall time


_codecs_at_start = []


@pytest.fixture(autouse=True)
def codec_registry_restored():
    """Codecs registered during a test (directly, or through the command, which registers
    pylibjpeg's JPEG 2000 where it is installed, also from a module-scoped fixture) are withdrawn
    after it: each test starts with the codecs the runtime had when the session began."""
    from dcmstudio import codecs
    if not _codecs_at_start:
        _codecs_at_start.append((set(codecs.registered_decoders()), set(codecs.registered_encoders())))
    yield
    decoders, encoders = _codecs_at_start[0]
    for ts in set(codecs.registered_decoders()) - decoders:
        codecs.unregister_decoder(ts)
    for ts in set(codecs.registered_encoders()) - encoders:
        codecs.unregister_encoder(ts)

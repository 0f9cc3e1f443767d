"""The page's two-stage start-up (dcmstudio.startup): opening and inspecting files before numpy has
arrived, and pydicom and dcmstudio imported again, with numpy, once it has.

Each case runs in a fresh CPython process in which numpy cannot be imported until the script lets
it, as in the page between "Python ready" and the later stage.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from conftest import bundled

IN_PYODIDE = sys.platform == "emscripten"
needs_processes = pytest.mark.skipif(IN_PYODIDE, reason="Pyodide starts no processes")
PY_DIR = pathlib.Path(__file__).resolve().parents[2] / "py"

# Run in the child: numpy and Pillow are refused until `arrive()`, as they are missing from the
# page's start-up.
PREAMBLE = """
import importlib.abc, json, sys
class NoNumpy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "PIL"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
blocker = NoNumpy()
sys.meta_path.insert(0, blocker)
def arrive():
    sys.meta_path.remove(blocker)
def call(api, fn, **args):
    return json.loads(api.call(fn, json.dumps(args)))
"""


def run_child(body):
    env = {**os.environ, "PYTHONPATH": str(PY_DIR)}
    result = subprocess.run([sys.executable, "-c", PREAMBLE + body], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@needs_processes
def test_opening_and_inspecting_need_no_numpy(tmp_path):
    # Every request the page's worker serves before the later stage (static/worker.js
    # OPS_BEFORE_LATER_STAGE, CALLS_BEFORE_LATER_STAGE) works without numpy, and does not try it.
    out = tmp_path / "out"
    out.mkdir()
    answers = run_child(f"""
import os, tempfile
from dcmstudio import api
api._scratch_dir.cache_clear()
tempfile.tempdir = {str(out)!r}
path, name = {str(bundled("CT_small.dcm"))!r}, "CT_small.dcm"
answers = {{
    "describe": call(api, "describe", path=path, name=name),
    "tree": call(api, "tree", path=path, name=name),
    "search": call(api, "search", path=path, name=name, query="PatientName"),
    "export_text": call(api, "export_text", path=path, name=name),
    "export_json": call(api, "export_json", path=path, name=name),
    "member_names": call(api, "member_names", names=[name, name]),
    "forget": call(api, "forget", paths=[path]),
}}
answers["numpy_imported"] = "numpy" in sys.modules
print(json.dumps(answers))
""")
    assert answers.pop("numpy_imported") is False
    for fn, answer in answers.items():
        assert answer["ok"], (fn, answer)
    assert answers["describe"]["dicom"] and answers["describe"]["patient"]["name"] == "CompressedSamples^CT1"
    assert answers["search"]["matches"]
    assert len(set(answers["member_names"]["members"])) == 2


@needs_processes
def test_numpy_arriving_later_imports_pydicom_and_dcmstudio_again():
    answers = run_child(f"""
import dcmstudio.api as first
import pydicom.config
before = {{"have_numpy": pydicom.config.have_numpy,
          "decodes_rle": call(first, "frame_info", path={str(bundled("MR_small_RLE.dcm"))!r}, name="rle")["ok"]}}
from dcmstudio import startup
not_yet = startup.import_again_with_numpy()  # numpy still missing: nothing changes
arrive()
answer = call(first, "later_stage_loaded")
import dcmstudio.api as fresh, pydicom.config, pydicom.pixels.decoders.base as base
after = call(fresh, "render_frame", path={str(bundled("MR_small_RLE.dcm"))!r}, name="rle")
print(json.dumps({{"before": before, "not_yet": not_yet, "answer": answer, "same_module": fresh is first,
                  "have_numpy": pydicom.config.have_numpy, "HAVE_NP": base.HAVE_NP, "rendered": after["ok"],
                  "again": call(fresh, "later_stage_loaded")}}))
""")
    assert answers["before"] == {"have_numpy": False, "decodes_rle": False}
    assert answers["not_yet"] is False
    assert answers["answer"]["ok"] and answers["answer"]["imported_again"] is True
    assert answers["same_module"] is False
    assert answers["have_numpy"] is True and answers["HAVE_NP"] is True
    assert answers["rendered"] is True
    # Once pydicom has numpy, a second announcement imports nothing again.
    assert answers["again"]["ok"] and answers["again"]["imported_again"] is False


@needs_processes
def test_while_the_later_stage_loads_numpy_is_refused_whole_then_imported():
    # In the page, numpy's files are written before its wasm libraries are loaded: an import in
    # between fails half-way. While the stage loads (later_stage_loading), dcmstudio refuses it
    # whole, even with numpy there, and leaves no part of it imported.
    answers = run_child("""
import dcmstudio.api as first
arrive()  # numpy's and Pillow's files are there, as half-way through the page's later stage
loading = call(first, "later_stage_loading")
try:
    import numpy
    refused = None
except ImportError as exc:
    refused = str(exc)
left_over = sorted(name for name in sys.modules if name.split(".")[0] in ("numpy", "PIL"))
try:
    import PIL.Image
    pillow_refused = False
except ImportError:
    pillow_refused = True
loaded = call(first, "later_stage_loaded")
import numpy
print(json.dumps({"loading": loading, "refused": refused, "left_over": left_over, "pillow_refused": pillow_refused,
                  "loaded": loaded, "numpy": numpy.__name__}))
""")
    assert answers["loading"]["ok"]
    assert answers["refused"] == "numpy is still loading"
    assert answers["left_over"] == [] and answers["pillow_refused"] is True
    assert answers["loaded"]["ok"] and answers["loaded"]["imported_again"] is True
    assert answers["numpy"] == "numpy"


INSPECT_EVERY_BUNDLED_FILE = """
import glob, os, pydicom.data
from dcmstudio import api
folder = os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm"))
answers = {}
for path in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)):
    if os.path.isfile(path):
        args = {"path": path, "name": os.path.basename(path)}
        answers[os.path.relpath(path, folder)] = [call(api, fn, **args) for fn in ("describe", "tree")]
print(json.dumps(answers, sort_keys=True, default=str))
"""


@needs_processes
def test_files_inspected_before_numpy_arrives_read_as_after():
    # pydicom's own files (odd ones among them: deflated, big endian, cut off, no preamble...),
    # described and listed before the later stage and with numpy there: the same answers.
    before = run_child(INSPECT_EVERY_BUNDLED_FILE)
    after = run_child("arrive()\n" + INSPECT_EVERY_BUNDLED_FILE)
    assert len(before) > 100
    assert before == after

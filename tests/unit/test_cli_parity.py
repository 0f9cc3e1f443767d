"""Parity: the command gives the same bytes as the page for the same inputs, options and secret.

``page_digests`` runs a fixed set of jobs exactly as the page's worker does (``dcmstudio.api.call``
with ``job_start`` / ``job_step`` / ``job_finish``, the ZIP assembled from its streamed parts);
``cli_digests`` runs the same jobs through the command. Both give ``{job: {output name: sha256}}``.

Here (in CPython and again inside Pyodide) the page's digests are compared with the command run
in the same process. ``tests/test_cli_pyodide_parity.py`` then runs this file inside Pyodide, takes the
page's digests from the line ``test_page_digests_line`` prints, and compares them with the
command run in CPython as a separate process with ``--jobs 2``: the page's runtime and the
command's give the same bytes.
"""

import hashlib
import io
import json
import os
import shutil
import sys
import zipfile

import pydicom
import pytest

from dcmstudio import api
from dcmstudio.archive import read_parts
from dcmstudio.cli import main

# pydicom's bundled files, found without conftest: tests/test_cli_pyodide_parity.py imports this
# module, and there the name conftest may be tests/e2e's
TEST_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")

INPUTS = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "SC_rgb_small_odd.dcm", "MR_small_implicit.dcm")
EDITS = [{"op": "set", "path": "PatientName", "value": "DOE^{index:03d}"},
         {"op": "set", "path": "StudyDescription", "value": "parity Ü {name}"},
         {"op": "add", "path": '(0009,"DCMSTUDIO PARITY",01)', "value": "x{index}", "vr": "LO"},
         {"op": "delete", "path": "PatientBirthDate"}]
# Clean Descriptors scrubs descriptions of every identifying value the first pass learned:
# CROSS's names a patient met only in a later file (SC_rgb_small_odd.dcm's).
DEID_OPTIONS = {"secret": "parity secret", "retain_long_modified_dates": True,
                "retain_patient_characteristics": True, "clean_descriptors": True, "pseudonym_prefix": "PAR"}
CROSS = ("A_followup.dcm", "CT_small.dcm", "Follow-up of Lestrade")
RLE = "1.2.840.10008.1.2.5"
PARITY_LINE = "DCMSTUDIO-PARITY "


def copy_inputs(folder):
    """The fixed inputs (pydicom's bundled files, the same wheel in both runtimes) in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    for name in INPUTS:
        shutil.copyfile(os.path.join(TEST_FILES, name), os.path.join(folder, name))
    name, source, description = CROSS
    dataset = pydicom.dcmread(os.path.join(TEST_FILES, source))
    dataset.StudyDescription = description
    dataset.save_as(os.path.join(folder, name))
    # in the command's order (a folder's files sorted by name): {index} and deid's output names follow it
    return [(os.path.join(folder, name), name) for name in sorted([*INPUTS, CROSS[0]])]


def sha(data):
    return hashlib.sha256(data).hexdigest()


def _call(endpoint, **args):
    result = json.loads(api.call(endpoint, json.dumps(args)))
    assert result["ok"], result
    return result


def residual_digest(report):
    """The residual scan's hits of one file's report, as a digest (they quote identifying values)."""
    return sha(json.dumps(report["residual"], sort_keys=True).encode())


def page_job(kind, options, inputs):
    """One task as the worker runs it: ``{name: sha256}`` of the ZIP's members and the other downloads."""
    # the de-identification's first pass, as static/wb-deid.js sends it: every file, before any output
    learn = [{"path": path, "name": name, "learn": True} for path, name in inputs] if kind == "deid" else []
    job = _call("job_start", kind=kind, options=options, count=len(learn) + len(inputs))["job"]
    for item in learn:
        assert _call("job_step", job=job, item=item) == {"ok": True, "learned": item["name"]}
    parts, digests = [], {}
    for path, name in inputs:
        step = _call("job_step", job=job, item={"path": path, "name": name})
        if "error" in step:
            digests["failed: " + name] = step["error"]["message"]
        if kind == "deid" and step.get("report"):
            digests["residual: " + name] = residual_digest(step["report"])
        parts += step.get("chunks", [])
    finish = _call("job_finish", job=job)
    parts += finish.get("chunks", [])
    with zipfile.ZipFile(io.BytesIO(read_parts(parts))) as z:
        for member in z.namelist():
            digests[member] = sha(z.read(member))
    for output in finish.get("outputs", []):
        if output["name"].startswith("IDENTIFYING-"):
            with open(output["path"], "rb") as f:
                digests[output["name"]] = sha(f.read())
    return digests


def page_digests(folder):
    """The fixed jobs through the page's boundary."""
    inputs = copy_inputs(os.path.join(folder, "in"))
    digests = {"inputs": {name: sha(open(path, "rb").read()) for path, name in inputs},
               "edit": page_job("edit", {"edits": EDITS}, inputs),
               "deid": page_job("deid", DEID_OPTIONS, inputs),
               "compress": page_job("compress", {"transfer_syntax": RLE}, inputs),
               "dump": {}}
    for path, name in inputs:
        for endpoint, suffix in (("export_text", ".txt"), ("export_json", ".json")):
            with open(_call(endpoint, path=path, name=name)["outputs"][0]["path"], "rb") as f:
                digests["dump"][os.path.splitext(name)[0] + suffix] = sha(f.read())
    return digests


def cli_commands(folder):
    """``{job: [argv for each run]}`` of the command that does the fixed jobs; outputs under ``folder``."""
    with open(os.path.join(folder, "edits.json"), "w", encoding="utf-8") as f:
        json.dump({"dcmstudio_edits": 1, "edits": EDITS}, f)
    with open(os.path.join(folder, "deid.json"), "w", encoding="utf-8") as f:
        json.dump(DEID_OPTIONS, f)
    source, out = os.path.join(folder, "in"), os.path.join(folder, "out")
    quiet = ["-q", "--report", os.path.join(folder, "report.jsonl")]
    return {
        "edit": [["edit", source, "-o", f"{out}/edit", "--edits", f"{folder}/edits.json", *quiet]],
        "deid": [["deid", source, "-o", f"{out}/deid/deidentified", "--options", f"{folder}/deid.json",
                  "--mapping", f"{out}/deid", *quiet]],
        "compress": [["compress", source, "-o", f"{out}/compress.zip", "--syntax", "rle", *quiet]],
        "dump": [["dump", source, "-o", f"{out}/dump", *quiet],
                 ["dump", source, "-o", f"{out}/dump", "--json", *quiet]],
    }


def cli_digests(folder, run):
    """The fixed jobs through the command; ``run(argv)`` runs it and returns its exit status."""
    copy_inputs(os.path.join(folder, "in"))
    digests = {}
    for job, runs in cli_commands(folder).items():
        reported = {}
        for argv in runs:
            status = run(argv)
            with open(os.path.join(folder, "report.jsonl"), encoding="utf-8") as f:
                for line in map(json.loads, f):
                    if "error" in line:
                        reported["failed: " + line["file"]] = line["error"]
                    elif job == "deid" and "report" in line:
                        reported["residual: " + line["file"]] = residual_digest(line["report"])
            assert status == (1 if any(k.startswith("failed") for k in reported) else 0), argv
        output = os.path.join(folder, "out", "compress.zip" if job == "compress" else job)
        digests[job] = {**folder_digests(output), **reported}
    return digests


def folder_digests(path):
    """``{relative name: sha256}`` of every file under a folder, or every member of a ZIP."""
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            return {member: sha(z.read(member)) for member in z.namelist()}
    digests = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            relative = os.path.relpath(full, path).replace(os.sep, "/")
            digests[relative.removeprefix("deidentified/")] = sha(open(full, "rb").read())
    return digests


def run_in_process(argv):
    return main([*argv, "--jobs", "1"])


def test_page_digests_line(tmp_path, capsys):
    """Prints the page's digests for tests/test_cli_pyodide_parity.py (run inside Pyodide with -s)."""
    digests = page_digests(str(tmp_path))
    count = len(INPUTS) + 1
    assert len(digests["edit"]) == count and len(digests["compress"]) == count
    assert [key for key in digests["compress"] if key.startswith("failed")] == ["failed: rtplan.dcm"]
    assert {"IDENTIFYING-deid-mapping.csv", "IDENTIFYING-deid-mapping.json"} <= set(digests["deid"])
    assert sum(key.startswith("residual: ") for key in digests["deid"]) == count
    # the page's report and the MIDI-B pairs; outputs numbered from 1 (the first pass's steps not counted)
    assert {"IDENTIFYING-deidentified_report.jsonl", "IDENTIFYING-uid_mapping.csv",
            "IDENTIFYING-patient_id_mapping.csv"} <= set(digests["deid"])
    assert sorted(key[-9:] for key in digests["deid"] if key.endswith(".dcm") and "/" in key) == \
        [f"{i:05d}.dcm" for i in range(1, count + 1)]
    if sys.platform == "emscripten":  # only the Pyodide run is read; CPython's output stays quiet
        with capsys.disabled():
            print("\n" + PARITY_LINE + json.dumps(digests, sort_keys=True))


@pytest.fixture(scope="module")
def page_and_command(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    return page_digests(str(folder / "page")), cli_digests(str(folder / "cli"), run_in_process)


@pytest.mark.parametrize("job", ["edit", "deid", "compress", "dump"])
def test_command_gives_the_pages_bytes(page_and_command, job):
    page, command = page_and_command
    assert command[job] == page[job]

"""The ``dcmstudio`` command: inputs and outputs, reports, exit status, and the same bytes from one
process, a process pool and a Dask cluster."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pydicom
import pytest

from dcmstudio.cli import edit_from_text, files, main

from conftest import bundled

IN_PYODIDE = sys.platform == "emscripten"
needs_processes = pytest.mark.skipif(IN_PYODIDE, reason="Pyodide starts no processes")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def study(folder, names=("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")):
    """A small input folder: a few files, one in a subfolder, and one that is not DICOM."""
    os.makedirs(os.path.join(folder, "sub"))
    for name in names:
        shutil.copyfile(bundled(name), os.path.join(folder, name))
    shutil.copyfile(bundled("MR_small_implicit.dcm"), os.path.join(folder, "sub", "implicit.dcm"))
    with open(os.path.join(folder, "sub", "notes.txt"), "w") as f:
        f.write("not DICOM")
    return folder


def digests(path):
    """``{relative name: sha256}`` of a folder's files or a ZIP's members."""
    if str(path).endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            return {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}
    found = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            found[os.path.relpath(full, path)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return found


def report_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---- arguments ----------------------------------------------------------------------------------

def test_edit_text_reads_like_dcmodify():
    assert edit_from_text("set", "PatientName=DOE^J=R") == {"op": "set", "path": "PatientName",
                                                           "value": "DOE^J=R"}
    assert edit_from_text("add", '(0009,"A=B",02) LO=x') == {"op": "add", "path": '(0009,"A=B",02)',
                                                            "value": "x", "vr": "LO"}
    assert edit_from_text("delete", " (0010,0030) ") == {"op": "delete", "path": "(0010,0030)"}
    with pytest.raises(ValueError):
        edit_from_text("set", "PatientName")


def test_bad_usage_exits_2_and_writes_nothing(tmp_path, capsys):
    source = study(str(tmp_path / "in"))
    assert main(["edit", source, "-o", str(tmp_path / "out")]) == 2  # no edits given
    assert "give the edits" in capsys.readouterr().err
    assert main(["edit", source, "-o", str(tmp_path / "out"), "--set", "NoSuchKeyword=1"]) == 2
    assert main(["edit", str(tmp_path / "missing"), "-o", str(tmp_path / "out"), "--delete", "PatientName"]) == 2
    assert main(["deid", source, "-o", str(tmp_path / "out"), "--option", "no_such_option"]) == 2
    assert main(["compress", source, "-o", str(tmp_path / "out"), "--syntax", "1.2.3"]) == 2
    assert "RLE Lossless (1.2.840.10008.1.2.5)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["edit", source])  # argparse: no -o
    assert exit_.value.code == 2


def test_writing_into_an_input_folder_is_refused(tmp_path, capsys):
    source = study(str(tmp_path / "in"))
    before = digests(source)
    for output in (os.path.join(source, "out"), os.path.join(source, "sub", "out.zip"), source,
                   os.path.join(source, "CT_small.dcm")):
        assert main(["edit", source, "-o", output, "--delete", "PatientName", "-q"]) == 2
        assert "never writes into its inputs" in capsys.readouterr().err
    assert main(["edit", os.path.join(source, "sub"), "-o", str(tmp_path), "--delete", "PatientName"]) == 2
    assert digests(source) == before


def test_folder_output_keeps_relative_paths_and_names_failures(tmp_path, capsys):
    source = study(str(tmp_path / "in"))
    before = digests(source)
    report = tmp_path / "report.jsonl"
    status = main(["edit", source, "-o", str(tmp_path / "out"), "--set", "PatientName=DOE^{index}",
                   "--jobs", "1", "--report", str(report)])
    assert status == 1  # notes.txt is not DICOM
    err = capsys.readouterr().err
    assert "failed: sub/notes.txt: " in err and "[5/5] sub/notes.txt: failed" in err
    assert sorted(digests(tmp_path / "out")) == ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm",
                                                 os.path.join("sub", "implicit.dcm")]
    lines = report_lines(report)
    assert [line.get("file") for line in lines[:5]] == ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm",
                                                        "sub/implicit.dcm", "sub/notes.txt"]
    assert "error" in lines[4] and lines[4]["file"] == "sub/notes.txt"
    summary = lines[-1]["summary"]
    assert summary["files"] == 5 and summary["succeeded"] == 4 and summary["outputs"] == 4
    assert pydicom.dcmread(tmp_path / "out" / "sub" / "implicit.dcm").PatientName == "DOE^4"
    assert digests(source) == before  # inputs never modified


def test_quiet_prints_no_progress(tmp_path, capsys):
    source = study(str(tmp_path / "in"), names=("CT_small.dcm",))
    os.remove(os.path.join(source, "sub", "notes.txt"))
    assert main(["dump", source, "-o", str(tmp_path / "out"), "-q", "--jobs", "1",
                 "--report", str(tmp_path / "r.jsonl")]) == 0
    assert capsys.readouterr().err == ""


def test_quiet_prints_nothing_but_failures(tmp_path, capsys):
    # --quiet without --report: no report lines and no summary on standard output (deid printed
    # them all); the failure is still named on standard error, and --report still gets every line
    source = study(str(tmp_path / "in"), names=("CT_small.dcm",))
    for command in (["deid", "--secret", "s", "--mapping", str(tmp_path / "map")], ["edit", "--set", "PatientName=X"],
                    ["dump"]):
        out_dir = tmp_path / command[0]
        assert main([command[0], source, "-o", str(out_dir), "-q", "--jobs", "1", *command[1:]]) == 1
        out, err = capsys.readouterr()
        assert out == ""
        # once: not as it happens and again at the end
        assert len(err.splitlines()) == 1 and err.startswith("failed: sub/notes.txt: "), err
        assert len(digests(out_dir)) == 2
    report = tmp_path / "r.jsonl"
    assert main(["deid", source, "-o", str(tmp_path / "again"), "-q", "--jobs", "1", "--secret", "s",
                 "--mapping", str(tmp_path / "map2"), "--report", str(report)]) == 1
    assert capsys.readouterr().out == ""
    assert len(report_lines(report)) == 4 and "summary" in report_lines(report)[-1]


def test_several_inputs_keep_their_folder_names(tmp_path):
    first, second = study(str(tmp_path / "a")), study(str(tmp_path / "b"))
    items = list(files.Inputs([first, second, str(bundled("rtdose.dcm"))]))
    names = [item["name"] for item in items]
    assert names[0] == "a/CT_small.dcm" and "b/sub/implicit.dcm" in names and names[-1] == "rtdose.dcm"
    assert [item["index"] for item in items] == list(range(1, len(items) + 1))
    with pytest.raises(files.UsageError, match="would both be written as CT_small.dcm"):
        files.Inputs([os.path.join(first, "CT_small.dcm"), os.path.join(second, "CT_small.dcm")])
    os.makedirs(tmp_path / "c" / "a")
    with pytest.raises(files.UsageError, match="would both be written as a"):
        files.Inputs([first, str(tmp_path / "c" / "a")])


def test_convert_writes_a_series_from_a_dicom_series(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    for i in range(3):
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.20{i + 1}"
        ds.ImagePositionPatient = [0, 0, float(i)]
        ds.InstanceNumber = i + 1
        ds.save_as(source / f"{i}.dcm")
    report = tmp_path / "r.jsonl"
    assert main(["convert", str(source), "-o", str(tmp_path / "series.zip"), "--modality", "CT",
                 "--report", str(report), "-q"]) == 0
    with zipfile.ZipFile(tmp_path / "series.zip") as z:
        members = [n for n in z.namelist() if n.endswith(".dcm")]
        assert len(members) == 3
        first = pydicom.dcmread(z.open(members[0]))
    assert first.Modality == "CT" and first.Rows == ds.Rows
    assert report_lines(report)[-1]["summary"]["command"] == "convert"


def test_create_pdf_and_secondary_capture(tmp_path):
    pdf = tmp_path / "in" / "letter.pdf"
    pdf.parent.mkdir()
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    assert main(["create", "pdf", str(pdf), "-o", str(tmp_path / "out"), "-q",
                 "--report", str(tmp_path / "r.jsonl")]) == 0
    made = pydicom.dcmread(tmp_path / "out" / "letter_pdf.dcm")
    assert made.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert bytes(made.EncapsulatedDocument).startswith(b"%PDF-1.4")
    picture = pytest.importorskip("PIL.Image").new("L", (8, 4), 7)
    picture.save(tmp_path / "in" / "pic.png")
    assert main(["create", "sc", str(tmp_path / "in" / "pic.png"), "-o", str(tmp_path / "sc.zip"), "-q",
                 "--report", str(tmp_path / "r.jsonl")]) == 0
    with zipfile.ZipFile(tmp_path / "sc.zip") as z:
        sc = pydicom.dcmread(z.open("pic_SC.dcm"))
    assert (sc.Rows, sc.Columns) == (4, 8) and sc.pixel_array.max() == 7


# ---- the same bytes however the files run --------------------------------------------------------

def copies(folder, count):
    """``count`` files of one study (CT_small with its own SOP Instance UID each)."""
    os.makedirs(folder)
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    for i in range(count):
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{i + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(os.path.join(folder, f"{i:03d}.dcm"))
    return folder


def deid_run(source, output, mapping, *extra):
    return main(["deid", source, "-o", output, "--mapping", mapping, "--secret", "s", "-q",
                 "--option", "retain_long_modified_dates", "--report", mapping + "/r.jsonl", *extra])


def identifying(folder):
    """``{name: bytes}`` of the IDENTIFYING files (mapping, report) in ``folder``."""
    return {path.name: path.read_bytes() for path in folder.glob("IDENTIFYING-*")}


@needs_processes
def test_deid_in_a_pool_gives_the_bytes_and_mapping_of_one_process(tmp_path):
    source = study(str(tmp_path / "in"))
    for name, jobs in (("one", "1"), ("pool", "2")):
        os.makedirs(tmp_path / name)
        assert deid_run(source, str(tmp_path / name / "files"), str(tmp_path / name), "--jobs", jobs,
                        "--pool", "always") == 1
        summary = report_lines(tmp_path / name / "r.jsonl")[-1]["summary"]
        assert summary["worker_processes"] == (0 if jobs == "1" else 2)
        # the inputs, as every command's summary counts them (notes.txt is not DICOM)
        assert summary["files"] == 5 and summary["succeeded"] == 4 and len(summary["failed"]) == 1
    one, pool = digests(tmp_path / "one" / "files"), digests(tmp_path / "pool" / "files")
    assert one == pool and len(one) == 4
    assert identifying(tmp_path / "one") == identifying(tmp_path / "pool")
    assert len(identifying(tmp_path / "one")) == 5  # the mapping, the MIDI-B pairs, the page's report
    mapping = json.loads((tmp_path / "pool" / "IDENTIFYING-deid-mapping.json").read_text())
    # MR_small and MR_small_implicit are one patient: one pseudonym, two files
    assert sorted(p["files"] for p in mapping["patients"]) == [1, 1, 2] and mapping["deterministic"]


@needs_processes
def test_new_uids_agree_across_processes(tmp_path):
    source = copies(str(tmp_path / "in"), 6)
    assert main(["edit", source, "-o", str(tmp_path / "out.zip"), "--remap-uids", "--jobs", "3", "-q",
                 "--pool", "always", "--report", str(tmp_path / "r.jsonl")]) == 0
    assert report_lines(tmp_path / "r.jsonl")[-1]["summary"]["worker_processes"] == 3
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        edited = [pydicom.dcmread(z.open(n)) for n in sorted(z.namelist())]
    original = pydicom.dcmread(bundled("CT_small.dcm"))
    assert len({ds.StudyInstanceUID for ds in edited}) == 1
    assert edited[0].StudyInstanceUID != original.StudyInstanceUID
    assert len({ds.SOPInstanceUID for ds in edited}) == 6
    assert all(ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID for ds in edited)


@needs_processes
def test_the_console_script_runs_as_its_own_process(tmp_path):
    source = copies(str(tmp_path / "in"), 2)
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "py")}
    result = subprocess.run([sys.executable, "-m", "dcmstudio.cli", "dump", source, "-o",
                             str(tmp_path / "out"), "--json", "--jobs", "2", "--pool", "always"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line.get("file") for line in lines[:2]] == ["000.dcm", "001.dcm"]
    assert "[2/2] 001.dcm: ok" in result.stderr  # plain lines: stderr is not a terminal
    data = json.loads((tmp_path / "out" / "000.json").read_text())
    assert data["00100010"]["vr"] == "PN"


@needs_processes
def test_a_dask_cluster_gives_the_bytes_of_one_process(tmp_path):
    distributed = pytest.importorskip("distributed")
    source = study(str(tmp_path / "in"))
    os.makedirs(tmp_path / "one")
    assert deid_run(source, str(tmp_path / "one" / "files"), str(tmp_path / "one"), "--jobs", "1") == 1
    os.makedirs(tmp_path / "dask")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            assert len(client.scheduler_info()["workers"]) == 2
        status = deid_run(source, str(tmp_path / "dask" / "files"), str(tmp_path / "dask"),
                          "--dask", cluster.scheduler_address)
        edit_status = main(["edit", source, "-o", str(tmp_path / "dask.zip"), "--set", "PatientID=X{index}",
                            "--dask", cluster.scheduler_address, "-q", "--report", str(tmp_path / "e.jsonl")])
    assert status == 1 and edit_status == 1  # notes.txt, named in the reports
    assert digests(tmp_path / "dask" / "files") == digests(tmp_path / "one" / "files")
    assert identifying(tmp_path / "one") == identifying(tmp_path / "dask")
    assert main(["edit", source, "-o", str(tmp_path / "one.zip"), "--set", "PatientID=X{index}", "--jobs", "1",
                 "-q", "--report", str(tmp_path / "e1.jsonl")]) == 1
    assert digests(tmp_path / "dask.zip") == digests(tmp_path / "one.zip")


# ---- the package ----------------------------------------------------------------------------------

def pins(*names):
    lines = []
    for name in names:
        with open(os.path.join(ROOT, "py", name), encoding="utf-8") as f:
            lines += [line.split("#")[0].strip() for line in f]
    return sorted(line for line in lines if line)


@needs_processes
def test_build_py_makes_a_wheel_with_the_command_the_pins_and_the_data(tmp_path):
    import importlib.util

    import dcmstudio
    spec = importlib.util.spec_from_file_location("dcmstudio_build", os.path.join(ROOT, "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    wheel = build.python_wheel(tmp_path)
    assert wheel.name == f"dcmstudio-{dcmstudio.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = f"dcmstudio-{dcmstudio.__version__}.dist-info/"
        metadata = z.read(info + "METADATA").decode()
        entry_points = z.read(info + "entry_points.txt").decode()
    assert "dcmstudio = dcmstudio.cli:console" in entry_points
    required = sorted(line.split(":", 1)[1].strip() for line in metadata.splitlines()
                      if line.startswith("Requires-Dist:") and "extra ==" not in line)
    assert [r.replace(" ", "") for r in required] == pins("requirements.txt", "requirements-cpython.txt")
    package = os.path.join(ROOT, "py", "dcmstudio")
    shipped = {os.path.relpath(os.path.join(root, name), os.path.dirname(package)).replace(os.sep, "/")
               for root, _, found in os.walk(package) for name in found
               if name.endswith((".py", ".json")) and "__pycache__" not in root}
    assert shipped - names == set()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise():
    pytest.importorskip("tqdm")  # a dependency of the command; the page's runtime does not ship it
    from dcmstudio.cli.run import Progress
    bar, lines = Terminal(), io.StringIO()
    for stream in (bar, lines):
        progress = Progress(3, quiet=False, stream=stream)
        progress.update({"file": "a.dcm"})
        progress.update({"file": "b.dcm", "error": "b.dcm is not DICOM"})
        progress.update({"file": "c.dcm", "report": {"cut_short": "it ends 9 bytes early"}})
        progress.close()
    assert "3/3" in bar.getvalue() and "file" in bar.getvalue() and "failed: b.dcm: b.dcm is not DICOM" in bar.getvalue()
    assert "cut short: c.dcm: it ends 9 bytes early" in bar.getvalue()
    assert lines.getvalue().splitlines() == ["[1/3] a.dcm: ok", "[2/3] b.dcm: failed: b.dcm is not DICOM",
                                             "[3/3] c.dcm: ok, cut short as its input was: it ends 9 bytes early"]
    quiet = io.StringIO()
    progress = Progress(1, quiet=True, stream=quiet)
    progress.update({"file": "a.dcm"})
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("output", ["out", "out.zip"])
def test_an_edit_of_a_file_cut_short_says_so_and_compress_refuses_it(tmp_path, capsys, output):
    """An edit that stays in the header writes a file cut short inside its pixel data as it is
    (cut in the same place), and says so: on its progress line, in its report and in the summary.
    Compress cannot decode all of its frames: it names the file and where it ends."""
    source = tmp_path / "in"
    source.mkdir()
    data = bundled("MR_small_implicit.dcm").read_bytes()  # ends with its pixel data
    (source / "cut.dcm").write_bytes(data[:-1000])
    (source / "whole.dcm").write_bytes(data)
    report = tmp_path / "report.jsonl"
    assert main(["edit", str(source), "-o", str(tmp_path / output), "--set", "PatientName=CUT^TEST",
                 "--jobs", "1", "--report", str(report)]) == 0
    where = "it ends 1000 bytes before the end of the value of (7FE0,0010) PixelData"
    assert f"[1/2] cut.dcm: ok, cut short as its input was: {where}" in capsys.readouterr().err
    lines = report_lines(report)
    assert [line["report"]["cut_short"] for line in lines[:2]] == [where, None]
    assert lines[-1]["summary"]["cut_short"] == [{"file": "cut.dcm", "message": where}]
    assert lines[0]["report"]["size_out"] == lines[1]["report"]["size_out"] - 1000
    written = digests(tmp_path / output)
    assert sorted(written) == ["cut.dcm", "whole.dcm"]
    assert main(["compress", str(source), "-o", str(tmp_path / f"c-{output}"), "--jobs", "1", "-q"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"failed: cut.dcm: cut.dcm is truncated: {where}. Its frames cannot all be decoded; it was not rewritten."]


def test_an_output_that_cannot_be_written_fails_that_file_only(tmp_path):
    source = copies(str(tmp_path / "in"), 2)
    out = tmp_path / "out"
    (out / "001.dcm.part").mkdir(parents=True)  # a folder where the command writes 001.dcm first
    report = tmp_path / "r.jsonl"
    assert main(["edit", source, "-o", str(out), "--set", "PatientID=1", "-q", "--jobs", "1",
                 "--report", str(report)]) == 1
    lines = report_lines(report)
    assert "outputs" in lines[0] and lines[1]["file"] == "001.dcm" and "001.dcm" in lines[1]["error"]
    assert (out / "000.dcm").is_file() and not (out / "001.dcm").exists()


def test_the_mapping_is_kept_apart_and_never_overwritten(tmp_path, capsys):
    source = copies(str(tmp_path / "in"), 1)
    out = str(tmp_path / "out")
    argv = ["deid", source, "-o", out, "--secret", "s", "-q", "--jobs", "1", "--report", str(tmp_path / "r")]
    assert main([*argv, "--mapping", os.path.join(out, "map")]) == 2
    assert "must be kept apart from the data" in capsys.readouterr().err
    assert main([*argv, "--mapping", source]) == 2
    assert main(argv) == 0
    assert (tmp_path / "IDENTIFYING-deid-mapping.csv").is_file()  # beside the output by default
    first = (tmp_path / "IDENTIFYING-deid-mapping.json").read_bytes()
    assert main([*argv[:3], str(tmp_path / "again"), *argv[4:]]) == 2
    assert "an earlier run's mapping" in capsys.readouterr().err
    assert (tmp_path / "IDENTIFYING-deid-mapping.json").read_bytes() == first
    assert not (tmp_path / "again").exists()


_TEST_PROCESS = os.getpid()


def _die(spec, item):
    """Kills a worker process (the first file of a pass runs in the command's own)."""
    if os.getpid() != _TEST_PROCESS:
        os._exit(3)
    return {}, {}


@needs_processes
def test_a_worker_that_dies_is_said_not_hidden(tmp_path, monkeypatch, capsys):
    import multiprocessing

    from dcmstudio.cli import tasks
    if multiprocessing.get_start_method() != "fork":
        pytest.skip("the dying worker is planted by forking this process")
    monkeypatch.setitem(tasks._COMMANDS, "dump", _die)  # the pool's forked workers inherit it
    source = copies(str(tmp_path / "in"), 3)
    assert main(["dump", source, "-o", str(tmp_path / "out"), "--jobs", "2", "-q", "--pool", "always",
                 "--report", str(tmp_path / "r")]) == 1
    assert "a worker process died" in capsys.readouterr().err


def test_validate_reports_each_file_as_the_page_does_and_strict_fails_on_errors(tmp_path):
    from dcmstudio import validate
    source = tmp_path / "in"
    source.mkdir()
    shutil.copyfile(bundled("CT_small.dcm"), source / "good.dcm")
    broken = pydicom.dcmread(bundled("CT_small.dcm"))
    broken.SOPClassUID = ""  # Type 1, emptied
    broken.save_as(source / "broken.dcm")
    report = tmp_path / "report.jsonl"
    assert main(["validate", str(source), "-o", str(tmp_path / "out"), "--jobs", "1", "--quiet",
                 "--report", str(report)]) == 0
    lines = {line["file"]: line for line in report_lines(report) if "file" in line}
    for name in ("good.dcm", "broken.dcm"):
        page = validate.validate_file(str(source / name), name)
        assert lines[name]["report"]["errors"] == page["errors"]
        assert (tmp_path / "out" / f"{name[:-4]}_validation.txt").read_text() == validate.report_text([page])
    assert lines["broken.dcm"]["report"]["errors"] > lines["good.dcm"]["report"]["errors"]
    assert report_lines(report)[-1]["summary"]["files_with_errors"] >= 1
    assert main(["validate", str(source), "-o", str(tmp_path / "strict"), "--jobs", "1", "--quiet", "--strict",
                 "--json", "--report", str(tmp_path / "r2.jsonl")]) == 1
    assert json.loads((tmp_path / "strict" / "broken_validation.json").read_text())["files"][0]["errors"] >= 1

"""Edit, de-identify and compress jobs validate each output against its input (issue 16).

An output that gains an error its input did not have is listed in its report (``new_errors``:
path, rule, message) and counted in the job's summary; the output is still written, the user
decides. An error the input already had is not the job's doing and is not listed.
"""

import io
import json
import zipfile

import pydicom
import pytest

from conftest import bundled
from dcmstudio import codecs, deid, jobs, replay, uids, validate
from dcmstudio.archive import read_parts
from dcmstudio.cli import main
from dcmstudio.create import create_gsps


def _edited(path, edits, name="in.dcm"):
    context = {"index": 1, "uid_map": uids.UidMap(), "name": name, "replay": replay.SeriesReplay()}
    return jobs.edit_item({"path": str(path), "name": name}, edits, context)[2]["new_errors"]


def _found(new_errors):
    return [(f["rule"], f["path"]) for f in new_errors]


def _copy(tmp_path, name="CT_small.dcm", **changes):
    """A bundled file saved again with ``changes`` (None deletes the attribute)."""
    ds = pydicom.dcmread(bundled(name))
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path = tmp_path / f"copy_{name}"
    ds.save_as(path, enforce_file_format=True)
    return path


# ---- validating bytes in memory ----------------------------------------------------------------

def test_pieces_in_memory_give_the_files_report(tmp_path):
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    ds.Rows = ds.Columns = 256
    ds.PixelData = bytes(range(256)) * 512  # past the first 64 KiB a header walk reads
    ds.StudyDate = "2024-01-31"
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    from_file = validate.validate_file(str(path), "big.dcm")
    assert ("value-format", "StudyDate") in [(f["rule"], f["path"]) for f in from_file["findings"]]
    for cuts in ((), (1,), (100, 131, 133), (700, 70000), (len(data) - 2,)):
        bounds = [0, *cuts, len(data)]
        pieces = [memoryview(data)[a:b] for a, b in zip(bounds, bounds[1:])]
        assert validate.validate_pieces(pieces, "big.dcm") == from_file, cuts


def test_a_clean_output_costs_one_validation(monkeypatch):
    data = bundled("CT_small.dcm").read_bytes()
    calls = []
    real = validate.validate_pieces
    monkeypatch.setattr(validate, "validate_pieces", lambda pieces, name: calls.append(name) or real(pieces, name))
    assert validate.new_errors_in(data, [data[:500], data[500:]], "ct.dcm") == []
    assert len(calls) == 1  # the input is validated only when the output has errors


# ---- edit ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("edits, expected", [
    ([{"op": "set", "path": "Rows", "value": ""}], [("type1-empty", "Rows")]),
    ([{"op": "set", "path": "SeriesInstanceUID", "value": ""}], [("type1-empty", "SeriesInstanceUID")]),
    ([{"op": "delete", "path": "Modality"}], [("type1-missing", "Modality")]),
    ([{"op": "delete", "path": "StudyDate"}], [("type2-missing", "StudyDate")]),
])
def test_an_edit_that_breaks_the_iod_is_reported(edits, expected):
    new = _edited(bundled("CT_small.dcm"), edits)
    assert _found(new) == expected
    assert all(f["message"] for f in new)


def test_emptying_the_sop_class_is_reported():
    assert ("sop-class", "SOPClassUID") in _found(_edited(bundled("CT_small.dcm"),
                                                          [{"op": "set", "path": "SOPClassUID", "value": ""}]))


def test_a_clean_edit_reports_none():
    assert _edited(bundled("CT_small.dcm"), [{"op": "set", "path": "PatientName", "value": "Clean^Edit"},
                                             {"op": "remap_uids"}]) == []


def test_an_error_the_input_had_is_not_the_edits(tmp_path):
    broken = _copy(tmp_path, Modality=None, StudyDate="2024-01-31")
    assert _edited(broken, [{"op": "set", "path": "PatientName", "value": "Clean^Edit"}]) == []
    assert _found(_edited(broken, [{"op": "delete", "path": "StudyTime"}])) == [("type2-missing", "StudyTime")]


def _series(tmp_path, count):
    source = pydicom.dcmread(bundled("CT_small.dcm"))
    source.Rows = source.Columns = 256  # pixel data past jobs.REFERENCED_PIECE
    source.PixelData = bytes(range(256)) * 512
    paths = []
    for index in range(1, count + 1):
        source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{index}"
        source.InstanceNumber = index
        path = tmp_path / "in" / f"{index:03d}.dcm"
        path.parent.mkdir(exist_ok=True)
        source.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.mark.parametrize("container", ["zip", "members", "files"])
def test_the_edit_job_checks_every_output_replayed_or_not(tmp_path, container):
    paths = _series(tmp_path, 8)
    for edits, flagged in (([{"op": "delete", "path": "Modality"}], len(paths)),
                           ([{"op": "set", "path": "PatientName", "value": "Clean^Edit"}], 0)):
        scratch = tmp_path / f"scratch_{container}_{flagged}"
        job = jobs.start("edit", {"edits": edits, "container": container, "zip_name": "out.zip"}, len(paths),
                         lambda name, scratch=scratch: str(scratch / name))
        running = jobs._running[job]
        for index, path in enumerate(paths, 1):
            step = jobs.step(job, {"path": str(path), "name": path.name, "index": index, "member": path.name})
            assert _found(step["new_errors"]) == ([("type1-missing", "Modality")] if flagged else [])
            assert step["chunks"] or container == "zip"  # written all the same: the user decides
            if container == "files":  # a replayed output reports what validating it afresh finds
                output = read_parts(step["chunks"])
                assert step["new_errors"] == jobs.new_errors_of(path.read_bytes(), [output], path.name)
        assert running.replay.replayed >= len(paths) - 1  # the replay path is checked too
        finished = jobs.finish(job)
        assert finished["summary"]["files_with_new_errors"] == flagged
        report = next(o for o in finished["outputs"] if o["name"].endswith(".jsonl"))
        with open(report["path"], encoding="utf-8") as f:
            lines = [json.loads(line) for line in f]
        assert sum(bool(line["new_errors"]) for line in lines) == flagged


def test_the_single_file_edit_job_reports_them(tmp_path):
    job = jobs.start("edit", {"edits": [{"op": "set", "path": "Rows", "value": ""}], "single": True}, 1,
                     lambda name: str(tmp_path / name))
    step = jobs.step(job, {"path": str(bundled("CT_small.dcm")), "name": "CT_small.dcm"})
    assert _found(step["new_errors"]) == [("type1-empty", "Rows")] and step["chunks"]
    finished = jobs.finish(job)
    assert finished["summary"]["files_with_new_errors"] == 1
    assert _found(finished["first_report"]["new_errors"]) == [("type1-empty", "Rows")]


def test_the_command_counts_them(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (folder / name).write_bytes(bundled(name).read_bytes())
    report = tmp_path / "report.jsonl"
    status = main(["edit", str(folder), "-o", str(tmp_path / "out"), "--delete", "StudyDate", "--jobs", "1",
                   "--report", str(report), "-q"])
    assert status == 0
    with open(report, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    assert [_found(line["report"]["new_errors"]) for line in lines[:-1]] == [[("type2-missing", "StudyDate")]] * 2
    assert lines[-1]["summary"]["files_with_new_errors"] == 2


def _zip_members(steps, finished):
    parts = [part for step in steps for part in step["chunks"]] + finished["chunks"]
    with zipfile.ZipFile(io.BytesIO(read_parts(parts))) as z:
        return len(z.namelist())


# ---- de-identify -----------------------------------------------------------------------------

def _deid_job(tmp_path, paths):
    job = jobs.start("deid", {}, len(paths), lambda name: str(tmp_path / "scratch" / name))
    steps = [jobs.step(job, {"path": str(p), "name": p.name}) for p in paths]
    return steps, jobs.finish(job)


def test_a_clean_deidentification_reports_none(tmp_path):
    steps, finished = _deid_job(tmp_path, [bundled("CT_small.dcm"), bundled("MR_small.dcm")])
    assert [step["report"]["new_errors"] for step in steps] == [[], []]
    assert finished["summary"]["files_with_new_errors"] == 0


def test_a_deidentification_that_breaks_the_iod_is_reported(tmp_path, monkeypatch):
    real = deid.Deidentifier.deidentify_output

    def losing_the_modality(self, data, name, **kwargs):
        pieces, _, report = real(self, data, name, **kwargs)
        context = {"index": 1, "uid_map": uids.UidMap(), "name": name}
        from dcmstudio import edit
        damaged, origins, _ = edit.edit_output(b"".join(pieces), [{"op": "delete", "path": "Modality"}],
                                               context=context)
        return damaged, [None] * len(damaged), report

    monkeypatch.setattr(deid.Deidentifier, "deidentify_output", losing_the_modality)
    steps, finished = _deid_job(tmp_path, [bundled("CT_small.dcm")])
    assert _found(steps[0]["report"]["new_errors"]) == [("type1-missing", "Modality")]
    assert _zip_members(steps, finished) == 1  # still written: the user decides
    assert finished["summary"]["files_with_new_errors"] == 1


def test_deidentifying_a_presentation_state_keeps_its_type_1_creation_date_as_a_dummy(tmp_path):
    """A real case the check found: PS3.15 removes (X) Presentation Creation Date and Time,
    which the GSPS IOD makes Type 1; deid writes dummies there instead, and the output gains no
    error."""
    gsps = tmp_path / "pr.dcm"
    create_gsps(str(bundled("CT_small.dcm")), str(gsps), "note", 40, 400)
    steps, finished = _deid_job(tmp_path, [gsps])
    assert steps[0]["report"]["new_errors"] == []
    assert finished["summary"]["files_with_new_errors"] == 0
    parts = [part for step in steps for part in step["chunks"]] + finished["chunks"]
    with zipfile.ZipFile(io.BytesIO(read_parts(parts))) as archive:
        out = pydicom.dcmread(io.BytesIO(archive.read(archive.namelist()[0])))
    original = pydicom.dcmread(gsps)
    assert (out.PresentationCreationDate, out.PresentationCreationTime) == ("19000101", "000000")
    assert original.PresentationCreationDate != out.PresentationCreationDate


# ---- compress --------------------------------------------------------------------------------

def _compress_job(tmp_path, paths, syntax="1.2.840.10008.1.2.5"):
    job = jobs.start("compress", {"transfer_syntax": syntax}, len(paths), lambda name: str(tmp_path / "scratch" / name))
    steps = [jobs.step(job, {"path": str(p), "name": p.name}) for p in paths]
    return steps, jobs.finish(job)


@pytest.mark.parametrize("syntax", sorted(jobs._SYNTAX_SUFFIXES))
def test_a_clean_compression_reports_none(tmp_path, syntax):
    steps, finished = _compress_job(tmp_path, [bundled("CT_small.dcm"), bundled("MR_small.dcm")], syntax)
    assert [step["report"]["new_errors"] for step in steps] == [[], []]
    assert finished["summary"]["files_with_new_errors"] == 0


def test_an_error_the_input_had_is_not_the_compressions(tmp_path):
    steps, _ = _compress_job(tmp_path, [_copy(tmp_path, Modality=None, StudyDate="2024-01-31")])
    assert steps[0]["report"]["new_errors"] == []


def test_a_compression_that_breaks_the_iod_is_reported(tmp_path, monkeypatch):
    real = codecs.compress

    def with_a_bad_date(in_path, out_path, target, **kwargs):
        report = real(in_path, out_path, target, **kwargs)
        ds = pydicom.dcmread(out_path)
        ds.StudyDate = "31.01.2024"
        ds.save_as(out_path)
        return report

    monkeypatch.setattr(codecs, "compress", with_a_bad_date)
    steps, finished = _compress_job(tmp_path, [bundled("CT_small.dcm")])
    assert _found(steps[0]["report"]["new_errors"]) == [("value-format", "StudyDate")]
    assert _zip_members(steps, finished) == 1  # still written: the user decides
    assert finished["summary"]["files_with_new_errors"] == 1

"""The command's fast paths give the bytes of the plain ones: an edit into a folder reads only each
file's head and has the system copy the pixel data that ends it; worker processes start only when
they pay; ``--help`` does not import pydicom."""

import errno
import hashlib
import os
import subprocess
import sys

import pytest

from dcmstudio import jobs, replay
from dcmstudio.cli import files, main, run

from conftest import TEST_FILES_DIR, bundled

IN_PYODIDE = sys.platform == "emscripten"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EDITS = ["--set", "PatientName=DOE^{index:03d}", "--delete", "PatientBirthDate",
         "--add", '(0009,"DCMSTUDIO SPEED",01) LO=x{index}']


def digests(folder):
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, folder).replace(os.sep, "/")] = hashlib.sha256(f.read()).hexdigest()
    return found


def zip_digests(path):
    import zipfile
    with zipfile.ZipFile(path) as z:
        return {name: hashlib.sha256(z.read(name)).hexdigest() for name in z.namelist()}


@pytest.fixture
def small_pieces(monkeypatch):
    """Heads of 2 KiB, and pixel data from 256 bytes on is left unread (pydicom's bundled images
    are small)."""
    monkeypatch.setattr(jobs, "HEAD_BYTES", 2048)
    monkeypatch.setattr(jobs, "SMALL_PIECE", 256)
    monkeypatch.setattr(replay, "SMALL_PIECE", 256)


# (head size, shortest pixel data left unread) → at least this many of pydicom's bundled files
# have it left unread. Stretches shorter than SMALL_PIECE are joined into new bytes: with heads of
# 2 KiB, files whose short pixel data would have been joined, zeros and all, are met.
CASES = {(2048, 256): 25, (4096, 256): 8, (2048, replay.SMALL_PIECE): 1, (jobs.HEAD_BYTES, replay.SMALL_PIECE): 1}


@pytest.mark.parametrize("head_bytes, small_piece", sorted(CASES))
def test_a_folder_edit_reading_heads_gives_the_bytes_of_whole_reads(tmp_path, monkeypatch, head_bytes, small_piece):
    """pydicom's bundled files, edited into a folder (heads only, the pixel data copied by the
    system) and into a ZIP (every byte read): the same files, byte for byte."""
    monkeypatch.setattr(jobs, "HEAD_BYTES", head_bytes)
    monkeypatch.setattr(jobs, "SMALL_PIECE", small_piece)
    monkeypatch.setattr(replay, "SMALL_PIECE", small_piece)
    tails, whole_reads = [], []
    real_read_for_edit, real_read_file = jobs.read_item_for_edit, jobs.read_file

    def read_for_edit(item, head_only=False, read_head=None, cut=False):
        data, tail, size = real_read_for_edit(item, head_only, read_head, cut)
        tails.append(tail)
        return data, tail, size

    def read_file(path, name=None):
        whole_reads.append(name)
        return real_read_file(path, name)

    monkeypatch.setattr(jobs, "read_item_for_edit", read_for_edit)
    monkeypatch.setattr(jobs, "read_file", read_file)
    argv = ["edit", str(TEST_FILES_DIR), *EDITS, "-q", "--jobs", "1"]
    main([*argv, "-o", str(tmp_path / "folder"), "--report", str(tmp_path / "folder.jsonl")])
    folder_tails, folder_whole = tails[:], whole_reads[:]
    tails.clear()
    main([*argv, "-o", str(tmp_path / "all.zip"), "--report", str(tmp_path / "zip.jsonl")])
    folder, zipped = digests(tmp_path / "folder"), zip_digests(tmp_path / "all.zip")
    assert folder == zipped and len(folder) > 50
    assert not any(tails)  # a ZIP member's CRC needs every byte: read whole
    skipped = [tail for tail in folder_tails if tail is not None]
    assert len(skipped) >= CASES[head_bytes, small_piece]
    # a file whose pixel data was not read was never read whole
    assert len(folder_whole) <= len(folder_tails) - len(skipped)
    with open(tmp_path / "folder.jsonl") as a, open(tmp_path / "zip.jsonl") as b:
        folder_lines, zip_lines = a.read().splitlines(), b.read().splitlines()
    # the same reports (new errors included), line for line; the summaries name their outputs
    assert folder_lines[:-1] == zip_lines[:-1]
    assert folder_lines[-1].replace(str(tmp_path / "folder"), "") == \
        zip_lines[-1].replace(str(tmp_path / "all.zip"), "")


@pytest.mark.parametrize("fallback", [False, True])
def test_a_folder_deid_reading_heads_gives_the_bytes_and_reports_of_whole_reads(tmp_path, monkeypatch, small_pieces,
                                                                              fallback):
    """De-identified into a folder (heads only where the pixel data ends the file) and into a ZIP:
    the same files, reports and mapping. ``fallback``: every head-only file is found to need its
    unread bytes (as a defect would), and is de-identified again, read whole."""
    real_read_file = jobs.read_file
    whole_reads = []

    def read_file(path, name=None):
        whole_reads.append(name)
        return real_read_file(path, name)

    monkeypatch.setattr(jobs, "read_file", read_file)
    if fallback:
        monkeypatch.setattr(jobs, "unread_kept", lambda pieces, origins, tail, size: tail is None)
    source = tmp_path / "in"
    source.mkdir()
    names = ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtdose.dcm", "SC_ybr_full_422_uncompressed.dcm",
             "CT_small.dcm", "ExplVR_BigEnd.dcm"]
    for name in names:
        (source / name).write_bytes(bundled(name).read_bytes())
    outputs = {}
    for way, output in (("folder", "files"), ("zip", "files.zip")):
        (tmp_path / way).mkdir()
        assert main(["deid", str(source), "-o", str(tmp_path / way / output), "--secret", "s", "-q", "--jobs", "1",
                     "--option", "retain_long_modified_dates", "--keep-names", "--mapping", str(tmp_path / way),
                     "--report", str(tmp_path / way / "r.jsonl")]) == 0
        mapping = {p.name: p.read_bytes() for p in (tmp_path / way).glob("IDENTIFYING-*")}
        report = [line for line in (tmp_path / way / "r.jsonl").read_text().splitlines() if '"summary"' not in line]
        outputs[way] = mapping, report
        if way == "folder":
            read_whole_for_folder = len(whole_reads)
    assert digests(tmp_path / "folder" / "files") == zip_digests(tmp_path / "zip" / "files.zip")
    assert outputs["folder"] == outputs["zip"]
    # the ZIP reads every file whole; the folder only those whose pixel data it had to read
    assert read_whole_for_folder == (len(names) if fallback else 1)  # CT_small's header is over 2 KiB


def test_the_pixel_data_is_copied_by_the_system_else_by_reading(tmp_path, monkeypatch, small_pieces):
    """copy_file_range, else sendfile, else reads and writes: the same output file."""
    source = bundled("MR_small_implicit.dcm")
    made = {}
    calls = []
    real_copy, real_sendfile = getattr(os, "copy_file_range", None), getattr(os, "sendfile", None)

    def refused(*args):
        calls.append("refused")
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def counted(real, name):
        def call(*args):
            calls.append(name)
            return real(*args)
        return call

    ways = {"copy_file_range": {}, "sendfile": {"copy_file_range": refused},
            "read and write": {"copy_file_range": refused, "sendfile": refused}}
    for way, patches in ways.items():
        calls.clear()
        with monkeypatch.context() as patch:
            if real_copy is not None:
                patch.setattr(os, "copy_file_range",
                              patches.get("copy_file_range", counted(real_copy, "copy_file_range")))
            if real_sendfile is not None:
                patch.setattr(os, "sendfile", patches.get("sendfile", counted(real_sendfile, "sendfile")))
            out = tmp_path / way.replace(" ", "_")
            assert main(["edit", str(source), "-o", str(out), *EDITS, "-q", "--jobs", "1",
                         "--report", str(tmp_path / "r.jsonl")]) == 0
            made[way] = (out / "MR_small_implicit.dcm").read_bytes()
        if way != "read and write" and (real_copy if way == "copy_file_range" else real_sendfile) is not None:
            assert calls[-1] == way  # the system's copy did the work
    assert made["copy_file_range"] == made["sendfile"] == made["read and write"]
    whole = tmp_path / "whole.zip"
    assert main(["edit", str(source), "-o", str(whole), *EDITS, "-q", "--jobs", "1",
                 "--report", str(tmp_path / "r.jsonl")]) == 0
    assert list(zip_digests(whole).values()) == [hashlib.sha256(made["copy_file_range"]).hexdigest()]


def test_copy_range_appends_at_the_target_and_says_when_the_source_was_short(tmp_path, monkeypatch):
    source = tmp_path / "source"
    source.write_bytes(bytes(range(256)) * 40)  # 10,240 bytes
    for patched in (False, True):
        with monkeypatch.context() as patch:
            if patched:  # the plain copy, a chunk at a time
                for name in ("copy_file_range", "sendfile"):
                    patch.delattr(os, name, raising=False)
                patch.setattr(files, "_CHUNK", 1000)
            with open(source, "rb") as src, open(tmp_path / "target", "w+b") as dst:
                dst.write(b"head")
                dst.flush()
                assert files.copy_range(src.fileno(), dst.fileno(), 100, 5000) == 5000
                assert files.copy_range(src.fileno(), dst.fileno(), 10000, 1000) == 240  # past the end
                assert src.tell() == 0  # the source's own position is not moved
            assert (tmp_path / "target").read_bytes() == b"head" + source.read_bytes()[100:5100] + \
                source.read_bytes()[10000:]


def test_a_source_that_shrank_since_its_head_was_read_is_not_written(tmp_path, monkeypatch, small_pieces):
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "a.dcm"
    path.write_bytes(bundled("MR_small_implicit.dcm").read_bytes())
    real = files.copy_range

    def shrinking(source_fd, target_fd, offset, length):
        os.truncate(path, offset + 10)  # the file changes on disk while it is being copied
        return real(source_fd, target_fd, offset, length)

    monkeypatch.setattr(files, "copy_range", shrinking)
    report = tmp_path / "r.jsonl"
    assert main(["edit", str(folder), "-o", str(tmp_path / "out"), *EDITS, "-q", "--jobs", "1",
                 "--report", str(report)]) == 1
    assert "did not read back as written" in report.read_text()
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


def _pid(spec, item):
    return os.getpid()


@pytest.mark.skipif(IN_PYODIDE, reason="Pyodide starts no processes")
def test_worker_processes_start_only_when_the_files_left_would_take_long(monkeypatch):
    items = [{"index": i} for i in range(40)]
    pool = run.ProcessPool(2)
    try:
        # quick files: never worth starting processes
        assert set(run.in_order(pool, _pid, {}, items, count=len(items))) == {os.getpid()} and not pool.started
        # the same, when 40 such files would take longer than the limit and a core is idle
        monkeypatch.setattr(run, "POOL_AFTER_SECONDS", 0.0)
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        pids = list(run.in_order(pool, _pid, {}, items, count=len(items)))
        assert pids[:1 + run.PROBE_FILES] == [os.getpid()] * (1 + run.PROBE_FILES)
        assert os.getpid() not in pids[1 + run.PROBE_FILES:] and pool.started == 1
        # this process's own load leaves the other cores idle
        monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count() or 1), 0.0, 0.0))
        pids = list(run.in_order(pool, _pid, {}, items, count=len(items)))
        assert os.getpid() not in pids[1 + run.PROBE_FILES:] and pool.started == 2
        # a busy machine (every core busy besides this process): this process does it all
        monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count() or 1) + 1, 0.0, 0.0))
        assert set(run.in_order(pool, _pid, {}, items, count=len(items))) == {os.getpid()} and pool.started == 2
    finally:
        pool.shutdown()
    always = run.ProcessPool(2, always=True)
    try:
        pids = list(run.in_order(always, _pid, {}, items[:3], count=3))
        assert pids[0] == os.getpid() and os.getpid() not in pids[1:]  # the first file warms this process
    finally:
        always.shutdown()


@pytest.mark.skipif(IN_PYODIDE, reason="Pyodide starts no processes")
def test_help_does_not_import_pydicom():
    code = ("import sys\nfrom dcmstudio.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pydicom', 'numpy', 'dcmstudio.cli.tasks') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "py")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_report_encoded_once_is_written_as_json_would_write_it():
    import io
    import json
    report = {"file": "a.dcm", "residual": [{"found": "DOE^J"}], "n": 1.5, "ü": None}
    record = {"file": "a.dcm", "index": 3, "outputs": ["x/00001.dcm"], "report": report}
    reports = run.Reports(None)
    reports.stream = io.StringIO()
    page_line = run.with_key(run.encode_report(report), "member", json.dumps("x/00001.dcm"))
    assert page_line == json.dumps({**report, "member": "x/00001.dcm"})
    reports.write(record)
    reports.write({**record, "report": {}})  # not the one encoded: encoded as usual
    assert reports.stream.getvalue().splitlines() == [json.dumps(record), json.dumps({**record, "report": {}})]
    assert run.with_key("{}", "member", '"m"') == json.dumps({"member": "m"})


def test_the_pages_folder_save_never_writes_the_zeros_standing_for_unread_pixel_data(tmp_path):
    """The page's edit task saving into a folder, with a head fetched ahead (2 KiB here, 64 KiB in
    the page) of a file whose pixel data is shorter than SMALL_PIECE: before the fix, that pixel
    data was joined into new bytes with the zeros standing in for it, and saved as zeros."""
    import io

    import pydicom

    from dcmstudio.archive import read_parts
    source = TEST_FILES_DIR / "dicomdirtests" / "98892003" / "MR2" / "15970"
    head = tmp_path / "head"
    head.write_bytes(source.read_bytes()[:2048])
    assert jobs.header.pixel_data_tail(head.read_bytes(), source.stat().st_size) is not None  # ends with it
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    job = jobs.EditJob({"edits": [{"op": "set", "path": "PatientName", "value": "X"}], "container": "files"}, 1,
                       str(scratch))
    step = job.step({"path": str(source), "name": "a.dcm", "head": str(head)})
    edited = pydicom.dcmread(io.BytesIO(read_parts(step["chunks"])))
    assert edited.PatientName == "X" and edited.PixelData == pydicom.dcmread(source).PixelData

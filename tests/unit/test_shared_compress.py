"""Compress and Validate shared out over several workers, as the page's pool runs them.

These tests play the page's part in Python (client.js WorkerPool.job, jobs.js runSharedJob): the
items are dealt over the workers, a lossy run's files without pixel data are held for a last round
told which files failed, and the page puts the members in order. Whatever the number of workers,
the archive and the reports must be the same, byte for byte, as one worker's, and the same files
as the single task that writes its own ZIP.
"""

import io
import zipfile

import numpy as np
import pydicom
import pytest

from conftest import bundled
from dcmstudio import api, archive, jobs
from dcmstudio.archive import read_parts
from dcmstudio.create.pr import create_gsps
from test_lossy import BASELINE, j2k_codec  # noqa: F401 -- j2k_codec is a fixture
from test_shared_jobs import KEY, _with_heads

RLE = pydicom.uid.RLELossless


def _copies(tmp_path, count):
    """``count`` CT files of one series with distinct instance UIDs."""
    source = pydicom.dcmread(bundled("CT_small.dcm"))
    paths = []
    for index in range(1, count + 1):
        source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.7.{index}"
        source.InstanceNumber = index
        path = tmp_path / "in" / f"ct_{index:02d}.dcm"
        path.parent.mkdir(exist_ok=True)
        source.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _items(paths):
    members = archive.member_names([p.name for p in paths])
    return [{"path": str(p), "name": p.name, "index": i + 1, "member": m,
             "sop_instance_uid": str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)}
            for i, (p, m) in enumerate(zip(paths, members))]


def _pooled_compress(tmp_path, paths, options, workers, last_round_worker=0):
    """The compress task over ``workers`` shares (items dealt round robin); a held file is sent
    again to ``last_round_worker`` once every other file is done, told which files failed.
    Returns the ZIP the page assembles and every file's step, in the order of the files."""
    items = _items(paths)
    options = {**options, "container": "members", "key": KEY,
               "instances": [item["sop_instance_uid"] for item in items]}
    shares = [jobs.start("compress", options, len(items), lambda name, w=w: str(tmp_path / f"w{w}" / name))
              for w in range(workers)]
    steps, held, told = {}, [], {}
    for w, job in enumerate(shares):
        for item in items[w::workers]:
            step = jobs.step(job, item)
            if step.get("later"):
                held.append(item)
                continue
            if step.get("for_last_round"):
                told[item["index"]] = step["for_last_round"]
            steps[item["index"]] = step
    for item in held:
        steps[item["index"]] = jobs.step(shares[last_round_worker],
                                          {**item, "last_round": [told[i] for i in sorted(told)]})
    for job in shares:
        jobs.finish(job)
    out, directory = bytearray(), []
    for index in sorted(steps):
        step = steps[index]
        if "member" in step:
            directory.append({**step["member"], "offset": len(out)})
            out += read_parts(step["chunks"])
    out += archive.central_directory(directory, len(out))
    return bytes(out), [steps[i] for i in sorted(steps)], items, options


def _zip_of_one_task(tmp_path, items, options):
    """The same run as one task writing its own ZIP (the primary worker's way): members, summary."""
    job = jobs.start("compress", {**options, "container": "zip"}, len(items), lambda name: str(tmp_path / name))
    chunks = [chunk for item in items for chunk in jobs.step(job, item).get("chunks", [])]
    finished = jobs.finish(job)
    with zipfile.ZipFile(io.BytesIO(read_parts(chunks + finished["chunks"]))) as z:
        return {name: z.read(name) for name in z.namelist()}, finished["summary"]


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        return {name: z.read(name) for name in z.namelist()}


def _summary(steps, items, options):
    """What the page asks for once a shared-out run is over (wb-compress.js)."""
    reports = [step["report"] for step in steps if step.get("report")]
    failures = [step["error"] for step in steps if step.get("error")]
    unwritten = {item["sop_instance_uid"]: item["name"] for item, step in zip(items, steps) if not step.get("report")}
    result = api.call("compress_summary", api.json.dumps({"options": options, "reports": reports,
                                                          "failures": failures, "unwritten": unwritten}))
    return api.json.loads(result)["summary"]


def test_lossless_compress_by_one_worker_or_three_writes_the_same_zip(tmp_path):
    paths = _copies(tmp_path, 5) + [bundled("rtplan.dcm")]  # no pixel data: named, left out
    one, steps, items, options = _pooled_compress(tmp_path / "one", paths, {"transfer_syntax": RLE}, 1)
    three, _, _, _ = _pooled_compress(tmp_path / "three", paths, {"transfer_syntax": RLE}, 3)
    assert one == three
    members = _members(one)
    assert list(members) == [p.name for p in paths[:5]]
    for path in paths[:5]:
        written = pydicom.dcmread(io.BytesIO(members[path.name]))
        assert written.file_meta.TransferSyntaxUID == RLE
        assert np.array_equal(written.pixel_array, pydicom.dcmread(path).pixel_array)
        assert written.SOPInstanceUID == pydicom.dcmread(path).SOPInstanceUID  # lossless: kept
    assert "Pixel Data" in steps[5]["error"]["message"] and "member" not in steps[5]
    # the same files as the task that writes its own ZIP, and the same summary
    alone, summary = _zip_of_one_task(tmp_path / "alone", items, options)
    assert alone == members
    assert _summary(steps, items, options) == summary


def test_a_folder_save_gets_each_compressed_file_alone(tmp_path):
    paths = _copies(tmp_path, 2)
    items = _items(paths)
    job = jobs.start("compress", {"transfer_syntax": RLE, "container": "files"}, 2, lambda n: str(tmp_path / n))
    files = {}
    for item in items:
        step = jobs.step(job, item)
        assert step["member"]["crc"] is None and [c["final"] for c in step["chunks"]] == [True]
        files[step["member"]["name"]] = read_parts(step["chunks"])
    jobs.finish(job)
    assert files == _members(_pooled_compress(tmp_path / "z", paths, {"transfer_syntax": RLE}, 2)[0])


def test_prefetched_copies_are_read_and_deleted(tmp_path):
    """The worker fetches each file ahead into a scratch copy (``local``): the step reads it and deletes it."""
    [path] = _copies(tmp_path, 1)
    local = tmp_path / "prefetched"
    local.write_bytes(path.read_bytes())
    job = jobs.start("compress", {"transfer_syntax": RLE, "container": "files"}, 1, lambda n: str(tmp_path / n))
    step = jobs.step(job, {**_items([path])[0], "local": str(local)})
    jobs.finish(job)
    assert "error" not in step and not local.exists()
    assert pydicom.dcmread(io.BytesIO(read_parts(step["chunks"]))).file_meta.TransferSyntaxUID == RLE


def test_lossy_references_follow_whichever_worker_wrote_the_image(j2k_codec, tmp_path):  # noqa: F811
    """A GSPS and its image on different workers; a second GSPS refers to a CT that JPEG Baseline
    cannot hold (16-bit): it is not written either, as when one task writes everything."""
    image = bundled("image_dfl.dcm")
    gsps, gsps_of_ct = tmp_path / "gsps.dcm", tmp_path / "gsps_ct.dcm"
    create_gsps(str(image), str(gsps), "note", 128, 256)
    create_gsps(str(bundled("CT_small.dcm")), str(gsps_of_ct), "note", 40, 400)
    paths = [gsps, image, bundled("CT_small.dcm"), gsps_of_ct]
    options = {"transfer_syntax": str(BASELINE), "lossy": {"quality": 80}}
    # two workers: the GSPS (first round and last) on worker 0, its image on worker 1
    two, steps, items, full_options = _pooled_compress(tmp_path / "two", paths, options, 2, last_round_worker=0)
    one, _, _, _ = _pooled_compress(tmp_path / "one", paths, options, 1)
    assert one == two
    members = _members(two)
    assert list(members) == ["gsps.dcm", "image_dfl.dcm"]
    pr = pydicom.dcmread(io.BytesIO(members["gsps.dcm"]))
    written = pydicom.dcmread(io.BytesIO(members["image_dfl.dcm"]))
    assert written.SOPInstanceUID == steps[1]["report"]["sop_instance_uid"]["new"] != items[1]["sop_instance_uid"]
    assert pr.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == written.SOPInstanceUID
    assert steps[0]["report"]["references_followed"] == [items[1]["sop_instance_uid"]]
    assert "8-bit samples only" in steps[2]["error"]["message"]
    assert "refers to no image recompressed in this run" in steps[3]["error"]["message"]
    alone, summary = _zip_of_one_task(tmp_path / "alone", items, full_options)
    assert alone == members
    assert _summary(steps, items, full_options) == summary


def test_validation_shared_out_gives_the_same_reports_as_one_task(tmp_path):
    paths = [bundled(name) for name in ("CT_small.dcm", "rtplan.dcm", "MR_small.dcm", "image_dfl.dcm")]
    items = [{"path": str(p), "name": p.name, "index": i + 1} for i, p in enumerate(paths)]
    job = jobs.start("validate", {"report_stem": "run"}, len(items), lambda n: str(tmp_path / "one" / n))
    for item in items:
        jobs.step(job, item)
    alone = jobs.finish(job)
    # two workers, each file's head fetched ahead (64 kB, or 200 bytes: the header goes on past it)
    reports = {}
    for w, length in ((0, 64 * 1024), (1, 200)):
        share = jobs.start("validate", {"shared": True}, len(items), lambda n, w=w: str(tmp_path / f"w{w}" / n))
        assert jobs.reads(share) == "head"
        for item in _with_heads(items[w::2], tmp_path, length):
            reports[item["index"]] = jobs.step(share, item)["report"]
        assert jobs.finish(share) == {"summary": jobs.validation_summary([reports[i] for i in range(w + 1, 5, 2)])}
    merged = api.json.loads(api.call("validation_reports", api.json.dumps(
        {"reports": [reports[i] for i in sorted(reports)], "report_stem": "run"})))
    assert merged["summary"] == alone["summary"] and merged["summary"]["files"] == 4
    assert [o["name"] for o in merged["outputs"]] == [o["name"] for o in alone["outputs"]] == \
        ["run_validation.json", "run_validation.txt"]
    for shared, single in zip(merged["outputs"], alone["outputs"]):
        with open(shared["path"], "rb") as a, open(single["path"], "rb") as b:
            assert a.read() == b.read()


def test_the_page_knows_each_output_name_before_the_task_starts(tmp_path):
    """The ZIP's name is chosen before the task runs (a picker asks for it): the page takes the
    syntax's short name from compress_choices, the one the task itself names its ZIP with."""
    choices = api.json.loads(api.call("compress_choices", "{}"))
    assert [t["suffix"] for t in choices["targets"]][:3] == ["rle", "deflated", "uncompressed"]
    job = jobs.start("compress", {"transfer_syntax": RLE, "zip_stem": "series"}, 1, lambda n: str(tmp_path / n))
    [item] = _items(_copies(tmp_path, 1))
    jobs.step(job, item)
    assert {chunk["name"] for chunk in jobs.finish(job)["chunks"]} == {"series_rle.zip"}
    with pytest.raises(jobs.DicomStudioError, match="zip, members or files"):
        jobs.start("compress", {"transfer_syntax": RLE, "container": "tar"}, 1, lambda n: str(tmp_path / n))

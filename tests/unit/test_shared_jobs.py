"""A job shared out over several workers: ZIP members made apart and put together by the page.

The page spreads an edit job over a pool of workers; each makes whole members (local header and
bytes) and the page writes them in order, then asks for the central directory. These tests play
the page's part in Python: the archive must be the same, byte for byte, whatever the number of
workers, and readable by zipfile (and so by every unzip).
"""

import io
import os
import zipfile
import zlib

import pydicom
import pytest

from conftest import bundled
from dcmstudio import archive, jobs, uids
from dcmstudio.archive import read_parts

KEY = "00112233445566778899aabbccddeeff"
EDITS = [
    {"op": "set", "path": "PatientName", "value": "Shared^Job"},
    {"op": "set", "path": "PatientID", "value": "file {index:04d} of the shared job"},
    {"op": "remap_uids"},
]


def _series(tmp_path, count):
    source = pydicom.dcmread(bundled("CT_small.dcm"))
    source.Rows = source.Columns = 256  # pixel data past jobs.REFERENCED_PIECE: sent as references
    source.PixelData = bytes(range(256)) * 512
    del source[0xFFFCFFFC]  # Data Set Trailing Padding: the pixel data ends the file
    paths = []
    for index in range(1, count + 1):
        source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{index}"
        source.InstanceNumber = index
        path = tmp_path / "in" / f"{index:03d}.dcm"
        path.parent.mkdir(exist_ok=True)
        source.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _shared_zip(tmp_path, paths, workers, container="members"):
    """Run the edit job as ``workers`` workers would (items dealt round robin, as the page does
    when each takes the next), then assemble what the page assembles."""
    names = [p.name for p in paths]
    members = archive.member_names(names)
    items = [{"path": str(p), "name": n, "index": i + 1, "member": m}
             for i, (p, n, m) in enumerate(zip(paths, names, members))]
    options = {"edits": EDITS, "container": container, "key": KEY, "zip_name": "out.zip"}
    made = {}
    for w in range(workers):
        job = jobs.start("edit", options, len(items), lambda name, w=w: str(tmp_path / f"w{w}" / name))
        for item in items[w::workers]:
            result = jobs.step(job, item)
            assert "error" not in result, result
            made[item["index"]] = (result["member"], read_parts(result["chunks"]))
        jobs.finish(job)
    if container == "files":
        return {made[i][0]["name"]: made[i][1] for i in sorted(made)}
    out = bytearray()
    directory = []
    for index in sorted(made):
        member, data = made[index]
        directory.append({**member, "offset": len(out)})
        out += data
    out += archive.central_directory(directory, len(out))
    return bytes(out)


def test_a_zip_made_by_one_worker_or_three_is_the_same_byte_for_byte(tmp_path):
    paths = _series(tmp_path, 7)
    one = _shared_zip(tmp_path / "one", paths, 1)
    three = _shared_zip(tmp_path / "three", paths, 3)
    assert one == three
    with zipfile.ZipFile(io.BytesIO(one)) as z:
        assert z.testzip() is None
        assert z.namelist() == [p.name for p in paths]
        datasets = [pydicom.dcmread(io.BytesIO(z.read(p.name))) for p in paths]
    # the UIDs were remapped consistently (one study, one series) and every file is distinct
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(paths)
    assert datasets[0].StudyInstanceUID != pydicom.dcmread(paths[0]).StudyInstanceUID
    assert [ds.PatientID for ds in datasets] == [f"file {i:04d} of the shared job" for i in range(1, 8)]
    assert all(ds.PixelData == pydicom.dcmread(p).PixelData for ds, p in zip(datasets, paths))


def test_a_folder_save_gets_each_file_alone_the_same_as_in_the_zip(tmp_path):
    paths = _series(tmp_path, 3)
    files = _shared_zip(tmp_path / "f", paths, 2, container="files")
    with zipfile.ZipFile(io.BytesIO(_shared_zip(tmp_path / "z", paths, 2))) as z:
        assert files == {name: z.read(name) for name in z.namelist()}


def test_keyed_uids_are_the_same_for_the_same_key_and_differ_between_keys():
    a, b = uids.UidMap(key=b"k1"), uids.UidMap(key=b"k1")
    assert a["1.2.3"] == b["1.2.3"] != uids.UidMap(key=b"k2")["1.2.3"]
    assert a["1.2.3"] != a["1.2.4"]
    assert pydicom.uid.UID(a["1.2.3"]).is_valid and len(a["1.2.3"]) <= 64


@pytest.mark.parametrize("size, offset, count", [
    (10, 0, 3),                        # plain
    (0xFFFFFFFF + 5, 0, 1),            # a member past 4 GiB: ZIP64 sizes
    (10, 0xFFFFFFFF + 7, 2),           # members that start past 4 GiB: ZIP64 offsets and end records
])
def test_zip64_records_appear_where_a_field_overflows(size, offset, count):
    """The records zipfile reads back, for sizes and offsets too large to build here for real."""
    members = [{"name": f"m{i}.dcm", "size": size, "crc": 1234, "offset": offset + i * (size + 40)}
               for i in range(count)]
    start = members[-1]["offset"] + size + 40
    end = archive.central_directory(members, start)
    # zipfile finds the directory from the end, at the offsets the records claim: pad before it
    fake = _SparseArchive(start, end)
    with zipfile.ZipFile(fake) as z:
        infos = z.infolist()
    assert [(i.filename, i.file_size, i.header_offset, i.CRC) for i in infos] == \
        [(m["name"], m["size"], m["offset"], 1234) for m in members]


def test_member_header_is_what_zipfile_expects_before_the_bytes():
    data = b"DICM" * 10
    header = archive.member_header("a/b.dcm", len(data), zlib.crc32(data))
    blob = header + data
    blob += archive.central_directory([{"name": "a/b.dcm", "size": len(data), "crc": zlib.crc32(data),
                                        "offset": 0}], len(blob))
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert z.testzip() is None and z.read("a/b.dcm") == data


@pytest.mark.parametrize("names, expected", [
    (["a.dcm", "a.dcm", "a.dcm"], ["a.dcm", "a_2.dcm", "a_3.dcm"]),
    (["../../x.dcm", "/etc/x.dcm", "C:\\x\\y.dcm"], ["x.dcm", "etc/x.dcm", "x/y.dcm"]),
    (["", "a\x00b", "dir/./f"], ["file", "ab", "dir/f"]),
])
def test_member_names_are_relative_clean_and_unique(names, expected):
    assert archive.member_names(names) == expected


class _SparseArchive(io.RawIOBase):
    """A read-only file of ``start`` zero bytes and then ``tail``, without holding the zeros."""

    def __init__(self, start, tail):
        self.start, self.tail, self.pos = start, tail, 0

    def seekable(self):
        return True

    def readable(self):
        return True

    def seek(self, offset, whence=0):
        self.pos = {0: offset, 1: self.pos + offset, 2: self.start + len(self.tail) + offset}[whence]
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, buffer):
        end = min(self.pos + len(buffer), self.start + len(self.tail))
        out = bytearray(max(0, end - self.pos))
        for i in range(len(out)):
            at = self.pos + i
            out[i] = self.tail[at - self.start] if at >= self.start else 0
        buffer[:len(out)] = out
        self.pos = end
        return len(out)


def _with_heads(items, tmp_path, length):
    """Items as the worker hands them for a job that reads heads: ``head``, a scratch copy of
    each file's first ``length`` bytes (the step deletes it)."""
    out = []
    for item in items:
        head = tmp_path / f"head-{item['index']}"
        with open(item["path"], "rb") as f:
            head.write_bytes(f.read(length))
        out.append({**item, "head": str(head)})
    return out


def _folder_outputs(tmp_path, items, options):
    job = jobs.start("edit", options, len(items), lambda name: str(tmp_path / "out" / name))
    assert jobs.reads(job) == "head"
    outputs = {}
    for item in items:
        result = jobs.step(job, item)
        assert "error" not in result, result
        outputs[result["member"]["name"]] = result["chunks"]
    jobs.finish(job)
    return outputs


def test_a_folder_save_reads_only_each_file_head_and_references_the_pixel_data(tmp_path, monkeypatch):
    paths = _series(tmp_path, 3)
    whole = _shared_zip(tmp_path / "whole", paths, 1, container="files")
    items = [{"path": str(p), "name": p.name, "index": i + 1, "member": p.name} for i, p in enumerate(paths)]
    options = {"edits": EDITS, "container": "files", "key": KEY}

    def no_whole_read(*args, **kwargs):
        raise AssertionError("a folder save read a whole file")
    monkeypatch.setattr(jobs, "read_file", no_whole_read)
    monkeypatch.setattr(jobs, "read_item", no_whole_read)
    outputs = _folder_outputs(tmp_path, _with_heads(items, tmp_path, 64 * 1024), options)
    pixel_bytes = len(pydicom.dcmread(paths[0]).PixelData)
    for name, chunks in outputs.items():
        # the pixel data is one reference to the opened file, never bytes that stood in for it
        references = [c for c in chunks if "source" in c]
        assert [(c["source"], c["length"]) for c in references] == [(str(tmp_path / "in" / name), pixel_bytes)]
        assert read_parts(chunks) == whole[name]


@pytest.mark.parametrize("case", ["head too short", "something after the pixel data", "deflated"])
def test_a_folder_save_reads_the_whole_file_where_the_head_cannot_vouch_for_the_rest(tmp_path, case):
    paths = _series(tmp_path, 1)
    ds = pydicom.dcmread(paths[0])
    length = 64 * 1024
    if case == "head too short":
        length = 200
    elif case == "something after the pixel data":
        ds.add_new((0xFFFC, 0xFFFC), "OB", b"\0" * 8)  # Data Set Trailing Padding
        ds.save_as(paths[0], enforce_file_format=True)
    else:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
        ds.save_as(paths[0], enforce_file_format=True)
    item = {"path": str(paths[0]), "name": paths[0].name, "index": 1, "member": paths[0].name}
    [headed] = _with_heads([item], tmp_path, length)
    data, tail, _ = jobs.read_item_for_edit(headed, head_only=True)
    assert tail is None and data == paths[0].read_bytes()
    outputs = _folder_outputs(tmp_path, _with_heads([item], tmp_path, length), {"edits": EDITS, "container": "files", "key": KEY})
    edited = pydicom.dcmread(io.BytesIO(read_parts(outputs[paths[0].name])))
    assert edited.PatientName == "Shared^Job" and edited.PixelData == ds.PixelData


def _zip_of_items(tmp_path, items, options):
    """The ZIP the page assembles from one worker's steps over ``items`` (container members)."""
    job = jobs.start("edit", {**options, "container": "members"}, len(items), lambda name: str(tmp_path / name))
    out, directory, results = bytearray(), [], []
    for item in items:
        result = jobs.step(job, item)
        results.append(result)
        if "error" in result:
            continue
        directory.append({**result["member"], "offset": len(out)})
        out += read_parts(result["chunks"])
    jobs.finish(job)
    return bytes(out + archive.central_directory(directory, len(out))), results


def test_a_zip_member_of_a_file_fetched_by_its_head_reads_its_pixel_data_only_for_the_crc(tmp_path, monkeypatch):
    """A large file (the worker fetches only its head, static/worker.js WHOLE_FETCH_MAX) is edited
    from its head; its CRC is read from the file in bounded chunks, never whole: the same ZIP."""
    paths = _series(tmp_path, 3)
    whole = _shared_zip(tmp_path / "whole", paths, 1)
    items = [{"path": str(p), "name": p.name, "index": i + 1, "member": p.name} for i, p in enumerate(paths)]

    def no_whole_read(*args, **kwargs):
        raise AssertionError("a file fetched by its head was read whole")
    monkeypatch.setattr(jobs, "read_file", no_whole_read)
    monkeypatch.setattr(jobs, "read_item", no_whole_read)
    monkeypatch.setattr(jobs, "CRC_CHUNK", 5000)  # several chunks per file
    reads = []
    real_open = open

    def counting_open(path, mode="r", *args, **kwargs):  # the job's own opens
        handle = real_open(path, mode, *args, **kwargs)
        real_read = handle.read
        handle.read = lambda size=-1: reads.append(size) or real_read(size)
        return handle
    monkeypatch.setattr(jobs, "open", counting_open, raising=False)
    headed, results = _zip_of_items(tmp_path / "headed", _with_heads(items, tmp_path, 64 * 1024), {"edits": EDITS, "key": KEY})
    assert headed == whole
    assert reads and max(reads) <= 5000  # the CRC's reads: bounded chunks
    pixel_bytes = len(pydicom.dcmread(paths[0]).PixelData)
    for result, path in zip(results, paths):
        assert [(c["source"], c["length"]) for c in result["chunks"] if "source" in c] == [(str(path), pixel_bytes)]


@pytest.mark.parametrize("edit", [
    {"op": "delete", "path": "PixelData"},
    {"op": "add", "path": "(FFFC,FFFC)", "vr": "OB", "value": ""},  # after the pixel data
])
def test_an_edit_that_reaches_the_pixel_data_reads_the_whole_file_even_when_fetched_by_its_head(tmp_path, edit):
    paths = _series(tmp_path, 2)
    items = [{"path": str(p), "name": p.name, "index": i + 1, "member": p.name} for i, p in enumerate(paths)]
    options = {"edits": [EDITS[0], edit], "key": KEY}
    headed, _ = _zip_of_items(tmp_path / "headed", _with_heads(items, tmp_path, 64 * 1024), options)
    read_whole, _ = _zip_of_items(tmp_path / "whole", items, options)
    assert headed == read_whole
    with zipfile.ZipFile(io.BytesIO(headed)) as z:
        ds = pydicom.dcmread(io.BytesIO(z.read(paths[0].name)))
    assert ds.PatientName == "Shared^Job"
    assert ("PixelData" in ds) == (edit["op"] == "add")


@pytest.mark.parametrize("seen_by", ["its size", "the CRC's read"])
def test_a_file_cut_short_after_its_head_was_fetched_is_named_and_the_others_are_written(tmp_path, monkeypatch,
                                                                                         seen_by):
    paths = _series(tmp_path, 3)
    items = _with_heads([{"path": str(p), "name": p.name, "index": i + 1, "member": p.name}
                         for i, p in enumerate(paths)], tmp_path, 64 * 1024)
    size = paths[1].stat().st_size
    paths[1].write_bytes(paths[1].read_bytes()[:-1000])  # changed on disk since it was opened
    if seen_by == "the CRC's read":  # cut between the look at its size and the read of its pixel data
        real_stat = jobs.os.stat
        monkeypatch.setattr(jobs.os, "stat", lambda path, *a, **k: os.stat_result(
            (*real_stat(path)[:6], size, *real_stat(path)[7:])) if str(path) == str(paths[1]) else real_stat(path, *a, **k))
    made, results = _zip_of_items(tmp_path / "out", items, {"edits": EDITS, "key": KEY})
    assert results[1]["error"]["file"] == paths[1].name
    assert ("shorter than when it was opened" in results[1]["error"]["message"]) == (seen_by == "the CRC's read")
    with zipfile.ZipFile(io.BytesIO(made)) as z:
        assert z.testzip() is None and z.namelist() == [paths[0].name, paths[2].name]


def test_one_file_edited_alone_is_offered_in_parts_its_pixel_data_a_reference_never_read(tmp_path, monkeypatch):
    [path] = _series(tmp_path, 1)
    whole = _shared_zip(tmp_path / "whole", [path], 1, container="files")[path.name]

    def no_whole_read(*args, **kwargs):
        raise AssertionError("a file edited alone was read whole")
    monkeypatch.setattr(jobs, "read_file", no_whole_read)
    monkeypatch.setattr(jobs, "read_item", no_whole_read)
    job = jobs.start("edit", {"edits": EDITS, "key": KEY, "single": True}, 1, lambda name: str(tmp_path / name))
    step = jobs.step(job, {"path": str(path), "name": path.name})
    jobs.finish(job)
    assert {(c["name"], c["mime"]) for c in step["chunks"]} == {(path.name, "application/dicom")}
    assert [c["final"] for c in step["chunks"]] == [False] * (len(step["chunks"]) - 1) + [True]
    references = [c for c in step["chunks"] if "source" in c]
    assert [(c["source"], c["length"]) for c in references] == [(str(path), len(pydicom.dcmread(path).PixelData))]
    assert read_parts(step["chunks"]) == whole


@pytest.mark.parametrize("kind, container, headed", [("edit", "members", False), ("edit", "files", True),
                                                     ("deid_share", "files", True), ("deid_share", "members", False)])
def test_a_file_too_large_to_hold_whole_is_named_and_the_others_are_written(tmp_path, monkeypatch, kind, container,
                                                                            headed):
    """Where a task needs a whole file in memory and one Python object cannot be that large (2 GiB
    in the page), the file is left out with a sentence that says so, not an internal error."""
    from dcmstudio.deid.keys import derive_key
    paths = _series(tmp_path, 2)
    big = tmp_path / "in" / "big.dcm"
    ds = pydicom.dcmread(paths[0])
    ds.add_new((0xFFFC, 0xFFFC), "OB", b"\0" * 8)  # after the pixel data: its head cannot vouch for it
    ds.save_as(big, enforce_file_format=True)
    monkeypatch.setattr(jobs, "LARGEST_HELD", big.stat().st_size - 1)
    items = [{"path": str(p), "name": p.name, "index": i + 1, "member": p.name, "learned": True}
             for i, p in enumerate([paths[0], big, paths[1]])]
    if headed:
        items = _with_heads(items, tmp_path, 64 * 1024)
    options = {"edits": EDITS, "key": KEY, "container": container}
    if kind == "deid_share":
        key = derive_key("s")[0].hex()
        learn = jobs.DeidLearnJob({"key": key}, 3, str(tmp_path / "learn"))
        taught = [learn.step({**item, "head": None}) for item in items]
        options = {"key": key, "container": container, "learned": jobs.fold_learned(taught, [learn.finish()])}
    job = jobs.start(kind, options, len(items), lambda name: str(tmp_path / "out" / name))
    results = [jobs.step(job, item) for item in items]
    jobs.finish(job)
    assert [bool(r.get("error")) for r in results] == [False, True, False]
    assert results[1]["error"]["file"] == "big.dcm"
    assert "needs the whole file in memory" in results[1]["error"]["message"]

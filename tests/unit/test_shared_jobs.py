"""A job shared out over several workers: ZIP members made apart and put together by the page.

The page spreads an edit job over a pool of workers; each makes whole members (local header and
bytes) and the page writes them in order, then asks for the central directory. These tests play
the page's part in Python: the archive must be the same, byte for byte, whatever the number of
workers, and readable by zipfile (and so by every unzip).
"""

import io
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

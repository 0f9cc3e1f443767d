"""Opening a ZIP the user dropped: its files come out for the page to open; bad or huge archives
are refused with a sentence naming the archive."""

import io
import json
import zipfile

import pytest

from conftest import bundled
from dcmstudio import api, archive
from dcmstudio.errors import DicomStudioError


def make_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("series/", b"")
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_the_files_of_a_zip_come_out_in_order_without_its_folders(tmp_path):
    ct = bundled("CT_small.dcm").read_bytes()
    path = make_zip(tmp_path / "study.zip", {"series/a.dcm": ct, "series/b.dcm": ct[:500], "readme.txt": b"hi"})
    assert list(archive.opened_members(str(path), "study.zip")) == [
        ("series/a.dcm", ct), ("series/b.dcm", ct[:500]), ("readme.txt", b"hi")]


def test_the_endpoint_offers_each_member_with_its_name_in_the_archive(tmp_path):
    ct = bundled("CT_small.dcm").read_bytes()
    path = make_zip(tmp_path / "study.zip", {"series/a.dcm": ct})
    result = json.loads(api.call("zip_members", json.dumps({"path": str(path), "name": "study.zip"})))
    assert result["ok"] and result["members"] == [{"member": "series/a.dcm", "output": "0-a.dcm"}]
    with open(result["outputs"][0]["path"], "rb") as f:
        assert f.read() == ct


def test_what_is_not_a_zip_is_refused_naming_it(tmp_path):
    path = tmp_path / "fake.zip"
    path.write_bytes(b"PK\x03\x04 but nothing more")
    with pytest.raises(DicomStudioError, match=r"fake\.zip cannot be opened as a ZIP archive"):
        list(archive.opened_members(str(path), "fake.zip"))


def test_an_archive_that_inflates_past_the_limit_is_refused(tmp_path):
    path = make_zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(200_000)})
    assert path.stat().st_size < 2000
    with pytest.raises(DicomStudioError, match=r"bomb\.zip holds 1 files of 0 MB in all: more than"):
        list(archive.opened_members(str(path), "bomb.zip", max_bytes=100_000))
    # a size the archive understates is caught while inflating
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")
    data[central + 24:central + 28] = (1000).to_bytes(4, "little")  # declared uncompressed size
    local = data.index(b"PK\x03\x04")
    data[local + 22:local + 26] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(DicomStudioError):
        list(archive.opened_members(str(path), "bomb.zip", max_bytes=100_000))


def test_too_many_members_are_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for i in range(5):
            z.writestr(f"{i}.dcm", b"x")
    (tmp_path / "many.zip").write_bytes(buffer.getvalue())
    with pytest.raises(DicomStudioError, match="5 files"):
        list(archive.opened_members(str(tmp_path / "many.zip"), "many.zip", max_members=4))

"""Hostile and broken files, and hostile names (issue 12, items 13-18 and 20).

Every file here is built from a real one with one defect, and goes through ``dcmstudio.api`` the
way the worker calls it: the answer is a sentence naming the file (and the element and offset
where there is one), never an InternalError, a MemoryError or a heap the size of a declared length.
"""

import http.client
import json
import os
import struct
import sys
import threading
import tracemalloc
import zipfile
import zlib

import pydicom
import pytest
from conftest import bundled
from pydicom.dataelem import DataElement
from pydicom.encaps import encapsulate

from dcmstudio import api, archive, codecs
from dcmstudio.archive import MAX_MEMBER_BYTES, ChunkSink, ZipWriter, member_name, read_parts
from dcmstudio.bounded import BoundedFile, inflation_cap
from dcmstudio.edit import edit_bytes
from dcmstudio.elements import walk
from dcmstudio.uids import UidMap

IN_PYODIDE = os.environ.get("DCMSTUDIO_IN_PYODIDE") == "1"
READERS = ("describe", "tree", "export_text", "export_json", "frame_info", "render_frame")


def call(endpoint, **args):
    return json.loads(api.call(endpoint, json.dumps(args)))


def traced(function, *args, **kwargs):
    """``(result, peak bytes Python allocated while it ran)``."""
    tracemalloc.start()
    try:
        result = function(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def error_of(result):
    """The sentence of a refused answer: ``error.message``, or describe's ``reason``."""
    if result.get("ok") and result.get("dicom") is False:
        return result["reason"]
    assert not result["ok"], result
    assert result["error"]["type"] not in ("InternalError", "MemoryError"), result
    return result["error"]["message"]


def with_length(name, tag, length):
    """The bytes of bundled file ``name`` with ``tag``'s length field set to ``length``."""
    data = bytearray(bundled(name).read_bytes())
    element = next(e for e in walk(bytes(data), name).elements if e.tag == tag)
    if element.header_length == 12:
        data[element.value_offset - 4:element.value_offset] = struct.pack("<L", length)
    else:
        data[element.value_offset - 2:element.value_offset] = struct.pack("<H", length)
    return bytes(data), element.offset


def compressed_zeros(compressor, count):
    """``count`` zero bytes through the raw deflate ``compressor``, compressed once per MiB only.

    After a full flush a compressor starts afresh, so each MiB of zeros between two full flushes
    compresses to the same bytes: they are repeated rather than computed again (a 256 MiB bomb
    is made in milliseconds, in Pyodide too).
    """
    zeros = bytes(1 << 20)
    out = [compressor.flush(zlib.Z_FULL_FLUSH)]
    whole, rest = divmod(count, len(zeros))
    if whole:
        one = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
        out.append(one * whole)
    out.append(compressor.compress(zeros[:rest]))
    return b"".join(out)


def deflated_bomb(tmp_path, padding, before_pixels=False):
    """image_dfl.dcm with ``padding`` zero bytes in one element, deflated again.

    After the pixel data as (FFFC,FFFC) *Data Set Trailing Padding*, or before it as a private
    OB element (0029,0010) when ``before_pixels``.
    """
    data = bundled("image_dfl.dcm").read_bytes()
    emap = walk(data, "image_dfl.dcm")
    inflated = bytes(emap.data[emap.dataset_offset:])
    tag = (0x0029, 0x0010) if before_pixels else (0xFFFC, 0xFFFC)
    header = struct.pack("<HH2sHL", *tag, b"OB", 0, padding)
    if before_pixels:
        at = walk(data, "x").top_level(0x7FE00010).offset - emap.dataset_offset
        stream_parts = [inflated[:at], header, None, inflated[at:]]
    else:
        stream_parts = [inflated, header, None]
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [data[:emap.dataset_offset]]
    for part in stream_parts:
        out.append(compressed_zeros(compressor, padding) if part is None else compressor.compress(part))
    out.append(compressor.flush())
    path = tmp_path / ("bomb_before.dcm" if before_pixels else "bomb.dcm")
    path.write_bytes(b"".join(out))
    return path


def job_outputs(kind, options, items):
    """Run a job as worker.js does; return (steps, finish result, {member: bytes} of its ZIP)."""
    started = call("job_start", kind=kind, options=options, count=len(items))
    assert started["ok"], started
    parts, steps = [], []
    for item in items:
        step = call("job_step", job=started["job"], item=item)
        assert step["ok"], step
        steps.append(step)
        parts += step.get("chunks", [])
    finished = call("job_finish", job=started["job"])
    assert finished["ok"], finished
    parts += finished.get("chunks", [])
    archive = read_parts(parts)
    with zipfile.ZipFile(__import__("io").BytesIO(archive)) as z:
        members = {info.filename: z.read(info) for info in z.infolist()}
    return steps, finished, members


# ---- 13. corrupt lengths -----------------------------------------------------------------------

@pytest.mark.parametrize("tag, length", [
    (0x00100010, 0xFFFF),  # a 16-bit length past the end
    (0x00020001, 1 << 30),  # a 32-bit length of 1 GiB, in the file meta group
    (0x7FE00010, 0x7FFFFFF0),  # pixel data declaring 2 GiB
])
def test_a_corrupt_length_costs_no_memory_and_is_named_with_its_offset(tmp_path, tag, length):
    data, offset = with_length("CT_small.dcm", tag, length)
    path = tmp_path / "bad.dcm"
    path.write_bytes(data)
    refused = 0
    for endpoint in READERS:
        result, peak = traced(call, endpoint, path=str(path), name="bad.dcm")
        assert peak < 16 << 20, f"{endpoint} reserved {peak:,} bytes for a {len(data):,}-byte file"
        assert result["ok"] or result["error"]["type"] not in ("InternalError", "MemoryError"), result
        # The inspector shows a truncated file as far as it goes (with a warning), and a viewer
        # can show a frame that is all there; whatever refuses says where the length is.
        if result["ok"] and result.get("dicom") is not False:
            continue
        message = error_of(result)
        assert "bad.dcm" in message and f"({tag >> 16:04X},{tag & 0xFFFF:04X})" in message, message
        assert f"offset {offset + (12 if tag != 0x00100010 else 8):,}" in message, message
        refused += 1
    assert refused


def test_the_inspector_names_the_bad_length_among_its_warnings(tmp_path):
    data, offset = with_length("CT_small.dcm", 0x00100010, 0xFFFF)
    path = tmp_path / "bad.dcm"
    path.write_bytes(data)
    tree = call("tree", path=str(path), name="bad.dcm")["tree"]
    assert any("(0010,0010) PatientName at offset" in w and "65,535 bytes" in w for w in tree["warnings"])


def test_jobs_and_volume_readers_refuse_a_bad_length_with_element_and_offset(tmp_path):
    data, offset = with_length("CT_small.dcm", 0x00100010, 0xFFFF)
    path = tmp_path / "bad.dcm"
    path.write_bytes(data)
    steps, finished, members = job_outputs(
        "edit", {"edits": [{"op": "set", "path": "PatientID", "value": "X"}]},
        [{"path": str(path), "name": "bad.dcm"}])
    message = steps[0]["error"]["message"]
    assert "(0010,0010)" in message and f"offset {offset:,}" in message, message
    assert not members
    opened, peak = traced(call, "volume_open", paths=[str(path)])
    assert peak < 16 << 20
    assert "(0010,0010)" in error_of(opened) and "offset" in error_of(opened)


def test_bounded_file_never_reads_past_the_end(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    with BoundedFile(str(path)) as f:
        f.seek(4)
        data, peak = traced(f.read, 1 << 30)
        assert data == b"456789" and peak < 1 << 20
        assert f.read(5) == b""


@pytest.mark.parametrize("depth", [300, 10_000])
def test_sequences_nested_too_deep_get_our_sentence_in_both_runtimes(tmp_path, depth):
    from test_hostile_fuzz import nested_mutant
    path = tmp_path / "deep.dcm"
    path.write_bytes(nested_mutant(depth))
    too_deep = "its sequences are nested deeper than can be read."
    for endpoint in READERS:
        # pydicom's recursion gives out at a depth that differs between CPython and Pyodide; the
        # sentence is ours, the same in both.
        message = error_of(call(endpoint, path=str(path), name="deep.dcm"))
        assert message.startswith("deep.dcm is not valid DICOM (") and message.endswith(too_deep), message
    steps, _, members = job_outputs("edit", {"edits": [{"op": "set", "path": "PatientID", "value": "X"}]},
                                    [{"path": str(path), "name": "deep.dcm"}])
    message = steps[0]["error"]["message"]
    assert message.startswith("deep.dcm is not valid DICOM (") and too_deep in message and not members, message


# ---- 14. deflate bombs ---------------------------------------------------------------------------

def test_a_deflate_bomb_after_the_pixels_is_described_without_inflating_it(tmp_path):
    cap = inflation_cap(100_000)
    path = deflated_bomb(tmp_path, cap + (1 << 20))
    assert path.stat().st_size < 200_000
    result, peak = traced(call, "describe", path=str(path), name="bomb.dcm")
    assert result["ok"] and result["dicom"], result
    assert peak < 8 << 20
    for endpoint in ("tree", "export_text", "export_json", "render_frame"):
        result, peak = traced(call, endpoint, path=str(path), name="bomb.dcm")
        message = error_of(result)
        assert "bomb.dcm" in message and "inflate" in message, message
        assert peak < 8 << 20, f"{endpoint}: {peak:,} bytes"


def test_a_deflate_bomb_before_the_pixels_is_refused_by_describe_and_jobs(tmp_path):
    path = deflated_bomb(tmp_path, inflation_cap(100_000) + (1 << 20), before_pixels=True)
    result, peak = traced(call, "describe", path=str(path), name="bomb.dcm")
    assert "inflates to more than" in error_of(result)
    assert peak < 8 << 20  # what is skipped is inflated and dropped, not kept
    steps, _, members = job_outputs("edit", {"edits": [{"op": "set", "path": "PatientID", "value": "X"}]},
                                    [{"path": str(path), "name": "bomb.dcm"}])
    assert "inflates to more than" in steps[0]["error"]["message"] and not members


def test_an_ordinary_deflated_file_still_reads_and_renders():
    path = str(bundled("image_dfl.dcm"))
    assert call("describe", path=path, name="d.dcm")["dicom"]
    assert call("tree", path=path, name="d.dcm")["ok"]
    info = call("frame_info", path=path, name="d.dcm")["info"]
    assert info["decodable"] and info["frames"] == 1
    assert call("render_frame", path=path, name="d.dcm")["ok"]


# ---- 15. Number of Frames ------------------------------------------------------------------------

@pytest.mark.parametrize("vr, value, expected", [
    ("IS", "2\\3", "not one whole number"),
    ("PN", "Doe^John", "not one whole number"),
    ("OB", b"\x01\x02", "not one whole number"),
    ("SQ", [], "not one whole number"),
    ("IS", "1.5", "not one whole number"),
    ("IS", "0", "at least one frame"),
    ("IS", "2147483647", "holds 1 at most"),
    ("US", 3, "holds 1 at most"),
    ("FD", 1e300, "more frames than an IS value can count"),
])
@pytest.mark.parametrize("source", ["CT_small.dcm", "MR_small_RLE.dcm"])
def test_number_of_frames_of_any_form_gets_a_sentence(tmp_path, source, vr, value, expected):
    ds = pydicom.dcmread(bundled(source))
    ds.add(DataElement(0x00280008, vr, value))
    path = tmp_path / "frames.dcm"
    ds.save_as(path)
    for endpoint in ("frame_info", "render_frame", "thumbnail"):
        message = error_of(call(endpoint, path=str(path), name="frames.dcm"))
        assert "frames.dcm" in message and "(0028,0008) NumberOfFrames" in message and expected in message


def test_describe_shows_no_frame_count_the_file_cannot_hold(tmp_path):
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    ds.NumberOfFrames = "2147483647"
    path = tmp_path / "many.dcm"
    ds.save_as(path)
    assert call("describe", path=str(path), name="many.dcm")["instance"]["frames"] is None
    for name, frames in (("SC_rgb_rle_2frame.dcm", 2), ("rtdose.dcm", 15), ("CT_small.dcm", 1)):
        assert call("describe", path=str(bundled(name)), name=name)["instance"]["frames"] == frames


def test_real_multiframe_files_keep_their_frame_counts():
    for name, frames in (("SC_rgb_rle_2frame.dcm", 2), ("rtdose.dcm", 15), ("CT_small.dcm", 1)):
        info = call("frame_info", path=str(bundled(name)), name=name)["info"]
        assert info["frames"] == frames, info


# ---- 16. what is and is not supported --------------------------------------------------------------

def test_one_bit_rle_is_announced_as_unsupported(tmp_path):
    ds = pydicom.dcmread(bundled("MR_small_RLE.dcm"))
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    path = tmp_path / "one_bit.dcm"
    ds.save_as(path)
    info = call("frame_info", path=str(path), name="one_bit.dcm")["info"]
    assert not info["decodable"], info
    assert "one_bit.dcm" in info["why_not"] and "RLE Lossless at 1 bit" in info["why_not"]
    message = error_of(call("render_frame", path=str(path), name="one_bit.dcm"))
    assert "not supported" in message and "not valid DICOM" not in message


def test_htj2k_colour_is_announced_as_greyscale_only(tmp_path):
    ds = pydicom.dcmread(bundled("SC_rgb_small_odd.dcm"))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.HTJ2KLossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "colour.dcm"
    ds.save_as(path, enforce_file_format=True)
    already = pydicom.uid.HTJ2KLossless in codecs.registered_decoders()
    if not already:  # in CPython nothing decodes HTJ2K: stand in for the page's greyscale codec
        codecs.register_decoder(pydicom.uid.HTJ2KLossless, lambda data, params: bytes(0))
    try:
        info = call("frame_info", path=str(path), name="colour.dcm")["info"]
    finally:
        if not already:
            codecs.unregister_decoder(pydicom.uid.HTJ2KLossless)
    assert not info["decodable"]
    assert "colour.dcm" in info["why_not"] and "greyscale" in info["why_not"], info["why_not"]


# ---- 17. nothing offered that was not re-read ------------------------------------------------------

def unreadable_by_pydicom():
    """UN_sequence.dcm whose (0002,0000) says UT instead of UL: the byte-level walker reads it
    (a 32-bit length then covers the meta group), pydicom cannot parse it."""
    data = bytearray(bundled("UN_sequence.dcm").read_bytes())
    data[136:138] = b"UT"
    return bytes(data)


def two_items(tmp_path, first):
    bad, good = tmp_path / "bad.dcm", tmp_path / "good.dcm"
    bad.write_bytes(first)
    good.write_bytes(bundled("CT_small.dcm").read_bytes())
    return [{"path": str(bad), "name": "bad.dcm"}, {"path": str(good), "name": "good.dcm"}]


def assert_first_refused_second_offered(steps, members):
    assert "could not be read back with pydicom" in steps[0]["error"]["message"], steps[0]
    assert steps[0]["error"]["file"] == "bad.dcm"
    assert len(members) == 1
    for data in members.values():
        pydicom.dcmread(__import__("io").BytesIO(data))


def test_an_edit_pydicom_cannot_read_back_is_not_offered(tmp_path):
    data = unreadable_by_pydicom()
    assert walk(data, "bad.dcm").complete
    edits = [{"op": "set", "path": "PatientID", "value": "X"}]
    edit_bytes(data, edits, context={"uid_map": UidMap()})  # the editor alone accepts it
    steps, _, members = job_outputs("edit", {"edits": edits}, two_items(tmp_path, data))
    assert_first_refused_second_offered(steps, members)


def test_every_job_kind_re_reads_before_offering(tmp_path, monkeypatch):
    """The check lives in the jobs' plumbing: a kind whose writer let a bad output through
    (simulated here) still offers nothing pydicom cannot read back."""
    from dcmstudio import deid
    data = unreadable_by_pydicom()
    real_deidentify = deid.Deidentifier.deidentify_output

    def deidentify(self, source, name, index=None, **options):
        pieces, origins, report = real_deidentify(self, source, name, index=index, **options)
        return ([data], [None], report) if name == "bad.dcm" else (pieces, origins, report)
    monkeypatch.setattr(deid.Deidentifier, "deidentify_output", deidentify)
    good = bundled("CT_small.dcm").read_bytes()
    steps, _, members = job_outputs("deid", {}, two_items(tmp_path, good))
    assert_first_refused_second_offered(steps, members)

    real_compress = codecs.compress

    def compress(path, out, target, name=None, verify=True, **settings):
        report = real_compress(path, out, target, name=name, verify=verify, **settings)
        if name == "bad.dcm":
            with open(out, "wb") as f:
                f.write(data)
        return report
    monkeypatch.setattr(codecs, "compress", compress)
    steps, _, members = job_outputs("compress", {"transfer_syntax": pydicom.uid.RLELossless},
                                    two_items(tmp_path, good))
    assert_first_refused_second_offered(steps, members)


# ---- 18. ZIP member names ---------------------------------------------------------------------------

HOSTILE_NAMES = ["../../x.dcm", "/etc/x.dcm", "C:/Windows/x.dcm", "C:\\a\\b.dcm", "a\x00b.dcm", "",
                 ".", "a/./b/../c.dcm", "\x01\x1f.dcm", "é" * 200 + ".dcm", "x" * 400, "X.dcm", "x.dcm"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_member_names_are_safe(name):
    member = member_name(name)
    assert member and not member.startswith("/") and "\\" not in member
    assert len(member.encode("utf-8")) <= MAX_MEMBER_BYTES
    assert not any(part in ("", ".", "..") for part in member.split("/"))
    assert not any(ord(c) < 0x20 or c == "\x7f" for c in member)
    assert ":" not in member


def test_clean_names_are_kept():
    assert member_name("series/IM0001.dcm") == "series/IM0001.dcm"
    assert member_name("é" * 300 + ".dcm").endswith(".dcm")


def test_an_archive_of_hostile_names_has_unique_safe_members_mapped_in_the_report(tmp_path):
    source = tmp_path / "in.dcm"
    source.write_bytes(bundled("CT_small.dcm").read_bytes())
    items = [{"path": str(source), "name": name} for name in HOSTILE_NAMES]
    steps, finished, members = job_outputs(
        "edit", {"edits": [{"op": "set", "path": "PatientID", "value": "X"}]}, items)
    assert len(members) == len(HOSTILE_NAMES)
    assert len({m.casefold() for m in members}) == len(members)
    for step in steps:
        assert step["member"]["name"] in members
        test_member_names_are_safe(step["member"]["name"])
    report = finished["outputs"][0]
    with open(report["path"], encoding="utf-8") as f:  # the report maps each input to its member
        mapped = [json.loads(line)["member"] for line in f]
    assert mapped == [step["member"]["name"] for step in steps]
    with zipfile.ZipFile(tmp_path / "check.zip", "w") as z:  # zipfile accepts them back
        for member in members:
            z.writestr(member, b"")


def test_the_names_workers_are_given_are_as_safe():
    names = archive.member_names(HOSTILE_NAMES + ["a.dcm", "A.DCM"])
    assert len({n.casefold() for n in names}) == len(names)
    for name in names:
        test_member_names_are_safe(name)


def test_zip_writer_uniqueness_ignores_case_and_keeps_suffixes(tmp_path):
    sink = ChunkSink(str(tmp_path / "chunks"))
    writer = ZipWriter(sink)
    names = [writer.add_bytes(b"x", n) for n in ("a.dcm", "A.dcm", "a.dcm", "y" * 300 + ".dcm", "y" * 300 + ".dcm")]
    assert names[:3] == ["a.dcm", "A_2.dcm", "a_3.dcm"]
    assert names[4].endswith("_2.dcm") and len(names[4].encode()) <= MAX_MEMBER_BYTES
    assert names[3] != names[4]


# ---- 20. build.py serve ---------------------------------------------------------------------------

@pytest.mark.skipif(IN_PYODIDE, reason="build.py serve is a CPython web server; the page runtime has no sockets")
def test_serve_refuses_symlinks_out_of_dist_and_lists_no_directories(tmp_path, monkeypatch):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, root)
    try:
        import build
    finally:
        sys.path.remove(root)
    site = tmp_path / "dist"
    (site / "sub").mkdir(parents=True)
    (site / "index.html").write_text("<p>page</p>")
    (site / "sub" / "a.js").write_text("1")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    (site / "leak.txt").symlink_to(secret)
    (site / "outside").symlink_to(tmp_path)
    monkeypatch.setattr(build, "DIST", site)
    monkeypatch.setenv("DCMSTUDIO_QUIET", "1")
    server = build.http.server.ThreadingHTTPServer(("127.0.0.1", 0), build.SiteHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        def get(path):
            connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        assert get("/index.html") == (200, b"<p>page</p>")
        assert get("/sub/a.js")[0] == 200
        for path in ("/leak.txt", "/outside/secret.txt", "/outside/", "/sub/", "/../secret.txt"):
            status, body = get(path)
            assert status == 404 and b"not for the web" not in body and b"a.js" not in body, path
    finally:
        server.shutdown()
        server.server_close()

"""Hostile files in Chromium (issue 12, items 13-16): what the page lists and what its viewer is
told, through the page's own workers with the page's own codecs."""

import time

import pydicom
from pydicom.encaps import encapsulate

from conftest import open_files
from test_page_inspect import TEST_FILES, assert_same_origin_only


def hostile_files(tmp_path):
    """A bad length, a 2^31-1 frame claim, 1-bit RLE and HTJ2K colour, each from a real file."""
    data = bytearray((TEST_FILES / "CT_small.dcm").read_bytes())
    data[156 - 4:156] = (1 << 30).to_bytes(4, "little")  # (0002,0001)'s 32-bit length: 1 GiB
    (tmp_path / "bad_length.dcm").write_bytes(data)
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.NumberOfFrames = "2147483647"
    ds.save_as(tmp_path / "many_frames.dcm")
    ds = pydicom.dcmread(TEST_FILES / "MR_small_RLE.dcm")
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.save_as(tmp_path / "one_bit_rle.dcm")
    ds = pydicom.dcmread(TEST_FILES / "SC_rgb_small_odd.dcm")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.HTJ2KLossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "htj2k_colour.dcm", enforce_file_format=True)
    return [tmp_path / n for n in ("bad_length.dcm", "many_frames.dcm", "one_bit_rle.dcm", "htj2k_colour.dcm")]


def test_hostile_files_are_listed_or_explained_and_unsupported_variants_named(page, server, tmp_path):
    open_files(page, hostile_files(tmp_path))
    deadline = time.time() + 60
    while time.time() < deadline:
        if page.evaluate("window.dcmstudio.files.count() + window.dcmstudio.files.skipped.length") >= 4:
            break
        time.sleep(0.1)
    skipped = page.evaluate("window.dcmstudio.files.skipped")
    assert [s["name"] for s in skipped] == ["bad_length.dcm"], skipped
    assert "(0002,0001)" in skipped[0]["reason"] and "offset 156" in skipped[0]["reason"], skipped
    # No frame count the file cannot hold is shown in the list.
    listed = page.inner_text(".file-tree")
    assert "many_frames.dcm" in listed and "2147483647 frames" not in listed
    answers = page.evaluate("""async () => {
        const out = {};
        for (const f of window.dcmstudio.files.files.values()) {
            out[f.name] = await window.dcmstudio.python.call("frame_info", { path: f.path, name: f.name });
        }
        return out;
    }""")
    assert not answers["many_frames.dcm"]["ok"]
    assert "holds 1 at most" in answers["many_frames.dcm"]["error"]["message"]
    one_bit = answers["one_bit_rle.dcm"]["info"]
    assert not one_bit["decodable"] and "RLE Lossless at 1 bit" in one_bit["why_not"]
    colour = answers["htj2k_colour.dcm"]["info"]
    assert not colour["decodable"] and "greyscale" in colour["why_not"], colour
    assert_same_origin_only(page, server)

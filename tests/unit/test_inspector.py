"""inspector: element trees, search, text dumps and DICOM JSON, on pydicom's files and generated ones.

The fuzz test runs FUZZ_CASES mutated files (default 80, a few seconds); for a longer run:
``DCMSTUDIO_FUZZ_CASES=3000 python -m pytest tests/unit/test_inspector.py -k fuzz``.
"""

import base64
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_fragments
from pydicom.sequence import Sequence
from pydicom.uid import (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless,
                         generate_uid)

from conftest import TEST_FILES_DIR, bundled, bundled_dicom_files
from dcmstudio import inspector
from dcmstudio.catalog import describe_file
from dcmstudio.errors import DicomStudioError, InvalidDicomError
from dcmstudio.inspector import dicom_json, dump_text, element_tree, search

NODE_KEYS = {"id", "tag", "keyword", "name", "vr", "vm", "length", "value", "truncated",
             "private_creator", "path", "items", "meta", "warning"}
FUZZ_CASES = int(os.environ.get("DCMSTUDIO_FUZZ_CASES", "80"))
HAS_DCMDUMP = shutil.which("dcmdump") is not None and sys.platform != "emscripten"


def name_of(path):
    return str(path.relative_to(TEST_FILES_DIR))


def tree_of(name, **kwargs):
    return element_tree(str(bundled(name)), name, **kwargs)


def walk(nodes, ancestors=()):
    """Yield ``(node, ancestor ids)`` for every node, depth first."""
    for node in nodes:
        yield node, list(ancestors)
        for item in node["items"] or ():
            yield from walk(item["nodes"], (*ancestors, node["id"], item["id"]))


def find(tree, path):
    matches = [node for node, _ in walk(tree["nodes"]) if node["path"] == path]
    assert len(matches) == 1, f"{len(matches)} nodes with path {path}"
    return matches[0]


def write_dataset(path, ds, **kwargs):
    pydicom.dcmwrite(path, ds, enforce_file_format=True, **kwargs)
    return str(path)


def new_dataset(syntax=ExplicitVRLittleEndian, **values):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def explicit_element(group, element, vr, value):
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


# --- every bundled file -----------------------------------------------------------------------

@pytest.mark.parametrize("path", bundled_dicom_files(), ids=name_of)
def test_every_bundled_file_gives_a_tree_dump_and_json_or_an_error_naming_it(path):
    name = name_of(path)
    for export in (element_tree, dump_text, dicom_json):
        start = time.perf_counter()
        try:
            result = export(str(path), name)
        except DicomStudioError as exc:
            assert exc.file == name and name in exc.message
            continue
        finally:
            assert time.perf_counter() - start < 5
        if export is element_tree:
            check_tree_shape(result, name)
        elif export is dump_text:
            assert result.startswith(f"# dcmstudio dump of {name}\n# Transfer syntax: ")
        else:
            assert not any(key.startswith("0002") for key in json.loads(result))


def check_tree_shape(tree, name):
    assert tree["file"] == name and set(tree["transfer_syntax"]) == {"uid", "name"}
    ids = []
    meta_flags = [node["meta"] for node in tree["nodes"]]
    assert meta_flags == sorted(meta_flags, reverse=True), "file meta nodes come first"
    for node, _ in walk(tree["nodes"]):
        assert set(node) == NODE_KEYS
        assert re.fullmatch(r"\([0-9A-F]{4},[0-9A-F]{4}\)", node["tag"])
        assert node["meta"] == node["tag"].startswith("(0002,")
        assert isinstance(node["value"], str) and isinstance(node["vm"], int)
        assert node["length"] is None or node["length"] >= 0
        assert node["keyword"] is None or node["path"].split(".")[-1] == node["keyword"]
        ids.append(node["id"])
        for index, item in enumerate(node["items"] or ()):
            assert item["index"] == index and item["label"] == f"Item {index + 1}"
            ids.append(item["id"])
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"n\d+", i) for i in ids)


# --- tree structure ---------------------------------------------------------------------------

def test_file_meta_comes_first_flagged():
    tree = tree_of("CT_small.dcm")
    meta = [node for node in tree["nodes"] if node["meta"]]
    assert [node["tag"] for node in meta] == [
        "(0002,0000)", "(0002,0001)", "(0002,0002)", "(0002,0003)", "(0002,0010)",
        "(0002,0012)", "(0002,0013)", "(0002,0016)"]
    assert tree["nodes"][:8] == meta
    group_length = meta[0]
    assert (group_length["vr"], group_length["vm"], group_length["length"], group_length["value"]) \
        == ("UL", 1, 4, "192")
    assert meta[1]["value"] == "<2 bytes: 00 01>" and meta[1]["truncated"] is False
    assert tree["transfer_syntax"] == {"uid": "1.2.840.10008.1.2.1",
                                       "name": "Explicit VR Little Endian"}


def test_a_node_has_the_documented_fields():
    node = find(tree_of("CT_small.dcm"), "PatientName")
    assert node == {"id": node["id"], "tag": "(0010,0010)", "keyword": "PatientName",
                    "name": "Patient's Name", "vr": "PN", "vm": 1, "length": 22,
                    "value": "CompressedSamples^CT1", "truncated": False,
                    "private_creator": None, "path": "PatientName", "items": None, "meta": False,
                    "warning": None}


@pytest.mark.parametrize("sequence, item_paths", [
    ("RequestAttributesSequence", ["RequestAttributesSequence[0].ScheduledProcedureStepDescription",
                                   "RequestAttributesSequence[0].ScheduledProcedureStepID",
                                   "RequestAttributesSequence[0].RequestedProcedureID"]),
    ("ReferencedImageSequence", ["ReferencedImageSequence[0].ReferencedSOPClassUID",
                                 "ReferencedImageSequence[0].ReferencedSOPInstanceUID"]),
])
def test_sequences_nest_their_items_with_edit_paths(sequence, item_paths):
    tree = tree_of("examples_overlay.dcm")
    node = find(tree, sequence)
    assert node["vr"] == "SQ" and node["value"] == "" and len(node["items"]) == 1
    item = node["items"][0]
    assert [child["path"] for child in item["nodes"]] == item_paths
    assert find(tree, "RequestAttributesSequence[0].RequestedProcedureID")["value"] == \
        "8000000000330109"


def test_deeply_nested_sequences_keep_paths_and_undefined_lengths():
    tree = tree_of("UN_sequence.dcm")
    leaf = find(tree, "(4453,100C)[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]"
                      ".ReferencedSOPClassUID")
    assert leaf["value"] == "1.2.840.10008.5.1.4.1.1.2"
    assert find(tree, "(4453,100C)")["length"] is None


def test_private_elements_carry_their_creator_and_dictionary_name():
    tree = tree_of("CT_small.dcm")
    creator = find(tree, "(0009,0010)")
    assert (creator["name"], creator["value"], creator["private_creator"]) == \
        ("Private Creator", "GEMS_IDEN_01", None)
    suite = find(tree, "(0009,1002)")
    assert suite["keyword"] is None and suite["private_creator"] == "GEMS_IDEN_01"
    assert (suite["name"], suite["vr"], suite["value"]) == ("Suite id", "SH", "CT01")


def test_private_elements_inside_items_of_an_implicit_vr_file_use_the_private_dictionary(tmp_path):
    item = Dataset()
    block = item.private_block(0x0009, "GEMS_IDEN_01", create=True)
    block.add_new(0x02, "SH", "CT01")
    ds = new_dataset(ImplicitVRLittleEndian, ReferencedImageSequence=Sequence([item]))
    tree = element_tree(write_dataset(tmp_path / "priv.dcm", ds), "priv.dcm")
    suite = find(tree, "ReferencedImageSequence[0].(0009,1002)")
    assert (suite["private_creator"], suite["name"], suite["vr"], suite["value"]) == \
        ("GEMS_IDEN_01", "Suite id", "SH", "CT01")


def test_an_unknown_private_element_without_creator_is_still_listed():
    tree = tree_of("nested_priv_SQ.dcm")
    leaf = find(tree, "(0001,0001)[0].(0001,0001)[0].(0001,0001)")
    assert leaf["private_creator"] is None and leaf["name"] == "Private tag data"
    assert leaf["value"] == "<16 bytes: " + b"Double Nested SQ".hex(" ") + ">"


def test_repeating_group_elements_are_named_but_addressed_by_tag():
    node = find(tree_of("examples_overlay.dcm"), "(6000,3000)")
    assert node["keyword"] is None and node["name"] == "Overlay Data"


# --- values -----------------------------------------------------------------------------------

def test_native_pixel_data_is_previewed_from_its_first_bytes():
    node = find(tree_of("CT_small.dcm"), "PixelData")
    data = pydicom.dcmread(bundled("CT_small.dcm")).PixelData
    assert node["value"] == f"<{len(data)} bytes: {data[:16].hex(' ')} …>"
    assert (node["vr"], node["vm"], node["length"], node["truncated"]) == ("OW", 1, 32768, True)


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "examples_ybr_color.dcm", "SC_rgb_rle_2frame.dcm",
                                  "693_J2KI.dcm", "MR_small_RLE.dcm"])
def test_encapsulated_pixel_data_counts_fragments_without_decoding(name):
    full = pydicom.dcmread(bundled(name))
    offsets_item = struct.unpack("<L", full.PixelData[4:8])[0]
    fragments = list(generate_fragments(full.PixelData[8 + offsets_item:]))
    noun = "fragment" if len(fragments) == 1 else "fragments"
    expected = f"<encapsulated: {len(fragments)} {noun}, {sum(map(len, fragments))} bytes>"
    node = find(tree_of(name), "PixelData")
    assert node["value"] == expected and node["length"] is None and node["truncated"] is True


def test_large_pixel_data_is_never_read_into_memory(tmp_path):
    pixels = bytes(range(256)) * (10 * 4096)  # 10 MiB
    ds = new_dataset(Rows=2048, Columns=2560, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0, SamplesPerPixel=1,
                     PhotometricInterpretation="MONOCHROME2", PixelData=pixels)
    path = write_dataset(tmp_path / "large.dcm", ds)
    del ds
    tracemalloc.start()
    tree = element_tree(path, "large.dcm")
    dump = dump_text(path, "large.dcm")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 << 20, f"{peak} bytes of heap for a 10 MiB file"
    expected = f"<{len(pixels)} bytes: {pixels[:16].hex(' ')} …>"
    assert find(tree, "PixelData")["value"] == expected
    assert expected in dump


def test_large_encapsulated_pixel_data_is_never_read_into_memory(tmp_path):
    frames = [bytes([n % 256]) * 65536 for n in range(160)]  # 10 MiB in 160 fragments
    ds = new_dataset(JPEG2000Lossless, Rows=256, Columns=256, BitsAllocated=8, BitsStored=8,
                     HighBit=7, PixelRepresentation=0, SamplesPerPixel=1, NumberOfFrames=160,
                     PhotometricInterpretation="MONOCHROME2", PixelData=encapsulate(frames))
    ds["PixelData"].VR = "OB"
    path = write_dataset(tmp_path / "frames.dcm", ds)
    del ds
    tracemalloc.start()
    node = find(element_tree(path, "frames.dcm"), "PixelData")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert node["value"] == f"<encapsulated: 160 fragments, {160 * 65536} bytes>"
    assert peak < 2 << 20


def test_long_text_is_cut_to_max_value_chars(tmp_path):
    ds = new_dataset(StudyComments="x" * 500,
                     ImagePositionPatient=[f"{n}.5" for n in range(3)],
                     GridFrameOffsetVector=[str(n) for n in range(100)])
    path = write_dataset(tmp_path / "long.dcm", ds)
    tree = element_tree(path, "long.dcm", max_value_chars=50)
    comments = find(tree, "StudyComments")
    assert (comments["value"], comments["truncated"], comments["length"]) == ("x" * 50, True, 500)
    grid = find(tree, "GridFrameOffsetVector")
    assert grid["truncated"] and grid["vm"] == 100 and len(grid["value"]) == 50
    assert grid["value"].startswith("0\\1\\2\\3\\")
    position = find(tree, "ImagePositionPatient")
    assert (position["value"], position["truncated"]) == ("0.5\\1.5\\2.5", False)
    assert "x" * 500 in dump_text(path, "long.dcm")


def test_numbers_show_as_written():
    tree = tree_of("CT_small.dcm")
    assert find(tree, "(0043,1031)")["value"] == "-11.200000\\9.700000"  # DS keeps its text
    assert find(tree, "(0043,102B)")["value"] == "4\\4\\0\\0"  # SS multi-valued
    assert find(tree, "(0043,1040)")["value"] == "178.07993"  # FL at float32 precision


def test_values_that_fail_to_decode_are_marked_not_raised(tmp_path):
    meta_and_empty = io.BytesIO()
    pydicom.dcmwrite(meta_and_empty, new_dataset(), enforce_file_format=True)
    body = b"".join([
        explicit_element(0x0008, 0x0005, "CS", b"ISO_IR 999"),
        explicit_element(0x0018, 0x1310, "FD", b"\0" * 5),
        explicit_element(0x0020, 0x0013, "IS", b"12a "),
        explicit_element(0x0028, 0x0009, "AT", b"\x01\x02\x03"),
        explicit_element(0x0028, 0x0010, "US", b"\x01\x02\x03\x00"),
    ])
    path = tmp_path / "bad.dcm"
    path.write_bytes(meta_and_empty.getvalue() + body)
    tree = element_tree(str(path), "bad.dcm")
    charset = find(tree, "SpecificCharacterSet")
    assert "ISO_IR 999" in charset["warning"]
    acquisition = find(tree, "AcquisitionMatrix")
    assert acquisition["value"] == "<cannot decode as FD: 00 00 00 00 00>"
    assert acquisition["warning"] == ("the value cannot be decoded as FD: its length, 5, is not a "
                                      "multiple of 8 bytes")
    number = find(tree, "InstanceNumber")
    assert number["value"] == "12a" and "Invalid value for VR IS" in number["warning"]
    pointer = find(tree, "FrameIncrementPointer")
    assert pointer["value"] == "<cannot decode as AT: 01 02 03>" and pointer["vm"] == 0
    assert find(tree, "Rows")["value"] == "513\\3"
    dump = dump_text(str(path), "bad.dcm")
    assert "(0018,1310) FD <cannot decode as FD: 00 00 00 00 00>" in dump
    assert "# ^ warning: the value cannot be decoded as AT" in dump


def test_text_in_the_wrong_character_set_is_shown_with_a_warning(tmp_path):
    ds = new_dataset(SpecificCharacterSet="ISO_IR 192", PatientName="X")
    path = write_dataset(tmp_path / "utf8.dcm", ds)
    data = open(path, "rb").read().replace(b"PN\x02\x00X ", b"PN\x02\x00\xff\xfe")
    open(path, "wb").write(data)
    node = find(element_tree(path, "utf8.dcm"), "PatientName")
    assert "\ufffd" in node["value"] and "decode" in node["warning"]


def test_malformed_numbers_in_a_bundled_file_are_flagged():
    node = find(tree_of("badVR.dcm"), "NumberOfFrames")
    assert node["value"] == "1A" and "Invalid value for VR IS" in node["warning"]


def test_an_unexpected_exception_while_showing_a_value_becomes_a_marker(monkeypatch):
    def overflow(element, max_chars):
        raise OverflowError("Python int too large to convert to C ssize_t")  # as on wasm32

    monkeypatch.setattr(inspector, "_value_text", overflow)
    node = find(tree_of("CT_small.dcm"), "PatientName")
    assert node["value"].startswith("<cannot decode as PN: 43 6f")
    assert "too large" in node["warning"]


def test_missing_pixel_bytes_of_a_truncated_file_are_reported():
    tree = tree_of("MR_truncated.dcm")
    node = find(tree, "PixelData")
    assert node["warning"] == "the file ends 8130 bytes into this 8192-byte value, 62 bytes are missing"
    assert tree["warnings"] == ["The file is truncated: the value of (7FE0,0010) PixelData at offset "
                                "1,500 declares 8,192 bytes, but the file ends 8,130 bytes into it "
                                "(62 bytes missing)."]


def test_a_value_cut_inside_a_nested_sequence_is_reported_where_it_is():
    tree = tree_of("rtplan_truncated.dcm")
    node = find(tree, "BeamSequence[0].ControlPointSequence[0].IsocenterPosition")
    assert "21 bytes are missing" in node["warning"]
    with pytest.raises(InvalidDicomError, match="rtplan_truncated.dcm is truncated"):
        dicom_json(str(bundled("rtplan_truncated.dcm")), "rtplan_truncated.dcm")


def nested_sequences(depth):
    """A bare implicit VR data set: ``depth`` undefined-length sequences, one inside the other."""
    opening = struct.pack("<HHL", 0x0008, 0x1140, 0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000,
                                                                          0xFFFFFFFF)
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return opening * depth + closing * depth


def test_nested_sequences_are_listed_to_a_reasonable_depth_and_refused_beyond(tmp_path):
    path = tmp_path / "nested.dcm"
    path.write_bytes(nested_sequences(40))
    tree = element_tree(str(path), "nested.dcm")
    deepest = max((node for node, _ in walk(tree["nodes"])), key=lambda node: len(node["path"]))
    assert deepest["path"] == ".".join(["ReferencedImageSequence[0]"] * 39) + \
        ".ReferencedImageSequence"
    path.write_bytes(nested_sequences(5000))
    for function in (describe_file, element_tree, dump_text, dicom_json):
        with pytest.raises(InvalidDicomError, match="nested.dcm is not valid DICOM"):
            function(str(path), "nested.dcm")


def test_a_file_without_meta_says_its_syntax_was_inferred():
    tree = tree_of("ExplVR_BigEndNoMeta.dcm")
    assert tree["transfer_syntax"]["uid"] == "1.2.840.10008.1.2.2"
    assert "inferred" in tree["transfer_syntax"]["name"]
    assert not any(node["meta"] for node in tree["nodes"])


def test_ids_are_stable_for_the_same_file():
    assert tree_of("rtplan.dcm") == tree_of("rtplan.dcm")


def test_deflated_files_are_read_in_full():
    tree = tree_of("image_dfl.dcm")
    assert tree["transfer_syntax"]["uid"] == "1.2.840.10008.1.2.1.99"
    full = pydicom.dcmread(bundled("image_dfl.dcm"))
    assert find(tree, "PixelData")["value"].startswith(f"<{len(full.PixelData)} bytes: "
                                                        f"{full.PixelData[:16].hex(' ')}")


# --- search -----------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["0010,0010", "(0010,0010)", "00100010", "0x00100010",
                                   "0010 0010", "  (0010, 0010)  ", "(0010,0010"])
def test_search_understands_each_tag_spelling(query):
    tree = tree_of("CT_small.dcm")
    assert search(tree, query) == {"matches": [find(tree, "PatientName")["id"]], "reveal": []}


def test_search_tags_in_lowercase_hex():
    tree = tree_of("CT_small.dcm")
    expected = [find(tree, "(0009,10E6)")["id"]]
    assert search(tree, "(0009,10e6)")["matches"] == expected
    assert search(tree, "0x000910E6")["matches"] == expected


def test_a_partial_tag_matches_its_group_inside_items_too():
    tree = tree_of("CT_small.dcm")
    group = [node["id"] for node, _ in walk(tree["nodes"]) if node["tag"].startswith("(0010,")]
    result = search(tree, "(0010,")
    assert result["matches"] == group and len(group) == 12
    sequence = find(tree, "OtherPatientIDsSequence")
    assert result["reveal"] == [sequence["id"], sequence["items"][0]["id"],
                                sequence["items"][1]["id"]]


def test_search_by_keyword_and_name_is_case_insensitive():
    tree = tree_of("CT_small.dcm")
    keywords = [node["keyword"] for node, _ in walk(tree["nodes"])
                if node["id"] in search(tree, "patientid")["matches"]]
    assert keywords == ["PatientID", "OtherPatientIDsSequence", "PatientID", "TypeOfPatientID",
                        "PatientID", "TypeOfPatientID"]
    assert search(tree, "PATIENT'S NAME")["matches"] == [find(tree, "PatientName")["id"]]


def test_search_by_value_reveals_the_enclosing_sequence_and_item():
    tree = tree_of("CT_small.dcm")
    sequence = find(tree, "OtherPatientIDsSequence")
    nested = find(tree, "OtherPatientIDsSequence[0].PatientID")
    assert search(tree, "abcd1234") == {"matches": [nested["id"]],
                                        "reveal": [sequence["id"], sequence["items"][0]["id"]]}
    assert search(tree, "compressedsamples^ct")["matches"] == [find(tree, "PatientName")["id"]]


def test_search_deep_inside_nested_sequences_reveals_every_ancestor():
    tree = tree_of("UN_sequence.dcm")
    leaf_path = ("(4453,100C)[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]"
                 ".ReferencedSOPInstanceUID")
    leaf = find(tree, leaf_path)
    result = search(tree, leaf["value"])
    assert result["matches"] == [leaf["id"]]
    outer, middle, inner = (find(tree, "(4453,100C)"),
                            find(tree, "(4453,100C)[0].ReferencedSeriesSequence"),
                            find(tree, "(4453,100C)[0].ReferencedSeriesSequence[0]"
                                       ".ReferencedSOPSequence"))
    assert result["reveal"] == [outer["id"], outer["items"][0]["id"], middle["id"],
                                middle["items"][0]["id"], inner["id"], inner["items"][0]["id"]]


def test_search_by_private_creator_and_on_a_tree_that_went_through_json():
    tree = tree_of("CT_small.dcm")
    plain = json.loads(json.dumps(tree))
    result = search(plain, "gems_iden_01")
    assert result == search(tree, "gems_iden_01")
    assert find(tree, "(0009,1002)")["id"] in result["matches"]


def test_an_empty_query_matches_nothing():
    assert search(tree_of("CT_small.dcm"), "   ") == {"matches": [], "reveal": []}


# --- dump -------------------------------------------------------------------------------------

def test_dump_lines_look_like_dcmdump():
    dump = dump_text(str(bundled("CT_small.dcm")), "CT_small.dcm")
    lines = dump.splitlines()
    assert lines[:2] == ["# dcmstudio dump of CT_small.dcm",
                         "# Transfer syntax: Explicit VR Little Endian (1.2.840.10008.1.2.1)"]
    assert re.search(r"^\(0008,0005\) CS \[ISO_IR 100\] +#  10, 1 SpecificCharacterSet$", dump,
                     re.MULTILINE)
    start = lines.index(next(line for line in lines if "OtherPatientIDsSequence" in line))
    assert [line.rsplit(" # ", 1)[0].rstrip() for line in lines[start:start + 10]] == [
        "(0010,1002) SQ (Sequence with explicit length #=2)",
        "  (FFFE,E000) na (Item with explicit length #=2)",
        "    (0010,0020) LO [ABCD1234]",
        "    (0010,0022) CS [TEXT]",
        "  (FFFE,E00D) na (ItemDelimitationItem for re-encoding)",
        "  (FFFE,E000) na (Item with explicit length #=2)",
        "    (0010,0020) LO [1234ABCD]",
        "    (0010,0022) CS [TEXT]",
        "  (FFFE,E00D) na (ItemDelimitationItem for re-encoding)",
        "(FFFE,E0DD) na (SequenceDelimitationItem for re-encoding)",
    ]
    assert lines[start + 1].endswith("#  28, 1 Item")


def test_dump_keeps_each_element_on_one_line(tmp_path):
    ds = new_dataset(StudyComments="first line\r\nsecond line", PatientName="")
    dump = dump_text(write_dataset(tmp_path / "lines.dcm", ds), "lines.dcm")
    assert "(0032,4000) LT [first line\\r\\nsecond line]" in dump
    assert "(0010,0010) PN (no value available)" in dump


def dcmdump_elements(text):
    """(depth, tag, VR, length, VM) of each element and item line of a dump (dcmdump's or ours)."""
    line_pattern = re.compile(r"^( *)\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\) (\w\w) .*# +(\S+), *(\d+) ")
    found, in_pixel_items = [], False
    for line in text.splitlines():
        match = line_pattern.match(line)
        if not match:
            continue
        indent, group, element, vr, length, vm = match.groups()
        tag = (group + element).lower()
        if in_pixel_items:  # dcmdump lists the fragments of encapsulated pixel data
            in_pixel_items = tag != "fffee0dd"
            continue
        in_pixel_items = tag == "7fe00010" and length == "u/l"
        found.append((len(indent), tag, "UL" if vr == "up" else vr, length, vm))
    return found


@pytest.mark.skipif(not HAS_DCMDUMP, reason="dcmdump (dcmtk) is not installed here")
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                  "rtplan.dcm", "liver_1frame.dcm", "JPEG2000.dcm",
                                  "examples_overlay.dcm", "dicomdirtests/DICOMDIR",
                                  "SC_rgb_rle_2frame.dcm", "image_dfl.dcm"])
def test_dump_agrees_with_dcmdump_on_tags_vrs_lengths_and_multiplicity(name):
    ours = dcmdump_elements(dump_text(str(bundled(name)), name))
    theirs = dcmdump_elements(subprocess.run(["dcmdump", "-q", "+L", str(bundled(name))],
                                             capture_output=True, text=True, check=True,
                                             errors="replace").stdout)
    assert len(ours) > 20
    if name == "JPEG2000.dcm":  # dcmtk calls any encapsulated pixel data OB
        ours = [(d, t, "OB" if t == "7fe00010" else vr, l, m) for d, t, vr, l, m in ours]
    assert ours == theirs


# --- DICOM JSON -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm", "test-SR.dcm", "JPEG2000.dcm",
                                  "MR_small_bigendian.dcm", "waveform_ecg.dcm", "priv_SQ.dcm",
                                  "nested_priv_SQ.dcm", "examples_overlay.dcm", "image_dfl.dcm"])
def test_dicom_json_reads_back_to_an_equal_data_set(name):
    text = dicom_json(str(bundled(name)), name)
    back = Dataset.from_json(text)
    original = pydicom.dcmread(bundled(name))
    assert sorted(back.keys()) == sorted(original.keys())
    for tag in original.keys():
        assert back[tag] == original[tag], f"{tag} differs after the JSON round trip"


def test_dicom_json_inlines_binary_values_and_keeps_private_tags():
    model = json.loads(dicom_json(str(bundled("CT_small.dcm")), "CT_small.dcm"))
    pixels = pydicom.dcmread(bundled("CT_small.dcm")).PixelData
    assert model["7FE00010"]["vr"] == "OW"
    assert base64.b64decode(model["7FE00010"]["InlineBinary"]) == pixels
    assert model["00091002"] == {"vr": "SH", "Value": ["CT01"]}
    assert model["00101002"]["Value"][0]["00100020"] == {"vr": "LO", "Value": ["ABCD1234"]}
    assert "00020010" not in model


def test_dicom_json_names_the_element_that_cannot_be_written():
    with pytest.raises(InvalidDicomError) as caught:
        dicom_json(str(bundled("badVR.dcm")), "badVR.dcm")
    assert caught.value.message.startswith(
        "badVR.dcm is not valid DICOM (while writing (0028,0008) NumberOfFrames as DICOM JSON)")


# --- fuzz -------------------------------------------------------------------------------------

FUZZ_SEEDS = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm",
              "rtplan.dcm", "image_dfl.dcm", "ExplVR_BigEndNoMeta.dcm", "UN_sequence.dcm",
              "dicomdirtests/DICOMDIR-empty.dcm", "SC_rgb_rle_2frame.dcm"]


def mutate(data, rng):
    data = bytearray(data)
    kind = rng.choice(["truncate", "flip", "length", "repeat"])
    if kind == "truncate":
        return bytes(data[:rng.randrange(len(data))])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "length":
        at = rng.randrange(128, len(data) - 4)
        data[at:at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f",
                                      struct.pack("<L", rng.randrange(1 << 32))])
    else:
        at = rng.randrange(len(data))
        data[at:at] = data[at:at + rng.randint(1, 64)]
    return bytes(data)


def test_fuzzed_files_only_ever_raise_dicom_studio_errors(tmp_path):
    rng = random.Random(20240301)
    seeds = [bundled(name).read_bytes() for name in FUZZ_SEEDS]
    path = tmp_path / "fuzzed.dcm"
    for case in range(FUZZ_CASES):
        path.write_bytes(mutate(rng.choice(seeds), rng))
        for function in (describe_file, element_tree, dump_text, dicom_json):
            start = time.perf_counter()
            try:
                result = function(str(path), "fuzzed.dcm")
            except DicomStudioError as exc:
                assert exc.file == "fuzzed.dcm" and "fuzzed.dcm" in exc.message
            except Exception as exc:  # keep the failing input for a regression test
                shutil.copy(path, tmp_path / f"case{case}.dcm")
                raise AssertionError(f"case {case}: {function.__name__} raised {exc!r}") from exc
            else:
                if function is element_tree:
                    search(result, "(0010,")
            assert time.perf_counter() - start < 5, f"case {case}: {function.__name__} too slow"

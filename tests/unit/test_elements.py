"""The byte walker: offsets, lengths and nesting of every element, checked against pydicom."""

import shutil
import subprocess
import sys

import pydicom
import pytest
from conftest import TEST_FILES_DIR, bundled, bundled_dicom_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from dcmstudio import elements
from dcmstudio.elements import ITEM, walk
from dcmstudio.errors import DicomStudioError, InvalidDicomError, NotDicomError

CHARSET_FILES_DIR = TEST_FILES_DIR.parent / "charset_files"
# The bundled files the walker must refuse, and why.
REFUSED = {
    "MR_truncated.dcm": InvalidDicomError,  # pixel data cut short
    "rtplan_truncated.dcm": InvalidDicomError,  # a sequence cut short
    "DICOMDIR-nooffset": InvalidDicomError,  # the last directory record cut short
    "no_meta.dcm": NotDicomError,  # starts mid-element; dcmdump refuses it too
    "README.txt": NotDicomError,
    "README": NotDicomError,
}
NOT_DICOM_SUFFIXES = {".txt", ".json", ".icc", ".gz", ".dump", ".py", ".md"}


def dcmconv_available():
    return sys.platform != "emscripten" and shutil.which("dcmconv") is not None


def dicom_candidates():
    return [p for p in bundled_dicom_files() if p.suffix not in NOT_DICOM_SUFFIXES]


def walk_file(path, **kwargs):
    return walk(path.read_bytes(), path.name, **kwargs)


def test_walker_accepts_nearly_every_bundled_file():
    accepted, refused = [], {}
    for path in dicom_candidates():
        try:
            walk_file(path)
            accepted.append(path.name)
        except DicomStudioError as exc:
            refused[path.name] = type(exc)
    unexpected = {n: t for n, t in refused.items() if REFUSED.get(n) is not t}
    assert not unexpected, f"refused unexpectedly: {unexpected}"
    assert len(accepted) >= 0.95 * len(dicom_candidates())


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "MR_small_implicit.dcm",
                                  "MR_small_bigendian.dcm", "ExplVR_BigEndNoMeta.dcm",
                                  "ExplVR_LitEndNoMeta.dcm", "JPEG2000.dcm", "reportsi.dcm",
                                  "nested_priv_SQ.dcm", "UN_sequence.dcm", "image_dfl.dcm"])
def test_top_level_offsets_and_lengths_match_pydicom(name):
    path = bundled(name)
    emap = walk_file(path)
    ds = pydicom.dcmread(path, force=True)
    top = [e for e in emap.root.children if e.tag >> 16 != 2]
    assert [e.tag for e in top] == [int(t) for t in ds.keys()]
    for element in top:
        raw = ds.get_item(element.tag)
        if element.children is None and isinstance(raw, RawDataElement):
            # pydicom's raw value is exactly the bytes the walker points at
            assert bytes(emap.value_bytes(element)) == bytes(raw.value or b""), element
            if not emap.deflated:
                assert raw.value_tell == element.value_offset
        elif element.is_sequence:
            assert len(element.children) == len(ds[element.tag].value or []), element
        elif element.is_fragments:
            encapsulated = emap.data[element.value_offset:element.end - 8]
            assert bytes(encapsulated) == ds[element.tag].value


def test_nested_paths_depths_and_sequence_lengths():
    emap = walk_file(bundled("rtplan.dcm"))
    by_path = {e.path: e for e in emap}
    beam = by_path["BeamSequence[0].ControlPointSequence[0].GantryAngle"]
    assert beam.depth == 2
    assert beam.parent.tag == ITEM and beam.parent.parent.tag == 0x300A0111
    ds = pydicom.dcmread(bundled("rtplan.dcm"))
    assert by_path["BeamSequence[0].BeamName"].keyword == "BeamName"
    assert len(by_path["BeamSequence"].children) == len(ds.BeamSequence)
    for element in emap:
        if element.children is not None and element.length is not None:
            assert element.end == element.value_offset + element.length


def test_every_element_lies_inside_its_parent_and_in_order():
    for name in ["rtplan.dcm", "reportsi.dcm", "JPEG2000.dcm", "UN_sequence.dcm", "rtstruct.dcm"]:
        emap = walk_file(bundled(name))
        previous_end = 0
        for element in emap.root.children:
            assert element.offset >= previous_end
            previous_end = element.end
        for element in emap:
            parent = element.parent
            if parent.tag is not None:
                assert parent.value_offset <= element.offset < element.end <= parent.end


def test_undefined_length_sequences_and_items():
    ds = make_dataset_with_sequences()
    data = write(ds)
    emap = walk(data, "undefined.dcm")
    sequence = emap.top_level(0x00400275)
    assert sequence.length is None and sequence.children[0].length is None
    assert data[sequence.end - 8:sequence.end] == b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    item = sequence.children[0]
    assert data[item.end - 8:item.end - 4] == b"\xfe\xff\x0d\xe0"
    deep = next(e for e in emap if e.path.endswith("CodeMeaning"))
    assert deep.path == "RequestAttributesSequence[0].ScheduledProtocolCodeSequence[0].CodeMeaning"
    assert bytes(emap.value_bytes(deep)) == b"Chest routine "


@pytest.mark.skipif(not dcmconv_available(), reason="dcmtk's dcmconv is not installed")
@pytest.mark.parametrize("option, implicit, little, deflated", [
    ("+ti", True, True, False), ("+tb", False, False, False), ("+td", False, True, True),
    ("+te", False, True, False),
])
def test_dcmconv_variants_walk_to_the_same_elements(tmp_path, option, implicit, little, deflated):
    source = tmp_path / "in.dcm"
    source.write_bytes(write(make_dataset_with_sequences()))
    converted = tmp_path / "out.dcm"
    subprocess.run(["dcmconv", option, str(source), str(converted)], check=True)
    reference = walk(source.read_bytes(), "in.dcm")
    emap = walk(converted.read_bytes(), "out.dcm")
    assert emap.encoding.implicit_vr is implicit
    assert emap.encoding.little_endian is little
    assert emap.deflated is deflated
    assert [e.path for e in emap if e.tag >> 16 != 2] == \
        [e.path for e in reference if e.tag >> 16 != 2]
    # dcmconv writes defined lengths: each must equal its content
    sequence = emap.top_level(0x00400275)
    assert sequence.length == sequence.end - sequence.value_offset


def test_encapsulated_pixel_data_fragments():
    emap = walk_file(bundled("JPEG2000.dcm"))
    pixel_data = emap.top_level(0x7FE00010)
    assert pixel_data.is_fragments and not pixel_data.is_sequence
    assert pixel_data.length is None
    ds = pydicom.dcmread(bundled("JPEG2000.dcm"))
    fragments = pixel_data.children
    assert sum(f.length + 8 for f in fragments) + 8 == pixel_data.end - pixel_data.value_offset
    assert bytes(emap.value_bytes(fragments[-1])) in ds.PixelData


def test_sequence_inside_un_is_walked_as_implicit_vr():
    emap = walk_file(bundled("UN_sequence.dcm"))
    un = next(e for e in emap.root.children if e.vr == "UN" and e.children is not None)
    inner = un.children[0].children[0]
    assert inner.encoding.implicit_vr and not emap.encoding.implicit_vr


def test_files_without_meta_or_preamble():
    emap = walk_file(bundled("ExplVR_LitEndNoMeta.dcm"))
    assert emap.meta_offset is None and emap.transfer_syntax is None
    assert emap.preamble_length == 0 and emap.dataset_offset == 0
    emap = walk_file(bundled("ExplVR_BigEndNoMeta.dcm"))
    assert not emap.encoding.little_endian


def test_deflated_dataset_is_inflated():
    emap = walk_file(bundled("image_dfl.dcm"))
    assert emap.deflated and emap.complete
    assert len(emap.data) > bundled("image_dfl.dcm").stat().st_size
    name = emap.top_level(0x00100010)
    assert bytes(emap.value_bytes(name)).rstrip() == \
        str(pydicom.dcmread(bundled("image_dfl.dcm")).PatientName).encode()


def test_deflated_stream_cut_short_or_too_large_is_refused(monkeypatch):
    data = bundled("image_dfl.dcm").read_bytes()
    with pytest.raises(InvalidDicomError, match="cut short"):
        walk(data[:-100], "cut.dcm")
    monkeypatch.setattr(elements, "inflation_cap", lambda size: 1000)
    with pytest.raises(InvalidDicomError, match="inflates to more than 1,000 bytes"):
        walk(data, "big.dcm")


def test_stop_after_leaves_the_rest_unexamined():
    path = bundled("CT_small.dcm")
    full = walk_file(path)
    partial = walk_file(path, stop_after=0x00100010)
    assert not partial.complete and full.complete
    assert max(e.tag for e in partial.root.children) == 0x00100010
    first_skipped = next(e for e in full.root.children if e.tag > 0x00100010)
    assert partial.walk_end == first_skipped.offset


def test_sparse_walk_lists_only_what_is_kept():
    path = bundled("CT_small.dcm")
    full = walk_file(path)
    keep = elements.KeepOnly(tags={0x00100020}, groups={0x0009}, successors_of={0x00100011})
    sparse = walk_file(path, keep=keep)
    assert sparse.sparse and sparse.complete
    listed = [e.tag for e in sparse.root.children if e.tag >> 16 != 2]
    after_0010_0011 = min(e.tag for e in full.root.children if e.tag > 0x00100011)
    sequences = [e.tag for e in full.root.children if e.children is not None]
    assert set(listed) == {0x00100020, after_0010_0011, *sequences} | \
        {e.tag for e in full.root.children if e.tag >> 16 == 0x0009}
    for element in sparse.root.children:  # the same places as in the full walk
        twin = full.top_level(element.tag)
        assert (element.offset, element.end) == (twin.offset, twin.end)


def test_charset_files_walk():
    for path in sorted(CHARSET_FILES_DIR.glob("*.dcm")):
        assert walk_file(path).complete, path.name


@pytest.mark.parametrize("data, error", [
    (b"", NotDicomError),
    (b"hello world, this is not DICOM at all" * 10, NotDicomError),
    (b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00", InvalidDicomError),
])
def test_refuses_garbage_with_a_clean_error(data, error):
    with pytest.raises(error):
        walk(data, "junk.dcm")


def test_truncation_anywhere_is_a_clean_error():
    data = bundled("rtplan.dcm").read_bytes()
    for cut in range(0, len(data), 97):
        try:
            walk(data[:cut], "cut.dcm")
        except DicomStudioError as exc:
            assert exc.file == "cut.dcm"


def test_deep_nesting_is_refused_not_a_recursion_error():
    ds = Dataset()
    inner = ds
    for _ in range(elements.MAX_SEQUENCE_DEPTH + 5):
        child = Dataset()
        inner.ReferencedSeriesSequence = Sequence([child])
        inner = child
    with pytest.raises(InvalidDicomError, match="nested"):
        walk(write(ds), "deep.dcm")


def test_element_repr_and_header_length():
    emap = walk_file(bundled("CT_small.dcm"))
    name = emap.top_level(0x00100010)
    assert name.header_length == 8 and "PatientName" in repr(name)
    assert elements.tag_text(0x00100010) == "(0010,0010)"


# --- data -----------------------------------------------------------------------------------

def make_dataset_with_sequences(undefined_lengths=True):
    """A small dataset with a two-level sequence and a private block, as Job A's files have.

    Sequences and items get undefined lengths unless ``undefined_lengths`` is false.
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.private_block(0x0009, "SYNTHCO 1.0", create=True).add_new(0x01, "LO", "private-one")
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "P1", "99SYN", "Chest routine"
    item = Dataset()
    item.RequestedProcedureID = "RP0001"
    item.ScheduledProtocolCodeSequence = Sequence([code])
    ds.RequestAttributesSequence = Sequence([item])
    ds.PatientName = "Synthetic^Patient"
    for sequence in (ds["RequestAttributesSequence"], item["ScheduledProtocolCodeSequence"]):
        sequence.is_undefined_length = undefined_lengths
        for entry in sequence.value:
            entry.is_undefined_length_sequence_item = undefined_lengths
    return ds


def write(ds):
    """Encode with pydicom, explicit VR little endian (with a meta group if ``ds`` has one)."""
    buffer = DicomBytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True)
    return buffer.getvalue()

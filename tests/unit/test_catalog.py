"""catalog: which files are DICOM, and what describe_file says about them (from the header only)."""

import io
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import TEST_FILES_DIR, bundled, bundled_dicom_files
from dcmstudio import catalog
from dcmstudio.catalog import describe_file, read_dicom
from dcmstudio.errors import DicomStudioError, InvalidDicomError, NotDicomError

# The bundled files that are not DICOM (text, JSON, ICC, gzip), and no_meta.dcm, whose first
# byte is a stray space so that no element starts at byte 0 (dcmdump refuses it too).
NOT_DICOM = {
    "README.txt", "crayons.icc", "dicomdirtests/README.txt", "dicomdirtests/TINY_ALPHA/README",
    "no_meta.dcm", "rtplan.dump", "rtstruct.dump", "test1.json", "test_PN.json", "zipMR.gz",
}
# Cut short inside a sequence of its header: broken, not just missing pixel bytes.
TRUNCATED_HEADERS = {"rtplan_truncated.dcm"}
HAS_DCMDUMP = shutil.which("dcmdump") is not None and sys.platform != "emscripten"


def name_of(path):
    return str(path.relative_to(TEST_FILES_DIR))


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def dataset_bytes(ds):
    """Encode ``ds`` as a Part 10 file."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def bare_dataset_bytes(ds):
    """Encode ``ds`` as a bare implicit VR data set: no preamble, no file meta."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def small_ct(**extra):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "123456"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize("path", bundled_dicom_files(), ids=name_of)
def test_every_bundled_file_is_described_or_refused_naming_it(path):
    name = name_of(path)
    start = time.perf_counter()
    try:
        info = describe_file(str(path), name)
    except DicomStudioError as exc:
        assert exc.file == name and name in exc.message
        expected = NotDicomError if name in NOT_DICOM else InvalidDicomError
        assert type(exc) is expected, exc.message
        assert name in NOT_DICOM | TRUNCATED_HEADERS
        return
    finally:
        assert time.perf_counter() - start < 1.0
    assert name not in NOT_DICOM | TRUNCATED_HEADERS
    assert info["name"] == name
    assert info["size"] == path.stat().st_size
    assert set(info) == {"name", "size", "transfer_syntax", "sop_class", "sop_instance_uid",
                         "patient", "study", "series", "instance", "has_file_meta"}
    for group, keys in {"transfer_syntax": {"uid", "name"}, "sop_class": {"uid", "name"},
                        "patient": {"name", "id", "birth_date"},
                        "study": {"uid", "date", "time", "description", "accession"}}.items():
        assert set(info[group]) == keys and all(isinstance(v, str) for v in info[group].values())
    assert info["transfer_syntax"]["uid"].startswith("1.2.840.10008.1.2")
    assert isinstance(info["instance"]["frames"], int) and info["instance"]["frames"] >= 0
    for value in (info["series"]["number"], info["instance"]["number"], info["instance"]["rows"],
                  info["instance"]["columns"]):
        assert value is None or isinstance(value, int)


@pytest.mark.filterwarnings("ignore:Expected explicit VR")  # pydicom's own full read
@pytest.mark.parametrize("path", [p for p in bundled_dicom_files()
                                  if name_of(p) not in NOT_DICOM | TRUNCATED_HEADERS], ids=name_of)
def test_description_agrees_with_a_full_read_by_pydicom(path):
    info = describe_file(str(path), name_of(path))
    full = pydicom.dcmread(path, force=True)
    assert info["patient"]["name"] == str(full.get("PatientName", ""))
    assert info["patient"]["id"] == str(full.get("PatientID", ""))
    assert info["study"]["uid"] == str(full.get("StudyInstanceUID", ""))
    assert info["series"]["uid"] == str(full.get("SeriesInstanceUID", ""))
    assert info["series"]["modality"] == str(full.get("Modality", ""))
    assert info["instance"]["rows"] == full.get("Rows")
    assert info["has_file_meta"] == (len(full.file_meta) > 0)
    if "SOPInstanceUID" in full:
        assert info["sop_instance_uid"] == full.SOPInstanceUID


def test_ct_small_is_described_in_full():
    info = describe_file(str(bundled("CT_small.dcm")), "CT_small.dcm")
    assert info["transfer_syntax"] == {"uid": "1.2.840.10008.1.2.1",
                                       "name": "Explicit VR Little Endian"}
    assert info["sop_class"] == {"uid": "1.2.840.10008.5.1.4.1.1.2", "name": "CT Image Storage"}
    assert info["patient"] == {"name": "CompressedSamples^CT1", "id": "1CT1", "birth_date": ""}
    assert info["study"]["date"] == "20040119" and info["study"]["time"] == "072730"
    assert info["study"]["description"] == "e+1" and info["study"]["accession"] == ""
    assert info["series"]["number"] == 1 and info["series"]["modality"] == "CT"
    # Position along the normal: (0020,0032) . (row x column of (0020,0037)), an axial slice's z.
    assert info["instance"] == {"number": 1, "frames": 1, "rows": 128, "columns": 128, "position": -75.699997}
    assert info["has_file_meta"] is True


def test_frames_count_multiframe_images_and_zero_for_documents():
    multiframe = describe_file(str(bundled("examples_ybr_color.dcm")), "ybr.dcm")
    assert multiframe["instance"]["frames"] == 30
    report = describe_file(str(bundled("reportsi.dcm")), "sr.dcm")
    assert report["instance"] == {"number": 1, "frames": 0, "rows": None, "columns": None, "position": None}
    assert report["sop_class"]["name"] == "Basic Text SR Storage"


def test_empty_or_malformed_numbers_are_none(tmp_path):
    ds = small_ct(SeriesNumber="", InstanceNumber="", Rows=8, Columns=8)
    data = dataset_bytes(ds).replace(b"IS\x00\x00", b"IS\x02\x00A1", 1)  # first empty IS: "A1"
    info = describe_file(write(tmp_path, "numbers.dcm", data), "numbers.dcm")
    assert info["series"]["number"] is None and info["instance"]["number"] is None
    assert info["instance"]["rows"] == 8


def test_malformed_geometry_gives_no_slice_position(tmp_path):
    for position, orientation in ((["1", "2"], [1, 0, 0, 0, 1, 0]), (["1e400", 0, 0], [1, 0, 0, 0, 1, 0]),
                                  ([0, 0, 5], [1, 0, 0, 0, 1])):
        ds = small_ct(Rows=8, Columns=8, ImagePositionPatient=position, ImageOrientationPatient=orientation)
        info = describe_file(write(tmp_path, "geometry.dcm", dataset_bytes(ds)), "geometry.dcm")
        assert info["instance"]["position"] is None, (position, orientation)
    # A sagittal slice is ordered by x: row (0,1,0) x column (0,0,-1) is (-1,0,0).
    ds = small_ct(Rows=8, Columns=8, ImagePositionPatient=[12.5, -3, 40], ImageOrientationPatient=[0, 1, 0, 0, 0, -1])
    info = describe_file(write(tmp_path, "sagittal.dcm", dataset_bytes(ds)), "sagittal.dcm")
    assert info["instance"]["position"] == -12.5


@pytest.mark.parametrize("name", ["dicomdirtests/DICOMDIR", "dicomdirtests/DICOMDIR-bigEnd",
                                  "dicomdirtests/DICOMDIR-implicit", "dicomdirtests/DICOMDIR-empty.dcm"])
def test_dicomdir_is_described_as_a_media_storage_directory(name):
    info = describe_file(str(bundled(name)), name)
    assert info["sop_class"] == {"uid": "1.2.840.10008.1.3.10",
                                 "name": "Media Storage Directory Storage"}
    assert info["sop_instance_uid"] == pydicom.dcmread(bundled(name)).file_meta.MediaStorageSOPInstanceUID
    assert info["instance"]["frames"] == 0


@pytest.mark.parametrize("name, uid", [
    ("ExplVR_BigEndNoMeta.dcm", "1.2.840.10008.1.2.2"),
    ("ExplVR_LitEndNoMeta.dcm", "1.2.840.10008.1.2.1"),
    ("rtstruct.dcm", "1.2.840.10008.1.2"),
])
def test_preamble_less_data_sets_are_accepted_with_the_inferred_syntax(name, uid):
    assert bundled(name).read_bytes()[128:132] != b"DICM"
    info = describe_file(str(bundled(name)), name)
    assert info["transfer_syntax"]["uid"] == uid
    assert "inferred" in info["transfer_syntax"]["name"]
    assert info["has_file_meta"] is False


def test_a_generated_bare_implicit_data_set_is_accepted(tmp_path):
    ds = small_ct(Rows=4, Columns=4)
    del ds.file_meta
    data = bare_dataset_bytes(ds)
    assert data[:4] == b"\x08\x00\x16\x00"  # (0008,0016) first, no preamble, no meta
    info = describe_file(write(tmp_path, "bare", data), "bare")
    assert info["patient"]["name"] == "DOE^JANE" and info["instance"]["rows"] == 4
    assert info["transfer_syntax"]["uid"] == "1.2.840.10008.1.2"


def test_a_file_meta_group_without_preamble_is_accepted(tmp_path):
    data = bundled("CT_small.dcm").read_bytes()[132:]
    info = describe_file(write(tmp_path, "no_preamble.dcm", data), "no_preamble.dcm")
    assert info["has_file_meta"] is True and info["patient"]["id"] == "1CT1"


def test_a_text_file_is_not_dicom_with_the_reason_as_a_sentence(tmp_path):
    path = write(tmp_path, "notes.txt", b"Patient notes: nothing to see here.\n" * 10)
    with pytest.raises(NotDicomError) as caught:
        describe_file(path, "notes.txt")
    assert caught.value.message == ("notes.txt is not DICOM: no 'DICM' prefix at byte 128 and "
                                    "no data set at byte 0.")
    assert caught.value.file == "notes.txt"


@pytest.mark.parametrize(("first_bytes", "what"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "a JPEG picture (use Create to make DICOM of it)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG picture (use Create to make DICOM of it)"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "a PDF document (use Create to make DICOM of it)"),
    (b"PK\x03\x04\x14\x00\x00\x00", "a ZIP archive (give it a .zip name to open its files)"),
    (struct.pack("<i", 348) + b"\x00" * 36, "a NIfTI-1 or Analyze header (open it in Volume → DICOM)"),
    (b"NRRD0004\ntype: short\n", "an NRRD volume (open it in Volume → DICOM)"),
])
def test_a_known_format_named_dcm_says_what_it_is(tmp_path, first_bytes, what):
    path = write(tmp_path, "scan.dcm", first_bytes + b"\x00" * 300)
    with pytest.raises(NotDicomError) as caught:
        describe_file(path, "scan.dcm", head=(first_bytes + b"\x00" * 300)[:200])
    assert caught.value.message == f"scan.dcm is not DICOM: its first bytes say it is {what}."


def test_bytes_that_only_start_like_a_group_0008_tag_are_not_dicom(tmp_path):
    # (0008,0005) then neither a VR nor a length that fits in the file
    data = b"\x08\x00\x05\x00\xff\xff\xff\x7f" + b"x" * 200
    with pytest.raises(NotDicomError):
        describe_file(write(tmp_path, "fake.bin", data), "fake.bin")


def test_an_empty_file_is_not_dicom(tmp_path):
    with pytest.raises(NotDicomError, match="empty"):
        describe_file(write(tmp_path, "empty.dcm", b""), "empty.dcm")


@pytest.mark.skipif(not HAS_DCMDUMP, reason="dcmdump (dcmtk) is not installed here")
def test_dcmdump_also_refuses_the_shifted_no_meta_file():
    result = subprocess.run(["dcmdump", str(bundled("no_meta.dcm"))], capture_output=True)
    assert result.returncode != 0


@pytest.mark.parametrize("cut, where", [
    (132, "before its data set begins"),
    (200, "(0002,0003) MediaStorageSOPInstanceUID"),
    (340, "before its data set begins"),
    (358, "its last 4 bytes are the start of an element cut short"),
    (345, "(0008,0005) SpecificCharacterSet"),
    (1000, "inside the value of an element"),
])
def test_a_file_cut_inside_its_header_is_invalid(tmp_path, cut, where):
    data = bundled("CT_small.dcm").read_bytes()[:cut]
    with pytest.raises(InvalidDicomError) as caught:
        describe_file(write(tmp_path, "cut.dcm", data), "cut.dcm")
    assert caught.value.message.startswith("cut.dcm is truncated: ")
    assert where in caught.value.message


def test_a_file_cut_inside_its_pixel_data_is_still_described():
    info = describe_file(str(bundled("MR_truncated.dcm")), "MR_truncated.dcm")
    assert info["instance"]["rows"] == 64


def test_garbage_after_the_prefix_is_invalid(tmp_path):
    data = b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"\x01" * 40
    with pytest.raises(DicomStudioError) as caught:
        describe_file(write(tmp_path, "garbage.dcm", data), "garbage.dcm")
    assert isinstance(caught.value, InvalidDicomError) and "garbage.dcm" in caught.value.message


@pytest.mark.parametrize("error", [
    OverflowError("Python int too large to convert to C ssize_t"),  # what wasm32 raises
    struct.error("unpack requires a buffer of 8 bytes"),
    IndexError("index out of range"), ValueError("bad value"), KeyError((0x0010, 0x0010)),
    UnicodeDecodeError("ascii", b"\xff", 0, 1, "ordinal not in range(128)"),
    OSError("No tag to read at file position 1A2"), EOFError(),
])
def test_any_parsing_exception_becomes_invalid_dicom(monkeypatch, error):
    def failing_read(*args, **kwargs):
        raise error

    monkeypatch.setattr(catalog.pydicom, "dcmread", failing_read)
    with pytest.raises(InvalidDicomError) as caught:
        read_dicom(str(bundled("CT_small.dcm")), "CT_small.dcm")
    assert caught.value.file == "CT_small.dcm"
    assert caught.value.message.startswith("CT_small.dcm is not valid DICOM (while parsing it): ")
    assert caught.value.__cause__ is error


def test_running_out_of_memory_is_not_called_invalid_dicom(monkeypatch):
    def failing_read(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(catalog.pydicom, "dcmread", failing_read)
    with pytest.raises(MemoryError):
        describe_file(str(bundled("CT_small.dcm")), "CT_small.dcm")


def test_describe_reads_the_header_only_of_a_large_file(tmp_path):
    ds = small_ct(Rows=2048, Columns=2560, BitsAllocated=16, BitsStored=16, HighBit=15,
                  PixelRepresentation=0, SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2")
    ds.PixelData = bytes(2048 * 2560 * 2)  # 10 MiB
    path = write(tmp_path, "large.dcm", dataset_bytes(ds))
    del ds
    tracemalloc.start()
    start = time.perf_counter()
    info = describe_file(path, "large.dcm")
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert info["instance"]["rows"] == 2048
    assert peak < 1 << 20, f"describe_file used {peak} bytes for a 10 MiB file"
    assert elapsed < 0.5


def test_describing_all_bundled_dicom_files_is_fast():
    paths = [p for p in bundled_dicom_files() if name_of(p) not in NOT_DICOM | TRUNCATED_HEADERS]
    start = time.perf_counter()
    for path in paths:
        describe_file(str(path), name_of(path))
    per_file = (time.perf_counter() - start) / len(paths)
    assert per_file < 0.03, f"{per_file * 1000:.1f} ms per file"


@pytest.mark.parametrize("with_head", [True, False])
@pytest.mark.parametrize(("source", "reason"), [
    ("CT_small.dcm", "862 bytes"),   # the wording depends on which reader found the cut
    ("JPEG2000.dcm", None),  # encapsulated: the reason depends on which reader found the cut
])
def test_a_file_cut_inside_its_pixel_data_is_described_and_flagged(tmp_path, source, reason, with_head):
    from dcmstudio import api
    data = bundled(source).read_bytes()
    whole = write(tmp_path, "whole.dcm", data)
    cut = write(tmp_path, "cut.dcm", data[:-1000])
    head = data[:65536] if with_head else None
    assert catalog.pixel_data_truncation(whole, "whole.dcm", head) is None
    found = catalog.pixel_data_truncation(cut, "cut.dcm", head)
    assert found and (reason is None or reason in found)
    described = api.describe(str(cut), "cut.dcm")
    assert described["dicom"] is True and described["truncated"] == catalog.pixel_data_truncation(cut, "cut.dcm")
    assert api.describe(str(whole), "whole.dcm")["truncated"] is None


def test_a_file_without_pixel_data_is_never_flagged_as_cut(tmp_path):
    path = write(tmp_path, "plan.dcm", bundled("rtplan.dcm").read_bytes())
    assert catalog.pixel_data_truncation(path, "plan.dcm", bundled("rtplan.dcm").read_bytes()[:65536]) is None


@pytest.mark.parametrize("source", ["CT_small.dcm", "JPEG2000.dcm", "MR_small_bigendian.dcm"])
def test_the_pixel_data_place_kept_from_describing_is_the_one_a_fresh_walk_finds(source):
    from dcmstudio import header
    path = bundled(source)
    head = path.read_bytes()[:65536]
    describe_file(str(path), source, head=head)
    kept = header.pixel_data_element(head, path.stat().st_size)
    assert kept is not None and kept == header.pixel_data_element(bytes(bytearray(head)), path.stat().st_size)


def test_no_whole_bundled_file_is_flagged_as_cut():
    """Elements may follow encapsulated pixel data (e.g. MR_small_jpeg_ls_lossless.dcm): only the
    files pydicom ships cut short are flagged."""
    flagged = set()
    for path in bundled_dicom_files():
        if path.suffix != ".dcm":
            continue
        data = path.read_bytes()
        try:
            found = catalog.pixel_data_truncation(str(path), path.name, data[:65536])
        except DicomStudioError:
            continue  # not described at all: nothing to flag
        if found:
            flagged.add(path.name)
    assert flagged <= {"MR_truncated.dcm", "rtplan_truncated.dcm"}, flagged
    assert "MR_truncated.dcm" in flagged


def test_header_end_is_where_the_pixel_data_value_starts_in_every_bundled_file():
    """What the page keeps of each file it opens (see catalog.header_end) ends exactly where
    pydicom says the pixel data's value starts; a head that stops short of it, a file without
    pixel data and a deflated one keep nothing."""
    kept = 0
    for path in bundled_dicom_files():
        if name_of(path) in NOT_DICOM | TRUNCATED_HEADERS:
            continue
        data, size = path.read_bytes(), path.stat().st_size
        end = catalog.header_end(data[:65536], size)
        try:
            ds = pydicom.dcmread(path, defer_size=64, force=True)
            element = next((ds.get_item(tag, keep_deferred=True) for tag in (0x7FE00008, 0x7FE00009, 0x7FE00010)
                            if tag in ds), None)
        except Exception:  # noqa: BLE001 -- a file pydicom cannot read is not judged here
            continue
        if end is None:  # nothing to keep, or a deflated data set (the head cannot say)
            assert element is None or name_of(path) == "image_dfl.dcm", name_of(path)
            continue
        kept += 1
        assert element is not None and end == element.value_tell, name_of(path)
        assert catalog.header_end(data[:end], size) == end  # the kept bytes alone say the same
        assert catalog.header_end(data[:end - 1], size) is None  # one byte short: not enough
    assert kept >= 90
    assert catalog.header_end(None, 100) is None
    assert catalog.header_end(bundled("rtplan.dcm").read_bytes(), bundled("rtplan.dcm").stat().st_size) is None
    deflated = bundled("image_dfl.dcm")
    assert catalog.header_end(deflated.read_bytes(), deflated.stat().st_size) is None

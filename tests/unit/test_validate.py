"""dcmstudio.validate: each rule on a file broken for it, and no finding where there is nothing wrong."""

import io
import json
import struct

import pydicom
import pytest
from conftest import bundled
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dcmstudio import iod, validate


def encoded(ds):
    """The file's bytes; values ``ct`` could not hand to pydicom as they are are put in place here."""
    from dcmstudio import elements
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    data = bytearray(buffer.getvalue())
    for tag, raw in getattr(ds, "_raw_patches", {}).items():
        element = elements.walk(bytes(data), "x").top_level(tag)
        assert element.length == len(raw)
        data[element.value_offset:element.value_offset + len(raw)] = raw
    return bytes(data)


def ct(**changes):
    """CT_small with raw values put in place (bytes no pydicom value class would accept)."""
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    patches = {}
    for keyword, value in changes.items():
        tag = Tag(keyword)
        if value is None:
            del ds[tag]
        else:
            vr, raw = value
            if not raw.isascii():  # pydicom would re-encode it: write a stand-in, patch the bytes after
                patches[tag], raw = raw, b"A" * len(raw)
            ds._dict[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)
    object.__setattr__(ds, "_raw_patches", patches)
    return ds


def findings(data, severity=None):
    report = validate.validate_bytes(data, "test.dcm")
    return [f for f in report["findings"] if severity is None or f["severity"] == severity]


def errors(data):
    return [(f["rule"], f["path"]) for f in findings(data, "error")]


def test_a_sound_file_has_no_errors_and_names_its_iod():
    report = validate.validate_file(str(bundled("CT_small.dcm")))
    assert report["iod"] == "CT Image" and report["errors"] == 0
    assert "2024b" in report["edition"]


def test_type1_emptied_names_the_module():
    found = findings(encoded(ct(StudyInstanceUID=("UI", b""))), "error")
    assert [(f["rule"], f["path"], f["tag"], f["module"]) for f in found] == [
        ("type1-empty", "StudyInstanceUID", "(0020,000D)", "General Study")]


def test_type1_of_only_spaces_is_empty():
    assert errors(encoded(ct(Modality=("CS", b"  ")))) == [("type1-empty", "Modality")]


def test_type2_removed():
    assert errors(encoded(ct(PatientID=None, AccessionNumber=None))) == [
        ("type2-missing", "PatientID"), ("type2-missing", "AccessionNumber")]


def test_type2_present_and_empty_is_fine():
    assert errors(encoded(ct(PatientID=("LO", b"")))) == []


def test_nested_type1_missing_has_a_path_with_the_item():
    ds = ct()
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ReferencedImageSequence = [Dataset(), item]
    ds.ReferencedImageSequence[0].ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"
    assert errors(encoded(ds)) == [("type1-missing", "ReferencedImageSequence[1].ReferencedSOPInstanceUID")]


def test_conditional_types_are_never_guessed():
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    sop = ds.SOPClassUID
    conditional = [e.tag for e in ds if iod.attribute_type(sop, e.tag) in ("1C", "2C")]
    assert conditional  # CT_small has some, e.g. Rescale Type
    for tag in conditional:
        del ds[tag]
    assert errors(encoded(ds)) == []


def test_a_specific_module_overrides_a_general_one():
    """SC Equipment makes Modality Type 3 in the SC IOD (General Series says 1)."""
    ds = pydicom.dcmread(bundled("SC_rgb_rle.dcm"))
    del ds.Modality
    assert ("type1-missing", "Modality") not in errors(encoded(ds))


def test_sr_content_items_are_not_held_to_every_value_type_macro():
    found = findings(bundled("reportsi.dcm").read_bytes(), "error")
    assert {f["rule"] for f in found} == {"value-format"}  # its four "0" UIDs, nothing from the macros


def test_attribute_of_a_module_the_iod_lacks_is_a_warning_naming_that_module():
    found = findings(encoded(ct(ConversionType=("CS", b"WSD "))), "warning")
    warning = next(f for f in found if f["rule"] == "not-in-iod")
    assert warning["path"] == "ConversionType" and "SC Equipment" in warning["message"]


@pytest.mark.parametrize("keyword, vr, raw", [
    ("StudyDate", "DA", b"2024-01-31"),
    ("StudyDate", "DA", b"20240101-20240201 "),    # a range is for queries, not objects
    ("StudyTime", "TM", b"25:00 "),
    ("StudyTime", "TM", b"12:60 "),                # ACR-NEMA's form
    ("AcquisitionDateTime", "DT", b"2024-01-31T10 "),
    ("PatientAge", "AS", b"45"),
    ("PatientSex", "CS", b"male"),
    ("InstanceNumber", "IS", b"1.5 "),
    ("InstanceNumber", "IS", b"99999999999 "),
    ("SliceThickness", "DS", b"1,5 "),
    ("SeriesInstanceUID", "UI", b"1.2.03.4"),
    ("SeriesInstanceUID", "UI", b"9.8.7.6\x00"),
    ("SeriesInstanceUID", "UI", b"0\x00"),
])
def test_value_format(keyword, vr, raw):
    assert errors(encoded(ct(**{keyword: (vr, raw)}))) == [("value-format", keyword)]


@pytest.mark.parametrize("keyword, vr, raw", [
    ("StudyDate", "DA", b"20240230"), ("StudyDate", "DA", b"20241301"), ("StudyDate", "DA", b"20240100"),
    ("StudyTime", "TM", b"250000"), ("StudyTime", "TM", b"126000"),
    ("AcquisitionDateTime", "DT", b"20240101120000+2500 "), ("AcquisitionDateTime", "DT", b"202413"),
])
def test_a_date_or_time_that_does_not_exist_is_a_warning(keyword, vr, raw):
    found = findings(encoded(ct(**{keyword: (vr, raw)})))
    assert [(f["severity"], f["rule"]) for f in found if f["path"] == keyword] == [("warning", "value-format")]


def test_real_dates_and_times_pass():
    assert errors(encoded(ct(StudyDate=("DA", b"20240229"), StudyTime=("TM", b"235960.123456 "),
                             AcquisitionDateTime=("DT", b"20240101120000.5-0500 ")))) == []


def test_value_length_counts_characters():
    assert errors(encoded(ct(StudyID=("SH", b"12345678901234567890")))) == [("value-length", "StudyID")]
    utf8 = ct(SpecificCharacterSet=("CS", b"ISO_IR 192"), StudyDescription=("LO", "ü".encode() * 64))
    assert errors(encoded(utf8)) == []  # 64 characters in 128 bytes
    too_long = ct(SpecificCharacterSet=("CS", b"ISO_IR 192"), StudyDescription=("LO", "ü".encode() * 65))
    assert errors(encoded(too_long)) == [("value-length", "StudyDescription")]


def test_vm_too_high_for_text_and_binary():
    assert errors(encoded(ct(PixelSpacing=("DS", b"0.5\\0.5\\0.5 ")))) == [("vm", "PixelSpacing")]
    assert errors(encoded(ct(Rows=("US", struct.pack("<HH", 128, 128))))) == [("vm", "Rows")]


def test_binary_length_not_a_multiple_of_the_value_size():
    assert ("value-length", "Rows") in errors(encoded(ct(Rows=("US", b"\x80\x00\x00"))))


@pytest.mark.parametrize("changes, rule", [
    ({"SpecificCharacterSet": None, "StudyDescription": ("LO", "Étude".encode("latin-1") + b" ")}, "repertoire"),
    ({"SpecificCharacterSet": ("CS", b"ISO_IR 192"), "StudyDescription": ("LO", b"\xff\xfe")}, "repertoire"),
    ({"StudyDescription": ("LO", b"tab\there ")}, "repertoire"),
    ({"StudyID": ("SH", b"S1\x00\x00")}, "padding"),
    ({"SeriesInstanceUID": ("UI", b"1.2.3 ")}, "padding"),
])
def test_repertoire_and_padding(changes, rule):
    assert rule in {r for r, _ in errors(encoded(ct(**changes)))}


def test_text_may_hold_line_breaks():
    ds = ct()
    ds.add_new(0x00204000, "LT", "first line\r\nsecond line")  # Image Comments
    assert errors(encoded(ds)) == []


def patched(data, tag, new_value=None, new_length=None, new_vr=None):
    """Bytes of ``data`` with one top-level element's header or value changed in place."""
    from dcmstudio import elements
    layout = elements.walk(data, "x")
    element = layout.top_level(tag)
    out = bytearray(data)
    if new_vr is not None:
        out[element.offset + 4:element.offset + 6] = new_vr
    if new_length is not None:
        out[element.offset + 6:element.offset + 8] = struct.pack("<H", new_length)
    if new_value is not None:
        out[element.value_offset:element.value_offset + len(new_value)] = new_value
    return bytes(out)


def test_wrong_meta_group_length_is_a_warning():
    data = bundled("CT_small.dcm").read_bytes()
    broken = patched(data, 0x00020000, new_value=struct.pack("<L", 300))
    found = findings(broken)
    assert [(f["severity"], f["rule"], f["path"]) for f in found if f["rule"] == "group-length"] == [
        ("warning", "group-length", "FileMetaInformationGroupLength")]


def test_odd_length():
    ds = ct(StudyID=("SH", b"S12"))
    assert ("odd-length", "StudyID") in errors(encoded(ds))


def test_vr_other_than_the_dictionarys_is_a_warning():
    data = patched(encoded(ct(StudyID=("SH", b"S1"))), 0x00200010, new_vr=b"LO")
    assert [(f["severity"], f["rule"]) for f in findings(data) if f["path"] == "StudyID"] == [("warning", "vr")]


def test_meta_and_dataset_must_agree_on_the_instance():
    ds = ct()
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    assert ("file-meta", "MediaStorageSOPInstanceUID") in errors(encoded(ds))


def test_an_unreadable_file_is_one_finding_not_an_exception():
    report = validate.validate_bytes(b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f", "cut.dcm")
    assert report["errors"] == 1 and report["findings"][0]["rule"] in ("unreadable",)


def test_sequence_written_as_un_is_checked_inside():
    """rtdose_rle.dcm holds Referenced RT Plan Sequence as UN of defined length, with a bad UID inside."""
    found = errors(bundled("rtdose_rle.dcm").read_bytes())
    assert ("value-format", "ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID") in found


def test_reports_export_as_text_and_json():
    reports = [validate.validate_bytes(encoded(ct(PatientID=None)), "a.dcm"),
               validate.validate_file(str(bundled("MR_small.dcm")))]
    text = validate.report_text(reports)
    assert "a.dcm: CT Image — 1 error(s)" in text
    assert "ERROR: PatientID (0010,0020) [Patient] type2-missing: PatientID is Type 2" in text
    document = json.loads(validate.report_json(reports))
    assert document["files"][0]["findings"][0]["path"] == "PatientID"
    assert "2024b" in document["standard"]


def test_new_errors_counts_only_what_the_output_gained(tmp_path):
    source = tmp_path / "in.dcm"
    source.write_bytes(encoded(ct(PatientID=None)))           # already has an error
    kept = tmp_path / "kept.dcm"
    kept.write_bytes(encoded(ct(PatientID=None, StudyID=("SH", b"S2"))))
    worse = tmp_path / "worse.dcm"
    worse.write_bytes(encoded(ct(PatientID=None, StudyInstanceUID=("UI", b""))))
    assert validate.new_errors(str(source), str(kept)) == []
    assert [(f["rule"], f["path"]) for f in validate.new_errors(str(source), str(worse))] == [
        ("type1-empty", "StudyInstanceUID")]
    assert [f["rule"] for f in validate.new_errors(None, str(worse))] == ["type2-missing", "type1-empty"]

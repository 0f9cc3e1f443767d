"""The places a de-identifier forgets, each with a marker, under the Basic Profile and every option.

Built here: a preamble and a file meta group holding markers, a TIFF/DICOM dual-personality
file, free text inside sequences whose action is D, duplicated and out-of-order elements (written
byte by byte: pydicom cannot), an implicit VR DateTime pydicom's dictionary lacks, short and
CJK names (UTF-8 and ISO 2022 Japanese), and a name first seen in a later file. Markers are
counted in the output bytes; every judge gets the output.
"""

import datetime
import io
import json
import re
import struct
import subprocess
import zipfile

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from test_edit import assert_dcmdump_parses, tool

from dcmstudio import jobs
from dcmstudio.deid import Deidentifier
from dcmstudio.deid import profile as deid_profile
from dcmstudio.errors import DicomStudioError

SECRET = "leaks"
MARK = re.compile(rb"LK\d{3}")
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
# Every option alone, the dates with the others, and all that can go together.
OPTION_SETS = [{}] + [{key: True} for key in deid_profile.OPTION_KEYS] + [
    {key: True for key in deid_profile.OPTION_KEYS if key != "retain_long_full_dates"}]


def option_id(options):
    return "+".join(sorted(options)) or "basic"


def dataset(name, patient_id, sop_class=SC_CLASS, charset="ISO_IR 192"):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID = name, patient_id
    ds.PatientBirthDate, ds.PatientSex = "19650412", "M"
    ds.StudyDate, ds.StudyTime, ds.ContentDate, ds.ContentTime = "20230105", "0910", "20230105", "0911"
    ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber = "", "LK001", "LK002"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.Manufacturer = "ACME"
    ds.PatientOrientation = ""
    return ds


def with_pixels(ds):
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = bytes(range(16))
    return ds


def saved(ds, path, preamble=None):
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = bytearray(buffer.getvalue())
    if preamble is not None:
        data[:128] = preamble.ljust(128, b"\x00")
    path.write_bytes(bytes(data))
    return path


def explicit_element(tag, vr, value):
    """One explicit VR little endian element with a 16-bit length."""
    value += b" " if len(value) % 2 else b""
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode() + struct.pack("<H", len(value)) + value


def after_element(data, tag, inserted):
    """``data`` with ``inserted`` right after the top-level element ``tag`` (16-bit length)."""
    start = data.index(struct.pack("<HH", tag >> 16, tag & 0xFFFF), 132)
    end = start + 8 + struct.unpack("<H", data[start + 6:start + 8])[0]
    return data[:end] + inserted + data[end:]


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    """``{name: path}`` of the files, each holding markers where a de-identifier forgets."""
    folder = tmp_path_factory.mktemp("leaky")
    files = {}

    # Preamble and file meta group.
    ds = with_pixels(dataset("LEAKY^META", "LK010"))
    ds.file_meta.SourceApplicationEntityTitle = "LK011"
    ds.file_meta.PrivateInformationCreatorUID = "1.2.999.11.12"
    ds.file_meta.PrivateInformation = b"LK013 private"
    files["meta.dcm"] = saved(ds, folder / "meta.dcm", preamble=b"LK014 written by a scanner")

    # Free text in the items of D and X/Z/D sequences, and (0028,0303) on an object without pixels.
    ds = dataset("LEAKY^REPORTED", "LK020", sop_class=SR_CLASS)
    ds.Modality = "SR"
    del ds.ConversionType, ds.PatientOrientation
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121071", "DCM", "Finding"
    ds.ConceptNameCodeSequence = [concept]
    text = Dataset()
    text.RelationshipType, text.ValueType = "CONTAINS", "TEXT"
    text.ConceptNameCodeSequence = [concept]
    text.TextValue = "LK021 seen by the resident"
    ds.ContentSequence = [text]
    step = Dataset()
    step.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"
    step.ReferencedSOPInstanceUID = generate_uid()
    step.TextValue = "LK022 note in a step"
    ds.ReferencedPerformedProcedureStepSequence = [step]
    ds.PerformedProcedureCodeSequence = []
    files["sr.dcm"] = saved(ds, folder / "sr.dcm")

    # Duplicated elements (the second copy is what pydicom reads) and one out of tag order.
    ds = with_pixels(dataset("LEAKY^DUP", "LK030"))
    ds.InstitutionName = "LK031 HOSPITAL"
    data = bytearray(saved(ds, folder / "dup.dcm").read_bytes())
    data = after_element(data, 0x00100010, explicit_element(0x00100010, "PN", b"LK032^SECOND"))
    data = after_element(data, 0x00100020, explicit_element(0x00100020, "LO", b"LK033"))
    data = after_element(data, 0x00080080, explicit_element(0x00080080, "LO", b"LK034 CLINIC"))
    data = after_element(data, 0x00080020, explicit_element(0x00081040, "LO", b"LK035 WARD"))
    (folder / "dup.dcm").write_bytes(bytes(data))
    files["dup.dcm"] = folder / "dup.dcm"

    # Short names, then CJK names in UTF-8 and in ISO 2022 Japanese; descriptions naming them.
    ds = with_pixels(dataset("WU^LI", "LK040"))
    ds.StudyDescription = "Li follow-up"
    ds.SeriesDescription = "LK041 for Wu"
    files["short.dcm"] = saved(ds, folder / "short.dcm")
    ds = with_pixels(dataset("山田^花子", "LK050"))
    ds.StudyDescription = "花子の検査"
    ds.SeriesDescription = "LK051"
    files["utf8.dcm"] = saved(ds, folder / "utf8.dcm")
    ds = with_pixels(dataset("Yamada^Tarou=山田^太郎=やまだ^たろう", "LK060",
                             charset=["", "ISO 2022 IR 87"]))
    ds.StudyDescription = "太郎 LK061"
    files["jis.dcm"] = saved(ds, folder / "jis.dcm")

    # A name first seen in a later file: the earlier one mentions it.
    ds = with_pixels(dataset("", "LK070"))
    ds.StudyDescription = "Compare with OKONKWO"
    files["early.dcm"] = saved(ds, folder / "early.dcm")
    ds = with_pixels(dataset("OKONKWO^ADA", "LK070"))
    files["later.dcm"] = saved(ds, folder / "later.dcm")
    return files


def run(paths, options, names=None):
    """The page's task over ``names``: a learning pass first, then one step per file."""
    names = list(names or paths)
    items = [{"path": str(paths[n]), "name": n} for n in names]
    folder = paths[names[0]].parent / f"out-{option_id(options)}"
    folder.mkdir(exist_ok=True)
    job_id = jobs.start("deid", {"secret": SECRET, **options}, 2 * len(items), lambda sub: str(folder / sub))
    for item in items:  # the first pass, as the page sends it
        assert jobs.step(job_id, {**item, "learn": True}) == {"learned": item["name"]}
    pieces, reports = [], {}
    for item in items:
        result = jobs.step(job_id, item)
        assert "error" not in result, result
        reports[item["name"]] = result["report"]
        pieces += [open(c["path"], "rb").read() for c in result["chunks"]]
    final = jobs.finish(job_id)
    pieces += [open(c["path"], "rb").read() for c in final["chunks"]]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    outputs = {name: archive.read(reports[name]["output"]) for name in names}
    return outputs, reports, final


# Markers an option keeps by its column: the institution (the last copy of a repeated one),
# descriptions and structured content cleaned of identifying values (a marker is not one).
KEPT_BY = {"retain_institution_identity": {b"LK034", b"LK035"},
           "clean_descriptors": {b"LK041", b"LK051", b"LK061"},
           "clean_structured_content": {b"LK021"}}


@pytest.mark.parametrize("options", OPTION_SETS, ids=option_id)
def test_no_marker_is_left_in_the_output_bytes(leaky, options):
    outputs, reports, _ = run(leaky, options)
    kept = set().union(*(KEPT_BY.get(option, set()) for option in options))
    for name, data in outputs.items():
        assert set(MARK.findall(data)) <= kept, (name, MARK.findall(data))
        assert data[:128] == bytes(128), name
        assert reports[name]["residual"] == [], (name, reports[name]["residual"])


def test_file_meta_loses_the_sender_and_private_information(leaky):
    outputs, _, _ = run(leaky, {}, ["meta.dcm"])
    meta = pydicom.dcmread(io.BytesIO(outputs["meta.dcm"])).file_meta
    assert "SourceApplicationEntityTitle" not in meta and "PrivateInformation" not in meta
    assert "PrivateInformationCreatorUID" not in meta
    assert meta.MediaStorageSOPInstanceUID.startswith("2.25.")


def test_a_tiff_dual_personality_file_is_refused_with_a_sentence(leaky, tmp_path):
    ds = with_pixels(dataset("DUAL^PERSONALITY", "LK090"))
    ds.Rows = ds.Columns = 8
    ds.PixelData = bytes(64)
    data = bytearray(saved(ds, tmp_path / "dual.dcm").read_bytes())
    ifd = len(data) - 64  # a one-entry directory inside the file (here: in the pixel data)
    data[:8] = b"II*\x00" + struct.pack("<I", ifd)
    data[ifd:ifd + 2] = struct.pack("<H", 1)
    with pytest.raises(DicomStudioError, match="dual-personality"):
        Deidentifier({}).deidentify(bytes(data), "dual.dcm")
    data[4:8] = struct.pack("<I", 0x81854)  # a leftover header pointing nowhere: just zeroed
    pieces, _ = Deidentifier({}).deidentify(bytes(data), "leftover.dcm")
    assert b"".join(pieces)[:128] == bytes(128)


def test_every_object_says_what_became_of_its_dates(leaky):
    outputs, _, _ = run(leaky, {"retain_long_modified_dates": True}, ["sr.dcm"])
    sr = pydicom.dcmread(io.BytesIO(outputs["sr.dcm"]))
    assert "PixelData" not in sr and sr.LongitudinalTemporalInformationModified == "MODIFIED"


def test_every_copy_of_a_repeated_element_is_acted_on(leaky):
    outputs, reports, _ = run(leaky, {"retain_institution_identity": True}, ["dup.dcm"])
    data = outputs["dup.dcm"]
    assert data.count(struct.pack("<HH", 0x0010, 0x0010)) == 1
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.PatientName == ds.PatientID == reports["dup.dcm"]["patient"]
    # kept by the option: one copy, the last (what readers take), and not the first
    assert data.count(struct.pack("<HH", 0x0008, 0x0080)) == 1
    assert ds.InstitutionName == "LK034 CLINIC"
    assert any("more than once" in note for note in reports["dup.dcm"]["notes"])


@pytest.mark.parametrize("extra", [
    b"\x08\x00\x80\x00LO\x06\x00LK090 ",  # InstitutionName (X), out of tag order
    b"\x11\x00\x10\x00LO\x06\x00LK091 ",  # a private creator no other element names
    b"\x09\x00\x10\x00LO\x06\x00LK092 ",  # a second copy of the file's private creator
    b"\x10\x00\x10\x00PN\x06\x00LK^093",  # a second Patient's Name
], ids=["institution", "private creator", "repeated creator", "repeated name"])
def test_an_element_after_the_pixel_data_is_acted_on(extra, tmp_path):
    """Elements out of tag order after the pixel data: the editor walks the whole file for them
    (it used to stop after the last tag the edits name, before the pixel data, and kept them)."""
    from conftest import bundled
    data = bundled("JPEG2000.dcm").read_bytes() + extra
    path = tmp_path / "after.dcm"
    path.write_bytes(data)
    for learned in (False, True):
        job = Deidentifier({"secret": SECRET})
        if learned:
            assert job.learn_file(str(path), path.name)
        pieces, report, _ = jobs.deidentify_item(job, {"path": str(path), "name": path.name}, 1, learned)
        out = b"".join(pieces)
        assert not MARK.search(out), (extra, learned)
        pydicom.dcmread(io.BytesIO(out))


def test_an_implicit_vr_datetime_newer_than_pydicom_is_shifted_not_removed(tmp_path):
    ds = with_pixels(dataset("IMPLICIT^DT", "LK080", charset="ISO_IR 100"))
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    data = bytearray(saved(ds, tmp_path / "implicit.dcm").read_bytes())
    # (0040,A034) is DT in the table and unknown to pydicom 3.0.2: implicit VR says nothing
    value = b"20230105101500"
    start = data.index(struct.pack("<HH", 0x7FE0, 0x0010), 132)
    data[start:start] = struct.pack("<HHI", 0x0040, 0xA034, len(value)) + value
    job = Deidentifier({"secret": SECRET, "retain_long_modified_dates": True})
    pieces, report = job.deidentify(bytes(data), "implicit.dcm")
    out = b"".join(pieces)
    offset = job.mapping()["patients"][0]["date_offset_days"]
    expected = (datetime.date(2023, 1, 5) + datetime.timedelta(offset)).strftime("%Y%m%d")
    assert (expected + "101500").encode() in out and value not in out
    assert {e["action"] for e in report["elements"] if e["tag"] == "(0040,A034)"} == {"C"}


def test_short_and_cjk_name_parts_are_scrubbed_from_descriptions(leaky):
    outputs, _, _ = run(leaky, {"clean_descriptors": True}, ["short.dcm", "utf8.dcm", "jis.dcm"])
    short = pydicom.dcmread(io.BytesIO(outputs["short.dcm"]))
    assert short.StudyDescription == "follow-up"
    utf8 = pydicom.dcmread(io.BytesIO(outputs["utf8.dcm"]))
    assert "花" not in utf8.StudyDescription and "子" not in utf8.StudyDescription
    assert "検査" in utf8.StudyDescription
    jis = pydicom.dcmread(io.BytesIO(outputs["jis.dcm"]))
    assert "太" not in jis.StudyDescription and "郎" not in jis.StudyDescription


def test_the_residual_scan_finds_names_in_any_character_set_and_any_vr(leaky, tmp_path):
    job = Deidentifier({"secret": SECRET})
    for name in ("short.dcm", "utf8.dcm", "jis.dcm"):
        job.learn_identifiers(leaky[name].read_bytes(), name)
    ds = pydicom.dcmread(leaky["jis.dcm"])
    ds.Manufacturer = "山田 Medical"  # kept by the table: the scan must see it, in ISO 2022
    ds.add_new(0x00091010, "LO", "private")
    ds.add_new(0x00091011, "UN", "LI wrote this".encode())
    ds.add_new(0x00091012, "UT", "Dr. 花子")
    out = tmp_path / "kept.dcm"
    ds.save_as(out, enforce_file_format=True)
    hits = job.residual_scan(out.read_bytes(), "kept.dcm", "out/WU.dcm")
    found = {(h["path"], h["found"].upper()) for h in hits}
    assert ("Manufacturer", "山田") in found
    assert any(h["tag"] == "(0009,1011)" and h["found"].upper() == "LI" for h in hits)
    assert any(h["tag"] == "(0009,1012)" and "花" in h["found"] for h in hits)
    assert ("out/WU.dcm", "WU") in found
    assert all(h["private"] for h in hits if h["tag"] and h["tag"].startswith("(0009"))


def test_the_residual_scan_reads_the_preamble_and_the_file_meta(leaky):
    job = Deidentifier({})
    job.learn_identifiers(leaky["meta.dcm"].read_bytes(), "meta.dcm")
    job.identifiers.add_name("LK014")
    hits = job.residual_scan(leaky["meta.dcm"].read_bytes(), "meta.dcm")
    assert any(h["where"] == "preamble" for h in hits)
    assert any(h["tag"] == "(0002,0003)" and h["kind"] == "uid" for h in hits)


def test_a_name_first_seen_in_a_later_file_is_scrubbed_from_an_earlier_one(leaky):
    outputs, _, _ = run(leaky, {"clean_descriptors": True}, ["early.dcm", "later.dcm"])
    early = pydicom.dcmread(io.BytesIO(outputs["early.dcm"]))
    assert early.StudyDescription == "Compare with"


def test_learning_apart_and_merging_in_order_equals_learning_together(leaky):
    """What the command does over many processes (each file learned apart, merged in input order)
    gives the very set the page's task learns in one."""
    together, merged = Deidentifier({"secret": SECRET}), Deidentifier({"secret": SECRET})
    for name, path in sorted(leaky.items()):
        together.learn_file(str(path), name)
        apart = Deidentifier({"secret": SECRET})
        apart.learn_file(str(path), name)
        merged.identifiers.update(apart.identifiers)
    assert len(together.identifiers.texts) > 10
    for part in ("texts", "ideographs"):
        assert list(getattr(merged.identifiers, part).items()) == list(getattr(together.identifiers, part).items())
    assert (merged.identifiers.dates, merged.identifiers.instance_uids) == \
        (together.identifiers.dates, together.identifiers.instance_uids)


def test_after_the_first_pass_what_a_file_adds_stays_its_own(leaky):
    job = Deidentifier({"secret": SECRET})
    job.learn_file(str(leaky["early.dcm"]), "early.dcm")
    learned = set(job.identifiers.instance_uids)
    view = job.identifiers.for_one_file()
    view.instance_uids.add("1.2.3.999")
    assert "1.2.3.999" in view.instance_uids and all(uid in view.instance_uids for uid in learned)
    assert "1.2.3.999" not in job.identifiers.instance_uids
    assert view.text_finder()("see 1.2.3.999") and not job.identifiers.text_finder()("see 1.2.3.999")
    # de-identifying leaves the job's set as the first pass left it (later.dcm's UIDs were not learned)
    later = Deidentifier({"secret": SECRET})
    later.identifiers = job.identifiers
    later.deidentify(leaky["early.dcm"].read_bytes(), "early.dcm", learned=True)
    later.deidentify(leaky["later.dcm"].read_bytes(), "later.dcm", learned=True)
    assert job.identifiers.instance_uids == learned


def test_learning_reads_the_header_only(leaky, monkeypatch):
    from dcmstudio.deid import job as job_module
    monkeypatch.setattr(job_module, "HEADER_READ", 200)  # shorter than any header: read on
    job = Deidentifier({})
    assert job.learn_file(str(leaky["later.dcm"]), "later.dcm")
    assert "okonkwo" in job.identifiers.texts
    assert not job.learn_file(str(leaky["later.dcm"]) + ".missing", "gone.dcm")


def dciodvfy_errors(path):
    result = subprocess.run([tool("dciodvfy"), "-new", str(path)], capture_output=True, text=True)
    return {re.sub(r"<[^>]*>|\[[0-9]+\]", "", line)
            for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")}


@pytest.mark.parametrize("options", [{}, OPTION_SETS[-1]], ids=option_id)
def test_judges_find_no_new_error(leaky, tmp_path, options):
    outputs, _, final = run(leaky, options)
    for name, data in outputs.items():
        out = tmp_path / name
        out.write_bytes(data)
        assert dciodvfy_errors(out) <= dciodvfy_errors(leaky[name]), name
        assert_dcmdump_parses(out)
    mapping = json.loads(open(final["outputs"][1]["path"]).read())
    assert mapping["identifying"] is True


def test_the_first_pass_cannot_follow_an_output(leaky, tmp_path):
    item = {"path": str(leaky["early.dcm"]), "name": "early.dcm"}
    job_id = jobs.start("deid", {}, 2, lambda sub: str(tmp_path / sub))
    jobs.step(job_id, item)
    with pytest.raises(DicomStudioError, match="before the first file"):
        jobs.step(job_id, {**item, "learn": True})
    jobs.cancel(job_id)


def test_the_preamble_is_zeroed_across_pieces_of_any_size():
    from dcmstudio.deid import preamble
    data = b"X" * 128 + b"DICM" + b"rest of the file"
    for cuts in ([], [10], [127, 128], [50, 131, 140]):
        bounds = [0, *cuts, len(data)]
        pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])]
        assert b"".join(preamble.zeroed(pieces)) == bytes(128) + data[128:], cuts
    plain = [bytes(128) + b"DICM" + b"x"]
    assert preamble.zeroed(plain) is plain  # nothing to do: the same pieces
    raw = [b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"]
    assert preamble.zeroed(raw) is raw  # no preamble at all

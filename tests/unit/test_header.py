"""header: the fast describe path gives describe_file's pydicom answer exactly, or steps aside (None).

Differential: for every file pydicom's wheel bundles, DCMTK re-encodings of them (implicit VR, big
endian, deflated) and fuzzed variants (bytes flipped, lengths changed, files and heads cut short),
``describe_head`` either returns None or the very dict ``describe_file`` returns through pydicom,
and None wherever pydicom's path raises.
"""

import io
import pathlib
import random
import shutil
import struct
import subprocess
import sys

import pydicom
import pytest
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from conftest import TEST_FILES_DIR, bundled, bundled_dicom_files
from dcmstudio import catalog, header
from dcmstudio.catalog import describe_file
from dcmstudio.elements import walk
from dcmstudio.errors import DicomStudioError

HEAD_SIZE = 64 * 1024  # what the page fetches ahead (readahead)
CHARSET_DIR = pathlib.Path(pydicom.__file__).parent / "data" / "charset_files"
HAS_DCMCONV = shutil.which("dcmconv") is not None and sys.platform != "emscripten"
DCMCONV_VARIANTS = {"+te": "implicit", "+tb": "big-endian", "+td": "deflated"}


def pydicom_answer(path, name):
    """describe_file's answer without a head: pydicom's reader, or the error it raised."""
    try:
        return describe_file(str(path), name)
    except DicomStudioError as exc:
        return exc


def assert_same_or_none(path, name, head_size=HEAD_SIZE):
    """The differential check; returns whether the fast path answered."""
    data = pathlib.Path(path).read_bytes()
    fast = header.describe_head(data[:head_size], len(data), name)
    if fast is None:
        return False
    slow = pydicom_answer(path, name)
    assert not isinstance(slow, Exception), f"{name}: fast path answered where pydicom raised {slow!r}"
    assert fast == slow, name
    return True


def rel(path):
    return str(path.relative_to(TEST_FILES_DIR)) if TEST_FILES_DIR in path.parents else path.name


def charset_files():
    return sorted(CHARSET_DIR.glob("*.dcm")) if CHARSET_DIR.is_dir() else []


@pytest.mark.parametrize("path", bundled_dicom_files() + charset_files(), ids=rel)
def test_bundled_file_fast_answer_is_pydicoms(path):
    assert_same_or_none(path, rel(path))


def test_fast_path_is_taken_on_most_bundled_files():
    taken = sum(assert_same_or_none(path, rel(path)) for path in bundled_dicom_files())
    # 162 of 205 at the time of writing: the rest are not DICOM, deflated, big endian without a
    # transfer syntax, cut short, or have headers longer than the head
    assert taken >= 155


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm",
                                  "MR_small_bigendian.dcm", "JPEG2000.dcm", "liver_1frame.dcm",
                                  "rtplan.dcm", "ExplVR_LitEndNoMeta.dcm"])
def test_common_files_take_the_fast_path(name):
    assert assert_same_or_none(bundled(name), name)


def test_describe_file_answers_from_the_head_without_pydicom(monkeypatch, tmp_path):
    path = bundled("CT_small.dcm")
    expected = describe_file(str(path), "ct.dcm")

    def no_pydicom(*args, **kwargs):
        raise AssertionError("the fast path should have answered")

    monkeypatch.setattr(catalog, "read_dicom", no_pydicom)
    assert describe_file(str(path), "ct.dcm", head=path.read_bytes()[:HEAD_SIZE]) == expected


def test_describe_file_falls_back_to_pydicom_when_the_head_is_too_short():
    path = bundled("CT_small.dcm")
    head = path.read_bytes()[:600]  # the header runs on past this
    assert header.describe_head(head, path.stat().st_size, "ct.dcm") is None
    assert describe_file(str(path), "ct.dcm", head=head) == describe_file(str(path), "ct.dcm")


def test_a_changed_pydicom_configuration_sends_files_to_pydicom(monkeypatch):
    path = bundled("CT_small.dcm")
    data = path.read_bytes()
    assert header.describe_head(data, len(data), "ct.dcm") is not None
    monkeypatch.setattr(config, "datetime_conversion", True)
    assert header.describe_head(data, len(data), "ct.dcm") is None


# ---- files written here: implicit VR, odd values ------------------------------------------------

def encoded(ds, implicit=False, little_endian=True):
    ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                      pydicom.uid.ExplicitVRLittleEndian if little_endian
                                      else ExplicitVRBigEndian)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True, implicit_vr=implicit,
                     little_endian=little_endian)
    return buffer.getvalue()


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("implicit, little_endian", [(True, True), (False, True), (False, False)])
def test_re_encoded_ct_takes_the_fast_path(tmp_path, implicit, little_endian):
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    path = write(tmp_path, "ct.dcm", encoded(ds, implicit, little_endian))
    assert assert_same_or_none(path, "ct.dcm")


# Raw values pydicom decodes in its own ways: each must come out as pydicom renders it.
ODD_VALUES = [
    ("SeriesNumber", "IS", b"1.5 "), ("SeriesNumber", "IS", b" +12 "), ("SeriesNumber", "IS", b"1\\2 "),
    ("SeriesNumber", "IS", b"x1"), ("SeriesNumber", "IS", b"1_000 "), ("SeriesNumber", "IS", b""),
    ("SeriesNumber", "IS", b"9" * 400), ("InstanceNumber", "IS", b"  \x00\x00"),
    ("PatientName", "PN", b"Doe^Jane==\x00 "), ("PatientName", "PN", b"A^B=C\\D^E "),
    ("PatientName", "PN", "Dür^Ä".encode("latin-1")), ("PatientName", "PN", b""),
    ("SOPInstanceUID", "UI", b" 1.2.3 \x00"), ("SOPInstanceUID", "UI", b"1.2\\3.4\x00"),
    ("SOPClassUID", "UI", b"1.2.840.10008.5.1.4.1.1.2\x00"), ("SOPClassUID", "UI", b""),
    ("Rows", "US", b"\x01\x02\x03\x04"), ("Rows", "US", b"\x01\x02\x03"), ("Rows", "US", b""),
    ("Columns", "SS", b"\xff\xff"), ("Columns", "UN", b"\x10\x00"), ("Modality", "UN", b"CT"),
    ("StudyDescription", "LO", b"a \\ b\x00 "), ("StudyDescription", "LO", b"caf\xe9"),
    ("StudyDescription", "LO", b"\x1b$B"), ("AccessionNumber", "SH", b"\xff\xfe"),
    ("Modality", "CS", b"CT\\MR "), ("StudyDate", "DA", b"2024\x00"), ("StudyTime", "TM", b" 1200 "),
    ("NumberOfFrames", "IS", b"0"), ("NumberOfFrames", "IS", b"-3"), ("PatientID", "LO", b"\t12\x85 "),
]


# implicit VR carries no VR of its own: only the dictionary's
ODD_VALUE_CASES = [(keyword, vr, raw, implicit) for keyword, vr, raw in ODD_VALUES
                   for implicit in (False, True)
                   if not implicit or vr == pydicom.datadict.dictionary_VR(keyword)]


@pytest.mark.parametrize("keyword, vr, raw, implicit", ODD_VALUE_CASES)
def test_odd_values_come_out_as_pydicom_renders_them(tmp_path, keyword, vr, raw, implicit):
    data = encoded(pydicom.dcmread(bundled("CT_small.dcm")), implicit)
    path = write(tmp_path, "odd.dcm", with_raw_element(data, pydicom.tag.Tag(keyword), vr, raw, implicit))
    assert_same_or_none(path, "odd.dcm")


def with_raw_element(data, tag, vr, raw, implicit):
    """``data`` with the top-level element ``tag`` set to exactly ``raw`` (pydicom would tidy it)."""
    if implicit:
        element_bytes = struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(raw)) + raw
    else:
        element_bytes = struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(raw)) + raw
    for element in walk(data, "base").root.children:
        if element.tag >= tag:
            end = element.end if element.tag == tag else element.offset
            return data[:element.offset] + element_bytes + data[end:]
    return data + element_bytes
    assert_same_or_none(path, "odd.dcm")


@pytest.mark.parametrize("charset, value", [
    ("ISO_IR 100", "Müller^Jürgen".encode("latin-1")),
    ("ISO_IR 192", "Ïˆ^ÐŸÐµÑ‚Ñ€".encode("utf-8")),
    ("ISO_IR 192", b"\xc3\x28"),  # not UTF-8: pydicom replaces, so the fast path must step aside
    ("\\ISO 2022 IR 87", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"),
    ("ISO_IR 999", b"Doe^John"),  # unknown: pydicom falls back to its default
])
def test_character_sets_decode_as_pydicom_does(tmp_path, charset, value):
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    ds["PatientName"] = DataElement(0x00100010, "PN", value)
    ds["StudyDescription"] = DataElement(0x00081030, "LO", value.replace(b"^", b" "))
    path = write(tmp_path, "charset.dcm", encoded(ds))
    assert_same_or_none(path, "charset.dcm")


# ---- DCMTK re-encodings -------------------------------------------------------------------------

def dcmconv_sources():
    """Bundled DICOM files with a preamble, the ones the fast path may read."""
    return [path for path in bundled_dicom_files()
            if path.stat().st_size > 132 and path.read_bytes()[128:132] == b"DICM"]


@pytest.fixture(scope="module")
def dcmconv_variants(tmp_path_factory):
    out = tmp_path_factory.mktemp("dcmconv")
    made = []
    for index, source in enumerate(dcmconv_sources()):
        for option, label in DCMCONV_VARIANTS.items():
            target = out / f"{index}-{label}.dcm"
            done = subprocess.run(["dcmconv", option, str(source), str(target)], capture_output=True)
            if done.returncode == 0 and target.exists():
                made.append((f"{rel(source)} {label}", target))
    return made


@pytest.mark.skipif(not HAS_DCMCONV, reason="dcmconv (DCMTK) is not on PATH")
def test_dcmconv_variants_fast_answer_is_pydicoms(dcmconv_variants):
    assert len(dcmconv_variants) > 150
    taken = {label: 0 for label in DCMCONV_VARIANTS.values()}
    for name, path in dcmconv_variants:
        if assert_same_or_none(path, name):
            taken[name.rsplit(" ", 1)[1]] += 1
    assert taken["deflated"] == 0  # a deflated data set is never read from the raw head
    assert taken["implicit"] > 60 and taken["big-endian"] > 60, taken


# ---- fuzzing ------------------------------------------------------------------------------------

FUZZ_SOURCES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm",
                "liver_1frame.dcm", "UN_sequence.dcm", "dicomdirtests/DICOMDIR-implicit", "SC_rgb_small_odd.dcm",
                "rtplan.dcm", "ExplVR_LitEndNoMeta.dcm"]
CASES_PER_SOURCE = 120 if sys.platform == "emscripten" else 400


def length_fields(data, name):
    """Offsets and sizes of every element's and item's length field, nested ones included."""
    fields = []
    for element in walk(data, name):
        if element.offset is None or element.offset >= len(data):
            continue
        if element.header_length == 12:
            fields.append((element.offset + 8, 4))
        elif element.tag == 0xFFFEE000 or element.encoding.implicit_vr:
            fields.append((element.offset + 4, 4))
        else:
            fields.append((element.offset + 6, 2))
    return fields


def mutate(data, fields, rng):
    """One fuzzed variant of ``data`` and the head size to hand over with it."""
    data = bytearray(data)
    kind = rng.choice(["flip", "length", "truncate", "short head", "flip+length"])
    header_end = min(len(data), 2048)
    if kind in ("flip", "flip+length"):
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(header_end)] = rng.randrange(256)
    if kind in ("length", "flip+length"):
        offset, size = rng.choice(fields)
        order = "<" if rng.random() < 0.8 else ">"
        old = int.from_bytes(data[offset:offset + size], "little" if order == "<" else "big")
        new = rng.choice([0, 1, old + 1, old - 1, old + 2, old - 2, old + 8, 0xFFFF, 0xFFFFFFFF,
                          rng.randrange(1 << (8 * size))]) % (1 << (8 * size))
        data[offset:offset + size] = struct.pack(order + ("L" if size == 4 else "H"), new)
    if kind == "truncate":
        del data[rng.randrange(1, len(data)):]
    head_size = HEAD_SIZE if kind != "short head" else rng.randrange(1, min(len(data), 4096) + 1)
    return bytes(data), head_size


@pytest.mark.parametrize("source", FUZZ_SOURCES)
def test_fuzzed_files_fast_answer_is_pydicoms(tmp_path, source):
    original = bundled(source).read_bytes()
    fields = length_fields(original, source)
    rng = random.Random(f"header {source}")
    answered = refused = 0
    for case in range(CASES_PER_SOURCE):
        data, head_size = mutate(original, fields, rng)
        path = write(tmp_path, f"{case}.dcm", data)
        if assert_same_or_none(path, f"{source} case {case}", head_size):
            answered += 1
        else:
            refused += 1
    print(source, "answered", answered, "refused", refused)
    # both sides of the comparison were exercised
    assert answered > CASES_PER_SOURCE // 20 and refused > 0, (answered, refused)

"""Values encoded for their VR, byte order and character set; VR form, length and VM checked."""

import struct

import pydicom
import pytest
from conftest import TEST_FILES_DIR

from dcmstudio import values
from dcmstudio.errors import EditError
from dcmstudio.charset import character_set
from dcmstudio.values import decode_value, encode_value, encodings_for

CHARSET_FILES_DIR = TEST_FILES_DIR.parent / "charset_files"
PATIENT_NAME = 0x00100010


def encode(value, vr, tag=PATIENT_NAME, charset=None, little_endian=True):
    return encode_value(value, vr, tag=tag, charset=character_set(charset),
                        little_endian=little_endian, where="(test)", file="t.dcm")


def test_ui_is_padded_with_nul_and_text_with_space():
    assert encode("1.2.3", "UI", tag=0x00080018) == b"1.2.3\x00"
    assert encode("1.2.34", "UI", tag=0x00080018) == b"1.2.34"
    assert encode("ABC", "LO", tag=0x00100020) == b"ABC "
    assert encode("Doe^Jo", "PN") == b"Doe^Jo"


@pytest.mark.parametrize("vr, tag, value, little, big", [
    ("US", 0x00280010, 512, b"\x00\x02", b"\x02\x00"),
    ("US", 0x00280010, "512", b"\x00\x02", b"\x02\x00"),
    ("UL", 0x00081161, [1, 65536], b"\x01\x00\x00\x00\x00\x00\x01\x00",
     b"\x00\x00\x00\x01\x00\x01\x00\x00"),
    ("SS", 0x00189219, -2, b"\xfe\xff", b"\xff\xfe"),
    ("FD", 0x00189087, 1.5, struct.pack("<d", 1.5), struct.pack(">d", 1.5)),
    ("FL", 0x00186028, "2.5", struct.pack("<f", 2.5), struct.pack(">f", 2.5)),
    ("AT", 0x00209165, "(0010,0010)", b"\x10\x00\x10\x00", b"\x00\x10\x00\x10"),
    ("AT", 0x00209165, "PatientID", b"\x10\x00\x20\x00", b"\x00\x10\x00\x20"),
])
def test_binary_vrs_are_encoded_as_binary_in_both_byte_orders(vr, tag, value, little, big):
    assert encode(value, vr, tag=tag) == little
    assert encode(value, vr, tag=tag, little_endian=False) == big


def test_byte_vrs_take_bytes_or_numbers_and_pad_with_nul():
    assert encode([1, 2, 3], "OB", tag=0x00091010) == b"\x01\x02\x03\x00"
    assert encode(b"\x01\x02", "UN", tag=0x00091010) == b"\x01\x02"
    assert encode([1, 2], "OW", tag=0x00091010, little_endian=False) == b"\x00\x01\x00\x02"
    with pytest.raises(EditError, match="bytes"):
        encode("text", "OB", tag=0x00091010)


def test_numbers_for_text_number_vrs():
    assert encode(1.25, "DS", tag=0x00180050) == b"1.25"
    assert encode([1, -2, 3], "DS", tag=0x00200032) == b"1\\-2\\3"
    assert encode(7, "IS", tag=0x00200013) == b"7 "


@pytest.mark.parametrize("value, vr, tag, message", [
    ("x" * 65, "LO", 0x00081030, "maximum length of 64"),
    ("x" * 17, "SH", 0x00080050, "maximum length of 16"),
    ("A" * 70, "PN", PATIENT_NAME, "64"),
    ("abc", "CS", 0x00080060, "Invalid value for VR CS"),
    ("1.2.03", "UI", 0x00080018, "Invalid value for VR UI"),
    ("2024-01-02", "DA", 0x00080020, "Invalid value for VR DA"),
    (70000, "US", 0x00280010, "between 0 and 65535"),
    ("twelve", "US", 0x00280010, "not a number"),
    (1.5, "US", 0x00280010, "whole number"),
    ([1.0, 2.0], "DS", 0x00200032, "VM 3"),
    (["A", "B"], "LO", 0x00100020, "VM 1"),
    ("é", "CS", 0x00080060, "ASCII"),
    (True, "US", 0x00280010, "true/false"),
    ("1.2." + "3" * 70, "UI", 0x00080018, "64"),
])
def test_invalid_values_give_a_sentence_naming_the_element(value, vr, tag, message):
    with pytest.raises(EditError, match=message) as caught:
        encode(value, vr, tag=tag)
    assert caught.value.file == "t.dcm" and "(test)" in caught.value.message


def test_value_multiplicity_rules():
    assert values.value_multiplicity("A\\B\\C", "CS") == 3
    assert values.value_multiplicity("A\\B", "LT") == 1
    assert values.value_multiplicity(b"\x00\x01", "OB") == 1
    assert values.value_multiplicity([], "CS") == 0
    assert values._vm_allows("2-2n", 4) and not values._vm_allows("2-2n", 3)
    assert values._vm_allows("1-3", 3) and not values._vm_allows("1-3", 4)
    assert values._vm_allows("3-n", 5) and not values._vm_allows("3", 2)


@pytest.mark.parametrize("charset, name, expected", [
    ("ISO_IR 100", "Müller^Jörg", "Müller^Jörg".encode("latin-1") + b" "),
    ("ISO_IR 192", "Müller^Jörg", "Müller^Jörg".encode("utf-8") + b" "),
    ("ISO_IR 144", "Иванов^Иван", "Иванов^Иван".encode("iso8859-5") + b" "),
])
def test_text_follows_the_character_set(charset, name, expected):
    encoded = encode(name, "PN", charset=(charset,))
    assert encoded == expected
    assert decode_value(encoded, "PN", tag=PATIENT_NAME, encodings=encodings_for((charset,))) == name


def test_japanese_iso_2022_matches_the_bundled_file():
    """chrJapMulti.dcm's PatientName, re-encoded from its text, gives the file's own bytes."""
    ds = pydicom.dcmread(CHARSET_FILES_DIR / "chrJapMulti.dcm")
    charset = tuple(ds.SpecificCharacterSet)
    raw = pydicom.dcmread(CHARSET_FILES_DIR / "chrJapMulti.dcm").get_item(PATIENT_NAME).value
    encoded = encode(str(ds.PatientName), "PN", charset=charset)
    assert encoded.rstrip(b" ") == raw.rstrip(b" ")
    assert b"\x1b$B" in encoded  # JIS X 0208 escape sequence


def test_characters_outside_the_character_set_are_refused():
    with pytest.raises(EditError, match="Specific Character Set"):
        encode("Иванов", "PN", charset=("ISO_IR 100",))
    with pytest.raises(EditError, match="ASCII only"):
        encode("Jörg", "LO", tag=0x00100020)  # no charset: the default repertoire is ASCII


def test_decode_value_shapes():
    assert decode_value(b"\x00\x02", "US", tag=0x00280010) == 512
    assert decode_value(b"1.25\\2 ", "DS", tag=0x00200032) == ["1.25", "2"]
    assert decode_value(b"\x10\x00\x10\x00", "AT", tag=0x00209165) == "(0010,0010)"
    assert decode_value(b"\x01\x02", "OB", tag=0x00091010) == "<2 bytes>"
    assert decode_value(b"\x00\x02", "US or SS", tag=0x00280106) == 512
    assert "not decodable" in decode_value(b"\x01\x02\x03", "FD", tag=0x00189087)


def test_resolve_vr():
    assert values.resolve_vr("US or SS", 1) == "SS"
    assert values.resolve_vr("US or SS", 0) == "US"
    assert values.resolve_vr("OB or OW") == "OW"
    assert values.resolve_vr("LO") == "LO"


def test_sequences_have_no_value_of_their_own():
    with pytest.raises(EditError, match="sequence"):
        encode("x", "SQ", tag=0x00400275)


def test_empty_values():
    assert encode("", "LO", tag=0x00100020) == b""
    assert encode(None, "US", tag=0x00280010) == b""
    assert encode([], "CS", tag=0x00080008) == b""

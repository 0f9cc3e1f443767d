"""dcmstudio.validate's character repertoire check, per the sets (0008,0005) declares (issue 16).

ISO 2022 code extensions (escape sequences; the multi-byte sets IR 87, IR 159, IR 149 and IR 58),
the stand-alone sets (UTF-8, GB18030, GBK) and the single-byte ones, on pydicom's bundled
character set files (no false errors) and on those files broken on purpose (one fault each).
test_validate_judged.py compares the same files with dciodvfy.
"""

import pathlib

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from dcmstudio import validate
from dcmstudio.charset import character_set

CHARSET_FILES_DIR = pathlib.Path(pydicom.__file__).parent / "data" / "charset_files"


def charset_files():
    return sorted(CHARSET_FILES_DIR.glob("*.dcm"))


# name: (source, PatientName's new bytes, what the one error says)
BROKEN = {
    "undeclared_escape.dcm": ("chrH31.dcm", b"Yamada^Tarou=\x1b$)C\xb1\xe8\xc8\xf1\x1b(B",
                              "ESC $ ) C at byte 13 designates ISO 2022 IR 149, which (0008,0005) "
                              "\\ISO 2022 IR 87 does not declare"),
    "latin1_in_ir87.dcm": ("chrH31.dcm", b"M\xfcller^J\xfcrgen",
                           "byte 0xFC at 1 is in the right half (0xA0-0xFF), but (0008,0005) \\ISO 2022 IR 87 "
                           "puts no character set there"),
    "bad_jis_pair.dcm": ("chrH31.dcm", b"Yamada^Tarou=\x1b$B\x22\x2f\x1b(B",
                         "bytes 22 2F at 16 are not a character of ISO 2022 IR 87"),
    "lone_ksx_byte.dcm": ("chrI2.dcm", b"Hong^Gildong=\x1b$)C\xfb\xf3\xd1^X",
                          "the two-byte character of ISO 2022 IR 149 at byte 19 is cut short"),
    "no_reset_before_caret.dcm": ("chrH31.dcm", b"Yamada^Tarou=\x1b$B;3ED^\x1b$BB@O:\x1b(B",
                                  "the two-byte character of ISO 2022 IR 87 at byte 20 is cut short"),
    "bad_gb18030.dcm": ("chrX2.dcm", b"Wang^XiaoDong=\x81\x20", "byte 0x81 at 14 is not text in GB18030"),
    "bad_utf8.dcm": ("chrX1.dcm", b"Wang^Xiao\xe6\x97Dong", "byte 0xE6 at 9 is not text in ISO_IR 192"),
    "esc_in_latin1.dcm": ("chrFren.dcm", b"Buc^J\x1b$Berome",
                          "escape sequence (ESC) at byte 5, but (0008,0005) ISO_IR 100 declares no code extensions"),
    "c1_in_latin1.dcm": ("chrFren.dcm", b"Buc^J\x85r\xf4me", "byte 0x85 at 5 is a C1 control character"),
}


def broken_charset_files(folder):
    """pydicom's character set files with one PatientName broken each: ``{name: path}``."""
    folder.mkdir(exist_ok=True)
    made = {}
    for name, (source, raw, _) in BROKEN.items():
        ds = pydicom.dcmread(CHARSET_FILES_DIR / source)
        raw += b" " * (len(raw) % 2)
        tag = Tag("PatientName")
        ds._dict[tag] = RawDataElement(tag, "PN", len(raw), raw, 0, False, True)
        ds.save_as(folder / name, enforce_file_format=False)
        made[name] = folder / name
    return made


def repertoire_findings(path):
    return [f for f in validate.validate_file(str(path))["findings"] if f["rule"] == "repertoire"]


def test_pydicoms_character_set_files_have_no_repertoire_error():
    files = charset_files()
    assert len(files) >= 17
    warnings = {}
    for path in files:
        found = repertoire_findings(path)
        assert [f for f in found if f["severity"] == "error"] == [], (path.name, found)
        warnings.update({(path.name, f["path"]): f["message"] for f in found})
    # The one departure: a sequence item declaring ISO 2022 IR 13 that returns to ASCII, where
    # PS3.5 H.3.2 returns to JIS X 0201 Romaji (ESC ( J). A warning, not an error.
    assert list(warnings) == [("chrSQEncoding1.dcm", "OtherPatientIDsSequence[0].PatientName")] or \
        all("ESC ( B" in message for message in warnings.values()), warnings


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_fault_is_one_repertoire_error_that_says_where(tmp_path, name):
    path = broken_charset_files(tmp_path)[name]
    found = repertoire_findings(path)
    assert [(f["severity"], f["path"]) for f in found] == [("error", "PatientName")], found
    assert BROKEN[name][2] in found[0]["message"], found[0]["message"]


TEXTS = ["山田^太郎", "やまだ^たろう", "ソニー=表示", "Yamada^Tarou=山田^太郎=やまだ^たろう", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎",
         "홍^길동", "Hong^Gildong=洪^吉洞=홍^길동", "王^小东", "Wang^XiaoDong=王^小东", "丂^乗", "Müller^Jürgen"]
DECLARATIONS = [("", "ISO 2022 IR 87"), ("ISO 2022 IR 6", "ISO 2022 IR 87", "ISO 2022 IR 159"),
                ("ISO 2022 IR 13", "ISO 2022 IR 87"), ("", "ISO 2022 IR 149"), ("", "ISO 2022 IR 58"),
                ("ISO 2022 IR 100", "ISO 2022 IR 87", "ISO 2022 IR 149", "ISO 2022 IR 58"),
                ("GB18030",), ("GBK",), ("ISO_IR 192",), ("ISO_IR 100",)]


@pytest.mark.parametrize("terms", DECLARATIONS, ids="\\".join)
def test_whatever_the_editor_encodes_passes_the_check(terms):
    """charset.py's encoder and its check agree: every name one of these sets can hold (the
    others are refused by the encoder) is written with escapes the check accepts. Characters
    such as ソ (JIS 0x25 0x3D) hold the bytes of ^ and = without being delimiters."""
    from dcmstudio.errors import EditError
    declared = character_set(terms)
    encoded = 0
    for text in TEXTS:
        try:
            raw = declared.encode(text, "PN")
        except EditError:
            continue
        encoded += 1
        assert declared.repertoire_problems(raw, "PN") == [], (terms, text, raw)
        assert declared.characters(raw, "PN") == len(text)
    assert encoded


def test_a_korean_g1_set_may_stay_designated_across_delimiters():
    # PS3.5 I.2's own example: ESC $ ) C before each component, never a return to ASCII
    raw = b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf"
    assert character_set(("", "ISO 2022 IR 149")).repertoire_problems(raw, "PN") == []


def test_limits_count_characters_not_bytes_or_escapes(tmp_path):
    """LO holds 64 characters: 40 kanji in JIS X 0208 (80 bytes and two escapes) fit, 65 do not."""
    declared = character_set(("", "ISO 2022 IR 87"))
    for count, too_long in ((40, False), (65, True)):
        ds = pydicom.dcmread(CHARSET_FILES_DIR / "chrH31.dcm")
        raw = declared.encode("山" * count, "LO")
        raw += b" " * (len(raw) % 2)
        tag = Tag("StudyDescription")
        ds._dict[tag] = RawDataElement(tag, "LO", len(raw), raw, 0, False, True)
        ds.save_as(tmp_path / "long.dcm", enforce_file_format=False)
        found = [f for f in validate.validate_file(str(tmp_path / "long.dcm"))["findings"]
                 if f["path"] == "StudyDescription"]
        assert [f["rule"] for f in found] == (["value-length"] if too_long else []), found
        if too_long:
            assert "has 65" in found[0]["message"]

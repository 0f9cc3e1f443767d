"""dcmstudio.iod: the table (derived from highdicom's maps, never committed) equals them, row by
row, and answers the questions deid asks."""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

from dcmstudio import iod, iod_tables

CT = "1.2.840.10008.5.1.4.1.1.2"
SC = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def highdicom_maps():
    """The three source files from the pinned highdicom the test environment installs."""
    highdicom = pytest.importorskip("highdicom", reason="the source comparison runs where highdicom is installed")
    assert highdicom.__version__ == "0.28.2", "tests/requirements.txt pins the highdicom the table comes from"
    import importlib.resources
    folder = importlib.resources.files("highdicom") / "_standard"
    return {name: (folder / name).read_bytes() for name in
            ("sop_class_iod_map.json", "iod_module_map.json", "module_attribute_map.json")}


def test_table_names_the_exact_source_files():
    sources = highdicom_maps()
    recorded = iod.table_source()["sha256"]
    assert recorded == {name: hashlib.sha256(data).hexdigest() for name, data in sources.items()}
    assert iod.table_source()["edition"] == iod.EDITION == "2024b"


def test_nothing_derived_is_committed_and_the_page_carries_the_table():
    """The checkout holds no table (CPython makes it from the installed highdicom); the page's
    later stage carries the one build.py derived, which is what it answers from in Pyodide."""
    if os.environ.get("DCMSTUDIO_IN_PYODIDE") == "1":
        assert os.path.isfile(iod.TABLE_FILE)
        assert iod.table_source()["package"].startswith("highdicom 0.28.2 (MIT)")
    else:
        assert not os.path.exists(iod.TABLE_FILE), "a generated table is in the package folder"
        assert not (pathlib.Path(iod.__file__).parent / "data" / "make_iod_tables.py").exists()


def test_the_table_build_py_put_in_the_page_equals_the_one_made_from_highdicom():
    """build.py derives the page's table from the pinned wheel; the same code on the installed
    highdicom (the same version, its maps checked by sha256 above) gives the same bytes."""
    if os.environ.get("DCMSTUDIO_IN_PYODIDE") == "1":
        pytest.skip("compared in CPython, which has highdicom and dist/")
    dist = pathlib.Path(__file__).parents[2] / "dist"
    if not (dist / "runtime.json").is_file():
        pytest.skip("no dist/: run build.py")
    runtime = json.loads((dist / "runtime.json").read_text())
    built = None
    for archive in runtime["later"]["archives"]:
        with zipfile.ZipFile(dist / archive) as z:
            if "dcmstudio/data/iod_tables.json" in z.namelist():
                built = z.read("dcmstudio/data/iod_tables.json").decode("utf-8")
    assert built is not None, "the later stage carries no IOD table"
    at_startup = set()
    for archive in runtime["startup"]["archives"]:
        with zipfile.ZipFile(dist / archive) as z:
            at_startup.update(z.namelist())
    assert "dcmstudio/data/iod_tables.json" not in at_startup, "the table must not slow start-up"
    sources = highdicom_maps()
    assert built == iod_tables.table_text(iod_tables.build_tables(sources))


def test_every_sop_class_and_iod_module_list_matches_the_source():
    sources = highdicom_maps()
    sop_classes = json.loads(sources["sop_class_iod_map.json"])
    iods = json.loads(sources["iod_module_map.json"])
    for uid, name in sop_classes.items():
        assert iod.iod_name(uid) == name
        assert [tuple(m) for m in iod.iod_modules(uid)] == [(m["key"], m["usage"], m["ie"]) for m in iods[name]]


def test_every_attribute_row_of_every_module_matches_the_source():
    from pydicom.datadict import tag_for_keyword
    modules = json.loads(highdicom_maps()["module_attribute_map.json"])
    repeaters = iod._repeater_keywords()

    def tag(keyword):
        return tag_for_keyword(keyword) or repeaters[keyword]

    rows_checked = 0
    for key, rows in modules.items():
        expected_tags_per_level = {}
        for row in rows:
            node = iod.module_attributes(key)
            for parent in row["path"]:
                node = node[tag(parent)][1]
            kind, _ = node[tag(row["keyword"])]
            assert kind == (row["type"] if row["type"] not in (None, "None") else None), (key, row)
            expected_tags_per_level.setdefault(tuple(row["path"]), set()).add(tag(row["keyword"]))
            rows_checked += 1
        # and nothing more than the source: each level holds exactly the source's attributes
        for path, tags in expected_tags_per_level.items():
            node = iod.module_attributes(key)
            for parent in path:
                node = node[tag(parent)][1]
            assert set(node) == tags, (key, path)
    assert rows_checked == 99740


@pytest.mark.parametrize("sop_class, tag, parent_path, expected", [
    (CT, "PatientName", (), "2"),                       # Patient module, Type 2
    (CT, 0x00080018, (), "1"),                          # SOP Instance UID
    (CT, "AccessionNumber", (), "2"),
    (CT, "InstitutionName", (), "3"),
    (CT, "KVP", (), "2"),                               # CT Image module
    (CT, "ReferencedSOPInstanceUID", ("ReferencedImageSequence",), "1"),
    (CT, 0x00081155, (0x00081140,), "1"),               # the same, by tags
    (CT, "PatientName", ("ReferencedImageSequence",), None),  # not defined inside that sequence
    (CT, "EncapsulatedDocument", (), None),             # not in the CT IOD
    (SC, "ConversionType", (), "1"),
    (SC, "Modality", (), "3"),                          # SC Equipment overrides General Series' Type 1
    (CT, "Modality", (), "1"),
    (CT, "ImageType", (), "1"),                         # CT Image overrides General Image's Type 3
    (CT, 0x60020010, (), "1"),                          # Overlay Rows of group 6002 (Overlay Plane, U)
    (CT, "OverlayRows", (), "1"),
    ("1.2.3.4", "PatientName", (), None),               # unknown SOP Class
    (BASIC_TEXT_SR, "CodeValue", ("ConceptNameCodeSequence",), "1C"),
])
def test_attribute_type(sop_class, tag, parent_path, expected):
    assert iod.attribute_type(sop_class, tag, parent_path) == expected


def test_mandatory_module_decides_over_an_optional_one():
    places = iod.attribute_requirements(CT, "PatientName")
    assert [(m.key, m.usage, kind) for m, kind in places] == [("patient", "M", "2")]
    assert iod.attribute_type(CT, "PatientName") == "2"


def test_module_titles_read_like_ps3_3():
    titles = [m.title for m in iod.iod_modules(CT)]
    assert "SOP Common" in titles and "Frame of Reference" in titles and "CT Image" in titles


def test_modules_defining_a_tag():
    assert "patient" in iod.modules_defining("PatientName")
    assert "encapsulated-document" in iod.modules_defining("EncapsulatedDocument")


def test_unknown_keyword_is_a_clear_error():
    with pytest.raises(ValueError, match="NotAKeyword"):
        iod.attribute_type(CT, "NotAKeyword")


def test_table_is_read_when_first_needed_not_at_import():
    code = ("import dcmstudio.api, dcmstudio.iod as iod; "
            "print(iod._tables.cache_info().currsize); iod.iod_name('1.2'); print(iod._tables.cache_info().currsize)")
    if sys.platform == "emscripten":  # no subprocess in Pyodide: the same check on the loaded module
        pytest.skip("checked in CPython; Pyodide cannot start a subprocess")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(__import__("pathlib").Path(iod.__file__).parents[1])})
    assert out.stdout.split() == ["0", "1"]

"""Every object dcmstudio.create makes, judged by independent tools and read back.

One of each kind is made once per session (``created``); then dciodvfy (0 errors, only known
warnings), pydicom (whole file, pixels included), dcmdump and, for the SR, dcmtk's dsrdump judge
it. The judges are external programs: these tests skip in Pyodide and where a tool is missing.
The helpers here (sample patient, PNG writer, judges) are shared by the other test_create files.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from conftest import bundled

from dcmstudio import create

IN_PYODIDE = sys.platform == "emscripten"
# A patient whose name needs UTF-8: Latin with diacritics, then an ideographic group.
PATIENT = {"PatientName": "Müller-Łukasiewicz^Jürgen=山田^太郎", "PatientID": "DS-0001",
           "PatientBirthDate": "1970-02-03", "PatientSex": "m"}
STUDY = {"StudyDescription": "Création d'objets", "AccessionNumber": "ACC1", "StudyID": "S1"}
# dciodvfy warnings that are expected and harmless: Laterality is honestly unknown for a picture.
ALLOWED_WARNINGS = ("Laterality(0020,0060)> - is only permitted to be empty when actually unknown",)

SR_FORM = {
    "observer": {"name": "Doe^Jane", "organization": "Hôpital Nord"},
    "procedure": "LN.CTUnspecifiedBodyRegion",
    "groups": [
        {"tracking_id": "lesion 1", "finding": "SCT.Nodule",
         "finding_site": {"value": "39607008", "scheme": "SCT", "meaning": "Lung structure"},
         "measurements": [{"name": "SCT.Diameter", "value": 12.5, "unit": "mm"},
                          {"name": "SCT.Volume", "value": "1023.75", "unit": "mm3"}]},
        {"tracking_id": "lesion 2",
         "measurements": [{"name": {"value": "42798000", "scheme": "SCT", "meaning": "Area"},
                           "value": 3, "unit": {"value": "cm2", "scheme": "UCUM",
                                                "meaning": "square centimeter"}}]},
    ],
}


def tool(name):
    """Path of an external judge, or None in Pyodide or where it is not installed."""
    return None if IN_PYODIDE else shutil.which(name)


def needs(name):
    return pytest.mark.skipif(tool(name) is None, reason=f"{name} is not available here")


def run(*args):
    result = subprocess.run(args, capture_output=True, timeout=60)
    return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")


def dciodvfy(path):
    """Run ``dciodvfy -new`` and return (error lines, warning lines)."""
    _, output = run(tool("dciodvfy"), "-new", str(path))
    lines = output.splitlines()
    return ([line for line in lines if line.startswith("Error")],
            [line for line in lines if line.startswith("Warning")])


def write_png(path, array, mode=None):
    """Save ``array`` as a PNG with Pillow and return the path as str."""
    from PIL import Image
    Image.fromarray(array, mode).save(path)
    return str(path)


def gradient(rows=48, columns=64, channels=None, dtype=np.uint8, seed=0):
    """A deterministic test picture: a ramp plus noise, so any misplaced byte shows."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    shape = (rows, columns) if channels is None else (rows, columns, channels)
    ramp = np.linspace(0, top, num=int(np.prod(shape))).reshape(shape)
    return ((ramp + rng.integers(0, 50, size=shape)) % (int(top) + 1)).astype(dtype)


def make_pdf(path, pages=1):
    """A real PDF written by Pillow's PDF writer (pure Python)."""
    from PIL import Image
    images = [Image.fromarray(gradient(40, 30, 3, seed=i)) for i in range(pages)]
    images[0].save(path, save_all=True, append_images=images[1:])
    return str(path)


@pytest.fixture(scope="session")
def created(tmp_path_factory):
    """One object of each kind: {kind: report}."""
    pytest.importorskip("PIL")
    folder = tmp_path_factory.mktemp("created")
    gray = write_png(folder / "gray.png", gradient())
    color = write_png(folder / "color.png", gradient(channels=3, seed=1))
    word = write_png(folder / "word.png", gradient(dtype=np.uint16, seed=2).astype(np.int32), "I")
    jpeg = str(folder / "photo.jpg")
    from PIL import Image
    Image.fromarray(gradient(channels=3, seed=3)).save(jpeg, quality=85)
    pdf = make_pdf(folder / "report.pdf", pages=2)
    volume = np.random.default_rng(4).integers(-1024, 2000, size=(6, 20, 30)).astype(np.int16)
    out = lambda name: str(folder / name)  # noqa: E731
    ct = str(bundled("CT_small.dcm"))
    ct_patient_study = create.patient_study_from(ct)
    return {
        "sc_gray": create.create_secondary_capture(gray, out("sc_gray.dcm"), PATIENT, STUDY),
        "sc_jpeg": create.create_secondary_capture(jpeg, out("sc_jpeg.dcm"), PATIENT, STUDY),
        "sc_word": create.create_secondary_capture(word, out("sc_word.dcm"), PATIENT, STUDY,
                                                   {"WindowCenter": 30000, "WindowWidth": 60000}),
        "mf_images": create.create_multiframe([gray, color, jpeg], out("mf_images.dcm"), PATIENT,
                                              STUDY, {"SeriesDescription": "Bilder"}),
        "mf_gray": create.create_multiframe([gray, gray], out("mf_gray.dcm"), PATIENT, STUDY),
        "mf_volume": create.create_multiframe_from_volume(
            volume, out("mf_volume.dcm"), PATIENT, STUDY,
            {"SpacingBetweenSlices": 2.5, "PixelSpacing": [0.7, 0.7], "WindowCenter": 40,
             "WindowWidth": 400}),
        "pdf": create.create_encapsulated_pdf(pdf, out("pdf.dcm"), PATIENT, STUDY),
        "sr": create.create_measurement_report(SR_FORM, out("sr.dcm"), ct_patient_study["patient"],
                                               ct_patient_study["study"], evidence_paths=[ct]),
        "sr_typed": create.create_measurement_report(SR_FORM, out("sr_typed.dcm"), PATIENT, STUDY),
        "gsps": create.create_gsps(ct, out("gsps.dcm"), "Läsion → prüfen 病変", 40, 400,
                                   {"ContentCreatorName": "Doe^Jane"}),
    }


KINDS = ("sc_gray", "sc_jpeg", "sc_word", "mf_images", "mf_gray", "mf_volume", "pdf", "sr",
         "sr_typed", "gsps")


@needs("dciodvfy")
@pytest.mark.parametrize("kind", KINDS)
def test_every_created_object_passes_dciodvfy_with_zero_errors(created, kind):
    errors, warnings = dciodvfy(created[kind]["path"])
    assert errors == []
    unexpected = [w for w in warnings if not any(a in w for a in ALLOWED_WARNINGS)]
    assert unexpected == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_created_object_reads_back_whole_in_pydicom(created, kind):
    report = created[kind]
    ds = pydicom.dcmread(report["path"])
    assert ds.SOPInstanceUID == report["sop_instance_uid"]
    assert ds.file_meta.MediaStorageSOPInstanceUID == report["sop_instance_uid"]
    assert ds.SOPInstanceUID.startswith("2.25.")
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert report["size"] == os.path.getsize(report["path"])
    if kind.startswith(("sc", "mf")):
        shape = (report["rows"], report["columns"])
        if ds.PhotometricInterpretation == "RGB":
            shape += (3,)
        if "NumberOfFrames" in ds:
            shape = (report["frames"],) + shape
        assert ds.pixel_array.shape == shape
    expected_patient = (pydicom.dcmread(bundled("CT_small.dcm")).PatientName
                        if kind in ("sr", "gsps") else PATIENT["PatientName"])
    assert ds.PatientName == expected_patient


@needs("dcmdump")
@pytest.mark.parametrize("kind", KINDS)
def test_every_created_object_parses_in_dcmdump(created, kind):
    code, output = run(tool("dcmdump"), "+U8", created[kind]["path"])
    assert code == 0
    assert not [line for line in output.splitlines() if line.startswith(("E:", "F:"))]


@needs("dsrdump")
@pytest.mark.parametrize("kind", ("sr", "sr_typed"))
def test_measurement_report_passes_dsrdump_with_its_content_constraints(created, kind):
    code, output = run(tool("dsrdump"), "+U8", created[kind]["path"])
    assert code == 0, output
    assert not [line for line in output.splitlines() if line.startswith(("E:", "F:"))]
    assert '<contains NUM:(,,"Diameter")="12.5" (mm,UCUM,"mm")>' in output
    assert "Hôpital Nord" in output


@needs("dciodvfy")
def test_dciodvfy_judge_counts_errors_when_a_type1_attribute_is_missing(created, tmp_path):
    ds = pydicom.dcmread(created["mf_gray"]["path"])
    del ds.BurnedInAnnotation
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    errors, _ = dciodvfy(broken)
    assert any("BurnedInAnnotation" in e for e in errors)

"""Damaged inputs to every create function: only dcmstudio's own errors may come out.

Each case flips or truncates bytes of a valid input. A default run tries 20 cases per input
kind (seconds); set ``DCMSTUDIO_FUZZ_CASES=500`` for a long run:

    DCMSTUDIO_FUZZ_CASES=500 python -m pytest tests/unit/test_create_fuzz.py
"""

import os
import random

import pytest
from conftest import bundled
from test_create_judges import SR_FORM, dciodvfy, gradient, make_pdf, tool, write_png

from dcmstudio import create
from dcmstudio.errors import DicomStudioError

CASES = int(os.environ.get("DCMSTUDIO_FUZZ_CASES", "20"))


def damaged(data, rng, header_bytes=None):
    """``data`` with a few bytes changed (mostly in its first ``header_bytes``) or cut short."""
    data = bytearray(data)
    if rng.random() < 0.25:
        return bytes(data[: rng.randrange(1, len(data))])
    span = min(len(data), header_bytes or len(data))
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(span)] = rng.randrange(256)
    return bytes(data)


def attempts(kind, original, tmp_path, header_bytes=None):
    rng = random.Random(f"{kind}-{CASES}")
    for case in range(CASES):
        path = tmp_path / f"{kind}_{case}"
        path.write_bytes(damaged(original, rng, header_bytes))
        yield case, str(path), str(tmp_path / f"{kind}_{case}.dcm")


def only_our_errors(function, *args, **kwargs):
    """Call a create function; return "refused" on our error, else "made" after judging the output."""
    try:
        report = function(*args, **kwargs)
    except DicomStudioError as exc:
        assert exc.message and exc.file
        return "refused"
    if isinstance(report, dict) and "path" in report and tool("dciodvfy"):
        assert dciodvfy(report["path"])[0] == [], f"{args} made an invalid object"
    return "made"


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_damaged_images_give_secondary_captures_or_our_errors(tmp_path, kind):
    pytest.importorskip("PIL")
    from PIL import Image
    source = tmp_path / f"source.{kind}"
    if kind == "png":
        write_png(source, gradient(channels=3))
    else:
        Image.fromarray(gradient(channels=3)).save(source, quality=90)
    outcomes = {only_our_errors(create.create_secondary_capture, path, out)
                for _, path, out in attempts(kind, source.read_bytes(), tmp_path, header_bytes=200)}
    assert outcomes <= {"made", "refused"}


def test_damaged_pdfs_give_documents_or_our_errors(tmp_path):
    pytest.importorskip("PIL")
    original = open(make_pdf(tmp_path / "source.pdf"), "rb").read()
    for _, path, out in attempts("pdf", original, tmp_path, header_bytes=64):
        only_our_errors(create.create_encapsulated_pdf, path, out)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "image_dfl.dcm"])
def test_damaged_dicom_references_give_objects_or_our_errors(tmp_path, name):
    original = bundled(name).read_bytes()
    for case, path, out in attempts(name, original, tmp_path, header_bytes=1200):
        only_our_errors(create.patient_study_from, path)
        only_our_errors(create.create_gsps, path, out, "note", 40, 400)
        only_our_errors(create.create_measurement_report, SR_FORM, out + ".sr", evidence_paths=[path])

"""The coded concepts measurement reports use, as a small table generated from the standard.

``sr_codes.json`` holds, from pydicom's dictionary of the DICOM standard's concepts (edition
named in the file): the codes TID 1500 needs, the context groups the page offers as choices, and
every UCUM unit pydicom lists. Loading pydicom's whole dictionary instead costs 1.8 s in Pyodide
even precompiled (4 s from source); this table loads in milliseconds.

Regenerate after upgrading pydicom (a test fails when the file and pydicom disagree):

    python -m dcmstudio.create.sr_codes > py/dcmstudio/create/sr_codes.json
"""

import json
import pathlib
import sys
from typing import NamedTuple

TABLE = pathlib.Path(__file__).with_name("sr_codes.json")

# Codes the content tree itself is made of ("SCHEME.Keyword" as in pydicom.sr.codedict.codes).
TEMPLATE_CODES = (
    "DCM.ImagingMeasurementReport", "DCM.LanguageOfContentItemAndDescendants", "DCM.ObserverType",
    "DCM.Person", "DCM.PersonObserverName", "DCM.PersonObserverOrganizationName",
    "DCM.ProcedureReported", "DCM.ImageLibrary", "DCM.ImageLibraryGroup",
    "DCM.ImagingMeasurements", "DCM.MeasurementGroup", "DCM.TrackingIdentifier",
    "DCM.TrackingUniqueIdentifier", "DCM.Finding", "SCT.FindingSite", "SCT.Source",
    # Drawn measurements (TID 1410 planar ROIs, TID 300 with its source coordinates).
    "DCM.ImageRegion", "DCM.SourceOfMeasurement", "SCT.Length", "SCT.Area", "SCT.Angle",
    "SCT.Mean", "SCT.StandardDeviation", "SCT.Minimum", "SCT.Maximum",
)
# Qualitative evaluations the page offers (TID 1501/1410 "CONTAINS CODE"): concept → values.
QUALITATIVE = {
    "SCT.Shape": ("SCT.Round", "DCM.Lobulated", "SCT.Irregular"),
    "DCM.Density": ("SCT.Present", "SCT.Absent"),
}
# Context groups (PS3.16) whose codes the page offers in the report form.
CHOICE_GROUPS = {
    "procedures": ("CID100",),        # Quantitative Diagnostic Imaging Procedures
    "measurements": ("CID7470", "CID7472", "CID7473"),  # Linear, Volume, Area measurements
    "units": ("CID7181",),            # Abstract Multi-dimensional Image Model Component Units
    "finding_sites": ("CID4031",),    # Common Anatomic Regions
}
# TID 1501 gives no context group for Finding: a few common ones.
FINDINGS = ("SCT.Lesion", "SCT.Nodule", "SCT.Mass", "SCT.Neoplasm", "SCT.Cyst",
            "SCT.Lymphadenopathy", "SCT.Stenosis", "SCT.Aneurysm")


class Code(NamedTuple):
    """A coded concept, as pydicom's ``Code`` has it: importing that loads pydicom's dictionary."""

    value: str
    scheme_designator: str
    meaning: str
    scheme_version: str = ""


def generate():
    """Build the table from pydicom's concept dictionary (imported only here: it is large).

    Returns
    -------
    dict
        ``{"source", "codes": {"SCHEME.Keyword": [value, scheme, meaning]},
        "choices": {field: ["SCHEME.Keyword", ...]}}``.
    """
    import pydicom
    from pydicom.sr.codedict import Collection, codes

    table = {}

    def add(keyword, code):
        table[keyword] = [code.value, code.scheme_designator, code.meaning]
        return keyword

    qualitative = tuple(QUALITATIVE) + tuple(v for values in QUALITATIVE.values() for v in values)
    for keyword in TEMPLATE_CODES + FINDINGS + qualitative:
        scheme, name = keyword.split(".")
        add(keyword, getattr(getattr(codes, scheme), name))
    choices = {"findings": list(FINDINGS),
               "qualitative": [[concept, list(values)] for concept, values in QUALITATIVE.items()]}
    for field, groups in CHOICE_GROUPS.items():
        entries = {}
        for cid in groups:
            for name, code in Collection(cid).concepts.items():
                keyword = add(f"{code.scheme_designator}.{name}", code)
                entries[(code.scheme_designator, code.value)] = keyword
        choices[field] = sorted(entries.values(), key=lambda k: (table[k][2].lower(), k))
    for name, code in Collection("UCUM").concepts.items():
        add(f"UCUM.{name}", code)
    return {
        "source": f"pydicom {pydicom.__version__} concept dictionary, DICOM "
                  f"{pydicom.__concepts_version__}",
        "codes": dict(sorted(table.items())),
        "choices": choices,
    }


def _load():
    data = json.loads(TABLE.read_text(encoding="utf-8"))
    return data["source"], {k: Code(*v) for k, v in data["codes"].items()}, data["choices"]


SOURCE, CODES, CHOICES = _load()
UCUM_BY_VALUE = {c.value: c for k, c in CODES.items() if k.startswith("UCUM.")}


def code(keyword):
    """The ``Code`` for ``"SCHEME.Keyword"`` (e.g. ``"SCT.Diameter"``), or None if not in the table."""
    return CODES.get(keyword)


def dumps(table):
    """The table as JSON text with one code or choice list per line, for readable diffs."""
    def line(key, value):
        return f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"
    parts = ",\n".join
    return (f'{{\n "source": {json.dumps(table["source"])},\n "codes": {{\n'
            f'{parts(line(k, v) for k, v in table["codes"].items())}\n }},\n "choices": {{\n'
            f'{parts(line(k, v) for k, v in table["choices"].items())}\n }}\n}}\n')


if __name__ == "__main__":
    sys.stdout.write(dumps(generate()))

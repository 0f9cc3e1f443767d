"""Comprehensive SR measurement reports following TID 1500 "Measurement Report".

The content tree (PS3.16 TID 1500, 1501, 300, 1600, 1001):

    CONTAINER (126000, DCM, "Imaging Measurement Report")          template 1500
      HAS CONCEPT MOD  CODE  Language of Content Item and Descendants = en-US
      HAS OBS CONTEXT  CODE  Observer Type = Person
      HAS OBS CONTEXT  PNAME Person Observer Name  (+ TEXT organization)
      HAS CONCEPT MOD  CODE  Procedure reported    (1-n)
      CONTAINS CONTAINER Image Library → Image Library Group → IMAGE   (when images are given)
      CONTAINS CONTAINER Imaging Measurements
        CONTAINS CONTAINER Measurement Group                          template 1501 (1-n)
          HAS OBS CONTEXT  TEXT   Tracking Identifier
          HAS OBS CONTEXT  UIDREF Tracking Unique Identifier
          CONTAINS         CODE   Finding                 (optional)
          HAS CONCEPT MOD  CODE   Finding Site            (optional)
          CONTAINS         NUM    <measurement> = value unit   (1-n)

Codes come from ``sr_codes.json``, generated from pydicom's dictionary of the standard's concepts.
``MeasurementReport`` checks the whole form at construction, naming the field at fault.
"""

import math
import os

from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage
from pydicom.valuerep import DSfloat

from dcmstudio.catalog import read_dicom
from dcmstudio.create import base
from dcmstudio.create.sr_codes import CHOICES, CODES, SOURCE, UCUM_BY_VALUE, Code
from dcmstudio.errors import EditError
from dcmstudio.uids import new_uid

# Language of the report's text: what the form is typed in (RFC 5646 tag).
ENGLISH_US = Code("en-US", "RFC5646", "English (United States)")
_TEMPLATE_MAPPING = "DCMR"
_CODE_VALUE_MAX = 16  # (0008,0100) Code Value is SH; longer ones go in (0008,0119) Long Code Value
_MEANING_MAX = 64
_TEXT_VALUE_MAX = 1024 * 64
SR_OPTIONS = ("CompletionFlag",)
_COMPLETION_FLAGS = ("COMPLETE", "PARTIAL")


def coded(value, field, file, *, unit=False):
    """Turn what the form gives into a ``Code``, or raise ``EditError`` naming ``field``.

    Parameters
    ----------
    value : Code or dict or str
        A ``Code``; ``{"value", "scheme", "meaning"}``; or a keyword of pydicom's concept
        dictionary as ``"SCHEME.Keyword"`` (e.g. ``"SCT.Diameter"``). For units, also a UCUM
        expression such as ``"mm"`` (its meaning taken from the dictionary when listed there).
    field : str
        Where it is in the form, e.g. "measurement group 1, measurement 2, unit".
    file : str
        The name of the object being created.
    unit : bool
        Whether a bare string is a UCUM unit.
    """
    if isinstance(value, Code):
        code = value
    elif isinstance(value, dict):
        missing = [key for key in ("value", "scheme", "meaning")
                   if not str(value.get(key) or "").strip()]
        if missing:
            raise EditError(f"The code for {field} lacks its {' and '.join(missing)}.", file=file)
        code = Code(str(value["value"]).strip(), str(value["scheme"]).strip(),
                    str(value["meaning"]).strip())
    elif isinstance(value, str) and value.strip():
        code = _code_for_keyword(value.strip(), field, file, unit)
    else:
        raise EditError(f"{field} needs a code: a {{value, scheme, meaning}} mapping or a "
                        "keyword such as 'SCT.Diameter'.", file=file)
    if len(code.meaning) > _MEANING_MAX or "\\" in code.meaning:
        raise EditError(f"The meaning of the code for {field} must be at most {_MEANING_MAX} "
                        "characters without backslashes.", file=file)
    if not code.scheme_designator.isprintable() or " " in code.scheme_designator:
        raise EditError(f"The coding scheme '{code.scheme_designator}' for {field} must be one "
                        "word (e.g. SCT, DCM, LN, UCUM, or a local 99… scheme).", file=file)
    return code


def _code_for_keyword(text, field, file, unit):
    found = CODES.get(text)
    if found:
        return found
    if unit:
        return UCUM_BY_VALUE.get(text) or Code(text, "UCUM", text)
    raise EditError(f"'{text}' for {field} is not one of the codes offered (keywords look like "
                    "'SCT.Diameter'); give the code as {value, scheme, meaning} instead.",
                    file=file)


def code_item(code):
    """Return a code sequence item: (0008,0100) *Code Value* (or a long/URN value), scheme, meaning."""
    item = Dataset()
    if code.value.startswith(("urn:", "http:", "https:")):
        item.URNCodeValue = code.value
    elif len(code.value) > _CODE_VALUE_MAX:
        item.LongCodeValue = code.value
    else:
        item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    if code.scheme_version:
        item.CodingSchemeVersion = code.scheme_version
    item.CodeMeaning = code.meaning
    return item


def content_item(relationship, value_type, name, **values):
    """Return one SR content item with its relationship, value type, concept name and value."""
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [code_item(name)]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def container(relationship, name, children, template=None):
    """Return a CONTAINER content item (separate items) holding ``children``."""
    item = content_item(relationship, "CONTAINER", name, ContinuityOfContent="SEPARATE")
    if template:
        item.ContentTemplateSequence = [_template(template)]
    item.ContentSequence = children
    return item


def code_content(relationship, name, code):
    """Return a CODE content item whose value is ``code``."""
    return content_item(relationship, "CODE", name, ConceptCodeSequence=[code_item(code)])


def _template(identifier):
    template = Dataset()
    template.MappingResource = _TEMPLATE_MAPPING
    template.TemplateIdentifier = identifier
    return template


class Measurement:
    """One numeric measurement (TID 300): a concept name, a value and a UCUM unit."""

    def __init__(self, form, where, file):
        if not isinstance(form, dict):
            raise EditError(f"{where} must be a mapping with name, value and unit.", file=file)
        self.name = coded(form.get("name"), f"{where}, name", file)
        self.unit = coded(form.get("unit"), f"{where}, unit", file, unit=True)
        try:
            number = float(form.get("value"))
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise EditError(f"{where}: the value '{form.get('value')}' is not a finite number.",
                            file=file)
        self.value = number

    def content(self):
        measured = Dataset()
        measured.MeasurementUnitsCodeSequence = [code_item(self.unit)]
        measured.NumericValue = DSfloat(self.value, auto_format=True)
        if float(str(measured.NumericValue)) != self.value:
            # (0040,A30A) is a 16-character decimal string; keep every digit alongside it.
            measured.FloatingPointValue = self.value
        return content_item("CONTAINS", "NUM", self.name, MeasuredValueSequence=[measured])


class MeasurementGroup:
    """A Measurement Group (TID 1501): tracking identifier and UID, finding, site, measurements."""

    def __init__(self, form, where, file):
        if not isinstance(form, dict):
            raise EditError(f"{where} must be a mapping with tracking_id and measurements.",
                            file=file)
        self.tracking_id = str(form.get("tracking_id") or "").strip()
        if not self.tracking_id:
            raise EditError(f"{where} needs a tracking identifier (e.g. 'lesion 1').", file=file)
        if len(self.tracking_id) > _MEANING_MAX:
            raise EditError(f"{where}: the tracking identifier must be at most {_MEANING_MAX} "
                            "characters.", file=file)
        self.tracking_uid = (base.checked_text("UID", form.get("tracking_uid"), file)
                             or new_uid())
        self.finding = (coded(form["finding"], f"{where}, finding", file)
                        if form.get("finding") else None)
        self.finding_site = (coded(form["finding_site"], f"{where}, finding site", file)
                             if form.get("finding_site") else None)
        measurements = form.get("measurements")
        if not isinstance(measurements, list) or not measurements:
            raise EditError(f"{where} needs at least one measurement.", file=file)
        self.measurements = [Measurement(m, f"{where}, measurement {i}", file)
                             for i, m in enumerate(measurements, 1)]

    def content(self):
        children = [
            content_item("HAS OBS CONTEXT", "TEXT", CODES["DCM.TrackingIdentifier"],
                         TextValue=self.tracking_id),
            content_item("HAS OBS CONTEXT", "UIDREF", CODES["DCM.TrackingUniqueIdentifier"],
                         UID=self.tracking_uid),
        ]
        if self.finding:
            children.append(code_content("CONTAINS", CODES["DCM.Finding"], self.finding))
        if self.finding_site:
            children.append(code_content("HAS CONCEPT MOD", CODES["SCT.FindingSite"],
                                         self.finding_site))
        children.extend(m.content() for m in self.measurements)
        return container("CONTAINS", CODES["DCM.MeasurementGroup"], children, template="1501")


class MeasurementReport:
    """A Comprehensive SR holding a TID 1500 Measurement Report, checked at construction.

    Parameters
    ----------
    form : dict
        ``{"observer": "Family^Given" or {"name", "organization"},
        "procedure": code or [codes],
        "groups": [{"tracking_id": str, "tracking_uid": str (optional),
        "finding": code (optional), "finding_site": code (optional),
        "measurements": [{"name": code, "value": number, "unit": code or UCUM string}]}]}``.
        A code is ``{"value", "scheme", "meaning"}`` or a keyword such as ``"SCT.Diameter"``
        (see :func:`measurement_report_choices`).
    patient_study : base.PatientStudy
    options : base.SeriesOptions
        With ``CompletionFlag`` (COMPLETE, the default, or PARTIAL).
    evidence : list of pydicom.dataset.Dataset
        Headers of the images the measurements were made on: listed in the Image Library and
        in the evidence sequences.
    file : str
        The name of the object, for messages.

    Raises
    ------
    EditError
        On a missing or invalid field, naming it ("measurement group 2, measurement 1, unit").
    """

    def __init__(self, form, patient_study, options, evidence=(), *, file):
        if not isinstance(form, dict):
            raise EditError("The report form must be a mapping with observer, procedure and groups.",
                            file=file)
        self.observer_name, self.organization = _observer(form.get("observer"), file)
        procedures = form.get("procedure")
        procedures = procedures if isinstance(procedures, list) else [procedures]
        self.procedures = [coded(p, "procedure reported", file) for p in procedures if p] or [
            coded(None, "procedure reported", file)]
        groups = form.get("groups")
        if not isinstance(groups, list) or not groups:
            raise EditError("A measurement report needs at least one measurement group.", file=file)
        self.groups = [MeasurementGroup(g, f"measurement group {i}", file)
                       for i, g in enumerate(groups, 1)]
        tracking_uids = [g.tracking_uid for g in self.groups]
        if len(set(tracking_uids)) != len(tracking_uids):
            raise EditError("Two measurement groups have the same tracking UID; each tracked "
                            "finding needs its own.", file=file)
        self.evidence = list(evidence)
        ds = base.new_dataset(ComprehensiveSRStorage, "SR", patient_study, options)
        ds.ReferencedPerformedProcedureStepSequence = []
        ds.CompletionFlag = base.checked_choice(options, "CompletionFlag", "COMPLETE",
                                                _COMPLETION_FLAGS, file)
        ds.VerificationFlag = "UNVERIFIED"
        ds.PerformedProcedureCodeSequence = []
        self._add_evidence(ds)
        self._add_content(ds)
        self.dataset = ds

    def _add_content(self, ds):
        ds.ValueType = "CONTAINER"
        ds.ConceptNameCodeSequence = [code_item(CODES["DCM.ImagingMeasurementReport"])]
        ds.ContinuityOfContent = "SEPARATE"
        ds.ContentTemplateSequence = [_template("1500")]
        children = [
            code_content("HAS CONCEPT MOD", CODES["DCM.LanguageOfContentItemAndDescendants"],
                         ENGLISH_US),
            code_content("HAS OBS CONTEXT", CODES["DCM.ObserverType"], CODES["DCM.Person"]),
            content_item("HAS OBS CONTEXT", "PNAME", CODES["DCM.PersonObserverName"],
                         PersonName=self.observer_name),
        ]
        if self.organization:
            children.append(content_item("HAS OBS CONTEXT", "TEXT",
                                         CODES["DCM.PersonObserverOrganizationName"],
                                         TextValue=self.organization))
        children.extend(code_content("HAS CONCEPT MOD", CODES["DCM.ProcedureReported"], p)
                        for p in self.procedures)
        if self.evidence:
            images = [content_item("CONTAINS", "IMAGE", CODES["SCT.Source"],
                                   ReferencedSOPSequence=[base.sop_reference(ds_)])
                      for ds_ in self.evidence]
            group = container("CONTAINS", CODES["DCM.ImageLibraryGroup"], images)
            children.append(container("CONTAINS", CODES["DCM.ImageLibrary"], [group]))
        children.append(container("CONTAINS", CODES["DCM.ImagingMeasurements"],
                                  [g.content() for g in self.groups]))
        ds.ContentSequence = children

    def _add_evidence(self, ds):
        """List the images in the current study as current evidence, others as pertinent."""
        current, other = {}, {}
        for image in self.evidence:
            studies = current if image.StudyInstanceUID == ds.StudyInstanceUID else other
            series = studies.setdefault(str(image.StudyInstanceUID), {})
            series.setdefault(str(image.SeriesInstanceUID), []).append(base.sop_reference(image))
        if current:
            ds.CurrentRequestedProcedureEvidenceSequence = _hierarchy(current)
        if other:
            ds.PertinentOtherEvidenceSequence = _hierarchy(other)

    def save(self, out_path):
        """Write the report; return the report of :func:`base.report` plus counts."""
        base.save(self.dataset, out_path)
        written = base.check_written(out_path, os.path.basename(out_path))
        return base.report(written, out_path, groups=len(self.groups),
                           measurements=sum(len(g.measurements) for g in self.groups),
                           evidence=len(self.evidence))


def _observer(value, file):
    if isinstance(value, dict):
        name, organization = value.get("name"), value.get("organization")
    else:
        name, organization = value, None
    name = base.checked_text("PersonName", name, file)
    if not name:
        raise EditError("The report needs an observer: the name of the person reporting "
                        "(Family^Given).", file=file)
    organization = str(organization or "").strip()
    if len(organization) > _MEANING_MAX:
        raise EditError(f"The observer's organization must be at most {_MEANING_MAX} characters.",
                        file=file)
    return name, organization


def _hierarchy(studies):
    """Study → series → instance references (the SOP Instance Reference macro)."""
    items = []
    for study_uid, series in studies.items():
        study = Dataset()
        study.StudyInstanceUID = study_uid
        study.ReferencedSeriesSequence = []
        for series_uid, references in series.items():
            series_item = Dataset()
            series_item.SeriesInstanceUID = series_uid
            series_item.ReferencedSOPSequence = references
            study.ReferencedSeriesSequence.append(series_item)
        items.append(study)
    return items


def measurement_report_choices():
    """Codes the page can offer in the report form, from the standard's context groups.

    Returns
    -------
    dict
        ``{"source", "procedures", "measurements", "units", "finding_sites", "findings",
        "qualitative"}``: ``source`` names the edition of the standard; the others are lists of
        ``{"keyword", "value", "scheme", "meaning"}`` sorted by meaning, where ``keyword`` is the
        ``"SCHEME.Keyword"`` form the form accepts; each ``qualitative`` entry (a concept) also
        has ``values``, the codes offered as its answer.
    """
    def entry(k):
        return {"keyword": k, "value": CODES[k].value, "scheme": CODES[k].scheme_designator,
                "meaning": CODES[k].meaning}

    choices = {"source": SOURCE}
    for field, keywords in CHOICES.items():
        if field == "qualitative":
            choices[field] = [{**entry(concept), "values": [entry(v) for v in values]}
                              for concept, values in keywords]
        else:
            choices[field] = [entry(k) for k in keywords]
    return choices


def create_measurement_report(form, out_path, patient=None, study=None, options=None, *,
                              evidence_paths=(), evidence_names=None):
    """Make a Comprehensive SR with a TID 1500 measurement report filled from a form.

    Parameters
    ----------
    form : dict
        See :class:`MeasurementReport`.
    out_path : str
        Where to write the DICOM file.
    patient, study : dict, optional
        See :class:`base.PatientStudy`; usually from :func:`base.patient_study_from` of one of
        the evidence images, so the report joins their study.
    options : dict, optional
        ``SeriesDescription``, ``SeriesNumber``, ``InstanceNumber``, ``SeriesInstanceUID``,
        ``CompletionFlag``.
    evidence_paths : list of str, optional
        DICOM images the measurements were made on (headers are read, pixels are not).
    evidence_names : list of str, optional
        The user's names for them, for messages.

    Returns
    -------
    dict
        ``{"path", "size", "sop_class_uid", "sop_class_name", "sop_instance_uid",
        "series_instance_uid", "study_instance_uid", "notes", "groups", "measurements",
        "evidence"}``.
    """
    file = os.path.basename(out_path)
    patient_study = base.PatientStudy(patient, study, file=file)
    series = base.SeriesOptions(options, SR_OPTIONS, file=file)
    names = list(evidence_names) if evidence_names else [os.path.basename(p) for p in evidence_paths]
    evidence = [read_dicom(path, name, stop_before_pixels=True)
                for path, name in zip(evidence_paths, names)]
    for image, name in zip(evidence, names):
        base.check_referable(image, name, "the report")
    report = MeasurementReport(form, patient_study, series, evidence, file=file)
    return report.save(out_path)

"""Comprehensive SR measurement reports following TID 1500 "Measurement Report".

The content tree (PS3.16 TID 1500, 1501, 300, 1600, 1001):

    CONTAINER (126000, DCM, "Imaging Measurement Report")          template 1500
      HAS CONCEPT MOD  CODE  Language of Content Item and Descendants = en-US
      HAS OBS CONTEXT  CODE  Observer Type = Person
      HAS OBS CONTEXT  PNAME Person Observer Name  (+ TEXT organization)
      HAS CONCEPT MOD  CODE  Procedure reported    (1-n)
      CONTAINS CONTAINER Image Library → Image Library Group → IMAGE   (when images are given)
      CONTAINS CONTAINER Imaging Measurements
        CONTAINS CONTAINER Measurement Group             template 1501, or 1410 with a region (1-n)
          HAS OBS CONTEXT  TEXT   Tracking Identifier
          HAS OBS CONTEXT  UIDREF Tracking Unique Identifier
          CONTAINS         SCOORD Image Region  POLYLINE/ELLIPSE/POINT… (TID 1410 only)
            SELECTED FROM  IMAGE  Source  (SOP instance, frame)
          CONTAINS         CODE   Finding                 (optional)
          HAS CONCEPT MOD  CODE   Finding Site            (optional)
          CONTAINS         NUM    <measurement> = value unit   (0-n)
            INFERRED FROM  SCOORD Source  (the drawn line or angle; TID 300 row 8, optional)
              SELECTED FROM IMAGE Source
          CONTAINS         CODE   <qualitative concept> = <coded value>   (0-n)

SCOORD coordinates are (column, row) pairs in image pixels with (0, 0) the top left corner of the
top left pixel (PS3.3 C.18.6.1.1); a closed polygon is a POLYLINE whose last point is its first.

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


# Graphic types an SCOORD may have (PS3.3 C.18.6.1.2) and how many points each takes.
_GRAPHIC_POINTS = {"POINT": (1, 1), "MULTIPOINT": (1, None), "POLYLINE": (2, None), "CIRCLE": (2, 2),
                   "ELLIPSE": (4, 4)}


class ImageCoordinates:
    """Spatial coordinates on one frame of one evidence image (an SCOORD and its source image).

    ``form`` is ``{"graphic_type", "points": [[column, row], ...], "image": index into the
    evidence, "frame": 1-based frame number (multi-frame images only)}``.
    """

    def __init__(self, form, where, evidence, file):
        if not isinstance(form, dict):
            raise EditError(f"{where} must be a mapping with graphic_type, points and image.", file=file)
        self.graphic_type = str(form.get("graphic_type") or "").upper()
        if self.graphic_type not in _GRAPHIC_POINTS:
            raise EditError(f"{where}: the graphic type must be one of {', '.join(_GRAPHIC_POINTS)}.",
                            file=file)
        try:
            points = [(float(x), float(y)) for x, y in form.get("points") or []]
        except (TypeError, ValueError, OverflowError):
            points = None
        fewest, most = _GRAPHIC_POINTS[self.graphic_type]
        if (not points or not all(math.isfinite(v) for p in points for v in p)
                or len(points) < fewest or (most and len(points) > most)):
            raise EditError(f"{where}: a {self.graphic_type} needs {fewest}"
                            f"{'' if most == fewest else ' or more'} (column, row) points of finite "
                            "numbers.", file=file)
        self.points = points
        index = form.get("image")
        if not isinstance(index, int) or not 0 <= index < len(evidence):
            raise EditError(f"{where} refers to image {index!r}, which is not one of the "
                            f"{len(evidence)} images given as evidence.", file=file)
        self.image = evidence[index]
        frames = int(self.image.get("NumberOfFrames") or 1)
        frame = form.get("frame")
        if frame is not None and (not isinstance(frame, int) or not 1 <= frame <= frames):
            raise EditError(f"{where}: frame {frame!r} is not a frame of its image (1 to {frames}).",
                            file=file)
        self.frame = frame if frames > 1 else None

    def content(self, relationship, name):
        """The SCOORD content item, with the image it is selected from."""
        source = base.sop_reference(self.image)
        if self.frame:
            source.ReferencedFrameNumber = self.frame
        image = content_item("SELECTED FROM", "IMAGE", CODES["SCT.Source"], ReferencedSOPSequence=[source])
        item = content_item(relationship, "SCOORD", name, GraphicType=self.graphic_type,
                            GraphicData=[v for point in self.points for v in point])
        item.ContentSequence = [image]
        return item


class QualitativeEvaluation:
    """A coded question and its coded answer (TID 1501/1410 "CONTAINS CODE")."""

    def __init__(self, form, where, file):
        if not isinstance(form, dict):
            raise EditError(f"{where} must be a mapping with name and value.", file=file)
        self.name = coded(form.get("name"), f"{where}, name", file)
        self.value = coded(form.get("value"), f"{where}, value", file)

    def content(self):
        return code_content("CONTAINS", self.name, self.value)


class Measurement:
    """One numeric measurement (TID 300): a concept name, a value, a UCUM unit, and optionally
    the coordinates it was measured from."""

    def __init__(self, form, where, file, evidence=()):
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
        self.coordinates = (ImageCoordinates(form["coordinates"], f"{where}, coordinates", evidence, file)
                            if form.get("coordinates") else None)

    def content(self):
        measured = Dataset()
        measured.MeasurementUnitsCodeSequence = [code_item(self.unit)]
        measured.NumericValue = DSfloat(self.value, auto_format=True)
        if float(str(measured.NumericValue)) != self.value:
            # (0040,A30A) is a 16-character decimal string; keep every digit alongside it.
            measured.FloatingPointValue = self.value
        item = content_item("CONTAINS", "NUM", self.name, MeasuredValueSequence=[measured])
        if self.coordinates:
            item.ContentSequence = [self.coordinates.content("INFERRED FROM", CODES["SCT.Source"])]
        return item


class MeasurementGroup:
    """A Measurement Group: TID 1501 (tracking identifier and UID, finding, site, measurements,
    qualitative evaluations), or TID 1410 when it has an image region."""

    def __init__(self, form, where, file, evidence=()):
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
        self.region = (ImageCoordinates(form["region"], f"{where}, image region", evidence, file)
                       if form.get("region") else None)
        if self.region and self.region.graphic_type == "MULTIPOINT":
            raise EditError(f"{where}: an image region cannot be a MULTIPOINT (TID 1410).", file=file)
        measurements = form.get("measurements") or []
        evaluations = form.get("qualitative") or []
        if not isinstance(measurements, list) or not isinstance(evaluations, list):
            raise EditError(f"{where}: measurements and qualitative evaluations must be lists.", file=file)
        if not (measurements or evaluations or self.region):
            raise EditError(f"{where} needs at least one measurement, qualitative evaluation or "
                            "image region.", file=file)
        self.measurements = [Measurement(m, f"{where}, measurement {i}", file, evidence)
                             for i, m in enumerate(measurements, 1)]
        self.evaluations = [QualitativeEvaluation(q, f"{where}, qualitative evaluation {i}", file)
                            for i, q in enumerate(evaluations, 1)]

    def content(self):
        children = [
            content_item("HAS OBS CONTEXT", "TEXT", CODES["DCM.TrackingIdentifier"],
                         TextValue=self.tracking_id),
            content_item("HAS OBS CONTEXT", "UIDREF", CODES["DCM.TrackingUniqueIdentifier"],
                         UID=self.tracking_uid),
        ]
        if self.region:
            children.append(self.region.content("CONTAINS", CODES["DCM.ImageRegion"]))
        if self.finding:
            children.append(code_content("CONTAINS", CODES["DCM.Finding"], self.finding))
        if self.finding_site:
            children.append(code_content("HAS CONCEPT MOD", CODES["SCT.FindingSite"],
                                         self.finding_site))
        children.extend(m.content() for m in self.measurements)
        children.extend(q.content() for q in self.evaluations)
        return container("CONTAINS", CODES["DCM.MeasurementGroup"], children,
                         template="1410" if self.region else "1501")


class MeasurementReport:
    """A Comprehensive SR holding a TID 1500 Measurement Report, checked at construction.

    Parameters
    ----------
    form : dict
        ``{"observer": "Family^Given" or {"name", "organization"},
        "procedure": code or [codes],
        "groups": [{"tracking_id": str, "tracking_uid": str (optional),
        "finding": code (optional), "finding_site": code (optional),
        "region": coordinates (optional; makes the group a TID 1410 planar ROI group),
        "qualitative": [{"name": code, "value": code}] (optional),
        "measurements": [{"name": code, "value": number, "unit": code or UCUM string,
        "coordinates": coordinates (optional)}]}]}``, where coordinates are ``{"graphic_type":
        "POLYLINE" | "ELLIPSE" | "POINT" | "CIRCLE" | "MULTIPOINT", "points": [[column, row], ...],
        "image": index into ``evidence``, "frame": 1-based (multi-frame images)}``.
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
        self.evidence = list(evidence)
        self.groups = [MeasurementGroup(g, f"measurement group {i}", file, self.evidence)
                       for i, g in enumerate(groups, 1)]
        tracking_uids = [g.tracking_uid for g in self.groups]
        if len(set(tracking_uids)) != len(tracking_uids):
            raise EditError("Two measurement groups have the same tracking UID; each tracked "
                            "finding needs its own.", file=file)
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
                           regions=sum(bool(g.region) + sum(bool(m.coordinates) for m in g.measurements)
                                       for g in self.groups),
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

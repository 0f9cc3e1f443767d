"""The dummy values D writes (PS3.15 E.1.1: a non-zero-length value of the right VR)."""

DUMMY_TEXT = "ANONYMIZED"
DUMMY_DATE = "19000101"
DUMMY_VALUES = {"AE": DUMMY_TEXT, "AS": "000D", "CS": DUMMY_TEXT, "DA": DUMMY_DATE,
                "DT": DUMMY_DATE + "000000", "TM": "000000", "DS": "0", "IS": "0",
                "LO": DUMMY_TEXT, "LT": DUMMY_TEXT, "PN": DUMMY_TEXT, "SH": DUMMY_TEXT,
                "ST": DUMMY_TEXT, "UC": DUMMY_TEXT, "UT": DUMMY_TEXT, "UR": "urn:x-anonymized",
                "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0,
                "AT": 0, "OB": b"\x00\x00", "UN": b"\x00\x00", "OW": b"\x00\x00",
                "OL": b"\x00" * 4, "OF": b"\x00" * 4, "OD": b"\x00" * 8, "OV": b"\x00" * 8}

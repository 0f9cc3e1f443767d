"""The tags, VR families and keyword lookups de-identification works with."""

import functools
import re

from pydicom.datadict import keyword_for_tag

MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID = 0x00080016
MODALITY = 0x00080060
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
ISSUER_OF_PATIENT_ID = 0x00100021
PATIENT_BIRTH_DATE = 0x00100030
PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
DEIDENTIFICATION_METHOD_CODES = 0x00120064
ROWS, COLUMNS = 0x00280010, 0x00280011
SAMPLES_PER_PIXEL = 0x00280002
PHOTOMETRIC_INTERPRETATION = 0x00280004
PLANAR_CONFIGURATION = 0x00280006
NUMBER_OF_FRAMES = 0x00280008
BITS_ALLOCATED = 0x00280100
PIXEL_REPRESENTATION = 0x00280103
BURNED_IN_ANNOTATION = 0x00280301
LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED = 0x00280303
PIXEL_DATA = 0x7FE00010
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, PIXEL_DATA})
# File Meta Information that names a sender, a receiver or holds private data (PS3.15 E.1.1
# item 7): Source, Sending and Receiving AE Titles, Private Information Creator UID and
# Private Information.
FILE_META_REMOVED = frozenset({0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102})
CODE_VALUE, CODING_SCHEME_DESIGNATOR, CODE_MEANING = 0x00080100, 0x00080102, 0x00080104
# What names a concept in a code (not a person): Code Value, Coding Scheme Designator and
# Version, Long Code Value, URN Code Value.
CODE_TERMS = frozenset({CODE_VALUE, CODING_SCHEME_DESIGNATOR, 0x00080103, 0x00080119, 0x00080120})
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
CLEANABLE_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
BINARY_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})
BULK_VRS = frozenset({"OB", "OW", "OL", "OF", "OD", "OV", "UN"})
# The dictionary lookup is slow next to everything else done per element, and a series repeats
# the same few hundred tags in every file.
keyword = functools.lru_cache(maxsize=4096)(keyword_for_tag)
NUMERIC_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")

"""New UIDs and the consistent old → new mapping shared by a job."""

import re

import pytest

from dcmstudio import uids
from dcmstudio.uids import UidMap, is_remappable, new_uid

UID_FORM = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def test_new_uids_are_valid_and_distinct():
    made = {new_uid() for _ in range(10_000)}
    assert len(made) == 10_000
    for uid in list(made)[:500]:
        assert uid.startswith("2.25.") and len(uid) <= 64 and UID_FORM.match(uid)


def test_uid_map_answers_the_same_way_every_time():
    counter = iter(range(1, 100))
    uid_map = UidMap(generate=lambda: f"2.25.{next(counter)}")
    assert uid_map["1.2.3"] == "2.25.1"
    assert uid_map["1.2.4"] == "2.25.2"
    assert uid_map["1.2.3"] == "2.25.1"
    assert len(uid_map) == 2 and "1.2.4" in uid_map and "1.2.5" not in uid_map
    assert uid_map.to_dict() == {"1.2.3": "2.25.1", "1.2.4": "2.25.2"}


def test_uid_map_starts_from_a_saved_map():
    uid_map = UidMap({"1.2.3": "2.25.99"})
    assert uid_map["1.2.3"] == "2.25.99"
    assert uid_map["1.2.4"].startswith("2.25.")


@pytest.mark.parametrize("tag, uid, expected", [
    (0x00080018, "1.2.826.0.1.3680043.8.498.1", True),  # SOPInstanceUID
    (0x0020000D, "1.2.826.0.1.3680043.8.498.2", True),  # StudyInstanceUID
    (0x00081155, "1.2.826.0.1.3680043.8.498.3", True),  # ReferencedSOPInstanceUID
    (0x00200052, "1.2.826.0.1.3680043.8.498.4", True),  # FrameOfReferenceUID
    (0x00091010, "1.2.826.0.1.3680043.8.498.5", True),  # private
    (0x00080016, "1.2.840.10008.5.1.4.1.1.2", False),  # SOPClassUID
    (0x00081150, "1.2.3.4.5", False),  # ReferencedSOPClassUID, even a private class
    (0x00020010, "1.2.840.10008.1.2.1", False),  # TransferSyntaxUID
    (0x00020012, "1.2.3.4", False),  # ImplementationClassUID
    (0x0008010C, "1.2.3.4", False),  # CodingSchemeUID
    (0x00200052, "1.2.840.10008.1.4.1.1", False),  # a well-known frame of reference
    (0x00080018, "", False),
])
def test_what_a_remap_replaces(tag, uid, expected):
    assert is_remappable(tag, uid) is expected


def test_not_remapped_keywords_are_dictionary_keywords():
    from pydicom.datadict import tag_for_keyword
    assert all(tag_for_keyword(k) is not None for k in uids.NOT_REMAPPED_KEYWORDS)

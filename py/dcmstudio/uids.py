"""New UIDs, and one consistent mapping from old UIDs to new ones across a whole job.

New UIDs are ``2.25.<the integer of a random UUID>`` (PS3.5 B.2): they need no registered root
and cannot collide in practice. A :class:`UidMap` gives the same new UID every time it meets the
same old one, so references between files (ReferencedSOPInstanceUID, FrameOfReferenceUID, ...)
still point at the right instance after every file's UIDs are replaced.
"""

import functools
import hashlib
import hmac
import uuid

from pydicom.datadict import keyword_for_tag

DICOM_ROOT = "1.2.840.10008."

# UI elements that name a kind of thing or a party, not an instance: replacing them would break
# the file (a SOP class, a transfer syntax) or lie about its origin (a coding scheme).
NOT_REMAPPED_KEYWORDS = frozenset({
    "CodingSchemeUID", "ContextGroupExtensionCreatorUID", "ContextUID", "CreatorVersionUID",
    "HomeCommunityID", "InstanceCreatorUID", "MappingResourceUID", "PrivateInformationCreatorUID",
    "RepositoryUniqueID", "RetrieveLocationUID", "TemplateExtensionCreatorUID",
    "TemplateExtensionOrganizationUID",
})


def new_uid():
    """A new UID: ``"2.25."`` followed by a random 128-bit UUID as a decimal integer.

    Returns
    -------
    str
        At most 44 characters.
    """
    return "2.25." + str(uuid.uuid4().int)


def keyed_uid(key, old):
    """A new UID derived from ``old`` under ``key``: ``"2.25."`` and 128 bits of HMAC-SHA256.

    Every worker of a job that shares ``key`` makes the same new UID for the same old one, so a
    job spread over several workers stays consistent without them talking to each other.

    Parameters
    ----------
    key : bytes
        The job's secret (random per run unless the user gives one).
    old : str
        What the new UID stands for (an old UID, or e.g. ``"file:12"`` for a per-file UID).
    """
    digest = hmac.new(key, old.encode("utf-8"), hashlib.sha256).digest()
    # The top bit of a 2.25 integer may be set: PS3.5 B.2 allows any 128-bit value.
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def is_remappable(tag, uid):
    """Whether ``uid`` in element ``tag`` identifies an instance that a remap should replace.

    Class UIDs (any keyword with ``SOPClass``, ``ClassUID`` or ``TransferSyntax``), the names of
    coding schemes and creators, and every UID under the DICOM root ``1.2.840.10008.`` (SOP
    classes, transfer syntaxes, well-known frames of reference) stay as they are.

    Parameters
    ----------
    tag : int
    uid : str
    """
    if not uid or uid.startswith(DICOM_ROOT):
        return False
    return _names_instances(tag)


@functools.lru_cache(maxsize=1024)
def _names_instances(tag):
    """Whether the UIDs element ``tag`` holds name instances (see :func:`is_remappable`); a
    series asks it of the same few tags in every file."""
    keyword = keyword_for_tag(tag)
    if not keyword:
        return True  # private or unknown UI: an instance UID is the safer guess
    return not ("SOPClass" in keyword or "ClassUID" in keyword or "TransferSyntax" in keyword
                or keyword in NOT_REMAPPED_KEYWORDS)


class UidMap:
    """Old UID → new UID, the same answer every time, for one job across many files.

    Parameters
    ----------
    mapping : dict of str to str, optional
        Pairs to start from (e.g. a map saved from an earlier job with :meth:`to_dict`).
    generate : callable, optional
        Makes a new UID; :func:`new_uid` by default (tests pass a deterministic one).
    key : bytes, optional
        When given, new UIDs are :func:`keyed_uid` of the old one (``generate`` is not used): the
        same on every worker that holds the key.

    Examples
    --------
    >>> uid_map = UidMap()
    >>> uid_map["1.2.3"] == uid_map["1.2.3"] != uid_map["1.2.4"]
    True
    """

    def __init__(self, mapping=None, *, generate=new_uid, key=None):
        self._map = dict(mapping or {})
        self._generate = generate
        self.key = key

    def __getitem__(self, old):
        new = self._map.get(old)
        if new is None:
            new = self._map[old] = keyed_uid(self.key, old) if self.key else self._generate()
        return new

    def new_for(self, what):
        """A fresh UID for ``what`` (e.g. a file's ``{uid}`` template): keyed when the map is."""
        return keyed_uid(self.key, what) if self.key else new_uid()

    def __contains__(self, old):
        return old in self._map

    def __len__(self):
        return len(self._map)

    def to_dict(self):
        """The pairs made so far, as a plain dict (it travels as JSON)."""
        return dict(self._map)

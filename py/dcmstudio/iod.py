"""The standard's IODs as data: which modules an object of a SOP Class has, and each attribute's Type.

The knowledge is PS3.3's IOD → module → attribute tables (module usage M/C/U, attribute types
1/1C/2/2C/3, nested inside sequences), as highdicom 0.28.2 ships them (MIT; innolitics'
dicom-standard JSON, edition 2024b), in the compact form :mod:`dcmstudio.iod_tables` derives
(each distinct sequence subtree stored once); ``data/README-iod.md`` names the source. The page
finds it as ``data/iod_tables.json``, which build.py writes into the later stage; CPython, which
has no such file, makes it from the installed highdicom (:func:`iod_tables.installed_table`).
The table is read the first time a question is asked, never at import: opening and inspecting
files does not pay for it.

:mod:`dcmstudio.validate` checks objects against these tables; :mod:`dcmstudio.deid` asks
:func:`attribute_type` to choose between X and Z.
"""

import functools
import json
import os
from typing import NamedTuple

from pydicom.datadict import RepeatersDictionary
from pydicom.tag import Tag

from dcmstudio import iod_tables

# Written by build.py into the page's later stage; absent from a checkout and from the wheel.
TABLE_FILE = os.path.join(os.path.dirname(__file__), "data", "iod_tables.json")
EDITION = iod_tables.EDITION
SOURCE = f"DICOM PS3.3 edition {EDITION}, from highdicom {iod_tables.HIGHDICOM_VERSION} (MIT)"
TYPES = ("1", "1C", "2", "2C", "3")
USAGES = {"M": "mandatory", "C": "conditional", "U": "user optional"}


class Module(NamedTuple):
    """One module of an IOD.

    Attributes
    ----------
    key : str
        The module's name as the table spells it, e.g. ``general-series``.
    usage : str
        ``M`` (mandatory), ``C`` (conditional) or ``U`` (user optional).
    entity : str
        The information entity it belongs to, e.g. ``Series``.
    """

    key: str
    usage: str
    entity: str

    @property
    def title(self):
        """The module's name as PS3.3 writes it, e.g. ``General Series``."""
        return module_title(self.key)


_ACRONYMS = {"ct", "mr", "pet", "rt", "sr", "voi", "lut", "us", "xa", "xrf", "sc", "sop", "dx", "mg", "io", "nm",
             "oct", "ecg", "eeg", "emg", "eog", "ivoct", "3d", "2d", "cr", "dicos", "vl", "wsi", "pdf", "cda"}
_SMALL_WORDS = {"of", "and", "for", "in", "to", "or"}


@functools.lru_cache(maxsize=1024)
def module_title(key):
    """Return PS3.3's name of the module ``key``: ``sop-common`` → ``SOP Common``."""
    words = key.split("-")
    return " ".join(word.upper() if word in _ACRONYMS else word if word in _SMALL_WORDS and i else word.capitalize()
                    for i, word in enumerate(words))


def table_source():
    """The table's ``source`` entry: highdicom's version, the edition, the maps' sha256."""
    return _tables()[3]


def _raw_table():
    if os.path.exists(TABLE_FILE):
        with open(TABLE_FILE, encoding="utf-8") as f:
            return json.load(f)
    return iod_tables.installed_table()


@functools.cache
def _tables():
    """Read the table once: SOP Class → IOD, IOD → modules, module → attribute tree, its source."""
    raw = _raw_table()
    # Nodes refer only to nodes stored before them, so one pass builds every tree:
    # {tag: (type or None, children node or None)}.
    nodes = []
    for flat in raw["nodes"]:
        nodes.append({int(tag, 16): (entry[0] or None, nodes[entry[1]] if len(entry) > 1 else None)
                      for tag, entry in flat.items()})
    modules = {key: nodes[number] for key, number in raw["modules"].items()}
    iods = {name: tuple(Module(*entry) for entry in entries) for name, entries in raw["iods"].items()}
    return raw["sop_classes"], iods, modules, raw["source"]


def iod_name(sop_class_uid):
    """Return the table's name of the IOD of ``sop_class_uid`` (``ct-image``), or None if unknown."""
    return _tables()[0].get(str(sop_class_uid).strip().rstrip("\0"))


def iod_modules(sop_class_uid):
    """Return the modules of the IOD of ``sop_class_uid``, in PS3.3's order.

    Parameters
    ----------
    sop_class_uid : str
        (0008,0016) *SOP Class UID*.

    Returns
    -------
    tuple of Module
        Empty when the SOP Class is not a storage class the table knows.
    """
    name = iod_name(sop_class_uid)
    return _tables()[1].get(name, ()) if name else ()


def module_attributes(key):
    """Return the attribute tree of module ``key``.

    Returns
    -------
    dict
        ``{tag: (type, children)}``: ``type`` one of ``TYPES`` or None (PS3.3 gives none),
        ``children`` the same kind of dict for a sequence's items, or None. Shared between
        callers: do not modify it.
    """
    return _tables()[2][key]


@functools.cache
def _repeater_keywords():
    return {entry[4]: int(mask.replace("x", "0"), 16) for mask, entry in RepeatersDictionary.items()}


def normalized_tag(tag):
    """Return ``tag`` as an int, with repeating groups (50xx, 60xx) folded onto their first group.

    ``tag`` is an int, a pydicom Tag or a keyword (``"OverlayRows"`` included); an unknown keyword
    raises ValueError.
    """
    if isinstance(tag, str) and tag in _repeater_keywords():
        return _repeater_keywords()[tag]
    tag = int(Tag(tag))
    group = tag >> 16
    if group & 0xFF00 in (0x5000, 0x6000) and group & 0xFF <= 0x1E and not group & 1:
        tag &= 0xFF00FFFF
    return tag


def _node_at(tree, parent_path):
    for parent in parent_path:
        entry = tree.get(normalized_tag(parent))
        if entry is None or entry[1] is None:
            return None
        tree = entry[1]
    return tree


def attribute_requirements(sop_class_uid, tag, parent_path=()):
    """Return every place the IOD of ``sop_class_uid`` defines ``tag`` at ``parent_path``.

    Parameters
    ----------
    sop_class_uid : str
        (0008,0016) *SOP Class UID*.
    tag : int, str or pydicom Tag
        The attribute: ``0x00100010``, ``"PatientName"``.
    parent_path : sequence of int or str
        The sequences that enclose it, outermost first (``()`` for the top level),
        e.g. ``("ReferencedSeriesSequence",)``.

    Returns
    -------
    list of (Module, str or None)
        Each module that lists the attribute there, with its Type in that module.
    """
    tag = normalized_tag(tag)
    found = []
    for module in iod_modules(sop_class_uid):
        node = _node_at(module_attributes(module.key), parent_path)
        if node is not None and tag in node:
            found.append((module, node[tag][0]))
    return found


def attribute_type(sop_class_uid, tag, parent_path=()):
    """Return the Type of an attribute in the IOD of a SOP Class.

    Parameters
    ----------
    sop_class_uid : str
        (0008,0016) *SOP Class UID* of the object.
    tag : int, str or pydicom Tag
        The attribute: ``0x00100010``, ``"PatientName"``.
    parent_path : sequence of int or str, optional
        The sequences that enclose it, outermost first; ``()`` (the default) for the top level.

    Returns
    -------
    str or None
        ``"1"``, ``"1C"``, ``"2"``, ``"2C"`` or ``"3"``; None when the IOD does not define the
        attribute there, the SOP Class is unknown, or PS3.3 gives no Type. Where several modules
        of the IOD define it, the mandatory modules decide, and among those (or, if none is
        mandatory, among all) the most specific module (see :func:`governing_type`).

    Examples
    --------
    >>> attribute_type("1.2.840.10008.5.1.4.1.1.2", "PatientName")
    '2'
    >>> attribute_type("1.2.840.10008.5.1.4.1.1.2", 0x00200013)   # Instance Number, CT
    '2'
    """
    places = attribute_requirements(sop_class_uid, tag, parent_path)
    mandatory = [(module, kind) for module, kind in places if module.usage == "M"]
    return governing_type(mandatory or places)


def governing_type(places):
    """The Type that holds where several modules define one attribute.

    PS3.3 lets a specific module override a general one (the SC Equipment module makes
    Modality Type 3 over the General Series module's Type 1; the CT Image module makes Image
    Type Type 1 over the General Image module's Type 3), so the module fewest IODs use decides;
    between equally specific modules, the strictest Type.

    Parameters
    ----------
    places : list of (Module, str or None)
        As :func:`attribute_requirements` returns them.

    Returns
    -------
    str or None
    """
    typed = [(module, kind) for module, kind in places if kind]
    if not typed:
        return None
    uses = _module_use_counts()
    return min(typed, key=lambda place: (uses[place[0].key], TYPES.index(place[1])))[1]


@functools.cache
def _module_use_counts():
    counts = {}
    for modules in _tables()[1].values():
        for module in modules:
            counts[module.key] = counts.get(module.key, 0) + 1
    return counts


@functools.cache
def _modules_by_top_level_tag():
    index = {}
    for key, tree in _tables()[2].items():
        for tag in tree:
            index.setdefault(tag, []).append(key)
    return index


def modules_defining(tag):
    """Return the keys of every module (of any IOD) that lists ``tag`` at its top level."""
    return tuple(_modules_by_top_level_tag().get(normalized_tag(tag), ()))

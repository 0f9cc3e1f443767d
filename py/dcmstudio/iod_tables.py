"""The compact IOD table :mod:`dcmstudio.iod` answers from, derived from highdicom's wheel.

highdicom ships PS3.3's IOD → module → attribute tables as data (``highdicom/_standard/
sop_class_iod_map.json``, ``iod_module_map.json``, ``module_attribute_map.json``; MIT; made from
innolitics' dicom-standard JSON of edition 2024b, see ``data/README-iod.md``). Nothing derived
from them is committed:

- ``build.py`` fetches the pinned wheel (version and sha256) into its cache and writes the table
  into the page's later stage, where :mod:`dcmstudio.iod` finds it as ``data/iod_tables.json``;
- in CPython (tests, the command line) :func:`installed_table` makes it from the installed
  highdicom (``pip install ./py`` installs the pinned version) on first use, and keeps it in the
  cache folder (``$DCMSTUDIO_CACHE`` or ``~/.cache/dcmstudio``).

Usage from the command line (what build.py runs)::

    python -m dcmstudio.iod_tables highdicom-0.28.2-py3-none-any.whl iod_tables.json

The three maps become one table: attribute keywords become tags (pydicom's dictionary), and each
module's attributes a tree of sequences whose identical subtrees (the macros the standard repeats
everywhere, such as the Code Sequence macro) are stored once.
"""

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import tempfile
import zipfile

from pydicom.datadict import RepeatersDictionary, tag_for_keyword

from dcmstudio.errors import DicomStudioError

HIGHDICOM_VERSION = "0.28.2"
EDITION = "2024b"
SOURCE_FILES = ("sop_class_iod_map.json", "iod_module_map.json", "module_attribute_map.json")
# A source type of None (the attribute's type is not given in the standard's table) is kept as "".
TYPES = ("1", "1C", "2", "2C", "3", "")


def read_sources(location):
    """Return ``{file name: bytes}`` of the three maps, from a wheel or an installed package folder."""
    if os.path.isdir(location):
        sources = {}
        for name in SOURCE_FILES:
            with open(os.path.join(location, "_standard", name), "rb") as f:
                sources[name] = f.read()
        return sources
    with zipfile.ZipFile(location) as wheel:
        return {name: wheel.read(f"highdicom/_standard/{name}") for name in SOURCE_FILES}


# Repeating groups (50xx curves, 60xx overlays) are stored with the group's first value, as
# highdicom writes them; dcmstudio.iod maps 6002..601E and 5002..501E to it.
REPEATER_KEYWORDS = {entry[4]: int(mask.replace("x", "0"), 16) for mask, entry in RepeatersDictionary.items()}


def tag_hex(keyword):
    tag = tag_for_keyword(keyword) or REPEATER_KEYWORDS.get(keyword)
    if tag is None:
        raise SystemExit(f"pydicom does not know the keyword {keyword!r}; pin the pydicom highdicom was built with")
    return f"{tag:08X}"


def module_tree(rows):
    """Nest a module's rows: ``{tag: [type, children or None]}``, in the source's order."""
    tree = {}
    for row in rows:
        node = tree
        for keyword in row["path"]:
            entry = node.setdefault(tag_hex(keyword), ["", None])
            if entry[1] is None:
                entry[1] = {}
            node = entry[1]
        entry = node.setdefault(tag_hex(row["keyword"]), ["", None])
        kind = row["type"] if row["type"] not in (None, "None") else ""
        if kind not in TYPES:
            raise SystemExit(f"unknown attribute type {kind!r} in {row}")
        if entry[0] and entry[0] != kind:
            raise SystemExit(f"{row} is listed twice with different types; decide which one the table keeps")
        entry[0] = kind
    return tree


def intern_tree(tree, nodes, index):
    """Store ``tree`` in ``nodes`` once per distinct content; return its node number."""
    flat = {}
    for tag, (kind, children) in tree.items():
        flat[tag] = [kind, intern_tree(children, nodes, index)] if children is not None else [kind]
    key = json.dumps(flat, sort_keys=True, separators=(",", ":"))
    if key not in index:
        index[key] = len(nodes)
        nodes.append(flat)
    return index[key]


def build_tables(sources):
    sop_classes = json.loads(sources["sop_class_iod_map.json"])
    iods = json.loads(sources["iod_module_map.json"])
    modules = json.loads(sources["module_attribute_map.json"])
    nodes, index = [], {}
    module_nodes = {name: intern_tree(module_tree(rows), nodes, index) for name, rows in sorted(modules.items())}
    return {
        "source": {
            "package": f"highdicom {HIGHDICOM_VERSION} (MIT), highdicom/_standard/",
            "edition": EDITION,
            "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in sources.items()},
        },
        "sop_classes": sop_classes,
        "iods": {name: [[m["key"], m["usage"], m["ie"]] for m in entries] for name, entries in iods.items()},
        "modules": module_nodes,
        "nodes": nodes,
    }


def table_text(tables):
    """The table as the file holds it (compact JSON, one line)."""
    return json.dumps(tables, separators=(",", ":"), sort_keys=False) + "\n"


def installed_table():
    """The table made from the installed highdicom, from the cache folder after the first time.

    Returns
    -------
    dict
        As :func:`build_tables` returns it.

    Raises
    ------
    DicomStudioError
        When highdicom is not installed, or is not the version the table is pinned to.
    """
    spec = importlib.util.find_spec("highdicom")  # found, not imported: importing it is slow
    try:
        version = importlib.metadata.version("highdicom") if spec else None
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version != HIGHDICOM_VERSION:
        found = f"highdicom {version} is installed" if version else "highdicom is not installed"
        raise DicomStudioError(f"The IOD table validation needs comes from highdicom {HIGHDICOM_VERSION}, "
                               f"and {found}: run `pip install highdicom=={HIGHDICOM_VERSION}` (`pip install "
                               f"./py` does), or use the page that build.py makes, which carries the table.")
    location = spec.submodule_search_locations[0]
    # Named by the sources' sizes and modification times, as Python checks its bytecode: hashing
    # the 23 MB of highdicom's maps cost every command that validates ~0.05 s before its first file.
    stats = [os.stat(os.path.join(location, "_standard", name)) for name in SOURCE_FILES]
    signature = hashlib.sha256(repr([(n, s.st_size, s.st_mtime_ns) for n, s in zip(SOURCE_FILES, stats)]).encode())
    cache = os.path.join(os.environ.get("DCMSTUDIO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                           "dcmstudio"), "iod-tables")
    path = os.path.join(cache, f"iod_tables-{HIGHDICOM_VERSION}-{signature.hexdigest()[:16]}.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    tables = build_tables(read_sources(location))
    try:  # the cache is a convenience: a read-only home only means building it again next time
        os.makedirs(cache, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=cache, delete=False, suffix=".part") as f:
            f.write(table_text(tables))
        os.replace(f.name, path)
    except OSError:
        pass
    return tables


def main(argv):
    if len(argv) != 3:
        raise SystemExit("usage: python -m dcmstudio.iod_tables HIGHDICOM_WHEEL_OR_PACKAGE_FOLDER OUTPUT_JSON")
    with open(argv[2], "w", encoding="utf-8") as f:
        f.write(table_text(build_tables(read_sources(argv[1]))))


if __name__ == "__main__":
    main(sys.argv)

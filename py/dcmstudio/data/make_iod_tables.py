"""Regenerate ``iod_tables.json`` from highdicom's wheel (not used at run time).

Usage::

    pip download --no-deps --only-binary=:all: highdicom==0.28.2 -d /tmp/hd
    python make_iod_tables.py /tmp/hd/highdicom-0.28.2-py3-none-any.whl > iod_tables.json

(an installed ``highdicom`` package folder works in place of the wheel). The three maps of
``highdicom/_standard`` become one compact table: attribute keywords become tags (pydicom's
dictionary), and each module's attributes become a tree of sequences whose identical subtrees
(the macros the standard repeats everywhere, such as the Code Sequence macro) are stored once.
README.md in this folder describes the format.
"""

import hashlib
import json
import os
import sys
import zipfile

from pydicom.datadict import RepeatersDictionary, tag_for_keyword

HIGHDICOM_VERSION = "0.28.2"
SOURCE_FILES = ("sop_class_iod_map.json", "iod_module_map.json", "module_attribute_map.json")
# A source type of None (the attribute's type is not given in the standard's table) is kept as "".
TYPES = ("1", "1C", "2", "2C", "3", "")


def read_sources(location):
    """Return ``{file name: bytes}`` of the three maps, from a wheel or a package folder."""
    if os.path.isdir(location):
        return {name: open(os.path.join(location, "_standard", name), "rb").read() for name in SOURCE_FILES}
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
            "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in sources.items()},
        },
        "sop_classes": sop_classes,
        "iods": {name: [[m["key"], m["usage"], m["ie"]] for m in entries] for name, entries in iods.items()},
        "modules": module_nodes,
        "nodes": nodes,
    }


def main(argv):
    if len(argv) != 2:
        raise SystemExit(__doc__)
    tables = build_tables(read_sources(argv[1]))
    sys.stdout.write(json.dumps(tables, separators=(",", ":"), sort_keys=False) + "\n")


if __name__ == "__main__":
    main(sys.argv)

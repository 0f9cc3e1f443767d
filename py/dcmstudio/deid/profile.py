"""PS3.15 Table E.1-1, one pinned edition, as data: the action each attribute gets under the options.

The table lives in ``data/deid_profile_2026c.json`` (its README names the source, the edition and
how the option columns were made). This module reads it once and answers two questions for
:mod:`dcmstudio.deid.plan`: which row governs a tag, and which action that row asks for when some
options are chosen.

Actions (PS3.15 E.1.1): ``D`` dummy value, ``Z`` empty (or dummy) value, ``X`` remove, ``K``
keep, ``C`` clean, ``U`` replace UIDs consistently, and the combinations ``Z/D``, ``X/Z``,
``X/D``, ``X/Z/D`` and ``X/Z/U*``.
"""

import functools
import json
import os
from typing import NamedTuple

PROFILE_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "deid_profile_2026c.json")

BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_DATA = ("113101", "Clean Pixel Data Option")

# The options a page can choose, in the order (0012,0064) lists them: key, code (CID 7050), meaning.
OPTIONS = (
    ("retain_safe_private", "113111", "Retain Safe Private Option"),
    ("retain_uids", "113110", "Retain UIDs Option"),
    ("retain_device_identity", "113109", "Retain Device Identity Option"),
    ("retain_institution_identity", "113112", "Retain Institution Identity Option"),
    ("retain_patient_characteristics", "113108", "Retain Patient Characteristics Option"),
    ("retain_long_full_dates", "113106",
     "Retain Longitudinal Temporal Information Full Dates Option"),
    ("retain_long_modified_dates", "113107",
     "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("clean_descriptors", "113105", "Clean Descriptors Option"),
    ("clean_structured_content", "113104", "Clean Structured Content Option"),
    ("clean_graphics", "113103", "Clean Graphics Option"),
)
OPTION_KEYS = tuple(key for key, _, _ in OPTIONS)
ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})


class Rule(NamedTuple):
    """One row of Table E.1-1.

    Attributes
    ----------
    tag : str
        As the table writes it: ``(0010,0010)``, ``(60xx,3000)``, ``(50xx,xxxx)``, or
        ``private`` for every element of an odd group.
    name, keyword, vr : str
        The attribute's name, its pydicom keyword and VR (empty where pydicom 3.0.2 does not
        know the attribute).
    basic : str
        The Basic Profile's action.
    options : dict
        ``{option key: "K" or "C"}`` for the option columns that name this row.
    options_from : str
        ``"2024e"`` (the standard's table of that edition) or the rule that gave the option
        columns of a row new since.
    """

    tag: str
    name: str
    keyword: str
    vr: str
    basic: str
    options: dict
    options_from: str


class Profile:
    """Table E.1-1 of one edition, indexed for lookups by tag.

    Parameters
    ----------
    table : dict
        The parsed data file: ``title``, ``edition``, ``source`` and ``rows``.
    """

    def __init__(self, table):
        self.title = table["title"]
        self.edition = table["edition"]
        self.options_edition = table["options_edition"]
        self.source = table["source"]
        self.rules = []
        self._by_tag = {}
        self._masked = []  # (value, mask, rule) for rows with xx in their tag
        self.private_rule = None
        for row in table["rows"]:
            options = {k: row[k] for k in OPTION_KEYS if k in row}
            rule = Rule(row["tag"], row["name"], row["keyword"], row["vr"], row["basic"], options,
                        row["options_from"])
            if rule.basic not in ACTIONS or any(v not in ("K", "C") for v in options.values()):
                raise ValueError(f"{PROFILE_FILE}: row {rule.tag} has an unknown action")
            self.rules.append(rule)
            if rule.tag == "private":
                self.private_rule = rule
                continue
            digits = rule.tag.strip("()").replace(",", "")
            value = int("".join("0" if c == "x" else c for c in digits), 16)
            mask = int("".join("0" if c == "x" else "F" for c in digits), 16)
            if mask == 0xFFFFFFFF:
                self._by_tag[value] = rule
            else:
                self._masked.append((value, mask, rule))

    def rule_for(self, tag):
        """The row governing a standard (even group) tag, or ``None`` when the table omits it."""
        rule = self._by_tag.get(tag)
        if rule is not None:
            return rule
        for value, mask, rule in self._masked:
            if tag & mask == value:
                return rule
        return None

    @staticmethod
    def action(rule, options):
        """The action a row asks for under the chosen options, and what decided it.

        An option's K (keep) wins over another option's C (clean), which wins over the Basic
        Profile: retaining is what the user asked for explicitly, and cleaning keeps more than
        the Basic Profile's removal.

        Parameters
        ----------
        rule : Rule
        options : collection of str
            The option keys chosen (see :data:`OPTIONS`).

        Returns
        -------
        action : str
        decided_by : str
            ``"basic"`` or the option key whose column gave the action.
        """
        cleaned_by = None
        for key in OPTION_KEYS:
            if key in options and key in rule.options:
                if rule.options[key] == "K":
                    return "K", key
                cleaned_by = cleaned_by or key
        if cleaned_by:
            return "C", cleaned_by
        return rule.basic, "basic"

    @property
    def label(self):
        """The table as reports and (0012,0063) name it: both editions it is made of."""
        return f"PS3.15-{self.edition} Table E.1-1, options {self.options_edition}"

    def describe(self):
        """What the page shows: the edition, the source and each option with its code."""
        counts = {key: sum(key in rule.options for rule in self.rules) for key in OPTION_KEYS}
        return {
            "title": self.title,
            "label": self.label,
            "edition": self.edition,
            "options_edition": self.options_edition,
            "source": self.source,
            "rows": len(self.rules),
            "rows_new_since_options_edition": sum(r.options_from != self.options_edition
                                                  for r in self.rules),
            "basic": {"code": BASIC_PROFILE[0], "meaning": BASIC_PROFILE[1]},
            "options": [{"key": key, "code": code, "meaning": meaning, "rows": counts[key]}
                        for key, code, meaning in OPTIONS]
            + [{"key": "clean_pixel_data", "code": CLEAN_PIXEL_DATA[0],
                "meaning": CLEAN_PIXEL_DATA[1], "rows": 0}],
        }


@functools.lru_cache(maxsize=1)
def load():
    """The pinned edition's table (read once per process).

    Returns
    -------
    Profile
    """
    with open(PROFILE_FILE, encoding="utf-8") as f:
        return Profile(json.load(f))

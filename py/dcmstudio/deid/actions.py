"""What de-identification does to an element: one class per kind of change.

Each kind has the letter Table E.1-1 gives it (``code``: the report's ``action``), says what it
does in a few words (``does``: the report's ``does``, the page's preview and legend), and applies
itself to one element of a :class:`dcmstudio.deid.plan.FilePlan` through the plan's primitives:
``_record`` (the report), ``_edit`` (the byte-level edits), ``_texts`` (values), ``_items`` (a
sequence's items, planned in a mode) and ``_deleted``. Which kind an element gets is the plan's
decision (the table, the options, the object's IOD); how it is done is the kind's.
"""

from dcmstudio import uids
from dcmstudio.deid import dates
from dcmstudio.deid.dummies import DUMMY_TEXT, DUMMY_VALUES
from dcmstudio.deid.tags import CODING_SCHEME_DESIGNATOR, PATIENT_ID, PATIENT_NAME, TEXT_VRS, keyword


class Action:
    """One kind of change: ``apply(plan, node, by)`` plans it for ``node`` (``by``: what decided
    it, as the report says: ``basic``, an option key, ``beyond-table``...)."""

    code = ""
    does = ""

    def apply(self, plan, node, by):
        raise NotImplementedError

    @classmethod
    def describe(cls):
        """``{"code", "name", "does"}`` for a legend."""
        return {"code": cls.code, "name": cls.__name__, "does": cls.does}


class Keep(Action):
    """K: the element stays as it is (a reference sequence kept by Retain UIDs still loses the
    free text of its items, as the Basic Profile's action for the sequence says)."""

    code = "K"
    does = "kept as it is"

    def apply(self, plan, node, by, mode=None):
        plan._record(node, self, by)
        if node.is_sequence:
            plan._items(node, "dummy" if by == "retain_uids" else mode)


class KeepOption(Keep):
    """K by an option the user chose (dates under Retain Longitudinal Temporal Information with
    Full Dates)."""

    does = "kept, as the option chosen retains it"


class KeepSafe(Keep):
    """C under Retain Safe Private: a private element known to hold nothing identifying."""

    code = "C"
    does = "kept: a private element known to be safe"

    def apply(self, plan, node, by, mode=None):
        plan._record(node, self, by)
        if node.is_sequence:
            plan._items(node, mode)


class Remove(Action):
    """X: the element goes, with everything in it."""

    code = "X"
    does = "removed"

    def apply(self, plan, node, by):
        plan._deleted.add(node)
        plan._record(node, self, by)
        plan._edit("delete", node)


class Empty(Action):
    """Z: the attribute stays, with no value (a sequence with no item); Patient's Name and ID
    get the pseudonym, a dummy Z allows."""

    code = "Z"
    does = "emptied: kept with no value"

    def apply(self, plan, node, by):
        if node.tag in (PATIENT_NAME, PATIENT_ID) and not node.is_sequence:
            PSEUDONYM.apply(plan, node, by, self.code)
            return
        plan._record(node, self, by)
        if node.is_sequence:
            if node.children:
                plan._edit("delete", node, suffix="[*]")
        elif node.length:
            plan._edit("set", node, "")


class Pseudonym(Action):
    """Patient's Name and Patient ID: the patient's keyed pseudonym; another patient ID met in
    the file gets a keyed stand-in of its own. Its code is the table's (Z, D or C)."""

    code = "D"
    does = "replaced by the patient's pseudonym"

    def apply(self, plan, node, by, code=None):
        plan._record(node, self, by, code)
        original = plan._text(node)
        if node.tag == PATIENT_ID and original and original != plan.patient.original_id:
            value = plan.job.pseudonym_for_id(original)
            plan.other_ids.append(original)
        else:
            value = plan.patient.pseudonym
        if original != value:
            plan._edit("set", node, value)


class Dummy(Action):
    """D: a value of the element's VR that means nothing (removed where no dummy can be
    written); UIDs get new ones, the patient's name and ID the pseudonym, a code sequence dummy
    codes, another sequence dummies in its items."""

    code = "D"
    does = "replaced by a dummy value"

    def apply(self, plan, node, by):
        if node.is_sequence:
            if (keyword(node.tag) or "").endswith("CodeSequence"):
                DUMMY_CODES.apply(plan, node, by)
            else:
                DUMMY_CONTENT.apply(plan, node, by)
            return
        vr = plan._vr(node)
        if vr == "UI":
            REPLACE_UID.apply(plan, node, by, self.code)
        elif node.tag in (PATIENT_NAME, PATIENT_ID):
            PSEUDONYM.apply(plan, node, by, self.code)
        else:
            self.set(plan, node, by, vr)

    def set(self, plan, node, by, vr):
        """The dummy of ``vr`` written in ``node``."""
        plan._record(node, self, by)
        if vr not in DUMMY_VALUES:
            plan._deleted.add(node)
            plan._edit("delete", node)  # no dummy can be written for it: removing is safer
            return
        plan._edit("set", node, DUMMY_VALUES[vr])


class DummyContent(Action):
    """D on a sequence: kept, and the action covers its content: the free text, dates and
    opaque values of its items become dummies; coded values, numbers and (new) UIDs stay, so the
    structure remains readable."""

    code = "D"
    does = "kept, the free text of its items replaced by dummies"

    def apply(self, plan, node, by):
        plan._record(node, self, by)
        plan._items(node, "dummy")


class DummyCodes(Action):
    """D on a code sequence (codes for people and places): every text of its items becomes a
    dummy code."""

    code = "D"
    does = "kept, its codes replaced by a dummy code"

    def apply(self, plan, node, by):
        plan._record(node, self, by)
        self._codes(plan, node)

    def _codes(self, plan, sequence):
        for item in sequence.children:
            for node in item.children or ():
                if node.is_sequence:
                    self._codes(plan, node)
                elif node.children is None and plan._vr(node) in TEXT_VRS and node.length:
                    plan._edit("set", node, "99DEID" if node.tag == CODING_SCHEME_DESIGNATOR else DUMMY_TEXT)


class ReplaceUID(Action):
    """U: each UID (but the standard's own, ``1.2.840.10008.``) becomes ``2.25.`` and a number
    keyed by the job's secret: the same new UID wherever the old one appears."""

    code = "U"
    does = "replaced by a new UID, the same wherever the old one appears"

    def apply(self, plan, node, by, code=None, only_instances=False):
        old = plan._texts(node, record=False)
        new = []
        for uid in old:
            keep = not uid or uid.startswith(uids.DICOM_ROOT) or \
                (only_instances and not uids.is_remappable(node.tag, uid))
            new.append(uid if keep else plan.job.new_uid(uid))
            if not keep and uids.is_remappable(node.tag, uid):
                plan.identifiers.instance_uids.add(uid)
        if len(old) == 1 and new != old:
            plan.uid_slots.append((node, only_instances))  # the new value follows the old one
        else:
            plan.read.add(node)
        if new != old:
            plan._record(node, self, by, code)
            plan._edit("set", node, new if len(new) > 1 else new[0])


class CleanText(Action):
    """C on text: kept without the identifying values learned in the job (names, IDs, dates...);
    a value that was nothing else becomes a dummy."""

    code = "C"
    does = "kept without the identifying values the job learned"

    def apply(self, plan, node, by, record=True):
        old = plan._texts(node)
        # a value that was nothing but identifying becomes a dummy: it may be Type 1
        new = [plan.identifiers.scrub(v) or DUMMY_TEXT for v in old]
        if record or new != old:
            plan._record(node, self, by)
        if new != old:
            plan._edit("set", node, new if len(new) > 1 else new[0])


class ShiftDate(Action):
    """C on a date under Retain Longitudinal Temporal Information with Modified Dates: shifted
    by the patient's offset in whole days (times stay, intervals are kept)."""

    code = "C"
    does = "shifted by the patient's date offset; a time stays"

    def apply(self, plan, node, by, vr):
        plan._record(node, self, by)
        if vr == "TM":
            return  # whole-day offsets leave times as they are
        old = plan._texts(node)
        offset = plan.patient.date_offset_days
        new = [dates.shift(v, offset, vr) for v in old]
        if None in new:
            plan.notes.append(f"{node.path}: a {vr} value that is not a date was replaced by a dummy.")
            new = [DUMMY_VALUES[vr] if v is None else v for v in new]
        if new != old:
            plan._edit("set", node, new if len(new) > 1 else new[0])


class CleanItems(Action):
    """C (or X/Z/U*) on a sequence: kept, its items cleaned (their text scrubbed, their UIDs
    replaced)."""

    code = "C"
    does = "kept, its items cleaned"

    def apply(self, plan, node, by, code=None, mode="clean"):
        plan._record(node, self, by, code)
        plan._items(node, mode)


class Clean(Action):
    """C: what the option retains, without its identifying parts, by the element's VR: dates
    follow the date options, UIDs are replaced, names become dummies, text is scrubbed, bulk
    data (overlay bitmaps) is removed."""

    code = "C"
    does = "cleaned"

    def apply(self, plan, node, by):
        if node.is_sequence:
            CLEAN_ITEMS.apply(plan, node, by)
            return
        vr = plan._vr(node)
        if vr in ("DA", "DT", "TM"):
            date(plan, node, by, vr)
        elif vr == "UI":
            REPLACE_UID.apply(plan, node, by, self.code)
        elif node.tag in (PATIENT_NAME, PATIENT_ID):
            PSEUDONYM.apply(plan, node, by, self.code)
        elif vr == "PN":
            DUMMY.set(plan, node, by, vr)
        elif vr in TEXT_VRS:
            CLEAN_TEXT.apply(plan, node, by)
        else:  # overlay bitmaps and other bulk data cannot be cleaned here: removed
            REMOVE.apply(plan, node, by)


def date(plan, node, by, vr):
    """A date, time or date-time the table does not keep: kept under Full Dates, shifted under
    Modified Dates, else a dummy."""
    if "retain_long_full_dates" in plan.chosen:
        KEEP_OPTION.apply(plan, node, by)
    elif "retain_long_modified_dates" in plan.chosen:
        SHIFT_DATE.apply(plan, node, by, vr)
    else:
        DUMMY.set(plan, node, by, vr)


KEEP, KEEP_OPTION, KEEP_SAFE, REMOVE, EMPTY = Keep(), KeepOption(), KeepSafe(), Remove(), Empty()
PSEUDONYM, DUMMY, DUMMY_CONTENT, DUMMY_CODES = Pseudonym(), Dummy(), DummyContent(), DummyCodes()
REPLACE_UID, CLEAN, CLEAN_TEXT, SHIFT_DATE, CLEAN_ITEMS = ReplaceUID(), Clean(), CleanText(), ShiftDate(), CleanItems()
# The table's single actions, once the object's IOD resolved the combinations (X/Z/U* apart).
BY_CODE = {"K": KEEP, "X": REMOVE, "Z": EMPTY, "D": DUMMY, "U": REPLACE_UID, "C": CLEAN}
ALL = (KEEP, KEEP_OPTION, KEEP_SAFE, REMOVE, EMPTY, PSEUDONYM, DUMMY, DUMMY_CONTENT, DUMMY_CODES, REPLACE_UID, CLEAN,
       CLEAN_TEXT, SHIFT_DATE, CLEAN_ITEMS)


def legend():
    """Every kind of change, ``{"code", "name", "does"}``, for the page."""
    return [type(action).describe() for action in ALL]

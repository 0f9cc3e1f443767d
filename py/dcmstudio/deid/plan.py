"""The plan for one file: every element's action under the chosen options, as byte-level edits.

The plan decides which kind of change each element gets (the table's row, the options, the
object's IOD); the kinds themselves, and how each is made, are :mod:`dcmstudio.deid.actions`.
"""

import collections

from pydicom.datadict import dictionary_VR

from dcmstudio import __version__, iod, uids, values
from dcmstudio.deid import actions, burned_in, private
from dcmstudio.deid.identifiers import identifier_kind
from dcmstudio.deid.tags import (BULK_VRS, CLEANABLE_TEXT_VRS, CODE_TERMS, DEIDENTIFICATION_METHOD_CODES,
                                 FILE_META_REMOVED, ISSUER_OF_PATIENT_ID, MEDIA_STORAGE_SOP_INSTANCE_UID,
                                 PATIENT_BIRTH_DATE, PATIENT_ID, PATIENT_NAME, PIXEL_DATA, PIXEL_DATA_TAGS,
                                 PIXEL_REPRESENTATION, SOP_CLASS_UID, SPECIFIC_CHARACTER_SET, keyword)
from dcmstudio.elements import ITEM, in_force, tag_text


# The action a combination resolves to, by the first character of the attribute's Type.
TYPE_CHOSEN = {"X/Z": {"1": "X", "2": "Z", "3": "X"},
               "X/Z/D": {"1": "D", "2": "Z", "3": "X"},
               "X/D": {"1": "D", "2": "D", "3": "X"},
               "Z/D": {"1": "D", "2": "Z", "3": "Z"}}
# A single action that would take away what the object's IOD requires, and the action that
# keeps it: a Type 1 attribute keeps a value (a dummy), a Type 2 one stays, empty (PS3.15
# E.1.1: a de-identified object stays a valid instance; Table E.1-1 says X for some attributes
# an IOD makes Type 1, such as a presentation state's (0070,0082) Presentation Creation Date).
TYPE_KEPT = {"X": {"1": "D", "2": "Z"}, "Z": {"1": "D"}}
# (SOP Class UID, tag, enclosing sequences) → Type in the IOD: a series asks the same few.
_TYPES = {}
# Character sets whose text the residual scan may search as bytes (see residual.scan).
PLAIN_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 6"})


def _type_at(place, mandatory=False):
    """The Type of an attribute at ``place`` = (SOP Class UID, tag, enclosing sequences) in the
    object's IOD, or ``None``; with ``mandatory``, only as the IOD's mandatory modules give it."""
    kind = _TYPES.get((place, mandatory), "")
    if kind == "":
        try:
            places = iod.attribute_requirements(*place)
        except (KeyError, ValueError):
            places = []
        if mandatory:
            places = [(module, kind) for module, kind in places if module.usage == "M"]
        else:
            places = [(module, kind) for module, kind in places if module.usage == "M"] or places
        kind = _TYPES[(place, mandatory)] = iod.governing_type(places) if places else None
    return kind


def decoded_texts(data, decoding):
    """The values of an element of ``data`` as text, read as ``decoding`` =
    ``(start, end, vr, tag, encodings, little_endian, implicit_vr)`` says (``None``: none)."""
    if decoding is None:
        return []
    start, end, vr, tag, encodings, little_endian, implicit_vr = decoding
    if vr == "UI":
        # as pydicom decodes UIDs (Latin-1, trailing nulls and spaces off, split at backslashes,
        # each value stripped), without its validation, which only warns: a file's own UIDs miss
        # every cache, twice per file of a series
        return [uid.strip() for uid in bytes(data[start:end]).decode("latin-1").rstrip("\0 ").split("\\")]
    decoded = values.decode_value(data[start:end], vr, tag=tag, encodings=encodings,
                                  little_endian=little_endian, implicit_vr=implicit_vr)
    if decoded is None:
        return []
    items = decoded if isinstance(decoded, list) else [decoded]
    return [str(v) for v in items if v is not None]


def learn_values(identifiers, how, tag, texts):
    """Learn one element's values ``texts`` as ``how`` says: ``"name"`` (a person name),
    ``"uid"`` (instance UIDs), or a kind of :meth:`dcmstudio.deid.identifiers.Identifiers.add`."""
    if how == "name":
        for text in texts:
            identifiers.add_name(text)
    elif how == "uid":
        known = identifiers.instance_uids
        for uid in texts:
            if uid and uid not in known and not uid.startswith(uids.DICOM_ROOT) and uids.is_remappable(tag, uid):
                known.add(uid)
    else:
        for text in texts:
            identifiers.add(how, text)


class FilePlan:
    """The decisions for one walked file: identifying values first, then the edits.

    Parameters
    ----------
    job : dcmstudio.deid.Deidentifier
    emap : dcmstudio.elements.ElementMap
        The walked input.
    name : str
    collect_only : bool
        Learn the file's identifying values and its patient, plan nothing.
    learn : bool
        Learn its identifying values first (``False`` when a first pass over every file of
        the job already did).
    identifiers : dcmstudio.deid.identifiers.Identifiers, optional
        Where the values learned are kept and looked up: the job's by default.
    """

    def __init__(self, job, emap, name, collect_only=False, learn=True, identifiers=None):
        self.job = job
        self.identifiers = job.identifiers if identifiers is None else identifiers
        self.emap = emap
        self.name = name
        self.data = emap.data
        self.options = job.options
        self.chosen = job.options.chosen
        self.profile = job.profile
        self.edits = []
        self.elements = []
        self.notes = []
        self._deleted = set()
        # What the decisions depended on, so a file of the same layout can reuse them (see
        # dcmstudio.deid.layouts): the elements whose values were read, those edited, and the
        # UIDs replaced by keyed ones (one value each, in the order they were replaced).
        self.read = set()
        self.edited = set()
        self.uid_slots = []
        self.other_ids = []
        self._sop_class = None
        self._encodings = {}
        top = {node.tag: node for node in emap.root.children}
        self.top = top
        self.pixel_representation = 0
        self.pixel_representation = self._number(top.get(PIXEL_REPRESENTATION)) or 0
        self.patient_nodes = [top.get(tag) for tag in (PATIENT_ID, ISSUER_OF_PATIENT_ID, PATIENT_NAME,
                                                       PATIENT_BIRTH_DATE)]
        self.patient_key = tuple(self._text(node) for node in self.patient_nodes)
        self.patient = job.patient(*self.patient_key)
        self.plain_charset = all(
            term.strip() in PLAIN_CHARSETS for node in emap.elements
            if node.tag == SPECIFIC_CHARACTER_SET for term in self._texts(node, values.DEFAULT_ENCODINGS))
        if learn:
            self._collect_identifiers()
        if collect_only:
            return
        self.burned_in = burned_in.assess(self._text, self.top)
        self.masks = self.options.masks_for(name) if PIXEL_DATA in top else []
        self._visit(emap.root, None)
        self._add_deidentification_attributes()

    # --- reading values ------------------------------------------------------------------------

    def _vr(self, node):
        vr = node.vr
        if node.encoding.implicit_vr or vr in (None, "UN") or " or " in vr:
            try:
                vr = dictionary_VR(node.tag)
            except KeyError:
                # newer than pydicom's dictionary: the table itself knows its VR
                rule = self.profile.rule_for(node.tag) if not node.tag >> 16 & 1 else None
                return (rule.vr if rule is not None and rule.vr else None) or vr or "UN"
            vr = values.resolve_vr(vr, self.pixel_representation)
        return vr

    def _encodings_in(self, container):
        def own(dataset):
            charset = next((c for c in dataset.children or () if c.tag == SPECIFIC_CHARACTER_SET), None)
            if charset is None:
                return None
            return values.encodings_for(tuple(self._texts(charset, values.DEFAULT_ENCODINGS)))
        return in_force(container, self._encodings, own, values.DEFAULT_ENCODINGS)

    def _texts(self, node, encodings=None, record=True):
        """A plain element's values as a list of text (numbers as their text)."""
        if node is None or node.children is not None or not node.length:
            return []
        if record:
            self.read.add(node)
        return decoded_texts(self.data, self.decoding(node, encodings))

    def decoding(self, node, encodings=None):
        """How to read ``node``'s values as text (see :func:`decoded_texts`), or ``None`` when
        it holds none (absent, empty, a sequence, bulk data)."""
        if node is None or node.children is not None or not node.length:
            return None
        vr = self._vr(node)
        if vr in BULK_VRS or vr == "SQ":
            return None
        return (node.value_offset, node.value_offset + node.length, vr, node.tag,
                encodings or self._encodings_in(node.parent), node.encoding.little_endian,
                node.encoding.implicit_vr)

    def _text(self, node):
        return "\\".join(self._texts(node))

    def _number(self, node):
        texts = self._texts(node)
        try:
            return int(float(texts[0])) if texts else None
        except ValueError:
            return None

    def _rule(self, tag):
        """``(rule, action, decided_by)`` of a standard tag under the chosen options, or
        ``(None, None, None)`` when the table omits it; the job remembers them."""
        found = self.job.rules.get(tag)
        if found is None:
            rule = self.profile.rule_for(tag)
            found = self.job.rules[tag] = (rule, *self.profile.action(rule, self.chosen)) \
                if rule is not None else (None, None, None)
        return found

    # --- identifying values --------------------------------------------------------------------

    def _collect_identifiers(self):
        """Learn the values that could name someone, at every depth, the file meta included:
        every person name (private ones too), and the IDs, addresses, dates and instance UIDs
        the profile does not keep. ``learned_from`` keeps which elements were read, and as what
        (see :func:`learn_values`)."""
        retain_uids = "retain_uids" in self.chosen
        self.learned_from = []
        for node in self.emap.elements:
            if node.children is not None or node.tag in (None, ITEM):
                continue
            tag = node.tag
            vr = self._vr(node)
            if tag >> 16 & 1:
                if vr == "PN":
                    self.learned_from.append((node, "name"))
                continue
            rule, action, _ = self._rule(tag)
            if action == "K":
                continue
            if vr == "UI":
                if not (rule is None and retain_uids):
                    self.learned_from.append((node, "uid"))
                continue
            if vr == "PN":
                self.learned_from.append((node, "name"))
                continue
            if rule is None:
                continue
            kind = identifier_kind(rule.keyword or keyword(tag), vr)
            if kind is None or (action == "C" and kind != "date"):
                continue  # cleaned text stays by design
            self.learned_from.append((node, kind))
        for node, how in self.learned_from:
            learn_values(self.identifiers, how, node.tag, self._texts(node))

    # --- decisions -------------------------------------------------------------------------------

    def _visit(self, container, mode):
        """Decide every element of a dataset (the root or an item).

        ``mode`` says what happens to the free text the table does not list: ``None`` kept,
        ``"clean"`` scrubbed of the identifying values learned (C), ``"dummy"`` replaced (the
        content of a sequence whose action is D: the action covers all of it).
        """
        blocks_kept, creators = set(), []
        deleted_before = len(self._deleted)
        occurrences = collections.Counter(node.tag for node in container.children)
        for node in container.children:
            tag = node.tag
            group = tag >> 16
            if occurrences[tag] > 1:
                # A repeated tag: the earlier copies go, the last (the one readers keep) is
                # acted on. The editor deletes the first live copy a path names, so these
                # deletes, made first, leave the paths of the last copy as they are.
                occurrences[tag] -= 1
                actions.REMOVE.apply(self, node, "duplicate")
                self.notes.append(f"{node.path} {tag_text(tag)} occurs more than once in "
                                  f"{'the file' if node.parent.tag is None else 'its item'}: "
                                  f"only the last copy is kept, de-identified.")
                continue
            if not tag & 0xFFFF or tag in PIXEL_DATA_TAGS:
                continue  # group lengths follow their group; pixels change only by masks
            if group == 0x0002:
                self._file_meta(node)
                continue
            if group & 1:
                self._private(node, blocks_kept, creators)
                continue
            rule, action, by = self._rule(tag)
            if rule is None:
                self._unlisted(node, mode)
                continue
            self._apply(node, rule, action, by, mode)
        for creator in creators:
            block = (creator.tag >> 16, creator.tag & 0xFF)
            if block not in blocks_kept:
                actions.REMOVE.apply(self, creator, "basic")
        if len(self._deleted) > deleted_before:
            self._remove_orphaned_overlays(container)

    def _remove_orphaned_overlays(self, container):
        """An Overlay Plane whose (60xx,3000) Overlay Data went cannot stand: its group goes."""
        groups = {node.tag >> 16 for node in container.children
                  if node.tag & 0xFF00FFFF == 0x60003000 and node in self._deleted}
        for node in container.children:
            if node.tag >> 16 in groups and node.tag & 0xFFFF and node not in self._deleted:
                actions.REMOVE.apply(self, node, "beyond-table")

    def _file_meta(self, node):
        """The File Meta Information (PS3.15 E.1.1 item 7): the instance UID follows the new
        SOP Instance UID; the AE titles and the private information go; the rest describes the
        encoding and stays."""
        if node.tag == MEDIA_STORAGE_SOP_INSTANCE_UID:
            if "retain_uids" not in self.chosen:
                actions.REPLACE_UID.apply(self, node, "basic")
        elif node.tag in FILE_META_REMOVED:
            actions.REMOVE.apply(self, node, "file-meta")

    def _choose(self, node, action):
        """One action of a combination, by the attribute's Type in the object's IOD (PS3.15
        E.1.1: the dummy only where the IOD needs a value, the empty value only where it needs
        the attribute): X/Z is Z for Type 2 and X otherwise; X/Z/D is D for Type 1, Z for 2, X
        otherwise; X/D is D for Type 1 or 2; Z/D is D for Type 1. Conditional types count as
        their kind (the condition may hold: the attribute is there). Unknown: X, or Z for Z/D.
        A single X or Z yields to the Type a mandatory module gives (see ``TYPE_KEPT``): the
        attributes of an optional module may go, as the module may (an overlay goes whole)."""
        if action not in TYPE_CHOSEN and action not in TYPE_KEPT:
            return action
        if self._sop_class is None:
            self._sop_class = self._text(self.top.get(SOP_CLASS_UID))
        parents, up = [], node.parent
        while up is not None and up.tag is not None:
            if up.tag != ITEM:
                parents.append(up.tag)
            up = up.parent
        place = (self._sop_class, node.tag, tuple(reversed(parents)))
        if action in TYPE_KEPT:
            return TYPE_KEPT[action].get((_type_at(place, mandatory=True) or "3")[0], action)
        kind = _type_at(place)
        return TYPE_CHOSEN[action].get((kind or "3")[0], TYPE_CHOSEN[action]["3"])

    def _apply(self, node, rule, action, by, mode):
        action = self._choose(node, action)
        if action == "X/Z/U*":
            if node.is_sequence:
                actions.CLEAN_ITEMS.apply(self, node, by, action, mode or "clean")
            elif self._vr(node) == "UI":
                actions.REPLACE_UID.apply(self, node, by, action)
            else:
                actions.EMPTY.apply(self, node, by)
        elif action == "K":
            actions.KEEP.apply(self, node, by, mode)
        else:  # combinations were resolved by the IOD above
            actions.BY_CODE[action].apply(self, node, by)

    def _items(self, sequence, mode):
        for item in sequence.children:
            if item.children is not None:
                self._visit(item, mode)

    def _unlisted(self, node, mode):
        """An element Table E.1-1 does not list: kept, except as the module docstring says."""
        if node.is_sequence:
            self._items(node, mode)
            return
        if node.children is not None:
            return
        vr = self._vr(node)
        if vr == "UI":
            if "retain_uids" not in self.chosen:
                actions.REPLACE_UID.apply(self, node, "beyond-table", only_instances=True)
        elif not keyword(node.tag):
            actions.REMOVE.apply(self, node, "beyond-table")
        elif mode == "dummy":
            self._dummy_content(node, vr)
        elif mode == "clean" and vr in CLEANABLE_TEXT_VRS:
            actions.CLEAN_TEXT.apply(self, node, "beyond-table", record=False)

    def _dummy_content(self, node, vr):
        """A value inside a sequence whose action is D: text, dates and opaque bytes become
        dummies (or follow a longitudinal option); coded values, numbers and UIDs (replaced
        above) keep the content readable."""
        if vr in ("DA", "DT", "TM"):
            actions.date(self, node, "in-dummied-sequence", vr)
        elif vr == "UN":
            actions.REMOVE.apply(self, node, "in-dummied-sequence")
        elif (vr in CLEANABLE_TEXT_VRS or vr == "UR") and node.tag not in CODE_TERMS and node.length:
            actions.DUMMY.set(self, node, "in-dummied-sequence", vr)

    # --- actions -------------------------------------------------------------------------------

    def _record(self, node, action, by, code=None):
        """Report what ``action`` (a :class:`dcmstudio.deid.actions.Action`) does to ``node``;
        ``code``: the table's letter for it when that is not the action's own (X/Z/U*...)."""
        self.elements.append({"path": node.path, "tag": tag_text(node.tag),
                              "name": keyword(node.tag) or "", "action": code or action.code,
                              "by": by, "does": action.does})

    def _edit(self, op, node, value=None, suffix=""):
        self.edited.add(node)
        item = {"op": op, "path": node.tag_path + suffix}
        if op != "delete":
            item["value"] = value
            if node.encoding.implicit_vr and not node.tag >> 16 & 1 and not keyword(node.tag):
                item["vr"] = self._vr(node)  # the editor's dictionary lacks it; the table has it
        self.edits.append(item)

    # --- private elements ----------------------------------------------------------------------

    def _private(self, node, blocks_kept, creators):
        if "retain_safe_private" not in self.chosen:
            actions.REMOVE.apply(self, node, "basic")
            return
        element = node.tag & 0xFFFF
        if 0x10 <= element <= 0xFF:
            creators.append(node)
            return
        if element < 0x1000:
            actions.REMOVE.apply(self, node, "basic")  # reserved private range: no creator, not safe
            return
        creator = self._creator(node)
        self.read.add(node)  # its value may decide whether it is safe
        if creator is not None and private.is_safe(node, creator, self.data, self.options.safe_private):
            blocks_kept.add((node.tag >> 16, element >> 8))
            actions.KEEP_SAFE.apply(self, node, "retain_safe_private")
            if node.is_sequence:
                self._items(node, None)
        else:
            actions.REMOVE.apply(self, node, "retain_safe_private")

    def _creator(self, node):
        tag = node.tag & 0xFFFF0000 | node.tag >> 8 & 0xFF
        creator = next((c for c in node.parent.children if c.tag == tag), None)
        texts = self._texts(creator) if creator is not None else []
        return texts[0] if texts else None

    # --- what de-identification adds -----------------------------------------------------------

    def _add_deidentification_attributes(self):
        codes = self.options.codes(pixels_cleaned=bool(self.masks))
        self.edits.append({"op": "add", "path": "(0012,0062)", "value": "YES"})
        method = [f"dcmstudio {__version__} {self.profile.label}"]
        method += [meaning for _, meaning in codes]
        self.edits.append({"op": "add", "path": "(0012,0063)", "value": method})
        existing = self.top.get(DEIDENTIFICATION_METHOD_CODES)
        if existing is not None and existing.children:
            self.edits.append({"op": "delete", "path": "(0012,0064)[*]"})
        for i, (code, meaning) in enumerate(codes):
            item = f"(0012,0064)[{i}]"
            self.edits.append({"op": "add", "path": item})
            self.edits.append({"op": "add", "path": f"{item}.(0008,0100)", "value": code})
            self.edits.append({"op": "add", "path": f"{item}.(0008,0102)", "value": "DCM"})
            self.edits.append({"op": "add", "path": f"{item}.(0008,0104)", "value": meaning})
        # (0028,0303) belongs to the SOP Common Module: every object says what became of dates.
        if "retain_long_full_dates" in self.chosen:
            longitudinal = "UNMODIFIED"
        elif "retain_long_modified_dates" in self.chosen:
            longitudinal = "MODIFIED"
        else:
            longitudinal = "REMOVED"
        self.edits.append({"op": "add", "path": "(0028,0303)", "value": longitudinal})
        if self.masks:
            self.edits.append({"op": "add", "path": "(0028,0301)", "value": "NO"})


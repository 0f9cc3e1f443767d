"""The identifying values met in a job: learned from the inputs, found again in outputs, scrubbed
from free text.

Names are learned whole, per component group (alphabetic, ideographic, phonetic) and per
component, however short (``Wu^Li``: ``Wu`` and ``Li``), and every Han ideograph and Hangul
syllable of a name on its own: a description may give one character of a name. Single Latin
letters (initials) are not learned: they would match every ``A`` of a text. Everything else
(IDs, accession numbers, addresses) needs at least three characters. Matches are whole tokens:
not inside a longer run of ASCII letters and digits.
"""

import functools
import re

from dcmstudio.deid.dummies import DUMMY_DATE, DUMMY_TEXT
from dcmstudio.deid.tags import TEXT_VRS


@functools.cache
def _ideograph():
    """Han ideographs (unified, extension A, compatibility) and Hangul syllables: one character
    can be one syllable of a name. Compiled when a text that is not ASCII first needs it (its
    ranges cost ~8 ms to compile in the page's Python)."""
    return re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


@functools.cache
def _no_space_script():
    """Scripts written without spaces between names (ideographs, kana, Hangul): any length counts."""
    return re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\uff66-\uff9f]")


_UID_TOKEN = r"(?<![0-9.])[0-9]+(?:\.[0-9]+){2,}(?![0-9.])"
_DATE_TOKEN = r"(?<![0-9])((?:19|20)[0-9]{2})[-./]?([01][0-9])[-./]?([0-3][0-9])"
# The same without their look-behind (checked by _tokens): a pattern that starts with a digit
# lets the engine skip to the next digit, one with a look-behind tries every byte.
_UID_BYTES = re.compile(_UID_TOKEN.encode().replace(rb"(?<![0-9.])", b"", 1))
_DATE_BYTES = re.compile(_DATE_TOKEN.encode().replace(rb"(?<![0-9])", b"", 1))
_DIGIT_BYTES = frozenset(b"0123456789")
_UID_BYTE_BEFORE = _DIGIT_BYTES | {ord(".")}
_UID_TEXT, _DATE_TEXT = re.compile(_UID_TOKEN), re.compile(_DATE_TOKEN)
_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")


class Identifiers:
    """The identifying values met in a job, and finders for them in bytes and in text."""

    def __init__(self):
        self.texts = {}  # lower-case text → kind
        self.ideographs = {}  # one Han or Hangul character of a name → kind
        self.dates = set()  # "YYYYMMDD"
        # UIDs replaced that name an instance, a series, a patient's study...: not those naming
        # software or organisations (Instance Creator UID), which other elements repeat.
        self.instance_uids = set()
        # person names learned whole (every part of them is in texts): a series repeats them
        self._names = set()
        # (bytes pattern, text pattern for scans, text pattern to scrub, kinds), made when needed
        self._patterns = None

    def add(self, kind, text):
        """Learn one value of ``kind`` (``name``, ``id``, ``address``, ``date``, ``text``)."""
        text = text.strip(" \x00")
        if kind == "date":
            digits = re.sub(r"[^0-9]", "", text)[:8]
            if len(digits) == 8 and digits != DUMMY_DATE and digits not in self.dates:
                self.dates.add(digits)
                self._patterns = None
            return
        key = text.lower()
        if key in self.texts:
            return  # known: the kind it was first learned as stays
        shortest = 1 if not text.isascii() and _no_space_script().search(text) else 2 if kind == "name" else 3
        if len(text) < shortest or text.upper() == DUMMY_TEXT or text.strip("0. -") == "":
            return  # too short or too common to mean anyone
        self.texts[key] = kind
        self._patterns = None

    def add_name(self, value):
        """Learn a person name (one PN value): whole, per component group, per component, per
        word of a component, and each ideograph."""
        if value in self._names:
            return
        self.add("name", value)
        for group in value.split("="):
            self.add("name", group)
            for component in group.split("^"):
                self.add("name", component)
                for word in component.split():
                    self.add("name", word)
        for character in () if value.isascii() else _ideograph().findall(value):
            if character not in self.ideographs:
                self.ideographs[character] = "name"
                self._patterns = None
        self._names.add(value)

    def update(self, other):
        """Learn everything ``other`` learned (merged after this one's values: the same result
        as learning ``other``'s files after this one's)."""
        for key, kind in other.texts.items():
            self.texts.setdefault(key, kind)
        for character, kind in other.ideographs.items():
            self.ideographs.setdefault(character, kind)
        self.dates |= other.dates
        self.instance_uids |= other.instance_uids
        self._patterns = None

    def to_plain(self):
        """What was learned, as plain JSON data (for another worker: see :meth:`from_plain`)."""
        return {"texts": list(self.texts.items()), "ideographs": list(self.ideographs.items()),
                "dates": sorted(self.dates), "instance_uids": sorted(self.instance_uids)}

    @classmethod
    def from_plain(cls, plain):
        """The identifiers :meth:`to_plain` gave (the same finders, scrubbing and scans)."""
        found = cls()
        found.texts = dict(plain["texts"])
        found.ideographs = dict(plain["ideographs"])
        found.dates = set(plain["dates"])
        found.instance_uids = set(plain["instance_uids"])
        return found

    def for_one_file(self):
        """A view for de-identifying one file after the first pass: everything learned is shared
        (compiled once), and the UIDs the file itself replaces are added to its view only, so a
        file's result never depends on which files were de-identified before it (in this
        process or in another)."""
        self._compiled()
        view = Identifiers.__new__(Identifiers)
        view.__dict__.update(self.__dict__)  # not copy.copy: it would drop the compiled patterns
        view.instance_uids = _FileUids(self.instance_uids)
        return view

    def __getstate__(self):
        # compiled patterns are rebuilt where needed, not shipped to other processes
        return {**self.__dict__, "_patterns": None}

    def finder(self):
        """``fn(data, start, end) -> [(offset, kind, found)]`` over encoded bytes.

        Values are looked for in their UTF-8 and Latin-1 encodings: complete for files in
        ASCII, ISO_IR 100 or ISO_IR 192; :meth:`text_finder` covers the others once decoded.
        """
        pattern, _, _, kinds = self._compiled()
        instance_uids, dates = self.instance_uids, self.dates

        def find(data, start, end):
            hits = []
            if pattern is not None:
                # ASCII letters folded here, not by the pattern: a pattern of literals without
                # IGNORECASE lets the engine skip to where a first byte fits (10-20x faster)
                lowered = bytes(data[start:end]).lower()
                position = 0
                while True:
                    match = pattern.search(lowered, position)
                    if match is None:
                        break
                    at, stop = match.span()
                    if at and lowered[at - 1] in _WORD_BYTES and match.lastindex is None:
                        position = at + 1  # inside a longer token: look again one byte on
                        continue
                    found = bytes(data[start + at:start + stop]).decode("utf-8", "replace")
                    hits.append((start + at, kinds.get(found.lower(), "text"), found))
                    position = stop
            if instance_uids:
                for match in _tokens(_UID_BYTES, data, start, end, _UID_BYTE_BEFORE):
                    token = match.group(0).decode("ascii")
                    if token in instance_uids:
                        hits.append((match.start(), "uid", token))
            if dates:
                for match in _tokens(_DATE_BYTES, data, start, end, _DIGIT_BYTES):
                    if b"".join(match.groups()).decode("ascii") in dates:
                        hits.append((match.start(), "date", match.group(0).decode("ascii")))
            return sorted(hits)

        return find

    def text_finder(self):
        """``fn(text) -> [(offset, kind, found)]`` over decoded text (any character set)."""
        _, pattern, _, kinds = self._compiled()
        instance_uids, dates = self.instance_uids, self.dates

        def find(text):
            hits = []
            if pattern is not None:
                for match in pattern.finditer(text):
                    found = match.group(0)
                    hits.append((match.start(), kinds.get(found.lower(), "text"), found))
            for match in _UID_TEXT.finditer(text):
                if match.group(0) in instance_uids:
                    hits.append((match.start(), "uid", match.group(0)))
            for match in _DATE_TEXT.finditer(text):
                if "".join(match.groups()) in dates:
                    hits.append((match.start(), "date", match.group(0)))
            return sorted(hits)

        return find

    def scrub(self, text):
        """``text`` without the identifying values seen so far (case-insensitive)."""
        pattern = self._compiled()[2]
        if pattern is None or not text:
            return text
        scrubbed = pattern.sub("", text)
        return text if scrubbed == text else re.sub(r"\s{2,}", " ", scrubbed).strip()

    def _compiled(self):
        if self._patterns is None:
            texts = sorted(self.texts, key=len, reverse=True)
            ideographs = "".join(sorted(self.ideographs))
            dates = [f"{d[:4]}[-./]?{d[4:6]}[-./]?{d[6:]}" for d in sorted(self.dates)]
            self._patterns = (_bytes_pattern(texts, ideographs), _text_pattern(texts, ideographs),
                              _text_pattern(texts + dates, ideographs, escaped=len(texts)),
                              {**self.ideographs, **self.texts})
        return self._patterns


def _tokens(pattern, data, start, end, not_after):
    """The matches of ``pattern`` in ``data[start:end]`` that do not follow a byte of
    ``not_after``, as ``finditer`` gives them with that look-behind in the pattern."""
    position = start
    while True:
        match = pattern.search(data, position, end)
        if match is None:
            return
        at = match.start()
        if at and data[at - 1] in not_after:
            position = at + 1
            continue
        yield match
        position = max(match.end(), at + 1)


class _FileUids:
    """The learned instance UIDs (read only) and those one file adds."""

    def __init__(self, learned):
        self.learned = learned
        self.own = set()

    def add(self, uid):
        if uid not in self.learned:
            self.own.add(uid)

    def __contains__(self, uid):
        return uid in self.own or uid in self.learned


def _bytes_pattern(texts, ideographs):
    """Whole tokens in UTF-8 or Latin-1, any case of their ASCII letters (searched in bytes whose
    ASCII letters were lowered; the token's start is checked by the finder); ideographs anywhere,
    as group 1."""
    forms = {form for text in texts for form in (text, text.upper(), text.title())}
    encoded = {form.encode(encoding, "ignore").lower() for form in forms for encoding in ("utf-8", "latin-1")}
    encoded = sorted(encoded - {b""}, key=len, reverse=True)
    alternatives = [b"(?:" + b"|".join(re.escape(e) for e in encoded) + rb")(?![a-z0-9])"] if encoded else []
    if ideographs:
        alternatives.append(b"(" + b"|".join(re.escape(c.encode("utf-8")) for c in ideographs) + b")")
    return re.compile(b"|".join(alternatives)) if alternatives else None


def _text_pattern(texts, ideographs, escaped=None):
    """Whole tokens, case-insensitive; ``texts[escaped:]`` are regular expressions (dates)."""
    escaped = len(texts) if escaped is None else escaped
    parts = [re.escape(t) for t in texts[:escaped]] + texts[escaped:]
    alternatives = [r"(?<![A-Za-z0-9])(?:" + "|".join(parts) + r")(?![A-Za-z0-9])"] if parts else []
    if ideographs:
        alternatives.append(f"[{ideographs}]")
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


def identifier_kind(keyword, vr):
    """What kind of identifying value an element holds, or ``None`` (see the residual scan)."""
    keyword = keyword or ""
    if vr == "PN":
        return "name"
    if vr in ("DA", "DT"):
        return "date"
    if vr not in TEXT_VRS:
        return None
    if re.search(r"Address|Telephone|Telecom|Institution|Location|Residence|Issuer|Organization",
                 keyword):
        return "address"
    if re.search(r"(?:ID|IDs|Number|Numbers|Identifier|Locator|StationName|AETitle|Author)$",
                 keyword):
        return "id"
    return None

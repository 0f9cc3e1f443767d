"""The identifying values met in a job: learned from the inputs, found again in outputs, scrubbed
from free text."""

import re

from dcmstudio.deid.dummies import DUMMY_DATE, DUMMY_TEXT
from dcmstudio.deid.tags import TEXT_VRS

class Identifiers:
    """The identifying values met in a job, and a finder for them in encoded bytes."""

    def __init__(self):
        self.texts = {}  # lower-case text → kind
        self.dates = set()  # "YYYYMMDD"
        # UIDs replaced that name an instance, a series, a patient's study...: not those naming
        # software or organisations (Instance Creator UID), which other elements repeat.
        self.instance_uids = set()
        self._patterns = None  # (bytes pattern for scans, str pattern for scrubbing)

    def add(self, kind, text):
        text = text.strip(" \x00")
        if kind == "date":
            digits = re.sub(r"[^0-9]", "", text)[:8]
            if len(digits) == 8 and digits != DUMMY_DATE and digits not in self.dates:
                self.dates.add(digits)
                self._patterns = None
            return
        if len(text) < 3 or text.upper() == DUMMY_TEXT or text.strip("0. -") == "":
            return  # too short or too common to mean anyone
        key = text.lower()
        if key not in self.texts:
            self.texts[key] = kind
            self._patterns = None

    def finder(self):
        """``fn(data, start, end) -> [(offset, kind, found)]`` over the values seen so far."""
        text_pattern, texts, dates = self._compiled()[0], self.texts, self.dates
        instance_uids = self.instance_uids

        def find(data, start, end):
            hits = []
            if text_pattern is not None:
                for match in text_pattern.finditer(data, start, end):
                    found = match.group(0).decode("utf-8", "replace")
                    hits.append((match.start(), texts.get(found.lower(), "text"), found))
            for match in _UID_TOKEN.finditer(data, start, end):
                token = match.group(0).decode("ascii")
                if token in instance_uids:
                    hits.append((match.start(), "uid", token))
            for match in _DATE_TOKEN.finditer(data, start, end):
                digits = b"".join(match.groups()).decode("ascii")
                if digits in dates:
                    hits.append((match.start(), "date", match.group(0).decode("ascii")))
            return sorted(hits)

        return find

    def scrub(self, text):
        """``text`` without the identifying values seen so far (case-insensitive)."""
        pattern = self._compiled()[1]
        if pattern is None or not text:
            return text
        scrubbed = pattern.sub("", text)
        return text if scrubbed == text else re.sub(r"\s{2,}", " ", scrubbed).strip()

    def _compiled(self):
        if self._patterns is None:
            self._patterns = (_make_text_pattern(self.texts),
                              _make_text_pattern(self.texts, as_bytes=False, dates=self.dates))
        return self._patterns


_UID_TOKEN = re.compile(rb"(?<![0-9.])[0-9]+(?:\.[0-9]+){2,}(?![0-9.])")
_DATE_TOKEN = re.compile(rb"(?<![0-9])((?:19|20)[0-9]{2})[-./]?([01][0-9])[-./]?([0-3][0-9])")


def _make_text_pattern(texts, as_bytes=True, dates=()):
    alternatives = sorted(texts, key=len, reverse=True)
    if as_bytes:
        encoded = sorted({t.encode(enc, "ignore") for t in alternatives
                          for enc in ("utf-8", "latin-1")} - {b""}, key=len, reverse=True)
        if not encoded:
            return None
        body = b"|".join(re.escape(e) for e in encoded)
        return re.compile(rb"(?<![A-Za-z0-9])(?:" + body + rb")(?![A-Za-z0-9])", re.IGNORECASE)
    parts = [re.escape(t) for t in alternatives]
    parts += [f"{d[:4]}[-./]?{d[4:6]}[-./]?{d[6:]}" for d in sorted(dates)]
    if not parts:
        return None
    return re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(parts) + r")(?![A-Za-z0-9])",
                      re.IGNORECASE)



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


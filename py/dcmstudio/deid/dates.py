"""Dates moved by a patient's offset (Retain Longitudinal Temporal Information, Modified Dates)."""

import datetime
import re

DATE_PARTS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(.*)", re.DOTALL)


def shift(text, days, vr):
    """A DA or DT value moved by ``days``, at the precision it was written; ``None`` if not a
    date."""
    match = DATE_PARTS.fullmatch(text.strip())
    if not match or (vr == "DA" and match.group(4)):
        return None
    year, month, day, rest = match.groups()
    try:
        date = datetime.date(int(year), int(month or 1), int(day or 1))
        date += datetime.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    shifted = f"{date.year:04d}" + (f"{date.month:02d}" if month else "") + \
        (f"{date.day:02d}" if day else "")
    return shifted + (rest if vr == "DT" else "")


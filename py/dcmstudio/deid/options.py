"""The options of a de-identification job, checked once before any file is touched."""

import re

from dcmstudio import edit
from dcmstudio.deid import profile as deid_profile
from dcmstudio.errors import DicomStudioError, EditError

OPTION_DEFAULTS = {
    **{key: False for key in deid_profile.OPTION_KEYS},
    "clean_pixel_data": False,
    "pixel_masks": [],
    "secret": "",
    "date_offset_days": None,
    "date_offset_range": [-3650, -365],
    "pseudonym_prefix": "DEID",
    "keep_names": False,
    "safe_private": [],
    "zip_name": None,
    "burned_in": "flag",
}


class DeidOptions:
    """The options of one job, checked once before any file is touched.

    Parameters
    ----------
    options : dict
        PS3.15 options as booleans (keys of :data:`dcmstudio.deid_profile.OPTIONS`, and
        ``clean_pixel_data``), and:

        - ``pixel_masks``: ``[{"x", "y", "width", "height", "files"}]`` rectangles in pixels
          of the shown frame, blacked out in every frame of the files named (every file when
          ``files`` is absent); applied only with ``clean_pixel_data``.
        - ``secret``: text; the same secret gives the same UIDs, pseudonyms and date offsets in
          every session. Empty: a random key, consistent within this job only.
        - ``date_offset_days``: ``None`` (a per-patient offset from the secret, within
          ``date_offset_range``, inclusive) or a whole number of days for every patient.
        - ``pseudonym_prefix``: the start of every patient pseudonym (default ``DEID``).
        - ``keep_names``: keep the input file names (the residual scan still reads them).
        - ``safe_private``: private elements declared safe, as ``(gggg,"CREATOR",ee)``; with
          ``retain_safe_private`` they are kept besides those holding only numbers.
        - ``burned_in``: what becomes of a file that may have text in its pixels
          ((0028,0301) YES, ultrasound and the like, Secondary Capture) and that no Clean Pixel
          Data mask covers: ``"flag"`` (written, flagged in the report) or ``"refuse"`` (left
          out, with a sentence).

    Raises
    ------
    DicomStudioError
        An unknown option, both longitudinal options, or a malformed value.
    """

    def __init__(self, options):
        options = dict(options or {})
        unknown = sorted(set(options) - set(OPTION_DEFAULTS))
        if unknown:
            raise DicomStudioError(f"de-identification has no option {unknown[0]!r}; the options "
                                   f"are {', '.join(sorted(OPTION_DEFAULTS))}.")
        merged = {**OPTION_DEFAULTS, **options}
        self.chosen = frozenset(k for k in deid_profile.OPTION_KEYS if merged[k])
        if {"retain_long_full_dates", "retain_long_modified_dates"} <= self.chosen:
            raise DicomStudioError("Retain Longitudinal Temporal Information keeps either full "
                                   "dates or modified dates, not both: choose one.")
        self.clean_pixel_data = bool(merged["clean_pixel_data"])
        self.pixel_masks = [_parse_mask(m) for m in merged["pixel_masks"] or []]
        self.secret = merged["secret"] or ""
        if not isinstance(self.secret, str):
            raise DicomStudioError("the secret must be text.")
        self.date_offset_days = _whole_number(merged["date_offset_days"], "date_offset_days",
                                              allow_none=True)
        low, high = (_whole_number(v, "date_offset_range") for v in merged["date_offset_range"])
        if low > high:
            raise DicomStudioError(f"date_offset_range [{low}, {high}] is empty: give the smaller "
                                   f"number first.")
        self.date_offset_range = (low, high)
        prefix = merged["pseudonym_prefix"]
        if not isinstance(prefix, str) or not re.fullmatch(r"[A-Z0-9_]{0,16}", prefix):
            raise DicomStudioError("pseudonym_prefix must be 0 to 16 capital letters, digits or "
                                   "underscores (it becomes part of Patient ID and file names).")
        self.pseudonym_prefix = prefix
        self.keep_names = bool(merged["keep_names"])
        if merged["burned_in"] not in ("flag", "refuse"):
            raise DicomStudioError(f"burned_in is \"flag\" or \"refuse\", not {merged['burned_in']!r}.")
        self.burned_in = merged["burned_in"]
        self.safe_private = set()
        for text in merged["safe_private"] or []:
            try:
                steps = edit.parse_path(text)
            except EditError as exc:
                raise DicomStudioError(f"safe_private: {exc.message}") from None
            if len(steps) != 1 or steps[0].creator is None or steps[0].item is not None:
                raise DicomStudioError(f"safe_private: {text!r} is not one private element "
                                       f"written (gggg,\"CREATOR\",ee).")
            self.safe_private.add((steps[0].group, steps[0].creator, steps[0].element))

    def codes(self, pixels_cleaned=False):
        """``[(code, meaning)]`` for (0012,0064): the Basic Profile, then each option used."""
        codes = [deid_profile.BASIC_PROFILE]
        codes += [(code, meaning) for key, code, meaning in deid_profile.OPTIONS
                  if key in self.chosen]
        if pixels_cleaned:
            codes.append(deid_profile.CLEAN_PIXEL_DATA)
        return codes

    def masks_for(self, name):
        """The rectangles that apply to the file ``name`` (none without Clean Pixel Data)."""
        if not self.clean_pixel_data:
            return []
        return [m for m in self.pixel_masks if m["files"] is None or name in m["files"]]


def _whole_number(value, option, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise DicomStudioError(f"{option} must be a whole number of days, not {value!r}.")
    return int(value)


def _parse_mask(mask):
    try:
        rect = {k: int(mask[k]) for k in ("x", "y", "width", "height")}
        files = mask.get("files")
        rect["files"] = None if files is None else set(map(str, files))
    except (KeyError, TypeError, ValueError):
        raise DicomStudioError(f"a pixel mask is {{\"x\", \"y\", \"width\", \"height\"}} in pixels "
                               f"(and optionally \"files\"), not {mask!r}.") from None
    if rect["width"] <= 0 or rect["height"] <= 0 or rect["x"] < 0 or rect["y"] < 0:
        raise DicomStudioError(f"the pixel mask {mask!r} has no area inside the image.")
    return rect


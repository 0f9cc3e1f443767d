"""(0008,0005) *Specific Character Set*: the text of SH, LO, ST, LT, PN, UC and UT values ↔ bytes.

pydicom decodes every character set DICOM defines, and its tables say which Python codec and
which escape sequence each defined term stands for. Its encoder, though, writes text that strict
readers refuse under ISO 2022 code extensions: it tries value 1's codec first, and for value 1
``ISO 2022 IR 6`` that codec is Latin-1, so "Müller" lands as raw Latin-1 bytes in a
``\\ISO 2022 IR 87`` file whose only sets are ASCII and JIS X 0208. This module encodes as
PS3.5 6.1.2.5 describes: every character from a set that (0008,0005) declares, designated by its
escape sequence where it is not the one in force, and value 1's sets in force again before each
delimiter and at the end of the value. A character no declared set holds is refused with a
sentence that names it.
"""

import functools
import re
import warnings

from pydicom import config
from pydicom.charset import (ENCODINGS_TO_CODES, ESC, STAND_ALONE_ENCODINGS, convert_encodings,
                             custom_encoders, decode_bytes, python_encoding)

from dcmstudio.errors import EditError

# Characters before which value 1's character sets are in force again (PS3.5 6.1.2.5.3).
CONTROL_DELIMITERS = "\r\n\t\f"
PN_DELIMITERS = "^=" + CONTROL_DELIMITERS
MULTI_VALUE_DELIMITER = "\\"
# What to suggest when no declared set holds a character: it holds every character.
UNIVERSAL_TERM = "ISO_IR 192"
_ASCII_ESCAPE = ESC + b"(B"
_ROMAJI_ESCAPE = ESC + b"(J"  # JIS X 0201 Romaji in G0, the G0 of value 1 ISO 2022 IR 13
_KATAKANA_CODEC = "shift_jis"  # pydicom's codec for JIS X 0201 (ISO 2022 IR 13)


class _Graphic:
    """One graphic character set as ISO 2022 designates it: its escape, G0 or G1, its bytes.

    Parameters
    ----------
    term : str
        The (0008,0005) defined term that declares it.
    codec : str
        pydicom's Python codec for it.
    escape : bytes
        The escape sequence that designates it. Its intermediate bytes say where it goes:
        ``(`` a 94-set into G0, ``)`` a 94-set into G1, ``-`` a 96-set into G1, ``$`` a
        multi-byte set (into G0, or G1 with a further ``)``).
    """

    def __init__(self, term, codec, escape):
        self.term = term
        self.codec = codec
        self.escape = escape
        self.multibyte = escape[1:2] == b"$"
        intermediate = escape[2:3] if self.multibyte and len(escape) == 4 else escape[1:2]
        self.g1 = intermediate in (b")", b"-")

    def __repr__(self):
        return f"_Graphic({self.term!r}, {self.codec!r}, {self.escape!r})"

    def bytes_for(self, char):
        """The bytes of ``char`` in this set, or ``None`` when the set does not hold it."""
        return _bytes_in(self, char)


@functools.lru_cache(maxsize=8192)
def _bytes_in(graphic, char):
    try:
        if not graphic.g1 and not graphic.multibyte:
            # ASCII or JIS X 0201 Romaji: pydicom's decoders read both as ASCII
            return char.encode("ascii") if char.isascii() else None
        if not graphic.g1:
            # JIS X 0208 / 0212 in G0: pydicom's encoder gives the escape and then the bytes
            encoded = custom_encoders[graphic.codec](char)
            if encoded.startswith(graphic.escape) and len(encoded) == len(graphic.escape) + 2:
                return encoded[len(graphic.escape):]
            return None
        encoded = char.encode(graphic.codec)
    except (UnicodeError, LookupError):
        return None
    width = 2 if graphic.multibyte else 1
    if len(encoded) == width and all(byte >= 0xA0 for byte in encoded):
        return encoded  # the right half (GR), where G1 is invoked
    return None


_ASCII = _Graphic("ISO 2022 IR 6", "ascii", _ASCII_ESCAPE)


@functools.lru_cache(maxsize=64)
def _graphics_of(term):
    """The sets a defined term declares (two for ISO 2022 IR 13), or ``None`` if it is unknown."""
    codec = python_encoding.get(term)
    if codec is None:
        return None
    if codec == "iso8859":  # pydicom's name for the default repertoire
        return (_ASCII,)
    if codec == _KATAKANA_CODEC:
        return (_Graphic(term, codec, _ROMAJI_ESCAPE), _Graphic(term, codec, ENCODINGS_TO_CODES[codec]))
    escape = ENCODINGS_TO_CODES.get(codec)
    return None if escape is None else (_Graphic(term, codec, escape),)


def _corrected(term):
    """A term with the spelling mistakes pydicom also forgives corrected (``ISO IR 100``)."""
    term = term.strip()
    if re.match(r"^ISO[^_]IR", term):
        return "ISO_IR" + term[6:]
    if re.match(r"^(?=ISO.2022.IR.)(?!ISO 2022 IR )", term):
        return "ISO 2022 IR " + term[12:]
    return term


def is_defined_term(term):
    """Whether ``term`` is a (0008,0005) defined term (value 1 may also be empty)."""
    return term in python_encoding


class CharacterSet:
    """The character sets (0008,0005) declares, able to encode and decode text in them.

    Use :func:`character_set` (cached) rather than the constructor.

    Parameters
    ----------
    terms : tuple of str
        The element's values; ``()`` when the dataset has no (0008,0005).

    Attributes
    ----------
    terms : tuple of str
    codecs : tuple of str
        pydicom's Python codecs for the terms (what pydicom decodes with).
    unknown : tuple of str
        Terms that are not defined terms (nor a spelling pydicom corrects).
    """

    def __init__(self, terms):
        self.terms = tuple(terms)
        corrected = [_corrected(t) for t in self.terms] or [""]
        if not corrected[0]:
            corrected[0] = "ISO 2022 IR 6" if len(corrected) > 1 else "ISO_IR 6"
        self.unknown = tuple(t for t, c in zip(self.terms, corrected) if c and c not in python_encoding)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.codecs = tuple(convert_encodings(list(self.terms) or [""]))
            except LookupError:  # pydicom refuses unknown terms when reading strictly
                self.codecs = tuple(python_encoding.get(c, "iso8859") for c in corrected)
        first = python_encoding.get(corrected[0])
        # UTF-8, GB18030 and GBK stand alone: no code extensions (PS3.3 C.12.1.1.2)
        self.stand_alone = first if corrected[0] in STAND_ALONE_ENCODINGS else None
        initial = _graphics_of(corrected[0]) or (_ASCII,)
        if initial[-1].multibyte:
            initial = (_ASCII,)  # a multi-byte set is never in force without its escape
        self.initial_g0 = next((g for g in initial if not g.g1), _ASCII)
        self.initial_g1 = next((g for g in initial if g.g1), None)
        self.extensions = len(self.terms) > 1 or any(t.startswith("ISO 2022") for t in corrected)
        declared = [self.initial_g0] + ([self.initial_g1] if self.initial_g1 else [])
        if self.extensions:
            for term in corrected:
                declared += [g for g in _graphics_of(term) or () if g not in declared]
        self.declared = tuple(declared)

    def __repr__(self):
        return f"CharacterSet({self.terms!r})"

    def __eq__(self, other):
        return isinstance(other, CharacterSet) and other.terms == self.terms

    def __hash__(self):
        return hash(self.terms)

    def text(self):
        """How messages name it: ``\\ISO 2022 IR 87``, or a sentence when there is none."""
        if not self.terms:
            return "none (the dataset has no (0008,0005), so its text is ASCII only)"
        return "\\".join(self.terms)

    def encode(self, text, vr):
        """Encode one value of a text VR (several values are encoded one by one).

        Parameters
        ----------
        text : str
            One value: for PN with its ``^`` and ``=`` delimiters; for LT, ST and UT the whole
            text, CR and LF included.
        vr : str

        Returns
        -------
        bytes
            Ending in value 1's character sets (no padding).

        Raises
        ------
        EditError
            A character none of the declared sets holds (named, with what would hold it).
        """
        if "\x1b" in text:
            raise EditError(f"the value {_short(text)} holds the character ESC (U+001B), which "
                            f"only the escape sequences of a character set may hold.")
        if text.isascii() and self.initial_g0 is _ASCII:
            return text.encode("ascii")
        if self.stand_alone:
            try:
                return text.encode(self.stand_alone)
            except UnicodeEncodeError as exc:
                raise self._refusal(text, text[exc.start]) from None
        delimiters = PN_DELIMITERS if vr == "PN" else CONTROL_DELIMITERS
        out = bytearray()
        g0, g1 = self.initial_g0, self.initial_g1
        for char in text:
            if char in delimiters:
                out += self._back_to_initial(g0, g1)
                g0, g1 = self.initial_g0, self.initial_g1
                out += char.encode("ascii")
                continue
            encoded = g0.bytes_for(char)
            if encoded is None and g1 is not None:
                encoded = g1.bytes_for(char)
            if encoded is None:
                graphic = next((g for g in self.declared if g.bytes_for(char) is not None), None)
                if graphic is None:
                    raise self._refusal(text, char)
                out += graphic.escape
                if graphic.g1:
                    g1 = graphic
                else:
                    g0 = graphic
                encoded = graphic.bytes_for(char)
            out += encoded
        out += self._back_to_initial(g0, g1)
        return bytes(out)

    def _back_to_initial(self, g0, g1):
        escapes = b""
        if g0 is not self.initial_g0:
            escapes += self.initial_g0.escape
        if g1 is not self.initial_g1 and self.initial_g1 is not None:
            escapes += self.initial_g1.escape
        return escapes

    def _refusal(self, text, char):
        where = f"the character {char!r} (U+{ord(char):04X}) of {_short(text)}"
        if self.unknown:
            return EditError(f"{where} cannot be encoded: (0008,0005) Specific Character Set holds "
                             f"{', '.join(repr(t) for t in self.unknown)}, which is not a defined term "
                             f"(PS3.3 C.12.1.1.2), so only ASCII text can be written; correct it "
                             f"first, e.g. to {UNIVERSAL_TERM} (UTF-8).")
        if not self.terms:
            return EditError(f"{where} does not fit: the dataset has no (0008,0005) Specific "
                             f"Character Set, so its text is ASCII only; add one first, e.g. "
                             f"{UNIVERSAL_TERM} (UTF-8).")
        holders = [t for t in _extension_terms() if any(g.bytes_for(char) for g in _graphics_of(t))]
        if self.extensions and holders:
            advice = (f"add {holders[0]} to it as a code extension, or set {UNIVERSAL_TERM} "
                      f"(UTF-8) instead")
        else:
            advice = f"set one that holds it first, e.g. {UNIVERSAL_TERM} (UTF-8)"
        return EditError(f"{where} is in none of the character sets (0008,0005) Specific Character "
                         f"Set declares ({self.text()}): {advice}.")

    def repertoire_problems(self, raw, vr):
        """Where an encoded value leaves the character sets (0008,0005) declares.

        Under code extensions (ISO 2022) the value is read as PS3.5 6.1.2.5 has it written: each
        escape sequence must designate a declared set, each byte (or byte pair, for the multi-byte
        sets ISO 2022 IR 87, 159, 149 and 58) must be a character of the set in force for its half
        (G0 for 0x21-0x7E, G1 for 0xA0-0xFF), and value 1's sets must be in force again before each
        delimiter (``\\``, CR, LF, FF, TAB, and ``^`` and ``=`` in PN). Stand-alone sets (UTF-8,
        GB18030, GBK) and single sets are decoded strictly with their codec.

        Parameters
        ----------
        raw : bytes
            The value, padding removed, several values with their backslashes.
        vr : str

        Returns
        -------
        list of tuple
            ``[("error" or "warning", sentence)]``, the first problem of each kind only; empty
            when the value is text in the declared sets.
        """
        if self.unknown:
            return []  # the terms themselves are reported; what they mean is not known
        if not self.extensions:
            if ESC in raw:
                return [("error", f"the value holds an escape sequence (ESC) at byte {raw.index(ESC)}, but "
                                  f"(0008,0005) {self.text()} declares no code extensions (ISO 2022 terms)")]
            codec = self.stand_alone or self.codecs[0]
            codec = "ascii" if codec == "iso8859" else codec  # pydicom's name for ISO_IR 6 decodes Latin-1
            control = None if self.stand_alone else _C1_CONTROL.search(raw)
            if control is not None:  # Python's ISO 8859 codecs decode them; no DICOM set holds them
                return [("error", f"byte 0x{control.group()[0]:02X} at {control.start()} is a C1 control "
                                  f"character, which {self.terms[0]}, the character set (0008,0005) declares, "
                                  f"does not hold")]
            try:
                raw.decode(codec)
            except UnicodeDecodeError as exc:
                return [("error", f"byte 0x{raw[exc.start]:02X} at {exc.start} is not text in {self.terms[0]}, "
                                  f"the character set (0008,0005) declares")]
            except LookupError:
                return []
            return []
        return _iso2022_read(self, bytes(raw), vr)[0]

    def characters(self, raw, vr):
        """How many characters an encoded value holds (escape sequences count for nothing, a
        multi-byte character for one), as PS3.5's length limits count them."""
        if self.extensions and not self.unknown:
            return _iso2022_read(self, bytes(raw), vr)[1]
        codec = self.stand_alone or self.codecs[0]
        try:
            return len(raw.decode("latin-1" if codec == "iso8859" else codec))
        except (UnicodeError, LookupError):
            return len(raw)

    def decode(self, raw, vr):
        """Decode one element's whole value as pydicom reads it, raising where pydicom would guess.

        Parameters
        ----------
        raw : bytes
            The value, several values with their backslashes, padding included.
        vr : str

        Returns
        -------
        str
            Trailing padding removed.

        Raises
        ------
        UnicodeError, ValueError, LookupError
            The bytes are not text in these character sets.
        """
        delimiters = set((PN_DELIMITERS if vr == "PN" else CONTROL_DELIMITERS).encode("ascii"))
        delimiters.add(ord(MULTI_VALUE_DELIMITER))
        saved = config.settings.reading_validation_mode
        config.settings.reading_validation_mode = config.RAISE
        try:
            return decode_bytes(bytes(raw), list(self.codecs), delimiters).rstrip(" \x00")
        finally:
            config.settings.reading_validation_mode = saved


_C1_CONTROL = re.compile(rb"[\x80-\x9f]")


# What designates each set in ISO 2022, whether (0008,0005) declares it or not: to name an
# escape sequence that designates an undeclared set.
@functools.lru_cache(maxsize=1)
def _all_escapes():
    escapes = {}
    for term in _extension_terms() + ("ISO 2022 IR 6",):
        for graphic in _graphics_of(term) or ():
            escapes.setdefault(graphic.escape, term)
    return escapes


def _iso2022_read(charset, raw, vr):
    """Read a value under code extensions byte by byte, with the sets in force, as a strict ISO
    2022 decoder does: ``(problems as for CharacterSet.repertoire_problems, characters)``."""
    problems = {}
    characters = 0
    declared = {g.escape: g for g in charset.declared}
    delimiters = set(b"\r\n\t\f") | (set() if vr in ("LT", "ST", "UT") else {0x5C}) \
        | ({0x5E, 0x3D} if vr == "PN" else set())
    initial = (charset.initial_g0, charset.initial_g1)
    g0, g1 = initial
    at, end = 0, len(raw)
    while at < end and len(problems) < 3:
        byte = raw[at]
        if byte == 0x1B:
            escape = next((e for e in sorted(declared, key=len, reverse=True) if raw.startswith(e, at)), None)
            if escape is None and raw.startswith(_ASCII_ESCAPE, at) and charset.initial_g0.escape == _ROMAJI_ESCAPE:
                # ASCII where value 1 (ISO 2022 IR 13) has JIS X 0201 Romaji: they differ in two
                # characters, and Japanese files commonly return to ASCII; PS3.5 H.3.2 writes ESC ( J.
                problems.setdefault("romaji", (
                    f"the escape sequence ESC ( B at byte {at} returns to ASCII, which (0008,0005) "
                    f"{charset.text()} does not declare; with ISO 2022 IR 13 as value 1, ESC ( J returns "
                    f"to JIS X 0201 Romaji (PS3.5 H.3.2)"))
                g0 = charset.initial_g0
                at += len(_ASCII_ESCAPE)
                continue
            if escape is None:
                known = next((e for e in _all_escapes() if raw.startswith(e, at)), None)
                problems.setdefault("escape", (
                    f"the escape sequence {_escape_text(raw[at:at + (len(known) if known else 4)])} at byte "
                    f"{at} designates " + (f"{_all_escapes()[known]}, which (0008,0005) {charset.text()} "
                                           "does not declare" if known else "no character set DICOM defines")))
                break  # what follows cannot be read
            graphic = declared[escape]
            g0, g1 = (g0, graphic) if graphic.g1 else (graphic, g1)
            at += len(escape)
            continue
        if byte < 0x20 or (byte in delimiters and not g0.multibyte):
            # Delimiters are G0 characters (in a multi-byte G0 set, ^ = and \\ are halves of its
            # characters): value 1's G0 set must be in force before them (a G1 set may stay
            # designated: PS3.5 I.2 writes Korean names so).
            if g0 is not initial[0] and byte in delimiters:
                problems.setdefault("reset", _not_reset(f"the delimiter {chr(byte)!r} at byte {at}"))
            if byte in delimiters:
                g0, g1 = initial
            at += 1
            characters += 1
            continue
        characters += 1
        if byte == 0x20 or byte == 0x7F:
            at += 1
            continue
        graphic = g0 if byte < 0x80 else g1
        width = 2 if graphic is not None and graphic.multibyte else 1
        chunk = raw[at:at + width]
        if 0x80 <= byte < 0xA0:
            problems.setdefault("byte", f"byte 0x{byte:02X} at {at} is a C1 control character, which no "
                                        f"character set DICOM defines holds")
        elif graphic is None:
            problems.setdefault("byte", f"byte 0x{byte:02X} at {at} is in the right half (0xA0-0xFF), but "
                                        f"(0008,0005) {charset.text()} puts no character set there")
        elif len(chunk) < width or chunk[-1] < 0x20 or (chunk[-1] >= 0x80) != (byte >= 0x80):
            problems.setdefault("byte", f"the two-byte character of {graphic.term} at byte {at} is cut short")
        elif not _holds(graphic, chunk):
            problems.setdefault("byte", f"{'bytes' if len(chunk) > 1 else 'byte'} {chunk.hex(' ').upper()} at "
                                        f"{at} {'are' if len(chunk) > 1 else 'is'} not a character of "
                                        f"{graphic.term}, the character set in force there")
        else:
            at += width
            continue
        at += 1
    if g0 is not initial[0] and at >= end:
        problems.setdefault("reset", _not_reset("the end of the value"))
    return [("warning" if kind in ("reset", "romaji") else "error", message)
            for kind, message in problems.items()], characters


def _not_reset(where):
    return (f"before {where}, the character set of (0008,0005)'s value 1 is not in force again "
            f"(PS3.5 6.1.2.5.3): an escape sequence back to it is missing")


@functools.lru_cache(maxsize=16384)
def _holds(graphic, chunk):
    """Whether ``chunk`` (one or two bytes) is one character of ``graphic``."""
    if graphic.multibyte and len(chunk) != 2:
        return False
    if not graphic.g1:
        if not graphic.multibyte:
            return all(0x21 <= b <= 0x7E for b in chunk)
        chunk = graphic.escape + chunk  # iso2022_jp(_2) decode the designation itself
    try:
        return len(chunk.decode(graphic.codec)) == 1
    except (UnicodeDecodeError, LookupError):
        return False


def _escape_text(escape):
    return "ESC " + " ".join(chr(b) if 0x20 < b < 0x7F else f"0x{b:02X}" for b in escape[1:])


@functools.lru_cache(maxsize=1)
def _extension_terms():
    """The defined terms that can be code extensions, in the order PS3.3 Table C.12-3/4 lists them."""
    return tuple(t for t in python_encoding if t.startswith("ISO 2022 IR ") and t != "ISO 2022 IR 6")


@functools.lru_cache(maxsize=256)
def character_set(terms):
    """The :class:`CharacterSet` for the values of (0008,0005) (``()`` or ``None`` when absent).

    An empty (0008,0005) is the default repertoire, as an absent one is.
    """
    terms = tuple(terms or ())
    return CharacterSet(terms if any(terms) else ())


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""Small pure text rules: the ✔/✖ name prefix, audit lines, company-name normalisation."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

CHECK = "✔"
CROSS = "✖"
_MARKS = ("✔", "✓", "✖", "✗", "✘")

# Legal-form words dropped when comparing company names ("Contoso, Inc." == "Contoso Inc").
_LEGAL_FORMS = frozenset(
    {
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "llc",
        "ltd",
        "limited",
        "plc",
        "gmbh",
        "ag",
        "sa",
        "sas",
        "sarl",
        "bv",
        "nv",
        "oy",
        "ab",
        "as",
        "spa",
        "srl",
        "pty",
        "kk",
        "llp",
        "lp",
    }
)


def strip_mark(name: str) -> str:
    """Remove any sync mark we (or the Power Automate connector) put in front of a name."""
    text = name.lstrip()
    while text[:1] in _MARKS:
        text = text[1:].lstrip()
    return text


def with_mark(name: str, mark: str, enabled: bool, limit: int | None = None) -> str:
    """``✔ name`` / ``✖ name``; never doubled, and removed again when marks are turned off.

    With ``limit`` (the name column's size) the name is cut so that the mark still fits.
    """
    bare = strip_mark(name)
    if not enabled:
        return bare[:limit] if limit else bare
    room = limit - 2 if limit else None
    return f"{mark} {bare[:room] if room is not None else bare}"


def audit_line(when: dt.datetime, message: str) -> str:
    """``yyyy-MM-dd HH:mm - message`` in UTC, the connector's documented format."""
    stamp = when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    return f"{stamp} - {' '.join(message.split())}"


def prepend_audit(existing: str | None, line: str, max_chars: int) -> str:
    """Newest first; whole lines are dropped from the end to fit the field."""
    lines = [line, *[entry for entry in (existing or "").splitlines() if entry.strip()]]
    kept: list[str] = []
    size = 0
    for entry in lines:
        extra = len(entry) + (1 if kept else 0)
        if size + extra > max_chars:
            break
        kept.append(entry)
        size += extra
    if not kept:
        return line[:max_chars]
    return "\n".join(kept)


# Marks are dropped only on letters of the alphabetic scripts below U+0800 (Latin, Greek, Cyrillic,
# Armenian, Hebrew, Arabic...), where accents, niqqud and harakat are optional in writing. Further
# on (Devanagari and the other Indic scripts, Thai...) a mark is often a vowel of its own: kept.
_OPTIONAL_MARKS_BELOW = 0x0800


def normalise_company(name: str | None) -> str:
    """Case-, accent-, punctuation- and legal-form-insensitive key for account matching.

    Letters of every script count (a Hebrew, Arabic or CJK name is not an empty key); a name made
    only of a legal form ("AB", "Oy") keeps it; a name with no letters or digits at all (emoji)
    keeps its characters. The key is empty only for an empty name, and an empty key matches nothing.
    """
    if not name or not name.strip():
        return ""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = _drop_optional_marks(text).replace("&", " and ").replace(".", "")
    words = re.findall(r"[^\W_]+", text)
    if not words:
        return " ".join(text.split())
    trimmed = list(words)
    while trimmed and trimmed[-1] in _LEGAL_FORMS:
        trimmed.pop()
    return " ".join(trimmed or words)


def _drop_optional_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    kept: list[str] = []
    base = 0
    for ch in decomposed:
        if unicodedata.category(ch) == "Mn" and base < _OPTIONAL_MARKS_BELOW:
            continue
        if not unicodedata.combining(ch):
            base = ord(ch)
        kept.append(ch)
    return unicodedata.normalize("NFC", "".join(kept))


def normalise_postal_code(value: str | None) -> str:
    return re.sub(r"[\s-]", "", value or "").upper()

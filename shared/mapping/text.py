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


def with_mark(name: str, mark: str, enabled: bool) -> str:
    """``✔ name`` / ``✖ name``; never doubled, and removed again when marks are turned off."""
    bare = strip_mark(name)
    return f"{mark} {bare}" if enabled else bare


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


def normalise_company(name: str | None) -> str:
    """Case-, accent-, punctuation- and legal-form-insensitive key for account matching."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = text.replace("&", " and ").replace(".", "")
    words = re.findall(r"[0-9a-z]+", text)
    while words and words[-1] in _LEGAL_FORMS:
        words.pop()
    return " ".join(words)


def normalise_postal_code(value: str | None) -> str:
    return re.sub(r"[\s-]", "", value or "").upper()

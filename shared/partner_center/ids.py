"""Referral ids: Partner Center's are GUIDs (referral resources: ``id`` string (GUID)).

Anything else that claims to be one (a ResourceUri ending in ``..``, ``%2F``, quotes, control
characters; a value a seller typed into the CRM) is refused before it reaches a URL, a storage key
or a log line.
"""

from __future__ import annotations

import re

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_referral_id(value: object) -> bool:
    return isinstance(value, str) and _GUID.fullmatch(value) is not None


def shown(value: object, limit: int = 80) -> str:
    """An untrusted value made safe for one log line: escaped (no forged newlines) and cut short."""
    text = str(value)
    cut = text[:limit]
    escaped = cut.encode("unicode_escape").decode("ascii")
    return escaped + ("…" if len(text) > limit else "")

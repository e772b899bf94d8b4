"""Record ids: 15-character case-sensitive ids, their 18-character case-safe form, and key prefixes.

An id is a 3-character key prefix naming the object (Account ``001``, Contact ``003``, Opportunity ``006``,
Lead ``00Q``, User ``005``, OpportunityContactRole ``00K``; custom objects get an ``a0…`` prefix), then
12 characters identifying the record. The API answers with the 18-character form, whose last 3
characters encode which of the first 15 are upper case, and accepts either form ("ID Field Type",
Object Reference: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/field_types.htm#i1435616).

The simulator is stricter than a lenient reading: an 18-character id whose suffix does not match its
first 15 characters (an id whose case was changed, say by lower-casing it) is malformed, because the
first 15 characters of an id are case-sensitive and such an id names another record or none.
"""

from __future__ import annotations

import random
import re

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_RE = re.compile(r"[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?")

ORG_PREFIX = "00D"
QUERY_LOCATOR_PREFIX = "01g"  # the query locator in nextRecordsUrl (resources-query-more-results.md example)


def checksum(id15: str) -> str:
    """The 3-character case-safe suffix: one character per 5-character chunk, bit i set when char i is A-Z."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _SUFFIX_ALPHABET[bits]
    return suffix


def to18(id15: str) -> str:
    return id15 + checksum(id15)


def normalise(value: object) -> str | None:
    """The canonical 18-character form of a 15- or 18-character id, or ``None`` if it is not a valid id."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        return None
    head = value[:15]
    if len(value) == 18 and value[15:] != checksum(head):
        return None
    return to18(head)


def prefix_of(record_id: str) -> str:
    return record_id[:3]


class IdFactory:
    """Deterministic ids per seed: ``<prefix><pod 2><0><9 base-62 digits>``, like ``0065g00000AbCdE``.

    Record numbers grow with every record of an object, as the service's do, so ``ORDER BY Id`` is
    creation order (the recommended poll orders by ``SystemModstamp, Id``); each object starts at a
    seeded offset and steps by a small seeded amount, so ids are not guessable from one another."""

    def __init__(self, seed: int = 0, pod: str = "8d") -> None:
        self._rng = random.Random(seed)
        self._pod = pod
        self._next: dict[str, int] = {}

    def new(self, prefix: str) -> str:
        number = self._next.get(prefix)
        if number is None:
            number = self._rng.randrange(62**6, 62**7)
        number += self._rng.randint(1, 7)
        self._next[prefix] = number
        digits = ""
        for _ in range(9):
            number, rest = divmod(number, 62)
            digits = _BASE62[rest] + digits
        return to18(f"{prefix}{self._pod}0{digits}")

"""Table Storage keys derived safely from any input.

PartitionKey and RowKey may not contain ``/ \\ # ?`` or control characters and are limited to
1 KiB (Azure Table service data model). Ids come from Partner Center and from whatever a seller
typed into the CRM, so a key is the value itself only when it is plainly safe, else a digest of it:
one odd record can no longer make a poll's storage calls fail.
"""

from __future__ import annotations

import hashlib
import re

_PLAIN = re.compile(r"[A-Za-z0-9_.:@=+-]{1,200}")


def table_key(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value
    return "h-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()

"""Query batches and query locators: ``nextRecordsUrl`` and the ``Sforce-Query-Options`` batch size.

A query answers at most one batch; when more remain, ``done`` is false and ``nextRecordsUrl`` is
``/services/data/vXX.X/query/01g…-<position>``, fetched with a plain GET ("Execute a SOQL Query" and
"Retrieve the Remaining SOQL Query Results", resources-query.md / resources-query-more-results.md).
The batch is 2,000 records by default; ``Sforce-Query-Options: batchSize=N`` asks for 200 to 2,000
("The default is 2,000; the minimum is 200, and the maximum is 2,000", headers-queryoptions.html):
requests outside that range are clamped into it. A locator keeps the result set the query saw (later
writes do not shift its pages) and is forgotten after ``ttl`` seconds of disuse, after which the
service answers INVALID_QUERY_LOCATOR (the StatusCode list; locators time out after 15 minutes idle).
"""

from __future__ import annotations

import random
import re
import string
import threading
import time
from dataclasses import dataclass

from sandbox.sims.salesforce.errors import SalesforceError
from sandbox.sims.salesforce.ids import QUERY_LOCATOR_PREFIX
from sandbox.sims.salesforce.wire import Record

DEFAULT_BATCH = 2000
MIN_BATCH, MAX_BATCH = 200, 2000
_BATCH_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)
_LOCATOR_RE = re.compile(r"(01g[A-Za-z0-9]{15})-(\d+)")


def batch_size(header: str | None, default: int = DEFAULT_BATCH) -> int:
    match = _BATCH_RE.search(header or "")
    if not match:
        return default
    return max(MIN_BATCH, min(MAX_BATCH, int(match.group(1))))


@dataclass
class _Cursor:
    records: list[Record]
    batch: int
    used: float


class Locators:
    def __init__(self, *, seed: int = 0, ttl: float = 15 * 60) -> None:
        self.ttl = ttl
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._cursors: dict[str, _Cursor] = {}

    def first(self, records: list[Record], total: int, batch: int, version: str, resource: str) -> Record:
        """The first batch; registers a locator when there is more."""
        if len(records) <= batch:
            return {"totalSize": total, "done": True, "records": records}
        with self._lock:
            locator = QUERY_LOCATOR_PREFIX + "".join(
                self._rng.choice(string.ascii_letters + string.digits) for _ in range(15)
            )
            self._cursors[locator] = _Cursor(records, batch, time.monotonic())
        return self._page(locator, self._cursors[locator], 0, total, version, resource)

    def more(self, token: str, version: str, resource: str) -> Record:
        match = _LOCATOR_RE.fullmatch(token)
        with self._lock:
            self._expire()
            cursor = self._cursors.get(match.group(1)) if match else None
            if cursor is None or match is None or int(match.group(2)) > len(cursor.records):
                raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            cursor.used = time.monotonic()
            return self._page(match.group(1), cursor, int(match.group(2)), len(cursor.records), version, resource)

    def clear(self) -> None:
        with self._lock:
            self._cursors.clear()

    def _page(self, locator: str, cursor: _Cursor, start: int, total: int, version: str, resource: str) -> Record:
        end = start + cursor.batch
        body: Record = {"totalSize": total, "done": end >= len(cursor.records), "records": cursor.records[start:end]}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/v{version}/{resource}/{locator}-{end}"
        return body

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, c in self._cursors.items() if now - c.used > self.ttl]:
            del self._cursors[key]

"""Syncs per hour, direction and outcome, kept as they happen so the status route never reads ``AuditLog``.

Each process counts its own syncs for the hour in memory and writes them to a row of its own in table
``Operations`` (PartitionKey ``syncs``, RowKey ``<yyyy-mm-ddThh>_<direction>_<writer>``), replacing it
with the cumulative counts. One writer per row: no ETag, no read-modify-write, nothing for eight
concurrent workers or a second instance to contend on. At most one write per sync: syncs that end
while a write is in flight are folded into the next one. The status route reads the last 24 hours
with one RowKey-range query of one partition: 24 x 2 x (processes that synced) rows at most, however
large the audit log grows. Rows of earlier hours are never read again (a few hundred bytes each).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from azure.data.tables import TableClient, UpdateMode

log = logging.getLogger("cosell.store.counters")

COUNTERS_PARTITION = "syncs"
DIRECTIONS = ("pc-to-crm", "crm-to-pc")
OUTCOMES = ("created", "updated", "unchanged", "skipped", "failed", "rejected", "retry", "throttled")
HOURS = 24
# How the dashboard's chart groups outcomes; retries and throttled polls are attempts, not results.
CHART_GROUPS = {
    "synced": ("created", "updated"),
    "unchanged": ("unchanged", "skipped"),
    "failed": ("failed", "rejected"),
}


def hour_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _hour_key(hour: dt.datetime) -> str:
    return hour.strftime("%Y-%m-%dT%H")


class SyncCounters:
    """The writing side: one instance per process (``shared.services``), shared by its worker threads."""

    def __init__(self, table: TableClient, *, writer: str | None = None) -> None:
        self._table = table
        self._writer = writer or uuid.uuid4().hex[:12]  # per process: a restart must not overwrite its old rows
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], Counter[str]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._writing = False
        self._warned = False

    def add(self, direction: str, outcome: str, when: dt.datetime) -> None:
        """Count one sync, then write its row unless another thread is writing (it then writes this too)."""
        key = (_hour_key(hour_of(when)), direction)
        with self._lock:
            self._counts.setdefault(key, Counter())[outcome] += 1
            self._dirty.add(key)
            if self._writing:
                return
            self._writing = True
        self._flush()

    def _flush(self) -> None:
        while True:
            with self._lock:
                if not self._dirty:
                    self._writing = False
                    self._forget_written_hours()
                    return
                key = min(self._dirty)
                self._dirty.discard(key)
                counts = dict(self._counts[key])
            try:
                self._table.upsert_entity(self._row(key, counts), mode=UpdateMode.REPLACE)
            except Exception as exc:  # the sync itself succeeded: keep the counts and write them with the next one
                with self._lock:
                    self._dirty.add(key)
                    self._writing = False
                    warned, self._warned = self._warned, True
                if not warned:
                    log.warning("Sync counters not written (%s); retried with the next sync", type(exc).__name__)
                return
            except BaseException:  # interrupted: the next sync writes again
                with self._lock:
                    self._dirty.add(key)
                    self._writing = False
                raise

    def _row(self, key: tuple[str, str], counts: dict[str, int]) -> dict[str, Any]:
        hour, direction = key
        return {
            "PartitionKey": COUNTERS_PARTITION,
            "RowKey": f"{hour}_{direction}_{self._writer}",
            "hour": hour,
            "direction": direction,
            "writer": self._writer,
            **{outcome: int(n) for outcome, n in counts.items() if outcome.isidentifier()},
        }

    def _forget_written_hours(self) -> None:
        """Keep the current and the previous hour only; older ones are written and final."""
        if len(self._counts) <= 2 * len(DIRECTIONS):
            return
        keep = sorted({hour for hour, _ in self._counts})[-2:]
        for key in [k for k in self._counts if k[0] not in keep and k not in self._dirty]:
            del self._counts[key]


@dataclass
class Last24Hours:
    by_direction: dict[str, dict[str, int]]
    hourly: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"byDirection": self.by_direction, "hourly": self.hourly}

    def total(self, *outcomes: str, direction: str | None = None) -> int:
        directions = [direction] if direction else list(self.by_direction)
        return sum(self.by_direction.get(d, {}).get(o, 0) for d in directions for o in outcomes)


def last_24_hours(table: TableClient, now: dt.datetime) -> Last24Hours:
    """The 24 hours ending with the current one, oldest first: one query of one partition's RowKey range."""
    current = hour_of(now)
    hours = [current - dt.timedelta(hours=n) for n in range(HOURS - 1, -1, -1)]
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
        parameters={
            "pk": COUNTERS_PARTITION,
            "lo": _hour_key(hours[0]),
            "hi": _hour_key(current + dt.timedelta(hours=1)),
        },
    )
    by_direction = {d: dict.fromkeys(OUTCOMES, 0) for d in DIRECTIONS}
    per_hour: dict[str, Counter[str]] = {_hour_key(h): Counter() for h in hours}
    for row in rows:
        direction, hour = str(row.get("direction", "")), str(row.get("hour", ""))
        totals = by_direction.setdefault(direction, dict.fromkeys(OUTCOMES, 0))
        for outcome in OUTCOMES:
            n = int(row.get(outcome, 0) or 0)
            totals[outcome] += n
            if hour in per_hour:
                per_hour[hour][outcome] += n
    hourly = [
        {
            "hour": h.isoformat(),
            **{group: sum(per_hour[_hour_key(h)][o] for o in outcomes) for group, outcomes in CHART_GROUPS.items()},
        }
        for h in hours
    ]
    return Last24Hours(by_direction, hourly)

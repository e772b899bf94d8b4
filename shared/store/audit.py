"""Append-only audit log in Table Storage: the full history behind the CRM's short audit field.

PartitionKey is the referral id (or ``crm_<id>`` before a referral exists) so one query returns a
referral's history; RowKey is inverted ticks, so that history comes back newest first.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from azure.data.tables import TableClient

from shared.store.counters import SyncCounters
from shared.store.keys import table_key

_MAX_TICKS = 10**19


@dataclass
class AuditEntry:
    direction: str  # "pc-to-crm" | "crm-to-pc"
    referral_id: str
    crm_id: str
    outcome: str  # created | updated | unchanged | skipped | failed | rejected | retry | throttled
    message: str
    api_calls: int = 0
    api_calls_by_service: dict[str, int] = field(default_factory=dict)
    writes_by_service: dict[str, int] = field(default_factory=dict)
    source: str = ""
    time: str = ""
    # False for the same failure again (the host retrying a message for one cause): kept in the
    # history, not counted again in the 24-hour counters.
    counted: bool = True


class AuditLog:
    """Every sync of both directions passes here, so this is also where the 24-hour counters are kept."""

    def __init__(self, table: TableClient, counters: SyncCounters | None = None) -> None:
        self._table = table
        self._counters = counters

    def append(self, entry: AuditEntry, *, now: dt.datetime | None = None) -> AuditEntry:
        when = now or dt.datetime.now(dt.UTC)
        entry.time = when.isoformat()
        ticks = int(when.timestamp() * 1_000_000)
        self._table.create_entity(
            {
                "PartitionKey": table_key(entry.referral_id or f"crm_{entry.crm_id}"),
                "RowKey": f"{_MAX_TICKS - ticks:019d}_{uuid.uuid4().hex[:8]}",
                "time": entry.time,
                "direction": entry.direction,
                "referral_id": entry.referral_id,
                "crm_id": entry.crm_id,
                "outcome": entry.outcome,
                "message": entry.message[:4000],
                "api_calls": entry.api_calls,
                "api_calls_by_service": json.dumps(entry.api_calls_by_service, sort_keys=True),
                "writes_by_service": json.dumps(entry.writes_by_service, sort_keys=True),
                "source": entry.source,
            }
        )
        if self._counters is not None and entry.counted:
            self._counters.add(entry.direction, entry.outcome, when)
        return entry

    def history(self, referral_id: str, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""
        rows = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": table_key(referral_id)}, results_per_page=limit
        )
        entries: list[AuditEntry] = []
        for row in rows:
            entries.append(_entry(row))
            if len(entries) >= limit:
                break
        return entries


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        direction=row.get("direction", ""),
        referral_id=row.get("referral_id", ""),
        crm_id=row.get("crm_id", ""),
        outcome=row.get("outcome", ""),
        message=row.get("message", ""),
        api_calls=int(row.get("api_calls", 0) or 0),
        api_calls_by_service=json.loads(row.get("api_calls_by_service") or "{}"),
        writes_by_service=json.loads(row.get("writes_by_service") or "{}"),
        source=row.get("source", ""),
        time=row.get("time", ""),
    )

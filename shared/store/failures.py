"""The last syncs that gave up, for ``GET /api/manage/status``: a small rolling partition of ``Operations``.

Written when a referral's message is on its last attempt and fails (it is about to move to the
poison queue). RowKeys are inverted ticks, so one query returns the newest first; every write trims
the partition back to :data:`KEEP` rows, one per referral, so a read is always one small page. A referral that syncs
again after failing (a resync, a replay, a fix that needed no replay) is resolved: its rows go, so
the list is what still needs an operator.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

FAILURES_PARTITION = "failures"
KEEP = 20
MAX_REASON = 500
_MAX_TICKS = 10**19


@dataclass
class Failure:
    referral_id: str
    reason: str
    at: str
    source: str = ""
    backfill_job: str = ""
    crm_kind: str = ""  # the CRM the app used then: "dynamics" | "salesforce"
    crm_entity: str = ""  # "opportunity" | "lead", when the referral had a CRM record
    crm_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "referralId": self.referral_id,
            "reason": self.reason,
            "at": self.at,
            "source": self.source,
            "backfillJob": self.backfill_job or None,
            "crmKind": self.crm_kind or None,
            "crmEntity": self.crm_entity or None,
            "crmId": self.crm_id or None,
        }


class RecentFailures:
    def __init__(self, table: TableClient, *, keep: int = KEEP) -> None:
        self._table = table
        self._keep = keep

    def record(
        self,
        referral_id: str,
        reason: str,
        *,
        source: str = "",
        backfill_job: str = "",
        crm_kind: str = "",
        crm_entity: str = "",
        crm_id: str = "",
        now: dt.datetime | None = None,
    ) -> Failure:
        when = now or dt.datetime.now(dt.UTC)
        failure = Failure(
            referral_id, reason[:MAX_REASON], when.isoformat(), source, backfill_job or "", crm_kind, crm_entity, crm_id
        )
        ticks = int(when.timestamp() * 1_000_000)
        self._table.create_entity(
            {
                "PartitionKey": FAILURES_PARTITION,
                "RowKey": f"{_MAX_TICKS - ticks:019d}_{uuid.uuid4().hex[:8]}",
                **asdict(failure),
            }
        )
        self._trim()
        return failure

    def recent(self, limit: int = KEEP) -> list[Failure]:
        """Newest first; one page of one partition."""
        rows = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": FAILURES_PARTITION}, results_per_page=limit
        )
        found: list[Failure] = []
        for row in rows:
            found.append(
                Failure(
                    referral_id=row.get("referral_id", ""),
                    reason=row.get("reason", ""),
                    at=row.get("at", ""),
                    source=row.get("source", ""),
                    backfill_job=row.get("backfill_job", ""),
                    crm_kind=row.get("crm_kind", ""),
                    crm_entity=row.get("crm_entity", ""),
                    crm_id=row.get("crm_id", ""),
                )
            )
            if len(found) >= limit:
                break
        return found

    def resolve(self, referral_id: str) -> int:
        """The referral synced again: drop its rows. One small query, and a delete per row found."""
        rows = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": FAILURES_PARTITION}, select=["RowKey", "referral_id"]
        )
        resolved = 0
        for row in rows:
            if row.get("referral_id") == referral_id:
                with contextlib.suppress(ResourceNotFoundError):  # resolved by a concurrent sync
                    self._table.delete_entity(FAILURES_PARTITION, row["RowKey"])
                resolved += 1
        return resolved

    def _trim(self) -> None:
        """Newest first: keep one row per referral (its latest failure), and :attr:`_keep` rows at most.

        A referral fails again when the reconcile (or a new event) queues it before its cause is fixed;
        the list is of referrals that need an operator, so only the newest reason stays.
        """
        rows = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": FAILURES_PARTITION}, select=["RowKey", "referral_id"]
        )
        seen: set[str] = set()
        for row in rows:
            referral = str(row.get("referral_id", ""))
            if len(seen) >= self._keep or referral in seen:
                with contextlib.suppress(ResourceNotFoundError):  # trimmed by a concurrent writer
                    self._table.delete_entity(FAILURES_PARTITION, row["RowKey"])
            else:
                seen.add(referral)

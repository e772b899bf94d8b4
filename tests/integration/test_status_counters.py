"""The 24-hour counters, the recent failures' links and resolution, on Azurite.

What matters: counts are exact under concurrent workers and across processes, a sync costs at most
one storage write, the reader takes only the last 24 hours however many rows exist, and a failure
that heals leaves the list.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.data.tables import TableClient

from sandbox.azurite import Azurite
from shared.config import Settings
from shared.store.audit import AuditEntry, AuditLog
from shared.store.clients import table_client
from shared.store.counters import SyncCounters, last_24_hours
from shared.store.failures import RecentFailures
from shared.sync.inbound import PermanentSyncError, SyncOutcome
from shared.sync.worker import ReferralWorker

NOW = dt.datetime(2026, 11, 21, 10, 30, tzinfo=dt.UTC)


class CountingTable:
    """A real TableClient that counts the writes made through it and can fail the next ones."""

    def __init__(self, table: TableClient) -> None:
        self.table = table
        self.upserts = 0
        self.fail_next = 0
        self._lock = threading.Lock()

    def upsert_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise ServiceRequestError("storage unreachable")
            self.upserts += 1
        return self.table.upsert_entity(entity, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


@pytest.fixture
def table(azurite: Azurite) -> TableClient:
    return table_client(Settings(AzureWebJobsStorage=azurite.connection_string), f"Ops{uuid.uuid4().hex[:12]}")


def test_eight_concurrent_workers_count_exactly_with_at_most_one_write_per_sync(table: TableClient) -> None:
    counting = CountingTable(table)
    counters = SyncCounters(counting)  # type: ignore[arg-type]
    outcomes = ["created", "updated", "unchanged", "failed", "skipped"]

    def worker(n: int) -> None:
        for i in range(25):
            counters.add("pc-to-crm", outcomes[(n + i) % len(outcomes)], NOW)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    counts = last_24_hours(table, NOW)
    assert counts.by_direction["pc-to-crm"] == {
        "created": 40,
        "updated": 40,
        "unchanged": 40,
        "skipped": 40,
        "failed": 40,
        "rejected": 0,
        "retry": 0,
        "throttled": 0,
    }
    assert sum(counts.by_direction["crm-to-pc"].values()) == 0
    assert 1 <= counting.upserts <= 200  # syncs ending together share a write
    assert len(list(table.list_entities())) == 1  # one row: this process, this hour, this direction


def test_each_process_writes_its_own_rows_and_the_reader_sums_them(table: TableClient) -> None:
    first, second = SyncCounters(table), SyncCounters(table)
    for _ in range(3):
        first.add("pc-to-crm", "created", NOW)
    second.add("pc-to-crm", "created", NOW)
    second.add("crm-to-pc", "rejected", NOW)
    # A process that restarts is a new writer: it never overwrites the counts of the one before.
    SyncCounters(table).add("pc-to-crm", "updated", NOW)

    counts = last_24_hours(table, NOW)
    assert (counts.by_direction["pc-to-crm"]["created"], counts.by_direction["pc-to-crm"]["updated"]) == (4, 1)
    assert counts.by_direction["crm-to-pc"]["rejected"] == 1
    assert len(list(table.list_entities())) == 4


def test_hours_are_oldest_first_and_rows_older_than_24_hours_are_not_counted(table: TableClient) -> None:
    counters = SyncCounters(table)
    counters.add("pc-to-crm", "created", NOW - dt.timedelta(hours=30))  # yesterday's, outside the window
    counters.add("pc-to-crm", "created", NOW - dt.timedelta(hours=23))  # the window's first hour
    counters.add("pc-to-crm", "updated", NOW - dt.timedelta(hours=2))
    counters.add("crm-to-pc", "unchanged", NOW - dt.timedelta(hours=2))
    counters.add("pc-to-crm", "failed", NOW)
    counters.add("crm-to-pc", "rejected", NOW)
    counters.add("crm-to-pc", "retry", NOW)  # an attempt, not a result: in the totals, not in the chart

    counts = last_24_hours(table, NOW)
    assert counts.by_direction["pc-to-crm"]["created"] == 1
    hourly = counts.hourly
    assert len(hourly) == 24
    assert hourly[0] == {"hour": "2026-11-20T11:00:00+00:00", "synced": 1, "unchanged": 0, "failed": 0}
    assert hourly[21] == {"hour": "2026-11-21T08:00:00+00:00", "synced": 1, "unchanged": 1, "failed": 0}
    assert hourly[23] == {"hour": "2026-11-21T10:00:00+00:00", "synced": 0, "unchanged": 0, "failed": 2}
    assert counts.by_direction["crm-to-pc"]["retry"] == 1
    assert sum(h["synced"] + h["unchanged"] + h["failed"] for h in hourly) == 5


def test_a_write_that_fails_is_made_with_the_next_sync_and_loses_nothing(table: TableClient) -> None:
    counting = CountingTable(table)
    counters = SyncCounters(counting)  # type: ignore[arg-type]
    counting.fail_next = 1
    counters.add("pc-to-crm", "created", NOW)  # the sync goes on; the counts stay in memory
    assert last_24_hours(table, NOW).by_direction["pc-to-crm"]["created"] == 0
    counters.add("pc-to-crm", "created", NOW)
    assert last_24_hours(table, NOW).by_direction["pc-to-crm"]["created"] == 2


def test_the_audit_log_counts_every_sync_except_a_repeated_failure(table: TableClient, azurite: Azurite) -> None:
    settings = Settings(AzureWebJobsStorage=azurite.connection_string)
    audit = AuditLog(table_client(settings, f"Audit{uuid.uuid4().hex[:10]}"), counters=SyncCounters(table))
    referral = str(uuid.uuid4())
    audit.append(AuditEntry("pc-to-crm", referral, "opp-1", "created", "created"), now=NOW)
    audit.append(AuditEntry("crm-to-pc", referral, "opp-1", "updated", "pushed"), now=NOW)
    for attempt in range(5):  # the host's five attempts of one message, one cause: one failure
        audit.append(AuditEntry("pc-to-crm", referral, "opp-1", "failed", "refused", counted=attempt == 0), now=NOW)

    counts = last_24_hours(table, NOW)
    assert (counts.total("created"), counts.total("updated"), counts.total("failed")) == (1, 1, 1)
    assert len(audit.history(referral)) == 7  # the history keeps every attempt


def test_a_failure_names_its_crm_record_and_leaves_the_list_when_the_referral_heals(table: TableClient) -> None:
    from shared.messages import ReferralMessage

    failures = RecentFailures(table)
    referral, other = str(uuid.uuid4()), str(uuid.uuid4())
    outcomes: dict[str, Any] = {}

    def sync(referral_id: str, source: str) -> SyncOutcome:
        result = outcomes[referral_id]
        if isinstance(result, Exception):
            raise result
        return result

    worker = ReferralWorker(
        sync=sync, progress=None, failures=failures, enqueue=lambda *a, **k: None, crm_kind="dynamics"
    )  # type: ignore[arg-type]
    outcomes[referral] = PermanentSyncError('Currency "XYZ" is not set up', crm_entity="opportunity", crm_id="opp-9")
    outcomes[other] = PermanentSyncError("Referral could not be read")
    for referral_id in (referral, other):
        with pytest.raises(PermanentSyncError):
            worker.handle(ReferralMessage(referral_id=referral_id), final_attempt=True)
    listed = {f.referral_id: f for f in failures.recent()}
    assert (listed[referral].crm_kind, listed[referral].crm_entity, listed[referral].crm_id) == (
        "dynamics",
        "opportunity",
        "opp-9",
    )
    assert listed[other].crm_id == ""

    # An unchanged sync that never failed resolves nothing (and costs no query).
    outcomes[other] = SyncOutcome(other, "unchanged", "nothing")
    worker.handle(ReferralMessage(referral_id=other))
    assert {f.referral_id for f in failures.recent()} == {referral, other}

    # Fixed in the CRM: the next sync writes it, says it healed, and the failure goes.
    outcomes[referral] = SyncOutcome(referral, "updated", "updated", healed=True)
    worker.handle(ReferralMessage(referral_id=referral))
    assert [f.referral_id for f in failures.recent()] == [other]

    # A replayed message that syncs resolves its referral too.
    worker.handle(ReferralMessage(referral_id=other, source="replay"))
    assert failures.recent() == []

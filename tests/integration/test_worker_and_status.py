"""The referral worker's bookkeeping and the status report, on Azurite.

The sync itself is a stand-in that answers or raises as told (the engine, contract and end-to-end
suites cover it); what is checked here is what the worker writes around it: a backfill's counters,
the recent failures, a throttled message sent back. The status report is read after a small scenario
of real rows and real queues.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from sandbox.azurite import Azurite
from shared.config import Settings
from shared.crm.links import RecordLinks
from shared.http import ApiError, Throttled
from shared.messages import ReferralMessage
from shared.status import QUEUES, StatusSources, status
from shared.store.backfill import BackfillJob, BackfillStore, Marker
from shared.store.clients import SYNC_STATE_TABLE, queue_client, table_client
from shared.store.failures import RecentFailures
from shared.store.queues import QueueDepth, QueueDepthReader
from shared.store.state import StateStore
from shared.sync.inbound import PermanentSyncError, SyncOutcome
from shared.sync.reconcile import WATERMARK
from shared.sync.worker import ReferralWorker


@pytest.fixture(scope="module")
def settings(azurite: Azurite) -> Settings:
    return Settings(AzureWebJobsStorage=azurite.connection_string)


@dataclass
class FakeSync:
    """Answers ``unchanged``, or raises what ``failing`` holds for a referral id."""

    failing: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, referral_id: str, source: str) -> SyncOutcome:
        self.calls.append((referral_id, source))
        if referral_id in self.failing:
            raise self.failing[referral_id]
        return SyncOutcome(referral_id, "unchanged", "No mapped field changed; nothing written.")


@dataclass
class Sent:
    messages: list[tuple[ReferralMessage, float]] = field(default_factory=list)

    def __call__(self, message: ReferralMessage, *, delay_seconds: float = 0) -> None:
        self.messages.append((message, delay_seconds))


@dataclass
class Parts:
    store: BackfillStore
    failures: RecentFailures
    sync: FakeSync
    sent: Sent
    worker: ReferralWorker
    table_name: str


@pytest.fixture
def parts(settings: Settings) -> Parts:
    name = f"Ops{uuid.uuid4().hex[:12]}"
    table = table_client(settings, name)
    store, failures, sync, sent = BackfillStore(table), RecentFailures(table), FakeSync(), Sent()
    worker = ReferralWorker(sync=sync, progress=store, failures=failures, enqueue=sent)
    return Parts(store, failures, sync, sent, worker, name)


def listed_job(store: BackfillStore, referral_ids: list[str], *, done: bool = True) -> BackfillJob:
    """A current job whose listing queued ``referral_ids`` (what Backfill.run_page leaves behind)."""
    job = BackfillJob(
        job_id=f"job-{uuid.uuid4().hex[:8]}",
        started_at=dt.datetime.now(dt.UTC).isoformat(),
        per_minute=50.0,
        listing_done=done,
        pages=1,
        listed=len(referral_ids),
        queued=len(referral_ids),
    )
    store.create(job)
    assert store.point_to(job.job_id, etag=store.pointer()[1])
    store.claim(job.job_id, 1, [Marker(r, 1) for r in referral_ids])
    return job


def message(referral_id: str, job: BackfillJob | None = None, **changes: Any) -> ReferralMessage:
    fields: dict[str, Any] = {"source": "backfill" if job else "webhook", "backfill_job": job.job_id if job else None}
    return ReferralMessage(referral_id=referral_id, **{**fields, **changes})


def new_ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


# ---------------------------------------------------------------------------------------------------


def test_a_synced_backfill_message_counts_once_and_its_duplicate_is_not_synced_again(parts: Parts) -> None:
    ids = new_ids(2)
    job = listed_job(parts.store, ids)
    assert parts.worker.handle(message(ids[0], job)) == "synced"
    assert parts.worker.handle(message(ids[0], job)) == "duplicate"
    assert parts.sync.calls == [(ids[0], "backfill")]  # the duplicate cost no Partner Center or CRM call
    counted = parts.store.get(job.job_id)
    assert counted is not None
    assert (counted.synced, counted.failed, counted.remaining, counted.phase) == (1, 0, 1, "syncing")
    parts.worker.handle(message(ids[1], job))
    done = parts.store.get(job.job_id)
    assert done is not None
    assert (done.synced, done.percent, done.phase) == (2, 100.0, "completed")


def test_a_failure_counts_and_is_recorded_only_on_the_last_attempt_and_a_replay_can_still_sync(
    parts: Parts,
) -> None:
    (referral_id,) = new_ids(1)
    job = listed_job(parts.store, [referral_id])
    parts.sync.failing[referral_id] = PermanentSyncError('Currency "XYZ" is not set up in Dynamics 365')
    for _attempt in range(4):
        with pytest.raises(PermanentSyncError):
            parts.worker.handle(message(referral_id, job), final_attempt=False)
    untouched = parts.store.get(job.job_id)
    assert untouched is not None
    assert (untouched.failed, parts.failures.recent()) == (0, [])

    with pytest.raises(PermanentSyncError):
        parts.worker.handle(message(referral_id, job), final_attempt=True)
    failed = parts.store.get(job.job_id)
    assert failed is not None
    assert (failed.synced, failed.failed, failed.remaining, failed.phase) == (0, 1, 0, "completed")
    (recorded,) = parts.failures.recent()
    assert (recorded.referral_id, recorded.source, recorded.backfill_job) == (referral_id, "backfill", job.job_id)
    assert recorded.reason == 'Currency "XYZ" is not set up in Dynamics 365'

    # Fixed in the CRM, then POST /api/manage/replay-poison: the message keeps its job and counts as synced.
    del parts.sync.failing[referral_id]
    parts.worker.handle(message(referral_id, job, source="replay"))
    replayed = parts.store.get(job.job_id)
    assert replayed is not None
    assert (replayed.synced, replayed.failed) == (1, 0)


def test_a_throttled_sync_goes_back_on_the_queue_with_its_job_and_counts_nothing(parts: Parts) -> None:
    (referral_id,) = new_ids(1)
    job = listed_job(parts.store, [referral_id])
    parts.sync.failing[referral_id] = Throttled("dataverse", "GET", "/api/data/v9.2/accounts", 429, 240)
    assert parts.worker.handle(message(referral_id, job), final_attempt=True) == "deferred"
    ((later, delay),) = parts.sent.messages
    assert (later.referral_id, later.backfill_job, later.deferrals, delay) == (referral_id, job.job_id, 1, 240)
    still = parts.store.get(job.job_id)
    assert still is not None
    assert (still.synced, still.failed) == (0, 0)
    assert parts.failures.recent() == []


def test_live_messages_touch_no_backfill_and_their_last_failure_is_recorded(parts: Parts) -> None:
    (referral_id,) = new_ids(1)
    parts.sync.failing[referral_id] = ApiError("partner-center", "GET", "/referrals/x", 503, "", "Service unavailable")
    with pytest.raises(ApiError):
        parts.worker.handle(message(referral_id), final_attempt=True)
    (recorded,) = parts.failures.recent()
    assert recorded.reason == "partner-center answered HTTP 503 to GET /referrals/x: Service unavailable"
    assert (recorded.source, recorded.backfill_job) == ("webhook", "")
    assert parts.store.current() is None


def test_an_unforeseen_error_is_recorded_by_its_type_only(parts: Parts) -> None:
    (referral_id,) = new_ids(1)
    parts.sync.failing[referral_id] = KeyError("ada@customer.example")
    with pytest.raises(KeyError):
        parts.worker.handle(message(referral_id), final_attempt=True)
    (recorded,) = parts.failures.recent()
    assert recorded.reason == "Unexpected error (KeyError); see the app's log."


def test_recent_failures_keep_the_newest_twenty(parts: Parts) -> None:
    start = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
    ids = new_ids(25)
    for n, referral_id in enumerate(ids):
        parts.failures.record(referral_id, f"reason {n}", source="webhook", now=start + dt.timedelta(seconds=n))
    recent = parts.failures.recent()
    assert [f.referral_id for f in recent] == ids[::-1][:20]
    assert recent[0].reason == "reason 24"
    assert len(list(parts.failures._table.query_entities("PartitionKey eq 'failures'"))) == 20


def test_a_referral_that_fails_again_is_listed_once_with_its_newest_reason(parts: Parts) -> None:
    start = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
    again, other = new_ids(2)
    parts.failures.record(again, "first cause", now=start)
    parts.failures.record(other, "other cause", now=start + dt.timedelta(seconds=1))
    parts.failures.record(again, "second cause", now=start + dt.timedelta(seconds=2))  # the reconcile queued it again
    assert [(f.referral_id, f.reason) for f in parts.failures.recent()] == [
        (again, "second cause"),
        (other, "other cause"),
    ]


def test_status_reports_backfill_runs_queues_and_failures_after_a_small_scenario(
    parts: Parts, settings: Settings
) -> None:
    # A backfill of 5: 3 synced, 1 failed for good, 1 still waiting.
    ids = new_ids(5)
    job = listed_job(parts.store, ids)
    for referral_id in ids[:3]:
        parts.worker.handle(message(referral_id, job))
    parts.sync.failing[ids[3]] = PermanentSyncError("Referral could not be read")
    with pytest.raises(PermanentSyncError):
        parts.worker.handle(message(ids[3], job), final_attempt=True)

    # The last CRM poll and reconcile runs, as their functions record them.
    state = StateStore(table_client(settings, f"State{uuid.uuid4().hex[:10]}"))
    state.save_watermark(
        "crm-dynamics",
        "2026-11-21T10:00:00Z",
        last_run_at="2026-11-21T10:01:00+00:00",
        last_duration_ms=1234,
        last_outcomes={"shared": 2, "unchanged": 5},
        last_api_calls={"dataverse": 4, "partner-center": 2},
    )
    state.save_watermark("crm-dynamics", "2026-11-21T10:02:00Z")  # a save mid-poll keeps the last run's figures
    state.save_watermark(
        WATERMARK,
        "2026-11-21T09:59:00+00:00",
        last_run_at="2026-11-21T10:00:00+00:00",
        last_seen=7,
        last_queued=2,
        last_api_calls={"partner-center": 1},
    )

    # Queues of this test's own, two messages deep and one poisoned.
    prefix = f"t{uuid.uuid4().hex[:8]}"
    clients: dict[str, QueueClient] = {name: queue_client(settings, f"{prefix}-{name}") for name in QUEUES}
    for client in clients.values():
        client.create_queue()
    clients["referral-events"].send_message("a")
    clients["referral-events"].send_message("b", visibility_timeout=600)  # invisible ones count too
    clients["referral-events-poison"].send_message("c")

    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    reader = QueueDepthReader({name: clients[name] for name in QUEUES}, clock=lambda: later)
    sources = StatusSources(
        state=state,
        backfill=parts.store,
        failures=parts.failures,
        queue_depth=reader.read,
        crm_kind="dynamics",
        links=RecordLinks(dataverse_url="https://contoso.crm.dynamics.com", referral_template="https://pc/r?id={id}"),
        version="0.1.0+abc",
    )
    body = status(sources, now=dt.datetime(2026, 11, 21, 10, 5, tzinfo=dt.UTC))

    assert body["generatedAt"] == "2026-11-21T10:05:00+00:00"
    assert (body["crm"], body["version"]) == ("dynamics", "0.1.0+abc")
    backfill = body["backfill"]
    assert backfill["jobId"] == job.job_id
    assert {k: backfill[k] for k in ("state", "listed", "queued", "synced", "failed", "remaining", "percent")} == {
        "state": "syncing",
        "listed": 5,
        "queued": 5,
        "synced": 3,
        "failed": 1,
        "remaining": 1,
        "percent": 80.0,
    }
    assert body["crmPoll"] == {
        "lastRunAt": "2026-11-21T10:01:00+00:00",
        "durationMs": 1234,
        "watermark": "2026-11-21T10:02:00Z",
        "outcomes": {"shared": 2, "unchanged": 5},
        "apiCalls": {"dataverse": 4, "partner-center": 2},
    }
    assert body["reconcile"] == {
        "lastRunAt": "2026-11-21T10:00:00+00:00",
        "durationMs": None,
        "watermark": "2026-11-21T09:59:00+00:00",
        "seen": 7,
        "queued": 2,
        "apiCalls": {"partner-center": 1},
    }
    # The front message's age, from its insertion time (the reader's clock is two minutes ahead).
    assert body["queues"]["referral-events"]["messages"] == 2
    assert 100 <= body["queues"]["referral-events"]["oldestAgeSeconds"] <= 140
    assert body["queues"]["referral-events-poison"]["messages"] == 1
    assert body["queues"]["backfill-pages"] == {"messages": 0, "oldestAgeSeconds": None}
    assert body["recentFailures"] == [
        {
            "referralId": ids[3],
            "reason": "Referral could not be read",
            "at": body["recentFailures"][0]["at"],
            "source": "backfill",
            "backfillJob": job.job_id,
            "crmKind": None,
            "crmEntity": None,
            "crmId": None,
            "crmUrl": None,
            "partnerCenterUrl": f"https://pc/r?id={ids[3]}",
        }
    ]
    assert body["syncs24h"] is None  # no counters given
    # What needs an operator: the poisoned message and the failure (recorded just now, so within 24 h).
    assert body["health"]["state"] == "attention"
    assert body["health"]["reasons"][0].startswith("1 message(s) in referral-events-poison")


def test_a_section_that_cannot_be_read_says_so_and_the_rest_still_answer(parts: Parts, settings: Settings) -> None:
    def broken(name: str) -> QueueDepth:
        raise ConnectionError("queue service unreachable")

    sources = StatusSources(
        state=StateStore(table_client(settings, SYNC_STATE_TABLE)),
        backfill=parts.store,
        failures=parts.failures,
        queue_depth=broken,
        crm_kind="salesforce",
    )
    body = status(sources)
    assert body["queues"] == {"error": "could not be read (ConnectionError); see the app's log"}
    assert body["backfill"] is None
    assert body["recentFailures"] == []
    assert body["crm"] == "salesforce"
    assert body["health"] == {"state": "attention", "reasons": ["The queues part could not be read."]}

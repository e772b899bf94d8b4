"""The backfill against the Partner Center simulator (real HTTP) and Azurite (job rows, markers, state).

The queue sends are recorded instead of sent: the tests read every message's visibility delay,
which a real queue hides until it passes (tests/e2e/test_backfill.py runs the real queues).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from shared.auth import RefreshTokenGrant
from shared.config import Settings
from shared.http import ServiceClient
from shared.messages import BackfillPageMessage, ReferralMessage
from shared.partner_center.client import ReferralPage, ReferralsClient
from shared.partner_center.models import Referral
from shared.store.backfill import BackfillStore, Marker
from shared.store.clients import SYNC_STATE_TABLE, table_client
from shared.store.state import StateStore, SyncState
from shared.sync.backfill import Backfill, BackfillBusy, NothingToResume
from tests.integration.referrals import referral

PER_MINUTE = 600.0  # one referral every 100 ms
AHEAD = dt.timedelta(seconds=30)


class Crash(Exception):
    """The host died here."""


@dataclass
class Recorder:
    """Stands in for a queue: what was sent, with its visibility delay.

    ``fail_after`` kills it after that many sends: every later send fails too (the process is dead)
    until :meth:`revive`, which is the host starting again.
    """

    sent: list[tuple[Any, float]] = field(default_factory=list)
    fail_after: int | None = None
    dead: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, message: Any, *, delay_seconds: float = 0) -> None:
        with self.lock:
            if self.fail_after is not None and len(self.sent) >= self.fail_after:
                self.fail_after, self.dead = None, True
            if self.dead:
                raise Crash("killed mid-page")
            self.sent.append((message, delay_seconds))

    def revive(self) -> None:
        self.dead = False

    def ids(self) -> list[str]:
        return [m.referral_id for m, _ in self.sent]

    def in_visible_order(self) -> list[str]:
        """Referral ids in the order the queue will hand them out."""
        return [m.referral_id for m, _ in sorted(self.sent, key=lambda sent: sent[1])]


@dataclass
class World:
    sandbox: Sandbox
    store: BackfillStore
    state: StateStore
    referrals: Recorder
    pages: Recorder
    backfill: Backfill
    client: ReferralsClient

    def seed(self, count: int) -> list[dict[str, Any]]:
        return [self.sandbox.partner_center.seed_referral(referral(), fire=False) for _ in range(count)]

    def run_pages(self, *, limit: int = 50) -> None:
        """Deliver page messages in order until the chain ends, as the queue trigger would."""
        done = 0
        while done < len(self.pages.sent) and done < limit:
            message, _ = self.pages.sent[done]
            self.backfill.run_page(message)
            done += 1


@pytest.fixture(scope="module")
def settings(azurite: Azurite) -> Settings:
    return Settings(AzureWebJobsStorage=azurite.connection_string)


@pytest.fixture(scope="module")
def client(sandbox: Sandbox, partner_center_token: RefreshTokenGrant) -> ReferralsClient:
    url = f"{sandbox.partner_center_url}/v1.0/engagements"
    return ReferralsClient(
        ServiceClient("partner-center", url, auth=partner_center_token, max_attempts=2, max_backoff=1)
    )


def make_backfill(world_parts: dict[str, Any], **overrides: Any) -> Backfill:
    options = {
        "referrals": world_parts["client"],
        "state": world_parts["state"],
        "store": world_parts["store"],
        "enqueue_referral": world_parts["referrals"],
        "enqueue_page": world_parts["pages"],
        "crm_kind": "dynamics",
        "per_minute": PER_MINUTE,
        "ahead": AHEAD,
        **overrides,
    }
    return Backfill(**options)


@pytest.fixture
def world(settings: Settings, sandbox: Sandbox, client: ReferralsClient) -> World:
    # A table of its own per test: "the current backfill" is one row, and tests must not see each other's.
    table = table_client(settings, f"Ops{uuid.uuid4().hex[:12]}")
    parts: dict[str, Any] = {
        "client": client,
        "state": StateStore(table_client(settings, SYNC_STATE_TABLE)),
        "store": BackfillStore(table),
        "referrals": Recorder(),
        "pages": Recorder(),
    }
    backfill = make_backfill(parts)
    return World(sandbox, parts["store"], parts["state"], parts["referrals"], parts["pages"], backfill, client)


def since_now() -> dt.datetime:
    """A ``since`` that leaves out every referral other tests seeded into the shared simulator."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=1)


# ---------------------------------------------------------------------------------------------------


def test_pages_are_listed_in_creation_order_and_each_referral_queued_once_at_the_pace(
    world: World, client: ReferralsClient
) -> None:
    since = since_now()
    seeded = world.seed(250)
    pc = world.sandbox.partner_center
    pc.reset_stats()
    # The clock stands still, so every delay is measured from the same moment, whichever page queued it.
    frozen = dt.datetime.now(dt.UTC)
    parts = {"client": client, "state": world.state, "store": world.store, "referrals": world.referrals}
    world.backfill = make_backfill({**parts, "pages": world.pages}, clock=lambda: frozen)
    job = world.backfill.start(since)
    world.run_pages()

    lists = pc.recorded("GET", "/v1.0/engagements/referrals")
    assert len(lists) == 3  # 100 per page (reference §1.3), 250 referrals
    assert "createdDateTime asc" in lists[0].query.replace("+", " ").replace("%20", " ")
    assert "updatedDateTime ge" in lists[0].query.replace("+", " ").replace("%20", " ")
    assert world.referrals.in_visible_order() == [r["id"] for r in seeded]  # oldest first, each once
    messages = [m for m, _ in world.referrals.sent]
    assert {(m.source, m.backfill_job) for m in messages} == {("backfill", job.job_id)}
    delays = sorted(delay for _, delay in world.referrals.sent)
    # 600 a minute: 100 ms apart, within a page and across pages (a page's slots go on where the last ended)
    assert delays == pytest.approx([n * 0.1 for n in range(250)])

    done = world.store.get(job.job_id)
    assert done is not None
    assert (done.pages, done.listing_done, done.listed, done.queued, done.synced, done.remaining) == (
        3,
        True,
        250,
        250,
        0,
        250,
    )
    assert done.phase == "syncing"
    assert [m.page for m, _ in world.pages.sent] == [1, 2, 3]


def test_the_next_page_waits_until_the_queue_is_within_the_look_ahead(world: World, client: ReferralsClient) -> None:
    since = since_now()
    world.seed(150)
    parts = {"client": client, "state": world.state, "store": world.store, "referrals": world.referrals}
    parts["pages"] = world.pages
    slow = make_backfill(parts, per_minute=60.0, ahead=dt.timedelta(seconds=30))  # a page lasts 100 s
    slow.start(since)
    slow.run_page(world.pages.sent[0][0])
    (second, delay) = world.pages.sent[1]
    assert second.page == 2
    assert delay == pytest.approx(100 - 30, abs=2)  # listed 30 s before page 1's last referral is due


def test_a_page_rerun_after_a_crash_mid_page_counts_and_queues_each_referral_once(world: World) -> None:
    since = since_now()
    seeded = world.seed(130)
    job = world.backfill.start(since)
    first = world.pages.sent[0][0]
    world.referrals.fail_after = 40  # the host dies after queueing 40 of page 1
    with pytest.raises(Crash):
        world.backfill.run_page(first)
    crashed = world.store.get(job.job_id)
    assert crashed is not None
    assert (crashed.pages, crashed.listed) == (0, 0)  # no checkpoint: the page is listed again

    before_crash = world.referrals.ids()
    world.referrals.revive()
    world.run_pages()  # the host's retry of page 1, then page 2
    done = world.store.get(job.job_id)
    assert done is not None
    assert (done.pages, done.listed, done.queued, done.listing_done) == (2, 130, 130, True)
    ids = world.referrals.ids()
    assert set(ids) == {r["id"] for r in seeded}
    twice = [referral_id for referral_id, n in Counter(ids).items() if n == 2]
    # Only the 40 queued before the crash went twice; the worker drops the second copy of each.
    assert (len(ids), len(twice)) == (170, 40)
    assert set(twice) == set(before_crash)


def test_a_crash_after_the_checkpoint_sends_the_next_page_without_listing_again(world: World) -> None:
    since = since_now()
    world.seed(120)
    job = world.backfill.start(since)
    first = world.pages.sent[0][0]
    world.pages.fail_after = 1  # the host dies while sending page 2's message
    with pytest.raises(Crash):
        world.backfill.run_page(first)
    world.pages.revive()
    pc = world.sandbox.partner_center
    pc.reset_stats()
    report = world.backfill.run_page(first)  # the host's retry of page 1
    assert (report.action, report.reason) == ("skipped", "page already listed")
    assert pc.count("GET") == 0
    assert [m.page for m, _ in world.pages.sent] == [1, 2]
    again = world.backfill.run_page(first)  # a third delivery: page 2 is out already
    assert again.action == "skipped"
    assert [m.page for m, _ in world.pages.sent] == [1, 2]
    world.backfill.run_page(world.pages.sent[1][0])
    done = world.store.get(job.job_id)
    assert done is not None
    assert (done.listed, done.queued, len(world.referrals.sent)) == (120, 120, 120)


def test_a_page_delivered_twice_is_listed_once(world: World) -> None:
    since = since_now()
    world.seed(30)
    job = world.backfill.start(since)
    first = world.pages.sent[0][0]
    assert world.backfill.run_page(first).action == "listed"
    assert world.backfill.run_page(first).action == "skipped"
    assert world.backfill.run_page(BackfillPageMessage(job_id=job.job_id, page=5)).action == "skipped"
    done = world.store.get(job.job_id)
    assert done is not None
    assert (done.listed, len(world.referrals.sent), done.listing_done) == (30, 30, True)


def test_each_referral_is_counted_once_however_often_it_is_reported(world: World) -> None:
    since = since_now()
    seeded = world.seed(60)
    job = world.backfill.start(since)
    world.run_pages()
    ids = [r["id"] for r in seeded]
    store = world.store

    assert store.finish(job.job_id, ids[0], "synced") is True
    assert store.finish(job.job_id, ids[0], "synced") is False  # a duplicate message
    assert store.finish(job.job_id, ids[0], "failed") is False  # synced is final
    assert store.finish(job.job_id, ids[1], "failed") is True
    assert store.finish(job.job_id, ids[1], "failed") is False
    middle = store.get(job.job_id)
    assert middle is not None
    assert (middle.synced, middle.failed, middle.remaining) == (1, 1, 58)
    assert store.finish(job.job_id, ids[1], "synced") is True  # replayed from poison, and it worked
    assert store.finish(job.job_id, str(uuid.uuid4()), "synced") is False  # not this job's referral

    # Eight workers finishing the rest together, each referral reported twice: every one counts once.
    rest = ids[2:] * 2
    counted: list[bool] = []
    lock = threading.Lock()

    def work(chunk: list[str]) -> None:
        for referral_id in chunk:
            result = store.finish(job.job_id, referral_id, "synced")
            with lock:
                counted.append(result)

    threads = [threading.Thread(target=work, args=(rest[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counted.count(True) == 58

    done = store.get(job.job_id)
    assert done is not None
    assert (done.listed, done.synced, done.failed, done.remaining, done.percent) == (60, 60, 0, 0, 100.0)
    assert done.phase == "completed"
    assert done.finished_at


def test_referrals_already_synced_at_the_listed_version_are_not_queued(world: World) -> None:
    since = since_now()
    seeded = world.seed(4)
    in_sync, failed_before, older, other_crm = seeded
    for record, extra in (
        (in_sync, {}),
        (failed_before, {"last_error": "Currency XYZ is not set up"}),
        (older, {"pc_updated": "2020-01-01T00:00:00+00:00"}),
        (other_crm, {"crm_kind": "salesforce"}),
    ):
        state = SyncState(
            referral_id=record["id"],
            crm_kind="dynamics",
            crm_entity="opportunity",
            crm_id=str(uuid.uuid4()),
            pc_updated=dt.datetime.fromisoformat(record["updatedDateTime"].replace("Z", "+00:00")).isoformat(),
        )
        for name, value in extra.items():
            setattr(state, name, value)
        world.state.save(state)
    job = world.backfill.start(since)
    world.run_pages()
    assert world.referrals.ids() == [failed_before["id"], older["id"], other_crm["id"]]
    done = world.store.get(job.job_id)
    assert done is not None
    assert (done.listed, done.queued, done.up_to_date, done.synced, done.remaining) == (4, 3, 1, 1, 3)
    marker = world.store.marker(job.job_id, in_sync["id"])
    assert marker is not None
    assert marker.outcome == "up-to-date"


def test_one_backfill_at_a_time_force_supersedes_and_resume_needs_a_job(world: World) -> None:
    with pytest.raises(NothingToResume):
        world.backfill.resume()
    since = since_now()
    world.seed(3)
    first = world.backfill.start(since)
    with pytest.raises(BackfillBusy) as busy:
        world.backfill.start()
    assert busy.value.job.job_id == first.job_id
    second = world.backfill.start(since, force=True)
    old = world.store.get(first.job_id)
    assert old is not None
    assert old.phase == "superseded"
    # The old job's page message finds it is no longer current and lists nothing.
    assert world.backfill.run_page(world.pages.sent[0][0]).reason == "not the current job"
    world.backfill.run_page(world.pages.sent[1][0])
    current = world.backfill.current()
    assert current is not None
    assert (current.job_id, current.listed, current.phase) == (second.job_id, 3, "syncing")
    with pytest.raises(NothingToResume):
        world.backfill.resume()  # listing is done: the rest is the worker's (and replay-poison's)


def test_a_listing_that_keeps_failing_stops_the_job_and_resume_goes_on_from_the_checkpoint(world: World) -> None:
    since = since_now()
    world.seed(150)
    job = world.backfill.start(since)
    world.backfill.run_page(world.pages.sent[0][0])
    pc = world.sandbox.partner_center
    pc.set_faults({"rate": 1, "statuses": [503], "retry_after": 0, "routes": ["GET /v1.0/engagements/referrals"]})
    try:
        second = world.pages.sent[1][0]
        with pytest.raises(Exception, match="503"):
            world.backfill.run_page(second)  # not the last attempt: the host retries
        running = world.store.get(job.job_id)
        assert running is not None
        assert running.phase == "listing"
        with pytest.raises(Exception, match="503"):
            world.backfill.run_page(second, final_attempt=True)
    finally:
        pc.set_faults(None)
    stopped = world.store.get(job.job_id)
    assert stopped is not None
    assert stopped.phase == "stopped"
    assert "Listing page 2 failed" in stopped.last_error
    assert "503" in stopped.last_error
    assert world.backfill.run_page(second).reason == "job is stopped"

    resumed = world.backfill.resume()
    assert (resumed.phase, resumed.last_error) == ("listing", "")
    assert world.pages.sent[-1][0].page == 2
    world.backfill.run_page(world.pages.sent[-1][0])
    done = world.store.get(job.job_id)
    assert done is not None
    assert (done.listed, done.pages, done.listing_done, len(world.referrals.sent)) == (150, 2, True, 150)


def test_a_permanent_listing_error_stops_the_job_at_once(world: World) -> None:
    job = world.backfill.start(since_now())
    pc = world.sandbox.partner_center
    pc.set_faults({"rate": 1, "statuses": [403], "routes": ["GET /v1.0/engagements/referrals"]})
    try:
        report = world.backfill.run_page(world.pages.sent[0][0])
    finally:
        pc.set_faults(None)
    assert report.action == "stopped"
    stopped = world.store.get(job.job_id)
    assert stopped is not None
    assert stopped.phase == "stopped"
    assert "HTTP 403" in stopped.last_error


def test_an_empty_list_completes_at_once(world: World) -> None:
    job = world.backfill.start(dt.datetime.now(dt.UTC))
    world.run_pages()
    done = world.store.get(job.job_id)
    assert done is not None
    assert (done.listed, done.phase, done.percent) == (0, "completed", 100.0)
    assert done.finished_at


def test_a_throttled_listing_waits_as_asked_without_spending_attempts(world: World) -> None:
    job = world.backfill.start(since_now())
    pc = world.sandbox.partner_center
    pc.set_faults({"rate": 1, "statuses": [429], "retry_after": 90, "routes": ["GET /v1.0/engagements/referrals"]})
    try:
        report = world.backfill.run_page(world.pages.sent[0][0])
    finally:
        pc.set_faults(None)
    assert report.action == "deferred"
    again, delay = world.pages.sent[-1]
    assert (again.page, again.deferrals, delay) == (1, 1, 90)
    running = world.store.get(job.job_id)
    assert running is not None
    assert running.phase == "listing"


def test_referral_messages_carry_the_job_through_json(world: World) -> None:
    message = ReferralMessage(referral_id=str(uuid.uuid4()), source="backfill", backfill_job="job-1")
    assert json.loads(message.to_json())["backfillJob"] == "job-1"
    replayed = ReferralMessage.model_validate_json(message.to_json())
    assert replayed.backfill_job == "job-1"


def test_claiming_markers_keeps_this_pages_own_and_leaves_an_earlier_pages(world: World) -> None:
    job = world.backfill.start(since_now())
    earlier, retried, new = (str(uuid.uuid4()) for _ in range(3))
    assert world.store.claim(job.job_id, 1, [Marker(earlier, 1)]) == [Marker(earlier, 1)]
    assert world.store.claim(job.job_id, 2, [Marker(retried, 2)]) == [Marker(retried, 2)]
    # Page 2 again (its first try died), racing nobody: one marker is page 1's, one its own, one new.
    claimed = world.store.claim(job.job_id, 2, [Marker(earlier, 2), Marker(retried, 2), Marker(new, 2)])
    assert sorted((m.referral_id, m.page) for m in claimed) == sorted([(retried, 2), (new, 2)])
    stored = world.store.marker(job.job_id, earlier)
    assert stored is not None
    assert stored.page == 1


@dataclass
class ShiftedList:
    """A list that moved while it was read: page 2 starts with the referral page 1 ended with."""

    pages: list[ReferralPage]
    calls: int = 0

    def page(self, link: str | None, **_: Any) -> ReferralPage:
        self.calls += 1
        return self.pages[0 if link is None else int(link)]


def test_a_referral_listed_on_two_pages_is_counted_and_queued_once(world: World) -> None:
    referrals = [Referral.parse({**referral(), "updatedDateTime": "2026-01-01T00:00:00Z"}) for _ in range(5)]
    listing = ShiftedList([ReferralPage(referrals[:3], "1"), ReferralPage(referrals[2:], None)])
    parts = {"client": listing, "state": world.state, "store": world.store, "referrals": world.referrals}
    backfill = make_backfill({**parts, "pages": world.pages})
    job = backfill.start()
    backfill.run_page(world.pages.sent[0][0])
    backfill.run_page(world.pages.sent[1][0])
    done = world.store.get(job.job_id)
    assert done is not None
    assert (done.listed, done.queued, done.listing_done) == (5, 5, True)
    assert sorted(world.referrals.ids()) == sorted(r.id for r in referrals)


def test_the_pace_is_the_listing_apps_setting_not_the_starters(world: World, client: ReferralsClient) -> None:
    """The command line starts a job with its own settings; the function app's pace is what counts."""
    since = since_now()
    world.seed(5)
    parts = {"client": client, "state": world.state, "store": world.store, "referrals": world.referrals}
    frozen = dt.datetime.now(dt.UTC)
    starter = make_backfill({**parts, "pages": world.pages}, per_minute=1.0, clock=lambda: frozen)
    app = make_backfill({**parts, "pages": world.pages}, per_minute=120.0, clock=lambda: frozen)
    job = starter.start(since)
    app.run_page(world.pages.sent[0][0])
    assert sorted(delay for _, delay in world.referrals.sent) == pytest.approx([0, 0.5, 1.0, 1.5, 2.0])
    listed = world.store.get(job.job_id)
    assert listed is not None
    assert listed.per_minute == 120.0

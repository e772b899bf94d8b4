"""The signals the alerts count (shared/telemetry.py), written where the engine decides: one
``poll_succeeded`` per clean poll, one ``sync_failed`` per record or referral that failed for good
(not one per retry), and ``poison_depth`` per poison queue. Each line is read through the deployed
alert query (infra/app/alerts/*.kql), so a change on either side fails here."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest

from shared import telemetry
from shared.http import ApiError, Throttled
from shared.store.queues import QueueDepth
from shared.sync.inbound import PermanentSyncError
from tests.contract.referrals import SHARED
from tests.engine.conftest import World
from tests.engine.fakes import SERVICE
from tests.infra.kql import queries


class Signals:
    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def lines(self, name: str = "") -> list[str]:
        prefix = f"{telemetry.PREFIX} {name}="
        return [
            r.getMessage()
            for r in self._caplog.records
            if r.name == telemetry.LOGGER and r.getMessage().startswith(prefix if name else telemetry.PREFIX)
        ]

    def rows(self, query: str) -> list[dict[str, str | int]]:
        """What the alert query of that name returns for everything logged so far."""
        read = (queries()[query].read(line) for line in self.lines())
        return [row for row in read if row is not None]

    def clear(self) -> None:
        self._caplog.clear()


@pytest.fixture
def signals(caplog: pytest.LogCaptureFixture) -> Iterator[Signals]:
    with caplog.at_level(logging.INFO, logger=telemetry.LOGGER):
        yield Signals(caplog)


def refusal(status: int) -> ApiError:
    return ApiError(SERVICE, "POST", "referrals", status, "invalidRequest" if status < 500 else "x", "refused")


# ---------------------------------------------------------------------------- poll_succeeded
def test_a_clean_poll_is_one_poll_succeeded_line(world: World, signals: Signals) -> None:
    world.typed_deal("First")
    world.typed_deal("Second")

    world.outbound.poll()

    [line] = signals.lines("poll_succeeded")
    assert line.startswith("cosell_metric poll_succeeded=1 crm=memory records=2 duration_ms=")
    assert signals.rows("no-poll") == [{}], "the no-poll alert counts it"

    report = world.outbound.poll()  # only our own write-backs to read again: still a successful poll
    assert dict(report.outcomes) == {"unchanged": 2}
    assert len(signals.rows("no-poll")) == 2


def test_a_poll_that_leaves_work_for_later_is_not_a_success(world: World, signals: Signals) -> None:
    world.typed_deal("Unlucky")
    world.referrals.refuse_create = lambda draft: refusal(503)

    report = world.outbound.poll()

    assert report.outcomes["retry"] == 1
    assert signals.lines("poll_succeeded") == [], "a record waiting to be retried holds the watermark"
    assert signals.lines("sync_failed") == [], "a transient failure is not a sync failure"

    world.referrals.refuse_create = None
    world.outbound.poll()
    assert len(signals.rows("no-poll")) == 1


def test_a_throttled_poll_is_not_a_success(world: World, signals: Signals) -> None:
    world.typed_deal()
    world.referrals.refuse_create = lambda draft: Throttled(SERVICE, "POST", "referrals", 429, 120)

    report = world.outbound.poll()

    assert report.outcomes["throttled"] == 1
    assert signals.lines("poll_succeeded") == []


def test_a_poll_whose_crm_read_fails_is_not_a_success(world: World, signals: Signals) -> None:
    world.typed_deal()

    def unavailable(since: str | None) -> Iterator[object]:
        raise ApiError("crm", "GET", "opportunities", 503, "", "unavailable")
        yield  # pragma: no cover

    world.crm.changed_deals = unavailable  # type: ignore[method-assign]
    report = world.outbound.poll()

    assert report.outcomes["retry"] == 1
    assert signals.lines("poll_succeeded") == []


def test_a_skipped_poll_says_nothing(world: World, signals: Signals) -> None:
    world.typed_deal()
    assert world.leases.try_acquire("poll_memory", 600)

    assert world.outbound.poll().ran is False
    assert signals.lines() == []


# ---------------------------------------------------------------------------- sync_failed, outbound
def test_a_refused_deal_is_one_failure_until_it_changes(world: World, signals: Signals) -> None:
    deal_id = world.typed_deal("Refused")
    world.referrals.refuse_create = lambda draft: refusal(400)

    world.outbound.poll()
    world.outbound.poll()
    world.outbound.poll()

    assert signals.lines("sync_failed") == [
        f"cosell_metric sync_failed=1 direction=crm-to-pc outcome=rejected entity=opportunity crm_id={deal_id}"
    ]
    assert signals.rows("failures") == [{"direction": "crm-to-pc", "outcome": "rejected"}]

    world.seller_changes(deal_id, deal_value=Decimal(75000))  # changed and refused again: a new failure
    world.outbound.poll()
    assert len(signals.rows("failures")) == 2


def test_a_deal_failing_check_before_sending_counts_as_a_failure(world: World, signals: Signals) -> None:
    world.typed_deal("No value", deal_value=None)

    report = world.outbound.poll()

    assert report.outcomes["rejected"] == 1
    assert world.referrals.calls["POST"] == 0
    assert signals.rows("failures") == [{"direction": "crm-to-pc", "outcome": "rejected"}]


def test_a_record_failing_for_good_is_one_failed_line(world: World, signals: Signals) -> None:
    unknown = world.typed_deal("Unknown referral", referral_id="0b1f8a52-0000-4000-8000-00000000d1e5")  # 404

    world.outbound.poll()
    world.outbound.poll()

    assert signals.lines("sync_failed") == [
        f"cosell_metric sync_failed=1 direction=crm-to-pc outcome=failed entity=opportunity crm_id={unknown}"
    ]
    assert signals.rows("failures") == [{"direction": "crm-to-pc", "outcome": "failed"}]


def test_a_shared_deal_is_no_failure(world: World, signals: Signals) -> None:
    world.typed_deal()
    world.outbound.poll()
    assert signals.lines("sync_failed") == []


# ---------------------------------------------------------------------------- sync_failed, inbound
def test_a_referral_failing_for_good_counts_once_across_the_hosts_retries(world: World, signals: Signals) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"currency": "XTS"}})  # not set up in the CRM

    for _attempt in range(5):  # host.json maxDequeueCount
        with pytest.raises(PermanentSyncError):
            world.inbound.sync(ref.id)

    assert world.audit.outcomes(ref.id).count("failed") == 5, "every attempt is audited"
    assert signals.lines("sync_failed") == [
        f"cosell_metric sync_failed=1 direction=pc-to-crm outcome=failed referral={ref.id}"
    ]
    assert signals.rows("failures") == [{"direction": "pc-to-crm", "outcome": "failed"}]


def test_a_referral_that_heals_and_fails_again_counts_again(world: World, signals: Signals) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)

    def change(currency: str) -> None:
        world.clock.advance(60)
        world.referrals.update(ref.id, {"details": {"currency": currency}})

    change("XTS")
    with pytest.raises(PermanentSyncError):
        world.inbound.sync(ref.id)
    change("USD")
    assert world.inbound.sync(ref.id).outcome == "updated"
    change("XTS")
    with pytest.raises(PermanentSyncError):
        world.inbound.sync(ref.id)

    assert len(signals.rows("failures")) == 2


def test_a_referral_partner_center_does_not_have_counts_once(world: World, signals: Signals) -> None:
    missing = "9d3b7b0e-0000-4000-8000-000000000404"
    for _attempt in range(3):
        with pytest.raises(PermanentSyncError):
            world.inbound.sync(missing)

    assert signals.lines("sync_failed") == [
        f"cosell_metric sync_failed=1 direction=pc-to-crm outcome=failed referral={missing}"
    ]


def test_a_transient_inbound_failure_is_no_failure(world: World, signals: Signals) -> None:
    ref = world.incoming(SHARED)
    world.crm.fail_next = ApiError("crm", "PATCH", "x", 503, "", "unavailable")

    with pytest.raises(ApiError):
        world.inbound.sync(ref.id)

    assert signals.lines("sync_failed") == []


# ---------------------------------------------------------------------------- poison_depth
class FakeQueues:
    def __init__(self, depths: dict[str, QueueDepth | Exception]) -> None:
        self.depths = depths

    @property
    def names(self) -> list[str]:
        return list(self.depths)

    def read(self, name: str) -> QueueDepth:
        depth = self.depths[name]
        if isinstance(depth, Exception):
            raise depth
        return depth


def test_poison_depth_is_one_line_per_queue(signals: Signals) -> None:
    queues = FakeQueues({"referral-events-poison": QueueDepth(3, 1200), "backfill-pages-poison": QueueDepth(0)})

    telemetry.report_poison_depths(lambda: queues)

    assert signals.lines("poison_depth") == [
        "cosell_metric poison_depth=3 queue=referral-events-poison oldest_age_s=1200",
        "cosell_metric poison_depth=0 queue=backfill-pages-poison",
    ]
    assert signals.rows("poison") == [
        {"depth": 3, "queue": "referral-events-poison"},
        {"depth": 0, "queue": "backfill-pages-poison"},
    ]


def test_an_unreadable_poison_queue_is_left_out_with_one_warning(
    signals: Signals, caplog: pytest.LogCaptureFixture
) -> None:
    queues = FakeQueues({"referral-events-poison": ConnectionError("down"), "other-poison": QueueDepth(1)})

    telemetry.report_poison_depths(lambda: queues)

    assert signals.rows("poison") == [{"depth": 1, "queue": "other-poison"}], "no made-up sample for the other"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["Poison queue depth not read: referral-events-poison (ConnectionError)"]


def test_storage_that_cannot_be_reached_at_all_is_one_warning_and_no_exception(
    signals: Signals, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> FakeQueues:
        raise RuntimeError("No storage configured: set AzureWebJobsStorage")

    telemetry.report_poison_depths(broken)

    assert signals.lines() == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["Poison queue depth not read: RuntimeError"]


# ---------------------------------------------------------------------------- the line itself
def test_dimension_values_cannot_break_the_line(signals: Signals) -> None:
    telemetry.emit("sync_failed", 1, direction="pc-to-crm", outcome="failed", referral='a b=c "d"\nforged=1')

    [line] = signals.lines("sync_failed")
    assert line == "cosell_metric sync_failed=1 direction=pc-to-crm outcome=failed referral=a_b_c__d__forged_1"
    assert signals.rows("failures") == [{"direction": "pc-to-crm", "outcome": "failed"}]
    telemetry.emit("sync_failed", 1, referral="x" * 500)
    assert len(signals.lines("sync_failed")[-1].split("referral=")[1]) == telemetry.MAX_VALUE_CHARS


def test_a_bad_dimension_key_is_our_bug_and_never_raises(signals: Signals, caplog: pytest.LogCaptureFixture) -> None:
    telemetry.emit("poll_succeeded", 1, **{"Bad Key": 1})

    assert signals.lines() == []
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "signal poll_succeeded not emitted (ValueError)"
    ]

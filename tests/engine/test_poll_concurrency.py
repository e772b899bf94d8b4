"""A CRM poll handles several records at once (CRM_POLL_CONCURRENCY) and keeps every guarantee of the
sequential poll: records reported in the CRM's order, a watermark that never passes a record still to
retry, a throttled remote or the time box stops it taking records, and two records of one referral
take its claim in turn.

The fakes are thread-safe; where a test needs records to overlap or finish out of order, it holds one
back with an event (each wait bounded, so a poll that runs them one after another fails, not hangs).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from shared.crm.port import CrmDeal
from shared.http import ApiError, ApiUnavailable, Throttled
from shared.mapping.inbound import InboundOptions
from shared.mapping.model import AccountData, ContactData, DealStage
from shared.sync.outbound import OutboundSync
from tests.engine.conftest import LEASE_SECONDS, LEASE_WAIT, World, new_world
from tests.engine.fakes import SERVICE
from tests.engine.test_time_box import Ticks

WATERMARK = "crm-memory"
HOLD = 5.0  # seconds a held-back record waits for the others before it gives up (a failing test, not a hang)


def poll_with(world: World, concurrency: int, **overrides: Any) -> OutboundSync:
    """The world's engine, with ``concurrency`` records at a time."""
    options: dict[str, Any] = {
        "referrals": world.referrals,
        "crm": world.crm,
        "state": world.state,
        "audit": world.audit,
        "leases": world.leases,
        "inbound_options": InboundOptions(),
        "lease_seconds": LEASE_SECONDS,
        "lease_wait": LEASE_WAIT,
        "clock": world.clock,
        "sleep": world.clock.advance,
        "concurrency": concurrency,
    }
    return OutboundSync(**{**options, **overrides})


def typed(world: World, count: int, prefix: str = "Deal") -> list[CrmDeal]:
    """``count`` opportunities ready to share, in the CRM's order."""
    ids = [world.typed_deal(title=f"{prefix} {n}") for n in range(count)]
    order = [d for d in world.crm.changed_deals(None) if d.crm_id in ids]
    assert [d.crm_id for d in order] == ids
    return order


def refuse(world: World, title: str, error: ApiError) -> None:
    world.referrals.refuse_create = lambda draft: error if draft.name == title else None


def hold_back_create(world: World, title: str, until: Callable[[], bool]) -> threading.Event:
    """The create of ``title`` waits (outside the fake's lock) until ``until()`` holds; the event says it did."""
    create, released = world.referrals.create, threading.Event()

    def held(draft: Any) -> Any:
        if draft.name == title:
            deadline = time.monotonic() + HOLD
            while not until() and time.monotonic() < deadline:
                time.sleep(0.002)
            if until():
                released.set()
        return create(draft)

    world.referrals.create = held  # type: ignore[method-assign]
    return released


def audited_order(world: World) -> list[str]:
    """CRM ids in the order their records finished (each record's audit row is written as it ends)."""
    return [e.crm_id for e in world.audit.entries]


# ---------------------------------------------------------------------------- order and watermark
def test_records_are_reported_in_the_crms_order_whatever_order_they_finish_in(world: World) -> None:
    deals = typed(world, 8)
    # The first deal finishes last: its create waits until the seven after it have ended (their audit rows).
    released = hold_back_create(world, "Deal 0", lambda: len(world.audit.entries) >= 7)

    report = poll_with(world, 8).poll()

    assert released.is_set(), "the other records never ran while the first was in hand"
    assert audited_order(world)[-1] == deals[0].crm_id, "the first record finished last"
    assert [r.crm_id for r in report.records] == [d.crm_id for d in deals]
    assert [r.outcome for r in report.records] == ["created"] * 8
    assert world.state.watermark(WATERMARK) == deals[-1].modified_on


def test_the_watermark_stops_before_a_retry_even_when_the_records_after_it_are_done(world: World) -> None:
    deals = typed(world, 12)
    refuse(world, "Deal 4", ApiError(SERVICE, "POST", "referrals", 503, "x", "unavailable"))
    # The retry finishes last, after every record behind it was shared.
    hold_back_create(world, "Deal 4", lambda: len(world.audit.entries) >= 11)

    report = poll_with(world, 8).poll()

    assert [(r.crm_id, r.outcome) for r in report.records] == [
        (d.crm_id, "retry" if n == 4 else "created") for n, d in enumerate(deals)
    ]
    assert audited_order(world)[-1] == deals[4].crm_id
    assert report.watermark_after == deals[3].modified_on, "the watermark stops before the retry"
    assert world.state.watermark(WATERMARK) == deals[3].modified_on

    world.referrals.refuse_create = None
    again = poll_with(world, 8).poll()  # the retry again, and every record our write-backs changed

    assert Counter(r.outcome for r in again.records) == {"created": 1, "unchanged": 11}, "nothing shared twice"
    assert [r.crm_id for r in again.records if r.outcome == "created"] == [deals[4].crm_id]
    assert sorted(len(world.referrals.by_external_id(d.crm_id)) for d in deals) == [1] * 12, "each shared once"
    assert world.referrals.calls["POST"] == 13  # 12 shares and the refused one
    assert again.watermark_after is not None
    assert again.watermark_after > deals[-1].modified_on


def test_with_concurrency_1_records_run_on_the_polls_thread_one_after_another(world: World) -> None:
    deals = typed(world, 6)
    threads: list[int] = []
    in_flight, peak = [0], [0]
    create = world.referrals.create

    def watched(draft: Any) -> Any:
        threads.append(threading.get_ident())
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        try:
            return create(draft)
        finally:
            in_flight[0] -= 1

    world.referrals.create = watched  # type: ignore[method-assign]
    report = poll_with(world, 1).poll()

    assert set(threads) == {threading.get_ident()}, "a record left the poll's thread"
    assert peak[0] == 1
    assert audited_order(world) == [d.crm_id for d in deals] == [r.crm_id for r in report.records]


def test_concurrency_1_and_8_reach_the_same_outcomes_and_watermark() -> None:
    """The same CRM, polled one record at a time and eight at a time: the same report, the same state."""

    def run(concurrency: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]], str | None, dict[str, int]]:
        world = new_world()
        world.typed_deal(title="Good 0")
        world.typed_deal(title="Refused")  # a 400: marked ✖ and passed
        world.typed_deal(title="Unknown", referral_id="0b1f8a52-0000-4000-8000-00000000d1e5")  # 404: failed
        world.typed_deal(title="Invalid", referral_id="not-a-guid")  # rejected before any call
        for n in range(1, 5):
            world.typed_deal(title=f"Good {n}")
        world.typed_deal(title="Unlucky")  # a 503: retry, the watermark stops before it
        world.typed_deal(title="Good 5")
        errors = {"Refused": 400, "Unlucky": 503}
        world.referrals.refuse_create = lambda draft: (
            ApiError(SERVICE, "POST", "referrals", errors[draft.name], "x", "no") if draft.name in errors else None
        )
        first = poll_with(world, concurrency).poll()
        world.referrals.refuse_create = None
        second = poll_with(world, concurrency).poll()
        return (
            [(r.crm_id, r.outcome) for r in first.records],
            [(r.crm_id, r.outcome) for r in second.records],
            world.state.watermark(WATERMARK),
            dict(world.referrals.calls),
        )

    one, eight = run(1), run(8)

    assert one[0] == eight[0], "the first poll reports the same records, in the same order, with the same outcomes"
    # The second poll's order is the order the first one's write-backs landed in: the same records and outcomes.
    assert sorted(one[1]) == sorted(eight[1])
    assert one[2:] == eight[2:], "the same watermark and the same Partner Center calls"
    first, second, _, calls = one
    assert Counter(o for _, o in first) == {"created": 6, "rejected": 2, "failed": 1, "retry": 1}
    assert Counter(o for _, o in second) == {"created": 1, "unchanged": 9}
    assert calls["POST"] == 9  # 7 shares, the refused one, the unlucky one's first try


# ---------------------------------------------------------------------------- stopping
def test_throttled_stops_taking_records_and_the_ones_in_hand_finish(world: World) -> None:
    deals = typed(world, 30)
    refuse(world, "Deal 5", Throttled(SERVICE, "POST", "referrals", 429, 120))

    report = poll_with(world, 4).poll()

    handed = [r.crm_id for r in report.records]
    assert handed == [d.crm_id for d in deals[: len(handed)]], "a prefix of the CRM's order"
    assert 6 <= len(handed) <= 6 + 3, "after the 429 no record was taken beyond those in hand"
    assert report.outcomes["throttled"] == 1
    assert report.outcomes["created"] == len(handed) - 1, "the records in hand finished"
    assert world.referrals.calls["POST"] == len(handed), "nothing beyond them reached Partner Center"
    assert world.state.watermark(WATERMARK) == deals[4].modified_on
    assert not report.time_boxed

    world.referrals.refuse_create = None
    rest = poll_with(world, 4).poll()

    assert rest.outcomes["created"] == 30 - report.outcomes["created"]
    assert sorted(len(world.referrals.by_external_id(d.crm_id)) for d in deals) == [1] * 30


def test_the_time_box_stops_taking_records_and_the_next_poll_goes_on(world: World) -> None:
    deals = typed(world, 30)
    reports = []
    while not reports or reports[-1].time_boxed:
        reports.append(poll_with(world, 4, max_seconds=5, monotonic=Ticks()).poll())
        world.clock.advance(1)
        assert len(reports) < 15, "the polls do not converge"

    first = reports[0]
    assert first.time_boxed
    assert len(first.records) < 30
    assert [r.crm_id for r in first.records] == [d.crm_id for d in deals[: len(first.records)]]
    assert first.outcomes == {"created": len(first.records)}, "every record in hand finished"
    assert world.state.last_run(WATERMARK)["last_time_boxed"] is False
    created = Counter(r.crm_id for rep in reports for r in rep.records if r.outcome == "created")
    assert created == {d.crm_id: 1 for d in deals}
    assert world.referrals.calls["POST"] == 30


def test_a_page_that_cannot_be_read_ends_the_poll_and_keeps_what_was_done(world: World) -> None:
    deals = typed(world, 10)
    read = world.crm.changed_deals

    def failing_after_five(since: str | None) -> Iterator[CrmDeal]:
        pages = read(since)
        for _ in range(5):
            yield next(pages)
        raise ApiUnavailable("memory GET /deals failed: ReadTimeout")

    world.crm.changed_deals = failing_after_five  # type: ignore[method-assign]
    report = poll_with(world, 4).poll()

    assert [(r.crm_id, r.outcome) for r in report.records] == [(d.crm_id, "created") for d in deals[:5]]
    assert report.outcomes["retry"] == 1
    assert world.state.watermark(WATERMARK) == deals[4].modified_on

    world.crm.changed_deals = read  # type: ignore[method-assign]
    rest = poll_with(world, 4).poll()
    assert [r.crm_id for r in rest.records if r.outcome == "created"] == [d.crm_id for d in deals[5:]]


# ---------------------------------------------------------------------------- one referral, two records
def test_a_lead_and_its_opportunity_in_one_poll_take_the_referrals_claim_in_turn(world: World) -> None:
    opportunity = world.typed_deal(title="Qualified")
    poll_with(world, 1).poll()
    referral_id = world.record(opportunity).fields["referral_id"]
    world.clock.advance(1)
    lead = world.crm.seller_creates(
        title="Qualified",
        kind="lead",
        referral_id=referral_id,
        account=AccountData("Outbound Customer", postal_code="98052", country="US"),
        contact=ContactData("Ada", "Buyer", "ada@customer.example"),
        stage=DealStage.PENDING,
    )
    world.seller_changes(opportunity, deal_value=Decimal(75000))
    changed = list(world.crm.changed_deals(world.state.watermark(WATERMARK)))
    assert [d.crm_id for d in changed] == [lead, opportunity]

    # The first record to claim the referral holds it until the other has found the claim and waited.
    waited, get = threading.Event(), world.referrals.get
    first_get = threading.Event()

    def held_get(rid: str) -> Any:
        if not first_get.is_set():
            first_get.set()
            waited.wait(HOLD)
        return get(rid)

    def sleep(seconds: float) -> None:
        # A claim wait. Real time passes too, so the holder can finish: the fake clock's LEASE_WAIT lasts
        # about three real seconds, plenty for a few in-memory calls even on a loaded machine.
        waited.set()
        time.sleep(0.01)
        world.clock.advance(seconds / 4)

    world.referrals.get = held_get  # type: ignore[method-assign]
    report = poll_with(world, 2, sleep=sleep).poll()

    assert waited.is_set(), "the two records never met at the referral's claim"
    assert [(r.crm_id, r.outcome) for r in report.records] == [(lead, "unchanged"), (opportunity, "updated")]
    assert [p["status"] for p in world.referrals.patches] == [200]
    assert world.referrals.referral(referral_id)["details"]["dealValue"] == 75000
    assert world.state.watermark(WATERMARK) == changed[-1].modified_on
    assert world.state.read(referral_id).lease_owner == "", "the claim was released"

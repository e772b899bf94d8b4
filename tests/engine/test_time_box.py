"""Time-boxed timer runs: a poll or a reconciliation stops after ``max_seconds`` with its watermark saved,
and the next run goes on from there: nothing shared twice, nothing missed."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from shared.mapping.inbound import InboundOptions
from shared.sync.outbound import OutboundSync
from shared.sync.reconcile import Reconciler
from tests.contract.referrals import SHARED
from tests.engine.conftest import World


class Ticks:
    """A monotonic clock that moves one second each time it is read: one read per record handled."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def boxed_poll(world: World, seconds: float) -> OutboundSync:
    return OutboundSync(
        referrals=world.referrals,
        crm=world.crm,
        state=world.state,
        audit=world.audit,
        leases=world.leases,
        inbound_options=InboundOptions(),
        clock=world.clock,
        max_seconds=seconds,
        monotonic=Ticks(),
    )


def test_a_share_larger_than_the_time_box_completes_across_polls_each_deal_once(world: World) -> None:
    deals = [world.typed_deal(title=f"Boxed {n}") for n in range(25)]
    world.clock.advance(1)
    poll = boxed_poll(world, seconds=10)  # ten records a poll

    reports = []
    while not reports or reports[-1].time_boxed:
        reports.append(poll.poll())
        world.clock.advance(1)
        assert len(reports) < 10, "the polls do not converge"

    created = Counter(o.crm_id for r in reports for o in r.records if o.outcome == "created")
    assert created == dict.fromkeys(deals, 1)
    assert [r.time_boxed for r in reports][:3] == [True, True, True]
    assert reports[-1].time_boxed is False
    assert world.referrals.calls["POST"] == 25
    assert sorted(len(world.referrals.by_external_id(d)) for d in deals) == [1] * 25
    assert world.state.last_run("crm-memory")["last_time_boxed"] is False


def test_a_time_boxed_poll_saves_the_watermark_of_the_last_record_it_handled(world: World) -> None:
    first = world.typed_deal(title="First")
    world.typed_deal(title="Second")
    report = boxed_poll(world, seconds=1).poll()

    assert report.time_boxed
    assert [o.crm_id for o in report.records] == [first]
    assert world.state.watermark("crm-memory") == report.watermark_after
    assert world.state.last_run("crm-memory")["last_time_boxed"] is True


def test_a_time_boxed_reconciliation_goes_on_from_its_watermark(world: World) -> None:
    refs = []
    for _ in range(7):
        refs.append(world.incoming(SHARED))
        world.clock.advance(1)
    reconciler = Reconciler(
        referrals=world.referrals,
        state=world.state,
        leases=world.leases,
        enqueue=world.queue,
        first_run_lookback=dt.timedelta(hours=24),
        clock=world.clock,
        max_seconds=3,
        monotonic=Ticks(),
    )

    runs = [reconciler.run() for _ in range(4)]

    queued = Counter(ref_id for run in runs for ref_id in run.queued)
    assert set(queued) == {r.id for r in refs}
    assert [run.time_boxed for run in runs] == [True, True, True, False]

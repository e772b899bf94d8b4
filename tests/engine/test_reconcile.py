"""Reconciler: referrals changed without a webhook are queued, and the worker heals them."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.sync.inbound import PermanentSyncError
from tests.contract.referrals import SHARED
from tests.engine.conftest import World


def heal(world: World) -> list[str]:
    """Run the queued messages through the worker, as the queue trigger would."""
    done = []
    for message in world.queue.drain():
        world.inbound.sync(message.referral_id, source=message.source)
        done.append(message.referral_id)
    return done


def test_a_referral_changed_while_webhooks_were_lost_is_queued_and_healed(world: World) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    world.reconciler.run()
    world.queue.drain()

    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"dealValue": 65000}})  # no webhook arrives
    report = world.reconciler.run()

    assert report.queued == [ref.id]
    assert heal(world) == [ref.id]
    [record] = world.deals_of(ref.id)
    assert record.fields["deal_value"] == "65000"
    assert world.audit.history(ref.id)[0].source == "reconcile"


def test_referrals_already_synced_are_not_queued(world: World) -> None:
    synced, missed = world.incoming(SHARED), world.incoming(SHARED)
    world.inbound.sync(synced.id)

    report = world.reconciler.run()

    assert report.queued == [missed.id]
    assert report.seen == 2


def test_the_boundary_referral_is_seen_again_but_not_queued_again(world: World) -> None:
    ref = world.incoming(SHARED)
    first = world.reconciler.run()
    heal(world)

    second = world.reconciler.run()

    assert first.queued == [ref.id]
    assert second.watermark_before == first.watermark_after == ref.updated_date_time.isoformat()
    assert second.seen == 1, "ge, not gt: the referral at the watermark is listed again"
    assert second.queued == []


def test_the_first_run_looks_back_only_its_configured_window(world: World) -> None:
    old = world.incoming(SHARED)
    world.clock.advance(dt.timedelta(hours=25).total_seconds())
    recent = world.incoming(SHARED)

    report = world.reconciler.run()

    assert report.queued == [recent.id]
    assert old.id not in report.queued


def test_a_reconcile_already_running_is_not_run_twice(world: World) -> None:
    world.incoming(SHARED)
    assert world.leases.try_acquire("reconcile", 600)

    report = world.reconciler.run()

    assert report.ran is False
    assert world.queue.messages == []


def test_a_version_that_failed_for_good_is_not_queued_again_but_a_newer_one_is(world: World) -> None:
    """Each run would otherwise send the same failing version to the poison queue once more."""
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    world.reconciler.run()
    world.queue.drain()
    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"currency": "XTS"}})  # not set up in the CRM: fails for good
    with pytest.raises(PermanentSyncError):
        world.inbound.sync(ref.id)

    assert world.reconciler.run().queued == [], "the failed version waits for a resync or a replay"
    assert world.reconciler.run().queued == []

    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"currency": "USD"}})  # Partner Center changes it again
    assert world.reconciler.run().queued == [ref.id]
    assert heal(world) == [ref.id]
    assert world.state.get(ref.id).failed_version == ""  # type: ignore[union-attr]

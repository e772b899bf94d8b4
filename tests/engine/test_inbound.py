"""InboundSync (Partner Center → CRM) over the fakes and the memory CRM."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from azure.core.exceptions import ServiceResponseError

from sandbox.memory_crm import MemoryCrm
from shared.http import ApiError
from shared.mapping.inbound import InboundOptions
from shared.mapping.model import DealStage
from shared.store.leases import LeaseUnavailable
from shared.store.state import StateConflict
from shared.sync.inbound import InboundSync, PermanentSyncError
from tests.contract.referrals import LEAD, SHARED, WON, plan_of
from tests.engine.conftest import LEASE_SECONDS, LEASE_WAIT, World


def test_a_new_referral_creates_its_opportunity_and_remembers_it(world: World) -> None:
    ref = world.incoming(SHARED)

    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "created"
    [record] = world.deals_of(ref.id)
    assert outcome.crm_id == record.id
    assert record.fields["name"] == "✔ Test Cosell Invite_20"
    state = world.state.get(ref.id)
    assert state is not None
    assert (state.crm_entity, state.crm_id) == ("opportunity", record.id)
    assert state.pc_updated_at == ref.updated_date_time
    assert world.audit.outcomes(ref.id) == ["created"]


def test_an_unchanged_referral_makes_zero_crm_writes(world: World) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    writes = world.crm.writes
    world.crm.fail_next = AssertionError("the CRM was written")  # any write would raise

    outcome = world.inbound.sync(ref.id)  # the same event delivered again

    assert outcome.outcome == "unchanged"
    assert world.crm.writes == writes
    assert world.crm.fail_next is not None, "no write was even attempted"
    assert world.audit.outcomes(ref.id) == ["created", "unchanged"]


def test_a_referral_touched_without_a_mapped_change_writes_nothing(world: World) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    writes = world.crm.writes
    world.clock.advance(5)
    world.referrals.update(ref.id, {"statusReason": "Touched by Microsoft"})  # newer version, same mapping

    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "unchanged"
    assert world.crm.writes == writes
    state = world.state.get(ref.id)
    assert state is not None
    assert state.pc_updated > ref.updated_date_time.isoformat(), "the newer version is remembered"


def test_a_changed_field_is_written(world: World) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    world.clock.advance(5)
    world.referrals.update(ref.id, {"details": {"dealValue": 60000}})
    writes = world.crm.writes

    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "updated"
    [record] = world.deals_of(ref.id)
    assert record.fields["deal_value"] == "60000"
    assert world.crm.writes == writes + 1


def test_an_older_version_than_the_last_synced_is_skipped(world: World) -> None:
    ref = world.incoming(SHARED, deal_value=50000)
    old_time = ref.updated_date_time
    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"dealValue": 60000}})
    world.inbound.sync(ref.id)  # version 2 arrives first
    writes = world.crm.writes

    # The delayed event for version 1; the read is served stale (an older updatedDateTime).
    stale = old_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    world.referrals.update(ref.id, {"details": {"dealValue": 50000}, "updatedDateTime": stale})
    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "skipped"
    assert "out-of-order" in outcome.message
    assert world.crm.writes == writes
    [record] = world.deals_of(ref.id)
    assert record.fields["deal_value"] == "60000", "the newer version stays"
    assert world.audit.outcomes(ref.id) == ["created", "skipped"]


def test_the_same_version_again_is_not_out_of_order(world: World) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    state = world.state.get(ref.id)
    assert state is not None
    world.state.save(dataclasses.replace(state, pc_hash="a plan applied before a mapping change"))

    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "updated", "an equal updatedDateTime is re-synced, never skipped"


def test_a_closed_deal_is_reopened(world: World) -> None:
    ref = world.incoming(WON)
    world.inbound.sync(ref.id)
    [record] = world.deals_of(ref.id)
    assert record.stage == DealStage.WON

    world.clock.advance(60)
    world.referrals.update(ref.id, {"status": "Active", "substatus": "Accepted"})
    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "updated"
    assert world.record(record.id).stage == DealStage.OPEN
    assert "(Active/Accepted)" in world.record(record.id).audit.splitlines()[0]


def test_solutions_removed_in_partner_center_are_removed(world: World) -> None:
    ref = world.incoming(SHARED, solutions=["SOL-1", "SOL-2"])
    world.inbound.sync(ref.id)

    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"requirements": {"solutions": [{"id": "SOL-2", "name": "Two"}]}}})
    world.inbound.sync(ref.id)

    [record] = world.deals_of(ref.id)
    assert set(record.solutions) == {"SOL-2"}


def test_an_accepted_lead_becomes_an_opportunity_made_from_the_lead(world: World) -> None:
    ref = world.incoming(LEAD)
    world.inbound.sync(ref.id)
    [lead] = world.deals_of(ref.id, "lead")

    world.clock.advance(60)
    world.referrals.update(ref.id, {"status": "Active", "substatus": "Accepted"})
    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "created"
    [opportunity] = world.deals_of(ref.id)
    assert world.record(lead.id).stage == DealStage.ACCEPTED
    state = world.state.get(ref.id)
    assert state is not None
    assert (state.crm_entity, state.crm_id, state.lead_id) == ("opportunity", opportunity.id, lead.id)


def test_a_second_worker_takes_a_lapsed_claim_and_does_not_create_twice(world: World) -> None:
    ref = world.incoming(SHARED)
    # Worker A claimed the referral's state row, created the opportunity, and died before committing.
    until = world.clock.now + dt.timedelta(seconds=LEASE_SECONDS)
    world.state.insert_claim(ref.id, "worker-a", until.isoformat())
    world.crm.apply_inbound(plan_of(world.crm, world.referrals.referral(ref.id)), None, "Worker A.")

    with pytest.raises(LeaseUnavailable):
        world.inbound.sync(ref.id)  # worker B waits LEASE_WAIT seconds, A's claim is still live
    assert world.clock.now < until
    assert world.state.claims[ref.id][0] == "worker-a"

    world.clock.advance(LEASE_SECONDS - LEASE_WAIT + 1)  # A's claim has lapsed
    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "updated", "worker B found A's opportunity by the referral id"
    assert len(world.deals_of(ref.id)) == 1
    row = world.state.read(ref.id)
    assert row.state is not None
    assert row.state.crm_id == world.deals_of(ref.id)[0].id
    assert not row.lease_owner, "B's commit replaced the row, claim included"


def test_a_worker_that_lost_the_race_for_the_claim_decides_again_on_the_winners_state(world: World) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"notes": "Budget approved"}})
    # Worker A read the row; B synced the same version before A could claim it.
    seen_by_a = world.state.read(ref.id)
    assert world.inbound.sync(ref.id).outcome == "updated"
    writes = world.crm.writes

    with pytest.raises(StateConflict):
        world.inbound._claims.claim(seen_by_a)  # A's claim, If-Match the ETag A read
    outcome = world.inbound.sync(ref.id)  # A reads again and decides again

    assert outcome.outcome == "unchanged"
    assert world.crm.writes == writes
    assert len(world.deals_of(ref.id)) == 1


def test_an_unchanged_newer_version_moves_the_floor_so_an_older_one_is_still_skipped(world: World) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    assert ref.updated_date_time is not None
    world.clock.advance(60)
    world.referrals.update(ref.id, {"unmappedNote": "seen by Microsoft only"})

    assert world.inbound.sync(ref.id).outcome == "unchanged"

    # A version between the two, with a mapped change, as a worker that fetched it earlier would hold it:
    # older than the version just found unchanged, so it is skipped, not applied over it.
    between = ref.updated_date_time + dt.timedelta(seconds=30)
    world.referrals.update(
        ref.id, {"details": {"notes": "Withdrawn"}, "updatedDateTime": between.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    )
    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "skipped"
    assert "out-of-order" in outcome.message


def test_a_duplicate_delivery_writes_no_state(world: World) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    etag = world.state.read(ref.id).etag

    assert world.inbound.sync(ref.id).outcome == "unchanged"
    assert world.state.read(ref.id).etag == etag


def test_a_permanent_failure_marks_the_record_and_a_later_success_clears_it(world: World) -> None:
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    [record] = world.deals_of(ref.id)

    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"currency": "XTS"}})  # not set up in the CRM
    with pytest.raises(PermanentSyncError):
        world.inbound.sync(ref.id)

    assert world.record(record.id).fields["name"].startswith("✖ ")
    assert "Currency" in world.record(record.id).audit.splitlines()[0]
    assert world.audit.outcomes(ref.id) == ["created", "failed"]

    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"currency": "USD"}})
    outcome = world.inbound.sync(ref.id)

    assert outcome.outcome == "updated"
    assert world.record(record.id).fields["name"] == "✔ Test Cosell Invite_20"


def test_a_transient_crm_failure_is_retried_and_remembers_nothing(world: World) -> None:
    ref = world.incoming(SHARED)
    world.crm.fail_next = ApiError("crm", "PATCH", "x", 503, "", "unavailable")

    with pytest.raises(ApiError):
        world.inbound.sync(ref.id)

    assert world.state.get(ref.id) is None
    assert world.audit.outcomes(ref.id) == ["retry"]
    assert world.inbound.sync(ref.id).outcome == "created", "the host's retry succeeds"


def test_a_referral_partner_center_does_not_have_fails_for_good(world: World) -> None:
    with pytest.raises(PermanentSyncError):
        world.inbound.sync("9d3b7b0e-0000-4000-8000-000000000404")

    assert world.audit.outcomes("9d3b7b0e-0000-4000-8000-000000000404") == ["failed"]


def test_after_crm_kind_changes_a_synced_referral_is_created_in_the_new_crm(world: World) -> None:
    """The state of a referral synced into the old CRM must not make it "unchanged" for the new one."""
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    new_crm = MemoryCrm()
    new_crm.kind = "other-crm"
    switched = InboundSync(
        referrals=world.referrals,
        crm=new_crm,
        state=world.state,
        audit=world.audit,
        options=InboundOptions(),
        lease_seconds=LEASE_SECONDS,
        lease_wait=LEASE_WAIT,
        clock=world.clock,
        sleep=world.clock.advance,
    )

    outcome = switched.sync(ref.id)  # the same version, as a backfill after the switch sends it

    assert outcome.outcome == "created"
    [record] = [r for r in new_crm.records.values() if r.fields.get("referral_id") == ref.id]
    state = world.state.get(ref.id)
    assert state is not None
    assert (state.crm_kind, state.crm_id) == ("other-crm", record.id)


def test_a_storage_outage_is_handed_back_without_marking_the_record_failed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dropped Table Storage connection says nothing about the referral: no ✖, no "failed" row, no failure."""
    ref = world.incoming(SHARED)
    world.inbound.sync(ref.id)
    [record] = world.deals_of(ref.id)
    world.clock.advance(60)
    world.referrals.update(ref.id, {"details": {"dealValue": 75000}})
    commits = world.state.commit

    def dropped(*args: object) -> str:
        raise ServiceResponseError("Connection aborted.")  # the state write after the CRM write

    monkeypatch.setattr(world.state, "commit", dropped)
    with pytest.raises(ServiceResponseError):
        world.inbound.sync(ref.id)

    assert not world.record(record.id).fields["name"].startswith("✖")
    assert "failed" not in world.audit.outcomes(ref.id)
    monkeypatch.setattr(world.state, "commit", commits)
    world.clock.advance(LEASE_SECONDS + 1)  # the claim the outage left behind lapses before the host's retry
    assert world.inbound.sync(ref.id).outcome == "updated"

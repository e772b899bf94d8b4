"""State, audit and leases against Azurite."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest

from sandbox.azurite import Azurite
from shared.config import Settings
from shared.store.audit import AuditEntry, AuditLog
from shared.store.clients import AUDIT_TABLE, LEASE_TABLE, SYNC_STATE_TABLE, TOKEN_TABLE, table_client
from shared.store.leases import LeaseStore, LeaseUnavailable
from shared.store.state import CrmRecordState, StateStore, SyncState
from shared.store.tokens import TableRefreshTokenStore


@pytest.fixture(scope="module")
def settings(azurite: Azurite) -> Settings:
    return Settings(AzureWebJobsStorage=azurite.connection_string)


def test_state_round_trips_and_indexes_the_crm_record(settings: Settings) -> None:
    store = StateStore(table_client(settings, SYNC_STATE_TABLE))
    referral_id, crm_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert store.get(referral_id) is None
    state = SyncState(
        referral_id=referral_id,
        crm_entity="opportunity",
        crm_id=crm_id,
        pc_updated="2026-11-21T10:00:00.123456+00:00",
        part_hashes={"deal": "abc"},
        crm_fields={"estimatedvalue": 50000.0, "name": "✔ Deal"},
    )
    store.save(state)
    loaded = store.get(referral_id)
    assert loaded == state
    assert loaded.pc_updated_at == dt.datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert store.get_crm("opportunity", crm_id) is None  # linked only once both sides agree
    store.save_crm(
        CrmRecordState(
            "opportunity",
            crm_id,
            rejected_hash="h0",
            last_error="Not shared: x",
            create_intent="2026-11-21T10:00:00+00:00",
        )
    )
    store.agree("opportunity", crm_id, referral_id, "h1")
    assert store.get_crm("opportunity", crm_id) == CrmRecordState("opportunity", crm_id, referral_id, "h1")


def test_audit_history_is_newest_first(settings: Settings) -> None:
    log = AuditLog(table_client(settings, AUDIT_TABLE))
    referral_id = str(uuid.uuid4())
    start = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
    for n, outcome in enumerate(["created", "unchanged", "updated"]):
        log.append(
            AuditEntry("pc-to-crm", referral_id, "crm-1", outcome, f"step {n}", api_calls=n, source="webhook"),
            now=start + dt.timedelta(seconds=n),
        )
    history = log.history(referral_id)
    assert [e.outcome for e in history] == ["updated", "unchanged", "created"]
    assert history[0].api_calls == 2


def test_only_one_holder_at_a_time(settings: Settings) -> None:
    leases = LeaseStore(table_client(settings, LEASE_TABLE))
    name = f"referral_{uuid.uuid4()}"
    inside = 0
    overlaps = []
    lock = threading.Lock()

    def worker() -> None:
        nonlocal inside
        with leases.hold(name, seconds=30, wait=20, poll=0.02):
            with lock:
                inside += 1
                overlaps.append(inside)
            time.sleep(0.05)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [1] * 6


def test_held_lease_refuses_then_expired_lease_is_taken_over(settings: Settings) -> None:
    leases = LeaseStore(table_client(settings, LEASE_TABLE))
    name = f"poll_{uuid.uuid4()}"
    first = leases.try_acquire(name, seconds=1)
    assert first
    with pytest.raises(LeaseUnavailable), leases.hold(name, seconds=1, wait=0):
        pass
    time.sleep(1.2)  # the holder "crashed": its lease expires
    racers = [leases.try_acquire(name, seconds=30) for _ in range(3)]
    assert sum(1 for r in racers if r) == 1


def test_rotated_refresh_token_survives_a_restart_but_a_new_seed_wins(settings: Settings) -> None:
    table = table_client(settings, TOKEN_TABLE)
    name = f"pc-{uuid.uuid4().hex[:6]}"
    store = TableRefreshTokenStore(table, seed="seed-1", name=name)
    assert store.load() == "seed-1"
    store.save("rotated-2")
    assert TableRefreshTokenStore(table, seed="seed-1", name=name).load() == "rotated-2"  # a new process
    assert TableRefreshTokenStore(table, seed="seed-NEW", name=name).load() == "seed-NEW"  # re-consented


def test_a_lease_held_past_its_time_is_renewed_so_no_second_holder_gets_in(settings: Settings) -> None:
    leases = LeaseStore(table_client(settings, LEASE_TABLE))
    name = f"referral_{uuid.uuid4()}"
    taken: list[bool] = []
    with leases.hold(name, seconds=1, wait=0):
        for _ in range(6):  # three times the lease's own length
            time.sleep(0.5)
            taken.append(leases.try_acquire(name, seconds=30) is not None)
    assert taken == [False] * 6
    assert leases.try_acquire(name, seconds=30) is not None  # released at the end


@pytest.mark.parametrize("name", ["referral_../x", "crm_opportunity_a/b?c#d", "crm_" + "x" * 1024, "lead_\u0007\n"])
def test_any_id_makes_a_usable_storage_key(settings: Settings, name: str) -> None:
    leases = LeaseStore(table_client(settings, LEASE_TABLE))
    with leases.hold(name, seconds=5, wait=0):
        assert leases.try_acquire(name, seconds=5) is None
    log = AuditLog(table_client(settings, AUDIT_TABLE))
    log.append(AuditEntry("crm-to-pc", name, "crm-1", "rejected", "bad id"))
    assert [e.message for e in log.history(name)] == ["bad id"]
    store = StateStore(table_client(settings, SYNC_STATE_TABLE))
    store.save_crm(CrmRecordState("opportunity", name, last_error="x"))
    assert store.get_crm("opportunity", name) == CrmRecordState("opportunity", name, last_error="x")

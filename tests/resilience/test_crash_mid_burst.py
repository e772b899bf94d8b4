"""Crash mid-burst: ``kill -9`` the host while it syncs 40 referrals, restart it, and nothing is duplicated.

The stack is this module's own, so the kill cannot disturb other tests. Settings that keep it quick:
a function timeout of 10 s, so the messages the dead host had taken come back after 70 s (the local
host hides a message for functionTimeout + 60 s, as the Functions host hides it while it runs); and
``LEASE_SECONDS=10``, so the referral leases the dead host held free themselves in 10 s. Partner
Center's retries are spaced 1 s apart (10 attempts), so deliveries survive the restart. Dataverse
answers after 100 ms, so the burst lasts long enough to be cut.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient

from sandbox.stack import Stack
from tests.e2e.conftest import PROGRAMMING_ERRORS, fresh, sample
from tests.resilience.support import EVENTS_QUEUE, POISON_QUEUE, STACK_SETTINGS, audit_rows, queue_depth, wait_until

pytestmark = pytest.mark.e2e

REFERRALS = 40
CUSTOMERS = 10
CRASH_SETTINGS = {**STACK_SETTINGS, "AzureFunctionsJobHost__functionTimeout": "00:00:10", "LEASE_SECONDS": "10"}


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("crash")
    with Stack(data_dir, seed=13, log_path=data_dir / "host.log", extra_settings=CRASH_SETTINGS) as running:
        running.register_webhook()
        running.sandbox.partner_center.delivery_backoff = 1.0
        yield running


def _burst(tag: str) -> list[dict[str, Any]]:
    referrals = []
    for n in range(REFERRALS):
        customer = n % CUSTOMERS
        referral = fresh(sample("fixture_b_shared_accepted.json"), name=f"Crash deal {tag} {n}")
        referral["details"]["dealValue"] = 2000 + n
        referral["customerProfile"]["name"] = f"Crash Customer {tag} {customer}"
        referral["customerProfile"]["address"]["postalCode"] = f"7{customer:04d}"
        for member in referral["customerProfile"]["team"]:
            member["email"] = member["email"].replace("@", f".{tag}{customer}@")
        referrals.append(referral)
    return referrals


def _created(audit: TableClient, referrals: list[dict[str, Any]]) -> int:
    return sum(1 for r in referrals if any(row["outcome"] == "created" for row in audit_rows(audit, r["id"])))


def _started_not_finished(log: str, referrals: list[dict[str, Any]], audit: TableClient) -> list[str]:
    started = set(re.findall(r"Syncing referral ([0-9a-f-]{36})", log))
    return [r["id"] for r in referrals if r["id"] in started and not audit_rows(audit, r["id"])]


def test_kill_9_mid_burst_then_restart_leaves_one_record_per_referral_and_customer(crash_stack: Stack) -> None:
    stack = crash_stack
    pc, dv = stack.sandbox.partner_center, stack.sandbox.dataverse
    audit = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    tag = uuid.uuid4().hex[:6]
    referrals = _burst(tag)
    first_log: Path = stack.host.log_path

    dv.set_faults({"latency_ms": 100})
    try:
        for referral in referrals:
            pc.seed_referral(referral)
        wait_until(lambda: _created(audit, referrals) >= 5, 60, "the burst to be under way")
        exit_code = stack.kill_host()
        done_at_kill = _created(audit, referrals)
        cut = _started_not_finished(first_log.read_text(errors="replace"), referrals, audit)
    finally:
        dv.set_faults(None)
    assert exit_code == -9
    assert done_at_kill < REFERRALS, "the host finished before it was killed: nothing was cut"
    assert cut, "no sync was in flight when the host was killed"

    host = stack.restart_host()

    def converged() -> bool:
        opportunities = Counter(o.get("cosell_referralid") for o in dv.records("opportunities"))
        synced = all(opportunities[r["id"]] >= 1 for r in referrals)
        return synced and queue_depth(stack.azurite, EVENTS_QUEUE) == 0

    # The dead host's messages come back after functionTimeout + 60 s; wait for them to be worked off too.
    wait_until(converged, 150, "every referral synced and referral-events drained")

    by_referral = Counter(o.get("cosell_referralid") for o in dv.records("opportunities"))
    values = {o.get("cosell_referralid"): o.get("estimatedvalue") for o in dv.records("opportunities")}
    for n, referral in enumerate(referrals):
        assert by_referral[referral["id"]] == 1, f"referral {n} has {by_referral[referral['id']]} opportunities"
        assert values[referral["id"]] == 2000 + n
    prefix = f"Crash Customer {tag} "
    accounts = Counter(a["name"] for a in dv.records("accounts") if a["name"].startswith(prefix))
    assert accounts == {f"{prefix}{c}": 1 for c in range(CUSTOMERS)}
    emails = Counter(c["emailaddress1"] for c in dv.records("contacts") if f".{tag}" in (c.get("emailaddress1") or ""))
    assert len(emails) == 2 * CUSTOMERS
    assert set(emails.values()) == {1}
    assert queue_depth(stack.azurite, POISON_QUEUE) == 0

    after = host.output()
    retried = re.findall(r"Syncing referral ([0-9a-f-]{36}) \(webhook, attempt [2-9]\)", after)
    assert set(cut) <= set(retried), "the messages the dead host held must have come back to the new host"
    for log in (first_log.read_text(errors="replace"), after):
        crash = PROGRAMMING_ERRORS.search(log)
        assert crash is None, crash.group(0) if crash else ""
    print(
        f"\nkill -9 after {done_at_kill}/{REFERRALS} synced, {len(cut)} cut mid-sync; "
        f"after restart: {REFERRALS} opportunities, {CUSTOMERS} accounts, no poison"
    )

"""Under 30% injected 429/503 from every remote, 50 referrals still converge with no duplicate."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.hostproc import HostProcess
from tests.e2e.conftest import fresh, sample

pytestmark = pytest.mark.e2e

REFERRALS = 50
COMPANIES = 10


def _poison_count(azurite: Azurite) -> int:
    client = QueueClient.from_connection_string(azurite.connection_string, "referral-events-poison")
    try:
        return int(client.get_queue_properties().approximate_message_count or 0)
    except ResourceNotFoundError:
        return 0


def test_fifty_referrals_converge_under_thirty_percent_faults(
    host: HostProcess, sandbox: Sandbox, azurite: Azurite, wait_for_audit: Callable[..., list]
) -> None:
    faults = {"rate": 0.3, "statuses": [429, 503], "retry_after": 1, "seed": 2026}
    referrals = []
    for n in range(REFERRALS):
        company = n % COMPANIES
        referral = fresh(sample("fixture_b_shared_accepted.json"), name=f"Fault run deal {n}")
        referral["details"]["dealValue"] = 1000 + n
        referral["customerProfile"]["name"] = f"Fault Run Customer {company}"
        referral["customerProfile"]["address"]["postalCode"] = f"9{company:04d}"
        for member in referral["customerProfile"]["team"]:
            member["email"] = member["email"].replace("@", f"+{company}@")
        referrals.append(referral)
    for sim in (sandbox.partner_center, sandbox.dataverse, sandbox.entra):
        sim.set_faults(faults)
    started = time.monotonic()
    try:
        for referral in referrals:
            sandbox.partner_center.seed_referral(referral)
        for referral in referrals:
            wait_for_audit(referral["id"], outcome="created", timeout=240)
    finally:
        for sim in (sandbox.partner_center, sandbox.dataverse, sandbox.entra):
            sim.set_faults(None)
    elapsed = time.monotonic() - started

    dv = sandbox.dataverse
    sims = (sandbox.partner_center, dv, sandbox.entra)
    faulted = sum(1 for sim in sims for r in sim.recorded() if r.status in (429, 503))
    assert faulted > 0, "the run must actually have been faulted"
    by_referral = Counter(o.get("cosell_referralid") for o in dv.records("opportunities"))
    for n, referral in enumerate(referrals):
        assert by_referral[referral["id"]] == 1, f"referral {n} has {by_referral[referral['id']]} opportunities"
        opportunity = next(o for o in dv.records("opportunities") if o.get("cosell_referralid") == referral["id"])
        assert opportunity["estimatedvalue"] == 1000 + n
    accounts = Counter(a["name"] for a in dv.records("accounts") if a["name"].startswith("Fault Run Customer"))
    assert accounts == {f"Fault Run Customer {c}": 1 for c in range(COMPANIES)}
    emails = Counter(c["emailaddress1"] for c in dv.records("contacts") if "+" in (c.get("emailaddress1") or ""))
    assert set(emails.values()) == {1}
    assert len(emails) == 2 * COMPANIES
    assert _poison_count(azurite) == 0
    print(f"\n30% fault run: {REFERRALS} referrals converged in {elapsed:.1f}s; {faulted} injected faults absorbed")


def test_a_long_retry_after_puts_the_message_back_for_that_long_instead_of_retrying_early(
    host: HostProcess, sandbox: Sandbox, azurite: Azurite, wait_for_audit: Callable[..., list]
) -> None:
    """Dataverse service protection: "wait the full Retry-After"; retries before it extend the penalty."""
    dv = sandbox.dataverse
    referral = fresh(sample("fixture_b_shared_accepted.json"), name="Throttled deal")
    wait = 5  # longer than the stack's HTTP_MAX_BACKOFF_SECONDS (2): no in-call retry may take it
    # The sync's first Dataverse call is its $batch of look-ups (timer polls only GET, so never take the fault).
    throttle = {"rate": 1.0, "statuses": [429], "retry_after": wait, "max_faults": 1}
    dv.set_faults({**throttle, "routes": ["POST /api/data/v9.2/$batch"]})
    before = len(dv.recorded())
    try:
        sandbox.partner_center.seed_referral(referral)
        throttled = _wait_for(
            lambda: next((i for i, r in enumerate(dv.recorded()) if i >= before and r.status == 429), None)
        )
        throttled_at = time.monotonic()
        _wait_for(lambda: len(dv.recorded()) > throttled + 1 or None)
        waited = time.monotonic() - throttled_at
        [row, *_] = wait_for_audit(referral["id"], outcome="created", timeout=60)
    finally:
        dv.set_faults(None)
    # Nothing reached Dataverse until the message came back, invisible for the whole Retry-After.
    assert waited >= wait - 0.5, f"Dataverse was called again after {waited:.1f}s, before Retry-After ({wait}s)"
    assert sum(1 for o in dv.records("opportunities") if o.get("cosell_referralid") == referral["id"]) == 1
    assert _poison_count(azurite) == 0
    assert row["outcome"] == "created"


def _wait_for(probe: Callable[[], int | bool | None], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return int(found)
        time.sleep(0.02)
    raise AssertionError("timed out")

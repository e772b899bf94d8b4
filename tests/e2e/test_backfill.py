"""Backfill end to end: the local host, Azurite and the simulators over real HTTP, driven through the routes.

The stack is this module's own (a ``kill -9`` must not disturb other tests), and each test sets the
pacing it needs by restarting the host with those settings, as an operator would change them. A
function timeout of 20 s brings back what a killed host had taken after 80 s (the local host hides a
running message for functionTimeout + 60 s, as the Functions host does); ``LEASE_SECONDS=10`` frees
the referral leases it held.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

from sandbox.stack import Stack
from shared.config import Settings
from shared.messages import ReferralMessage
from shared.store.clients import queue_client
from tests.e2e.conftest import PROGRAMMING_ERRORS, REPO_ROOT, fresh, sample
from tests.resilience.support import STACK_SETTINGS, audit_rows, queue_depth, wait_until

pytestmark = pytest.mark.e2e

SETTINGS = {**STACK_SETTINGS, "AzureFunctionsJobHost__functionTimeout": "00:00:20", "LEASE_SECONDS": "10"}
CUSTOMERS = 25
QUEUES = ("referral-events", "referral-events-poison", "backfill-pages", "backfill-pages-poison")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("backfill")
    with Stack(data_dir, seed=17, log_path=data_dir / "host.log", extra_settings=SETTINGS) as running:
        running.register_webhook()
        yield running


def unstamped(**changes: Any) -> dict[str, Any]:
    """A sample referral with a new id, without the stamps Partner Center sets (so it sets them now)."""
    referral = fresh(sample("fixture_b_shared_accepted.json"), **changes)
    for stamped_by_partner_center in ("createdDateTime", "updatedDateTime", "eTag"):
        referral.pop(stamped_by_partner_center)
    return referral


def existing_referrals(stack: Stack, count: int, tag: str) -> list[dict[str, Any]]:
    """Referrals the partner had before the app was deployed: in Partner Center, no webhook ever sent."""
    referrals = []
    for n in range(count):
        customer = n % CUSTOMERS
        referral = unstamped(name=f"Backfill deal {tag} {n}")
        referral["details"]["dealValue"] = 1000 + n
        referral["customerProfile"]["name"] = f"Backfill Customer {tag} {customer}"
        referral["customerProfile"]["address"]["postalCode"] = f"6{customer:04d}"
        for member in referral["customerProfile"]["team"]:
            member["email"] = member["email"].replace("@", f".{tag}{customer}@")
        referrals.append(stack.sandbox.partner_center.seed_referral(referral, fire=False))
    return referrals


def start_backfill(stack: Stack, body: dict[str, Any]) -> str:
    response = httpx.post(stack.host.url("/api/manage/backfill"), json=body, timeout=30)
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


def status(stack: Stack) -> dict[str, Any]:
    response = httpx.get(stack.host.url("/api/manage/status"), timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def progress(stack: Stack, job_id: str) -> dict[str, Any]:
    backfill = status(stack)["backfill"]
    assert backfill is not None
    assert backfill["jobId"] == job_id
    return dict(backfill)


def completed(stack: Stack, job_id: str, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        crash = PROGRAMMING_ERRORS.search(stack.host.output())
        assert crash is None, f"the function app crashed: {crash.group(0) if crash else ''}"
        found = progress(stack, job_id)
        assert found["state"] not in ("stopped", "superseded"), found
        return found if found["state"] == "completed" else None

    return wait_until(done, timeout, f"backfill {job_id} to complete", interval=1.0)


def since_now() -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()


def writes(requests: list[Any]) -> list[Any]:
    return [r for r in requests if r.method in ("POST", "PATCH", "DELETE") and "oauth2" not in r.path]


# ---------------------------------------------------------------------------------------------------


def test_live_webhooks_do_not_wait_behind_a_backfill(stack: Stack) -> None:
    stack.restart_host({"BACKFILL_REFERRALS_PER_MINUTE": "120", "BACKFILL_QUEUE_AHEAD_MINUTES": "10"})
    tag = uuid.uuid4().hex[:6]
    since = since_now()
    existing_referrals(stack, 40, tag)  # 20 s of backfill at 120 a minute
    job_id = start_backfill(stack, {"since": since})
    wait_until(lambda: progress(stack, job_id)["listingDone"], 30, "the backfill to list its referrals")

    live = fresh(sample("fixture_b_shared_accepted.json"), name=f"Live deal {tag}")
    stack.sandbox.partner_center.seed_referral(live)  # a new referral: Partner Center sends the webhook
    audit = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    wait_until(lambda: audit_rows(audit, live["id"]), 30, "the live referral to sync")
    during = progress(stack, job_id)
    # The backfill's messages are invisible until their turn: the webhook's was handled as soon as it came.
    assert during["remaining"] >= 10, during
    assert audit_rows(audit, live["id"])[0]["source"] == "webhook"

    done = completed(stack, job_id, 120)
    assert (done["listed"], done["synced"], done["failed"], done["remaining"]) == (40, 40, 0, 0)


def test_the_admin_command_starts_a_backfill_and_follows_it_to_the_end(stack: Stack, tmp_path: Path) -> None:
    """``python -m shared.cli backfill --wait`` from a workstation: settings from local.settings.json."""
    stack.restart_host({"BACKFILL_REFERRALS_PER_MINUTE": "6000"})
    since = since_now()
    existing_referrals(stack, 30, uuid.uuid4().hex[:6])
    values = stack.sandbox.app_settings(stack.azurite.connection_string)
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    env = {k: v for k, v in os.environ.items() if k not in values and not k.startswith(("BACKFILL_", "CRM_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "shared.cli", "backfill", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    refused = cli("--since", "last week")
    assert (refused.returncode, refused.stdout.strip()) == (
        2,
        '"since" must be an ISO 8601 date or date-time in the past, such as 2024-01-01 or 2024-01-01T00:00:00Z.',
    )
    waited = cli("--since", since, "--wait", "--interval", "0.5")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    lines = waited.stdout.strip().splitlines()
    job_id = status(stack)["backfill"]["jobId"]
    assert lines[0] == f"Backfill {job_id} started (since {since})."
    assert lines[-1] == "completed: 30 listed (0 already in sync), 30 synced, 0 failed, 0 remaining (100.0%)"


def test_status_shows_the_last_crm_poll_and_reconcile_runs_with_their_api_calls(stack: Stack) -> None:
    seeded = stack.sandbox.partner_center.seed_referral(unstamped(), fire=False)
    stack.host.fire("referral_reconcile")  # a referral changed in the last 24 h that no webhook brought
    stack.host.fire("crm_to_partner_center")
    body = status(stack)
    reconcile, poll = body["reconcile"], body["crmPoll"]
    assert reconcile["queued"] >= 1
    assert reconcile["seen"] >= reconcile["queued"]
    assert reconcile["apiCalls"]["partner-center"] >= 1
    assert dt.datetime.fromisoformat(reconcile["lastRunAt"]) > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert poll["apiCalls"]["dataverse"] >= 2  # one query per table: opportunities, leads
    assert dt.datetime.fromisoformat(poll["lastRunAt"]) > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    audit = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    wait_until(lambda: audit_rows(audit, seeded["id"]), 30, "the reconciled referral to sync")
    assert audit_rows(audit, seeded["id"])[0]["source"] == "reconcile"


@pytest.mark.timeout(900)
def test_backfill_of_1000_survives_a_kill_9_each_referral_once_and_a_second_backfill_writes_nothing(
    stack: Stack,
) -> None:
    # Paced faster than the sandbox syncs (the pace itself is tests/integration/test_backfill.py's), and
    # listing no further ahead than the pace: a page every 5 s, so the kill lands while pages are listed.
    stack.restart_host({"BACKFILL_REFERRALS_PER_MINUTE": "1200", "BACKFILL_QUEUE_AHEAD_MINUTES": "0"})
    dv, pc = stack.sandbox.dataverse, stack.sandbox.partner_center
    tag = uuid.uuid4().hex[:6]
    since = since_now()
    referrals = existing_referrals(stack, 1000, tag)
    ids = {r["id"] for r in referrals}
    dv.reset_stats()

    job_id = start_backfill(stack, {"since": since})
    at_kill = wait_until(
        lambda: (p := progress(stack, job_id))["synced"] >= 50 and p["pagesListed"] >= 2 and p,
        240,
        "the backfill to be under way",
    )
    assert stack.kill_host() == -9
    assert at_kill["synced"] < 1000, "the backfill finished before the kill: nothing was cut"
    stack.restart_host()

    done = completed(stack, job_id, 420)
    assert {k: done[k] for k in ("listed", "queued", "alreadyInSync", "synced", "failed", "remaining")} == {
        "listed": 1000,
        "queued": 1000,
        "alreadyInSync": 0,
        "synced": 1000,
        "failed": 0,
        "remaining": 0,
    }
    assert (done["percent"], done["listingDone"], done["pagesListed"]) == (100.0, True, 10)

    # One opportunity per referral, one account per customer, one contact per email: nothing twice.
    opportunities = Counter(o.get("cosell_referralid") for o in dv.records("opportunities"))
    assert {r: opportunities[r] for r in ids} == dict.fromkeys(ids, 1)
    mine = [o for o in dv.records("opportunities") if o.get("cosell_referralid") in ids]
    values = {o["cosell_referralid"]: o["estimatedvalue"] for o in mine}
    assert values == {r["id"]: 1000 + n for n, r in enumerate(referrals)}
    prefix = f"Backfill Customer {tag} "
    accounts = Counter(a["name"] for a in dv.records("accounts") if a["name"].startswith(prefix))
    assert accounts == {f"{prefix}{c}": 1 for c in range(CUSTOMERS)}
    emails = Counter(c["emailaddress1"] for c in dv.records("contacts") if f".{tag}" in (c.get("emailaddress1") or ""))
    assert (len(emails), set(emails.values())) == (2 * CUSTOMERS, {1})
    # The audit agrees: no referral created twice, none failed, every one synced. (A sync the kill cut
    # after its CRM write but before its audit row is finished by the retry as "updated" or "unchanged".)
    audit = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    outcomes: dict[str, Counter[str]] = {r: Counter() for r in ids}
    for row in audit.query_entities("direction eq 'pc-to-crm'", select=["referral_id", "outcome"]):
        if row["referral_id"] in outcomes:
            outcomes[row["referral_id"]][row["outcome"]] += 1
    assert max(c["created"] for c in outcomes.values()) == 1
    assert all(c["created"] + c["updated"] + c["unchanged"] >= 1 for c in outcomes.values())
    assert sum(c["failed"] for c in outcomes.values()) == 0
    cut = sum(1 for c in outcomes.values() if not c["created"])
    assert [queue_depth(stack.azurite, q) for q in QUEUES] == [0, 0, 0, 0]
    assert progress(stack, job_id)["synced"] == 1000  # late duplicates counted nothing more

    # A second backfill over the same referrals: everything already in sync, not one CRM call.
    dv.reset_stats()
    pc.reset_stats()
    again = completed(stack, start_backfill(stack, {"since": since}), 120)
    assert (again["listed"], again["alreadyInSync"], again["queued"], again["synced"]) == (1000, 1000, 0, 1000)
    assert dv.recorded() == []
    second_calls = [r.path for r in pc.recorded()]
    assert second_calls == ["/v1.0/engagements/referrals"] * 10  # the list pages only

    # And a referral the worker is handed again anyway (a replay, a late duplicate) writes nothing either.
    settings = Settings(AzureWebJobsStorage=stack.azurite.connection_string)
    again_ids = [r["id"] for r in referrals[:20]]
    queue = queue_client(settings, "referral-events")
    for referral_id in again_ids:
        queue.send_message(ReferralMessage(referral_id=referral_id, source="replay").to_json())
    wait_until(
        lambda: all(audit_rows(audit, r)[0]["source"] == "replay" for r in again_ids), 60, "the replays to be synced"
    )
    assert {audit_rows(audit, r)[0]["outcome"] for r in again_ids} == {"unchanged"}
    assert writes(dv.recorded()) == []

    after = stack.host.output()
    crash = PROGRAMMING_ERRORS.search(after)
    assert crash is None, crash.group(0) if crash else ""
    print(
        f"\nbackfill of 1000: kill -9 at {at_kill['synced']} synced, {at_kill['pagesListed']} of 10 pages listed; "
        f"completed with 1000 opportunities, {CUSTOMERS} accounts, no duplicate ({cut} finished by a retry "
        f"after the kill); second backfill: {len(second_calls)} Partner Center calls, 0 Dataverse calls"
    )


def test_backfill_into_salesforce_creates_each_referral_once_and_a_second_one_writes_nothing(stack: Stack) -> None:
    stack.restart_host({**stack.sandbox.salesforce_settings(), "BACKFILL_REFERRALS_PER_MINUTE": "6000"})
    sf = stack.sandbox.salesforce
    tag = uuid.uuid4().hex[:6]
    since = since_now()
    referrals = existing_referrals(stack, 150, tag)
    ids = {r["id"] for r in referrals}
    job_id = start_backfill(stack, {"since": since})
    done = completed(stack, job_id, 240)
    assert (done["listed"], done["synced"], done["failed"], done["pagesListed"]) == (150, 150, 0, 2)
    opportunities = Counter(o.get("Referral_Identifier__c") for o in sf.records("Opportunity"))
    assert {r: opportunities[r] for r in ids} == dict.fromkeys(ids, 1)

    sf.reset_stats()
    again = completed(stack, start_backfill(stack, {"since": since}), 120)
    assert (again["alreadyInSync"], again["queued"]) == (150, 0)
    assert writes(sf.recorded()) == []
    assert status(stack)["crm"] == "salesforce"

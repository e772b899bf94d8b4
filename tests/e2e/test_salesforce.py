"""Salesforce end to end: the same host, Azurite and Partner Center, with CRM_KIND=salesforce.

A stack of its own (module scope), so the Dynamics 365 tests and these never share a host. Every
check reads the simulated org's rows, as a Salesforce admin would.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from sandbox.sellers import SalesforceSeller
from sandbox.stack import Stack
from tests.e2e.conftest import FIXTURES, fresh, sample

pytestmark = pytest.mark.e2e

POLL = "crm_to_partner_center"


@pytest.fixture(scope="module")
def sf_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("salesforce")
    settings = {
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
        "CRM_POLL_SCHEDULE": "0 0 0 1 1 *",
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "HTTP_TIMEOUT_SECONDS": "2",
        "HTTP_MAX_BACKOFF_SECONDS": "2",
        "SALESFORCE_LIMIT_PAUSE_SECONDS": "1",
    }
    with Stack(data_dir, seed=11, crm="salesforce", log_path=data_dir / "host.log", extra_settings=settings) as stack:
        stack.register_webhook()
        yield stack


@pytest.fixture(scope="module")
def seller(sf_stack: Stack) -> SalesforceSeller:
    return SalesforceSeller(sf_stack.sandbox)


def audit_rows(stack: Stack, referral_id: str) -> list[dict[str, Any]]:
    table = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    try:
        return [dict(r) for r in table.query_entities("PartitionKey eq @pk", parameters={"pk": referral_id})]
    except ResourceNotFoundError:
        return []


def wait_synced(stack: Stack, referral_id: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in audit_rows(stack, referral_id) if r.get("outcome") in ("created", "updated", "unchanged")]
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"referral {referral_id}: {audit_rows(stack, referral_id)}")


def by_referral(stack: Stack, sobject: str, referral_id: str) -> list[dict[str, Any]]:
    return [r for r in stack.sandbox.salesforce.records(sobject) if r.get("Referral_Identifier__c") == referral_id]


def sf_writes(stack: Stack) -> list[Any]:
    return [r for r in stack.sandbox.salesforce.recorded() if r.method in ("POST", "PATCH", "DELETE")]


def last_poll_calls(stack: Stack) -> dict[str, int]:
    row = TableClient.from_connection_string(stack.azurite.connection_string, "SyncState").get_entity(
        "watermark", "crm-salesforce"
    )
    return dict(json.loads(row["last_api_calls"]))


def test_every_sample_referral_becomes_the_expected_salesforce_records(sf_stack: Stack) -> None:
    pc, sf = sf_stack.sandbox.partner_center, sf_stack.sandbox.salesforce
    lead = fresh(sample("fixture_a_list.json"))
    shared = fresh(sample("fixture_b_shared_accepted.json"))
    won = fresh(sample("fixture_c_closed_won.json"))
    for referral in (lead, shared, won):
        pc.seed_referral(referral)
        wait_synced(sf_stack, referral["id"])

    [lead_row] = by_referral(sf_stack, "Lead", lead["id"])
    assert lead_row["Company"] == lead["customerProfile"]["name"]
    assert lead_row["Status"] == "Open - Not Contacted"
    assert lead_row["LastName"]

    [opportunity] = by_referral(sf_stack, "Opportunity", shared["id"])
    assert opportunity["Name"] == "✔ Test Cosell Invite_20"
    assert (opportunity["StageName"], opportunity["Amount"], opportunity["CurrencyIsoCode"]) == (
        "Qualification",
        50000,
        "USD",
    )
    assert opportunity["Sync_with_Partner_Center__c"] is True
    assert opportunity["Referral_Link__c"].endswith(shared["id"])
    assert (
        opportunity["Audit__c"]
        .splitlines()[0]
        .endswith("Partner Center referral to CRM sync success (Active/Accepted).")
    )
    account = sf.get("Account", opportunity["AccountId"])
    assert account is not None
    assert (account["Name"], account["BillingPostalCode"], account["BillingCountryCode"]) == (
        "Contoso Customer Inc",
        "98052",
        "US",
    )
    roles = [r for r in sf.records("OpportunityContactRole") if r["OpportunityId"] == opportunity["Id"]]
    primary = [r for r in roles if r["IsPrimary"]]
    assert len(primary) == 1
    contact = sf.get("Contact", primary[0]["ContactId"])
    assert contact is not None
    assert contact["Email"] == shared["customerProfile"]["team"][0]["email"].lower()
    assert contact["AccountId"] == account["Id"]
    solutions = [r for r in sf.records("Microsoft_Solution__c") if r["Opportunity__c"] == opportunity["Id"]]
    assert [s["Solution_Identifier__c"] for s in solutions] == ["Dynamics365forFieldService"]

    [closed] = by_referral(sf_stack, "Opportunity", won["id"])
    assert (closed["StageName"], closed["IsWon"]) == ("Closed Won", True)


def test_three_deliveries_one_opportunity_one_patch_per_change_none_when_unchanged(sf_stack: Stack) -> None:
    pc = sf_stack.sandbox.partner_center
    referral = fresh(sample("fixture_b_shared_accepted.json"), name="Salesforce idempotent deal")
    referral["customerProfile"]["name"] = "Idempotent Customer Ltd"
    pc.seed_referral(referral)
    wait_synced(sf_stack, referral["id"])
    before = len(sf_writes(sf_stack))
    pc.deliver(referral["id"], "referral-updated", times=3)
    wait_synced(sf_stack, referral["id"], count=4)
    assert len(by_referral(sf_stack, "Opportunity", referral["id"])) == 1
    assert len(sf_writes(sf_stack)) == before  # unchanged: no write at all

    pc.update_referral(referral["id"], {"details": {"dealValue": 75000}})
    wait_synced(sf_stack, referral["id"], count=5)
    writes = sf_writes(sf_stack)[before:]
    assert [(w.method, w.path.split("/")[-2]) for w in writes] == [("PATCH", "Opportunity")]
    assert writes[0].body["Amount"] == 75000
    [row] = by_referral(sf_stack, "Opportunity", referral["id"])
    assert row["Amount"] == 75000


@pytest.mark.parametrize("name", ["O'Brien & Sons) or (1 eq 1", "Bob\\'s Shop"])
def test_hostile_company_names_match_their_existing_account_and_create_no_other(sf_stack: Stack, name: str) -> None:
    sf, pc = sf_stack.sandbox.salesforce, sf_stack.sandbox.partner_center
    existing = sf.insert("Account", {"Name": name, "BillingPostalCode": "10001", "BillingCountryCode": "US"})
    referral = fresh(sample("fixture_b_shared_accepted.json"))
    referral["customerProfile"]["name"] = name
    referral["customerProfile"]["address"]["postalCode"] = "10001"
    pc.seed_referral(referral)
    wait_synced(sf_stack, referral["id"])
    [opportunity] = by_referral(sf_stack, "Opportunity", referral["id"])
    assert opportunity["AccountId"] == existing
    assert [a["Id"] for a in sf.records("Account") if a["Name"] == name] == [existing]


def test_salesforce_to_partner_center_share_update_accept_win_lose_reject_and_idle(
    sf_stack: Stack, seller: SalesforceSeller
) -> None:
    pc, host = sf_stack.sandbox.partner_center, sf_stack.host
    # Share and update.
    deal = seller.opportunity(name="From Salesforce")
    host.fire(POLL)
    [referral] = [r for r in pc.referrals() if r.get("externalReferenceId") == deal]
    assert referral["inviteContext"]["assistanceRequestCode"] == "CustomerTechnicalArchitecture"
    view = seller.deal(deal)
    assert view is not None
    assert view.referral_id == referral["id"]
    assert view.name.startswith("✔ ")
    patches = len(pc.recorded("PATCH"))
    seller.set_value(deal, 61000)
    host.fire(POLL)
    assert [p.body for p in pc.recorded("PATCH")[patches:]] == [
        [{"op": "replace", "path": "/details/dealValue", "value": 61000.0}]
    ]
    # Nothing changed: the poll makes no Partner Center call.
    host.fire(POLL)
    assert "partner-center" not in last_poll_calls(sf_stack)

    # Accept by stage: a referral Microsoft sent, pending, sits in the on-hold stage until moved on.
    incoming = fresh(sample("fixture_b_shared_accepted.json"), status="New", substatus="Pending")
    incoming["customerProfile"]["name"] = "Pending Customer GmbH"
    pc.seed_referral(incoming)
    wait_synced(sf_stack, incoming["id"])
    [pending] = by_referral(sf_stack, "Opportunity", incoming["id"])
    assert pending["StageName"] == "Prospecting"
    seller.update("Opportunity", pending["Id"], {"StageName": "Needs Analysis"})
    host.fire(POLL)
    accepted = pc.get_referral(incoming["id"])
    assert (accepted["status"], accepted["substatus"]) == ("Active", "Accepted")

    # Win one, lose another.
    seller.win(deal, 61000)
    host.fire(POLL)
    assert (pc.get_referral(referral["id"])["status"], pc.get_referral(referral["id"])["substatus"]) == (
        "Closed",
        "Won",
    )
    seller.update("Opportunity", pending["Id"], {"StageName": "Closed Lost"})
    host.fire(POLL)
    assert pc.get_referral(incoming["id"])["substatus"] == "Lost"

    # A deal Partner Center would refuse: ✖ and a readable line in Audit__c, nothing sent.
    posts = len(pc.recorded("POST"))
    bad = seller.opportunity(value=0, name="No value")
    host.fire(POLL)
    rejected = seller.deal(bad)
    assert rejected is not None
    assert rejected.name.startswith("✖ ")
    assert rejected.audit.splitlines()[0].endswith("Not shared: the deal value must be greater than 0")
    assert len(pc.recorded("POST")) == posts


def test_fifty_referrals_converge_both_ways_under_limit_and_unavailable_faults(
    sf_stack: Stack, seller: SalesforceSeller
) -> None:
    sandbox = sf_stack.sandbox
    pc, sf = sandbox.partner_center, sandbox.salesforce
    referrals = []
    for n in range(50):
        referral = fresh(sample("fixture_b_shared_accepted.json"), name=f"SF fault deal {n}")
        referral["details"]["dealValue"] = 2000 + n
        referral["customerProfile"]["name"] = f"SF Fault Customer {n % 10}"
        referral["customerProfile"]["address"]["postalCode"] = f"8{n % 10:04d}"
        for member in referral["customerProfile"]["team"]:
            member["email"] = member["email"].replace("@", f"+sf{n % 10}@")
        referrals.append(referral)
    outbound = [seller.opportunity(name=f"SF outbound {n}") for n in range(5)]
    # Salesforce refuses with 403 REQUEST_LIMIT_EXCEEDED or 503; Partner Center and Entra ID throttle with 429.
    sf.set_faults({"rate": 0.3, "statuses": [403, 503], "seed": 99})
    for sim in (pc, sandbox.entra):
        sim.set_faults({"rate": 0.3, "statuses": [429, 503], "retry_after": 1, "seed": 99})
    try:
        for referral in referrals:
            pc.seed_referral(referral)
        for referral in referrals:
            wait_synced(sf_stack, referral["id"], timeout=240)
        deadline = time.monotonic() + 120
        while not set(outbound) <= {r.get("externalReferenceId") for r in pc.referrals()}:
            assert time.monotonic() < deadline, "the outbound deals did not all reach Partner Center"
            sf_stack.host.fire(POLL, timeout=120)
    finally:
        for sim in (pc, sf, sandbox.entra):
            sim.set_faults(None)
    assert any(r.status == 403 for r in sf.recorded()), "the run must have met REQUEST_LIMIT_EXCEEDED"
    per_referral = Counter(o.get("Referral_Identifier__c") for o in sf.records("Opportunity"))
    for n, referral in enumerate(referrals):
        assert per_referral[referral["id"]] == 1, f"referral {n}: {per_referral[referral['id']]} opportunities"
    accounts = Counter(a["Name"] for a in sf.records("Account") if a["Name"].startswith("SF Fault Customer"))
    assert accounts == {f"SF Fault Customer {c}": 1 for c in range(10)}
    emails = Counter(c["Email"] for c in sf.records("Contact") if "+sf" in (c.get("Email") or ""))
    assert set(emails.values()) == {1}
    shared = Counter(r.get("externalReferenceId") for r in pc.referrals())
    assert {deal: shared[deal] for deal in outbound} == dict.fromkeys(outbound, 1), "one referral per outbound deal"
    poison = QueueClient.from_connection_string(sf_stack.azurite.connection_string, "referral-events-poison")
    with contextlib.suppress(ResourceNotFoundError):  # no poison queue at all is fine too
        assert int(poison.get_queue_properties().approximate_message_count or 0) == 0


def test_zz_salesforce_log_has_no_secrets_tokens_or_customer_emails(sf_stack: Stack) -> None:
    log = (sf_stack.host.log_path).read_text(encoding="utf-8", errors="replace")
    assert "Executed 'Functions.referral_to_crm' (Succeeded" in log
    secrets = [sf_stack.sandbox.sf_client_secret, sf_stack.sandbox.pc_client_secret]
    tokens = list(sf_stack.sandbox.salesforce.sessions.issued)
    assert tokens, "Salesforce issued tokens during the run"
    emails = {
        token.strip(",").lower()
        for path in Path(FIXTURES).glob("fixture_*.json")
        for token in path.read_text().replace('"', " ").split()
        if "@" in token
    }
    leaks = [f"secret {s[:4]}..." for s in secrets if s in log]
    leaks += [f"token {t[:10]}..." for t in tokens if t in log]
    leaks += [e for e in emails if e in log.lower()]
    assert not leaks, f"found in the host log: {leaks}"
    assert httpx.get(sf_stack.host.url("/api/health"), timeout=10).status_code == 200

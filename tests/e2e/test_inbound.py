"""Partner Center → Dynamics 365 through the local host: signed webhook in, CRM records out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandbox.environment import Sandbox
from sandbox.hostproc import HostProcess
from tests.e2e.conftest import fresh, sample

pytestmark = pytest.mark.e2e

Wait = Callable[..., list[dict[str, Any]]]


def one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected exactly one row matching {match}, found {len(found)}"
    return found[0]


def writes(sandbox: Sandbox) -> list[Any]:
    return [r for r in sandbox.dataverse.recorded() if r.method in ("POST", "PATCH", "DELETE")]


def test_shared_accepted_sample_becomes_an_open_opportunity(host: HostProcess, sandbox: Sandbox, wait_for_audit: Wait):
    referral = fresh(sample("fixture_b_shared_accepted.json"))
    sandbox.partner_center.seed_referral(referral)
    rows = wait_for_audit(referral["id"])
    assert rows[0]["outcome"] == "created"

    dv = sandbox.dataverse
    opportunity = one(dv.records("opportunities"), cosell_referralid=referral["id"])
    assert opportunity["name"] == "✔ Test Cosell Invite_20"
    assert opportunity["estimatedvalue"] == 50000
    assert opportunity["_transactioncurrencyid_value"] == dv.currency_id("USD")
    assert (opportunity["statecode"], opportunity["statuscode"]) == (0, 1)
    assert opportunity["cosell_syncwithpartnercenter"] is True
    assert opportunity["cosell_visible"] is False
    assert opportunity["cosell_referrallink"].endswith(referral["id"])
    assert opportunity["description"].startswith("Customer is looking to leverage Dynamics 365")
    assert opportunity["cosell_audit"].endswith("Partner Center referral to CRM sync success (Active/Accepted).")

    account = one(dv.records("accounts"), accountid=opportunity["_customerid_value"])
    assert (account["name"], account["address1_postalcode"], account["address1_country"]) == (
        "Contoso Customer Inc",
        "98052",
        "US",
    )
    assert opportunity["_parentaccountid_value"] == account["accountid"]
    contacts = {c["emailaddress1"]: c for c in dv.records("contacts")}
    sue, joe = contacts["sue.smith@contoso.com"], contacts["joe.hansen@contoso.com"]
    assert (sue["firstname"], sue["lastname"], sue["_parentcustomerid_value"]) == ("Sue", "Smith", account["accountid"])
    assert joe["_parentcustomerid_value"] == account["accountid"]
    assert opportunity["_parentcontactid_value"] == sue["contactid"]
    solution = one(dv.records("cosell_solutions"), _cosell_opportunityid_value=opportunity["opportunityid"])
    assert (solution["cosell_solutionidentifier"], solution["cosell_name"]) == (
        "Dynamics365forFieldService",
        "Dynamics 365 for Field Service",
    )


def test_marketplace_lead_sample_becomes_a_lead(host: HostProcess, sandbox: Sandbox, wait_for_audit: Wait):
    referral = fresh(sample("fixture_a_list.json"))
    sandbox.partner_center.seed_referral(referral)
    wait_for_audit(referral["id"], outcome="created")
    dv = sandbox.dataverse
    lead = one(dv.records("leads"), cosell_referralid=referral["id"])
    assert lead["subject"] == "✔ Fabrikam Customer Inc"
    assert (lead["companyname"], lead["address1_city"], lead["address1_postalcode"], lead["address1_country"]) == (
        "Fabrikam Customer Inc",
        "Redmond",
        "98052",
        "US",
    )
    assert lead["estimatedamount"] == 10000
    assert lead["_transactioncurrencyid_value"] == dv.currency_id("USD")
    assert (lead["statecode"], lead["statuscode"]) == (0, 1)
    assert not [o for o in dv.records("opportunities") if o.get("cosell_referralid") == referral["id"]]


def test_won_sample_becomes_a_won_opportunity_closed_through_the_action(
    host: HostProcess, sandbox: Sandbox, wait_for_audit: Wait
):
    referral = fresh(sample("fixture_c_closed_won.json"))
    sandbox.partner_center.seed_referral(referral)
    wait_for_audit(referral["id"], outcome="created")
    dv = sandbox.dataverse
    opportunity = one(dv.records("opportunities"), cosell_referralid=referral["id"])
    assert (opportunity["statecode"], opportunity["statuscode"]) == (1, 3)
    assert opportunity["actualvalue"] == 50000
    close = one(dv.records("opportunitycloses"), _opportunityid_value=opportunity["opportunityid"])
    assert close["subject"].startswith("Won in Partner Center")


def test_same_event_three_times_yields_one_opportunity_and_no_extra_writes(
    host: HostProcess, sandbox: Sandbox, wait_for_audit: Wait
):
    referral = fresh(sample("fixture_b_shared_accepted.json"), name="Triple delivery")
    pc = sandbox.partner_center
    pc.seed_referral(referral, fire=False)
    pc.deliver(referral["id"], "referral-created", times=3)
    rows = wait_for_audit(referral["id"], count=3)
    assert sorted(r["outcome"] for r in rows) == ["created", "unchanged", "unchanged"]
    one(sandbox.dataverse.records("opportunities"), cosell_referralid=referral["id"])
    unchanged = [r for r in rows if r["outcome"] == "unchanged"]
    assert all(r["api_calls"] == 1 for r in unchanged)  # one GET of the referral, nothing else


def test_deal_value_change_is_exactly_one_opportunity_patch(host: HostProcess, sandbox: Sandbox, wait_for_audit: Wait):
    referral = fresh(sample("fixture_b_shared_accepted.json"), name="Deal value change")
    pc, dv = sandbox.partner_center, sandbox.dataverse
    pc.seed_referral(referral)
    wait_for_audit(referral["id"], outcome="created")
    opportunity_id = one(dv.records("opportunities"), cosell_referralid=referral["id"])["opportunityid"]
    before = len(writes(sandbox))

    pc.update_referral(referral["id"], {"details": {"dealValue": 75000}})
    rows = wait_for_audit(referral["id"], count=2)
    assert rows[0]["outcome"] == "updated"
    new_writes = writes(sandbox)[before:]
    assert [(w.method, w.path) for w in new_writes] == [("PATCH", f"/api/data/v9.2/opportunities({opportunity_id})")]
    body = new_writes[0].body
    assert set(body) == {"estimatedvalue", "cosell_audit"}
    assert body["estimatedvalue"] == 75000
    assert body["cosell_audit"].count("\n") == 1  # the new line on top of the first one
    assert dv.get("opportunities", opportunity_id)["estimatedvalue"] == 75000


def test_unchanged_referral_makes_no_crm_call(host: HostProcess, sandbox: Sandbox, wait_for_audit: Wait):
    referral = fresh(sample("fixture_b_shared_accepted.json"), name="Unchanged")
    sandbox.partner_center.seed_referral(referral)
    wait_for_audit(referral["id"], outcome="created")
    before = len(sandbox.dataverse.recorded())
    sandbox.partner_center.deliver(referral["id"], "referral-updated")
    rows = wait_for_audit(referral["id"], count=2)
    assert rows[0]["outcome"] == "unchanged"
    assert rows[0]["api_calls"] == 1
    assert len(sandbox.dataverse.recorded()) == before


def test_hostile_company_name_matches_its_existing_account(host: HostProcess, sandbox: Sandbox, wait_for_audit: Wait):
    hostile = "O'Brien & Sons) or (1 eq 1"
    dv = sandbox.dataverse
    existing = dv.insert("accounts", {"name": hostile, "address1_postalcode": "10001", "address1_country": "US"})
    dv.insert("accounts", {"name": "Decoy Ltd", "address1_postalcode": "10001"})
    accounts_before = len(dv.records("accounts"))
    referral = fresh(sample("fixture_b_shared_accepted.json"), name="Hostile name")
    referral["customerProfile"]["name"] = hostile
    referral["customerProfile"]["address"]["postalCode"] = "10001"
    referral["customerProfile"]["team"] = []
    sandbox.partner_center.seed_referral(referral)
    wait_for_audit(referral["id"], outcome="created")
    opportunity = one(dv.records("opportunities"), cosell_referralid=referral["id"])
    assert opportunity["_customerid_value"] == existing
    assert len(dv.records("accounts")) == accounts_before
    filters = [r.query for r in dv.recorded("GET", "/api/data/v9.2/accounts")]
    assert any("O%27%27Brien" in q or "O''Brien" in q for q in filters)

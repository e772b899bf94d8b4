"""Moving over from the co-sell connector in Salesforce: its records are adopted, then synced, not duplicated.

An org with the connector's package installed (its fields under a namespace, sandbox/sims/salesforce/
connector.py) holds records the connector made. ``python -m shared.cli adopt`` runs in process with the
app's settings (CRM_KIND=salesforce); then the same referrals arrive through the engine's inbound sync.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.sims.base import FaultConfig
from shared import cli
from tests.integration.adopt_support import by_outcome, connector_org, first_backfill, patches, run_adopt

NS = "pcref__"  # the simulated package's namespace (sandbox/sims/salesforce/connector.py)
CONNECTOR_AUDIT = "2023-05-02 09:05 - Partner Center Referral to CRM sync success."
SELLER_NEXT_STEP = "Call procurement after the reseller quote"


org, world = connector_org("salesforce", seed=37)


def connector_fields(referral_id: str, ns: str = NS, **overrides: Any) -> dict[str, Any]:
    return {
        f"{ns}Referral_Identifier__c": referral_id,
        f"{ns}Referral_Link__c": f"https://partner.microsoft.com/referrals/v2/inbox?id={referral_id}",
        f"{ns}Sync_with_Partner_Center__c": True,
        f"{ns}Referral_Visible__c": True,
        f"{ns}How_can_Microsoft_help__c": "Proof Of Concept or Demo",
        f"{ns}Microsoft_CRM_Identifier__c": "7-3KD8ZZ1",
        f"{ns}Referral_Program__c": "Azure IP co-sell",
        f"{ns}Audit__c": CONNECTOR_AUDIT,
        **{(k if k.startswith(ns) else f"{ns}{k}"): v for k, v in overrides.items()},
    }


def connector_opportunity(sf: Any, account: str, referral_id: str, created: str, **extra: Any) -> str:
    body = {
        "Name": "✓ Test Cosell Invite_20",
        "StageName": "Qualification",
        "CloseDate": "2026-12-01",
        "Amount": 45000,
        "AccountId": account,
        "NextStep": SELLER_NEXT_STEP,
        "CreatedDate": created,
        **connector_fields(referral_id),
        **extra,
    }
    return sf.insert("Opportunity", body)


def ours(sf: Any, sobject: str, referral_id: str) -> list[dict[str, Any]]:
    return [r for r in sf.records(sobject) if r.get("Referral_Identifier__c") == referral_id]


def test_connector_records_are_linked_once_then_synced_without_a_duplicate(world: Sandbox, capsys) -> None:
    sf, pc = world.salesforce, world.partner_center
    # The seller's own account for the deal: not the name Partner Center gives the customer.
    account = sf.insert("Account", {"Name": "Contoso Holdings", "BillingPostalCode": "10001"})
    shared, twice, refused, lead_ref = (str(uuid.uuid4()) for _ in range(4))
    opened = connector_opportunity(sf, account, shared, "2023-05-01T10:00:00.000+0000")
    first = connector_opportunity(sf, account, twice, "2023-05-03T10:00:00.000+0000")
    second = connector_opportunity(sf, account, twice, "2023-05-03T10:01:00.000+0000")  # the connector's double
    hit = connector_opportunity(sf, account, refused, "2023-04-01T10:00:00.000+0000")
    junk = connector_opportunity(sf, account, "see email from Bob", "2023-05-04T10:00:00.000+0000")
    lead = sf.insert(
        "Lead",
        {
            "LastName": "Fabrikam Customer Inc",
            "Company": "Fabrikam Customer Inc",
            "Status": "Open - Not Contacted",
            **connector_fields(lead_ref, Referral_Visible__c=False),
        },
    )
    before = {name: len(sf.records(name)) for name in ("Opportunity", "Lead", "Account")}

    writes = patches(sf)
    code, report = run_adopt(capsys)
    assert code == 1, report
    assert report["applied"] is False
    assert report["columns"]["found"]["opportunity"]["referral_id"] == f"{NS}Referral_Identifier__c"
    assert by_outcome(report) == {"adopted": {opened, first, hit, lead}, "duplicate": {second}, "invalid": {junk}}
    assert patches(sf) == writes, "a dry run writes nothing"

    sf.set_faults(
        FaultConfig(rate=1, statuses=[400], routes=["PATCH /services/data/<version>/sobjects/"], max_faults=1)
    )
    code, report = run_adopt(capsys, "--apply")
    sf.set_faults(None)
    failed = by_outcome(report)["failed"]
    assert len(failed) == 1
    assert by_outcome(report)["adopted"] == {opened, first, hit, lead} - failed

    writes = patches(sf)
    code, report = run_adopt(capsys, "--apply")
    assert by_outcome(report)["adopted"] == failed
    assert patches(sf) == writes + 1
    code, report = run_adopt(capsys, "--apply")
    assert "adopted" not in by_outcome(report)
    assert report["counts"]["linked"] == 4
    assert patches(sf) == writes + 1, "a second run copies nothing"

    row = sf.get("Opportunity", opened)
    assert row["Referral_Identifier__c"] == shared
    assert row["Referral_Link__c"] == f"https://partner.microsoft.com/referrals/v2/inbox?id={shared}"
    assert (row["Sync_with_Partner_Center__c"], row["Referral_Visible__c"]) == (True, True)
    assert row["How_can_Microsoft_help__c"] == "ProofOfConceptOrDemo", "the package's value, as the sync's code"
    assert (row["Microsoft_CRM_Identifier__c"], row["Referral_Program__c"]) == ("7-3KD8ZZ1", "Azure IP co-sell")
    audit = row["Audit__c"].splitlines()
    assert "Linked to the co-sell sync: copied the referral id" in audit[0]
    assert audit[1] == CONNECTOR_AUDIT

    outcomes = first_backfill(
        pc, {"fixture_b_shared_accepted.json": (shared, twice, refused), "fixture_a_list.json": (lead_ref,)}
    )
    assert outcomes == dict.fromkeys((shared, twice, refused, lead_ref), "updated"), "linked, not created"

    assert {name: len(sf.records(name)) for name in before} == before, "no opportunity, lead or account added"
    for referral_id, record in ((shared, opened), (twice, first), (refused, hit)):
        [linked] = ours(sf, "Opportunity", referral_id)
        assert linked["Id"] == record
        assert linked["NextStep"] == SELLER_NEXT_STEP, "the seller's data is kept"
        assert linked["AccountId"] == account, "and the account the seller gave it"
        assert linked["OwnerId"] == sf.seller_user_id
        assert linked["Name"] == "✔ Test Cosell Invite_20"
        assert linked["Amount"] == 50000
    [linked_lead] = ours(sf, "Lead", lead_ref)
    assert linked_lead["Id"] == lead
    assert sf.get("Opportunity", second)[f"{NS}Referral_Identifier__c"] == twice
    assert sf.get("Opportunity", second)["Referral_Identifier__c"] is None, "the duplicate stays for the admin"


def test_fields_the_integration_user_cannot_see_are_reported_as_such(
    org: Sandbox, azurite: Azurite, app_settings: Callable[..., None], capsys
) -> None:
    org.salesforce.clear()
    org.salesforce.install_connector(grant=False)  # installed for admins only: hidden by field-level security
    app_settings(org, azurite.connection_string, crm="salesforce")
    capsys.readouterr()
    assert cli.main(["adopt"]) == 2
    out = capsys.readouterr().out
    assert "not visible to this user (grant read access)" in out


def test_two_namespaces_need_connector_field_map_and_it_is_used_as_given(
    org: Sandbox, azurite: Azurite, app_settings: Callable[..., None], capsys
) -> None:
    sf = org.salesforce
    sf.clear()
    sf.install_connector("pcref")
    sf.install_connector("other")  # another package with the same field names
    account = sf.insert("Account", {"Name": "Contoso Customer Inc", "BillingPostalCode": "98052"})
    referral_id = str(uuid.uuid4())
    record = connector_opportunity(sf, account, referral_id, "2023-05-01T10:00:00.000+0000")

    app_settings(org, azurite.connection_string, crm="salesforce")
    capsys.readouterr()
    assert cli.main(["adopt"]) == 2, "which package is the connector's is not guessed"
    assert "name one in CONNECTOR_FIELD_MAP" in capsys.readouterr().out

    names = {"referral_id": "pcref__Referral_Identifier__c", "help_needed": "pcref__How_can_Microsoft_help__c"}
    app_settings(
        org, azurite.connection_string, crm="salesforce", CONNECTOR_FIELD_MAP=json.dumps({"opportunity": names})
    )
    code, report = run_adopt(capsys, "--apply")
    assert code == 0, report
    assert by_outcome(report) == {"adopted": {record}}
    row = sf.get("Opportunity", record)
    assert (row["Referral_Identifier__c"], row["How_can_Microsoft_help__c"]) == (referral_id, "ProofOfConceptOrDemo")
    assert row["Referral_Link__c"] is None, "only the fields the map names are read when two packages compete"


def test_an_org_set_up_by_the_2020_guide_shares_the_sync_fields_and_needs_nothing(
    org: Sandbox, azurite: Azurite, app_settings: Callable[..., None], capsys
) -> None:
    """The 2020 guide had admins create Referral_Identifier__c and the rest by hand: the sync's own names."""
    sf, pc = org.salesforce, org.partner_center
    sf.clear()
    account = sf.insert("Account", {"Name": "Contoso Customer Inc", "BillingPostalCode": "98052"})
    referral_id = str(uuid.uuid4())
    record = sf.insert(
        "Opportunity",
        {
            "Name": "✓ Test Cosell Invite_20",
            "StageName": "Qualification",
            "CloseDate": "2026-12-01",
            "AccountId": account,
            "Referral_Identifier__c": referral_id,
            "Sync_with_Partner_Center__c": True,
        },
    )
    app_settings(org, azurite.connection_string, crm="salesforce")
    writes = patches(sf)
    code, report = run_adopt(capsys, "--apply")
    assert code == 0, report
    assert report["records"] == []
    assert "referral_id" in report["columns"]["shared"]["opportunity"]
    assert patches(sf) == writes

    assert first_backfill(pc, {"fixture_b_shared_accepted.json": (referral_id,)}) == {referral_id: "updated"}
    assert [r["Id"] for r in ours(sf, "Opportunity", referral_id)] == [record]

"""Upsert by external id: ``PATCH /sobjects/{Object}/{Field}/{value}`` and reads by external id."""

from __future__ import annotations

import httpx

from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.support import create, error_of

BODY = {"Name": "Referral deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}


def test_create_then_update_then_duplicate(api: httpx.Client, sim: SalesforceSimulator) -> None:
    created = api.patch("/sobjects/Opportunity/Referral_Identifier__c/ref-42", json=BODY)
    assert created.status_code == 201
    opp = created.json()["id"]
    assert created.json() == {"id": opp, "success": True, "errors": [], "created": True}
    assert sim.get("Opportunity", opp)["Referral_Identifier__c"] == "ref-42"

    updated = api.patch("/sobjects/Opportunity/Referral_Identifier__c/ref-42", json={"StageName": "Qualification"})
    assert updated.status_code == 200  # API 46.0 and later answer 200 with created: false
    assert updated.json() == {"id": opp, "success": True, "errors": [], "created": False}
    assert sim.get("Opportunity", opp)["StageName"] == "Qualification"
    assert len(sim.records("Opportunity")) == 1

    duplicate = api.post("/sobjects/Opportunity", json={**BODY, "Referral_Identifier__c": "REF-42"})
    assert error_of(duplicate)["errorCode"] == "DUPLICATE_VALUE"


def test_before_api_46_an_update_answers_204(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    old = httpx.Client(base_url=f"{server.url}/services/data/v45.0", headers=api.headers, timeout=10)
    with old:
        assert old.patch("/sobjects/Opportunity/Referral_Identifier__c/r1", json=BODY).json() == {
            "id": old.get("/sobjects/Opportunity/Referral_Identifier__c/r1").json()["Id"],
            "success": True,
            "errors": [],
        }
        updated = old.patch("/sobjects/Opportunity/Referral_Identifier__c/r1", json={"Amount": 10})
        assert (updated.status_code, updated.content) == (204, b"")


def test_several_matches_answer_300_and_change_nothing(api: httpx.Client, sim: SalesforceSimulator) -> None:
    first = create(api, "Lead", LastName="A", Company="C", Email="dup@example.com")
    second = create(api, "Lead", LastName="B", Company="C", Email="dup@example.com")

    response = api.patch("/sobjects/Lead/Email/dup@example.com", json={"Title": "CTO"})

    assert response.status_code == 300
    assert sorted(response.json()) == sorted(f"/services/data/v60.0/sobjects/Lead/{i}" for i in (first, second))
    assert {r["Title"] for r in sim.records("Lead")} == {None}


def test_only_external_id_fields_can_key_an_upsert(api: httpx.Client) -> None:
    not_external = api.patch("/sobjects/Opportunity/Name/Deal", json={"Amount": 1})
    unknown = api.patch("/sobjects/Opportunity/Referral_Id__c/x", json={"Amount": 1})
    key_in_body = api.patch(
        "/sobjects/Opportunity/Referral_Identifier__c/x", json={**BODY, "Referral_Identifier__c": "x"}
    )

    for response, name in ((not_external, "Name"), (unknown, "Referral_Id__c")):
        assert response.status_code == 404
        assert error_of(response) == {
            "message": f"Provided external ID field does not exist or is not accessible: {name}",
            "errorCode": "NOT_FOUND",
        }
    assert error_of(key_in_body)["errorCode"] == "INVALID_FIELD"


def test_update_only_refuses_to_create_and_get_reads_by_external_id(api: httpx.Client) -> None:
    refused = api.patch("/sobjects/Opportunity/Referral_Identifier__c/nope", params={"updateOnly": "true"}, json=BODY)
    api.patch("/sobjects/Opportunity/Referral_Identifier__c/with%2Fslash", json=BODY)
    found = api.get("/sobjects/Opportunity/Referral_Identifier__c/WITH%2FSLASH", params={"fields": "Name"})
    missing = api.get("/sobjects/Opportunity/Referral_Identifier__c/other")

    assert refused.status_code == 404
    assert found.status_code == 200
    assert found.json()["Name"] == "Referral deal"
    assert (missing.status_code, error_of(missing)["errorCode"]) == (404, "NOT_FOUND")


def test_a_parent_can_be_set_by_its_external_id(api: httpx.Client, sim: SalesforceSimulator) -> None:
    opp = api.patch("/sobjects/Opportunity/Referral_Identifier__c/ref-7", json=BODY).json()["id"]

    solution = create(api, "Microsoft_Solution__c", Name="Azure", Opportunity__r={"Referral_Identifier__c": "ref-7"})
    unknown = api.post(
        "/sobjects/Microsoft_Solution__c", json={"Name": "X", "Opportunity__r": {"Referral_Identifier__c": "ref-8"}}
    )

    assert sim.get("Microsoft_Solution__c", solution)["Opportunity__c"] == opp
    assert error_of(unknown)["errorCode"] == "INVALID_FIELD"
    assert "Foreign key external ID: ref-8 not found" in error_of(unknown)["message"]


def test_the_account_and_contact_keys_are_unique_external_ids(api: httpx.Client, sim: SalesforceSimulator) -> None:
    """The sync's keys on Account and Contact: a second row with the same key (any case) is refused with
    DUPLICATE_VALUE; an upsert on the key creates once (201) and then updates that row (200)."""
    key = "6f1c3d4e-2b7a-5c8d-9e0f-a1b2c3d4e5f6"
    created = api.patch(f"/sobjects/Account/Cosell_Account_Key__c/{key}", json={"Name": "Keyed Ltd"})
    again = api.patch(f"/sobjects/Account/Cosell_Account_Key__c/{key.upper()}", json={"Name": "Keyed Ltd"})
    duplicate = api.post("/sobjects/Account", json={"Name": "Other", "Cosell_Account_Key__c": key.upper()})
    first = create(api, "Contact", LastName="A", Cosell_Contact_Key__c=key)
    second = api.post("/sobjects/Contact", json={"LastName": "B", "Cosell_Contact_Key__c": key})

    assert (created.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == created.json()["id"]
    assert error_of(duplicate)["errorCode"] == "DUPLICATE_VALUE"
    assert error_of(second) == {
        "message": f"duplicate value found: Cosell_Contact_Key__c duplicates value on record with id: {first}",
        "errorCode": "DUPLICATE_VALUE",
        "fields": [],
    }
    assert [a["Name"] for a in sim.records("Account")] == ["Keyed Ltd"]

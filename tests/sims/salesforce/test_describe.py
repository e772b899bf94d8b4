"""Describe: global describe, sObject describe (custom fields, picklists, references, child relationships)."""

from __future__ import annotations

import httpx


def _field(describe: dict, name: str) -> dict:
    return next(f for f in describe["fields"] if f["name"] == name)


def test_describe_of_the_custom_external_id_field(api: httpx.Client) -> None:
    response = api.get("/sobjects/Opportunity/describe")

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["keyPrefix"], body["custom"]) == ("Opportunity", "006", False)
    referral = _field(body, "Referral_Identifier__c")
    assert {k: referral[k] for k in ("type", "length", "externalId", "unique", "custom", "nillable", "createable")} == {
        "type": "string",
        "length": 100,
        "externalId": True,
        "unique": True,
        "custom": True,
        "nillable": True,
        "createable": True,
    }
    audit = _field(body, "Audit__c")
    assert (audit["type"], audit["length"], audit["filterable"]) == ("textarea", 32768, False)
    visible = _field(body, "Referral_Visible__c")
    assert (visible["type"], visible["defaultValue"], visible["nillable"]) == ("boolean", False, False)


def test_picklists_references_and_read_only_fields(api: httpx.Client) -> None:
    opportunity = api.get("/sobjects/Opportunity/describe").json()
    account = api.get("/sobjects/Account/describe").json()

    stage = _field(opportunity, "StageName")
    assert stage["restrictedPicklist"] is True
    assert [p["value"] for p in stage["picklistValues"]][:2] == ["Prospecting", "Qualification"]
    assert {"Closed Won", "Closed Lost"} <= {p["value"] for p in stage["picklistValues"]}
    helps = _field(opportunity, "How_can_Microsoft_help__c")
    assert len(helps["picklistValues"]) == 6
    assert helps["picklistValues"][0] == {
        "active": True,
        "defaultValue": False,
        "label": "GeneralOrOther",
        "validFor": None,
        "value": "GeneralOrOther",
    }
    assert _field(opportunity, "AccountId")["referenceTo"] == ["Account"]
    assert _field(opportunity, "AccountId")["relationshipName"] == "Account"
    assert (_field(opportunity, "IsWon")["createable"], _field(opportunity, "IsWon")["updateable"]) == (False, False)
    assert _field(opportunity, "Name")["length"] == 120
    assert _field(account, "Name")["length"] == 255
    assert _field(account, "BillingPostalCode")["length"] == 20
    country = _field(account, "BillingCountryCode")
    codes = {p["value"] for p in country["picklistValues"]}
    assert {"DE", "US", "GB", "JP"} <= codes
    assert len(codes) == 249  # ISO 3166-1 alpha-2


def test_child_relationships_and_the_custom_object(api: httpx.Client) -> None:
    opportunity = api.get("/sobjects/Opportunity/describe").json()
    solution = api.get("/sobjects/Microsoft_Solution__c/describe").json()

    children = {c["relationshipName"]: c for c in opportunity["childRelationships"] if c["relationshipName"]}
    assert children["Microsoft_Solutions__r"] == {
        "cascadeDelete": True,
        "childSObject": "Microsoft_Solution__c",
        "deprecatedAndHidden": False,
        "field": "Opportunity__c",
        "junctionIdListNames": [],
        "junctionReferenceTo": [],
        "relationshipName": "Microsoft_Solutions__r",
        "restrictedDelete": False,
    }
    assert children["OpportunityContactRoles"]["childSObject"] == "OpportunityContactRole"
    assert solution["custom"] is True
    master = _field(solution, "Opportunity__c")
    assert (master["relationshipName"], master["nillable"], master["updateable"], master["cascadeDelete"]) == (
        "Opportunity__r",
        False,
        False,
        True,
    )
    assert _field(solution, "Name")["length"] == 80


def test_global_describe_and_a_bare_org(api: httpx.Client, bare: httpx.Client) -> None:
    provisioned = {o["name"]: o for o in api.get("/sobjects").json()["sobjects"]}
    fresh = {o["name"] for o in bare.get("/sobjects").json()["sobjects"]}
    bare_fields = {f["name"] for f in bare.get("/sobjects/Opportunity/describe").json()["fields"]}

    assert {name: o["keyPrefix"] for name, o in provisioned.items()} == {
        "Account": "001",
        "Contact": "003",
        "Opportunity": "006",
        "Lead": "00Q",
        "User": "005",
        "OpportunityContactRole": "00K",
        "PermissionSet": "0PS",
        "FieldPermissions": "01k",
        "ObjectPermissions": "110",
        "PermissionSetAssignment": "0Pa",
        "Microsoft_Solution__c": "a0S",
    }
    assert provisioned["Account"]["urls"]["describe"] == "/services/data/v60.0/sobjects/Account/describe"
    assert "Microsoft_Solution__c" not in fresh
    assert "Referral_Identifier__c" not in bare_fields
    assert bare.get("/sobjects/Microsoft_Solution__c/describe").status_code == 404
    missing = bare.get("/query", params={"q": "SELECT Id FROM Microsoft_Solution__c"})
    assert missing.json()[0]["errorCode"] == "INVALID_TYPE"

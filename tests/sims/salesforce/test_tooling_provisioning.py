"""A bare org provisioned over HTTP with cosell.py's Tooling bodies (and the permission set an app must add)
reads and behaves like ``schema="provisioned"``."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.provisioning import provision
from tests.sims.salesforce.support import error_of, records

DESCRIBED = ("Opportunity", "Lead", "Microsoft_Solution__c", "Account", "User", "FieldPermissions", "ObjectPermissions")


def _describes(api: httpx.Client) -> dict[str, Any]:
    answers: dict[str, Any] = {"sobjects": api.get("/sobjects").json()}
    for name in DESCRIBED:
        response = api.get(f"/sobjects/{name}/describe")
        assert response.status_code == 200, f"{name}: {response.text}"
        answers[name] = response.json()
    return answers


def _tooling_inventory(api: httpx.Client) -> list[tuple[str, str]]:
    """What the Tooling API lists, by name (ids differ between orgs; a custom object's fields name its id)."""
    objects = api.get("/tooling/query", params={"q": "SELECT Id, DeveloperName FROM CustomObject"}).json()["records"]
    names = {o["Id"]: f"{o['DeveloperName']}__c" for o in objects}
    soql = "SELECT DeveloperName, TableEnumOrId FROM CustomField ORDER BY TableEnumOrId, DeveloperName"
    fields = api.get("/tooling/query", params={"q": soql}).json()["records"]
    return sorted((names.get(f["TableEnumOrId"], f["TableEnumOrId"]), f["DeveloperName"]) for f in fields)


def _round_trip(api: httpx.Client) -> dict[str, Any]:
    """Upsert by the external id, update, a solution by the master's external id, a duplicate, read it all back."""
    created = api.patch(
        "/sobjects/Opportunity/Referral_Identifier__c/REF-42",
        json={"Name": "Contoso rollout", "StageName": "Prospecting", "CloseDate": "2026-12-31",
              "How_can_Microsoft_help__c": "ProofOfConceptOrDemo", "Sync_with_Partner_Center__c": True},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    updated = api.patch(
        "/sobjects/Opportunity/Referral_Identifier__c/ref-42", json={"Audit__c": "2026-01-01 10:00 - ok"}
    )
    assert updated.status_code == 200, updated.text
    solution = api.post(
        "/sobjects/Microsoft_Solution__c",
        json={"Name": "Azure", "Opportunity__r": {"Referral_Identifier__c": "REF-42"}, "Solution_Type__c": "IP"},
    )
    assert solution.status_code == 201, solution.text
    duplicate = api.post(
        "/sobjects/Opportunity",
        json={
            "Name": "again",
            "StageName": "Prospecting",
            "CloseDate": "2026-12-31",
            "Referral_Identifier__c": "REF-42",
        },
    )
    bad_help = api.patch("/sobjects/Opportunity/Referral_Identifier__c/REF-42", json={"How_can_Microsoft_help__c": "x"})
    lead = api.patch("/sobjects/Lead/Referral_Identifier__c/L-1", json={"LastName": "Smith", "Company": "Fabrikam"})
    assert lead.status_code == 201, lead.text
    read = records(
        api,
        "SELECT Name, Referral_Identifier__c, How_can_Microsoft_help__c, Sync_with_Partner_Center__c, "
        "Referral_Visible__c, Audit__c, (SELECT Name, Solution_Type__c, Opportunity__r.Referral_Identifier__c "
        "FROM Microsoft_Solutions__r) FROM Opportunity WHERE Referral_Identifier__c = 'REF-42'",
    )
    leads = records(api, "SELECT LastName, Referral_Identifier__c, Referral_Visible__c FROM Lead")
    deleted = api.delete(f"/sobjects/Opportunity/{created.json()['id']}")
    assert deleted.status_code == 204
    left = records(api, "SELECT Id FROM Microsoft_Solution__c")
    for row in [*read, *leads]:
        _strip_urls(row)
    duplicate_error = error_of(duplicate)
    duplicate_error["message"] = duplicate_error["message"].rsplit(":", 1)[0]  # names the other org's record id
    return {"duplicate": duplicate_error, "bad_help": error_of(bad_help), "read": read, "leads": leads, "left": left}


def _strip_urls(record: Any) -> None:
    """Record URLs carry ids, which differ between orgs."""
    if isinstance(record, dict):
        record.pop("attributes", None)
        for value in record.values():
            _strip_urls(value)
    elif isinstance(record, list):
        for item in record:
            _strip_urls(item)


def test_a_bare_org_provisioned_over_http_reads_and_behaves_like_a_provisioned_one(
    bare: httpx.Client, bare_sim: SalesforceSimulator, api: httpx.Client
) -> None:
    before = bare.get("/sobjects/Opportunity/describe").json()
    assert "Referral_Identifier__c" not in {f["name"] for f in before["fields"]}

    provision(bare, bare_sim.integration_user_id)

    provisioned, built = _describes(api), _describes(bare)
    for name in ("sobjects", *DESCRIBED):
        assert built[name] == provisioned[name], name
    assert _tooling_inventory(bare) == _tooling_inventory(api)
    assert len(_tooling_inventory(bare)) == 21  # 2 x 8 referral fields, 3 solution fields, 2 keys
    bare_trip, provisioned_trip = _round_trip(bare), _round_trip(api)
    assert bare_trip == provisioned_trip
    assert bare_trip["read"][0]["Microsoft_Solutions__r"]["records"] == [
        {"Name": "Azure", "Solution_Type__c": "IP", "Opportunity__r": {"Referral_Identifier__c": "REF-42"}}
    ]
    assert (bare_trip["duplicate"]["errorCode"], bare_trip["bad_help"]["errorCode"]) == (
        "DUPLICATE_VALUE",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    )
    assert bare_trip["leads"] == [{"LastName": "Smith", "Referral_Identifier__c": "L-1", "Referral_Visible__c": False}]
    assert bare_trip["left"] == []  # the solution went with its master

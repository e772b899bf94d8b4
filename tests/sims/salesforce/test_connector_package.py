"""The co-sell connector's package in the Salesforce simulator: absent until installed, namespaced, behind FLS."""

from __future__ import annotations

import httpx

from sandbox.sims.base import ServerThread
from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.support import error_of, opportunity, query, records

FIELD = "pcref__Referral_Identifier__c"
SELECT_FIELD = "SELECT pcref__Referral_Identifier__c FROM Opportunity"


def test_the_package_fields_are_unknown_until_installed_then_namespaced(
    sim: SalesforceSimulator, server: ServerThread, api: httpx.Client
) -> None:
    refused = api.post("/sobjects/Opportunity", json={"Name": "D", "StageName": "Prospecting",
                                                      "CloseDate": "2026-12-31", FIELD: "x"})  # fmt: skip
    assert refused.status_code == 400
    assert error_of(refused)["errorCode"] == "INVALID_FIELD"

    installed = httpx.post(f"{server.url}/_sim/connector", json={"namespace": "pcref"})
    assert FIELD in installed.json()["fields"]

    first = opportunity(api, **{FIELD: "b4d321d5-c5d8-4131-8358-0f570446a6c2",
                                "pcref__How_can_Microsoft_help__c": "General or Other"})  # fmt: skip
    second = opportunity(api, **{FIELD: "b4d321d5-c5d8-4131-8358-0f570446a6c2"})  # not unique: doubles happen
    rows = records(
        api,
        "SELECT Id, pcref__Referral_Identifier__c FROM Opportunity "
        "WHERE pcref__Referral_Identifier__c != null ORDER BY Id",
    )
    assert sorted(r["Id"] for r in rows) == sorted([first, second])
    bad = opportunity_attempt(api, "pcref__How_can_Microsoft_help__c", "GeneralOrOther")
    assert error_of(bad)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "the package's values only"

    tooling = api.get("/tooling/query", params={"q": "SELECT DeveloperName, NamespacePrefix, TableEnumOrId "
                                                     "FROM CustomField WHERE NamespacePrefix != null"})  # fmt: skip
    listed = {(r["TableEnumOrId"], r["NamespacePrefix"], r["DeveloperName"]) for r in tooling.json()["records"]}
    assert ("Opportunity", "pcref", "Referral_Identifier") in listed
    assert ("Lead", "pcref", "Referral_Identifier") in listed

    sim.clear()
    assert query(api, SELECT_FIELD).status_code == 400, "clear() uninstalls"


def test_installed_for_admins_only_the_integration_user_does_not_see_the_fields(
    sim: SalesforceSimulator, api: httpx.Client
) -> None:
    sim.install_connector(grant=False)
    assert FIELD not in (sim.visible_fields("Opportunity") or [])
    assert error_of(query(api, SELECT_FIELD))["errorCode"] == "INVALID_FIELD"


def opportunity_attempt(api: httpx.Client, field: str, value: str) -> httpx.Response:
    body = {"Name": "D", "StageName": "Prospecting", "CloseDate": "2026-12-31", field: value}
    return api.post("/sobjects/Opportunity", json=body)

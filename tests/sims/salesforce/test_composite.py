"""Composite (``POST /composite``): limits, references, allOrNone, per-subrequest answers, the same rules as plain
requests inside, and one API call for the whole request."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.support import VERSION, create, error_of

BASE = f"/services/data/{VERSION}"
OPPORTUNITY = {"Name": "Composite deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}


def sub(method: str, path: str, ref: str, body: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"method": method, "url": f"{BASE}{path}", "referenceId": ref}
    if body is not None:
        item["body"] = body
    return item


def composite(api: httpx.Client, *subs: dict[str, Any], all_or_none: bool = True) -> list[dict[str, Any]]:
    response = api.post("/composite", json={"allOrNone": all_or_none, "compositeRequest": list(subs)})
    assert response.status_code == 200, response.text
    return list(response.json()["compositeResponse"])


def test_references_chain_creates_upserts_and_queries_in_one_call(api: httpx.Client, sim: SalesforceSimulator) -> None:
    used = sim.api_requests_used
    results = composite(
        api,
        sub("PATCH", "/sobjects/Account/Cosell_Account_Key__c/acc-1", "account", {"Name": "Chained Ltd"}),
        sub("POST", "/sobjects/Contact", "contact", {"LastName": "Chain", "AccountId": "@{account.id}"}),
        sub(
            "PATCH",
            "/sobjects/Opportunity/Referral_Identifier__c/r-1",
            "deal",
            {**OPPORTUNITY, "AccountId": "@{account.id}"},
        ),
        sub("GET", "/query?q=SELECT+Id,Name+FROM+Account+WHERE+Name='Chained Ltd'", "found"),
        sub("PATCH", "/sobjects/Account/@{found.records[0].Id}", "rename", {"Name": "Chained Ltd (renamed)"}),
        sub("GET", "/sobjects/Contact/@{contact.id}?fields=AccountId", "read"),
    )

    assert [(r["referenceId"], r["httpStatusCode"]) for r in results] == [
        ("account", 201), ("contact", 201), ("deal", 201), ("found", 200), ("rename", 204), ("read", 200),
    ]  # fmt: skip
    account = results[0]["body"]["id"]
    assert results[0]["body"] == {"id": account, "success": True, "errors": [], "created": True}
    assert results[1]["httpHeaders"] == {"Location": f"{BASE}/sobjects/Contact/{results[1]['body']['id']}"}
    assert results[5]["body"]["AccountId"] == account
    assert sim.get("Opportunity", results[2]["body"]["id"])["AccountId"] == account  # type: ignore[index]
    assert sim.get("Account", account)["Name"] == "Chained Ltd (renamed)"  # type: ignore[index]
    # "The entire series of requests counts as a single call toward your API limits."
    assert sim.api_requests_used == used + 1
    assert [(r.method, r.path) for r in sim.recorded(path=BASE)] == [("POST", f"{BASE}/composite")]


def test_all_or_none_rolls_everything_back_and_halts_the_others(api: httpx.Client, sim: SalesforceSimulator) -> None:
    results = composite(
        api,
        sub("POST", "/sobjects/Account", "account", {"Name": "Rolled Back Ltd"}),
        sub("POST", "/sobjects/Contact", "contact", {"FirstName": "No last name", "AccountId": "@{account.id}"}),
        sub("POST", "/sobjects/Account", "later", {"Name": "Never Ltd"}),
    )

    assert [r["httpStatusCode"] for r in results] == [400, 400, 400]
    halted = {"message": "The transaction was rolled back since another operation in the same transaction failed.",
              "errorCode": "PROCESSING_HALTED"}  # fmt: skip
    assert results[0]["body"] == [halted]
    assert results[2]["body"] == [halted]
    assert results[1]["body"] == [
        {
            "message": "Required fields are missing: [LastName]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["LastName"],
        }
    ]
    assert sim.records("Account") == []
    assert sim.records("Contact") == []


def test_without_all_or_none_only_the_dependents_of_a_failure_are_halted(
    api: httpx.Client, sim: SalesforceSimulator
) -> None:
    results = composite(
        api,
        sub("POST", "/sobjects/Account", "bad", {"Name": "x" * 256}),
        sub("POST", "/sobjects/Contact", "dependent", {"LastName": "Orphan", "AccountId": "@{bad.id}"}),
        sub("POST", "/sobjects/Account", "independent", {"Name": "Kept Ltd"}),
        all_or_none=False,
    )

    assert [r["httpStatusCode"] for r in results] == [400, 400, 201]
    assert results[0]["body"][0]["errorCode"] == "STRING_TOO_LONG"
    assert results[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert "bad.id" in results[1]["body"][0]["message"]
    assert [a["Name"] for a in sim.records("Account")] == ["Kept Ltd"]
    assert sim.records("Contact") == []


def test_the_plain_requests_rules_hold_inside(api: httpx.Client, sim: SalesforceSimulator) -> None:
    """Unknown fields, restricted picklists, unique values, upsert answers and field-level security."""
    first = create(api, "Contact", LastName="Keyed", Cosell_Contact_Key__c="k-1")
    field = {"FullName": "Account.Hidden_Note__c", "Metadata": {"type": "Text", "label": "Hidden", "length": 20}}
    assert api.post("/tooling/sobjects/CustomField", json=field).status_code == 201  # hidden until granted

    cases = [
        (sub("POST", "/sobjects/Account", "unknown", {"Name": "A", "Nope__c": 1}), "INVALID_FIELD"),
        (sub("POST", "/sobjects/Account", "hidden", {"Name": "A", "Hidden_Note__c": "x"}), "INVALID_FIELD"),
        (sub("PATCH", "/sobjects/Opportunity/Referral_Identifier__c/r-2", "pick",
             {**OPPORTUNITY, "How_can_Microsoft_help__c": "Pizza"}), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        (sub("POST", "/sobjects/Contact", "dup", {"LastName": "Twin", "Cosell_Contact_Key__c": "K-1"}),
         "DUPLICATE_VALUE"),
        (sub("GET", "/query?q=SELECT+Nope+FROM+Account", "query"), "INVALID_FIELD"),
    ]  # fmt: skip
    for request, code in cases:
        [result] = composite(api, request)
        assert result["httpStatusCode"] == 400, result
        assert result["body"][0]["errorCode"] == code, result

    updated = composite(api, sub("PATCH", "/sobjects/Contact/Cosell_Contact_Key__c/K-1", "upsert", {"Title": "CTO"}))
    assert (updated[0]["httpStatusCode"], updated[0]["body"]["id"], updated[0]["body"]["created"]) == (
        200,
        first,
        False,
    )
    create(api, "Lead", LastName="A", Company="C", Email="same@example.com")
    create(api, "Lead", LastName="B", Company="C", Email="same@example.com")
    several = composite(api, sub("PATCH", "/sobjects/Lead/Email/same@example.com", "several", {"Title": "x"}))
    assert several[0]["httpStatusCode"] == 300


def test_limits_and_malformed_requests_are_refused_whole(api: httpx.Client, sim: SalesforceSimulator) -> None:
    too_many = [sub("POST", "/sobjects/Account", f"a{n}", {"Name": f"A{n}"}) for n in range(26)]
    six_queries = [sub("GET", "/query?q=SELECT+Id+FROM+Account", f"q{n}") for n in range(6)]
    refused = {
        "26 subrequests": {"compositeRequest": too_many},
        "6 queries": {"compositeRequest": six_queries},
        "no referenceId": {"compositeRequest": [{"method": "GET", "url": f"{BASE}/sobjects/Account/describe"}]},
        "bad referenceId": {"compositeRequest": [sub("GET", "/sobjects/Account/describe", "a-b")]},
        "duplicate referenceId": {"compositeRequest": [sub("GET", "/sobjects/Account/describe", "a")] * 2},
        "inherited header": {"compositeRequest": [{**sub("GET", "/sobjects/Account/describe", "a"),
                                                   "httpHeaders": {"Authorization": "Bearer x"}}]},
        "later version": {"compositeRequest": [{**sub("GET", "/sobjects/Account/describe", "a"),
                                                "url": "/services/data/v61.0/sobjects/Account/describe"}]},
    }  # fmt: skip
    for label, body in refused.items():
        response = api.post("/composite", json=body)
        assert response.status_code == 400, label
        assert error_of(response)["errorCode"], label
    assert error_of(api.post("/composite", json=refused["no referenceId"])) == {
        "message": "'referenceId' is a required field.",
        "errorCode": "JSON_PARSER_ERROR",
    }
    assert len(composite(api, *too_many[:25])) == 25
    assert len(composite(api, *six_queries[:5])) == 5
    assert len(sim.records("Account")) == 25

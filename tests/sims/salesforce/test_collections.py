"""sObject Collections: create, update and upsert up to 200 records in one call, with and without allOrNone."""

from __future__ import annotations

import httpx

from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.support import error_of

OPP = {"attributes": {"type": "Opportunity"}, "StageName": "Prospecting", "CloseDate": "2026-12-31"}


def test_create_without_all_or_none_keeps_the_good_records(api: httpx.Client, sim: SalesforceSimulator) -> None:
    response = api.post(
        "/composite/sobjects",
        json={
            "allOrNone": False,
            "records": [
                {**OPP, "Name": "One"},
                {**OPP, "Name": "Two", "StageName": "Nope"},
                {"attributes": {"type": "Account"}, "Name": "Contoso"},
            ],
        },
    )

    assert response.status_code == 200
    one, two, account = response.json()
    assert (one["success"], one["id"][:3], one["errors"]) == (True, "006", [])
    assert two == {
        "id": None,
        "success": False,
        "errors": [
            {
                "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                "message": "Stage: bad value for restricted picklist field: Nope",
                "fields": ["StageName"],
            }
        ],
    }
    assert account["id"].startswith("001")
    assert len(sim.records("Opportunity")) == 1
    assert sim.count("POST", "/services/data") == 1  # one API call for three records
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/100000"


def test_all_or_none_rolls_everything_back(api: httpx.Client, sim: SalesforceSimulator) -> None:
    response = api.post(
        "/composite/sobjects",
        json={"allOrNone": True, "records": [{**OPP, "Name": "One"}, {**OPP, "Name": "x" * 121}]},
    )

    one, two = response.json()
    assert one["success"] is False
    assert one["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert two["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert sim.records("Opportunity") == []


def test_update_and_upsert_collections(api: httpx.Client, sim: SalesforceSimulator) -> None:
    created = api.patch(
        "/composite/sobjects/Opportunity/Referral_Identifier__c",
        json={
            "allOrNone": False,
            "records": [{**OPP, "Name": f"D{i}", "Referral_Identifier__c": f"r{i}"} for i in range(3)],
        },
    ).json()
    assert [(r["success"], r["created"]) for r in created] == [(True, True)] * 3

    again = api.patch(
        "/composite/sobjects/Opportunity/Referral_Identifier__c",
        json={"records": [{"attributes": {"type": "Opportunity"}, "Referral_Identifier__c": "r1", "Amount": 10}]},
    ).json()
    assert (again[0]["id"], again[0]["created"]) == (created[1]["id"], False)

    updated = api.patch(
        "/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Opportunity"}, "id": created[0]["id"], "StageName": "Closed Won"},
                {"attributes": {"type": "Opportunity"}, "id": "006bogus", "Amount": 1},
                {"attributes": {"type": "Opportunity"}, "Amount": 1},
            ]
        },
    ).json()
    assert updated[0] == {"id": created[0]["id"], "success": True, "errors": []}
    assert updated[1]["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert updated[2]["errors"][0] == {
        "statusCode": "MISSING_ARGUMENT",
        "message": "Id not specified in an update call",
        "fields": [],
    }
    assert sim.get("Opportunity", created[0]["id"])["IsWon"] is True
    assert sim.get("Opportunity", created[1]["id"])["Amount"] == 10.0


def test_limits_of_a_collection(api: httpx.Client) -> None:
    too_many = api.post("/composite/sobjects", json={"records": [{**OPP, "Name": str(i)} for i in range(201)]})
    with_id = api.post("/composite/sobjects", json={"records": [{**OPP, "Name": "x", "Id": "006000000000000AAA"}]})
    untyped = api.post("/composite/sobjects", json={"records": [{"Name": "x"}]})

    assert (too_many.status_code, error_of(too_many)["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")
    assert with_id.json()[0]["errors"][0]["message"] == "cannot specify Id in an insert call"
    assert untyped.json()[0]["errors"][0]["statusCode"] == "INVALID_TYPE"


def test_read_and_delete_collections(api: httpx.Client, sim: SalesforceSimulator) -> None:
    ids = [
        r["id"] for r in api.post("/composite/sobjects", json={"records": [{**OPP, "Name": n} for n in "ab"]}).json()
    ]

    read = api.get(
        "/composite/sobjects/Opportunity", params={"ids": ",".join([*ids, "006000000000000AAA"]), "fields": "Name"}
    )
    deleted = api.delete("/composite/sobjects", params={"ids": ids[0]})

    assert [r and r["Name"] for r in read.json()] == ["a", "b", None]
    assert deleted.json() == [{"id": ids[0], "success": True, "errors": []}]
    assert [r["Id"] for r in sim.records("Opportunity")] == [ids[1]]

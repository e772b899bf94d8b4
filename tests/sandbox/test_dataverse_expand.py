"""Single- and collection-valued $expand, and the collection link it carries."""

from __future__ import annotations

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import (
    API,
    GUID_A,
    SOLUTIONS,
    add_solution,
    error_of,
    make_opportunity,
)


def test_collection_valued_expand_returns_each_opportunitys_solutions(
    client: httpx.Client, sim: DataverseSimulator, server: ServerThread
):
    first = sim.insert("opportunities", {"name": "A first"})
    second = sim.insert("opportunities", {"name": "B second"})
    elsewhere = sim.insert("opportunities", {"name": "C elsewhere"})
    solution_ids = {add_solution(sim, first, "SOL-1", "Azure Migrate"), add_solution(sim, first, "SOL-2", "Defender")}
    add_solution(sim, elsewhere, "SOL-3", "Other")

    response = client.get(
        "/opportunities",
        params={
            "$select": "name",
            "$filter": "name ne 'C elsewhere'",
            "$orderby": "name asc",
            "$expand": f"{SOLUTIONS}($select=cosell_solutionidentifier,cosell_name)",
        },
    )

    assert response.status_code == 200, response.text
    rows = response.json()["value"]
    assert [r["name"] for r in rows] == ["A first", "B second"]
    solutions = rows[0][SOLUTIONS]
    assert {s["cosell_solutionid"] for s in solutions} == solution_ids
    assert [s["cosell_solutionid"] for s in solutions] == sorted(solution_ids)  # by key when no $orderby
    assert {s["cosell_solutionidentifier"]: s["cosell_name"] for s in solutions} == {
        "SOL-1": "Azure Migrate",
        "SOL-2": "Defender",
    }
    assert all(
        set(s)
        == {
            "@odata.etag",
            "cosell_solutionidentifier",
            "cosell_name",
            "_cosell_opportunityid_value",
            "cosell_solutionid",
        }
        for s in solutions
    )
    assert all(s["_cosell_opportunityid_value"] == first for s in solutions)  # the back-reference comes unasked
    assert rows[1][SOLUTIONS] == []

    link = rows[0][f"{SOLUTIONS}@odata.nextLink"]
    assert link.startswith(f"{server.url}{API}/opportunities({first})/{SOLUTIONS}?$select=")
    followed = client.get(link)
    assert followed.status_code == 200
    assert [s["cosell_solutionid"] for s in followed.json()["value"]] == [s["cosell_solutionid"] for s in solutions]
    assert rows[1][f"{SOLUTIONS}@odata.nextLink"].endswith(
        f"/opportunities({second})/{SOLUTIONS}?$select=cosell_solutionidentifier,cosell_name"
    )


def test_combined_single_and_collection_valued_expand(client: httpx.Client, sim: DataverseSimulator):
    account = sim.insert("accounts", {"name": "Fabrikam", "address1_country": "DE"})
    contact = sim.insert("contacts", {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@x.example"})
    opportunity = make_opportunity(
        client,
        **{
            "parentaccountid@odata.bind": f"/accounts({account})",
            "parentcontactid@odata.bind": f"/contacts({contact})",
            "cosell_syncwithpartnercenter": True,
        },
    )
    add_solution(sim, opportunity, "SOL-9", "Sentinel")
    expand = (
        "parentaccountid($select=name,address1_country),parentcontactid($select=emailaddress1),"
        f"owninguser($select=fullname,internalemailaddress),{SOLUTIONS}($select=cosell_solutionidentifier,cosell_name)"
    )

    listed = client.get("/opportunities", params={"$select": "name", "$expand": expand})
    single = client.get(f"/opportunities({opportunity})", params={"$select": "name", "$expand": expand})

    assert listed.status_code == 200, listed.text
    assert single.status_code == 200, single.text
    for row in (listed.json()["value"][0], single.json()):
        assert row["parentaccountid"] == {
            "@odata.etag": row["parentaccountid"]["@odata.etag"],
            "name": "Fabrikam",
            "address1_country": "DE",
            "accountid": account,
        }
        assert row["parentcontactid"]["emailaddress1"] == "ada@x.example"
        assert row["owninguser"]["fullname"] == "Sandbox Seller"
        assert row["owninguser"]["internalemailaddress"] == "seller@partner.example"
        assert [(s["cosell_solutionidentifier"], s["cosell_name"]) for s in row[SOLUTIONS]] == [("SOL-9", "Sentinel")]


def test_collection_valued_expand_options_filter_orderby_top(client: httpx.Client, sim: DataverseSimulator):
    opportunity = sim.insert("opportunities", {"name": "Deal"})
    for identifier, name in [("S1", "b, with comma"), ("S2", "a"), ("S3", "c"), ("S4", "skip me")]:
        add_solution(sim, opportunity, identifier, name)

    response = client.get(
        f"/opportunities({opportunity})",
        params={
            "$select": "name",
            "$expand": (
                f"{SOLUTIONS}($select=cosell_name;$filter=cosell_name ne 'skip me';$orderby=cosell_name desc;$top=2)"
            ),
        },
    )

    assert response.status_code == 200, response.text
    assert [s["cosell_name"] for s in response.json()[SOLUTIONS]] == ["c", "b, with comma"]
    link = response.json()[f"{SOLUTIONS}@odata.nextLink"]
    assert "$filter=cosell_name%20ne%20'skip%20me'" in link
    followed = client.get(link)  # the same options, so the same rows
    assert followed.status_code == 200, followed.text
    assert [s["cosell_name"] for s in followed.json()["value"]] == ["c", "b, with comma"]
    assert client.get(f"/opportunities({GUID_A})/{SOLUTIONS}").status_code == 404


@pytest.mark.parametrize(
    "expand",
    [
        "cosell_solutions",  # the entity set is not a navigation property
        "cosell_opportunity_cosell_solution_opportunityid",  # case-sensitive
        f"{SOLUTIONS}($select=nosuchcolumn)",
        f"{SOLUTIONS}($filter=nosuchcolumn eq 1)",
        f"{SOLUTIONS}($expand=cosell_OpportunityId)",  # nested $expand is not simulated
        "parentaccountid($orderby=name)",  # $orderby/$top only on collection-valued
        "parentaccountid($top=1)",
        f"parentaccountid($select=name),{SOLUTIONS}($select=cosell_name",  # unbalanced
    ],
)
def test_bad_expand_is_400(client: httpx.Client, sim: DataverseSimulator, expand: str):
    sim.insert("opportunities", {"name": "x"})

    response = client.get("/opportunities", params={"$expand": expand})

    assert response.status_code == 400
    assert error_of(response)["code"] == "0x80060888"


def test_collection_expand_is_only_on_opportunities(client: httpx.Client):
    response = client.get("/accounts", params={"$expand": SOLUTIONS})

    assert response.status_code == 400
    assert "Could not find a property named" in error_of(response)["message"]

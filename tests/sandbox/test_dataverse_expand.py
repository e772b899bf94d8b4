"""Single- and collection-valued $expand, and the collection link it carries."""

from __future__ import annotations

import httpx
import pytest
from werkzeug.test import Client

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


# ----------------------------------------------------------------------------- cached collection-valued $expand

FRESH = {"If-None-Match": "null"}


def _solutions_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    row = body["value"][0] if "value" in body else body
    return [s["cosell_name"] for s in row[SOLUTIONS]]


def test_collection_expand_is_stale_without_if_none_match_null(client: httpx.Client, sim: DataverseSimulator):
    """Compose HTTP requests: expanded collections "may return cached data [...] Include If-None-Match: null"."""
    opportunity = make_opportunity(client, name="Before")
    first = add_solution(sim, opportunity, "SOL-1", "Azure")
    params = {"$select": "name", "$expand": f"{SOLUTIONS}($select=cosell_name)"}
    assert _solutions_of(client.get("/opportunities", params=params)) == ["Azure"]
    assert _solutions_of(client.get(f"/opportunities({opportunity})", params=params)) == ["Azure"]

    assert client.patch(f"/cosell_solutions({first})", json={"cosell_name": "Azure renamed"}).status_code == 204
    add_solution(sim, opportunity, "SOL-2", "Defender")
    assert client.patch(f"/opportunities({opportunity})", json={"name": "After"}).status_code == 204

    stale_list = client.get("/opportunities", params=params)
    stale_one = client.get(f"/opportunities({opportunity})", params=params)
    fresh_list = client.get("/opportunities", params=params, headers=FRESH)
    fresh_one = client.get(f"/opportunities({opportunity})", params=params, headers=FRESH)
    other_url = client.get("/opportunities", params={**params, "$select": "name,estimatedvalue"})

    assert _solutions_of(stale_list) == ["Azure"]  # the snapshot from the first time this URL was asked
    assert _solutions_of(stale_one) == ["Azure"]
    assert stale_list.json()["value"][0]["name"] == "After"  # the parent row itself is current
    assert sorted(_solutions_of(fresh_list)) == ["Azure renamed", "Defender"]
    assert sorted(_solutions_of(fresh_one)) == ["Azure renamed", "Defender"]
    assert sorted(_solutions_of(other_url)) == ["Azure renamed", "Defender"]  # a URL asked for the first time
    assert _solutions_of(client.get("/opportunities", params=params)) == ["Azure"]  # the header did not refresh it


def test_collection_expand_cache_expires(
    client: httpx.Client, sim: DataverseSimulator, monkeypatch: pytest.MonkeyPatch
):
    now = [1000.0]
    monkeypatch.setattr(sim.expand_cache, "clock", lambda: now[0])
    opportunity = sim.insert("opportunities", {"name": "Deal"})
    add_solution(sim, opportunity, "SOL-1", "Azure")
    params = {"$select": "name", "$expand": f"{SOLUTIONS}($select=cosell_name)"}
    assert _solutions_of(client.get("/opportunities", params=params)) == ["Azure"]
    add_solution(sim, opportunity, "SOL-2", "Defender")

    now[0] += 59
    within = client.get("/opportunities", params=params)
    now[0] += 1  # 60 seconds after the snapshot
    after = client.get("/opportunities", params=params)

    assert _solutions_of(within) == ["Azure"]
    assert sorted(_solutions_of(after)) == ["Azure", "Defender"]


def test_single_valued_expand_and_related_collection_are_never_cached(client: httpx.Client, sim: DataverseSimulator):
    account = sim.insert("accounts", {"name": "Before"})
    opportunity = sim.insert("opportunities", {"name": "Deal", "parentaccountid@odata.bind": f"/accounts({account})"})
    add_solution(sim, opportunity, "SOL-1", "Azure")
    params = {"$select": "name", "$expand": "parentaccountid($select=name)"}
    related = f"/opportunities({opportunity})/{SOLUTIONS}"
    assert client.get("/opportunities", params=params).json()["value"][0]["parentaccountid"]["name"] == "Before"
    assert len(client.get(related).json()["value"]) == 1

    client.patch(f"/accounts({account})", json={"name": "After"})
    add_solution(sim, opportunity, "SOL-2", "Defender")

    assert client.get("/opportunities", params=params).json()["value"][0]["parentaccountid"]["name"] == "After"
    assert len(client.get(related).json()["value"]) == 2


def test_expand_cache_can_be_turned_off():
    sim = DataverseSimulator(expand_cache_seconds=0)
    app = Client(sim)
    opportunity = sim.insert("opportunities", {"name": "Deal"})
    add_solution(sim, opportunity, "SOL-1", "Azure")
    url = f"{API}/opportunities({opportunity})"
    query = {"$expand": f"{SOLUTIONS}($select=cosell_name)"}
    assert len(app.get(url, query_string=query).get_json()[SOLUTIONS]) == 1

    add_solution(sim, opportunity, "SOL-2", "Defender")

    assert len(app.get(url, query_string=query).get_json()[SOLUTIONS]) == 2

"""Helpers shared by the Dataverse simulator tests (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.sims.dataverse import DataverseSimulator

API = "/api/data/v9.2"
GUID_A = "11111111-2222-3333-4444-555555555555"
SOLUTIONS = "cosell_opportunity_cosell_solution_OpportunityId"  # the relationship SchemaName


def error_of(response: httpx.Response) -> dict[str, str]:
    """The Dataverse error body, checked for its shape: ``{"error": {"code": "0x…", "message": …}}``."""
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"].startswith("0x")
    return body["error"]


def make_opportunity(client: httpx.Client, **fields: Any) -> str:
    response = client.post(
        "/opportunities",
        json={"name": "Deal", **fields},
        headers={"Prefer": "return=representation"},
        params={"$select": "opportunityid"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["opportunityid"])


def add_solution(sim: DataverseSimulator, opportunity_id: str, identifier: str, name: str) -> str:
    return sim.insert(
        "cosell_solutions",
        {
            "cosell_solutionidentifier": identifier,
            "cosell_name": name,
            "cosell_OpportunityId@odata.bind": f"/opportunities({opportunity_id})",
        },
    )


def currency_of(client: httpx.Client, iso: str) -> str:
    rows = client.get("/transactioncurrencies", params={"$filter": f"isocurrencycode eq '{iso}'"}).json()["value"]
    assert len(rows) == 1
    return str(rows[0]["transactioncurrencyid"])


def follow_pages(client: httpx.Client, url: str, params: dict[str, str] | None, page_size: int) -> list[list[dict]]:
    """Every page of a query, following ``@odata.nextLink`` verbatim with the same page size."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    pages: list[list[dict]] = []
    response = client.get(url, params=params, headers=headers)  # (httpx drops the URL's query if params={})
    while True:
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == f"odata.maxpagesize={page_size}"
        body = response.json()
        pages.append(body["value"])
        next_link = body.get("@odata.nextLink")
        if not next_link:
            return pages
        assert len(pages) < 20, "paging does not terminate"
        response = client.get(next_link, headers=headers)  # used verbatim

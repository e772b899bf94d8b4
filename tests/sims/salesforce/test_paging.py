"""Query batches: ``nextRecordsUrl`` followed verbatim, ``Sforce-Query-Options: batchSize``, query locators."""

from __future__ import annotations

import re

import httpx
import pytest

from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.support import error_of, query

ROWS = 450


@pytest.fixture
def accounts(sim: SalesforceSimulator) -> list[str]:
    return [sim.insert("Account", {"Name": f"Account {i:03d}"}) for i in range(ROWS)]


def _pages(api: httpx.Client, soql: str, **headers: str) -> list[dict]:
    pages = [query(api, soql, **headers).json()]
    while not pages[-1]["done"]:
        assert len(pages) < 10, "paging does not terminate"
        next_url = pages[-1]["nextRecordsUrl"]
        response = httpx.get(f"{api.base_url.scheme}://{api.base_url.netloc.decode()}{next_url}", headers=api.headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def test_batches_follow_next_records_url_until_done(api: httpx.Client, accounts: list[str]) -> None:
    pages = _pages(api, "SELECT Id, Name FROM Account ORDER BY Name", **{"Sforce-Query-Options": "batchSize=200"})

    assert [len(p["records"]) for p in pages] == [200, 200, 50]
    assert all(p["totalSize"] == ROWS for p in pages)
    assert [p["done"] for p in pages] == [False, False, True]
    assert re.fullmatch(r"/services/data/v60\.0/query/01g[A-Za-z0-9]{15}-200", pages[0]["nextRecordsUrl"])
    assert pages[1]["nextRecordsUrl"].endswith("-400")
    assert "nextRecordsUrl" not in pages[-1]
    names = [r["Name"] for p in pages for r in p["records"]]
    assert names == sorted(f"Account {i:03d}" for i in range(ROWS))


def test_default_batch_is_2000_and_requested_sizes_are_clamped_to_200_2000(
    api: httpx.Client, accounts: list[str]
) -> None:
    whole = query(api, "SELECT Id FROM Account").json()
    small = query(api, "SELECT Id FROM Account", **{"Sforce-Query-Options": "batchSize=50"}).json()

    assert (whole["done"], len(whole["records"])) == (True, ROWS)
    assert (small["done"], len(small["records"])) == (False, 200)


def test_pages_keep_the_result_set_the_query_saw(
    api: httpx.Client, sim: SalesforceSimulator, accounts: list[str]
) -> None:
    first = query(api, "SELECT Id FROM Account ORDER BY Name", **{"Sforce-Query-Options": "batchSize=400"}).json()
    sim.insert("Account", {"Name": "Account 000 (new)"})  # would shift every later page

    rest = api.get(first["nextRecordsUrl"].removeprefix("/services/data/v60.0")).json()

    assert [r["Id"] for r in first["records"] + rest["records"]] == [
        r["Id"] for r in sorted(sim.records("Account"), key=lambda r: r["Name"]) if r["Name"] != "Account 000 (new)"
    ][:ROWS]


def test_an_unknown_query_locator_is_invalid(api: httpx.Client) -> None:
    response = api.get("/query/01gXXXXXXXXXXXXXXX-2000")

    assert response.status_code == 400
    assert error_of(response) == {"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}

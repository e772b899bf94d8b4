"""The control API: seeding as a seller would, listing, clearing; and the Python helpers."""

from __future__ import annotations

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.support import records


def test_seed_inserts_rows_as_the_seller_with_back_references(server: ServerThread, sim: SalesforceSimulator) -> None:
    response = httpx.post(
        f"{server.url}/_sim/seed",
        json={
            "Account": [{"Name": "Contoso", "BillingCountryCode": "US"}],
            "Opportunity": [
                {"Name": "Seeded", "StageName": "Qualification", "CloseDate": "2026-12-31", "AccountId": "@Account:0"}
            ],
        },
        timeout=10,
    )

    assert response.status_code == 200
    created = response.json()
    opp = sim.get("Opportunity", created["Opportunity"][0])
    assert opp["AccountId"] == created["Account"][0]
    assert (opp["OwnerId"], opp["CreatedById"]) == (sim.seller_user_id, sim.seller_user_id)
    listed = httpx.get(f"{server.url}/_sim/records/Opportunity", timeout=10).json()
    assert [r["Id"] for r in listed] == created["Opportunity"]
    assert sim.count() == 0  # control calls are not counted


def test_seed_is_all_or_nothing_and_clear_empties_the_org(server: ServerThread, sim: SalesforceSimulator) -> None:
    bad = httpx.post(
        f"{server.url}/_sim/seed",
        json={"Account": [{"Name": "Fine"}, {"Name": "x" * 256}]},
        timeout=10,
    )
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("STRING_TOO_LONG")
    assert sim.records("Account") == []
    not_json = httpx.post(f"{server.url}/_sim/seed", content=b"{nope", timeout=10)
    assert (not_json.status_code, not_json.json()["error"][:12]) == (400, "invalid JSON")
    not_lists = httpx.post(f"{server.url}/_sim/seed", json={"Account": {"Name": "x"}}, timeout=10)
    assert (not_lists.status_code, not_lists.json()) == (400, {"error": "body must be {Object: [records]}"})

    sim.insert("Account", {"Name": "Kept until clear"})
    assert httpx.post(f"{server.url}/_sim/clear", timeout=10).json() == {"ok": True}
    assert sim.records("Account") == []
    users = {u["Id"]: u["Name"] for u in sim.records("User")}
    assert users == {sim.integration_user_id: "Integration User", sim.seller_user_id: "Sandbox Seller"}


def test_python_helpers_write_like_a_seller(api: httpx.Client, sim: SalesforceSimulator) -> None:
    opp = sim.insert("Opportunity", {"Name": "Mine", "StageName": "Prospecting", "CloseDate": "2026-12-31"})
    sim.update("Opportunity", opp, {"StageName": "Closed Won"})

    row = records(api, f"SELECT StageName, IsWon, LastModifiedById FROM Opportunity WHERE Id = '{opp}'")[0]  # noqa: S608 (SOQL)

    assert (row["StageName"], row["IsWon"], row["LastModifiedById"]) == ("Closed Won", True, sim.seller_user_id)
    with pytest.raises(ValueError, match="INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"):
        sim.update("Opportunity", opp, {"StageName": "Done"})
    with pytest.raises(ValueError, match="unknown object"):
        sim.records("Opportunities")

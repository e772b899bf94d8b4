"""Service plumbing: injected faults, request counting, bearer tokens, the control API, in-process helpers."""

from __future__ import annotations

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import (
    API,
    error_of,
)


def test_injected_429_uses_dataverse_error_body_and_control_routes_are_not_faulted(
    client: httpx.Client, sim: DataverseSimulator, server: ServerThread
):
    sim.set_faults({"rate": 1.0, "statuses": [429], "retry_after": 2})

    response = client.get("/accounts")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert error_of(response)["code"] == "0x80072322"
    control = httpx.get(f"{server.url}/_sim/stats", timeout=10)
    assert control.status_code == 200
    assert httpx.get(f"{server.url}/_sim/records/accounts", timeout=10).status_code == 200

    sim.set_faults({"rate": 1.0, "statuses": [503]})
    unavailable = client.post("/accounts", json={"name": "x"})
    assert unavailable.status_code == 503
    error_of(unavailable)
    assert sim.records("accounts") == []


def test_stats_count_requests_per_route(client: httpx.Client, sim: DataverseSimulator, server: ServerThread):
    record_id = sim.insert("accounts", {"name": "A"})
    client.get("/accounts")
    client.get("/accounts")
    client.get(f"/accounts({record_id})")
    client.patch(f"/accounts({record_id})", json={"name": "B"})

    stats = httpx.get(f"{server.url}/_sim/stats", timeout=10).json()

    assert stats["total"] == 4
    assert stats["routes"][f"GET {API}/accounts"] == 2
    assert stats["routes"][f"GET {API}/accounts(<path:key>)"] == 1
    assert stats["routes"][f"PATCH {API}/accounts(<path:key>)"] == 1
    assert sim.count("PATCH", f"{API}/accounts") == 1


def test_unknown_route_is_404_with_dataverse_body(client: httpx.Client):
    response = client.get("/nosuchset")

    assert response.status_code == 404
    assert error_of(response)["code"] == "0x80060888"


def test_token_validator_rejects_missing_and_invalid_bearer() -> None:
    sim = DataverseSimulator(token_validator=lambda token: token == "good-token")
    server = ServerThread(sim).start()
    try:
        base = server.url + API
        missing = httpx.get(f"{base}/accounts", timeout=10)
        invalid = httpx.get(f"{base}/accounts", headers={"Authorization": "Bearer nope"}, timeout=10)
        wrong_scheme = httpx.get(f"{base}/accounts", headers={"Authorization": "Basic good-token"}, timeout=10)
        write = httpx.post(f"{base}/accounts", json={"name": "x"}, timeout=10)
        ok = httpx.get(f"{base}/accounts", headers={"Authorization": "Bearer good-token"}, timeout=10)
        control = httpx.get(f"{server.url}/_sim/stats", timeout=10)
    finally:
        server.stop()

    for response in (missing, invalid, wrong_scheme, write):
        assert response.status_code == 401
        error_of(response)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert ok.status_code == 200
    assert control.status_code == 200
    assert sim.records("accounts") == []


def test_control_seed_records_and_clear(sim: DataverseSimulator, server: ServerThread, client: httpx.Client):
    seeded = httpx.post(
        f"{server.url}/_sim/seed",
        json={
            "accounts": [{"name": "Seeded", "address1_country": "FR"}],
            "opportunities": [{"name": "Closed deal", "cosell_referralid": "S-1", "statecode": 1, "statuscode": 3}],
        },
        timeout=10,
    )
    assert seeded.status_code == 200
    ids = seeded.json()
    assert len(ids["accounts"]) == 1
    assert len(ids["opportunities"]) == 1
    assert sim.stats_snapshot()["total"] == 0  # control calls are not counted

    rows = httpx.get(f"{server.url}/_sim/records/opportunities", timeout=10).json()
    assert [(r["opportunityid"], r["statecode"]) for r in rows] == [(ids["opportunities"][0], 1)]

    rejected = httpx.post(
        f"{server.url}/_sim/seed",
        json={"accounts": [{"name": "ok"}], "opportunities": [{"name": "dup", "cosell_referralid": "S-1"}]},
        timeout=10,
    )
    assert rejected.status_code == 400
    assert len(sim.records("accounts")) == 1  # all or nothing

    currencies = sim.records("transactioncurrencies")
    assert httpx.post(f"{server.url}/_sim/clear", timeout=10).status_code == 200
    assert sim.records("accounts") == []
    assert sim.records("opportunities") == []
    assert sorted(r["isocurrencycode"] for r in sim.records("transactioncurrencies")) == sorted(
        ["USD", "EUR", "GBP", "JPY", "CAD", "AUD", "INR"]
    )
    assert {r["transactioncurrencyid"] for r in sim.records("transactioncurrencies")} == {
        r["transactioncurrencyid"] for r in currencies
    }


def test_in_process_helpers_return_copies_and_validate(sim: DataverseSimulator):
    record_id = sim.insert("contacts", {"firstname": "Grace", "lastname": "Hopper"})

    copy = sim.get("contacts", record_id)
    assert copy is not None
    copy["firstname"] = "changed"
    sim.records("contacts")[0]["lastname"] = "changed"

    stored = sim.get("contacts", record_id.upper())
    assert stored is not None
    assert (stored["firstname"], stored["lastname"], stored["fullname"]) == ("Grace", "Hopper", "Grace Hopper")
    with pytest.raises(ValueError, match="does not exist"):
        sim.insert("contacts", {"nosuchcolumn": "x"})
    with pytest.raises(ValueError, match="unknown entity set"):
        sim.records("nosuchset")
    sim.clear()
    assert sim.records("contacts") == []
    assert len(sim.records("transactioncurrencies")) == 7

"""API usage, the daily allocation, and the base class's faults in Salesforce's error shape."""

from __future__ import annotations

import time

import httpx

from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.support import create, error_of, records


def test_every_api_answer_carries_sforce_limit_info(api: httpx.Client, sim: SalesforceSimulator) -> None:
    sim.set_api_usage(0, 5000)

    first = api.get("/limits")
    second = api.get("/sobjects/Account/001000000000000AAA")  # an error counts as a call too

    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/5000"
    assert first.json() == {"DailyApiRequests": {"Max": 5000, "Remaining": 4999}}
    assert second.status_code == 404
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/5000"


def test_the_daily_allocation_runs_out(api: httpx.Client, sim: SalesforceSimulator) -> None:
    sim.set_api_usage(99, 100)

    last = api.get("/limits")
    refused = api.post("/sobjects/Account", json={"Name": "A"})

    assert last.status_code == 200
    assert refused.status_code == 403
    assert error_of(refused) == {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=100/100"
    assert sim.records("Account") == []


def test_a_seeded_403_fault_is_request_limit_exceeded_and_writes_nothing(
    api: httpx.Client, sim: SalesforceSimulator
) -> None:
    sim.set_faults({"rate": 1, "statuses": [403], "routes": ["POST /services/data/<version>/sobjects/<name>"],
                    "max_faults": 1})  # fmt: skip

    refused = api.post("/sobjects/Account", json={"Name": "A"})
    retried = api.post("/sobjects/Account", json={"Name": "A"})

    assert refused.status_code == 403
    assert error_of(refused) == {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    assert "Retry-After" not in refused.headers
    assert "Sforce-Limit-Info" in refused.headers
    assert retried.status_code == 201
    assert len(sim.records("Account")) == 1
    assert [r.fault for r in sim.recorded("POST", "/services/data/v60.0/sobjects")] == ["status", None]


def test_503_and_timeouts_from_the_base_class(api: httpx.Client, sim: SalesforceSimulator) -> None:
    create(api, "Account", Name="A")
    sim.set_faults({"rate": 1, "statuses": [503], "max_faults": 1})
    unavailable = api.get("/query", params={"q": "SELECT Id FROM Account"})
    sim.set_faults({"timeout_rate": 1, "timeout_seconds": 0.2, "max_faults": 1})
    timed_out = api.get("/query", params={"q": "SELECT Id FROM Account"})

    assert unavailable.status_code == 503
    assert error_of(unavailable)["errorCode"] == "SERVER_UNAVAILABLE"
    assert unavailable.headers["Retry-After"] == "1"
    assert timed_out.status_code == 504
    assert error_of(timed_out)["errorCode"] == "REQUEST_RUNNING_TOO_LONG"
    assert len(records(api, "SELECT Id FROM Account")) == 1


def test_requests_are_counted_per_route(api: httpx.Client, sim: SalesforceSimulator) -> None:
    create(api, "Account", Name="A")
    records(api, "SELECT Id FROM Account")
    records(api, "SELECT Id FROM Account")

    stats = sim.stats_snapshot()

    assert stats["routes"]["POST /services/data/<version>/sobjects/<name>"] == 1
    assert stats["routes"]["GET /services/data/<version>/query"] == 2
    assert stats["routes"]["POST /services/oauth2/token"] == 1


def test_the_allocation_is_a_rolling_window_calls_leave_it(api: httpx.Client, sim: SalesforceSimulator) -> None:
    now = [5000.0]
    sim.usage_clock = lambda: now[0]
    try:
        sim.set_api_usage(3, 4, window_seconds=10)  # three calls by another integration, just now
        now[0] += 4
        mine = api.get("/limits")
        refused = api.get("/limits")
        now[0] += 6  # the other integration's calls are 10 s old: out of the window
        after = api.get("/limits")
    finally:
        sim.usage_clock = time.monotonic
        sim.set_api_usage(0, 100_000, window_seconds=86_400)

    assert mine.headers["Sforce-Limit-Info"] == "api-usage=4/4"
    assert refused.status_code == 403
    assert error_of(refused)["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert after.status_code == 200
    assert after.headers["Sforce-Limit-Info"] == "api-usage=2/4"  # mine (6 s old) and this one

"""Service protection API limits: 429 with Retry-After and the documented code past each limit, the
x-ms-ratelimit-* headers on every answer, and the window sliding on."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from sandbox.sims.dataverse.protection import Limits
from tests.sandbox.dataverse_support import API, error_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited() -> Iterator[tuple[DataverseSimulator, httpx.Client, Clock]]:
    """Its own org: 5 requests / 10 s, 2 s of execution time, 2 concurrent requests; a clock the test moves."""
    sim = DataverseSimulator(seed=2, limits=Limits(requests=5, window_seconds=10, execution_seconds=2, concurrent=2))
    clock = Clock()
    sim.protection.clock = clock
    thread = ServerThread(sim).start()
    with httpx.Client(base_url=thread.url + API, headers={"Accept": "application/json"}, timeout=10) as client:
        yield sim, client, clock
    thread.stop()


def test_past_the_request_limit_the_answer_is_429_with_the_documented_code_until_the_window_moves_on(
    limited: tuple[DataverseSimulator, httpx.Client, Clock],
) -> None:
    sim, client, clock = limited
    answers = []
    for _ in range(5):
        answers.append(client.get("/accounts"))
        clock.now += 1
    refused = client.get("/accounts")
    refused_write = client.post("/accounts", json={"name": "Never written"})
    clock.now += 6  # the first request (at 1000) leaves the window at 1010
    again = client.get("/accounts")

    assert [a.status_code for a in answers] == [200] * 5
    assert [a.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] for a in answers] == ["4", "3", "2", "1", "0"]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "5"  # 1000 + 10 - 1005
    assert error_of(refused) == {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 5 over time window of 10 seconds.",
    }
    assert refused.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "0"
    assert refused_write.status_code == 429
    assert sim.records("accounts") == []  # a refused request does no work
    assert again.status_code == 200
    assert sim.protection.snapshot()["refused"] == 2


def test_the_execution_time_limit_and_its_header(limited: tuple[DataverseSimulator, httpx.Client, Clock]) -> None:
    sim, client, clock = limited
    sim.protection.configure(requests=100)
    real_leave = sim.protection.leave

    def slow_leave(request, response):  # type: ignore[no-untyped-def]
        clock.now += 1.5  # each request "runs" 1.5 s on the server
        real_leave(request, response)

    sim.protection.leave = slow_leave  # type: ignore[method-assign]
    first = client.get("/accounts")
    second = client.get("/accounts")
    refused = client.get("/accounts")

    assert first.headers["x-ms-ratelimit-time-remaining-xrm-requests"] == "0.50"
    assert second.headers["x-ms-ratelimit-time-remaining-xrm-requests"] == "0.00"
    assert refused.status_code == 429
    assert error_of(refused)["code"] == "0x80072321"
    assert error_of(refused)["message"].startswith(
        "Combined execution time of incoming requests exceeded limit of 2,000 milliseconds "
        "over time window of 10 seconds."
    )
    assert int(refused.headers["Retry-After"]) >= 1


def test_the_concurrency_limit_refuses_at_once(limited: tuple[DataverseSimulator, httpx.Client, Clock]) -> None:
    sim, client, _ = limited
    sim.protection.configure(requests=100, execution_seconds=100)
    sim.set_faults({"latency_ms": 400})  # two requests held in flight while the third arrives
    results: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: results.append(client.get("/accounts"))) for _ in range(2)]
    for t in threads:
        t.start()
    while sim.protection.snapshot()["users"].get("application-user", {}).get("inFlight", 0) < 2:
        time.sleep(0.01)
    third = httpx.get(str(client.base_url).rstrip("/") + "/accounts", timeout=10)
    for t in threads:
        t.join()

    assert third.status_code == 429
    message = "Number of concurrent requests exceeded the limit of 2."
    assert error_of(third) == {"code": "0x80072326", "message": message}
    assert third.headers["Retry-After"] == "1"
    assert sorted(r.status_code for r in results) == [200, 200]


def test_the_defaults_are_the_documented_limits_and_the_control_api_changes_them(server: ServerThread) -> None:
    url = f"{server.url}/_sim/service-protection"
    default = httpx.get(url, timeout=10).json()["limits"]
    changed = httpx.put(url, json={"requests": 300, "window_seconds": 10, "used_by_others": 250}, timeout=10).json()
    answer = httpx.get(f"{server.url}{API}/accounts", timeout=10)
    bad = httpx.put(url, json={"requests": "many"}, timeout=10)
    httpx.put(url, json={"requests": 6000, "window_seconds": 300, "reset": True}, timeout=10)

    assert default == {"requests": 6000, "window_seconds": 300.0, "execution_seconds": 1200.0, "concurrent": 52}
    assert changed["limits"]["requests"] == 300
    assert changed["users"]["application-user"]["requests"] == 250
    assert answer.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "49"
    assert re.fullmatch(r"1,(199|200)\.\d\d", answer.headers["x-ms-ratelimit-time-remaining-xrm-requests"])
    assert bad.status_code == 400

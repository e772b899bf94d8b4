"""Fault injection in the simulator base class, on a minimal simulator over real HTTP.

The simulator-specific behaviour (error bodies, which writes are committed) is tested with each
simulator; here: the draw order and seed, ``commit_timeout`` vs ``timeout``, ``routes`` and ``max_faults``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from werkzeug.wrappers import Request, Response

from sandbox.sims.base import FaultConfig, ServerThread, Simulator, json_response
from tests.sims.serving import served


class ItemsSimulator(Simulator):
    """``POST /items`` stores the body text, ``GET /items`` lists what was stored."""

    name = "items"

    def __init__(self, *, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.items: list[str] = []
        self.add_route("/items", ["POST"], self._create)
        self.add_route("/items", ["GET"], self._list)

    def _create(self, request: Request) -> Response:
        with self._lock:
            self.items.append(request.get_data(as_text=True))
            return json_response({"count": len(self.items)}, 201)

    def _list(self, request: Request) -> Response:
        with self._lock:
            return json_response(list(self.items))


_served = served(lambda: ItemsSimulator(seed=1), scope="module")


@pytest.fixture
def sim(_served: tuple[ItemsSimulator, ServerThread]) -> ItemsSimulator:
    simulator = _served[0]
    simulator.set_faults(None)
    simulator.reset_stats()
    simulator.items.clear()
    return simulator


@pytest.fixture
def http(sim: ItemsSimulator, _served: tuple[ItemsSimulator, ServerThread]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=_served[1].url, timeout=10) as client:
        yield client


def _fault_pattern(sim: ItemsSimulator, http: httpx.Client, config: dict[str, Any], n: int = 24) -> list[str | None]:
    sim.set_faults(config)
    sim.reset_stats()
    for i in range(n):
        http.post("/items", content=f"item {i}")
    return [r.fault for r in sim.recorded("POST", "/items")]


def test_commit_timeout_runs_the_handler_then_answers_too_late(sim: ItemsSimulator, http: httpx.Client) -> None:
    sim.set_faults({"commit_timeout_rate": 1.0, "timeout_seconds": 0.6})

    with pytest.raises(httpx.ReadTimeout):
        http.post("/items", content="lost answer", timeout=0.2)

    assert sim.items == ["lost answer"]  # committed although the client saw nothing
    record = sim.recorded("POST", "/items")[0]
    assert record.fault == "commit_timeout"
    assert record.status == 201  # the real answer, held back

    started = time.monotonic()
    patient = http.post("/items", content="late answer", timeout=5)
    assert time.monotonic() - started >= 0.6
    assert patient.status_code == 201  # a client that waits long enough gets the handler's answer
    assert patient.json() == {"count": 2}
    assert sim.faults_injected == 2


def test_plain_timeout_does_not_run_the_handler(sim: ItemsSimulator, http: httpx.Client) -> None:
    sim.set_faults({"timeout_rate": 1.0, "timeout_seconds": 0})

    response = http.post("/items", content="never stored")

    assert response.status_code == 504
    assert sim.items == []
    assert sim.recorded("POST", "/items")[0].fault == "timeout"


def test_commit_timeout_draws_are_reproducible_from_the_seed(sim: ItemsSimulator, http: httpx.Client) -> None:
    config = {"commit_timeout_rate": 0.5, "timeout_seconds": 0, "seed": 11}

    first = _fault_pattern(sim, http, config)
    second = _fault_pattern(sim, http, config)
    other_seed = _fault_pattern(sim, http, {**config, "seed": 12})

    assert first == second
    assert set(first) == {"commit_timeout", None}
    assert other_seed != first
    rng = random.Random(11)  # one draw per request, in order
    assert first == ["commit_timeout" if rng.random() < 0.5 else None for _ in range(24)]
    assert len(sim.items) == 3 * 24  # every request was handled, faulted or not


def test_draw_order_keeps_existing_status_sequences(sim: ItemsSimulator, http: httpx.Client) -> None:
    """A config without commit timeouts draws exactly as before the kind existed."""
    pattern = _fault_pattern(sim, http, {"rate": 0.5, "statuses": [503], "seed": 5})

    rng = random.Random(5)
    expected = []
    for _ in range(24):
        faulted = rng.random() < 0.5
        if faulted:
            rng.choice([503])
        expected.append("status" if faulted else None)
    assert pattern == expected


def test_commit_timeout_honours_routes(sim: ItemsSimulator, http: httpx.Client) -> None:
    sim.set_faults({"commit_timeout_rate": 1.0, "timeout_seconds": 0, "routes": ["POST /items"]})

    http.post("/items", content="x")
    listed = http.get("/items")

    assert listed.status_code == 200
    assert [r.fault for r in sim.recorded()] == ["commit_timeout", None]


def test_max_faults_fails_exactly_the_first_matching_requests(sim: ItemsSimulator, http: httpx.Client) -> None:
    sim.set_faults(FaultConfig(rate=1.0, statuses=[503], routes=["POST /items"], max_faults=1))

    assert http.get("/items").status_code == 200  # not a matching route: neither faulted nor counted
    statuses = [http.post("/items", content=f"try {i}").status_code for i in range(3)]

    assert statuses == [503, 201, 201]
    assert sim.items == ["try 1", "try 2"]
    assert sim.faults_injected == 1

    sim.set_faults(FaultConfig(rate=1.0, statuses=[503], max_faults=2))  # a new config starts a new count
    assert [http.post("/items").status_code for _ in range(3)] == [503, 503, 201]
    sim.set_faults(FaultConfig(rate=1.0, max_faults=0))
    assert http.post("/items").status_code == 201


def test_max_faults_counts_every_kind(sim: ItemsSimulator, http: httpx.Client) -> None:
    config = {"timeout_rate": 0.5, "commit_timeout_rate": 0.5, "rate": 1.0, "statuses": [503], "timeout_seconds": 0}

    pattern = _fault_pattern(sim, http, {**config, "seed": 3, "max_faults": 4}, n=8)

    assert None not in pattern[:4]
    assert pattern[4:] == [None] * 4
    assert sim.faults_injected == 4


def test_control_api_sets_and_reports_the_new_fields(sim: ItemsSimulator, http: httpx.Client) -> None:
    body = {"commit_timeout_rate": 1.0, "timeout_seconds": 0, "max_faults": 1, "routes": ["POST /items"]}

    put = http.put("/_sim/faults", json=body)

    assert put.status_code == 200
    assert put.json()["commit_timeout_rate"] == 1.0
    assert put.json()["max_faults"] == 1
    assert http.get("/_sim/faults").json()["max_faults"] == 1
    http.post("/items", content="a")
    http.post("/items", content="b")
    requests = http.get("/_sim/requests", params={"method": "POST"}).json()
    assert [r["fault"] for r in requests] == ["commit_timeout", None]
    assert http.put("/_sim/faults", json={"max_faults": -1}).status_code == 400
    assert http.put("/_sim/faults", json={"max_faults": "one"}).status_code == 400
    assert http.put("/_sim/faults", json={}).json()["max_faults"] is None

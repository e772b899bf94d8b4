"""The CRM limiter against the Dataverse simulator's service protection: a burst from many workers stays
under the configured pace and the simulator's limit, and slows down when another integration has spent
most of the user's window. Limits are shrunk (a window of seconds) so the test reaches them quickly."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from sandbox.sims.dataverse.protection import Limits
from shared.crm.dataverse_client import API_PATH
from shared.http import ApiError, ServiceClient
from shared.ratelimit import RateLimiter, dataverse_budget

WINDOW = 2.0
LIMIT = 40  # requests per WINDOW seconds at the simulated service


@pytest.fixture
def org() -> Iterator[tuple[DataverseSimulator, str]]:
    sim = DataverseSimulator(seed=9, limits=Limits(requests=LIMIT, window_seconds=WINDOW))
    server = ServerThread(sim).start()
    yield sim, f"{server.url}/{API_PATH}"
    server.stop()


def burst(url: str, limiter: RateLimiter | None, requests: int, workers: int = 8) -> list[int]:
    """``requests`` GETs from ``workers`` threads sharing one limiter, as queue workers do; their statuses."""
    http = ServiceClient("dataverse", url, limiter=limiter, max_attempts=1, timeout=10)
    statuses: list[int] = []
    lock = threading.Lock()
    todo = iter(range(requests))

    def work() -> None:
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            try:
                status = http.request("GET", "accounts").status_code
            except ApiError as exc:
                status = exc.status
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    http.close()
    return statuses


def busiest_window(sim: DataverseSimulator, seconds: float) -> int:
    times = sorted(r.at for r in sim.recorded("GET"))
    return max(sum(1 for t in times if start <= t < start + seconds) for start in times)


def test_unpaced_the_burst_is_refused_by_the_service(org: tuple[DataverseSimulator, str]) -> None:
    sim, url = org
    statuses = burst(url, None, 60)

    assert statuses.count(429) > 0
    assert sim.protection.snapshot()["refused"] == statuses.count(429)


def test_paced_the_burst_stays_under_the_configured_budget_and_sees_no_429(
    org: tuple[DataverseSimulator, str],
) -> None:
    sim, url = org
    pace = RateLimiter(per_minute=600, max_wait=30, budget=dataverse_budget(requests=LIMIT, window_seconds=WINDOW))
    statuses = burst(url, pace, 60)

    assert statuses == [200] * 60
    assert sim.protection.snapshot()["refused"] == 0
    # 10 a second with a burst of one second's worth: never more than 10 x (window + 1) in any window.
    assert busiest_window(sim, WINDOW) <= 10 * (WINDOW + 1) < LIMIT


def test_when_another_integration_spent_most_of_the_window_the_headers_slow_the_app_down(
    org: tuple[DataverseSimulator, str],
) -> None:
    sim, url = org
    sim.protection.configure(requests=100)
    sim.protection.spend(75)  # someone else, as the same user, just now: 25 left for 2 s
    # Configured far above what is left (100 a second): only the budget the headers report holds it back.
    pace = RateLimiter(per_minute=6000, max_wait=30, budget=dataverse_budget(requests=100, window_seconds=WINDOW))
    statuses = burst(url, pace, 40, workers=4)

    assert statuses == [200] * 40
    assert sim.protection.snapshot()["refused"] == 0

"""The CRM limiter's rules on a fake clock: the pace, the budget the CRM's headers report, a 429 for everyone."""

from __future__ import annotations

import httpx
import pytest

from shared.http import ServiceClient, Throttled
from shared.ratelimit import PaceExceeded, RateLimiter, dataverse_budget, salesforce_budget

BURST = "x-ms-ratelimit-burst-remaining-xrm-requests"
TIME = "x-ms-ratelimit-time-remaining-xrm-requests"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: Clock, **options: object) -> RateLimiter:
    settings: dict[str, object] = {"per_minute": 600, "max_wait": 30.0, "clock": clock, "sleep": clock.sleep}
    return RateLimiter(**{**settings, **options})  # type: ignore[arg-type]


def answer(status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_a_burst_goes_at_the_configured_pace_and_never_above_it_in_any_window() -> None:
    clock = Clock()
    pace = limiter(clock)  # 10 a second, a burst of one second's worth
    sent: list[float] = []
    for _ in range(200):
        pace.acquire()
        sent.append(clock.now)

    for window in (1.0, 5.0, 10.0):
        most = max(sum(1 for t in sent if start <= t < start + window) for start in sent)
        assert most <= 10 * (window + 1)
    assert sent[-1] - sent[0] == pytest.approx(19.0)  # 10 at once, then 190 at 10 a second


def test_waits_past_max_wait_are_refused_and_take_no_slot() -> None:
    clock = Clock()
    pace = limiter(clock, per_minute=60, max_wait=2.0)  # one a second, burst 1
    waits = [pace.reserve_slot() for _ in range(3)]
    with pytest.raises(PaceExceeded) as refused:
        pace.reserve_slot()
    clock.now += 1
    after = pace.reserve_slot()

    assert waits == [0.0, pytest.approx(1.0), pytest.approx(2.0)]
    assert refused.value.retry_after == pytest.approx(3.0)
    assert after == pytest.approx(2.0)  # the refused caller did not push the queue back


def test_dataverse_headers_slow_the_pace_below_twice_the_reserve_and_stop_it_at_the_reserve() -> None:
    clock = Clock()
    pace = limiter(clock, reserve=0.2, budget=dataverse_budget(requests=1000))
    pace.observe(answer(**{BURST: "999"}))
    full = pace.slowdown()
    pace.observe(answer(**{BURST: "300"}))
    half = pace.slowdown()
    pace.observe(answer(**{BURST: "900", TIME: "1,200.00"}))
    time_ok = pace.slowdown()
    pace.observe(answer(**{BURST: "900", TIME: "180.00"}))  # 15 % of 1,200 s of execution time left
    stopped = pace.slowdown()
    probe = pace.reserve_slot()  # down to the reserve: one request goes to read the budget again...
    pace.acquire()  # ...the next waits recover_seconds (30 s) and, no better news come, is the next probe

    assert (full, half, time_ok, stopped) == (1.0, pytest.approx(0.5), 1.0, 0.0)
    assert probe == 0.0
    assert clock.slept == [pytest.approx(30.0)]
    pace.observe(answer(**{BURST: "900", TIME: "1,200.00"}))  # the budget came back
    assert pace.slowdown() == 1.0
    assert pace.reserve_slot() == pytest.approx(0.0, abs=0.1)


def test_salesforce_usage_header_is_the_daily_budget() -> None:
    read = salesforce_budget(300)
    budget = read(httpx.Headers({"Sforce-Limit-Info": "api-usage=90000/100000, per-app-api-usage=10/500(appName=x)"}))
    clock = Clock()
    pace = limiter(clock, reserve=0.2, budget=read, max_wait=30)
    pace.observe(answer(403, **{"Sforce-Limit-Info": "api-usage=100000/100000"}))

    assert budget is not None
    assert (budget.remaining, budget.capacity) == (10000, 100000)
    assert read(httpx.Headers({})) is None
    assert pace.reserve_slot() == 0.0  # one request a pause reads the budget
    with pytest.raises(PaceExceeded) as stopped:
        pace.acquire()
    assert stopped.value.retry_after == pytest.approx(300)


def test_a_429_pauses_every_caller_for_its_retry_after() -> None:
    clock = Clock()
    pace = limiter(clock, max_wait=30)
    pace.observe(answer(429), retry_after=12)

    pace.acquire()
    assert clock.slept == [pytest.approx(12.0)]
    pace.observe(answer(429), retry_after=120)
    with pytest.raises(PaceExceeded) as refused:
        pace.acquire()
    assert refused.value.retry_after == pytest.approx(120.0)


def test_the_http_policy_waits_for_the_limiter_and_turns_a_long_wait_into_throttled() -> None:
    clock = Clock()
    pace = limiter(clock, per_minute=60, max_wait=1.5, budget=dataverse_budget(requests=100))
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(200, json={}, headers={"x-ms-ratelimit-burst-remaining-xrm-requests": "90"})

    client = ServiceClient("dataverse", "https://org.example/api/data/v9.2", transport=httpx.MockTransport(handler),
                           limiter=pace, sleep=clock.sleep)  # fmt: skip
    client.request("GET", "accounts")
    client.request("GET", "accounts")  # waits its second
    pace.reserve_slot()  # another worker takes the next slot
    with pytest.raises(Throttled) as throttled:
        client.request("GET", "accounts")  # two seconds away: longer than the 1.5 s an in-call wait may take

    assert sent == [100.0, pytest.approx(101.0)]  # the third was never sent
    assert pace.budget is not None
    assert pace.budget.remaining == 90
    assert throttled.value.retry_after == pytest.approx(2.0)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="per_minute > 0"):
        RateLimiter(per_minute=0)
    with pytest.raises(ValueError, match=r"reserve < 0\.5"):
        RateLimiter(per_minute=10, reserve=0.5)

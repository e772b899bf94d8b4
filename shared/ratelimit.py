"""One pace per CRM user: every CRM call of the process (queue workers, CRM poll, backfill, resync) waits
its turn here, so the app stays under the CRM's service-protection limits instead of finding them by 429s.

Three rules, each cheap to reason about:

1. **A steady pace** (token bucket): ``per_minute`` requests a minute with a burst of one second's worth,
   so in any window of ``w`` seconds at most ``per_minute / 60 * (w + 1)`` requests leave this process.
   Callers reserve their slot in arrival order, so threads are served fairly, not by who wakes first.
2. **At most ``max_concurrent`` in flight** (Dataverse refuses past 52 per user at once).
3. **The service's own count**: each answer's headers say how much of the user's budget is left, counting
   every integration that runs as the same user (:class:`Budget`, read by :func:`dataverse_budget` and
   :func:`salesforce_budget`). While more than twice ``reserve`` is left the pace is rule 1's; below, it
   slows linearly; at ``reserve`` it lets one request through per ``recover_seconds``, whose answer says
   whether the budget came back. A 429 with ``Retry-After`` pauses every caller that long, as
   Microsoft asks ("pause all requests for that user", crm-apis.md A7), not just the one refused.

A wait longer than ``max_wait`` is not slept through: :class:`PaceExceeded` says how long, and the HTTP
policy turns it into :class:`shared.http.Throttled`, so a queue message comes back later and a poll stops
at its watermark, as for a 429.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Budget:
    """What the service says is left of the user's allowance: ``remaining`` of ``capacity``;
    ``recover_seconds`` is how long to stop when it is spent (the window, or a part of it)."""

    remaining: float
    capacity: float
    recover_seconds: float

    @property
    def share_left(self) -> float:
        return max(0.0, self.remaining) / self.capacity if self.capacity > 0 else 1.0


BudgetReader = Callable[[httpx.Headers], "Budget | None"]


def dataverse_budget(
    requests: int = 6000, execution_seconds: float = 1200.0, window_seconds: float = 300.0
) -> BudgetReader:
    """Dataverse's ``x-ms-ratelimit-burst-remaining-xrm-requests`` (requests left in the user's 5-minute
    window) and ``x-ms-ratelimit-time-remaining-xrm-requests`` (execution seconds left, written
    ``1,200.00``); the tighter of the two counts. Limits default to the documented ones (api-limits page).
    Microsoft calls the headers a debugging aid; they only ever slow us down, a 429 still rules."""

    def read(headers: httpx.Headers) -> Budget | None:
        shares: list[Budget] = []
        burst = _number(headers.get("x-ms-ratelimit-burst-remaining-xrm-requests"))
        if burst is not None:
            shares.append(Budget(burst, requests, window_seconds / 10))
        seconds = _number(headers.get("x-ms-ratelimit-time-remaining-xrm-requests"))
        if seconds is not None:
            shares.append(Budget(seconds, execution_seconds, window_seconds / 10))
        return min(shares, key=lambda b: b.share_left) if shares else None

    return read


def salesforce_budget(recover_seconds: float) -> BudgetReader:
    """Salesforce's ``Sforce-Limit-Info: api-usage=used/max``: the org's rolling 24-hour allocation, shared
    with every integration. Spent, it frees only as calls age out: stop ``recover_seconds``
    (SALESFORCE_LIMIT_PAUSE_SECONDS) at a time."""

    def read(headers: httpx.Headers) -> Budget | None:
        value = headers.get("Sforce-Limit-Info", "")
        for part in value.split(","):
            name, _, usage = part.strip().partition("=")
            if name == "api-usage":
                used, _, limit = usage.partition("/")
                if used.isdigit() and limit.isdigit():
                    return Budget(int(limit) - int(used), int(limit), recover_seconds)
        return None

    return read


_AT_RESERVE = "the CRM user's budget is down to its reserve"


class PaceExceeded(Exception):
    """The next slot is further away than a caller may wait: come back after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(f"{reason}; next request in {retry_after:.0f} s")
        self.retry_after = retry_after
        self.reason = reason


class RateLimiter:
    """Rules 1–3 of the module docstring for one CRM user; thread-safe; ``clock``/``sleep`` are injectable."""

    def __init__(
        self,
        *,
        per_minute: float,
        max_concurrent: int = 16,
        reserve: float = 0.2,
        max_wait: float = 30.0,
        budget: BudgetReader | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0 or max_concurrent < 1 or not 0 <= reserve < 0.5:
            raise ValueError("per_minute > 0, max_concurrent >= 1 and 0 <= reserve < 0.5 are required")
        self.rate = per_minute / 60.0  # requests per second
        self.burst = max(1.0, self.rate)  # one second's worth
        self.reserve = reserve
        self.max_wait = max_wait
        self._read_budget = budget
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._tokens = self.burst
        self._updated = clock()
        self._paused_until = 0.0
        self._pause_reason = ""
        self.budget: Budget | None = None  # the last reading

    # ------------------------------------------------------------------ public
    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Hold a slot for one HTTP attempt: wait for the pace and a free concurrency slot."""
        self.acquire()
        if not self._slots.acquire(timeout=self.max_wait):
            raise PaceExceeded(1.0, f"{self.max_wait:.0f} s without a free slot for a concurrent request")
        try:
            yield
        finally:
            self._slots.release()

    def acquire(self) -> None:
        """Wait for the next slot of the pace (or raise :class:`PaceExceeded` if it is too far away)."""
        deadline = self._clock() + self.max_wait
        while True:
            wait, reserved = self._reserve(deadline)
            if wait > 0:
                self._sleep(wait)
            if reserved:
                return

    def reserve_slot(self) -> float:
        """Take the next slot now, for a caller that sleeps by itself: how long until it comes."""
        wait, reserved = self._reserve(self._clock() + self.max_wait)
        if not reserved:
            raise PaceExceeded(wait, self._pause_reason)
        return wait

    def _reserve(self, deadline: float) -> tuple[float, bool]:
        """(wait, reserved): a slot reserved ``wait`` seconds ahead, or a pause to wait out and look again."""
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                wait = self._paused_until - now
                if now + wait > deadline:
                    raise PaceExceeded(wait, self._pause_reason)
                return wait, False
            if self.budget is not None and self._slowdown() <= 0:
                # Spent down to the reserve: this one request reads the budget again; the others wait
                # ``recover_seconds`` and look at what it learned.
                self._pause(now, self.budget.recover_seconds, _AT_RESERVE)
                return 0.0, True
            rate = self.rate * self._slowdown()
            self._refill(now, rate)
            wait = max(0.0, (1.0 - self._tokens) / rate)
            if now + wait > deadline:
                raise PaceExceeded(wait, f"the pace allows {rate * 60:.0f} CRM requests a minute now")
            self._tokens -= 1.0
            return wait, True

    def observe(self, response: httpx.Response, retry_after: float | None = None) -> None:
        """Learn from an answer: the budget its headers state, and a 429's ``Retry-After`` for everyone."""
        reading = self._read_budget(response.headers) if self._read_budget else None
        with self._lock:
            if reading is not None:
                self.budget = reading
                if self._pause_reason == _AT_RESERVE and self._slowdown() > 0:
                    self._paused_until = 0.0  # the probe found the budget back: nobody waits any longer
            if response.status_code == 429 and retry_after:
                self._pause(self._clock(), retry_after, "the CRM answered 429 Too Many Requests")

    def pause(self, seconds: float, reason: str) -> None:
        """Stop every caller for ``seconds`` (a refusal the service gave without a 429)."""
        with self._lock:
            self._pause(self._clock(), seconds, reason)

    def slowdown(self) -> float:
        """The share of the configured pace the last budget reading allows (1 = full pace, 0 = stopped)."""
        with self._lock:
            return self._slowdown()

    # ------------------------------------------------------------------ internals (lock held)
    def _slowdown(self) -> float:
        if self.budget is None:
            return 1.0
        left = self.budget.share_left
        if self.reserve == 0:
            return 1.0 if left > 0 else 0.0
        return min(1.0, max(0.0, (left - self.reserve) / self.reserve))

    def _refill(self, now: float, rate: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * rate)
        self._updated = now

    def _pause(self, now: float, seconds: float, reason: str) -> None:
        until = now + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until, self._pause_reason = until, reason


_registry: dict[str, RateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(identity: str, factory: Callable[[], RateLimiter]) -> RateLimiter:
    """The process's one limiter for a CRM user (``identity``: the CRM and its client id), built on first use."""
    with _registry_lock:
        limiter = _registry.get(identity)
        if limiter is None:
            limiter = _registry[identity] = factory()
        return limiter


def forget_limiters() -> None:
    """Tests change settings between cases."""
    with _registry_lock:
        _registry.clear()


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.replace(",", "").strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None

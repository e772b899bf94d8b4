"""Dataverse's service protection API limits: per user, a sliding window of requests and of execution
time, and a cap on concurrent requests; past any of them the answer is 429 with ``Retry-After``.

Source: "Service protection API limits", learn.microsoft.com/power-apps/developer/data-platform/api-limits
(MicrosoftDocs/powerapps-docs ``developer/data-platform/api-limits.md``, 2023-01-31), and crm-apis.md A7:

- limits per user per web server: 6,000 requests and 20 minutes (1,200 s) of combined execution time
  "within the 5 minute sliding window", and 52 concurrent requests;
- the Web API answers **429 Too Many Requests** with ``Retry-After`` in seconds and the hex code in the
  error body: ``0x80072322`` (-2147015902) "Number of requests exceeded the limit of 6000 over time window
  of 300 seconds.", ``0x80072321`` (-2147015903) "Combined execution time of incoming requests exceeded
  limit of 1,200,000 milliseconds over time window of 300 seconds. Decrease number of concurrent requests
  or reduce the duration of requests and try again later.", ``0x80072326`` (-2147015898) "Number of
  concurrent requests exceeded the limit of 52.";
- responses carry ``x-ms-ratelimit-burst-remaining-xrm-requests`` (requests left) and
  ``x-ms-ratelimit-time-remaining-xrm-requests`` (execution time left). The values are written as the
  service writes them in captured responses: ``5999`` and ``1,200.00`` (seconds, grouped, two decimals);
- "A batch can contain up to 1000 operations and will avoid the number of requests limit. However, you
  will need to be prepared for the execution time limit": a ``$batch`` is ONE request here, and its
  execution time is the whole batch's, measured around it. All counting happens in :meth:`charge`, so
  a rule that ever needs a per-operation charge has one place to call.

Where the documentation is silent (the simulator's choices): refused requests did no work and are not
counted; ``Retry-After`` is the time until enough of the window has passed for the refused request to
fit (at least 1 s; 1 s for the concurrency refusal). The service "can" let a burst overshoot before it
refuses; the simulator never does, so an app that passes here does not rely on the overshoot. Every
request acts as the org's one application user (``user_of`` may tell users apart).

The numbers are configurable (``DataverseSimulator(limits=...)``, ``PUT /_sim/service-protection``) so a
test can reach them in seconds; the defaults are the service's. ``used_by_others`` spends part of the
window now, as another integration running as the same user would.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from werkzeug.wrappers import Request, Response

CODE_REQUESTS = "0x80072322"  # -2147015902
CODE_EXECUTION_TIME = "0x80072321"  # -2147015903
CODE_CONCURRENT = "0x80072326"  # -2147015898

BURST_REMAINING = "x-ms-ratelimit-burst-remaining-xrm-requests"
TIME_REMAINING = "x-ms-ratelimit-time-remaining-xrm-requests"


@dataclass(frozen=True)
class Limits:
    """Per user; the defaults are the documented ones."""

    requests: int = 6000
    window_seconds: float = 300.0
    execution_seconds: float = 1200.0
    concurrent: int = 52

    def __post_init__(self) -> None:
        if self.requests < 1 or self.concurrent < 1 or self.window_seconds <= 0 or self.execution_seconds <= 0:
            raise ValueError("limits must be positive")


Refuse = Callable[[str, str, dict[str, str]], Response]


class _User:
    def __init__(self) -> None:
        self.requests: deque[float] = deque()  # arrival times of admitted requests in the window
        self.execution: deque[tuple[float, float]] = deque()  # (finished at, seconds)
        self.in_flight = 0


class ServiceProtection:
    """The simulator's :class:`~sandbox.sims.base.Admission`: refuse past the limits, add the headers."""

    def __init__(
        self,
        refuse: Refuse,
        limits: Limits | None = None,
        *,
        user_of: Callable[[Request], str] = lambda request: "application-user",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._refuse = refuse  # the simulator's error body: (code, message, headers) -> 429 response
        self.limits = limits or Limits()
        self._user_of = user_of
        self.clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, _User] = {}
        self.refused = 0

    # ----- configuration -----
    def configure(self, **changes: Any) -> Limits:
        """Change some numbers (``requests``, ``window_seconds``, ``execution_seconds``, ``concurrent``);
        the counts so far stay."""
        with self._lock:
            self.limits = replace(self.limits, **changes)
            return self.limits

    def reset(self) -> None:
        with self._lock:
            self._users.clear()
            self.refused = 0

    def spend(self, requests: int, user: str = "application-user") -> None:
        """Count ``requests`` made now by someone else running as ``user`` (another integration)."""
        with self._lock:
            self.charge(self._user(user), requests=requests)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            users = {}
            for name, user in self._users.items():
                self._expire(user, now)
                users[name] = {
                    "requests": len(user.requests),
                    "executionSeconds": round(sum(s for _, s in user.execution), 3),
                    "inFlight": user.in_flight,
                }
            return {"limits": asdict(self.limits), "users": users, "refused": self.refused}

    # ----- admission -----
    def enter(self, request: Request) -> Response | None:
        limits = self.limits
        with self._lock:
            user = self._user(self._user_of(request))
            now = self.clock()
            self._expire(user, now)
            refusal = self._over(user, now, limits)
            if refusal is not None:
                self.refused += 1
                code, message, retry_after = refusal
                headers = {"Retry-After": str(retry_after), **self._remaining(user, limits)}
                return self._refuse(code, message, headers)
            self.charge(user, requests=1)
            user.in_flight += 1
            request.environ["sim.protection"] = (user, now)
            return None

    def leave(self, request: Request, response: Response) -> None:
        user, started = request.environ.pop("sim.protection")
        with self._lock:
            now = self.clock()
            user.in_flight -= 1
            self.charge(user, execution=max(0.0, now - started), at=now)
            self._expire(user, now)
            response.headers.update(self._remaining(user, self.limits))

    def charge(self, user: _User, *, requests: int = 0, execution: float = 0.0, at: float | None = None) -> None:
        """The one place usage is counted (call with the lock held)."""
        now = self.clock() if at is None else at
        user.requests.extend([now] * requests)
        if execution:
            user.execution.append((now, execution))

    # ----- rules -----
    def _over(self, user: _User, now: float, limits: Limits) -> tuple[str, str, int] | None:
        if user.in_flight >= limits.concurrent:
            return CODE_CONCURRENT, f"Number of concurrent requests exceeded the limit of {limits.concurrent}.", 1
        window = _number(limits.window_seconds)
        if len(user.requests) >= limits.requests:
            # The refused request fits once the oldest requests beyond the limit have left the window.
            frees_at = user.requests[len(user.requests) - limits.requests] + limits.window_seconds
            message = (
                f"Number of requests exceeded the limit of {limits.requests} over time window of {window} seconds."
            )
            return CODE_REQUESTS, message, _seconds(frees_at - now)
        used = sum(seconds for _, seconds in user.execution)
        if used >= limits.execution_seconds:
            frees_at, left = now, used
            for finished, seconds in user.execution:
                left -= seconds
                frees_at = finished + limits.window_seconds
                if left < limits.execution_seconds:
                    break
            message = (
                "Combined execution time of incoming requests exceeded limit of "
                f"{limits.execution_seconds * 1000:,.0f} milliseconds over time window of {window} seconds. "
                "Decrease number of concurrent requests or reduce the duration of requests and try again later."
            )
            return CODE_EXECUTION_TIME, message, _seconds(frees_at - now)
        return None

    def _remaining(self, user: _User, limits: Limits) -> dict[str, str]:
        requests_left = max(0, limits.requests - len(user.requests))
        time_left = max(0.0, limits.execution_seconds - sum(seconds for _, seconds in user.execution))
        return {BURST_REMAINING: str(requests_left), TIME_REMAINING: f"{time_left:,.2f}"}

    def _expire(self, user: _User, now: float) -> None:
        start = now - self.limits.window_seconds
        while user.requests and user.requests[0] <= start:
            user.requests.popleft()
        while user.execution and user.execution[0][0] <= start:
            user.execution.popleft()

    def _user(self, name: str) -> _User:
        return self._users.setdefault(name, _User())


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)

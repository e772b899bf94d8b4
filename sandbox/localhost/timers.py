"""Timer triggers: fire on schedule, never overlapping themselves, with ``run_on_startup`` and ``@retry``.

Occurrences missed while a run was still going are skipped, as the host's timer listener does; the
next run is the first occurrence after now. A run that starts more than :data:`PAST_DUE_AFTER`
seconds late (waiting for the singleton lock, say) gets ``past_due=True``.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from azure.functions.timer import TimerRequest

from .functions import FunctionSpec
from .invoker import ADMIN_REASON, Invoker, RetryContext

log = logging.getLogger("localhost.timers")

PAST_DUE_AFTER = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


class TimerRunner:
    """Drives one timer function on its own thread until :meth:`stop`."""

    def __init__(self, spec: FunctionSpec, invoker: Invoker) -> None:
        assert spec.timer is not None
        self.spec = spec
        self._timer = spec.timer
        self._invoker = invoker
        self._singleton = threading.Lock()
        self._stop = threading.Event()
        self._last: datetime | None = None
        self._next: datetime | None = None
        self._thread = threading.Thread(target=self._run, name=f"timer-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        if self._timer.run_on_startup:
            self.fire(past_due=False, reason=f"Timer fired at {_now().isoformat()} (run on startup)")
        previous = _now()
        while not self._stop.is_set():
            now = _now()
            due = self._timer.schedule.next_after(previous)
            if due < now:  # we overran one or more occurrences: skip them
                due = self._timer.schedule.next_after(now)
            self._next = due
            while not self._stop.is_set() and (remaining := (due - _now()).total_seconds()) > 0:
                self._stop.wait(remaining)
            if self._stop.is_set():
                break
            late = (_now() - due).total_seconds()
            self.fire(past_due=late > PAST_DUE_AFTER, reason=f"Timer fired at {due.isoformat()}", scheduled=due)
            previous = due

    def _request(self, past_due: bool) -> TimerRequest:
        status: dict[str, Any] = {"LastUpdated": _now().isoformat()}
        if self._last:
            status["Last"] = self._last.isoformat()
        if self._next:
            status["Next"] = self._next.isoformat()
        return TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})

    def fire(self, *, past_due: bool, reason: str, scheduled: datetime | None = None) -> None:
        """Invoke now (waiting for a running invocation first), retrying per the function's policy."""
        policy = self.spec.retry
        with self._singleton:
            attempt = 0
            while True:
                retry = RetryContext(retry_count=attempt, max_retry_count=policy.max_retry_count if policy else 0)
                result = self._invoker.invoke(self.spec, self._request(past_due), reason, retry=retry)
                if result.succeeded or policy is None:
                    break
                if 0 <= policy.max_retry_count <= attempt:
                    break
                attempt += 1
                delay = policy.delay(attempt)
                log.info("Retrying Functions.%s in %.1fs (retry %d)", self.spec.name, delay, attempt)
                if self._stop.wait(delay):
                    break
            self._last = scheduled or _now()

    def invoke_admin(self) -> None:
        """``POST /admin/functions/<name>``: fire now, still one run at a time."""
        self.fire(past_due=False, reason=ADMIN_REASON)

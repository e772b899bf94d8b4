"""Signed event delivery: events POSTed to the registered URL on a worker thread, retried, then given up.

Signing follows reference §4.4: an RSA-SHA256 signature of the raw body with the sandbox PKI, sent as
``Authorization: Signature <base64>`` (or in ``x-ms-signature`` when the registration asked for it), with
``X-MS-Certificate-Url`` pointing at the certificate this simulator serves, so the app's real check runs.
Retries follow §4.5 (10 attempts by default). Every finished delivery lands in :attr:`Dispatcher.deliveries`.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.pki import Pki
from sandbox.sims.partner_center.stamps import utc_iso

CERT_PATH = "/cert/pcnotifications-dispatch.cer"
AUTHORIZATION = "authorization"
MS_SIGNATURE = "x-ms-signature"


@dataclass
class Job:
    """One event to deliver: the exact bytes, where to, and which header carries the signature."""

    event: str
    referral_id: str | None
    url: str
    body: bytes
    header: str
    correlation_id: str | None = None


Attempt = dict[str, Any]
AttemptListener = Callable[[Job, Attempt], None]
FinishListener = Callable[[Job], None]


class Dispatcher:
    """The delivery queue and its worker thread; all bookkeeping happens under the simulator's lock."""

    def __init__(
        self,
        *,
        pki: Pki,
        lock: threading.RLock,
        cert_url: Callable[[], str],
        attempts: int = 10,
        backoff: float = 0.2,
        timeout: float = 10.0,
        thread_name: str = "delivery",
        on_attempt: AttemptListener | None = None,
        on_finish: FinishListener | None = None,
    ) -> None:
        self.pki = pki
        self.enabled = True
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.deliveries: list[dict[str, Any]] = []
        self._lock = lock
        self._cert_url = cert_url
        self._thread_name = thread_name
        self._on_attempt = on_attempt
        self._on_finish = on_finish
        self._delivered = threading.Condition(lock)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()

    def sign(self, body: bytes, *, header: str = AUTHORIZATION) -> dict[str, str]:
        """The headers Partner Center sends with ``body``; ``header="x-ms-signature"`` for that registration mode."""
        signature = f"Signature {self.pki.sign(body)}"
        headers = {
            "Content-Type": "application/json",
            "X-MS-Certificate-Url": self._cert_url(),
            "X-MS-Signature-Algorithm": "rsa-sha256",
        }
        if header.lower() == MS_SIGNATURE:
            headers[MS_SIGNATURE] = signature
        else:
            headers["Authorization"] = signature
        return headers

    def enqueue(self, job: Job) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._stop.clear()
            self._worker = threading.Thread(target=self._work, name=self._thread_name, daemon=True)
            self._worker.start()
        self._queue.put(job)

    def lose(self, job: Job, error: str) -> None:
        """Record a delivery that could not even be attempted (e.g. no public address is known yet)."""
        self._finish(job, [{"attempt": 0, "status": None, "error": error, "time": utc_iso()}])

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``count`` deliveries finished (delivered or given up); returns the log even if short."""
        deadline = time.monotonic() + timeout
        with self._delivered:
            while len(self.deliveries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._delivered.wait(remaining)
            return copy.deepcopy(self.deliveries)

    def clear(self) -> None:
        """Forget the log and drop queued jobs (a job already being sent still finishes)."""
        with self._lock:
            self.deliveries.clear()
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def close(self) -> None:
        """Stop the worker; pending deliveries are dropped."""
        self._stop.set()
        self._queue.put(None)
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=self.timeout + 5)
        self._worker = None

    def _work(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                job = self._queue.get()
                if job is None:
                    continue
                self._send(client, job)

    def _send(self, client: httpx.Client, job: Job) -> None:
        try:
            headers = self.sign(job.body, header=job.header)
        except RuntimeError as exc:  # no base URL: nothing can be delivered
            self.lose(job, str(exc))
            return
        history: list[Attempt] = []
        for attempt in range(1, max(1, self.attempts) + 1):
            if self._stop.is_set():
                return
            entry: Attempt = {"attempt": attempt, "status": None, "error": None, "time": utc_iso()}
            try:
                response = client.post(job.url, content=job.body, headers=headers)
                entry["status"] = response.status_code
            except httpx.HTTPError as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            history.append(entry)
            if self._on_attempt is not None:
                self._on_attempt(job, entry)
            if entry["status"] is not None and 200 <= entry["status"] < 300:
                break
            if attempt < self.attempts and self._stop.wait(self.backoff):
                return
        self._finish(job, history)

    def _finish(self, job: Job, history: list[Attempt]) -> None:
        last = history[-1] if history else {"attempt": 0, "status": None, "error": "not attempted", "time": utc_iso()}
        ok = last["status"] is not None and 200 <= last["status"] < 300
        with self._delivered:
            self.deliveries.append(
                {
                    "event": job.event,
                    "referralId": job.referral_id,
                    "correlationId": job.correlation_id,
                    "url": job.url,
                    "attempt": last["attempt"],
                    "status": last["status"],
                    "error": last["error"],
                    "ok": ok,
                    "time": last["time"],
                    "attempts": history,
                    "body": job.body.decode("utf-8"),
                }
            )
            if self._on_finish is not None:
                self._on_finish(job)
            self._delivered.notify_all()

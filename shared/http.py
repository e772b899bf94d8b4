"""One outbound HTTP policy for every remote: timeouts, bounded retries, readable errors, call counting.

Retries follow what Partner Center, Dataverse and Salesforce document: 429 and 5xx are retried
with exponential backoff, waiting what ``Retry-After`` asks for when the service says so; other
4xx are final and surface the service's own error text. A wait longer than an in-call retry should
take (Dataverse service protection asks for up to five minutes) is not shortened: the call raises
:class:`Throttled` so the caller can come back later, as Microsoft asks ("Retry-After ... wait the
full duration", Dataverse "Service protection API limits"). Each attempt is counted per service in
a context-local counter, so a sync can report (and tests can assert) how many calls it made.

A client built with a :class:`~shared.ratelimit.RateLimiter` (the CRM's, one per CRM user) sends each
attempt when the limiter gives it a slot, and shows it every answer; a slot further away than an
in-call wait is a :class:`Throttled` like a long ``Retry-After``.

Absolute URLs (``@odata.nextLink``, ``nextRecordsUrl``) are followed only to the configured origin:
the bearer token must never travel to another host, nor over plain HTTP.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from shared.ratelimit import PaceExceeded, RateLimiter

log = logging.getLogger("cosell.http")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class CallStats:
    """HTTP attempts made inside a :func:`count_calls` block, per service; writes are the non-GETs."""

    calls: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)
    parent: CallStats | None = field(default=None, repr=False, compare=False)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


_stats: contextvars.ContextVar[CallStats | None] = contextvars.ContextVar("cosell_api_calls", default=None)
# Threads that copied one context (the records of one CRM poll) add to the same enclosing counters.
_stats_lock = threading.Lock()


@contextlib.contextmanager
def count_calls() -> Iterator[CallStats]:
    """Count every HTTP attempt made inside the block (retries included), per service name.

    Blocks nest: a call counts in every enclosing block (a record's sync and the poll around it).
    Work handed to other threads counts here when it runs in a copy of this context
    (``contextvars.copy_context().run``), as the CRM poll's records do.
    """
    stats = CallStats(parent=_stats.get())
    token = _stats.set(stats)
    try:
        yield stats
    finally:
        _stats.reset(token)


def _record_call(service: str, method: str, *, changes_data: bool, writes: int | None = None) -> None:
    """One call; its writes are 1 for a non-GET unless the caller says how many it carries (a batch)."""
    stats = _stats.get()
    if writes is None:
        writes = 1 if changes_data and method.upper() not in _READ_METHODS else 0
    with _stats_lock:  # an enclosing block may be shared by several threads: no increment may be lost
        while stats is not None:
            stats.calls[service] += 1
            if writes:
                stats.writes[service] += writes
            stats = stats.parent


class ApiError(Exception):
    """A remote answered with an error. ``transient`` errors are worth retrying later."""

    def __init__(self, service: str, method: str, path: str, status: int, code: str, message: str) -> None:
        self.service = service
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{service} {method} {path} -> {status} {code}: {message}".strip())

    @property
    def transient(self) -> bool:
        return self.status in RETRYABLE_STATUSES


class Throttled(ApiError):
    """The service asked us to wait longer than an in-call retry may: come back after ``retry_after`` seconds."""

    def __init__(self, service: str, method: str, path: str, status: int, retry_after: float) -> None:
        super().__init__(service, method, path, status, "Throttled", f"asked to wait {retry_after:.0f} s")
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return True


class UntrustedLink(ApiError):
    """A paging link pointed away from the configured service; it is not followed."""

    def __init__(self, service: str, host: str) -> None:
        super().__init__(service, "GET", "", 502, "UntrustedLink", f"refused to follow a link to {host}")


class ApiUnavailable(Exception):
    """The remote could not be reached or did not answer in time (after retries).

    ``settings`` names the app settings that say where the remote is, when the client knows them.
    """

    transient = True

    def __init__(self, message: str, *, settings: tuple[str, ...] = ()) -> None:
        self.settings = list(settings)
        super().__init__(f"{message} (check {', '.join(settings)})" if settings else message)


ErrorParser = Callable[[httpx.Response], tuple[str, str]]


def default_error_parser(response: httpx.Response) -> tuple[str, str]:
    """Partner Center and Dataverse both answer ``{"error": {"code", "message"}}``."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:500]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return str(err.get("code", "")), str(err.get("message", ""))
    if isinstance(body, dict) and "message" in body:
        return str(body.get("statusCode", "")), str(body["message"])
    return "", response.text[:500]


class _RetryableResponse(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Parse ``Retry-After`` as seconds or an HTTP date (both forms are legal)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class ServiceClient:
    """An httpx client bound to one remote service, with the retry policy applied to every call."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        auth: Callable[[], str] | None = None,
        timeout: float = 15.0,
        max_attempts: int = 6,
        max_backoff: float = 30.0,
        headers: dict[str, str] | None = None,
        error_parser: ErrorParser = default_error_parser,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        changes_data: bool = True,
        throttled: Callable[[httpx.Response], bool] | None = None,
        settings: tuple[str, ...] = (),
        limiter: RateLimiter | None = None,
    ) -> None:
        self.service = service
        # Shared by every client of the same CRM user in the process (shared.ratelimit.limiter_for).
        self.limiter = limiter
        # The app settings that say where this remote is: named when it cannot be reached.
        self.settings = settings
        # A service that signals throttling other than by 429/5xx (Salesforce: 403 REQUEST_LIMIT_EXCEEDED).
        self._throttled = throttled
        # False for endpoints whose POSTs read rather than write (a token redemption is not a write).
        self._changes_data = changes_data
        self._sleep = sleep
        self._auth = auth
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff
        self._error_parser = error_parser
        self._origin = httpx.URL(base_url.rstrip("/") + "/")
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(timeout),
            headers=headers or {},
            transport=transport,
            follow_redirects=False,
        )

    @property
    def base_url(self) -> httpx.URL:
        return self._origin

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool = True,
        expected: tuple[int, ...] = (),
        writes: int | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; raise :class:`ApiError` for error statuses not listed in ``expected``.

        ``idempotent=False`` is for calls that must not happen twice (creating a referral): an
        answer that was lost, a timeout or a 5xx may come after the service carried the call out,
        so only a 429 (refused before any work) or a connection that never opened is retried here;
        the caller looks before it tries again.

        ``writes``: how many writes the call carries, for a call whose method does not say it (a
        Dataverse ``$batch`` or a Salesforce composite is one POST that may carry no write or many).
        """

        url = self._same_origin(url)

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, _RetryableResponse):
                refused_unseen = exc.response.status_code == 429 or exc.response.status_code not in RETRYABLE_STATUSES
                if not idempotent and not refused_unseen:
                    return False
                return not self._too_long(exc.response)
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
                return True  # the request never left this machine
            return idempotent and isinstance(exc, httpx.TimeoutException | httpx.RemoteProtocolError | httpx.ReadError)

        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception(should_retry),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            response = retrying(self._send_once, method, url, kwargs, writes)
            if response.status_code == 401 and 401 not in expected and self._drop_refused_token(response):
                # Revoked before its cached expiry: one more try with a fresh token, then it is final.
                response = retrying(self._send_once, method, url, kwargs, writes)
        except _RetryableResponse as exc:
            response = exc.response
            if self._too_long(response):
                raise Throttled(
                    self.service, method, _path_of(url), response.status_code, retry_after_seconds(response) or 0.0
                ) from None
        except PaceExceeded as exc:
            log.info("%s %s %s held back: %s", self.service, method, _path_of(url), exc.reason)
            raise Throttled(self.service, method, _path_of(url), 429, exc.retry_after) from None
        except httpx.HTTPError as exc:
            raise ApiUnavailable(
                f"{self.service} {method} {_path_of(url)} failed: {type(exc).__name__}", settings=self.settings
            ) from exc
        if response.status_code >= 400 and response.status_code not in expected:
            code, message = self._error_parser(response)
            raise ApiError(self.service, method, _path_of(url), response.status_code, code, message)
        return response

    def _send_once(self, method: str, url: str, kwargs: dict[str, Any], writes: int | None = None) -> httpx.Response:
        kwargs = dict(kwargs)
        headers = dict(kwargs.pop("headers", None) or {})
        if self._auth is not None:
            headers["Authorization"] = f"Bearer {self._auth()}"
        limiter = self.limiter
        with limiter.request() if limiter is not None else contextlib.nullcontext():
            _record_call(self.service, method, changes_data=self._changes_data, writes=writes)
            started = time.perf_counter()
            response = self._client.request(method, url, headers=headers, **kwargs)
        if limiter is not None:
            limiter.observe(response, retry_after_seconds(response) if response.status_code == 429 else None)
        # Only method, path and status are logged: query strings can carry customer data.
        log.debug(
            "%s %s %s -> %s in %.0f ms",
            self.service,
            method,
            _path_of(url),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        if response.status_code in RETRYABLE_STATUSES:
            response.read()
            raise _RetryableResponse(response)
        if self._throttled is not None and response.status_code >= 400:
            response.read()
            if self._throttled(response):
                raise _RetryableResponse(response)
        return response

    def _drop_refused_token(self, response: httpx.Response) -> bool:
        invalidate = getattr(self._auth, "invalidate", None)
        sent = response.request.headers.get("Authorization", "")
        if invalidate is None or not sent.startswith("Bearer "):
            return False
        invalidate(sent.removeprefix("Bearer "))
        return True

    def _too_long(self, response: httpx.Response) -> bool:
        hinted = retry_after_seconds(response)
        return hinted is not None and hinted > self._max_backoff

    def _same_origin(self, url: str) -> str:
        """Relative URLs join the base; absolute ones must point at the configured host (HTTPS kept)."""
        target = httpx.URL(url)
        if not target.is_absolute_url:
            return url
        base = self._origin
        if (target.host, target.port) != (base.host, base.port) or target.scheme not in (base.scheme, "http"):
            raise UntrustedLink(self.service, target.host or "?")
        if target.scheme != base.scheme:
            # Partner Center's documented nextLink sample says http://; the token only travels over HTTPS.
            target = target.copy_with(scheme=base.scheme)
        return str(target)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableResponse):
            hinted = retry_after_seconds(exc.response)
            if hinted is not None:
                return hinted
        return wait_random_exponential(multiplier=0.5, max=self._max_backoff)(state)


def _path_of(url: str) -> str:
    return httpx.URL(url).path or url.split("?", 1)[0]

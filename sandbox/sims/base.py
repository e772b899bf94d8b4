"""Shared machinery for the simulators: routing, fault injection, request counting and recording.

Each simulator is a WSGI app (werkzeug) served on its own loopback port. Everything under
``/_sim/`` is the control API used by tests, ``make run`` and ``make demo``; it is never faulted
and never counted:

- ``GET  /_sim/stats``      -> ``{"total": n, "routes": {"GET /referrals/<id>": n, ...}}``
- ``POST /_sim/reset``      -> clears counters and the request log (not the data)
- ``GET  /_sim/requests``   -> the request log; ``?method=PATCH&path=/api/...`` filters (path is a prefix)
- ``PUT  /_sim/faults``     -> set fault injection, body as :class:`FaultConfig`; ``{}`` turns it off

Fault kinds, drawn per API request from ``FaultConfig.seed`` in this order (a draw is only made for a
kind whose rate is non-zero, so adding a kind never changes the sequence of an existing config):

- ``timeout``        (``timeout_rate``): the handler does NOT run; the answer is a 504 after ``timeout_seconds``.
- ``commit_timeout`` (``commit_timeout_rate``): the handler RUNS (the write is committed), then the real
  answer is held back for ``timeout_seconds``, so a client with a shorter timeout loses it and cannot tell
  whether its write happened. This is the case that makes retries need idempotency.
- ``status``         (``rate``): the handler does NOT run; the answer is one of ``statuses``.

Each recorded request says which fault (if any) it got in ``RecordedRequest.fault``, and when it
arrived (``at``, epoch seconds), so a test can count requests per sliding window.

A simulator whose service enforces usage limits sets :attr:`Simulator.admission`: it sees every API
request before the injected latency and the handler (so a slow request counts as in flight) and
may refuse it with the service's own answer; it also sees every answer (to add its headers).
"""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

Handler = Callable[..., Response]

_RECORDED_HEADERS = ("if-match", "if-none-match", "prefer", "content-type", "ms-correlationid", "client-request-id")


@dataclass
class FaultConfig:
    """What to inject. ``rate`` is the share of API requests that fail, drawn from ``seed``.

    ``timeout_rate`` and ``commit_timeout_rate`` are shares too; both wait ``timeout_seconds``
    (see the module docstring for how they differ). ``max_faults`` stops injecting once that many
    faults (of any kind) have been injected since the config was set: ``{"rate": 1, "statuses":
    [503], "routes": ["POST /v1.0/engagements/referrals"], "max_faults": 1}`` fails exactly the first
    create.
    """

    rate: float = 0.0
    statuses: list[int] = field(default_factory=lambda: [429, 503])
    retry_after: float = 1.0
    latency_ms: int = 0
    timeout_rate: float = 0.0
    timeout_seconds: float = 5.0
    seed: int = 0
    # Only requests whose "METHOD rule" key starts with one of these are faulted; empty = all.
    routes: list[str] = field(default_factory=list)
    commit_timeout_rate: float = 0.0
    max_faults: int | None = None


@dataclass(frozen=True)
class Fault:
    """One drawn fault: ``kind`` is ``timeout``, ``commit_timeout`` or ``status``."""

    kind: str
    status: int = 0
    delay: float = 0.0


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    route: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    fault: str | None = None  # the injected fault's kind, if any
    at: float = 0.0  # arrival, epoch seconds


class Admission(Protocol):
    """A service's usage limits: ``enter`` answers a refusal or None (admitted, now in flight);
    ``leave`` is called once for every admitted request, with its answer (headers may be added)."""

    def enter(self, request: Request) -> Response | None: ...

    def leave(self, request: Request, response: Response) -> None: ...


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False),
        status=status,
        headers=headers or {},
        content_type="application/json; charset=utf-8",
    )


class Simulator:
    """Base class: subclasses call :meth:`add_route` in ``__init__`` and override :meth:`error_response`."""

    name = "simulator"

    def __init__(self, *, seed: int = 0) -> None:
        self._url_map = Map(strict_slashes=False)
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.RLock()
        self._faults = FaultConfig(seed=seed)
        self._rng = random.Random(seed)
        self._faults_injected = 0
        self.stats: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []
        self.admission: Admission | None = None

    # ----- routing -----
    def add_route(self, rule: str, methods: Iterable[str], handler: Handler) -> None:
        for method in methods:
            endpoint = f"{method} {rule}"
            self._url_map.add(Rule(rule, methods=[method], endpoint=endpoint))
            self._handlers[endpoint] = handler

    # ----- faults -----
    def set_faults(self, config: FaultConfig | dict[str, Any] | None) -> None:
        if config is None:
            config = FaultConfig()
        elif isinstance(config, dict):
            config = FaultConfig(**config)
        if config.max_faults is not None and (isinstance(config.max_faults, bool) or config.max_faults < 0):
            raise ValueError("max_faults must be a non-negative integer or null")
        with self._lock:
            self._faults = config
            self._rng = random.Random(config.seed)
            self._faults_injected = 0

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @property
    def faults_injected(self) -> int:
        """How many faults were injected since the fault config was last set."""
        with self._lock:
            return self._faults_injected

    def _draw_fault(self, route: str) -> Fault | None:
        """Decide, under the lock so a seed gives a reproducible sequence, whether to fault."""
        with self._lock:
            f = self._faults
            if f.routes and not any(route.startswith(r) for r in f.routes):
                return None
            if f.max_faults is not None and self._faults_injected >= f.max_faults:
                return None
            fault: Fault | None = None
            if f.timeout_rate and self._rng.random() < f.timeout_rate:
                fault = Fault("timeout", 504, f.timeout_seconds)
            elif f.commit_timeout_rate and self._rng.random() < f.commit_timeout_rate:
                fault = Fault("commit_timeout", 0, f.timeout_seconds)
            elif f.rate and self._rng.random() < f.rate:
                fault = Fault("status", self._rng.choice(f.statuses))
            if fault is not None:
                self._faults_injected += 1
            return fault

    def error_response(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        """The wire format of an error; each simulator overrides this with its service's shape."""
        return json_response({"error": {"code": code, "message": message}}, status, headers)

    def fault_response(self, status: int) -> Response:
        headers: dict[str, str] = {}
        if status in (429, 503):
            headers["Retry-After"] = _format_seconds(self._faults.retry_after)
        messages = {
            429: "Rate limit is exceeded. Try again later.",
            500: "Internal server error (injected).",
            502: "Bad gateway (injected).",
            503: "Service unavailable (injected).",
            504: "Gateway timeout (injected).",
        }
        return self.error_response(status, f"Injected{status}", messages.get(status, "Injected fault."), headers)

    # ----- counting / inspection -----
    def stats_snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"total": sum(self.stats.values()), "routes": dict(self.stats)}

    def reset_stats(self) -> None:
        with self._lock:
            self.stats.clear()
            self.requests.clear()

    def recorded(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or r.path.startswith(path))
            ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.recorded(method, path))

    # ----- WSGI -----
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self._control(request) if request.path.startswith("/_sim/") else self._dispatch(request)
        return response(environ, start_response)

    def _control(self, request: Request) -> Response:
        action = request.path[len("/_sim/") :].strip("/")
        if action == "stats" and request.method == "GET":
            return json_response(self.stats_snapshot())
        if action == "reset" and request.method == "POST":
            self.reset_stats()
            return json_response({"ok": True})
        if action == "requests" and request.method == "GET":
            items = self.recorded(request.args.get("method"), request.args.get("path"))
            return json_response([asdict(r) for r in items])
        if action == "faults" and request.method in ("PUT", "POST"):
            try:
                self.set_faults(request.get_json(force=True) or {})
            except (TypeError, ValueError) as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response(asdict(self._faults))
        if action == "faults" and request.method == "GET":
            return json_response(asdict(self._faults))
        return self.control(request, action)

    def control(self, request: Request, action: str) -> Response:
        """Simulator-specific control actions (seeding data, toggles); override in subclasses."""
        return json_response({"error": f"unknown control action {action!r}"}, 404)

    def _dispatch(self, request: Request) -> Response:
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return self.error_response(404, "NotFound", f"No route for {request.method} {request.path}")
        except MethodNotAllowed:
            return self.error_response(405, "MethodNotAllowed", f"{request.method} not allowed on {request.path}")
        except HTTPException as exc:  # e.g. RequestRedirect
            return self.error_response(exc.code or 400, "BadRequest", str(exc))
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            route=str(endpoint),
            headers={k: v for k, v in request.headers.items() if k.lower() in _RECORDED_HEADERS},
            body=_body_of(request),
            at=time.time(),
        )
        with self._lock:
            self.stats[str(endpoint)] += 1
            self.requests.append(record)
        admission = self.admission
        if admission is not None:
            refusal = admission.enter(request)
            if refusal is not None:
                record.status = refusal.status_code
                return refusal
            response = Response(status=500)  # what ``leave`` sees if the handler raised
            try:
                response = self._serve(request, str(endpoint), args, record)
                return response
            finally:
                admission.leave(request, response)
        return self._serve(request, str(endpoint), args, record)

    def _serve(self, request: Request, endpoint: str, args: dict[str, Any], record: RecordedRequest) -> Response:
        """Latency, faults and the handler: what an admitted request gets."""
        if self._faults.latency_ms:
            time.sleep(self._faults.latency_ms / 1000)
        fault = self._draw_fault(endpoint)
        record.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "timeout":
            time.sleep(fault.delay)
            response = self.fault_response(504)
        elif fault is not None and fault.kind == "status":
            response = self.fault_response(fault.status)
        else:
            try:
                response = self._handlers[endpoint](request, **args)
            except HTTPException as exc:
                response = self.error_response(exc.code or 400, type(exc).__name__, exc.description or str(exc))
            if fault is not None:  # commit_timeout: the handler's work is done, its answer comes too late
                record.status = response.status_code
                time.sleep(fault.delay)
        record.status = response.status_code
        return response


class Restorable(Protocol):
    """A simulator's store: one lock, and a copy of its rows to go back to."""

    lock: threading.RLock

    def snapshot(self) -> Any: ...

    def restore(self, snapshot: Any) -> None: ...


def seed_body(request: Request, shape: str) -> dict[str, list[Any]]:
    """The body of ``POST /_sim/seed``, ``{name: [records]}``; ValueError says what is wrong with it."""
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict) or not all(isinstance(v, list) for v in body.values()):
        raise ValueError(f"body must be {shape}")
    return body


@contextmanager
def all_or_nothing(store: Restorable) -> Iterator[None]:
    """Holds the store's lock; a failure inside puts every row back as it was (a seed is all or nothing)."""
    with store.lock:
        snapshot = store.snapshot()
        try:
            yield
        except Exception:
            store.restore(snapshot)
            raise


def _body_of(request: Request) -> Any:
    data = request.get_data(cache=True)
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request: the simulators count requests instead."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class ServerThread:
    """Serve a WSGI app on a loopback port in a daemon thread (port 0 = pick a free one).

    With ``ssl_context`` (e.g. ``make_server_certificate(pki).ssl_context()``) it serves HTTPS, for
    clients that refuse plain HTTP; ``url`` then says ``https``.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=_QuietHandler, ssl_context=ssl_context
        )
        self.host = host
        self.port = self.server.server_port
        self.scheme = "https" if ssl_context is not None else "http"
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"wsgi:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

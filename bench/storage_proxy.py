"""A counting reverse proxy in front of Azurite: how many Table and Queue operations the app makes.

The app signs each request with the account key over its path and query, not over the host, so it
can talk to Azurite through this proxy unchanged. Each request is classified by what it does to
storage (``table insert SyncState``, ``queue delete referral-events``...), the way Azure bills and
throttles them: one transaction per REST call.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
_ENTITY = re.compile(r"^/[^/]+/(?P<table>[A-Za-z0-9]+)\((?P<keys>.*)\)$")
_TABLE = re.compile(r"^/[^/]+/(?P<table>[A-Za-z0-9]+)(\(\))?$")
_MESSAGES = re.compile(r"^/[^/]+/(?P<queue>[a-z0-9-]+)/messages(?P<one>/[^/]+)?$")
_QUEUE = re.compile(r"^/[^/]+/(?P<queue>[a-z0-9-]+)$")


def classify(service: str, method: str, target: str) -> str:
    """``"<service> <operation> <table or queue>"`` for one REST call."""
    parsed = urllib.parse.urlsplit(target)
    path, query = urllib.parse.unquote(parsed.path), urllib.parse.parse_qs(parsed.query)
    if service == "table":
        if path.endswith("/$batch"):
            return "table batch"
        if match := _ENTITY.match(path):
            table, keys = match["table"], match["keys"]
            if not keys:
                return f"table query {table}"
            operation = {"GET": "read", "DELETE": "delete", "PUT": "replace", "MERGE": "merge", "PATCH": "merge"}
            return f"table {operation.get(method, method.lower())} {table}"
        if match := _TABLE.match(path):
            if match["table"] == "Tables":
                return "table create-table"
            return f"table {'insert' if method == 'POST' else 'query'} {match['table']}"
        return f"table {method.lower()} {path}"
    if service == "queue":
        if match := _MESSAGES.match(path):
            queue = match["queue"]
            if match["one"]:
                return f"queue {'delete' if method == 'DELETE' else 'update'} {queue}"
            if method == "POST":
                return f"queue put {queue}"
            if method == "DELETE":
                return f"queue clear {queue}"
            return f"queue {'peek' if query.get('peekonly') else 'receive'} {queue}"
        if match := _QUEUE.match(path):
            if query.get("comp") == ["metadata"]:
                return f"queue {'properties' if method in ('GET', 'HEAD') else 'set-metadata'} {match['queue']}"
            operation = {"PUT": "create-queue", "DELETE": "delete-queue"}.get(method, method.lower())
            return f"queue {operation} {match['queue']}"
        return f"queue {method.lower()} {path}"
    return f"{service} {method.lower()}"


class CountingProxy:
    """One listening port per storage service; :attr:`counts` by :func:`classify`'s name."""

    def __init__(self, service: str, target: str) -> None:
        self.service = service
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        upstream = urllib.parse.urlsplit(target)
        self._upstream = (upstream.hostname or "127.0.0.1", upstream.port or 80)
        self._prefix = upstream.path.rstrip("/")
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.record(self.command, self.path)
                status, reason, headers, data = proxy.send(self.command, self.path, dict(self.headers), body)
                self.send_response_only(status, reason)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_MERGE = do_PATCH = do_HEAD = do_OPTIONS = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self._prefix}"

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, method: str, target: str) -> None:
        with self._lock:
            self.counts[classify(self.service, method, target)] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def send(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        for attempt in (1, 2):  # a kept-alive upstream connection Azurite closed meanwhile: open a new one
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(*self._upstream, timeout=60)
            try:
                connection.request(method, target, body=body, headers=forwarded)
                response = connection.getresponse()
                return response.status, response.reason, response.getheaders(), response.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def proxied_connection_string(connection_string: str, proxies: dict[str, CountingProxy]) -> str:
    """The same account, its Queue/Table (and Blob) endpoints replaced by the proxies' URLs."""
    parts = dict(part.split("=", 1) for part in connection_string.split(";") if part)
    for service, proxy in proxies.items():
        parts[f"{service.capitalize()}Endpoint"] = proxy.url
    return ";".join(f"{k}={v}" for k, v in parts.items())

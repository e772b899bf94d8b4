"""Storage operations made inside a block, by table or queue and kind: what a message costs in transactions.

Storage bills (and throttles) per request, so "how many Table and Queue requests does one message
make" is a number worth knowing and keeping. Every client :mod:`shared.store.clients` builds passes
its requests through :func:`record_request` (the SDK's ``raw_request_hook``, which runs once per
attempt, retries included, as the service counts them); a :func:`count_storage` block collects them.

An operation is named ``<kind> <table or queue>``, for example ``insert AuditLog`` or
``update-if-match SyncState`` (a conditional write says so: the lock relies on those).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class StorageOps:
    """Requests in order of sending; :attr:`counts` per operation name."""

    operations: list[str] = field(default_factory=list)
    parent: StorageOps | None = field(default=None, repr=False, compare=False)

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.operations)

    @property
    def total(self) -> int:
        return len(self.operations)


_ops: contextvars.ContextVar[StorageOps | None] = contextvars.ContextVar("cosell_storage_ops", default=None)


@contextlib.contextmanager
def count_storage() -> Iterator[StorageOps]:
    """Collect the Table and Queue requests made inside the block; blocks nest, as ``count_calls`` do."""
    ops = StorageOps(parent=_ops.get())
    token = _ops.set(ops)
    try:
        yield ops
    finally:
        _ops.reset(token)


def record_table_request(request: Any) -> None:
    """``raw_request_hook`` for the Table clients."""
    _record(table_operation, request)


def record_queue_request(request: Any) -> None:
    """``raw_request_hook`` for the Queue clients."""
    _record(queue_operation, request)


def _record(name_of: Callable[[str, str, Any], str], request: Any) -> None:
    ops = _ops.get()
    if ops is None:
        return
    http = request.http_request
    name = name_of(http.method, http.url, http.headers)
    while ops is not None:
        ops.operations.append(name)
        ops = ops.parent


_TABLE_PATH = re.compile(r"/(?P<table>[A-Za-z][A-Za-z0-9]{2,62})(?P<keys>\(.*\))?$")
_QUEUE_PATH = re.compile(r"/(?P<queue>[a-z0-9][a-z0-9-]{1,62})(?P<messages>/messages(?P<one>/[^/]+)?)?$")
_TABLE_KINDS = {"POST": "insert"}
_QUEUE_KINDS = {"GET": "receive", "POST": "send", "DELETE": "delete-message", "PUT": "update-message"}


def table_operation(method: str, url: str, headers: Any) -> str:
    """``insert AuditLog``, ``get SyncState``, ``update-if-match SyncState``... (Azurite's path style too)."""
    path = unquote(urlsplit(url).path)
    method = method.upper()
    if path.endswith("/$batch"):
        return "batch"
    found = _TABLE_PATH.search(path)
    if found is None or found["table"] == "Tables":
        return {"POST": "create-table", "GET": "list-tables", "DELETE": "delete-table"}.get(
            method, f"{method.lower()}-table"
        )
    match = headers.get("If-Match")
    if method == "GET":
        kind = "get" if found["keys"] not in (None, "()") else "query"
    elif method in ("PUT", "PATCH", "MERGE"):
        # No If-Match: insert-or-replace / insert-or-merge; "*": the row must exist; an ETag: it must be unchanged.
        kind = "upsert" if method == "PUT" else "upsert-merge"
        if match:
            kind = ("update" if method == "PUT" else "merge") + ("" if match == "*" else "-if-match")
    elif method == "DELETE":
        kind = "delete" if match in (None, "*") else "delete-if-match"
    else:
        kind = _TABLE_KINDS.get(method, method.lower())
    return f"{kind} {found['table']}"


def queue_operation(method: str, url: str, headers: Any) -> str:
    """``send referral-events``, ``receive referral-events``, ``delete-message referral-events``..."""
    path = unquote(urlsplit(url).path)
    method = method.upper()
    found = _QUEUE_PATH.search(path)
    if found is None:
        return f"{method.lower()} queue-service"
    if not found["messages"]:
        return f"{method.lower()}-queue {found['queue']}"
    return f"{_QUEUE_KINDS.get(method, method.lower())} {found['queue']}"

"""Dataverse Web API wire format: OData headers, paging, key addressing, ``@odata.bind`` and errors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from shared.crm import dataverse_batch
from shared.crm.dataverse_batch import BatchAnswer, BatchRequest
from shared.http import ApiError, ServiceClient
from shared.odata import odata_string

API_PATH = "api/data/v9.2/"
PAGE_SIZE = 500

_BASE_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
# "If-None-Match: null" asks for current data: results of a $expand on collection-valued navigation
# properties may otherwise come from a cache (Microsoft Learn, "Retrieve related table rows with a
# query" / "Join tables using FetchXml or OData"). Sent with every $expand read, so none is stale.
_FRESH = {"If-None-Match": "null"}


def key_by_id(entity_set: str, record_id: str) -> str:
    return f"{entity_set}({quote(record_id, safe='-')})"


def key_by_alternate(entity_set: str, column: str, value: str) -> str:
    literal = quote(odata_string(value), safe="'")
    return f"{entity_set}({column}={literal})"


def bind(entity_set: str, record_id: str) -> str:
    return f"/{entity_set}({record_id})"


# Final answers a $batch may carry as its own status (the first failed request's); 429 and 5xx are retried.
_BATCH_FAILURES = tuple(s for s in range(400, 500) if s != 429)


class DataverseClient:
    def __init__(self, http: ServiceClient) -> None:
        self._http = http

    def get(self, path: str, *, select: list[str] | None = None, expand: str | None = None) -> dict[str, Any] | None:
        """One record by key; None when it does not exist."""
        params = {"$select": ",".join(select)} if select else {}
        headers = dict(_BASE_HEADERS)
        if expand:
            params["$expand"] = expand
            headers.update(_FRESH)
        response = self._http.request("GET", path, params=params or None, headers=headers, expected=(404,))
        return None if response.status_code == 404 else response.json()

    def query(
        self,
        entity_set: str,
        *,
        select: list[str],
        filter: str | None = None,
        orderby: str | None = None,
        expand: str | None = None,
        page_size: int | None = PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """All matching rows, page by page; nextLink followed verbatim with the same page size.

        ``page_size=None`` for metadata collections, which are not paged.
        """
        params = {"$select": ",".join(select)}
        for option, value in (("$filter", filter), ("$orderby", orderby), ("$expand", expand)):
            if value:
                params[option] = value
        headers = dict(_BASE_HEADERS)
        if page_size:
            headers["Prefer"] = f"odata.maxpagesize={page_size}"
        if expand:
            headers.update(_FRESH)
        yield from self._pages(entity_set, params, headers)

    def upsert(self, path: str, body: dict[str, Any], *, select: str) -> tuple[str, bool]:
        """PATCH without If-Match = create or update; returns (id, created)."""
        response = self._write("PATCH", path, body, prefer_representation=True, params={"$select": select})
        return str(response.json()[select]), response.status_code == 201

    def update(self, path: str, body: dict[str, Any]) -> None:
        """PATCH with ``If-Match: *``: update only, never an accidental create."""
        self._write("PATCH", path, body, headers={"If-Match": "*"})

    def action(self, name: str, body: dict[str, Any]) -> None:
        self._write("POST", name, body)

    def post(self, path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        """Create a record or a definition (metadata creates answer 204 with OData-EntityId)."""
        self._write("POST", path, body, headers=headers)

    def delete(self, path: str) -> None:
        self._http.request("DELETE", path, headers=_BASE_HEADERS, expected=(404,))

    # ----- $batch: one call for many requests -----
    def get_request(
        self, path: str, *, select: list[str], filter: str | None = None, expand: str | None = None
    ) -> BatchRequest:
        """A read for :meth:`read_many`: a record by key, or a query's first page (``filter``)."""
        params = {"$select": ",".join(select)}
        headers = dict(_FRESH) if expand else {}  # cached collection $expand results, as for get()
        if filter:
            params["$filter"] = filter
            headers["Prefer"] = f"odata.maxpagesize={PAGE_SIZE}"
        if expand:
            params["$expand"] = expand
        return BatchRequest("GET", path, params, headers=headers)

    def read_many(self, requests: Sequence[BatchRequest]) -> list[Any]:
        """Several reads in one call: per request the record (None when it does not exist) or, for a
        query, every row (later pages, which a look-up rarely has, are followed one call each).

        ``Prefer: odata.continue-on-error`` so one record that does not exist (404) does not stop the
        others; any other failure raises as if the read had been sent alone. A single read is sent alone."""
        if len(requests) == 1:
            only = requests[0]
            if only.params and "$filter" in only.params:
                params = only.params
                return [list(self._pages(only.path, params, {**_BASE_HEADERS, **only.headers}))]
            return [self._get_raw(only)]
        answers = self._batch(requests, (), prefer="odata.continue-on-error", idempotent=True, writes=0)
        results: list[Any] = []
        for request, answer in zip(requests, answers, strict=True):
            if answer.status == 404 and not (request.params and "$filter" in request.params):
                results.append(None)
                continue
            self._raise_for(request, answer)
            body = answer.body if isinstance(answer.body, dict) else {}
            if request.params and "$filter" in request.params:
                rows = list(body.get("value", []))
                if body.get("@odata.nextLink"):
                    rows.extend(self._pages(str(body["@odata.nextLink"]), None, {**_BASE_HEADERS, **request.headers}))
                results.append(rows)
            else:
                results.append(body)
        return results

    def write_atomic(self, requests: Sequence[BatchRequest], *, idempotent: bool) -> list[BatchAnswer]:
        """Writes in one change set: all are made or none. A failed write raises :class:`ApiError` with
        that write's own status and message (as if it had been sent alone).

        ``idempotent``: the caller's promise that sending the whole change set twice leaves the CRM as
        sending it once (upserts by deterministic id or alternate key, updates); only then is a lost
        answer retried here. A change set with an action (``WinOpportunity``) is not: the caller looks
        before it tries again. A single write is sent alone (no change set needed for one)."""
        if len(requests) == 1:
            only = requests[0]
            headers = {**_BASE_HEADERS, "Content-Type": "application/json", **only.headers}
            response = self._http.request(
                only.method, only.path, json=only.body, params=only.params, headers=headers, idempotent=idempotent
            )
            body = response.json() if response.content else None
            return [BatchAnswer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, body)]
        return self._batch((), requests, prefer=None, idempotent=idempotent, writes=len(requests))

    def _batch(
        self,
        reads: Sequence[BatchRequest],
        changes: Sequence[BatchRequest],
        *,
        prefer: str | None,
        idempotent: bool,
        writes: int,
    ) -> list[BatchAnswer]:
        content_type, body = dataverse_batch.encode("/" + API_PATH, reads, changes)
        headers = {**_BASE_HEADERS, **_FRESH, "Content-Type": content_type}
        if prefer:
            headers["Prefer"] = prefer
        response = self._http.request(
            "POST",
            "$batch",
            content=body,
            headers=headers,
            idempotent=idempotent,
            expected=_BATCH_FAILURES,
            writes=writes,
        )
        try:
            answers = dataverse_batch.decode(response.headers.get("Content-Type", ""), response.content)
        except ValueError as exc:
            raise ApiError(self._http.service, "POST", "$batch", response.status_code, "", str(exc)) from exc
        if response.status_code >= 400:
            failed = next((a for a in answers if a.status >= 400), None)
            code, message = failed.error() if failed else ("", response.text[:500])
            request = _failed_request([*reads, *changes], answers)
            raise ApiError(
                self._http.service,
                request.method,
                request.path,
                failed.status if failed else response.status_code,
                code,
                message,
            )
        return answers

    def _raise_for(self, request: BatchRequest, answer: BatchAnswer) -> None:
        if answer.status >= 400:
            code, message = answer.error()
            raise ApiError(self._http.service, request.method, request.path, answer.status, code, message)

    def _get_raw(self, request: BatchRequest) -> dict[str, Any] | None:
        headers = {**_BASE_HEADERS, **request.headers}
        response = self._http.request("GET", request.path, params=request.params, headers=headers, expected=(404,))
        return None if response.status_code == 404 else response.json()

    def _pages(self, url: str, params: dict[str, str] | None, headers: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Rows of every page: the nextLink is followed verbatim (it carries the query), with the same headers."""
        next_url: str | None = url
        while next_url:
            body = self._http.request("GET", next_url, params=params, headers=headers).json()
            yield from body.get("value", [])
            next_url = body.get("@odata.nextLink")
            params = None

    def _write(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        prefer_representation: bool = False,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {**_BASE_HEADERS, "Content-Type": "application/json", **(headers or {})}
        if prefer_representation:
            all_headers["Prefer"] = "return=representation"
        return self._http.request(method, path, json=body, headers=all_headers, params=params)


def _failed_request(requests: Sequence[BatchRequest], answers: Sequence[BatchAnswer]) -> BatchRequest:
    """The request a batch stopped at: named by the failed answer's Content-ID when it has one, else
    the one at its place (requests on their own are answered one each; a failed change set, once)."""
    for index, answer in enumerate(answers):
        if answer.status < 400:
            continue
        named = answer.headers.get("content-id")
        for request in requests:
            if named is not None and request.content_id == named:
                return request
        return (
            requests[index]
            if index < len(requests) and requests[index].method == "GET"
            else BatchRequest("POST", "$batch")
        )
    return BatchRequest("POST", "$batch")

"""Dataverse Web API wire format: OData headers, paging, key addressing, ``@odata.bind`` and errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from shared.http import ServiceClient
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
        params: dict[str, str] | None = {"$select": ",".join(select)}
        for option, value in (("$filter", filter), ("$orderby", orderby), ("$expand", expand)):
            if value:
                params[option] = value
        headers = dict(_BASE_HEADERS)
        if page_size:
            headers["Prefer"] = f"odata.maxpagesize={page_size}"
        if expand:
            headers.update(_FRESH)
        url: str | None = entity_set
        while url:
            body = self._http.request("GET", url, params=params, headers=headers).json()
            yield from body.get("value", [])
            url = body.get("@odata.nextLink")
            params = None

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

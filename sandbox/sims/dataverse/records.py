"""The record endpoints: ``/<set>``, ``/<set>(<key>)``, ``/<set>(<key>)/<nav>``, the close actions, WhoAmI.

Each handler parses the request, does its work under the store's lock, and shapes the response
(``204`` + ``OData-EntityId``, or ``201``/``200`` + body with ``Prefer: return=representation``).
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from sandbox.sims.dataverse.errors import CODE_QUERY, DataverseError, bad_request
from sandbox.sims.dataverse.query import Query, QueryParser, annotations_wanted, parse_key
from sandbox.sims.dataverse.reads import ExpandCache, Reader, Snapshot
from sandbox.sims.dataverse.schema import Entity
from sandbox.sims.dataverse.store import RowKey, Store
from sandbox.sims.dataverse.wire import (
    MAX_PAGE_SIZE,
    Record,
    base_url,
    empty_response,
    etag,
    etag_matches,
    odata_response,
    preferences,
    read_body,
)
from sandbox.sims.dataverse.writes import Writer, not_found


def _context(request: Request, ent: Entity, query: Query, single: bool) -> str:
    selection = f"({','.join(query.select)})" if query.select else ""
    return f"{base_url(request)}/$metadata#{ent.set_name}{selection}{'/$entity' if single else ''}"


def _entity_url(request: Request, ent: Entity, record_id: str) -> str:
    return f"{base_url(request)}/{ent.set_name}({record_id})"


class RecordsApi:
    """Request handlers over one org (store + reader + writer)."""

    def __init__(self, store: Store, *, expand_cache_seconds: float = 60) -> None:
        self.store = store
        self.expand_cache = ExpandCache(expand_cache_seconds)
        self.schema = store.schema
        self.parser = QueryParser(store.schema)
        self.reader = Reader(store)
        self.writer = Writer(store)

    # ----- routing targets -----
    def collection(self, request: Request, set_name: str) -> Response:
        ent = self.schema.by_set[set_name]
        if request.method == "POST":
            return self._post(request, ent)
        return self._get_many(request, ent)

    def item(self, request: Request, set_name: str, key: str) -> Response:
        ent = self.schema.by_set[set_name]
        parsed = parse_key(ent, key)
        if request.method == "GET":
            return self._get_one(request, ent, parsed)
        if request.method == "PATCH":
            return self._patch(request, ent, parsed)
        return self._delete(request, ent, parsed)

    def related(self, request: Request, set_name: str, key: str, nav: str) -> Response:
        """``GET /opportunities(<id>)/<collection nav>``: the filtered collection a collection-valued
        ``$expand`` links to (``<nav>@odata.nextLink``), with the usual query options."""
        ent = self.schema.by_set[set_name]
        collection = ent.collections.get(nav)
        if collection is None:
            if nav in ent.navs:
                raise bad_request(f"The simulator serves only collection-valued navigation properties, not '{nav}'.")
            raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{nav}'.")
        parsed = parse_key(ent, key)
        with self.store.lock:
            parent = self.store.find(ent, parsed)
            if parent is None:
                raise not_found(ent, parsed)
            parent_id = parent[ent.pk]
        target = self.schema.entity(collection.target)
        return self._get_many(
            request, target, scope=(collection.column, parent_id), path=f"{set_name}({parent_id})/{nav}"
        )

    def close_opportunity(self, request: Request, kind: str) -> Response:
        body = read_body(request)
        with self.store.lock:
            self.writer.close_opportunity(body, kind)
        return empty_response(204)

    def who_am_i(self, request: Request) -> Response:
        return odata_response(
            {"@odata.context": f"{base_url(request)}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"}
            | self.store.identity
        )

    # ----- reads -----
    def _snapshot(self, request: Request, query: Query) -> Snapshot | None:
        """Where a collection-valued $expand is served from: a cached snapshot unless the caller sent
        ``If-None-Match: null`` (see :class:`ExpandCache`)."""
        if not any(item.collection is not None for item in query.expand):
            return None
        if request.headers.get("If-None-Match", "").strip().lower() == "null":
            return None
        return self.expand_cache.snapshot_for(request.url)

    def _get_many(
        self, request: Request, ent: Entity, *, scope: tuple[str, str] | None = None, path: str | None = None
    ) -> Response:
        """A collection query; ``scope`` = (column, id) restricts it to a record's related rows served at ``path``."""
        query = self.parser.parse(request, ent)
        prefs = preferences(request)
        predicate, navs = self.parser.compile_filter(ent, query.filter)
        requested = prefs.get("odata.maxpagesize", "")
        max_page_size = int(requested) if requested.isdigit() and 0 < int(requested) <= MAX_PAGE_SIZE else None
        with self.store.lock:
            page = self.reader.page(
                ent,
                query,
                predicate,
                navs,
                max_page_size=max_page_size,
                wanted=annotations_wanted(prefs),
                base_url=base_url(request),
                scope=scope,
                snapshot=self._snapshot(request, query),
            )
        body: Record = {"@odata.context": _context(request, ent, query, single=False)}
        if query.count:
            body["@odata.count"] = page.total
        body["value"] = page.value
        if page.next_token is not None:
            raw = "&".join([*query.raw_parts, f"$skiptoken={page.next_token}"])
            body["@odata.nextLink"] = f"{base_url(request)}/{path or ent.set_name}?{raw}"
        applied = {"Preference-Applied": f"odata.maxpagesize={max_page_size}"} if max_page_size else {}
        return odata_response(body, 200, applied)

    def _get_one(self, request: Request, ent: Entity, key: RowKey) -> Response:
        query = self.parser.parse(request, ent)
        wanted = annotations_wanted(preferences(request))
        with self.store.lock:
            row = self.store.find(ent, key)
            if row is None:
                raise not_found(ent, key)
            tag = etag(row)
            if_none_match = request.headers.get("If-None-Match", "")
            if if_none_match and not query.expand and etag_matches(if_none_match, row):
                return empty_response(304, {"ETag": tag})
            body = self.reader.project(
                ent,
                row,
                query.select,
                query.expand,
                wanted,
                base_url=base_url(request),
                snapshot=self._snapshot(request, query),
            )
        return odata_response(
            {"@odata.context": _context(request, ent, query, single=True), **body}, 200, {"ETag": tag}
        )

    # ----- writes -----
    def _post(self, request: Request, ent: Entity) -> Response:
        query = self.parser.parse(request, ent)
        prefs = preferences(request)
        with self.store.lock:
            row = self.writer.create(ent, self.writer.parse_payload(ent, read_body(request)))
            body = self.reader.project(
                ent, row, query.select, query.expand, annotations_wanted(prefs), base_url=base_url(request)
            )
            tag = etag(row)
            record_id = row[ent.pk]
        if prefs.get("return") == "representation":
            payload = {"@odata.context": _context(request, ent, query, single=True), **body}
            return odata_response(payload, 201, {"ETag": tag, "Preference-Applied": "return=representation"})
        return empty_response(204, {"OData-EntityId": _entity_url(request, ent, record_id)})

    def _patch(self, request: Request, ent: Entity, key: RowKey) -> Response:
        query = self.parser.parse(request, ent)
        prefs = preferences(request)
        with self.store.lock:
            row, created = self.writer.upsert(
                ent,
                key,
                read_body(request),
                if_match=request.headers.get("If-Match"),
                if_none_match=request.headers.get("If-None-Match"),
            )
            body = self.reader.project(
                ent, row, query.select, query.expand, annotations_wanted(prefs), base_url=base_url(request)
            )
            tag = etag(row)
            record_id = row[ent.pk]
        if prefs.get("return") == "representation":
            payload = {"@odata.context": _context(request, ent, query, single=True), **body}
            headers = {"ETag": tag, "Preference-Applied": "return=representation"}
            return odata_response(payload, 201 if created else 200, headers)
        return empty_response(204, {"OData-EntityId": _entity_url(request, ent, record_id)})

    def _delete(self, request: Request, ent: Entity, key: RowKey) -> Response:
        with self.store.lock:
            self.writer.delete(ent, key, if_match=request.headers.get("If-Match"))
        return empty_response(204)

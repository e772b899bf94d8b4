"""Reading rows out: the wire shape of a row, following lookups, collection queries with server-driven paging."""

from __future__ import annotations

import bisect
import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sandbox.sims.dataverse.errors import CODE_QUERY, bad_request
from sandbox.sims.dataverse.query import Expand, Query, decode_skiptoken, encode_skiptoken
from sandbox.sims.dataverse.schema import PRINCIPAL, Entity
from sandbox.sims.dataverse.store import Store
from sandbox.sims.dataverse.wire import LOOKUP_NAV, LOOKUP_TARGET, MAX_PAGE_SIZE, Record, etag
from sandbox.sims.odata import FilterError, sort_records


def _sort_value(value: Any) -> tuple[int, Any]:
    """Same ordering as :func:`sandbox.sims.odata.sort_records` (nulls first, strings casefolded)."""
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.casefold())
    return (1, value)


class SortKey:
    """Comparable position in an ``$orderby`` ordering, so a skiptoken can say "after this row"."""

    def __init__(self, values: list[Any], descending: list[bool]) -> None:
        self.values = values
        self.descending = descending

    def _cmp(self, other: SortKey) -> int:
        for a, b, desc in zip(self.values, other.values, self.descending, strict=True):
            ka, kb = _sort_value(a), _sort_value(b)
            if ka != kb:
                result = -1 if ka < kb else 1
                return -result if desc else result
        return 0

    def __lt__(self, other: SortKey) -> bool:
        return self._cmp(other) < 0


Snapshot = dict[tuple[str, str], list[Record]]  # (parent id, navigation property) -> expanded rows


class ExpandCache:
    """Stale collection-valued ``$expand`` results, as the service may serve them.

    Microsoft: "Queries that expand collection-valued navigation properties may return cached data
    for those properties that don't reflect recent changes. Include ``If-None-Match: null`` header
    [...] to override browser caching of Web API request." (``MicrosoftDocs/powerapps-docs``,
    ``powerapps-docs/developer/data-platform/webapi/compose-http-requests-handle-errors.md``, HTTP
    headers.) So a GET with a collection-valued ``$expand`` and without that header gets the expanded
    rows from a snapshot taken the first time that exact URL was asked, for ``seconds``; the parent
    rows themselves are always current. ``seconds <= 0`` turns the cache off.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Snapshot]] = {}

    def snapshot_for(self, url: str) -> Snapshot | None:
        """The snapshot this URL is served from (a new, empty one when there is none or it expired)."""
        if self.seconds <= 0:
            return None
        now = self.clock()
        with self._lock:
            entry = self._entries.get(url)
            if entry is None or now - entry[0] >= self.seconds:
                entry = (now, {})
                self._entries[url] = entry
            return entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class Page:
    """One page of a collection query: the projected rows, the total, and the cursor for the next page."""

    value: list[Record]
    total: int
    next_token: str | None
    page_size_applied: int | None


class Reader:
    """Projection and querying over a :class:`Store`; callers hold ``store.lock``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def follow(self, ent: Entity, row: Record, nav_name: str) -> tuple[Entity, Record] | None:
        """The row a lookup points at, if it points at one of this navigation property's tables
        (``customerid_contact`` of an opportunity whose customer is an account is null)."""
        nav = ent.navs[nav_name]
        target_id = row.get(nav.column)
        if target_id is None:
            return None
        logical = row.get(f"{nav.column}@{LOOKUP_TARGET}", nav.targets[0])
        if logical not in nav.targets:
            return None
        target_row = self.store.rows[logical].get(target_id)
        return None if target_row is None else (self.store.schema.entity(logical), target_row)

    def filter_view(self, ent: Entity, row: Record, navs: set[str]) -> Record:
        """The row with the navigation properties a $filter path uses joined in."""
        if not navs:
            return row
        view = dict(row)
        for name in navs:
            followed = self.follow(ent, row, name)
            if followed is not None and ent.navs[name].declared_type == PRINCIPAL:
                view[name] = {"ownerid": followed[1][followed[0].pk]}
            else:
                view[name] = None if followed is None else followed[1]
        return view

    def project(
        self,
        ent: Entity,
        row: Record,
        select: list[str] | None,
        expand: list[Expand],
        wanted: Callable[[str], bool],
        *,
        base_url: str = "",
        also: tuple[str, ...] = (),
        snapshot: Snapshot | None = None,
    ) -> Record:
        """The wire shape of one row; ``also`` adds columns the service returns unasked (the back-reference
        lookup of rows in an expanded collection); expanded collections come from ``snapshot`` when given."""
        out: Record = {"@odata.etag": etag(row)}
        columns = list(select) if select else list(ent.readable)
        for extra in (*also, ent.pk):
            if extra not in columns:
                columns.append(extra)
        for column in columns:
            out[column] = row.get(column)
            if column in ent.lookup_columns and row.get(column) is not None:
                for annotation in (LOOKUP_TARGET, LOOKUP_NAV):
                    if wanted(annotation) and f"{column}@{annotation}" in row:
                        out[f"{column}@{annotation}"] = row[f"{column}@{annotation}"]
        if ent.logical == "systemuser":
            out["ownerid"] = row[ent.pk]  # systemuser inherits principal's key, so the service returns both
        for item in expand:
            if item.collection is None:
                out[item.name] = self._project_single(ent, row, item, wanted)
                continue
            key = (row[ent.pk], item.name)
            if snapshot is not None and key in snapshot:
                out[item.name] = copy.deepcopy(snapshot[key])
            else:
                out[item.name] = [
                    self.project(item.target, child, item.select, [], wanted, also=(item.collection.column,))
                    for child in self.related_rows(ent, row, item)
                ]
                if snapshot is not None:
                    snapshot[key] = copy.deepcopy(out[item.name])
            # Single-level expands are not paged; the link is the filtered collection with the same options.
            options = "&".join(quote(o, safe="$=,'()/") for o in item.raw_options)
            link = f"{base_url}/{ent.set_name}({row[ent.pk]})/{item.name}"
            out[f"{item.name}@odata.nextLink"] = f"{link}?{options}" if options else link
        return out

    def _project_single(self, ent: Entity, row: Record, item: Expand, wanted: Callable[[str], bool]) -> Record | None:
        followed = self.follow(ent, row, item.name)
        if followed is None:
            return None
        target, target_row = followed
        if item.target.logical == PRINCIPAL:
            # An instance of a derived type (systemuser or team) seen through principal: its one property.
            return {"@odata.type": f"#{target.type_name}", "ownerid": target_row[target.pk]}
        return self.project(target, target_row, item.select, [], wanted)

    def related_rows(self, ent: Entity, row: Record, item: Expand) -> list[Record]:
        """Rows of a collection-valued navigation property: filtered, ordered (then by key), capped."""
        assert item.collection is not None
        target = item.target
        column = item.collection.column
        rows = [r for r in self.store.rows[target.logical].values() if r.get(column) == row[ent.pk]]
        if item.predicate is not None:
            try:
                rows = [r for r in rows if item.predicate(self.filter_view(target, r, item.filter_navs))]
            except FilterError as exc:
                raise bad_request(str(exc), CODE_QUERY) from exc
        clauses = [*item.orderby, (target.pk, False)]
        rows = sort_records(rows, ",".join(f"{c} {'desc' if d else 'asc'}" for c, d in clauses))
        return rows[: min(item.top or MAX_PAGE_SIZE, MAX_PAGE_SIZE)]

    def page(
        self,
        ent: Entity,
        query: Query,
        predicate: Callable[[Record], bool],
        navs: set[str],
        *,
        max_page_size: int | None,
        wanted: Callable[[str], bool],
        base_url: str,
        scope: tuple[str, str] | None = None,
        snapshot: Snapshot | None = None,
    ) -> Page:
        """Filter, order (then by key, so paging is stable), cut one page after the skiptoken's row."""
        page_size = max_page_size or MAX_PAGE_SIZE
        clauses = [*query.orderby, (ent.pk, False)]
        try:
            rows = [
                r
                for r in self.store.rows[ent.logical].values()
                if (scope is None or r.get(scope[0]) == scope[1]) and predicate(self.filter_view(ent, r, navs))
            ]
        except FilterError as exc:
            raise bad_request(str(exc), CODE_QUERY) from exc
        rows = sort_records(rows, ",".join(f"{c} {'desc' if d else 'asc'}" for c, d in clauses))
        total = len(rows)
        if query.top is not None and max_page_size is None:  # $top is ignored with odata.maxpagesize
            rows = rows[: min(query.top, MAX_PAGE_SIZE)]
            page_size = len(rows) or 1
        start = 0
        if query.skiptoken is not None:
            after = decode_skiptoken(query.skiptoken, len(clauses))
            descending = [d for _, d in clauses]

            def key_of(row: Record) -> SortKey:
                return SortKey([row.get(c) for c, _ in clauses], descending)

            start = bisect.bisect_right(rows, SortKey(after, descending), key=key_of)
        chunk = rows[start : start + page_size]
        more = start + page_size < len(rows)
        value = [
            self.project(ent, r, query.select, query.expand, wanted, base_url=base_url, snapshot=snapshot)
            for r in chunk
        ]
        token = encode_skiptoken([chunk[-1].get(c) for c, _ in clauses]) if more and chunk else None
        return Page(value, total, token, max_page_size)

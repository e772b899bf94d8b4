"""The REST resources under ``/services/data/vXX.X/``: sObject rows, upsert by external id, query, describe.

Each handler gets the parsed version and the caller (the token's Run As user), works under the
store's lock and shapes the answer the way the REST API Developer Guide shows it:

- ``POST /sobjects/{Object}`` -> 201 ``{"id", "success": true, "errors": []}`` ("Create a Record").
- ``GET /sobjects/{Object}/{id}[?fields=A,B]`` -> the record with ``attributes`` ("Get Field Values").
- ``PATCH /sobjects/{Object}/{id}`` -> 204 ("Update Fields in a Record"); ``POST …?_HttpMethod=PATCH`` too.
- ``DELETE /sobjects/{Object}/{id}`` -> 204 ("Delete a Record").
- ``PATCH /sobjects/{Object}/{Field}/{value}`` upsert ("Insert or Update (Upsert) a Record Using an External
  ID", dome-upsert.html): 201 + ``created: true`` when created; when one record matched, 200 with
  ``{"id", "success", "errors", "created": false}`` from API 46.0 (the ``created`` flag "appears in API version
  46.0 and later"), 204 before; several matches -> 300 with the matching records' URLs; ``?updateOnly=true``
  refuses to create. ``GET``/``DELETE`` on the same URL read or delete the matching record.
- ``GET /query?q=`` and ``/queryAll?q=`` (deleted rows too) with ``nextRecordsUrl`` paging (paging.py).
- ``GET /sobjects/{Object}/updated/?start=&end=`` and ``…/deleted/`` ("Get Updated" / "Get Deleted").

An id in a URL must be a 15- or 18-character id of that object: anything else is 400 MALFORMED_ID
(the simulator's choice of code, see the report); an id of a deleted record is 404 NOT_FOUND for a GET
and 404 ENTITY_IS_DELETED for PATCH/DELETE.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from sandbox.sims.salesforce import describe as meta
from sandbox.sims.salesforce import errors
from sandbox.sims.salesforce.errors import SalesforceError
from sandbox.sims.salesforce.ids import normalise
from sandbox.sims.salesforce.paging import Locators, batch_size
from sandbox.sims.salesforce.query import QueryEngine, attributes, project_row
from sandbox.sims.salesforce.schema import Field, Schema, SObject
from sandbox.sims.salesforce.store import Store
from sandbox.sims.salesforce.wire import (
    Record,
    empty_response,
    format_datetime,
    parse_datetime,
    read_object,
    sf_response,
    version_at_least,
)
from sandbox.sims.salesforce.writes import Writer


@dataclass(frozen=True)
class Call:
    """What every API handler gets: the API version of the URL, the session's user and the org as that user
    sees it (access.py: objects and fields it has no permission for are not in it)."""

    version: str
    user_id: str
    schema: Schema


class RecordsApi:
    def __init__(self, store: Store, *, seed: int = 0, default_batch: int = 2000) -> None:
        self.store = store
        self.schema = store.schema
        self.writer = Writer(store)
        self.engine = QueryEngine(store)
        self.locators = Locators(seed=seed)
        self.default_batch = default_batch

    # ----- helpers -----
    def sobject(self, name: str, call: Call) -> SObject:
        obj = call.schema.sobject(name)
        if obj is None:
            # "The requested resource does not exist" for /sobjects/NoSuchObject (errorcodes.html, 404).
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    def resolve_id(self, obj: SObject, raw: str) -> str:
        canonical = normalise(raw)
        if canonical is None or canonical[:3] != obj.key_prefix:
            raise errors.malformed_id(f"{obj.label} ID", None, raw)
        return canonical

    def _fields_param(self, obj: SObject, request: Request) -> list[Field] | None:
        names = [n.strip() for n in request.args.get("fields", "").split(",") if n.strip()]
        if not names:
            return None
        found = []
        for name in names:
            f = obj.field(name)
            if f is None:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity '{obj.name}'. If you are attempting to "
                    "use a custom field, be sure to append the '__c' after the custom field name. Please reference "
                    "your WSDL or the describe call for the appropriate names.",
                )
            found.append(f)
        return found

    # ----- discovery -----
    def resources(self, request: Request, call: Call) -> Response:
        base = f"/services/data/v{call.version}"
        names = ("sobjects", "query", "queryAll", "composite", "limits", "tooling")
        return sf_response({name: f"{base}/{name}" for name in names})

    def global_describe(self, request: Request, call: Call) -> Response:
        return sf_response(meta.global_describe(call.schema, call.version))

    def describe(self, request: Request, call: Call, name: str) -> Response:
        return sf_response(meta.describe(self.sobject(name, call), call.version))

    # ----- /sobjects/{Object} -----
    def collection(self, request: Request, call: Call, name: str) -> Response:
        obj = self.sobject(name, call)
        if request.method == "GET":
            return sf_response(meta.basic_info(obj, call.version))
        body = read_object(request)
        with self.store.lock:
            row = self.writer.create(obj, body, user_id=call.user_id, schema=call.schema)
        return sf_response({"id": row["Id"], "success": True, "errors": []}, 201)

    # ----- /sobjects/{Object}/{id} -----
    def row(self, request: Request, call: Call, name: str, record_id: str) -> Response:
        obj = self.sobject(name, call)
        method = _method(request)
        canonical = self.resolve_id(obj, record_id)
        with self.store.lock:
            row = self.store.find(obj, canonical)
            if row is None:
                if method != "GET" and self.store.find(obj, canonical, deleted=True) is not None:
                    raise errors.entity_is_deleted()
                raise errors.not_found()
            if method == "GET":
                return sf_response(project_row(obj, row, call.version, self._fields_param(obj, request)))
            if method == "PATCH":
                self.writer.update(obj, row, read_object(request), user_id=call.user_id, schema=call.schema)
                return empty_response(204)
            if method == "DELETE":
                self.writer.delete(obj, row)
                return empty_response(204)
        raise _method_not_allowed(method, "GET,PATCH,DELETE")

    # ----- /sobjects/{Object}/{Field}/{value} -----
    def by_field(self, request: Request, call: Call, name: str, field_name: str, value: str) -> Response:
        obj = self.sobject(name, call)
        method = _method(request)
        f = obj.field(field_name)
        usable = f is not None and (f.external_id or (f.id_lookup and (method == "GET" or f.name != "Id")))
        if not usable:
            raise errors.not_found(f"Provided external ID field does not exist or is not accessible: {field_name}")
        assert f is not None
        with self.store.lock:
            if method == "PATCH":
                update_only = request.args.get("updateOnly", "").lower() == "true"
                result = self.writer.upsert(
                    obj,
                    f,
                    value,
                    read_object(request),
                    user_id=call.user_id,
                    update_only=update_only,
                    schema=call.schema,
                )
                if isinstance(result, list):
                    return self._several(obj, result, call)
                row, created = result
                body: Record = {"id": row["Id"], "success": True, "errors": []}
                if version_at_least(call.version, 46):
                    body["created"] = created
                if created:
                    return sf_response(body, 201)
                return sf_response(body, 200) if version_at_least(call.version, 46) else empty_response(204)
            matches = (
                self.store.matching(obj, f.name, value)
                if f.name != "Id"
                else [r for r in [self.store.find(obj, value)] if r is not None]
            )
            if len(matches) > 1:
                return self._several(obj, matches, call)
            if not matches:
                raise errors.not_found()
            if method == "GET":
                return sf_response(project_row(obj, matches[0], call.version, self._fields_param(obj, request)))
            if method == "DELETE":
                self.writer.delete(obj, matches[0])
                return empty_response(204)
        raise _method_not_allowed(method, "GET,PATCH,DELETE")

    @staticmethod
    def _several(obj: SObject, rows: list[Record], call: Call) -> Response:
        # 300 Multiple Choices: "the list of matching records" as their URLs (dome-upsert, older editions).
        return sf_response([attributes(obj, r["Id"], call.version)["url"] for r in rows], 300)

    # ----- query -----
    def query(self, request: Request, call: Call, *, include_deleted: bool = False) -> Response:
        soql = request.args.get("q")
        if not soql or not soql.strip():
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        with self.store.lock:
            records, total, _count = self.engine.run(
                soql, include_deleted=include_deleted, version=call.version, schema=call.schema
            )
        size = batch_size(request.headers.get("Sforce-Query-Options"), self.default_batch)
        resource = "queryAll" if include_deleted else "query"
        return sf_response(self.locators.first(records, total, size, call.version, resource))

    def query_more(self, request: Request, call: Call, token: str, *, include_deleted: bool = False) -> Response:
        resource = "queryAll" if include_deleted else "query"
        return sf_response(self.locators.more(token, call.version, resource))

    # ----- replication: getUpdated / getDeleted -----
    def updated(self, request: Request, call: Call, name: str) -> Response:
        obj = self.sobject(name, call)
        start, end = _window(request)
        with self.store.lock:
            ids = [r["Id"] for r in self.store.all_rows(obj) if start <= r["SystemModstamp"] < end]
        return sf_response({"ids": sorted(ids), "latestDateCovered": format_datetime(end)})

    def deleted(self, request: Request, call: Call, name: str) -> Response:
        obj = self.sobject(name, call)
        start, end = _window(request)
        with self.store.lock:
            gone = [
                {"id": r["Id"], "deletedDate": format_datetime(r["SystemModstamp"])}
                for r in self.store.bin[obj.name].values()
                if start <= r["SystemModstamp"] < end
            ]
        return sf_response(
            {
                "deletedRecords": sorted(gone, key=lambda d: d["deletedDate"]),
                "earliestDateAvailable": format_datetime(end - dt.timedelta(days=15)),
                "latestDateCovered": format_datetime(end),
            }
        )


def _window(request: Request) -> tuple[dt.datetime, dt.datetime]:
    """``start``/``end`` of getUpdated/getDeleted; "the seconds portion … is ignored" (resources-getupdated.md)."""
    bounds = []
    for name in ("start", "end"):
        text = request.args.get(name, "")
        value = parse_datetime(text)
        if value is None:
            raise SalesforceError(
                400, "INVALID_PARAMETER_VALUE", f"Parameter {name} is missing or not a dateTime: {text}"
            )
        bounds.append(value.replace(second=0))
    if bounds[1] <= bounds[0]:
        raise SalesforceError(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    return bounds[0], bounds[1]


def _method(request: Request) -> str:
    """``POST …?_HttpMethod=PATCH`` is a PATCH for clients that cannot send one (dome-update-fields.html)."""
    if request.method == "POST" and request.args.get("_HttpMethod", "").upper() in ("PATCH", "DELETE"):
        return request.args["_HttpMethod"].upper()
    return request.method


def _method_not_allowed(method: str, allowed: str) -> SalesforceError:
    return SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}")


__all__ = ["Call", "RecordsApi"]

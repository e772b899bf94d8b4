"""sObject Collections: up to 200 records per call, one API call however many records.

- ``POST /composite/sobjects`` ``{"allOrNone", "records": [{"attributes": {"type"}, …}]}`` creates
  ("Create Records Using sObject Collections"); a record may not carry an ``id``.
- ``PATCH /composite/sobjects`` updates, each record with its ``id`` ("Update Records …").
- ``PATCH /composite/sobjects/{Object}/{ExternalIdField}`` upserts records of one type (API 46.0+,
  "Upsert Records …"), answering ``created`` per record.
- ``GET /composite/sobjects/{Object}?ids=…&fields=…`` reads, null for ids it cannot find.
- ``DELETE /composite/sobjects?ids=…&allOrNone=…`` deletes.

The answer is 200 with one SaveResult per record, in order: ``{"id", "success", "errors"}``, where an error
is ``{"statusCode", "message", "fields"}``. With ``allOrNone`` true, one failure rolls everything back:
the failing records carry their own errors and the others ``ALL_OR_NONE_OPERATION_ROLLED_BACK``
("Record rolled back because not all records were valid and the request was using AllOrNone header").
More than 200 records is refused whole (EXCEEDED_ID_LIMIT, "record limit reached. cannot submit more
than 200 records into this call").
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.sims.salesforce import errors
from sandbox.sims.salesforce.errors import SalesforceError
from sandbox.sims.salesforce.ids import normalise
from sandbox.sims.salesforce.query import project_row
from sandbox.sims.salesforce.records import Call, RecordsApi
from sandbox.sims.salesforce.wire import Record, read_json, sf_response, version_at_least

MAX_RECORDS = 200
_ROLLED_BACK = SalesforceError(
    400,
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
    [],
)


class CollectionsApi:
    def __init__(self, records: RecordsApi) -> None:
        self.records = records
        self.store = records.store
        self.writer = records.writer

    def sobjects(self, request: Request, call: Call) -> Response:
        if request.method == "GET":
            raise SalesforceError(
                405, "METHOD_NOT_ALLOWED", "HTTP Method 'GET' not allowed. Allowed are POST,PATCH,DELETE"
            )
        if request.method == "DELETE":
            ids = [i for i in request.args.get("ids", "").split(",") if i]
            all_or_none = request.args.get("allOrNone", "false").lower() == "true"
            return self._run(ids, all_or_none, lambda raw: self._delete(raw, call))
        body = read_json(request)
        records, all_or_none = _records_of(body)
        if request.method == "POST":
            return self._run(records, all_or_none, lambda rec: self._create(rec, call))
        return self._run(records, all_or_none, lambda rec: self._update(rec, call))

    def typed(self, request: Request, call: Call, name: str) -> Response:
        """``GET /composite/sobjects/{Object}?ids=&fields=``."""
        obj = self.records.sobject(name, call)
        ids = [i for i in request.args.get("ids", "").split(",") if i]
        if len(ids) > 2000:
            raise SalesforceError(
                400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 2000 records into this call"
            )
        fields = self.records._fields_param(obj, request)
        if fields is None:
            raise SalesforceError(400, "INVALID_FIELD", "fields parameter is required")
        out: list[Record | None] = []
        with self.store.lock:
            for raw in ids:
                canonical = normalise(raw)
                row = self.store.find(obj, canonical) if canonical and canonical[:3] == obj.key_prefix else None
                out.append(project_row(obj, row, call.version, fields) if row else None)
        return sf_response(out)

    def upsert(self, request: Request, call: Call, name: str, field_name: str) -> Response:
        obj = self.records.sobject(name, call)
        if not version_at_least(call.version, 46):
            raise errors.not_found()
        f = obj.field(field_name)
        if f is None or not (f.external_id or f.id_lookup) or f.name == "Id":
            raise errors.not_found(f"Provided external ID field does not exist or is not accessible: {field_name}")
        records, all_or_none = _records_of(read_json(request))

        def one(rec: Record) -> Record:
            _check_type(rec, obj.name)
            body = {k: v for k, v in rec.items() if k != "attributes"}
            value = next((v for k, v in body.items() if k.lower() == f.name.lower()), None)
            if value in (None, ""):
                raise SalesforceError(400, "MISSING_ARGUMENT", f"{f.name} not specified", [f.name])
            body = {k: v for k, v in body.items() if k.lower() != f.name.lower()}
            result = self.writer.upsert(obj, f, str(value), body, user_id=call.user_id, schema=call.schema)
            if isinstance(result, list):
                raise SalesforceError(
                    300,
                    "DUPLICATE_EXTERNAL_ID",
                    f"{f.name}: more than one record found for external id field: {[r['Id'] for r in result]}",
                    [f.name],
                )
            row, created = result
            return {"id": row["Id"], "success": True, "errors": [], "created": created}

        return self._run(records, all_or_none, one, upsert=True)

    # ----- per record -----
    def _create(self, rec: Any, call: Call) -> Record:
        obj = self.records.sobject(_check_type(rec), call)
        if any(k.lower() == "id" for k in rec):
            raise SalesforceError(400, "INVALID_FIELD", "cannot specify Id in an insert call", [])
        row = self.writer.create(
            obj, {k: v for k, v in rec.items() if k != "attributes"}, user_id=call.user_id, schema=call.schema
        )
        return {"id": row["Id"], "success": True, "errors": []}

    def _update(self, rec: Any, call: Call) -> Record:
        obj = self.records.sobject(_check_type(rec), call)
        raw = next((v for k, v in rec.items() if k.lower() == "id"), None)
        if not raw:
            raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified in an update call", [])
        canonical = normalise(raw)
        if canonical is None or canonical[:3] != obj.key_prefix:
            raise SalesforceError(400, "MALFORMED_ID", f"malformed id {raw}", [])
        row = self.store.find(obj, canonical)
        if row is None:
            if self.store.find(obj, canonical, deleted=True) is not None:
                raise errors.entity_is_deleted()
            raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        body = {k: v for k, v in rec.items() if k != "attributes" and k.lower() != "id"}
        self.writer.update(obj, row, body, user_id=call.user_id, schema=call.schema)
        return {"id": canonical, "success": True, "errors": []}

    def _delete(self, raw: Any, call: Call) -> Record:
        canonical = normalise(raw)
        located = self.store.locate(raw) if canonical else None
        if located is None:
            raise SalesforceError(400, "MALFORMED_ID", f"malformed id {raw}", [])
        full, row, is_deleted = located
        obj = call.schema.sobject(full.name)  # the caller's view: an object it cannot see has no rows for it
        if obj is None:
            raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if row is None or is_deleted:
            raise (
                errors.entity_is_deleted()
                if is_deleted
                else SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            )
        self.writer.delete(obj, row)
        return {"id": canonical, "success": True, "errors": []}

    # ----- the loop -----
    def _run(self, items: list[Any], all_or_none: bool, one: Any, *, upsert: bool = False) -> Response:
        if len(items) > MAX_RECORDS:
            raise SalesforceError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call",
            )
        results: list[Record] = []
        failed = False
        with self.store.lock:
            snapshot = self.store.snapshot() if all_or_none else None
            for item in items:
                try:
                    results.append(one(item))
                except SalesforceError as exc:
                    failed = True
                    result: Record = {"id": None, "success": False, "errors": [exc.save_error()]}
                    if upsert:
                        result["created"] = False
                    results.append(result)
            if failed and snapshot is not None:
                self.store.restore(snapshot)
                for result in results:
                    if result["success"]:
                        result.update(id=None, success=False, errors=[_ROLLED_BACK.save_error()])
        return sf_response(results)


def _records_of(body: Any) -> tuple[list[Any], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise errors.json_parser_error('The request body must be {"allOrNone": …, "records": [ … ]}')
    return body["records"], bool(body.get("allOrNone", False))


def _check_type(rec: Any, expected: str | None = None) -> str:
    if not isinstance(rec, dict):
        raise errors.json_parser_error("Cannot deserialize instance of sObject from VALUE_STRING")
    attrs = rec.get("attributes")
    kind = attrs.get("type") if isinstance(attrs, dict) else None
    if not kind and expected is None:
        # "Each object must contain an attributes map. The map must contain a value for type."
        raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.", [])
    if expected is not None and kind and kind.lower() != expected.lower():
        raise SalesforceError(400, "INVALID_TYPE", f"Record type {kind} does not match the URL's {expected}", [])
    return str(kind or expected)

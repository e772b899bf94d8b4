"""Composite: ``POST /services/data/vXX.X/composite``, several REST requests in one call.

From the REST API Developer Guide, "Send Multiple Requests Using Composite"
(https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html),
"Composite Request Body", "Composite Subrequest Result" and crm-apis.md B2:

- ``{"allOrNone": bool, "compositeRequest": [{"method", "url", "referenceId", "body", "httpHeaders"}]}``;
  "The entire series of requests counts as a single call toward your API limits" (app.py counts the
  outer request once; subrequests are not counted).
- Up to 25 subrequests, at most 5 of them queries (Query, QueryAll, and Query More by a locator).
- Supported resources: the sObject resources (rows, rows by external id, create, describe) and Query /
  QueryAll. Each subrequest runs through the same handler as the plain request, so every rule (required
  fields, field-level security, INVALID_FIELD, lengths, picklists, unique fields) holds inside too.
- ``referenceId`` is required ("'referenceId' is a required field.", JSON_PARSER_ERROR, from the Salesforce
  blog "Handle Errors with Composite Resources", 2017) and may hold only letters, numbers and underscores
  ("Composite Subrequest Result"). ``Accept``, ``Authorization`` and ``Content-Type`` are inherited and may
  not be set in ``httpHeaders`` (the top-level request fails with 400).
- References ``@{refId.field}`` / ``@{refId.records[0].Id}`` in a later subrequest's url or body take a value
  from an earlier subrequest's response body ("." names a field, "[n]" indexes a collection; "Composite
  Subrequest"). A reference that cannot be resolved (unknown or failed referenceId, missing field) fails
  that subrequest with PROCESSING_HALTED.
- The answer is 200 ``{"compositeResponse": [{"body", "httpHeaders", "httpStatusCode", "referenceId"}]}``.
  With ``allOrNone`` true one failing subrequest rolls the whole request back: it keeps its own error and
  "all other subrequests return the 400 HTTP status code" (PROCESSING_HALTED, "The transaction was rolled
  back since another operation in the same transaction failed."). With ``allOrNone`` false the
  subrequests that do not depend on the failed one still run.

The simulator's own choices (no wording found in the documentation): the 400 answers for too many
subrequests or queries, for a duplicate or malformed referenceId and for a resource composite does not
support, and the PROCESSING_HALTED message of an unresolvable reference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import MapAdapter
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from sandbox.sims.salesforce import errors
from sandbox.sims.salesforce.errors import SalesforceError
from sandbox.sims.salesforce.records import Call
from sandbox.sims.salesforce.store import Store
from sandbox.sims.salesforce.wire import check_version, error_response, read_json, sf_response

MAX_SUBREQUESTS = 25
MAX_QUERIES = 5
METHODS = frozenset({"DELETE", "GET", "PATCH", "POST"})
INHERITED_HEADERS = frozenset({"accept", "authorization", "content-type"})
_REFERENCE_ID = re.compile(r"[A-Za-z0-9_]+")
_REFERENCE = re.compile(r"@\{([^}]*)\}")
_STEP = re.compile(r"\.?([A-Za-z0-9_]+)|\[(\d+)\]")
_URL = re.compile(r"/services/data/(v\d+\.\d)(/.*)")
_QUERY_PATHS = ("/query", "/queryAll")
_SUPPORTED = ("/sobjects", *_QUERY_PATHS)  # sObject resources, Query, QueryAll

ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."

# The simulator's dispatcher: (method, path, query string, body, caller) -> the plain request's response.
Dispatch = Callable[[str, str, str, Any, Call], Response]


class _Unresolved(Exception):
    def __init__(self, reference: str) -> None:
        ref = reference.split(".", 1)[0].split("[", 1)[0]
        super().__init__(
            f"Invalid reference specified. No value for {reference} found in {ref}. Provided referenceId ('{ref}') "
            "must refer to an earlier subrequest that succeeded and whose response has that value."
        )


class CompositeApi:
    def __init__(self, store: Store, dispatch: Dispatch) -> None:
        self.store = store
        self._dispatch = dispatch

    def composite(self, request: Request, call: Call) -> Response:
        body = read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise errors.json_parser_error('The request body must be {"allOrNone": …, "compositeRequest": [ … ]}')
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise errors.json_parser_error("allOrNone must be a boolean")
        subrequests = [self._checked(sub, call) for sub in body["compositeRequest"]]
        self._check_limits(subrequests)
        results: list[dict[str, Any]] = []
        outputs: dict[str, Any] = {}
        failed: int | None = None
        with self.store.lock:  # one transaction: nothing else writes in between
            snapshot = self.store.snapshot() if all_or_none else None
            for n, sub in enumerate(subrequests):
                if failed is not None and all_or_none:
                    break
                result = self._run(sub, outputs, call)
                results.append(result)
                if result["httpStatusCode"] < 400:
                    outputs[sub["referenceId"]] = result["body"]
                elif failed is None:
                    failed = n
            if failed is not None and snapshot is not None:
                self.store.restore(snapshot)
                halted = [{"message": ROLLED_BACK, "errorCode": "PROCESSING_HALTED"}]
                results = [
                    results[n] if n == failed else _result(sub["referenceId"], 400, halted)
                    for n, sub in enumerate(subrequests)
                ]
        return sf_response({"compositeResponse": results})

    # ----- the request as a whole -----
    def _checked(self, sub: Any, call: Call) -> dict[str, Any]:
        if not isinstance(sub, dict):
            raise errors.json_parser_error("Cannot deserialize instance of subrequest from VALUE_STRING")
        for name in ("method", "url", "referenceId"):
            if not isinstance(sub.get(name), str) or not sub[name]:
                raise errors.json_parser_error(f"'{name}' is a required field.")
        if sub["method"] not in METHODS:
            raise errors.json_parser_error(f"Invalid HTTP method {sub['method']!r}: use DELETE, GET, PATCH or POST")
        if not _REFERENCE_ID.fullmatch(sub["referenceId"]):
            raise SalesforceError(
                400,
                "INVALID_INPUT",
                f"Invalid referenceId {sub['referenceId']!r}: only letters, numbers and underscores are allowed",
            )
        headers = sub.get("httpHeaders") or {}
        if not isinstance(headers, dict) or INHERITED_HEADERS & {str(k).lower() for k in headers}:
            raise SalesforceError(
                400,
                "INVALID_INPUT",
                "A subrequest inherits Accept, Authorization and Content-Type from the composite request",
            )
        match = _URL.fullmatch(urlsplit(sub["url"]).path)
        if match is None:
            raise SalesforceError(400, "INVALID_INPUT", f"Invalid subrequest url {sub['url']!r}")
        version = check_version(match.group(1))
        if float(version) > float(call.version):
            raise SalesforceError(
                400,
                "INVALID_INPUT",
                f"Subrequest version {version} is later than the composite request's {call.version}",
            )
        return sub

    def _check_limits(self, subrequests: list[dict[str, Any]]) -> None:
        ids = [sub["referenceId"] for sub in subrequests]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise SalesforceError(400, "INVALID_INPUT", f"Duplicate referenceId: {', '.join(duplicates)}")
        queries = sum(1 for sub in subrequests if _resource(sub["url"]).startswith(_QUERY_PATHS))
        if len(subrequests) > MAX_SUBREQUESTS or queries > MAX_QUERIES:
            raise SalesforceError(
                400,
                "LIMIT_EXCEEDED",
                f"A composite request holds at most {MAX_SUBREQUESTS} subrequests, {MAX_QUERIES} of them queries "
                f"(this one: {len(subrequests)}, {queries} queries)",
            )

    # ----- one subrequest -----
    def _run(self, sub: dict[str, Any], outputs: dict[str, Any], call: Call) -> dict[str, Any]:
        ref = sub["referenceId"]
        try:
            url = _resolve(sub["url"], outputs, in_url=True)
            body = _resolve(sub.get("body"), outputs)
        except _Unresolved as exc:
            return _result(ref, 400, [{"message": str(exc), "errorCode": "PROCESSING_HALTED"}])
        parts = urlsplit(url)
        if not _resource(parts.path).startswith(_SUPPORTED):
            return _result(
                ref, 400, SalesforceError(400, "INVALID_INPUT", "Composite does not support " + parts.path).body()
            )
        version = check_version(_URL.fullmatch(parts.path).group(1))  # type: ignore[union-attr]
        try:
            response = self._dispatch(
                sub["method"], parts.path, parts.query, body, Call(version, call.user_id, call.schema)
            )
        except SalesforceError as exc:
            response = error_response(exc)
        payload = json.loads(response.get_data()) if response.get_data() else None
        headers: dict[str, str] = {}
        if response.status_code == 201 and isinstance(payload, dict) and payload.get("id"):
            # The documented example of a created record: "Location": "/services/data/vXX.X/sobjects/Account/001…"
            sobject = _resource(parts.path).split("/")[2]
            headers["Location"] = f"/services/data/v{version}/sobjects/{sobject}/{payload['id']}"
        return _result(ref, response.status_code, payload, headers)


def dispatcher(
    urls: Callable[[], MapAdapter], handlers: dict[str, tuple[Callable[..., Response], dict[str, Any]]]
) -> Dispatch:
    """Route a subrequest to the handler of the plain request (no session check, no counting: the composite
    request as a whole was checked and counted)."""

    def dispatch(method: str, path: str, query: str, body: Any, call: Call) -> Response:
        builder = EnvironBuilder(
            path=path,
            method=method,
            query_string=query,
            data=json.dumps(body) if body is not None else None,
            content_type="application/json" if body is not None else None,
        )
        try:
            request = Request(builder.get_environ())
        finally:
            builder.close()
        try:
            endpoint, args = urls().match(path, method=method)
        except NotFound:
            raise errors.not_found() from None
        except MethodNotAllowed:
            raise SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed") from None
        handler, bound = handlers[str(endpoint)]
        args.pop("version", None)
        return handler(request, call, **args, **bound)

    return dispatch


def _resource(url: str) -> str:
    """The resource path after ``/services/data/vXX.X``: ``/sobjects/Account``, ``/query``."""
    match = _URL.fullmatch(urlsplit(url).path)
    return match.group(2) if match else ""


def _result(ref: str, status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"body": body, "httpHeaders": headers or {}, "httpStatusCode": status, "referenceId": ref}


def _resolve(value: Any, outputs: dict[str, Any], *, in_url: bool = False) -> Any:
    """Replace every ``@{ref.path}``: a string that is one reference becomes the value itself."""
    if isinstance(value, dict):
        return {k: _resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, outputs) for v in value]
    if not isinstance(value, str) or "@{" not in value:
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole and not in_url:
        return _lookup(whole.group(1), outputs)
    return _REFERENCE.sub(lambda m: str(_lookup(m.group(1), outputs)), value)


def _lookup(reference: str, outputs: dict[str, Any]) -> Any:
    ref = reference.split(".", 1)[0].split("[", 1)[0]
    if ref not in outputs:
        raise _Unresolved(reference)
    value: Any = outputs[ref]
    path = reference[len(ref) :]
    pos = 0
    while pos < len(path):
        step = _STEP.match(path, pos)
        if step is None:
            raise _Unresolved(reference)
        pos = step.end()
        name, index = step.group(1), step.group(2)
        if name is not None and isinstance(value, dict) and name in value:
            value = value[name]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise _Unresolved(reference)
    if value is None or isinstance(value, (dict, list)):
        raise _Unresolved(reference)
    return value

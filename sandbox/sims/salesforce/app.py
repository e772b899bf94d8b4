"""The simulator itself: routes, the session and API-limit checks, the error body, the control API and
the in-process helpers tests use."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.sims.base import Simulator, all_or_nothing, json_response, seed_body
from sandbox.sims.salesforce import access, connector, cosell, errors
from sandbox.sims.salesforce import seed as seeding
from sandbox.sims.salesforce.access import Access
from sandbox.sims.salesforce.auth import Sessions
from sandbox.sims.salesforce.composite import CollectionsApi
from sandbox.sims.salesforce.errors import SalesforceError
from sandbox.sims.salesforce.query import project_row
from sandbox.sims.salesforce.records import Call, RecordsApi
from sandbox.sims.salesforce.schema import SchemaKind, SObject, build_schema
from sandbox.sims.salesforce.setup import ASSIGNMENT, FIELD_PERMISSIONS, OBJECT_PERMISSIONS, PERMISSION_SET
from sandbox.sims.salesforce.store import Store
from sandbox.sims.salesforce.subrequests import CompositeApi, dispatcher
from sandbox.sims.salesforce.tooling import Tooling
from sandbox.sims.salesforce.wire import (
    DEFAULT_LATEST_VERSION,
    Record,
    check_version,
    error_response,
    sf_response,
    sforce_limit_info,
    versions,
)

API = "/services/data/<version>"
# Bodies for the base class's routing errors and injected faults (errorcodes.html status codes).
_STATUS_ERRORS = {
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    429: ("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support."),
    502: ("SERVER_UNAVAILABLE", "Bad gateway (injected)."),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable (injected)."),
    504: ("REQUEST_RUNNING_TOO_LONG", "Your request was running for too long, and has been stopped."),
}


class SalesforceSimulator(Simulator):
    """An in-memory Salesforce org: OAuth token endpoint plus REST under ``/services/data/vXX.X/``."""

    name = "salesforce"

    def __init__(
        self,
        *,
        seed: int = 0,
        schema: SchemaKind = "provisioned",
        clients: dict[str, str] | None = None,
        api_request_limit: int = 100_000,
        api_window_seconds: float = 86_400.0,
        session_seconds: float | None = None,
        latest_version: str = DEFAULT_LATEST_VERSION,
        default_batch_size: int = 2000,
    ) -> None:
        """``schema``: ``"provisioned"`` has the sync's referral fields and ``Microsoft_Solution__c`` (created
        through the Tooling API with cosell.py's bodies) and a permission set granting them to the integration
        user; ``"bare"`` is a fresh org, where whatever an app creates is hidden until it grants it.
        ``clients``: connected-app consumer key -> secret for the client-credentials flow.
        ``api_request_limit``: the org's daily API allocation (Enterprise Edition starts at 100,000; past it
        every call is 403 REQUEST_LIMIT_EXCEEDED). ``api_window_seconds``: the allocation is over a rolling
        24 hours ("Daily API requests", crm-apis.md B5): a call stops counting that long after it was made
        (tests shrink it). ``session_seconds``: token lifetime (None: until revoked).
        ``latest_version``: the newest version ``GET /services/data/`` lists. ``default_batch_size``: the
        query batch when the client asks for none (the service's is 2,000)."""
        super().__init__(seed=seed)
        if schema not in ("bare", "provisioned"):
            raise ValueError(f"schema must be 'bare' or 'provisioned', not {schema!r}")
        self._kind: SchemaKind = schema
        self.schema = build_schema()
        self.latest_version = latest_version
        self._store = Store(self.schema, seed=seed)
        self._records = RecordsApi(self._store, seed=seed, default_batch=default_batch_size)
        self._collections = CollectionsApi(self._records)
        self.access = Access(self._store)
        writer = self._records.writer
        writer.rules, writer.after_commit = self.access.rules(), self.access.after_commit()
        writer.guard = self.access.guard
        self._tooling = Tooling(self._store, self.access, seed=seed)
        self._users = seeding.Users(self._store)
        self.sessions = Sessions(org_id=self._users.org_id, lifetime=session_seconds)
        for client_id, secret in (clients or {}).items():
            self.sessions.add_client(client_id, secret)
        self.api_request_limit = api_request_limit
        self.api_window_seconds = api_window_seconds
        self._usage: deque[tuple[float, int]] = deque()  # (when, calls) inside the rolling window
        self.usage_clock: Callable[[], float] = time.monotonic
        self._provision()
        self._seed()

        records, collections, tooling = self._records, self._collections, self._tooling
        # The handlers behind each API route, unwrapped: a composite subrequest runs the plain request's handler.
        self._raw: dict[str, tuple[Callable[..., Response], dict[str, Any]]] = {}
        composite = CompositeApi(self._store, dispatcher(lambda: self._url_map.bind("localhost"), self._raw))
        self.add_route("/services/oauth2/token", ["POST"], self._token)
        self.add_route("/services/oauth2/revoke", ["POST"], self.sessions.revoke_endpoint)
        self.add_route("/services/data", ["GET"], self._versions)
        self.add_route(API, ["GET"], self._api(records.resources))
        self.add_route(f"{API}/limits", ["GET"], self._api(self._limits))
        self.add_route(f"{API}/sobjects", ["GET"], self._api(records.global_describe))
        self.add_route(f"{API}/sobjects/<name>", ["GET", "POST"], self._api(records.collection))
        self.add_route(f"{API}/sobjects/<name>/describe", ["GET"], self._api(records.describe))
        self.add_route(f"{API}/sobjects/<name>/updated", ["GET"], self._api(records.updated))
        self.add_route(f"{API}/sobjects/<name>/deleted", ["GET"], self._api(records.deleted))
        self.add_route(f"{API}/sobjects/<name>/<record_id>", ["GET", "PATCH", "DELETE", "POST"], self._api(records.row))
        self.add_route(
            f"{API}/sobjects/<name>/<field_name>/<path:value>",
            ["GET", "PATCH", "DELETE", "POST"],
            self._api(records.by_field),
        )
        self.add_route(f"{API}/query", ["GET"], self._api(records.query))
        self.add_route(f"{API}/query/<token>", ["GET"], self._api(records.query_more))
        self.add_route(f"{API}/queryAll", ["GET"], self._api(records.query, include_deleted=True))
        self.add_route(f"{API}/queryAll/<token>", ["GET"], self._api(records.query_more, include_deleted=True))
        self.add_route(f"{API}/composite", ["POST"], self._api(composite.composite))
        self.add_route(f"{API}/composite/sobjects", ["GET", "POST", "PATCH", "DELETE"], self._api(collections.sobjects))
        self.add_route(f"{API}/composite/sobjects/<name>", ["GET"], self._api(collections.typed))
        self.add_route(f"{API}/composite/sobjects/<name>/<field_name>", ["PATCH"], self._api(collections.upsert))
        self.add_route(f"{API}/tooling/query", ["GET"], self._api(tooling.query))
        self.add_route(f"{API}/tooling/sobjects/<name>", ["GET", "POST"], self._api(tooling.sobjects))
        self.add_route(f"{API}/tooling/sobjects/<name>/<record_id>", ["GET", "PATCH", "DELETE"], self._api(tooling.row))

    def add_route(self, rule: str, methods: Any, handler: Callable[..., Response]) -> None:
        raw = getattr(handler, "raw", None)
        for method in methods:
            if raw is not None:
                self._raw[f"{method} {rule}"] = raw
        super().add_route(rule, methods, handler)

    # ----- in-process helpers (tests call these directly) -----
    @property
    def clock(self) -> Callable[[], Any]:
        """Where the audit stamps come from (an aware ``datetime``, second precision); tests may replace it."""
        return self._store.clock

    @clock.setter
    def clock(self, value: Callable[[], Any]) -> None:
        self._store.clock = value

    @property
    def org_id(self) -> str:
        return self._users.org_id

    @property
    def integration_user_id(self) -> str:
        """The Run As user every token acts as: creator and default owner of the app's rows."""
        return self._users.integration

    @property
    def seller_user_id(self) -> str:
        """The human seller: creator and owner of rows inserted through the control API."""
        return self._users.seller

    def add_client(self, client_id: str, secret: str) -> None:
        self.sessions.add_client(client_id, secret)

    def revoke_tokens(self) -> int:
        """Invalidate every issued access token (the next API call gets 401 INVALID_SESSION_ID)."""
        return self.sessions.revoke_all()

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[Record]:
        """Every row of an object as the REST API would return it (``attributes`` + all fields)."""
        obj = self._sobject(sobject)
        with self._store.lock:
            rows = self._store.all_rows(obj, deleted=include_deleted)
            return [project_row(obj, row, self.latest_version) for row in sorted(rows, key=lambda r: r["Id"])]

    def column_values(self, sobject: str, field: str) -> set[Any]:
        """A field's distinct non-empty values on live rows, read without projecting or copying them: cheap
        enough to poll every few ms (the bench's arrival clock does)."""
        obj = self._sobject(sobject)
        with self._store.lock:
            return {v for row in self._store.all_rows(obj) if (v := row.get(field)) not in (None, "")}

    def get(self, sobject: str, record_id: str) -> Record | None:
        obj = self._sobject(sobject)
        with self._store.lock:
            row = self._store.find(obj, record_id)
            return project_row(obj, row, self.latest_version) if row is not None else None

    def insert(self, sobject: str, row: Record) -> str:
        """Create a row as the seller would (no faults, no counting); returns its 18-character id.

        Validated like an API write, except that audit and conversion fields (``CreatedDate``,
        ``LastModifiedDate``, ``IsConverted``, ``ConvertedOpportunityId``, …) may be given. Raises
        ``ValueError`` with the service's error code and message for anything the org would refuse."""
        obj = self._sobject(sobject)
        with self._store.lock:
            try:
                return str(self._records.writer.create(obj, row, user_id=self.seller_user_id, raw=True)["Id"])
            except SalesforceError as exc:
                raise ValueError(f"{exc.code}: {exc.message}") from exc

    def update(self, sobject: str, record_id: str, changes: Record) -> None:
        """Change a row as the seller would (stamps ``LastModifiedDate``/``SystemModstamp``)."""
        obj = self._sobject(sobject)
        with self._store.lock:
            row = self._store.find(obj, record_id)
            if row is None:
                raise KeyError(f"{sobject} {record_id} does not exist")
            try:
                self._records.writer.update(obj, row, changes, user_id=self.seller_user_id, raw=True)
            except SalesforceError as exc:
                raise ValueError(f"{exc.code}: {exc.message}") from exc

    def delete(self, sobject: str, record_id: str) -> None:
        obj = self._sobject(sobject)
        with self._store.lock:
            row = self._store.find(obj, record_id)
            if row is None:
                raise KeyError(f"{sobject} {record_id} does not exist")
            self._store.remove(obj, row)

    def clear(self) -> None:
        """Back to the org as it started: its schema (custom objects and fields created at run time are
        dropped, a provisioned org's are created again), full customizer rights, no rows but the seeded users
        (same ids) and, in a provisioned org, the integration user's permission set; no query locators."""
        with self._store.lock:
            rebuild = self.schema.version != self._pristine
            if rebuild:  # something was created at run time (otherwise the schema is as it started)
                self.schema.load(build_schema())
                self._store.adopt_schema()
            self._store.wipe()
            self._records.locators.clear()
            self.access.reset()
            if rebuild:
                self._tooling.reset()
                self._provision()
            self._seed()

    def install_connector(self, namespace: str = connector.NAMESPACE, *, grant: bool = True) -> list[str]:
        """Install Microsoft's co-sell connector package: its fields on Opportunity and Lead (``connector.py``),
        named ``<namespace>__<field>``; ``grant``: readable by the integration user (installed for all users).
        Returns the fields' names on each object; ``clear()`` takes them away again."""
        with self._store.lock:
            names: list[str] = []
            for sobject in connector.OBJECTS:
                obj = self.schema.objects[sobject]
                names = [
                    self._tooling.install_field(obj, local, md, namespace=namespace, user_id=self.seller_user_id)
                    for local, md in connector.fields()
                ]
            access.settle(self.schema)
            if grant:
                self._grant_connector(namespace, names)
            return names

    def _grant_connector(self, namespace: str, names: list[str]) -> None:
        writer, objects, admin = self._records.writer, self.schema.objects, self.seller_user_id
        body = connector.permission_set(namespace)
        permission_set = writer.create(objects[PERMISSION_SET], body, user_id=admin, raw=True)
        parent = {"ParentId": permission_set["Id"]}
        for sobject in connector.OBJECTS:
            for name in names:
                grant = {"SobjectType": sobject, "Field": f"{sobject}.{name}", "PermissionsRead": True,
                         "PermissionsEdit": True}  # fmt: skip
                writer.create(objects[FIELD_PERMISSIONS], {**parent, **grant}, user_id=admin, raw=True)
        assignment = {"AssigneeId": self.integration_user_id, "PermissionSetId": permission_set["Id"]}
        writer.create(objects[ASSIGNMENT], assignment, user_id=admin, raw=True)

    @property
    def customizer(self) -> bool:
        """Whether the API user has "Customize Application" / "Modify All Data" (and may manage permission sets)."""
        return self.access.customizer

    def set_customizer(self, allowed: bool) -> None:
        """``False``: Tooling writes answer 403 INSUFFICIENT_ACCESS and writes to PermissionSet, FieldPermissions,
        ObjectPermissions and PermissionSetAssignment 403 INSUFFICIENT_ACCESS_OR_READONLY; reads and data calls
        keep working."""
        with self._store.lock:
            self.access.customizer = bool(allowed)

    def visible_fields(self, sobject: str, user_id: str | None = None) -> list[str] | None:
        """The fields of ``sobject`` the user (default: the integration user) sees, or None if it cannot see
        the object at all: what its ``describe`` lists."""
        seen = self.access.view(user_id or self.integration_user_id).sobject(sobject)
        return None if seen is None else list(seen.fields)

    @property
    def api_requests_used(self) -> int:
        """Calls counted in the rolling window (the ``used`` of ``Sforce-Limit-Info``)."""
        with self._lock:
            start = self.usage_clock() - self.api_window_seconds
            while self._usage and self._usage[0][0] <= start:
                self._usage.popleft()
            return sum(calls for _, calls in self._usage)

    def set_api_usage(self, used: int, limit: int | None = None, window_seconds: float | None = None) -> None:
        """``used`` calls as made now (by this app or another integration); they leave the window as calls do."""
        with self._lock:
            self._usage.clear()
            if used:
                self._usage.append((self.usage_clock(), used))
            if limit is not None:
                self.api_request_limit = limit
            if window_seconds is not None:
                self.api_window_seconds = window_seconds

    # ----- control API -----
    def control(self, request: Request, action: str) -> Response:
        if action == "seed" and request.method == "POST":
            return self._control_seed(request)
        if action == "clear" and request.method == "POST":
            self.clear()
            return json_response({"ok": True})
        if action == "revoke-tokens" and request.method == "POST":
            return json_response({"revoked": self.revoke_tokens()})
        if action.startswith("records/") and request.method == "GET":
            name = action[len("records/") :]
            if self.schema.sobject(name) is None:
                return json_response({"error": f"unknown object {name!r}"}, 404)
            deleted = request.args.get("includeDeleted", "").lower() == "true"
            return json_response(self.records(name, include_deleted=deleted))
        if action == "clients" and request.method == "POST":
            body = request.get_json(force=True, silent=True) or {}
            client_id, secret = body.get("clientId"), body.get("secret")
            if not isinstance(client_id, str) or not isinstance(secret, str):
                return json_response({"error": "clientId and secret are required strings"}, 400)
            self.add_client(client_id, secret)
            return json_response({"clientId": client_id})
        if action == "api-usage":
            if request.method == "PUT":
                body = request.get_json(force=True, silent=True) or {}
                window = body.get("windowSeconds")
                self.set_api_usage(int(body.get("used", self.api_requests_used)), body.get("limit"), window)
            return json_response(
                {
                    "used": self.api_requests_used,
                    "limit": self.api_request_limit,
                    "windowSeconds": self.api_window_seconds,
                }
            )
        if action == "connector" and request.method == "POST":
            body = request.get_json(force=True, silent=True) or {}
            namespace = body.get("namespace", connector.NAMESPACE) if isinstance(body, dict) else None
            if not isinstance(namespace, str):
                return json_response({"error": 'body must be {"namespace": "<prefix>", "grant": true}'}, 400)
            try:
                names = self.install_connector(namespace, grant=bool(body.get("grant", True)))
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response({"fields": names})
        if action == "users" and request.method == "GET":
            return json_response({"integration": self.integration_user_id, "seller": self.seller_user_id})
        if action == "customizer":
            if request.method == "POST":
                body = request.get_json(force=True, silent=True)
                if not isinstance(body, dict) or not isinstance(body.get("customizer"), bool):
                    return json_response({"error": 'body must be {"customizer": true|false}'}, 400)
                self.set_customizer(body["customizer"])
            return json_response({"customizer": self.customizer})
        if action.startswith("visible-fields/") and request.method == "GET":
            fields = self.visible_fields(action[len("visible-fields/") :])
            return json_response({"visible": fields is not None, "fields": fields or []})
        return super().control(request, action)

    def _control_seed(self, request: Request) -> Response:
        """``{"Account": [{...}], "Opportunity": [...]}`` -> ``{"Account": ["001…"], …}``, all or nothing.

        A value ``"@Account:0"`` in a reference field refers to the first Account of this same request."""
        created: dict[str, list[str]] = {}
        try:
            body = seed_body(request, "{Object: [records]}")
            with all_or_nothing(self._store):
                for name, rows in body.items():
                    obj = self._sobject(name)
                    for row in rows:
                        if not isinstance(row, dict):
                            raise ValueError(f"records of {name!r} must be objects")
                        resolved = {k: _backref(v, created) for k, v in row.items()}
                        new = self._records.writer.create(obj, resolved, user_id=self.seller_user_id, raw=True)
                        created.setdefault(obj.name, []).append(new["Id"])
        except (SalesforceError, ValueError) as exc:
            message = f"{exc.code}: {exc.message}" if isinstance(exc, SalesforceError) else str(exc)
            return json_response({"error": message}, 400)
        return json_response(created)

    # ----- HTTP plumbing -----
    def _token(self, request: Request) -> Response:
        return self.sessions.token_endpoint(request, self.integration_user_id)

    def _versions(self, request: Request) -> Response:
        # GET /services/data/ needs no session and carries no Sforce-Limit-Info (headers_api_usage.htm).
        return sf_response(versions(self.latest_version))

    def _limits(self, request: Request, call: Call) -> Response:
        used, limit = self.api_requests_used, self.api_request_limit
        return sf_response({"DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)}})

    def _api(self, handler: Callable[..., Response], **bound: Any) -> Callable[..., Response]:
        """Version check, session check, the daily allocation, SalesforceError -> error array, and the
        ``Sforce-Limit-Info`` header on every answer."""

        def run(request: Request, version: str, **kwargs: Any) -> Response:
            try:
                parsed = check_version(version)
                session = self.sessions.check(request)
                with self._lock:
                    if self.api_requests_used >= self.api_request_limit:
                        raise errors.request_limit_exceeded()
                    self._usage.append((self.usage_clock(), 1))
                call = Call(parsed, session.user_id, self.access.view(session.user_id))
                response = handler(request, call, **kwargs, **bound)
            except SalesforceError as exc:
                response = error_response(exc)
            response.headers.update(self._limit_header())
            return response

        run.raw = (handler, bound)  # type: ignore[attr-defined]
        return run

    def _limit_header(self) -> dict[str, str]:
        with self._lock:
            return sforce_limit_info(self.api_requests_used, self.api_request_limit)

    def error_response(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        """The REST error array for the base class's routing errors and injected faults."""
        if code in ("NotFound", "MethodNotAllowed", "BadRequest") or code.startswith("Injected"):
            code, message = _STATUS_ERRORS.get(status, ("UNKNOWN_EXCEPTION", message))
        return json_response([{"message": message, "errorCode": code}], status, headers)

    def fault_response(self, status: int) -> Response:
        response = super().fault_response(status)
        if status == 403:
            response.headers.pop("Retry-After", None)  # none documented for REQUEST_LIMIT_EXCEEDED
        response.headers.update(self._limit_header())
        return response

    def _sobject(self, name: str) -> SObject:
        obj = self.schema.sobject(name)
        if obj is None:
            raise ValueError(f"unknown object {name!r}")
        return obj

    def _provision(self) -> None:
        """A provisioned org: cosell.py's custom object and fields, created as the admin (the seller) would."""
        if self._kind == "provisioned":
            for body in cosell.OBJECTS:
                self._tooling.create_object(body, user_id=self.seller_user_id)
            for body in cosell.FIELDS:
                self._tooling.create_field(body, user_id=self.seller_user_id)
        self._pristine = self.schema.version  # the schema as the org starts; clear() rebuilds it if it changed

    def _seed(self) -> None:
        seeding.seed(self._store, self._records.writer, self._users)
        if self._kind == "provisioned":
            self._grant_integration_user()

    def _grant_integration_user(self) -> None:
        """What an admin does after creating the fields: a permission set with access to them, assigned."""
        writer, objects, admin = self._records.writer, self.schema.objects, self.seller_user_id
        permission_set = writer.create(objects[PERMISSION_SET], dict(cosell.PERMISSION_SET), user_id=admin, raw=True)
        parent = {"ParentId": permission_set["Id"]}
        for body in cosell.field_permissions(self.schema):
            writer.create(objects[FIELD_PERMISSIONS], {**parent, **body}, user_id=admin, raw=True)
        for body in cosell.object_permissions():
            writer.create(objects[OBJECT_PERMISSIONS], {**parent, **body}, user_id=admin, raw=True)
        assignment = {"AssigneeId": self.integration_user_id, "PermissionSetId": permission_set["Id"]}
        writer.create(objects[ASSIGNMENT], assignment, user_id=admin, raw=True)


def _backref(value: Any, created: dict[str, list[str]]) -> Any:
    if isinstance(value, str) and value.startswith("@") and ":" in value:
        name, _, index = value[1:].partition(":")
        if index.isdigit() and name in created and int(index) < len(created[name]):
            return created[name][int(index)]
    return value

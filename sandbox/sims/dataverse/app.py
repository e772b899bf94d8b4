"""The simulator itself: routes, bearer-token check, the error body, the control API and in-process helpers."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from sandbox.sims.base import (
    _RECORDED_HEADERS,
    RecordedRequest,
    Simulator,
    _body_of,
    all_or_nothing,
    json_response,
    seed_body,
)
from sandbox.sims.dataverse import connector
from sandbox.sims.dataverse import seed as seeding
from sandbox.sims.dataverse.batch import BatchApi
from sandbox.sims.dataverse.customize import Customizer
from sandbox.sims.dataverse.errors import (
    CODE_PAYLOAD,
    CODE_QUERY,
    CODE_THROTTLED,
    CODE_UNAUTHORIZED,
    CODE_UNEXPECTED,
    DataverseError,
    bad_request,
)
from sandbox.sims.dataverse.metadata import MetadataApi
from sandbox.sims.dataverse.protection import Limits, ServiceProtection
from sandbox.sims.dataverse.reads import ExpandCache
from sandbox.sims.dataverse.records import RecordsApi
from sandbox.sims.dataverse.schema import Entity, SchemaKind, Table, build_schema, build_tables
from sandbox.sims.dataverse.store import Store
from sandbox.sims.dataverse.wire import API, Record, odata_response


class DataverseSimulator(Simulator):
    """In-memory Dataverse org behind ``/api/data/v9.2/``; all data access happens under one lock."""

    name = "dataverse"

    def __init__(
        self,
        *,
        seed: int = 0,
        token_validator: Callable[[str], bool] | None = None,
        schema: SchemaKind = "provisioned",
        expand_cache_seconds: float = 60,
        key_index_seconds: float = 1.0,
        limits: Limits | None = None,
    ) -> None:
        """``schema``: ``"provisioned"`` (the default, what ``make run`` and the tests use) has the sync's
        ``cosell_*`` columns, alternate key, ``cosell_solution`` table, publisher and solution;
        ``"bare"`` is a fresh org, which an app can provision through the metadata create endpoints.

        ``expand_cache_seconds``: how long a collection-valued ``$expand`` asked for without
        ``If-None-Match: null`` is served from its first answer (0 turns the cache off).

        ``key_index_seconds``: how long an alternate key created at run time stays ``Pending`` before
        its index is built (``POST /_sim/key-index`` changes it or finishes the builds at once).

        ``limits``: the service protection API limits (``protection.py``); default the documented ones."""
        super().__init__(seed=seed)
        self.protection = ServiceProtection(
            lambda code, message, headers: self.error_response(429, code, message, headers), limits
        )
        self.admission = self.protection
        self._token_validator = token_validator
        self._kind: SchemaKind = schema
        self.schema = build_schema(schema)
        self._store = Store(self.schema, seed=seed)
        self._records = RecordsApi(self._store, expand_cache_seconds=expand_cache_seconds)
        self._customizer = Customizer(self._store, index_seconds=key_index_seconds, on_new_table=self._route_table)
        self._routed: set[str] = set()
        self._seed()
        for ent in list(self.schema.by_set.values()):
            self._route_table(ent.table)
        metadata = MetadataApi(self.schema, self._customizer)
        customizer = self._customizer
        self.add_route(f"{API}/EntityDefinitions", ["GET"], self._api(metadata.entity_definitions))
        self.add_route(f"{API}/EntityDefinitions", ["POST"], self._api(customizer.create_entity))
        self.add_route(f"{API}/EntityDefinitions<path:rest>", ["GET"], self._api(metadata.entity_definitions))
        self.add_route(f"{API}/EntityDefinitions<path:rest>", ["POST"], self._api(customizer.create_in_entity))
        self.add_route(f"{API}/RelationshipDefinitions", ["GET"], self._api(metadata.relationship_definitions))
        self.add_route(f"{API}/RelationshipDefinitions", ["POST"], self._api(customizer.create_relationship))
        self.add_route(
            f"{API}/RelationshipDefinitions<path:rest>", ["GET"], self._api(metadata.relationship_definitions)
        )
        self.add_route(
            f"{API}/RelationshipDefinitions/<path:cast>",
            ["GET"],
            self._api(lambda request, cast: metadata.relationship_definitions(request, "/" + cast)),
        )
        self.add_route(f"{API}/GlobalOptionSetDefinitions", ["GET"], self._api(metadata.global_option_sets))
        self.add_route(f"{API}/GlobalOptionSetDefinitions", ["POST"], self._api(customizer.create_option_set))
        self.add_route(f"{API}/GlobalOptionSetDefinitions<path:rest>", ["GET"], self._api(metadata.global_option_sets))
        self.add_route(f"{API}/PublishXml", ["POST"], self._api(customizer.publish, "PublishXml"))
        self.add_route(f"{API}/PublishAllXml", ["POST"], self._api(customizer.publish, "PublishAllXml"))
        records = self._records
        self.add_route(f"{API}/WinOpportunity", ["POST"], self._api(records.close_opportunity, "win"))
        self.add_route(f"{API}/LoseOpportunity", ["POST"], self._api(records.close_opportunity, "lose"))
        self.add_route(f"{API}/WhoAmI", ["GET"], self._api(records.who_am_i))
        self._batch = BatchApi(self._store, self._dispatch_inner)
        self.add_route(f"{API}/$batch", ["POST"], self._api(self._batch.handle))

    # ----- in-process helpers (tests call these directly) -----
    @property
    def clock(self) -> Callable[[], str]:
        """Where ``createdon``/``modifiedon`` come from (UTC, second precision); tests may replace it."""
        return self._store.clock

    @clock.setter
    def clock(self, value: Callable[[], str]) -> None:
        self._store.clock = value

    def records(self, entity_set: str) -> list[Record]:
        """Deep copies of every stored row, with ``_x_value`` columns and their lookup annotations."""
        ent = self._entity(entity_set)
        with self._store.lock:
            return [copy.deepcopy(r) for r in self._store.rows[ent.logical].values()]

    def column_values(self, entity_set: str, column: str) -> set[Any]:
        """A column's distinct non-empty values, read without copying rows: cheap enough to poll every few ms
        (the bench's arrival clock does, and a deep copy of every row held the lock the requests need)."""
        ent = self._entity(entity_set)
        with self._store.lock:
            return {v for row in self._store.rows[ent.logical].values() if (v := row.get(column)) not in (None, "")}

    def get(self, entity_set: str, record_id: str) -> Record | None:
        ent = self._entity(entity_set)
        with self._store.lock:
            row = self._store.rows[ent.logical].get(record_id.lower())
            return copy.deepcopy(row) if row is not None else None

    def insert(self, entity_set: str, record: Record) -> str:
        """Store a row directly (no faults, no counting, no opportunity-close rule); returns its id.

        Accepts writable columns, the primary key, ``<nav>@odata.bind``, raw ``_x_value`` ids,
        ``statecode``/``statuscode`` (any valid pair) and ``createdon``/``modifiedon``.
        Raises ``ValueError`` on anything the service would reject.
        """
        ent = self._entity(entity_set)
        with self._store.lock:
            try:
                return self._records.writer.insert_raw(ent, record)
            except DataverseError as exc:
                raise ValueError(exc.message) from exc

    def clear(self) -> None:
        """Back to the org as it started: its schema (what was created at run time is dropped), full
        customizer rights, no rows but the seeded currencies, user, publishers and solutions (same ids),
        no service protection usage."""
        with self._store.lock:
            self.schema.load(build_tables(self._kind))
            self._customizer.reset()
            self._store.adopt_schema()
            self._store.wipe()
            self._records.expand_cache.clear()
            self._seed()
        self.protection.reset()  # no usage in the window (the limits stay as configured)

    def install_connector(self) -> None:
        """Install Microsoft's co-sell connector solution: its ``msft_`` columns on opportunity and lead
        (``connector.py``), its publisher and solution. ``clear()`` takes them away again."""
        with self._store.lock:
            if "msft_microsoftpartnercenterreferralidentifier" in self.schema.entity("opportunity").columns:
                return
            self.schema.load(connector.CONNECTOR.apply(self.schema.tables))
            self._store.adopt_schema()
            seeding.seed_publisher(self._store, self._records.writer, connector.PUBLISHER, connector.SOLUTION_RECORD)

    @property
    def customizations(self) -> Customizer:
        """Run-time schema state: privileges (``set_privileges``), key index builds (``index_seconds``,
        ``clock``, ``complete_key_indexes``), global choices."""
        return self._customizer

    def set_privileges(self, *, customizer: bool | None = None, missing: list[str] | None = None) -> None:
        """``customizer=False``: every metadata write answers the 403 a caller without the System Customizer
        privileges gets; ``missing``: only those privileges (``prvCreateEntityKey`` …) are lacking."""
        with self._store.lock:
            self._customizer.set_privileges(customizer=customizer, missing=missing)

    def complete_key_indexes(self) -> None:
        """Finish every pending alternate-key index build now (Active, or Failed on duplicate values)."""
        with self._store.lock:
            self._customizer.complete_key_indexes()

    def currency_id(self, iso_code: str) -> str:
        """Id of a seeded ``transactioncurrency`` by ISO code (stable for the simulator's lifetime)."""
        return self._store.currency_ids[iso_code.upper()]

    @property
    def expand_cache(self) -> ExpandCache:
        """The collection-valued ``$expand`` cache (tests step its ``clock``)."""
        return self._records.expand_cache

    @property
    def user_id(self) -> str:
        """The seeded user ("Sandbox Seller"): WhoAmI's ``UserId`` and the default owner of new rows."""
        return self._store.user_id

    # ----- control API -----
    def control(self, request: Request, action: str) -> Response:
        if action == "seed" and request.method == "POST":
            return self._control_seed(request)
        if action == "clear" and request.method == "POST":
            self.clear()
            return json_response({"ok": True})
        if action == "privileges":
            return self._control_privileges(request)
        if action == "key-index":
            return self._control_key_index(request)
        if action == "service-protection":
            return self._control_protection(request)
        if action == "connector" and request.method == "POST":
            self.install_connector()
            return json_response({"installed": True})
        if action.startswith("records/") and request.method == "GET":
            set_name = action[len("records/") :]
            if set_name not in self.schema.by_set:
                return json_response({"error": f"unknown entity set {set_name!r}"}, 404)
            return json_response(self.records(set_name))
        return super().control(request, action)

    def _control_protection(self, request: Request) -> Response:
        """``GET``/``PUT /_sim/service-protection``: ``{"requests": 300, "window_seconds": 10, "execution_seconds":
        1200, "concurrent": 52}`` changes the limits (any subset), ``{"used_by_others": 250}`` spends that many
        requests of the window now, ``{"reset": true}`` forgets the usage; answers limits and usage."""
        if request.method in ("PUT", "POST"):
            body = request.get_json(force=True, silent=True)
            numbers = {"requests", "window_seconds", "execution_seconds", "concurrent", "used_by_others"}
            if (
                not isinstance(body, dict)
                or set(body) - numbers - {"reset"}
                or not all(_is_number(body[k]) for k in numbers & set(body))
            ):
                return json_response({"error": f"body must be an object of numbers among {sorted(numbers)}"}, 400)
            changes = {k: v for k, v in body.items() if k in numbers - {"used_by_others"}}
            try:
                self.protection.configure(**changes)
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
            if body.get("reset"):
                self.protection.reset()
            if body.get("used_by_others"):
                self.protection.spend(int(body["used_by_others"]))
        return json_response(self.protection.snapshot())

    def _control_privileges(self, request: Request) -> Response:
        """``GET``/``POST /_sim/privileges``: ``{"customizer": false}`` takes the System Customizer rights
        away (metadata writes answer 403), ``{"missing": ["prvCreateEntityKey"]}`` only some privileges."""
        if request.method == "POST":
            body = request.get_json(force=True, silent=True)
            if not isinstance(body, dict) or set(body) - {"customizer", "missing"}:
                return json_response({"error": 'body must be {"customizer": bool, "missing": [privilege]}'}, 400)
            customizer, missing = body.get("customizer"), body.get("missing")
            if (customizer is not None and not isinstance(customizer, bool)) or (
                missing is not None and not isinstance(missing, list)
            ):
                return json_response({"error": 'body must be {"customizer": bool, "missing": [privilege]}'}, 400)
            try:
                self.set_privileges(customizer=customizer, missing=missing)
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
        with self._store.lock:
            return json_response(self._customizer.privileges())

    def _control_key_index(self, request: Request) -> Response:
        """``GET``/``POST /_sim/key-index``: ``{"seconds": 0.5}`` sets how long new keys stay Pending,
        ``{"complete": true}`` finishes the pending builds now; answers the builds still listed."""
        with self._store.lock:
            if request.method == "POST":
                body = request.get_json(force=True, silent=True)
                seconds = body.get("seconds") if isinstance(body, dict) else None
                if (
                    not isinstance(body, dict)
                    or set(body) - {"seconds", "complete"}
                    or (seconds is not None and (not isinstance(seconds, (int, float)) or seconds < 0))
                ):
                    return json_response({"error": 'body must be {"seconds": number >= 0, "complete": bool}'}, 400)
                if seconds is not None:
                    self._customizer.index_seconds = float(seconds)
                if body.get("complete"):
                    self._customizer.complete_key_indexes()
            self._customizer.refresh()
            return json_response({"seconds": self._customizer.index_seconds, "keys": self._customizer.key_jobs()})

    def _control_seed(self, request: Request) -> Response:
        try:
            body = seed_body(request, "{set: [records]}")
        except ValueError as exc:
            return json_response({"error": {"code": CODE_PAYLOAD, "message": str(exc)}}, 400)
        result: dict[str, list[str]] = {}
        try:
            with all_or_nothing(self._store):
                for set_name, rows in body.items():
                    if set_name not in self.schema.by_set:
                        raise bad_request(f"unknown entity set {set_name!r}")
                    if not all(isinstance(row, dict) for row in rows):
                        raise bad_request(f"records of {set_name!r} must be objects")
                    result[set_name] = [
                        self._records.writer.insert_raw(self.schema.by_set[set_name], row) for row in rows
                    ]
        except DataverseError as exc:
            return json_response({"error": {"code": exc.code, "message": exc.message}}, 400)
        return json_response(result)

    # ----- error shape -----
    def error_response(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        """Dataverse's body for every error, including the base class's injected faults and 404/405."""
        if code == "NotFound" and message.startswith("No route for "):
            # The service names the first path segment it cannot resolve (an entity set it does not have).
            path = message.split(" ", 4)[-1]
            segment = path[len(API) + 1 :] if path.startswith(API + "/") else path.lstrip("/")
            message = f"Resource not found for the segment '{re.split(r'[(/]', segment, maxsplit=1)[0]}'."
        if not code.startswith("0x"):
            if status == 429:
                code = CODE_THROTTLED
                message = "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
            elif status in (404, 405):
                code = CODE_QUERY
            elif status == 400:
                code = CODE_PAYLOAD
            else:
                code = CODE_UNEXPECTED
        return odata_response({"error": {"code": code, "message": message}}, status, headers)

    # ----- plumbing -----
    def _api(self, handler: Callable[..., Response], *bound: Any) -> Callable[..., Response]:
        """Wrap a handler with the bearer-token check, the due key index builds and the DataverseError ->
        error body mapping. Every API request runs whole under the store lock, so a schema change (a
        metadata create, a key index coming up) is never seen half done by a concurrent request."""

        def run(request: Request, **kwargs: Any) -> Response:
            try:
                self._authorize(request)
                with self._store.lock:
                    self._customizer.refresh()
                    return handler(request, *bound, **kwargs)
            except DataverseError as exc:
                return self.error_response(exc.status, exc.code, exc.message, exc.headers)

        return run

    def _route_table(self, table: Table) -> None:
        """Routes for a table's entity set (at start, and when ``POST EntityDefinitions`` creates one).

        A route outlives its table when ``clear()`` drops run-time tables; it then answers the 404 of an
        unknown segment, as if it had never been added."""
        set_name = table.set_name
        if table.abstract or set_name in self._routed:
            return
        self._routed.add(set_name)
        records = self._records

        def existing(handler: Callable[..., Response]) -> Callable[..., Response]:
            def run(request: Request, *args: Any, **kwargs: Any) -> Response:
                if set_name not in self.schema.by_set:
                    raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{set_name}'.")
                return handler(request, *args, **kwargs)

            return run

        self.add_route(f"{API}/{set_name}", ["GET", "POST"], self._api(existing(records.collection), set_name))
        self.add_route(
            f"{API}/{set_name}(<path:key>)", ["GET", "PATCH", "DELETE"], self._api(existing(records.item), set_name)
        )
        self.add_route(f"{API}/{set_name}(<path:key>)/<nav>", ["GET"], self._api(existing(records.related), set_name))

    def _dispatch_inner(self, request: Request) -> tuple[str, Response]:
        """One request of a ``$batch`` through the same routes and handlers as a request sent alone.

        It is logged (route ``$batch <route>``) so tests see what a batch wrote, but not counted in
        ``stats`` nor faulted on its own: for service protection the batch is one request (batch.py)."""
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return "", self.error_response(404, "NotFound", f"No route for {request.method} {request.path}")
        except MethodNotAllowed:
            return "", self.error_response(405, "MethodNotAllowed", f"{request.method} not allowed on {request.path}")
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            route=f"$batch {endpoint}",
            headers={k: v for k, v in request.headers.items() if k.lower() in _RECORDED_HEADERS},
            body=_body_of(request),
        )
        with self._lock:
            self.requests.append(record)
        response = self._handlers[str(endpoint)](request, **args)
        record.status = response.status_code
        return str(endpoint), response

    @property
    def batch_operations(self) -> int:
        """Requests run inside ``$batch`` requests so far: what entitlement limits count, unlike ``stats``."""
        return self._batch.operations

    def stats_snapshot(self) -> dict[str, Any]:
        """The base counters (a ``$batch`` is one request) plus ``batch_operations``."""
        return {**super().stats_snapshot(), "batch_operations": self._batch.operations}

    def reset_stats(self) -> None:
        super().reset_stats()
        self._batch.operations = 0

    def _authorize(self, request: Request) -> None:
        if self._token_validator is None:
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or not self._token_validator(token):
            raise DataverseError(
                401,
                CODE_UNAUTHORIZED,
                "The user is not authenticated: a valid bearer token is required.",
                {
                    "WWW-Authenticate": "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize"
                },
            )

    def _entity(self, entity_set: str) -> Entity:
        try:
            return self.schema.by_set[entity_set]
        except KeyError:
            raise ValueError(f"unknown entity set {entity_set!r}") from None

    def _seed(self) -> None:
        seeding.seed(self._store, self._records.writer, provisioned=self._kind == "provisioned")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

"""Dataverse (Dynamics 365) Web API simulator, speaking the real wire format over real HTTP.

It follows ``crm-apis.md`` part A so the app's real adapter can be tested without an org:
OData queries with server-driven paging, ``@odata.bind`` lookups stored as ``_<nav>_value``,
single-valued and collection-valued ``$expand``, create / update / upsert with ``If-Match`` /
``If-None-Match``, alternate keys on ``cosell_referralid``, the ``WinOpportunity`` /
``LoseOpportunity`` actions and Dataverse's ``{"error": {"code": "0x…", "message": "…"}}`` error
body (also for injected faults).

Users and owners: ``systemusers`` holds one seeded user ("Sandbox Seller", whose id is the WhoAmI
``UserId``, :attr:`DataverseSimulator.user_id`); every account, contact, opportunity and lead is
created owned by that user unless ``ownerid@odata.bind`` names another one.

``createdon`` / ``modifiedon`` have second precision (``2026-11-21T10:00:00Z``) and never go
backwards; every write to a row (PATCH, upsert, the close actions) bumps its ``modifiedon`` and
``versionnumber``. Writes to child rows (``cosell_solution``) do not touch the parent opportunity,
as in Dataverse, so a ``modifiedon`` watermark on opportunities does not see solution changes.

The service's stricter rules are enforced on purpose (unknown properties, case-sensitive
navigation properties, DateOnly format, state/status pairs, no closing an opportunity by PATCH),
because a simulator that accepts what the real service rejects hides bugs until production.

Control API additions (besides the base class's): ``POST /_sim/seed``, ``GET /_sim/records/<set>``,
``POST /_sim/clear``.
"""

from __future__ import annotations

import base64
import bisect
import copy
import dataclasses
import datetime as dt
import json
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote, unquote_plus

from odata_query import ast
from odata_query.grammar import ODataLexer, ODataParser
from werkzeug.wrappers import Request, Response

from sandbox.sims.base import Simulator, json_response
from sandbox.sims.odata import FilterError, compile_filter, sort_records

API = "/api/data/v9.2"
MAX_PAGE_SIZE = 5000

Record = dict[str, Any]

# Error codes seen on the real service (the 401 one is our choice: the real 401 has an empty body).
CODE_QUERY = "0x80060888"  # OData URI / query problems, unknown resource segment
CODE_PAYLOAD = "0x80048d19"  # body does not deserialise (unknown property, bad literal)
CODE_NOT_FOUND = "0x80040217"
CODE_DUPLICATE_KEY = "0x80060892"
CODE_VERSION_MISMATCH = "0x80060882"
CODE_DUPLICATE_ID = "0x80040237"
CODE_VALIDATION = "0x80044331"
CODE_INVALID_STATUS = "0x8004431a"
CODE_INVALID_ARGUMENT = "0x80040203"
CODE_THROTTLED = "0x80072322"
CODE_UNEXPECTED = "0x80040216"
CODE_UNAUTHORIZED = "0x80072560"

_EDM_TYPES = {
    "string": "Edm.String",
    "int": "Edm.Int32",
    "bool": "Edm.Boolean",
    "money": "Edm.Decimal",
    "date": "Edm.Date",
    "datetime": "Edm.DateTimeOffset",
}
_SYSTEM_COLUMNS = ("createdon", "modifiedon", "versionnumber")
_LOOKUP_TARGET = "Microsoft.Dynamics.CRM.lookuplogicalname"
_LOOKUP_NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"
_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REF_RE = re.compile(r"^(?:[a-z]+://[^/]+)?(?:/?api/data/v9\.\d+)?/?(?P<set>[A-Za-z_][A-Za-z0-9_]*)\((?P<key>.*)\)$")
_FILTER_FUNCTIONS = frozenset({"contains", "startswith", "endswith", "tolower", "toupper"})
_QUERY_OPTIONS = frozenset({"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$skiptoken"})


# ----------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class Column:
    kind: str  # string | int | bool | money | date | datetime
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None


@dataclass(frozen=True)
class Lookup:
    target: str  # entity set of the referenced table
    column: str  # stored/read column, e.g. ``_customerid_value``


@dataclass(frozen=True)
class Collection:
    """A one-to-many (collection-valued) navigation property: rows of ``target`` whose ``column`` is us."""

    target: str  # entity set of the referencing table
    column: str  # its lookup column pointing back, e.g. ``_cosell_opportunityid_value``


@dataclass(frozen=True)
class EntityDef:
    set_name: str
    logical: str
    pk: str
    columns: dict[str, Column]
    lookups: dict[str, Lookup] = field(default_factory=dict)
    alt_key: str | None = None
    collections: dict[str, Collection] = field(default_factory=dict)
    computed: tuple[str, ...] = ()  # read-only columns derived on write (fullname)
    states: dict[int, frozenset[int]] | None = None  # statecode -> valid statuscodes
    default_status: dict[int, int] = field(default_factory=dict)
    state_names: dict[int, str] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.logical}"

    @cached_property
    def lookup_columns(self) -> frozenset[str]:
        return frozenset(lk.column for lk in self.lookups.values())

    @cached_property
    def readable_set(self) -> frozenset[str]:
        return frozenset(self.readable)

    @cached_property
    def readable(self) -> tuple[str, ...]:
        """Every column a GET returns without ``$select`` (Dataverse returns unset ones as null)."""
        names = [self.pk, *self.columns, *self.computed]
        for lk in self.lookups.values():
            if lk.column not in names:
                names.append(lk.column)
        names.extend(_SYSTEM_COLUMNS)
        return tuple(names)


def _s(max_length: int | None = None) -> Column:
    return Column("string", max_length)


_INT = Column("int")
_BOOL = Column("bool")
_MONEY = Column("money")
_DATE = Column("date")
_STATE = Column("int")

_ADDRESS: dict[str, Column] = {
    "address1_line1": _s(250),
    "address1_line2": _s(250),
    "address1_city": _s(80),
    "address1_stateorprovince": _s(50),
    "address1_postalcode": _s(20),
    "address1_country": _s(80),
}
# cosell_audit's 4000 matches the app's default AUDIT_MAX_CHARS and the SDK's usual Memo size.
_COSELL: dict[str, Column] = {
    "cosell_syncwithpartnercenter": _BOOL,
    "cosell_referralid": _s(100),
    "cosell_referrallink": _s(),
    "cosell_helpneeded": _INT,
    "cosell_visible": _BOOL,
    "cosell_microsoftcrmid": _s(),
    "cosell_referralprogram": _s(),
    "cosell_audit": _s(4000),
}
_ACTIVE_INACTIVE = {0: frozenset({1}), 1: frozenset({2})}
# User-owned tables: ownerid is polymorphic (systemuser or team) on the service; the simulator has users only.
_OWNER = {"ownerid": Lookup("systemusers", "_ownerid_value")}

ENTITIES: dict[str, EntityDef] = {
    e.set_name: e
    for e in (
        EntityDef(
            "accounts",
            "account",
            "accountid",
            {
                "name": _s(160),
                "accountnumber": _s(20),
                **_ADDRESS,
                "telephone1": _s(50),
                "websiteurl": _s(200),
                "description": _s(2000),
                "statecode": _STATE,
                "statuscode": _STATE,
            },
            {
                "primarycontactid": Lookup("contacts", "_primarycontactid_value"),
                "transactioncurrencyid": Lookup("transactioncurrencies", "_transactioncurrencyid_value"),
                **_OWNER,
            },
            states=_ACTIVE_INACTIVE,
            default_status={0: 1, 1: 2},
            state_names={0: "Active", 1: "Inactive"},
        ),
        EntityDef(
            "contacts",
            "contact",
            "contactid",
            {
                "firstname": _s(50),
                "lastname": _s(50),
                "emailaddress1": _s(100),
                "telephone1": _s(50),
                "jobtitle": _s(100),
                **_ADDRESS,
                "statecode": _STATE,
                "statuscode": _STATE,
            },
            {"parentcustomerid_account": Lookup("accounts", "_parentcustomerid_value"), **_OWNER},
            computed=("fullname",),
            states=_ACTIVE_INACTIVE,
            default_status={0: 1, 1: 2},
            state_names={0: "Active", 1: "Inactive"},
        ),
        EntityDef(
            "opportunities",
            "opportunity",
            "opportunityid",
            {
                "name": _s(300),
                "description": _s(2000),
                "estimatedvalue": _MONEY,
                "estimatedclosedate": _DATE,
                "actualvalue": _MONEY,
                "actualclosedate": _DATE,
                "closeprobability": Column("int", min_value=0, max_value=100),
                "isrevenuesystemcalculated": _BOOL,
                "statecode": _STATE,
                "statuscode": _STATE,
                "salesstage": _INT,
                "stepname": _s(200),
                **_COSELL,
            },
            {
                "customerid_account": Lookup("accounts", "_customerid_value"),
                "customerid_contact": Lookup("contacts", "_customerid_value"),
                "parentaccountid": Lookup("accounts", "_parentaccountid_value"),
                "parentcontactid": Lookup("contacts", "_parentcontactid_value"),
                "transactioncurrencyid": Lookup("transactioncurrencies", "_transactioncurrencyid_value"),
                "originatingleadid": Lookup("leads", "_originatingleadid_value"),
                **_OWNER,
            },
            alt_key="cosell_referralid",
            collections={
                "cosell_opportunity_cosell_solutions": Collection("cosell_solutions", "_cosell_opportunityid_value")
            },
            states={0: frozenset({1, 2}), 1: frozenset({3}), 2: frozenset({4, 5})},
            default_status={0: 1, 1: 3, 2: 4},
            state_names={0: "OpportunityState.Open", 1: "OpportunityState.Won", 2: "OpportunityState.Lost"},
        ),
        EntityDef(
            "leads",
            "lead",
            "leadid",
            {
                "subject": _s(300),
                "firstname": _s(50),
                "lastname": _s(50),
                "companyname": _s(100),
                "emailaddress1": _s(100),
                "telephone1": _s(50),
                "jobtitle": _s(100),
                "websiteurl": _s(200),
                **_ADDRESS,
                "description": _s(2000),
                "estimatedamount": _MONEY,
                "estimatedclosedate": _DATE,
                "statecode": _STATE,
                "statuscode": _STATE,
                **_COSELL,
            },
            {
                "parentaccountid": Lookup("accounts", "_parentaccountid_value"),
                "parentcontactid": Lookup("contacts", "_parentcontactid_value"),
                "transactioncurrencyid": Lookup("transactioncurrencies", "_transactioncurrencyid_value"),
                **_OWNER,
            },
            alt_key="cosell_referralid",
            computed=("fullname",),
            states={0: frozenset({1, 2}), 1: frozenset({3}), 2: frozenset({4, 5, 6, 7})},
            default_status={0: 1, 1: 3, 2: 4},
            state_names={0: "LeadState.Open", 1: "LeadState.Qualified", 2: "LeadState.Disqualified"},
        ),
        EntityDef(
            "transactioncurrencies",
            "transactioncurrency",
            "transactioncurrencyid",
            {"isocurrencycode": _s(5), "currencyname": _s(100), "currencysymbol": _s(10)},
        ),
        EntityDef(
            "systemusers",
            "systemuser",
            "systemuserid",
            {
                "firstname": _s(256),
                "lastname": _s(256),
                "internalemailaddress": _s(100),
                "domainname": _s(1024),
            },
            computed=("fullname",),
        ),
        EntityDef(
            "cosell_solutions",
            "cosell_solution",
            "cosell_solutionid",
            {
                "cosell_name": _s(),
                "cosell_solutionidentifier": _s(),
                "cosell_solutiontype": _s(),
                "cosell_publishername": _s(),
            },
            {"cosell_opportunityid": Lookup("opportunities", "_cosell_opportunityid_value")},
        ),
        EntityDef(
            "opportunitycloses",
            "opportunityclose",
            "activityid",
            {
                "subject": _s(200),
                "description": _s(2000),
                "actualrevenue": _MONEY,
                "actualend": Column("datetime"),
                "statecode": _STATE,
                "statuscode": _STATE,
            },
            {"opportunityid": Lookup("opportunities", "_opportunityid_value")},
        ),
    )
}

SEED_CURRENCIES: tuple[tuple[str, str, str], ...] = (
    ("USD", "US Dollar", "$"),
    ("EUR", "Euro", "€"),
    ("GBP", "Pound Sterling", "£"),
    ("JPY", "Yen", "¥"),
    ("CAD", "Canadian Dollar", "CA$"),
    ("AUD", "Australian Dollar", "A$"),
    ("INR", "Indian Rupee", "₹"),
)
DEFAULT_CURRENCY = "USD"
# The org's one seeded user: the caller (WhoAmI) and the default owner of new rows.
SEED_USER: dict[str, str] = {
    "firstname": "Sandbox",
    "lastname": "Seller",
    "internalemailaddress": "seller@partner.example",
    "domainname": "seller@partner.example",
}


# ----------------------------------------------------------------------------- errors and small helpers


class DataverseError(Exception):
    """Raised anywhere in a handler; turned into the Dataverse error body by the route wrapper."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _bad(message: str, code: str = CODE_PAYLOAD) -> DataverseError:
    return DataverseError(400, code, message)


def _unknown_property(ent: EntityDef, name: str) -> DataverseError:
    return _bad(f"Could not find a property named '{name}' on type '{ent.type_name}'.", CODE_QUERY)


def _not_found(ent: EntityDef, key: tuple[str, str]) -> DataverseError:
    if key[0] == "pk":
        return DataverseError(404, CODE_NOT_FOUND, f"{ent.logical} With Id = {key[1]} Does Not Exist")
    return DataverseError(
        404, CODE_NOT_FOUND, f"A record with the specified key values does not exist in {ent.logical} entity"
    )


def _duplicate_key() -> DataverseError:
    return DataverseError(412, CODE_DUPLICATE_KEY, "A record with matching key values already exists.")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _etag(record: Record) -> str:
    return f'W/"{record["versionnumber"]}"'


def _odata_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response(payload, status, {"OData-Version": "4.0", **(headers or {})})


def _empty_response(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status=status, headers={"OData-Version": "4.0", **(headers or {})})


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and single-quoted literals (for $expand and Prefer)."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    current: list[str] = []
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _parse_key_segment(text: str) -> list[tuple[str, Any, bool]]:
    """``name='v',other=x`` (or a bare value) -> [(name, value, quoted)]; ``''`` inside quotes is one quote."""
    pairs: list[tuple[str, Any, bool]] = []
    pos = 0
    n = len(text)
    while pos < n:
        name = ""
        match = _NAME_RE.match(text, pos)
        if match and match.end() < n and text[match.end()] == "=":
            name = match.group(0)
            pos = match.end() + 1
        if pos < n and text[pos] == "'":
            pos += 1
            chars: list[str] = []
            while True:
                if pos >= n:
                    raise ValueError("unterminated string literal")
                if text[pos] == "'":
                    if pos + 1 < n and text[pos + 1] == "'":
                        chars.append("'")
                        pos += 2
                        continue
                    pos += 1
                    break
                chars.append(text[pos])
                pos += 1
            pairs.append((name, "".join(chars), True))
        else:
            end = text.find(",", pos)
            end = n if end < 0 else end
            token = text[pos:end].strip()
            if not token:
                raise ValueError("empty key value")
            pairs.append((name, token, False))
            pos = end
        if pos < n:
            if text[pos] != ",":
                raise ValueError(f"unexpected {text[pos]!r} in key")
            pos += 1
    return pairs


def _sort_value(value: Any) -> tuple[int, Any]:
    """Same ordering as :func:`sandbox.sims.odata.sort_records` (nulls first, strings casefolded)."""
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.casefold())
    return (1, value)


class _SortKey:
    """Comparable position in an ``$orderby`` ordering, so a skiptoken can say "after this row"."""

    def __init__(self, values: list[Any], descending: list[bool]) -> None:
        self.values = values
        self.descending = descending

    def _cmp(self, other: _SortKey) -> int:
        for a, b, desc in zip(self.values, other.values, self.descending, strict=True):
            ka, kb = _sort_value(a), _sort_value(b)
            if ka != kb:
                result = -1 if ka < kb else 1
                return -result if desc else result
        return 0

    def __lt__(self, other: _SortKey) -> bool:
        return self._cmp(other) < 0


@dataclass
class _Expand:
    """One item of ``$expand``; ``collection`` is set for collection-valued navigation properties."""

    nav: str
    select: list[str] | None = None
    collection: Collection | None = None
    predicate: Callable[[Record], bool] | None = None  # $filter (collection-valued only)
    filter_navs: set[str] = field(default_factory=set)
    orderby: list[tuple[str, bool]] = field(default_factory=list)
    top: int | None = None
    raw_options: list[str] = field(default_factory=list)  # for the ``<nav>@odata.nextLink`` annotation


_SINGLE_VALUED_EXPAND_ONLY = (
    "Only $select and $filter clause can be provided while doing $expand on many-to-one relationship or "
    "nested one-to-many relationship."
)


@dataclass
class _Query:
    select: list[str] | None = None
    expand: list[_Expand] = field(default_factory=list)
    filter: str | None = None
    orderby: list[tuple[str, bool]] = field(default_factory=list)
    top: int | None = None
    count: bool = False
    skiptoken: str | None = None
    raw_parts: list[str] = field(default_factory=list)  # the query string minus $skiptoken, for nextLink


@dataclass
class _Changes:
    values: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, tuple[str, str, str] | None] = field(default_factory=dict)  # column -> (set, id, nav)
    pk: str | None = None
    system: dict[str, Any] = field(default_factory=dict)  # createdon/modifiedon, only for seeding


# ----------------------------------------------------------------------------- the simulator


class DataverseSimulator(Simulator):
    """In-memory Dataverse org behind ``/api/data/v9.2/``; all data access happens under one lock."""

    name = "dataverse"

    def __init__(self, *, seed: int = 0, token_validator: Callable[[str], bool] | None = None) -> None:
        super().__init__(seed=seed)
        self._token_validator = token_validator
        self._db = threading.RLock()
        self._ids = random.Random(seed)
        self._version = 1000
        self._data: dict[str, dict[str, Record]] = {name: {} for name in ENTITIES}
        self._alt: dict[str, dict[str, str]] = {name: {} for name, e in ENTITIES.items() if e.alt_key}
        self._currency_ids = {iso: self._new_id() for iso, _, _ in SEED_CURRENCIES}
        self._identity = {k: self._new_id() for k in ("UserId", "BusinessUnitId", "OrganizationId")}
        self._last_stamp = ""
        self._seed_currencies()
        self._seed_users()
        for set_name in ENTITIES:
            self.add_route(f"{API}/{set_name}", ["GET", "POST"], self._api(self._collection, set_name))
            self.add_route(f"{API}/{set_name}(<path:key>)", ["GET", "PATCH", "DELETE"], self._api(self._item, set_name))
            if ENTITIES[set_name].collections:
                related = self._api(self._related, set_name)
                self.add_route(f"{API}/{set_name}(<path:key>)/<nav>", ["GET"], related)
        self.add_route(f"{API}/WinOpportunity", ["POST"], self._api(self._close_opportunity, "win"))
        self.add_route(f"{API}/LoseOpportunity", ["POST"], self._api(self._close_opportunity, "lose"))
        self.add_route(f"{API}/WhoAmI", ["GET"], self._api(self._who_am_i))

    # ----- in-process helpers (tests call these directly) -----
    def records(self, entity_set: str) -> list[Record]:
        """Deep copies of every stored row, with ``_x_value`` columns and their lookup annotations."""
        ent = self._entity(entity_set)
        with self._db:
            return [copy.deepcopy(r) for r in self._data[ent.set_name].values()]

    def get(self, entity_set: str, record_id: str) -> Record | None:
        ent = self._entity(entity_set)
        with self._db:
            row = self._data[ent.set_name].get(record_id.lower())
            return copy.deepcopy(row) if row is not None else None

    def insert(self, entity_set: str, record: Record) -> str:
        """Store a row directly (no faults, no counting, no opportunity-close rule); returns its id.

        Accepts writable columns, the primary key, ``<nav>@odata.bind``, raw ``_x_value`` ids,
        ``statecode``/``statuscode`` (any valid pair) and ``createdon``/``modifiedon``.
        Raises ``ValueError`` on anything the service would reject.
        """
        ent = self._entity(entity_set)
        with self._db:
            try:
                return self._insert_raw(ent, record)
            except DataverseError as exc:
                raise ValueError(exc.message) from exc

    def clear(self) -> None:
        """Drop all rows, then put the seeded currencies and the seeded user back with their original ids."""
        with self._db:
            for table in self._data.values():
                table.clear()
            for index in self._alt.values():
                index.clear()
            self._seed_currencies()
            self._seed_users()

    def currency_id(self, iso_code: str) -> str:
        """Id of a seeded ``transactioncurrency`` by ISO code (stable for the simulator's lifetime)."""
        return self._currency_ids[iso_code.upper()]

    @property
    def user_id(self) -> str:
        """The seeded user ("Sandbox Seller"): WhoAmI's ``UserId`` and the default owner of new rows."""
        return self._identity["UserId"]

    # ----- control API -----
    def control(self, request: Request, action: str) -> Response:
        if action == "seed" and request.method == "POST":
            return self._control_seed(request)
        if action == "clear" and request.method == "POST":
            self.clear()
            return json_response({"ok": True})
        if action.startswith("records/") and request.method == "GET":
            set_name = action[len("records/") :]
            if set_name not in ENTITIES:
                return json_response({"error": f"unknown entity set {set_name!r}"}, 404)
            return json_response(self.records(set_name))
        return super().control(request, action)

    def _control_seed(self, request: Request) -> Response:
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError as exc:
            return json_response({"error": {"code": CODE_PAYLOAD, "message": f"invalid JSON: {exc}"}}, 400)
        if not isinstance(body, dict) or not all(isinstance(v, list) for v in body.values()):
            return json_response({"error": {"code": CODE_PAYLOAD, "message": "body must be {set: [records]}"}}, 400)
        with self._db:
            snapshot = (copy.deepcopy(self._data), copy.deepcopy(self._alt), self._version)
            result: dict[str, list[str]] = {}
            try:
                for set_name, rows in body.items():
                    if set_name not in ENTITIES:
                        raise _bad(f"unknown entity set {set_name!r}")
                    if not all(isinstance(row, dict) for row in rows):
                        raise _bad(f"records of {set_name!r} must be objects")
                    result[set_name] = [self._insert_raw(ENTITIES[set_name], row) for row in rows]
            except DataverseError as exc:
                self._data, self._alt, self._version = snapshot  # all or nothing
                return json_response({"error": {"code": exc.code, "message": exc.message}}, 400)
        return json_response(result)

    # ----- error shape -----
    def error_response(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        """Dataverse's body for every error, including the base class's injected faults and 404/405."""
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
        return _odata_response({"error": {"code": code, "message": message}}, status, headers)

    # ----- plumbing -----
    def _api(self, handler: Callable[..., Response], *bound: Any) -> Callable[..., Response]:
        """Wrap a handler with the bearer-token check and the DataverseError -> error body mapping."""

        def run(request: Request, **kwargs: Any) -> Response:
            try:
                self._authorize(request)
                return handler(request, *bound, **kwargs)
            except DataverseError as exc:
                return self.error_response(exc.status, exc.code, exc.message, exc.headers)

        return run

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

    @staticmethod
    def _entity(entity_set: str) -> EntityDef:
        try:
            return ENTITIES[entity_set]
        except KeyError:
            raise ValueError(f"unknown entity set {entity_set!r}") from None

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _stamp(self) -> str:
        """Now, with the service's second precision, never earlier than the last stamp handed out.

        Writes in the same second share a ``modifiedon``, so ``modifiedon ge <an earlier write's value>``
        finds both; a wall clock stepping back cannot make a later write look older. Caller holds ``_db``.
        """
        now = _now()
        if now < self._last_stamp:
            now = self._last_stamp
        self._last_stamp = now
        return now

    def _seed_users(self) -> None:
        ent = ENTITIES["systemusers"]
        self._insert_raw(ent, {ent.pk: self._identity["UserId"], **SEED_USER})

    def _seed_currencies(self) -> None:
        ent = ENTITIES["transactioncurrencies"]
        for iso, name, symbol in SEED_CURRENCIES:
            self._insert_raw(
                ent,
                {
                    ent.pk: self._currency_ids[iso],
                    "isocurrencycode": iso,
                    "currencyname": name,
                    "currencysymbol": symbol,
                },
            )

    # ----- request parsing -----
    @staticmethod
    def _body(request: Request) -> Record:
        data = request.get_data(cache=True)
        if not data.strip():
            raise _bad("The request body is empty; a JSON object is required.")
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise _bad(f"Error identified in Payload provided by the user: invalid JSON ({exc}).") from exc
        if not isinstance(body, dict):
            raise _bad("Error identified in Payload provided by the user: a JSON object is required.")
        return body

    @staticmethod
    def _preferences(request: Request) -> dict[str, str]:
        prefs: dict[str, str] = {}
        for header in request.headers.getlist("Prefer"):
            for item in _split_top(header, ","):
                name, _, value = item.partition("=")
                prefs[name.strip().lower()] = value.strip().strip('"')
        return prefs

    @staticmethod
    def _annotations_wanted(prefs: dict[str, str]) -> Callable[[str], bool]:
        patterns = [p.strip() for p in prefs.get("odata.include-annotations", "").split(",") if p.strip()]

        def wanted(name: str) -> bool:
            return any(p == "*" or p == name or (p.endswith(".*") and name.startswith(p[:-1])) for p in patterns)

        return wanted

    def _parse_query(self, request: Request, ent: EntityDef) -> _Query:
        """Parse the raw query string ourselves, keeping the original parts to rebuild ``@odata.nextLink``.

        ``+`` decodes to a space, as on the real service (a literal plus must be sent as ``%2B``).
        """
        query = _Query()
        raw = request.query_string.decode("latin-1")
        for part in raw.split("&"):
            if not part:
                continue
            name_raw, _, value_raw = part.partition("=")
            name, value = unquote_plus(name_raw), unquote_plus(value_raw)
            if name == "$skiptoken":
                query.skiptoken = value
                continue
            query.raw_parts.append(part)
            if not name.startswith("$"):
                continue
            if name not in _QUERY_OPTIONS:
                raise _bad(f"The query parameter {name} is not supported", CODE_QUERY)
            if name == "$select":
                query.select = self._parse_select(ent, value)
            elif name == "$expand":
                query.expand = self._parse_expand(ent, value)
            elif name == "$filter":
                query.filter = value
            elif name == "$orderby":
                query.orderby = self._parse_orderby(ent, value)
            elif name == "$top":
                if not value.isdigit() or int(value) <= 0:
                    raise _bad(f"Invalid value '{value}' for $top query option found.", CODE_QUERY)
                query.top = int(value)
            elif name == "$count":
                if value.lower() not in ("true", "false"):
                    raise _bad(f"'{value}' is not a valid count option.", CODE_QUERY)
                query.count = value.lower() == "true"
        return query

    @staticmethod
    def _parse_select(ent: EntityDef, value: str) -> list[str]:
        names = [n.strip() for n in value.split(",") if n.strip()]
        readable = ent.readable_set
        for name in names:
            if name not in readable:
                raise _unknown_property(ent, name)
        return names

    def _parse_expand(self, ent: EntityDef, value: str) -> list[_Expand]:
        """Comma-separated items, split at top level only (commas inside ``(...)`` belong to the item).

        Single-valued (lookup) navigation properties take ``$select``; collection-valued ones
        (``ent.collections``) also take ``$filter``, ``$orderby`` and ``$top``. Nested ``$expand`` is
        not simulated. Unknown (or wrongly cased) navigation properties are a 400, as on the service.
        """
        result: list[_Expand] = []
        for item in _split_top(value, ","):
            match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?", item, re.DOTALL)
            if not match:
                raise _bad(f"Syntax error in $expand: '{item}'.", CODE_QUERY)
            nav, options = match.group(1), match.group(2)
            collection = ent.collections.get(nav)
            if collection is None and nav not in ent.lookups:
                raise _unknown_property(ent, nav)
            target = ENTITIES[collection.target if collection else ent.lookups[nav].target]
            expand = _Expand(nav, collection=collection)
            for option in _split_top(options or "", ";"):
                opt_name, _, opt_value = option.partition("=")
                opt_name, opt_value = opt_name.strip(), opt_value.strip()
                expand.raw_options.append(f"{opt_name}={opt_value}")
                if opt_name == "$select":
                    expand.select = self._parse_select(target, opt_value)
                elif collection is not None and opt_name == "$filter":
                    expand.predicate, expand.filter_navs = self._compile_filter(target, opt_value)
                elif collection is not None and opt_name == "$orderby":
                    expand.orderby = self._parse_orderby(target, opt_value)
                elif collection is not None and opt_name == "$top":
                    if not opt_value.isdigit() or int(opt_value) <= 0:
                        raise _bad(f"Invalid value '{opt_value}' for $top query option found.", CODE_QUERY)
                    expand.top = int(opt_value)
                elif opt_name in ("$orderby", "$top"):
                    raise _bad(_SINGLE_VALUED_EXPAND_ONLY, CODE_QUERY)
                else:
                    raise _bad(
                        f"The simulator supports only $select (and $filter, $orderby, $top on collection-valued "
                        f"navigation properties) inside $expand, not '{opt_name}'.",
                        CODE_QUERY,
                    )
            result.append(expand)
        return result

    @staticmethod
    def _parse_orderby(ent: EntityDef, value: str) -> list[tuple[str, bool]]:
        clauses: list[tuple[str, bool]] = []
        readable = ent.readable_set
        for clause in (c.strip() for c in value.split(",")):
            parts = clause.split()
            if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
                raise _bad(f"Syntax error in $orderby: '{clause}'.", CODE_QUERY)
            if parts[0] not in readable:
                raise _unknown_property(ent, parts[0])
            clauses.append((parts[0], len(parts) == 2 and parts[1].lower() == "desc"))
        return clauses

    def _parse_key(self, ent: EntityDef, raw: str) -> tuple[str, str]:
        """``(pk, guid)`` or ``(alt, value)`` from the text inside ``set(...)``."""
        text = raw.strip()
        if _GUID_RE.fullmatch(text):
            return ("pk", text.lower())
        invalid = _bad(
            f"The key in the request URI is not valid for resource '{ent.type_name}'. Ensure that the names and "
            f"number of key properties match the declared or alternate key properties for the resource "
            f"'{ent.type_name}'.",
            CODE_QUERY,
        )
        try:
            pairs = _parse_key_segment(text)
        except ValueError:
            raise invalid from None
        if len(pairs) != 1:
            raise invalid
        name, value, quoted = pairs[0]
        if name == ent.pk and not quoted and _GUID_RE.fullmatch(value):
            return ("pk", value.lower())
        if ent.alt_key and name == ent.alt_key and quoted:
            return ("alt", value)
        raise invalid

    def _find(self, ent: EntityDef, key: tuple[str, str]) -> Record | None:
        kind, value = key
        table = self._data[ent.set_name]
        if kind == "pk":
            return table.get(value)
        record_id = self._alt[ent.set_name].get(value.casefold())
        return table.get(record_id) if record_id else None

    def _resolve_ref(self, text: Any, lookup: Lookup, nav: str) -> tuple[str, str, str]:
        if not isinstance(text, str):
            raise _bad(f"The value of '{nav}@odata.bind' must be a URI string such as '/{lookup.target}(<id>)'.")
        match = _REF_RE.match(text.strip())
        if not match:
            raise _bad(f"The URI '{text}' in '{nav}@odata.bind' is not a valid entity reference.")
        set_name = match.group("set")
        if set_name != lookup.target:
            raise _bad(
                f"The URI '{text}' in '{nav}@odata.bind' must reference the '{lookup.target}' entity set, "
                f"not '{set_name}'."
            )
        target = ENTITIES[set_name]
        key = self._parse_key(target, match.group("key"))
        record = self._find(target, key)
        if record is None:
            raise _not_found(target, key)
        return (set_name, record[target.pk], nav)

    # ----- payload validation -----
    def _parse_payload(self, ent: EntityDef, body: Record, *, raw: bool = False) -> _Changes:
        """Validate a create/update body the way the OData deserialiser does, before any business rule."""
        changes = _Changes()
        bound_by: dict[str, str] = {}
        for key, value in body.items():
            if "@" in key:
                prop, _, annotation = key.partition("@")
                if annotation == "odata.bind" and prop:
                    self._parse_bind(ent, prop, value, changes, bound_by)
                elif prop and prop not in ent.readable_set and prop not in ent.lookups:
                    raise self._undeclared(ent, prop)
                continue  # instance/property annotations such as @odata.type or @odata.etag
            if key == ent.pk:
                if not isinstance(value, str) or not _GUID_RE.fullmatch(value):
                    raise _bad(f"Cannot convert the literal '{value}' to the expected type 'Edm.Guid'.")
                changes.pk = value.lower()
            elif key in ent.columns:
                changes.values[key] = self._check_value(ent, key, ent.columns[key], value)
            elif key in ent.lookup_columns:
                if not raw:
                    raise _bad(
                        "CRM do not support direct update of Entity Reference properties, "
                        "Use Navigation properties instead."
                    )
                self._parse_raw_lookup(ent, key, value, changes)
            elif key in ent.lookups:
                raise _bad(
                    f"The navigation property '{key}' must be set with '{key}@odata.bind' "
                    "(deep insert is not supported by the simulator)."
                )
            elif key in _SYSTEM_COLUMNS or key in ent.computed:
                if raw and key in ("createdon", "modifiedon") and isinstance(value, str):
                    changes.system[key] = _normalise_stamp(value)
                # read-only on the service: silently ignored there too
            else:
                raise _bad(
                    f"The property '{key}' does not exist on type '{ent.type_name}'. Make sure to only use "
                    "property names that are defined by the type or mark the type as open type."
                )
        return changes

    @staticmethod
    def _undeclared(ent: EntityDef, prop: str) -> DataverseError:
        return _bad(
            f"An undeclared property '{prop}' which only has property annotations in the payload but no property "
            f"value was found in the payload. In OData, only declared navigation properties and declared named "
            f"streams can be represented as properties without values. (type '{ent.type_name}')"
        )

    def _parse_bind(self, ent: EntityDef, nav: str, value: Any, changes: _Changes, bound_by: dict[str, str]) -> None:
        lookup = ent.lookups.get(nav)
        if lookup is None:  # case-sensitive, as on the service
            raise self._undeclared(ent, nav)
        if nav == "ownerid" and value is None:  # a user-owned record always has an owner
            raise _bad(
                f"ownerid cannot be cleared on {ent.logical}: assign another owner with "
                "'ownerid@odata.bind': '/systemusers(<id>)'.",
                CODE_INVALID_ARGUMENT,
            )
        if lookup.column in bound_by:
            raise _bad(f"'{nav}' and '{bound_by[lookup.column]}' both set {lookup.column}; bind only one of them.")
        bound_by[lookup.column] = nav
        changes.refs[lookup.column] = None if value is None else self._resolve_ref(value, lookup, nav)

    def _parse_raw_lookup(self, ent: EntityDef, column: str, value: Any, changes: _Changes) -> None:
        if value is None:
            changes.refs[column] = None
            return
        if not isinstance(value, str) or not _GUID_RE.fullmatch(value):
            raise _bad(f"{column} must be a GUID")
        candidates = [(nav, lk) for nav, lk in ent.lookups.items() if lk.column == column]
        for nav, lk in candidates:
            if value.lower() in self._data[lk.target]:
                changes.refs[column] = (lk.target, value.lower(), nav)
                return
        nav, lk = candidates[0]
        changes.refs[column] = (lk.target, value.lower(), nav)

    @staticmethod
    def _check_value(ent: EntityDef, name: str, column: Column, value: Any) -> Any:
        if value is None:
            return None
        ok: bool
        if column.kind == "string":
            ok = isinstance(value, str)
        elif column.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif column.kind == "bool":
            ok = isinstance(value, bool)
        elif column.kind == "money":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif column.kind == "date":
            ok = isinstance(value, str) and bool(_DATE_RE.fullmatch(value)) and _valid_date(value)
        else:  # datetime: DateTimeOffset, a bare date is accepted too (actualend is often sent that way)
            ok = isinstance(value, str) and _valid_datetime(value)
        if not ok:
            literal = json.dumps(value) if not isinstance(value, str) else value
            raise _bad(f"Cannot convert the literal '{literal}' to the expected type '{_EDM_TYPES[column.kind]}'.")
        if column.max_length is not None and len(value) > column.max_length:
            raise _bad(
                f"A validation error occurred. The length of the '{name}' attribute of the '{ent.logical}' entity "
                f"exceeded the maximum allowed length of '{column.max_length}'.",
                CODE_VALIDATION,
            )
        if (column.min_value is not None and value < column.min_value) or (
            column.max_value is not None and value > column.max_value
        ):
            raise _bad(
                f"A validation error occurred. The value {value} of '{name}' on record of type '{ent.logical}' is "
                f"outside the valid range. Accepted Values: {column.min_value} to {column.max_value}",
                CODE_VALIDATION,
            )
        return value

    def _apply_state(self, ent: EntityDef, current: Record | None, values: dict[str, Any], *, strict: bool) -> None:
        """State/status validation; ``strict`` adds the opportunity rules that only apply to API writes."""
        if ent.states is None:
            return
        has_state, has_status = "statecode" in values, "statuscode" in values
        if ent.logical == "opportunity" and strict:
            if current is None and has_state:
                raise _bad(
                    "statecode is not valid for create on opportunity. Create the opportunity open and close "
                    "it with the WinOpportunity or LoseOpportunity action.",
                    CODE_INVALID_ARGUMENT,
                )
            if has_state and values["statecode"] in (1, 2):
                raise _bad(
                    "An opportunity cannot be closed by setting statecode; use the WinOpportunity or "
                    "LoseOpportunity action.",
                    CODE_INVALID_ARGUMENT,
                )
            if current is not None and current.get("statecode") in (1, 2) and values.get("statecode") != 0:
                raise _bad(
                    "The opportunity is closed and cannot be modified. Reopen it first (statecode 0 with "
                    "statuscode 1 or 2).",
                    CODE_INVALID_ARGUMENT,
                )
        state = values["statecode"] if has_state else (current or {}).get("statecode", 0)
        if state not in ent.states:
            raise _bad(f"{state} is not a valid state code on {ent.logical}.", CODE_INVALID_STATUS)
        if has_status:
            status = values["statuscode"]
            if status not in ent.states[state]:
                raise _bad(
                    f"{status} is not a valid status code for state code {ent.state_names[state]} on {ent.logical}.",
                    CODE_INVALID_STATUS,
                )
        elif has_state or current is None:
            values["statuscode"] = ent.default_status[state]
        values["statecode"] = state

    # ----- writes -----
    def _check_unique(self, ent: EntityDef, value: Any, own_id: str | None) -> None:
        if not ent.alt_key or value is None:
            return
        holder = self._alt[ent.set_name].get(str(value).casefold())
        if holder is not None and holder != own_id:
            raise _duplicate_key()

    def _write(self, ent: EntityDef, row: Record, changes: _Changes, *, creating: bool) -> Record:
        """Apply validated changes to ``row`` (a fresh dict when creating), bump version, keep indexes.

        Every write of a row stamps its ``modifiedon`` (see :meth:`_stamp`) and a new ``versionnumber``.
        Only the written row changes: creating, updating or deleting a child row (a ``cosell_solution``
        bound to an opportunity) leaves the parent's ``modifiedon``/``versionnumber`` alone, as in
        Dataverse, so a ``modifiedon`` watermark on opportunities does not notice solution changes.
        """
        table = self._data[ent.set_name]
        old = table.get(row[ent.pk])
        if ent.alt_key and ent.alt_key in changes.values:
            self._check_unique(ent, changes.values[ent.alt_key], None if creating else row[ent.pk])
        row.update(changes.values)
        for column, ref in changes.refs.items():
            for suffix in (_LOOKUP_TARGET, _LOOKUP_NAV):
                row.pop(f"{column}@{suffix}", None)
            row[column] = None if ref is None else ref[1]
            if ref is not None:
                row[f"{column}@{_LOOKUP_TARGET}"] = ENTITIES[ref[0]].logical
                row[f"{column}@{_LOOKUP_NAV}"] = ref[2]
        if "fullname" in ent.computed:
            row["fullname"] = " ".join(p for p in (row.get("firstname"), row.get("lastname")) if p) or None
        now = self._stamp()
        if creating:
            row["createdon"] = changes.system.get("createdon", now)
        row["modifiedon"] = changes.system.get("modifiedon", now)
        row["versionnumber"] = self._next_version()
        if ent.alt_key:
            index = self._alt[ent.set_name]
            old_value = old.get(ent.alt_key) if old else None
            if old_value is not None and index.get(str(old_value).casefold()) == row[ent.pk]:
                del index[str(old_value).casefold()]
            if row.get(ent.alt_key) is not None:
                index[str(row[ent.alt_key]).casefold()] = row[ent.pk]
        table[row[ent.pk]] = row
        return row

    def _new_row(self, ent: EntityDef, changes: _Changes, record_id: str | None) -> Record:
        record_id = record_id or changes.pk or self._new_id()
        if record_id in self._data[ent.set_name]:
            raise DataverseError(412, CODE_DUPLICATE_ID, "Cannot insert duplicate key.")
        row: Record = {ent.pk: record_id}
        owner = ent.lookups.get("ownerid")
        if owner and owner.column not in changes.refs and self.user_id in self._data["systemusers"]:
            changes.refs[owner.column] = ("systemusers", self.user_id, "ownerid")  # the caller owns what it creates
        currency = ent.lookups.get("transactioncurrencyid")
        if currency and currency.column not in changes.refs and DEFAULT_CURRENCY in self._currency_ids:
            currency_id = self._currency_ids[DEFAULT_CURRENCY]
            if currency_id in self._data["transactioncurrencies"]:  # defaults to the org base currency
                changes.refs[currency.column] = ("transactioncurrencies", currency_id, "transactioncurrencyid")
        return row

    def _insert_raw(self, ent: EntityDef, record: Record) -> str:
        changes = self._parse_payload(ent, record, raw=True)
        self._apply_state(ent, None, changes.values, strict=False)
        row = self._new_row(ent, changes, None)
        return self._write(ent, row, changes, creating=True)[ent.pk]

    def _create(self, ent: EntityDef, changes: _Changes, record_id: str | None = None) -> Record:
        self._apply_state(ent, None, changes.values, strict=True)
        row = self._new_row(ent, changes, record_id)
        return self._write(ent, row, changes, creating=True)

    def _update(self, ent: EntityDef, current: Record, changes: _Changes) -> Record:
        values = changes.values
        self._apply_state(ent, current, values, strict=True)
        row = copy.deepcopy(current)
        return self._write(ent, row, changes, creating=False)

    # ----- projection -----
    def _project(
        self,
        ent: EntityDef,
        row: Record,
        select: list[str] | None,
        expand: list[_Expand],
        wanted: Callable[[str], bool],
        *,
        base_url: str = "",
        also: tuple[str, ...] = (),
    ) -> Record:
        """The wire shape of one row; ``also`` adds columns the service returns unasked (the back-reference
        lookup of rows in an expanded collection)."""
        out: Record = {"@odata.etag": _etag(row)}
        columns = list(select) if select else list(ent.readable)
        for extra in (*also, ent.pk):
            if extra not in columns:
                columns.append(extra)
        lookup_columns = ent.lookup_columns
        for column in columns:
            out[column] = row.get(column)
            if column in lookup_columns and row.get(column) is not None:
                for annotation in (_LOOKUP_TARGET, _LOOKUP_NAV):
                    if wanted(annotation) and f"{column}@{annotation}" in row:
                        out[f"{column}@{annotation}"] = row[f"{column}@{annotation}"]
        if ent.logical == "systemuser":
            out["ownerid"] = row[ent.pk]  # systemuser inherits principal's key, so the service returns both
        for item in expand:
            if item.collection is None:
                target_row = self._follow(ent, row, item.nav)
                target = ENTITIES[ent.lookups[item.nav].target]
                out[item.nav] = (
                    None if target_row is None else self._project(target, target_row, item.select, [], wanted)
                )
                continue
            target = ENTITIES[item.collection.target]
            out[item.nav] = [
                self._project(target, child, item.select, [], wanted, also=(item.collection.column,))
                for child in self._related_rows(ent, row, item)
            ]
            # Single-level expands are not paged; the link is the filtered collection with the same options.
            options = "&".join(quote(o, safe="$=,'()/") for o in item.raw_options)
            link = f"{base_url}/{ent.set_name}({row[ent.pk]})/{item.nav}"
            out[f"{item.nav}@odata.nextLink"] = f"{link}?{options}" if options else link
        return out

    def _related_rows(self, ent: EntityDef, row: Record, item: _Expand) -> list[Record]:
        """Rows of a collection-valued navigation property: filtered, ordered (then by key), capped."""
        assert item.collection is not None
        target = ENTITIES[item.collection.target]
        column = item.collection.column
        rows = [r for r in self._data[target.set_name].values() if r.get(column) == row[ent.pk]]
        if item.predicate is not None:
            try:
                rows = [r for r in rows if item.predicate(self._filter_view(target, r, item.filter_navs))]
            except FilterError as exc:
                raise _bad(str(exc), CODE_QUERY) from exc
        clauses = [*item.orderby, (target.pk, False)]
        rows = sort_records(rows, ",".join(f"{c} {'desc' if d else 'asc'}" for c, d in clauses))
        return rows[: min(item.top or MAX_PAGE_SIZE, MAX_PAGE_SIZE)]

    def _follow(self, ent: EntityDef, row: Record, nav: str) -> Record | None:
        """The row a lookup points at, if it points at this nav's table (customerid is polymorphic)."""
        lookup = ent.lookups[nav]
        target_id = row.get(lookup.column)
        if target_id is None:
            return None
        target = ENTITIES[lookup.target]
        if row.get(f"{lookup.column}@{_LOOKUP_TARGET}", target.logical) != target.logical:
            return None
        return self._data[lookup.target].get(target_id)

    # ----- handlers -----
    def _collection(self, request: Request, set_name: str) -> Response:
        ent = ENTITIES[set_name]
        if request.method == "POST":
            return self._post(request, ent)
        return self._get_many(request, ent)

    def _item(self, request: Request, set_name: str, key: str) -> Response:
        ent = ENTITIES[set_name]
        parsed = self._parse_key(ent, key)
        if request.method == "GET":
            return self._get_one(request, ent, parsed)
        if request.method == "PATCH":
            return self._patch(request, ent, parsed)
        return self._delete(request, ent, parsed)

    def _related(self, request: Request, set_name: str, key: str, nav: str) -> Response:
        """``GET /opportunities(<id>)/cosell_opportunity_cosell_solutions``: the filtered collection a
        collection-valued ``$expand`` links to (``<nav>@odata.nextLink``), with the usual query options."""
        ent = ENTITIES[set_name]
        collection = ent.collections.get(nav)
        if collection is None:
            if nav in ent.lookups:
                raise _bad(f"The simulator serves only collection-valued navigation properties, not '{nav}'.")
            raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{nav}'.")
        parsed = self._parse_key(ent, key)
        with self._db:
            parent = self._find(ent, parsed)
            if parent is None:
                raise _not_found(ent, parsed)
            parent_id = parent[ent.pk]
        target = ENTITIES[collection.target]
        return self._get_many(
            request, target, scope=(collection.column, parent_id), path=f"{set_name}({parent_id})/{nav}"
        )

    def _base_url(self, request: Request) -> str:
        return request.host_url.rstrip("/") + API

    def _entity_url(self, request: Request, ent: EntityDef, record_id: str) -> str:
        return f"{self._base_url(request)}/{ent.set_name}({record_id})"

    def _context(self, request: Request, ent: EntityDef, query: _Query, single: bool) -> str:
        selection = f"({','.join(query.select)})" if query.select else ""
        return f"{self._base_url(request)}/$metadata#{ent.set_name}{selection}{'/$entity' if single else ''}"

    def _get_many(
        self, request: Request, ent: EntityDef, *, scope: tuple[str, str] | None = None, path: str | None = None
    ) -> Response:
        """A collection query; ``scope`` = (column, id) restricts it to a record's related rows served at ``path``."""
        query = self._parse_query(request, ent)
        prefs = self._preferences(request)
        wanted = self._annotations_wanted(prefs)
        predicate, navs = self._compile_filter(ent, query.filter)
        page_size = MAX_PAGE_SIZE
        applied: dict[str, str] = {}
        requested = prefs.get("odata.maxpagesize", "")
        if requested.isdigit() and 0 < int(requested) <= MAX_PAGE_SIZE:
            page_size = int(requested)
            applied["Preference-Applied"] = f"odata.maxpagesize={page_size}"
        clauses = [*query.orderby, (ent.pk, False)]
        with self._db:
            try:
                rows = [
                    r
                    for r in self._data[ent.set_name].values()
                    if (scope is None or r.get(scope[0]) == scope[1]) and predicate(self._filter_view(ent, r, navs))
                ]
            except FilterError as exc:
                raise _bad(str(exc), CODE_QUERY) from exc
            rows = sort_records(rows, ",".join(f"{c} {'desc' if d else 'asc'}" for c, d in clauses))
            total = len(rows)
            if query.top is not None and not applied:
                rows = rows[: min(query.top, MAX_PAGE_SIZE)]
                page_size = len(rows) or 1
            start = 0
            if query.skiptoken is not None:
                after = self._decode_skiptoken(query.skiptoken, len(clauses))
                descending = [d for _, d in clauses]

                def key_of(row: Record) -> _SortKey:
                    return _SortKey([row.get(c) for c, _ in clauses], descending)

                start = bisect.bisect_right(rows, _SortKey(after, descending), key=key_of)
            page = rows[start : start + page_size]
            more = start + page_size < len(rows)
            base_url = self._base_url(request)
            value = [self._project(ent, r, query.select, query.expand, wanted, base_url=base_url) for r in page]
            last = [page[-1].get(c) for c, _ in clauses] if page else None
        body: Record = {"@odata.context": self._context(request, ent, query, single=False)}
        if query.count:
            body["@odata.count"] = total
        body["value"] = value
        if more and last is not None:
            token = base64.urlsafe_b64encode(json.dumps(last).encode()).decode().rstrip("=")
            raw = "&".join([*query.raw_parts, f"$skiptoken={token}"])
            body["@odata.nextLink"] = f"{self._base_url(request)}/{path or ent.set_name}?{raw}"
        return _odata_response(body, 200, applied)

    @staticmethod
    def _decode_skiptoken(token: str, width: int) -> list[Any]:
        try:
            padded = token + "=" * (-len(token) % 4)
            values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        except ValueError:
            values = None
        if not isinstance(values, list) or len(values) != width:
            raise _bad("The $skiptoken is not valid for this query; use @odata.nextLink unchanged.", CODE_QUERY)
        return values

    def _compile_filter(self, ent: EntityDef, expression: str | None) -> tuple[Callable[[Record], bool], set[str]]:
        try:
            predicate = compile_filter(expression)
        except FilterError as exc:
            raise _bad(str(exc), CODE_QUERY) from exc
        navs: set[str] = set()
        if expression and expression.strip():
            tree = ODataParser().parse(ODataLexer().tokenize(expression))
            self._check_filter_names(ent, tree, navs)
        return predicate, navs

    def _check_filter_names(self, ent: EntityDef, node: Any, navs: set[str]) -> None:
        """Unknown column names are a 400 on the service, not an empty result."""
        readable = ent.readable_set
        if isinstance(node, ast.CollectionLambda):
            raise _bad("Lambda operators (any/all) are not supported by the simulator.", CODE_QUERY)
        if isinstance(node, ast.Attribute):
            owner = node.owner
            if not isinstance(owner, ast.Identifier) or owner.name not in ent.lookups:
                raise _bad("Only single-valued navigation properties can be used in a $filter path.", CODE_QUERY)
            target = ENTITIES[ent.lookups[owner.name].target]
            if node.attr not in target.readable_set:
                raise _unknown_property(target, node.attr)
            navs.add(owner.name)
            return
        if isinstance(node, ast.Identifier):
            if node.name not in readable:
                raise _unknown_property(ent, node.name)
            return
        if isinstance(node, ast.Call):
            name = ".".join([*node.func.namespace, node.func.name])
            if name.lower() not in _FILTER_FUNCTIONS:
                raise _bad(f"The function '{name}' is not supported by the simulator's $filter.", CODE_QUERY)
            for arg in node.args:
                self._check_filter_names(ent, arg, navs)
            return
        for child in _children(node):
            self._check_filter_names(ent, child, navs)

    def _filter_view(self, ent: EntityDef, row: Record, navs: set[str]) -> Record:
        if not navs:
            return row
        view = dict(row)
        for nav in navs:
            view[nav] = self._follow(ent, row, nav)
        return view

    def _get_one(self, request: Request, ent: EntityDef, key: tuple[str, str]) -> Response:
        query = self._parse_query(request, ent)
        wanted = self._annotations_wanted(self._preferences(request))
        with self._db:
            row = self._find(ent, key)
            if row is None:
                raise _not_found(ent, key)
            etag = _etag(row)
            if_none_match = request.headers.get("If-None-Match", "")
            if if_none_match and not query.expand and _etag_matches(if_none_match, row):
                return _empty_response(304, {"ETag": etag})
            body = self._project(ent, row, query.select, query.expand, wanted, base_url=self._base_url(request))
        return _odata_response(
            {"@odata.context": self._context(request, ent, query, single=True), **body}, 200, {"ETag": etag}
        )

    def _post(self, request: Request, ent: EntityDef) -> Response:
        query = self._parse_query(request, ent)
        prefs = self._preferences(request)
        with self._db:
            changes = self._parse_payload(ent, self._body(request))
            row = self._create(ent, changes)
            body = self._project(
                ent,
                row,
                query.select,
                query.expand,
                self._annotations_wanted(prefs),
                base_url=self._base_url(request),
            )
            etag = _etag(row)
            record_id = row[ent.pk]
        if prefs.get("return") == "representation":
            payload = {"@odata.context": self._context(request, ent, query, single=True), **body}
            return _odata_response(payload, 201, {"ETag": etag, "Preference-Applied": "return=representation"})
        return _empty_response(204, {"OData-EntityId": self._entity_url(request, ent, record_id)})

    def _patch(self, request: Request, ent: EntityDef, key: tuple[str, str]) -> Response:
        query = self._parse_query(request, ent)
        prefs = self._preferences(request)
        if_match = request.headers.get("If-Match")
        if_none_match = request.headers.get("If-None-Match")
        with self._db:
            changes = self._parse_payload(ent, self._body(request))
            current = self._find(ent, key)
            if if_none_match is not None and if_none_match.strip() == "*" and current is not None:
                raise _duplicate_key()
            if if_match is not None:
                if current is None:
                    raise _not_found(ent, key)
                if not _etag_matches(if_match, current):
                    raise DataverseError(
                        412,
                        CODE_VERSION_MISMATCH,
                        "The version of the existing record doesn't match the RowVersion property provided.",
                    )
            created = current is None
            if current is None:
                if key[0] == "alt" and ent.alt_key:
                    changes.values = {ent.alt_key: key[1], **changes.values}  # body value wins, per the docs
                    row = self._create(ent, changes)
                else:
                    row = self._create(ent, changes, record_id=key[1])
            else:
                if key[0] == "alt" and ent.alt_key:
                    changes.values.pop(ent.alt_key, None)  # key values in the body are discarded
                changes.pk = None
                row = self._update(ent, current, changes)
            body = self._project(
                ent,
                row,
                query.select,
                query.expand,
                self._annotations_wanted(prefs),
                base_url=self._base_url(request),
            )
            etag = _etag(row)
            record_id = row[ent.pk]
        if prefs.get("return") == "representation":
            payload = {"@odata.context": self._context(request, ent, query, single=True), **body}
            headers = {"ETag": etag, "Preference-Applied": "return=representation"}
            return _odata_response(payload, 201 if created else 200, headers)
        return _empty_response(204, {"OData-EntityId": self._entity_url(request, ent, record_id)})

    def _delete(self, request: Request, ent: EntityDef, key: tuple[str, str]) -> Response:
        if_match = request.headers.get("If-Match")
        with self._db:
            row = self._find(ent, key)
            if row is None:
                raise _not_found(ent, key)
            if if_match is not None and not _etag_matches(if_match, row):
                raise DataverseError(
                    412,
                    CODE_VERSION_MISMATCH,
                    "The version of the existing record doesn't match the RowVersion property provided.",
                )
            del self._data[ent.set_name][row[ent.pk]]
            if ent.alt_key and row.get(ent.alt_key) is not None:
                self._alt[ent.set_name].pop(str(row[ent.alt_key]).casefold(), None)
        return _empty_response(204)

    def _close_opportunity(self, request: Request, kind: str) -> Response:
        """WinOpportunity / LoseOpportunity: close the opportunity and record an opportunityclose."""
        body = self._body(request)
        status = body.get("Status")
        close = body.get("OpportunityClose")
        if not isinstance(status, int) or isinstance(status, bool):
            raise _bad("The parameter 'Status' (Edm.Int32) is required.", CODE_INVALID_ARGUMENT)
        if not isinstance(close, dict):
            raise _bad(
                "The parameter 'OpportunityClose' (an opportunityclose entity) is required.", CODE_INVALID_ARGUMENT
            )
        unknown = set(body) - {"Status", "OpportunityClose"}
        if unknown:
            raise _bad(f"The parameter '{sorted(unknown)[0]}' is not declared on the {kind.title()}Opportunity action.")
        opportunities = ENTITIES["opportunities"]
        closes = ENTITIES["opportunitycloses"]
        state = 1 if kind == "win" else 2
        with self._db:
            changes = self._parse_payload(closes, close)
            ref = changes.refs.get("_opportunityid_value")
            if ref is None:
                raise _bad(
                    "OpportunityClose must reference the opportunity with 'opportunityid@odata.bind'.",
                    CODE_INVALID_ARGUMENT,
                )
            if status not in (opportunities.states or {}).get(state, frozenset()):
                raise _bad(
                    f"{status} is not a valid status code for state code {opportunities.state_names[state]} "
                    "on opportunity.",
                    CODE_INVALID_STATUS,
                )
            current = self._data["opportunities"][ref[1]]
            if current.get("statecode") in (1, 2):
                raise _bad(
                    "The opportunity is already closed; reopen it before closing it again.", CODE_INVALID_ARGUMENT
                )
            actual_end = changes.values.get("actualend") or _now()[:10]
            update = _Changes(values={"statecode": state, "statuscode": status, "actualclosedate": actual_end[:10]})
            if changes.values.get("actualrevenue") is not None:
                update.values["actualvalue"] = changes.values["actualrevenue"]
            self._write(opportunities, copy.deepcopy(current), update, creating=False)
            changes.values.setdefault("statecode", 1)  # Completed
            changes.values.setdefault("statuscode", 2)
            changes.values.setdefault("actualend", actual_end)
            self._write(closes, self._new_row(closes, changes, None), changes, creating=True)
        return _empty_response(204)

    def _who_am_i(self, request: Request) -> Response:
        return _odata_response(
            {"@odata.context": f"{self._base_url(request)}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"}
            | self._identity
        )


# ----------------------------------------------------------------------------- module helpers


def _children(node: Any) -> Iterator[Any]:
    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ast._Node):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, ast._Node))


def _etag_matches(header: str, row: Record) -> bool:
    """``*`` or any listed ETag equal to the row's (weak comparison: ``W/`` and quotes ignored)."""
    version = str(row["versionnumber"])
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == version:
            return True
    return False


def _normalise_stamp(value: str) -> str:
    """A seeded ``createdon``/``modifiedon`` the way the service returns it: UTC, whole seconds, ``Z``."""
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?)(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?", value.strip()
    )
    try:
        if not match:
            raise ValueError(value)
        parsed = dt.datetime.fromisoformat(match.group(1) + (match.group(2) or "Z").replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset'.") from None
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _valid_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _valid_datetime(value: str) -> bool:
    if _DATE_RE.fullmatch(value):
        return _valid_date(value)
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value

"""Parsing the OData query options of a record request: $select, $filter, $orderby, $expand, $top, paging.

Names are checked against the table's declared properties, case-sensitively, before anything runs:
the service answers an unknown name with a 400, never with an empty result.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from odata_query import ast
from odata_query.grammar import ODataLexer, ODataParser
from werkzeug.wrappers import Request

from sandbox.sims.dataverse.errors import CODE_QUERY, bad_request, unknown_property
from sandbox.sims.dataverse.schema import CollectionNav, Entity, Nav, Schema
from sandbox.sims.dataverse.store import RowKey
from sandbox.sims.dataverse.wire import GUID_RE, Record, parse_key_segment, split_top
from sandbox.sims.odata import FilterError, compile_filter

_FILTER_FUNCTIONS = frozenset({"contains", "startswith", "endswith", "tolower", "toupper"})
_QUERY_OPTIONS = frozenset({"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$skiptoken"})
_SINGLE_VALUED_EXPAND_ONLY = (
    "Only $select and $filter clause can be provided while doing $expand on many-to-one relationship or "
    "nested one-to-many relationship."
)


@dataclass
class Expand:
    """One item of ``$expand``: a single-valued ``nav`` or a collection-valued ``collection``."""

    name: str
    target: Entity  # the navigation property's type (``principal`` for ownerid)
    nav: Nav | None = None
    collection: CollectionNav | None = None
    select: list[str] | None = None
    predicate: Callable[[Record], bool] | None = None  # $filter (collection-valued only)
    filter_navs: set[str] = field(default_factory=set)
    orderby: list[tuple[str, bool]] = field(default_factory=list)
    top: int | None = None
    raw_options: list[str] = field(default_factory=list)  # for the ``<nav>@odata.nextLink`` annotation


@dataclass
class Query:
    select: list[str] | None = None
    expand: list[Expand] = field(default_factory=list)
    filter: str | None = None
    orderby: list[tuple[str, bool]] = field(default_factory=list)
    top: int | None = None
    count: bool = False
    skiptoken: str | None = None
    raw_parts: list[str] = field(default_factory=list)  # the query string minus $skiptoken, for nextLink


def annotations_wanted(prefs: dict[str, str]) -> Callable[[str], bool]:
    """``Prefer: odata.include-annotations="…"`` as a predicate over annotation names."""
    patterns = [p.strip() for p in prefs.get("odata.include-annotations", "").split(",") if p.strip()]

    def wanted(name: str) -> bool:
        return any(p == "*" or p == name or (p.endswith(".*") and name.startswith(p[:-1])) for p in patterns)

    return wanted


class QueryParser:
    """The query options of one org's record requests, checked against its schema."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def parse(self, request: Request, ent: Entity) -> Query:
        """Parse the raw query string ourselves, keeping the original parts to rebuild ``@odata.nextLink``.

        ``+`` decodes to a space, as on the real service (a literal plus must be sent as ``%2B``).
        """
        query = Query()
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
                raise bad_request(f"The query parameter {name} is not supported", CODE_QUERY)
            if name == "$select":
                query.select = parse_select(ent, value)
            elif name == "$expand":
                query.expand = self.parse_expand(ent, value)
            elif name == "$filter":
                query.filter = value
            elif name == "$orderby":
                query.orderby = parse_orderby(ent, value)
            elif name == "$top":
                query.top = _positive(value)
            elif name == "$count":
                if value.lower() not in ("true", "false"):
                    raise bad_request(f"'{value}' is not a valid count option.", CODE_QUERY)
                query.count = value.lower() == "true"
        return query

    def parse_expand(self, ent: Entity, value: str) -> list[Expand]:
        """Comma-separated items, split at top level only (commas inside ``(...)`` belong to the item).

        Single-valued navigation properties take ``$select``; collection-valued ones also take
        ``$filter``, ``$orderby`` and ``$top``. Nested ``$expand`` is not simulated. Unknown (or wrongly
        cased) navigation properties are a 400, as on the service; so is a ``$select`` of a property the
        navigation property's type lacks (``ownerid`` is typed ``principal``, which has only ``ownerid``).
        """
        result: list[Expand] = []
        for item in split_top(value, ","):
            match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?", item, re.DOTALL)
            if not match:
                raise bad_request(f"Syntax error in $expand: '{item}'.", CODE_QUERY)
            name, options = match.group(1), match.group(2)
            collection = ent.collections.get(name)
            nav = ent.navs.get(name)
            if collection is not None:
                expand = Expand(name, self.schema.entity(collection.target), collection=collection)
            elif nav is not None:
                expand = Expand(name, self.schema.entity(nav.declared_type), nav=nav)
            else:
                raise unknown_property(ent.type_name, name)
            target = expand.target
            for option in split_top(options or "", ";"):
                opt_name, _, opt_value = option.partition("=")
                opt_name, opt_value = opt_name.strip(), opt_value.strip()
                expand.raw_options.append(f"{opt_name}={opt_value}")
                if opt_name == "$select":
                    expand.select = parse_select(target, opt_value)
                elif collection is not None and opt_name == "$filter":
                    expand.predicate, expand.filter_navs = self.compile_filter(target, opt_value)
                elif collection is not None and opt_name == "$orderby":
                    expand.orderby = parse_orderby(target, opt_value)
                elif collection is not None and opt_name == "$top":
                    expand.top = _positive(opt_value)
                elif opt_name in ("$orderby", "$top"):
                    raise bad_request(_SINGLE_VALUED_EXPAND_ONLY, CODE_QUERY)
                else:
                    raise bad_request(
                        f"The simulator supports only $select (and $filter, $orderby, $top on collection-valued "
                        f"navigation properties) inside $expand, not '{opt_name}'.",
                        CODE_QUERY,
                    )
            result.append(expand)
        return result

    def compile_filter(self, ent: Entity, expression: str | None) -> tuple[Callable[[Record], bool], set[str]]:
        """The predicate plus the navigation properties its paths go through (to join before evaluating)."""
        try:
            predicate = compile_filter(expression)
        except FilterError as exc:
            raise bad_request(str(exc), CODE_QUERY) from exc
        navs: set[str] = set()
        if expression and expression.strip():
            tree = ODataParser().parse(ODataLexer().tokenize(expression))
            self._check_filter_names(ent, tree, navs)
        return predicate, navs

    def _check_filter_names(self, ent: Entity, node: Any, navs: set[str]) -> None:
        """Unknown column names are a 400 on the service, not an empty result."""
        if isinstance(node, ast.CollectionLambda):
            raise bad_request("Lambda operators (any/all) are not supported by the simulator.", CODE_QUERY)
        if isinstance(node, ast.Attribute):
            owner = node.owner
            if isinstance(owner, ast.Identifier) and owner.name not in ent.navs and owner.name not in ent.collections:
                raise unknown_property(ent.type_name, owner.name)
            if not isinstance(owner, ast.Identifier) or owner.name not in ent.navs:
                raise bad_request("Only single-valued navigation properties can be used in a $filter path.", CODE_QUERY)
            target = self.schema.entity(ent.navs[owner.name].declared_type)
            if node.attr not in target.readable_set:
                raise unknown_property(target.type_name, node.attr)
            navs.add(owner.name)
            return
        if isinstance(node, ast.Identifier):
            if node.name not in ent.readable_set:
                raise unknown_property(ent.type_name, node.name)
            return
        if isinstance(node, ast.Call):
            name = ".".join([*node.func.namespace, node.func.name])
            if name.lower() not in _FILTER_FUNCTIONS:
                raise bad_request(f"The function '{name}' is not supported by the simulator's $filter.", CODE_QUERY)
            for arg in node.args:
                self._check_filter_names(ent, arg, navs)
            return
        for child in ast_children(node):
            self._check_filter_names(ent, child, navs)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise bad_request(f"Invalid value '{value}' for $top query option found.", CODE_QUERY)
    return int(value)


def parse_select(ent: Entity, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    for name in names:
        if name not in ent.readable_set:
            raise unknown_property(ent.type_name, name)
    return names


def parse_orderby(ent: Entity, value: str) -> list[tuple[str, bool]]:
    clauses: list[tuple[str, bool]] = []
    for clause in (c.strip() for c in value.split(",")):
        parts = clause.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise bad_request(f"Syntax error in $orderby: '{clause}'.", CODE_QUERY)
        if parts[0] not in ent.readable_set:
            raise unknown_property(ent.type_name, parts[0])
        clauses.append((parts[0], len(parts) == 2 and parts[1].lower() == "desc"))
    return clauses


def parse_key(ent: Entity, raw: str) -> RowKey:
    """The text inside ``set(...)``: a GUID, ``<pk>=<guid>``, or the columns of one of the table's
    alternate keys (an org has none until someone defines them, crm-apis.md A4)."""
    text = raw.strip()
    if GUID_RE.fullmatch(text):
        return RowKey("pk", text.lower())
    invalid = bad_request(
        f"The key in the request URI is not valid for resource '{ent.type_name}'. Ensure that the names and "
        f"number of key properties match the declared or alternate key properties for the resource "
        f"'{ent.type_name}'.",
        CODE_QUERY,
    )
    try:
        pairs = parse_key_segment(text)
    except ValueError:
        raise invalid from None
    if len(pairs) == 1 and pairs[0][0] == ent.pk and not pairs[0][2] and GUID_RE.fullmatch(pairs[0][1]):
        return RowKey("pk", pairs[0][1].lower())
    given = {name: value for name, value, _ in pairs}
    if len(given) != len(pairs) or "" in given:
        raise invalid
    for key in ent.keys:
        if set(key.attributes) == set(given):
            return RowKey("alt", key=key, values=tuple(str(given[a]) for a in key.attributes))
    raise invalid


def decode_skiptoken(token: str, width: int) -> list[Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != width:
        raise bad_request("The $skiptoken is not valid for this query; use @odata.nextLink unchanged.", CODE_QUERY)
    return values


def encode_skiptoken(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def ast_children(node: Any) -> Iterator[Any]:
    """The child nodes of an odata-query AST node (its dataclass fields that are nodes)."""
    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ast._Node):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, ast._Node))

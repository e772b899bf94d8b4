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
from sandbox.sims.dataverse.schema import ENTITIES, Collection, EntityDef
from sandbox.sims.dataverse.store import Key
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
    """One item of ``$expand``; ``collection`` is set for collection-valued navigation properties."""

    nav: str
    select: list[str] | None = None
    collection: Collection | None = None
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


def parse_query(request: Request, ent: EntityDef) -> Query:
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
            query.expand = parse_expand(ent, value)
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


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise bad_request(f"Invalid value '{value}' for $top query option found.", CODE_QUERY)
    return int(value)


def parse_select(ent: EntityDef, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    readable = ent.readable_set
    for name in names:
        if name not in readable:
            raise unknown_property(ent.type_name, name)
    return names


def parse_expand(ent: EntityDef, value: str) -> list[Expand]:
    """Comma-separated items, split at top level only (commas inside ``(...)`` belong to the item).

    Single-valued (lookup) navigation properties take ``$select``; collection-valued ones
    (``ent.collections``) also take ``$filter``, ``$orderby`` and ``$top``. Nested ``$expand`` is
    not simulated. Unknown (or wrongly cased) navigation properties are a 400, as on the service.
    """
    result: list[Expand] = []
    for item in split_top(value, ","):
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?", item, re.DOTALL)
        if not match:
            raise bad_request(f"Syntax error in $expand: '{item}'.", CODE_QUERY)
        nav, options = match.group(1), match.group(2)
        collection = ent.collections.get(nav)
        if collection is None and nav not in ent.lookups:
            raise unknown_property(ent.type_name, nav)
        target = ENTITIES[collection.target if collection else ent.lookups[nav].target]
        expand = Expand(nav, collection=collection)
        for option in split_top(options or "", ";"):
            opt_name, _, opt_value = option.partition("=")
            opt_name, opt_value = opt_name.strip(), opt_value.strip()
            expand.raw_options.append(f"{opt_name}={opt_value}")
            if opt_name == "$select":
                expand.select = parse_select(target, opt_value)
            elif collection is not None and opt_name == "$filter":
                expand.predicate, expand.filter_navs = compile_checked_filter(target, opt_value)
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


def parse_orderby(ent: EntityDef, value: str) -> list[tuple[str, bool]]:
    clauses: list[tuple[str, bool]] = []
    readable = ent.readable_set
    for clause in (c.strip() for c in value.split(",")):
        parts = clause.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise bad_request(f"Syntax error in $orderby: '{clause}'.", CODE_QUERY)
        if parts[0] not in readable:
            raise unknown_property(ent.type_name, parts[0])
        clauses.append((parts[0], len(parts) == 2 and parts[1].lower() == "desc"))
    return clauses


def parse_key(ent: EntityDef, raw: str) -> Key:
    """``(pk, guid)`` or ``(alt, value)`` from the text inside ``set(...)``."""
    text = raw.strip()
    if GUID_RE.fullmatch(text):
        return ("pk", text.lower())
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
    if len(pairs) != 1:
        raise invalid
    name, value, quoted = pairs[0]
    if name == ent.pk and not quoted and GUID_RE.fullmatch(value):
        return ("pk", value.lower())
    if ent.alt_key and name == ent.alt_key and quoted:
        return ("alt", value)
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


def compile_checked_filter(ent: EntityDef, expression: str | None) -> tuple[Callable[[Record], bool], set[str]]:
    """The predicate plus the navigation properties its paths go through (to join before evaluating)."""
    try:
        predicate = compile_filter(expression)
    except FilterError as exc:
        raise bad_request(str(exc), CODE_QUERY) from exc
    navs: set[str] = set()
    if expression and expression.strip():
        tree = ODataParser().parse(ODataLexer().tokenize(expression))
        _check_filter_names(ent, tree, navs)
    return predicate, navs


def _check_filter_names(ent: EntityDef, node: Any, navs: set[str]) -> None:
    """Unknown column names are a 400 on the service, not an empty result."""
    readable = ent.readable_set
    if isinstance(node, ast.CollectionLambda):
        raise bad_request("Lambda operators (any/all) are not supported by the simulator.", CODE_QUERY)
    if isinstance(node, ast.Attribute):
        owner = node.owner
        if not isinstance(owner, ast.Identifier) or owner.name not in ent.lookups:
            raise bad_request("Only single-valued navigation properties can be used in a $filter path.", CODE_QUERY)
        target = ENTITIES[ent.lookups[owner.name].target]
        if node.attr not in target.readable_set:
            raise unknown_property(target.type_name, node.attr)
        navs.add(owner.name)
        return
    if isinstance(node, ast.Identifier):
        if node.name not in readable:
            raise unknown_property(ent.type_name, node.name)
        return
    if isinstance(node, ast.Call):
        name = ".".join([*node.func.namespace, node.func.name])
        if name.lower() not in _FILTER_FUNCTIONS:
            raise bad_request(f"The function '{name}' is not supported by the simulator's $filter.", CODE_QUERY)
        for arg in node.args:
            _check_filter_names(ent, arg, navs)
        return
    for child in _children(node):
        _check_filter_names(ent, child, navs)


def _children(node: Any) -> Iterator[Any]:
    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ast._Node):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, ast._Node))

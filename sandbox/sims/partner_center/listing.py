"""``GET /v1.0/engagements/referrals``: OData ``$filter``, ``$orderby``, ``$select`` and paging.

Reference §1.3: 100 referrals per page, each page linking the next with an absolute ``@odata.nextLink``
that carries a ``$skiptoken`` (and every other option of the request, so the next page is the same query).

``$filter`` honours only the documented fields. A comparison on any other field does not filter (it is
true for every referral), as a service that ignores what it does not index might answer: a client that
looks a referral up by an undocumented field gets every referral back and must notice. Documented parts
of the same expression still filter. The ignored comparison is true, so ``not (name eq 'x')`` is false.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from odata_query import ast
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.roundtrip import AstToODataVisitor
from odata_query.visitor import NodeTransformer

from sandbox.sims.odata import FilterError, compile_filter, sort_records
from sandbox.sims.partner_center.errors import invalid
from sandbox.sims.partner_center.fields import CANONICAL
from sandbox.sims.partner_center.referrals import REFERRALS_PATH

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

PAGE_SIZE = 100  # "If there are more than 100 items in a collection, use @odata.nextLink" (reference §1.3)
# "Supported $orderby fields: createdDateTime (DateTime), updatedDateTime (DateTime)" (reference §1.3).
ORDERBY_FIELDS: tuple[str, ...] = ("createdDateTime", "updatedDateTime")

# $filter fields the documentation shows, as slash paths; a lambda over ``team`` reads as ``team/<member>``.
DOCUMENTED_FILTER_FIELDS: tuple[str, ...] = (
    # Reference §1.3, "Filter/select fields seen in docs" (2020-2023 get-a-list-of-referrals [S2][S3]):
    # ``$filter=engagementId eq '…'``, ``status eq 'New' and qualification eq 'SalesQualified'``,
    # ``customerProfile/address/country eq 'US' and direction eq 'Incoming'``, ``type eq 'Shared'``,
    # ``substatus eq 'Pending'``, ``team/any(t:t/email eq 'r2d2@contoso.com')``.
    "engagementId",
    "status",
    "substatus",
    "qualification",
    "type",
    "direction",
    "customerProfile/address/country",
    "team/email",
    # Reference §1.3, May-2019 "Supported filter parameters" [S1] adds these two; ``email`` is
    # "Team contact email of the referral", so ``email eq 'x'`` means ``team/any(t:t/email eq 'x')``.
    "updatedDateTime",
    "email",
    # Reference §1.3 documents createdDateTime as a $orderby field, not a $filter one; honoured like its
    # DateTime sibling updatedDateTime (a deliberate choice, not a documented fact).
    "createdDateTime",
)
_DOCUMENTED = frozenset(name.lower() for name in DOCUMENTED_FILTER_FIELDS)
_COLLECTIONS = frozenset({"team"})  # the only collection a documented lambda runs over
_ALWAYS_TRUE = ast.Compare(ast.Eq(), ast.Boolean("true"), ast.Boolean("true"))

_DATE_FIELDS = ("createdDateTime", "updatedDateTime", "expirationDateTime", "acceptedDateTime", "closingDateTime")
_QUOTED_DATE = re.compile(r"\b(" + "|".join(_DATE_FIELDS) + r")\s+(eq|ne|gt|ge|lt|le)\s+'", re.IGNORECASE)


@dataclass(frozen=True)
class ListQuery:
    """The query options of one list request, checked before any referral is read."""

    predicate: Predicate
    orderby: str | None
    page_size: int
    offset: int
    select: str | None
    count: bool

    @classmethod
    def from_args(cls, request_args: Mapping[str, str]) -> ListQuery:
        args = {k.lower(): v for k, v in request_args.items()}
        predicate = compile_referral_filter(args.get("$filter"))
        orderby = check_orderby(args.get("$orderby"))
        page_size = min(_int_arg(args, "$top", PAGE_SIZE, minimum=1), PAGE_SIZE)
        offset = _int_arg(args, "$skip", 0, minimum=0)
        if "$skiptoken" in args:
            offset = _decode_skiptoken(args["$skiptoken"])
        return cls(
            predicate=predicate,
            orderby=orderby,
            page_size=page_size,
            offset=offset,
            select=args.get("$select") or None,
            count=args.get("$count", "").lower() == "true",
        )

    def page(
        self,
        matching: list[Record],
        *,
        base: str,
        render: Callable[[Record], Record],
        request_args: list[tuple[str, str]],
    ) -> dict[str, Any]:
        """The response body for the matching referrals: this page, and a next link when more follow."""
        ordered = sort_records(matching, self.orderby) if self.orderby else matching
        page = [render(r) for r in ordered[self.offset : self.offset + self.page_size]]
        if self.select:
            page = [_project(r, self.select) for r in page]
        body: dict[str, Any] = {"@odata.context": f"{base}/v1.0/$metadata#Referrals"}
        if self.count:
            body["@odata.count"] = len(ordered)
        body["value"] = page
        if self.offset + self.page_size < len(ordered):
            keep = [(k, v) for k, v in request_args if k.lower() not in ("$skiptoken", "$skip")]
            keep.append(("$skiptoken", _encode_skiptoken(self.offset + self.page_size)))
            body["@odata.nextLink"] = f"{base}{REFERRALS_PATH}?{urlencode(keep, quote_via=quote, safe='$')}"
        return body


def compile_referral_filter(expression: str | None) -> Predicate:
    """A predicate for ``$filter``; a malformed expression is a 400 ``invalidRequest``."""
    if expression and _QUOTED_DATE.search(expression):
        raise invalid(
            "Date-time values in $filter are DateTimeOffset literals and must not be "
            "quoted, e.g. updatedDateTime gt 2024-01-01T00:00:00Z."
        )
    if not expression or not expression.strip():
        return compile_filter(None)
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(expression))
    except Exception as exc:  # sly raises plain exceptions on bad tokens, as in sandbox.sims.odata
        raise invalid(f"Invalid $filter: Syntax error in $filter: {exc}") from exc
    honoured = _DocumentedFieldsOnly().visit(tree)
    # sandbox.sims.odata evaluates text, so the rewritten tree is printed; check the print is faithful.
    text = _Printer().visit(honoured)
    if ODataParser().parse(ODataLexer().tokenize(text)) != honoured:
        raise invalid(f"Invalid $filter: the simulator cannot evaluate {expression!r}.")
    try:
        return compile_filter(text)
    except FilterError as exc:
        raise invalid(f"Invalid $filter: {exc}") from exc


class _DocumentedFieldsOnly(NodeTransformer):
    """Rewrite a parsed ``$filter``: predicates on undocumented fields become true; ``email`` means a team email.

    ``and``/``or``/``not`` are kept (the generic visit rebuilds them); every other node is a predicate.
    """

    def visit_Compare(self, node: ast.Compare) -> ast._Node:
        return self._predicate(node)

    def visit_Call(self, node: ast.Call) -> ast._Node:  # contains(name, 'x') and friends
        return self._predicate(node)

    def visit_Identifier(self, node: ast.Identifier) -> ast._Node:  # a bare (boolean) field
        return self._predicate(node)

    def visit_Attribute(self, node: ast.Attribute) -> ast._Node:
        return self._predicate(node)

    def visit_CollectionLambda(self, node: ast.CollectionLambda) -> ast._Node:
        """``team/any(t:t/email eq '…')`` is documented; any other collection or member is ignored as a whole."""
        owner = _field_path(node.owner, {})
        if node.lambda_ is None or owner.lower() not in _COLLECTIONS:
            return _ALWAYS_TRUE
        scopes = {node.lambda_.identifier.name: owner}
        if any(path.lower() not in _DOCUMENTED for path in _fields(node.lambda_.expression, scopes)):
            return _ALWAYS_TRUE
        return node

    def _predicate(self, node: ast._Node) -> ast._Node:
        fields = [path.lower() for path in _fields(node, {})]
        if any(path not in _DOCUMENTED for path in fields):
            return _ALWAYS_TRUE
        if "email" in fields:
            member = ast.Identifier("member")
            inner = _EmailOf(member).visit(node)
            return ast.CollectionLambda(ast.Identifier("team"), ast.Any(), ast.Lambda(member, inner))
        return node


class _EmailOf(NodeTransformer):
    """``email`` (the 2019 filter parameter) becomes ``<member>/email`` inside a lambda over ``team``."""

    def __init__(self, member: ast.Identifier) -> None:
        self._member = member

    def visit_Identifier(self, node: ast.Identifier) -> ast._Node:
        if not node.namespace and node.name.lower() == "email":
            return ast.Attribute(self._member, "email")
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast._Node:
        return node  # a path like customerProfile/email is not the bare 2019 parameter


def _fields(node: ast._Node, scopes: dict[str, str]) -> Iterator[str]:
    """The field paths a predicate reads (``customerProfile/address/country``, ``team/email``)."""
    if isinstance(node, (ast.Identifier, ast.Attribute)):
        yield _field_path(node, scopes)
    elif isinstance(node, ast.Call):
        for argument in node.args:
            yield from _fields(argument, scopes)
    elif isinstance(node, (ast.Compare, ast.BinOp, ast.BoolOp)):
        yield from _fields(node.left, scopes)
        yield from _fields(node.right, scopes)
    elif isinstance(node, ast.UnaryOp):
        yield from _fields(node.operand, scopes)
    elif isinstance(node, ast.CollectionLambda):
        yield f"{_field_path(node.owner, scopes)}/*"  # a lambda used as a value: never documented
    elif isinstance(node, ast.List):
        for item in node.val:
            yield from _fields(item, scopes)


def _field_path(node: ast._Node, scopes: dict[str, str]) -> str:
    if isinstance(node, ast.Identifier):
        if not node.namespace and node.name in scopes:
            return scopes[node.name]
        return ".".join((*node.namespace, node.name))
    if isinstance(node, ast.Attribute):
        return f"{_field_path(node.owner, scopes)}/{node.attr}"
    return f"({type(node).__name__})"  # e.g. a function's result: not a documented field


class _Printer(AstToODataVisitor):
    """odata-query's printer, with string literals escaped (it writes ``'a'b'`` for ``a'b``)."""

    def visit_String(self, node: ast.String) -> str:
        return "'" + node.val.replace("'", "''") + "'"


def check_orderby(orderby: str | None) -> str | None:
    """``$orderby`` on the documented fields only, in their wire spelling for the sorter."""
    if not orderby:
        return None
    clauses = []
    for clause in orderby.split(","):
        parts = clause.split()
        if not parts or len(parts) > 2:
            raise invalid(f"Invalid $orderby clause {clause!r}.")
        field_name = parts[0].lower()
        if field_name not in {f.lower() for f in ORDERBY_FIELDS}:
            raise invalid(f"$orderby on {parts[0]} is not supported; use {' or '.join(ORDERBY_FIELDS)}.")
        direction = parts[1].lower() if len(parts) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise invalid(f"Invalid $orderby direction {parts[1]!r}.")
        clauses.append(f"{CANONICAL[field_name]} {direction}")
    return ",".join(clauses)


def _int_arg(args: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    if name not in args:
        return default
    try:
        value = int(args[name])
    except ValueError:
        raise invalid(f"{name} must be an integer.") from None
    if value < minimum:
        raise invalid(f"{name} must be at least {minimum}.")
    return value


def _encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_skiptoken(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["o"]
    except (ValueError, KeyError, TypeError):
        raise invalid("Invalid $skiptoken.") from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid("Invalid $skiptoken.")
    return offset


def _project(record: Record, select: str) -> Record:
    wanted = {s.strip().lower() for s in select.split(",") if s.strip()}
    return {k: v for k, v in record.items() if k.lower() in wanted}

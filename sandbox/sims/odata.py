"""Evaluate OData ``$filter`` and ``$orderby`` against plain dicts, for the simulators.

Parsing is done by ``odata-query`` (a real OData v4 grammar, so badly escaped literals fail the
way they would on the real services); this module only walks its AST. String comparisons are
case-insensitive, as in Dataverse's default collation and Partner Center's behaviour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

Record = dict[str, Any]


class FilterError(ValueError):
    """The filter could not be parsed or uses something the simulator does not support."""


def compile_filter(expression: str | None) -> Callable[[Record], bool]:
    if not expression or not expression.strip():
        return lambda _record: True
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(expression))
    except (ODataException, Exception) as exc:  # sly raises plain exceptions on bad tokens
        raise FilterError(f"Syntax error in $filter: {exc}") from exc

    def predicate(record: Record) -> bool:
        return bool(_eval(tree, record, {}))

    return predicate


def sort_records(records: list[Record], orderby: str | None) -> list[Record]:
    """Apply ``$orderby=a asc,b desc`` (stable, nulls first as in OData)."""
    if not orderby:
        return records
    result = list(records)
    for clause in reversed([c.strip() for c in orderby.split(",") if c.strip()]):
        parts = clause.split()
        field = parts[0]
        descending = len(parts) > 1 and parts[1].lower() == "desc"
        result.sort(key=lambda r, f=field: _sort_key(_resolve(r, f.split("/"))), reverse=descending)
    return result


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.casefold())
    return (1, value)


def _resolve(record: Any, path: list[str]) -> Any:
    current = record
    for segment in path:
        if not isinstance(current, dict):
            return None
        if segment in current:
            current = current[segment]
            continue
        lowered = {k.lower(): v for k, v in current.items()}
        current = lowered.get(segment.lower())
    return current


def _literal(node: ast._Node) -> Any:
    if isinstance(node, ast.String):
        return node.val
    if isinstance(node, ast.Integer):
        return int(node.val)
    if isinstance(node, ast.Float):
        return float(node.val)
    if isinstance(node, ast.Boolean):
        return node.val.lower() == "true"
    if isinstance(node, ast.Null):
        return None
    if isinstance(node, (ast.GUID,)):
        return node.val.lower()
    if isinstance(node, ast.DateTime):
        return _parse_datetime(node.val)
    if isinstance(node, ast.Date):
        return dt.date.fromisoformat(node.val)
    raise FilterError(f"Unsupported literal {type(node).__name__}")


def _parse_datetime(value: str) -> dt.datetime:
    text = value.strip().replace("Z", "+00:00")
    # Python 3.11 accepts up to 6 fractional digits reliably; Partner Center sends 7.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _normalise_pair(left: Any, right: Any) -> tuple[Any, Any]:
    """Make record values comparable with literals: datetimes, GUIDs, case-insensitive strings."""
    if isinstance(right, dt.datetime) and isinstance(left, str):
        try:
            left = _parse_datetime(left)
        except ValueError:
            return left, right
    elif isinstance(left, dt.datetime) and isinstance(right, str):
        try:
            right = _parse_datetime(right)
        except ValueError:
            return left, right
    if isinstance(right, dt.date) and not isinstance(right, dt.datetime) and isinstance(left, str):
        left = dt.date.fromisoformat(left[:10])
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold(), right.casefold()
    return left, right


_COMPARATORS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Gt: lambda a, b: a is not None and b is not None and a > b,
    ast.GtE: lambda a, b: a is not None and b is not None and a >= b,
    ast.Lt: lambda a, b: a is not None and b is not None and a < b,
    ast.LtE: lambda a, b: a is not None and b is not None and a <= b,
}


def _value(node: ast._Node, record: Record, scope: dict[str, Any]) -> Any:
    if isinstance(node, ast.Identifier):
        if node.name in scope:
            return scope[node.name]
        return _resolve(record, [*node.namespace, node.name])
    if isinstance(node, ast.Attribute):
        owner = _value(node.owner, record, scope)
        return _resolve(owner, [node.attr])
    if isinstance(node, ast.Call):
        return _call(node, record, scope)
    return _literal(node)


def _call(node: ast.Call, record: Record, scope: dict[str, Any]) -> Any:
    name = node.func.name.lower()
    args = [_value(a, record, scope) for a in node.args]
    if name in ("contains", "startswith", "endswith"):
        haystack, needle = args
        if haystack is None or needle is None:
            return False
        haystack, needle = str(haystack).casefold(), str(needle).casefold()
        return {
            "contains": needle in haystack,
            "startswith": haystack.startswith(needle),
            "endswith": haystack.endswith(needle),
        }[name]
    if name == "tolower":
        return None if args[0] is None else str(args[0]).lower()
    if name == "toupper":
        return None if args[0] is None else str(args[0]).upper()
    raise FilterError(f"Unsupported function {name}()")


def _eval(node: ast._Node, record: Record, scope: dict[str, Any]) -> Any:
    if isinstance(node, ast.BoolOp):
        left = _eval(node.left, record, scope)
        if isinstance(node.op, ast.And):
            return bool(left) and bool(_eval(node.right, record, scope))
        return bool(left) or bool(_eval(node.right, record, scope))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, record, scope)
    if isinstance(node, ast.Compare):
        left, right = _normalise_pair(_value(node.left, record, scope), _value(node.right, record, scope))
        comparator = _COMPARATORS.get(type(node.comparator))
        if comparator is None:
            raise FilterError(f"Unsupported operator {type(node.comparator).__name__}")
        try:
            return comparator(left, right)
        except TypeError:
            return False
    if isinstance(node, ast.CollectionLambda):
        items = _value(node.owner, record, scope) or []
        variable = node.lambda_.identifier.name
        hits = (bool(_eval(node.lambda_.expression, record, {**scope, variable: item})) for item in items)
        return any(hits) if isinstance(node.operator, ast.Any) else all(hits)
    if isinstance(node, ast.Call):
        return _call(node, record, scope)
    if isinstance(node, (ast.Identifier, ast.Attribute)):
        return _value(node, record, scope)
    raise FilterError(f"Unsupported expression {type(node).__name__}")

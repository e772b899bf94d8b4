"""SOQL against the store: binding names to the schema, type-checking filters, filtering, sorting, projecting.

Binding errors read like the service's: an unknown object is INVALID_TYPE ("sObject type 'X' is not
supported…"), an unknown field INVALID_FIELD ("No such column 'X' on entity 'Opportunity'…", the
wording in n8n-io/n8n#15264 and mautic/mautic#13406), an unknown relationship INVALID_FIELD ("Didn't
understand relationship 'X' in field path…"), and a literal of the wrong type for its field
INVALID_QUERY_FILTER_OPERATOR ("value of filter criterion for field 'CloseDate' must be of type date and
should not be enclosed in quotes"). All of them carry the caret layout of ``soql.locate``.

Semantics (SOQL and SOSL Reference): text comparisons and sorting are case-insensitive ("Sorting is
case insensitive", ORDER BY); ``!=`` and ``NOT IN`` match null values; nulls sort first unless ``NULLS
LAST``; Long Text Area fields cannot be filtered or sorted; OFFSET is at most 2,000 ("Paging with
OFFSET": NUMBER_OUTSIDE_VALID_RANGE). Child subqueries return ``{"totalSize", "done", "records"}``
or null when there are no children; relationship fields return the parent as a nested record, or
null when the reference is empty.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.sims.salesforce.errors import SalesforceError
from sandbox.sims.salesforce.ids import normalise
from sandbox.sims.salesforce.schema import NUMBER_TYPES, TEXT_TYPES, Field, Schema, SObject
from sandbox.sims.salesforce.soql import Comparison, Condition, Junction, Not, Path, Query, SoqlSyntaxError, Value
from sandbox.sims.salesforce.soql import locate as _locate
from sandbox.sims.salesforce.soql import parse as _parse
from sandbox.sims.salesforce.store import Store
from sandbox.sims.salesforce.wire import Record, format_datetime, parse_datetime

MAX_OFFSET = 2000
_CUSTOM_FIELD_HINT = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. "
    "Please reference your WSDL or the describe call for the appropriate names."
)
_CUSTOM_RELATIONSHIP_HINT = (
    "If you are attempting to use a custom relationship, be sure to append the '__r' after the custom "
    "relationship name. Please reference your WSDL or the describe call for the appropriate names."
)


@dataclass(frozen=True)
class Bound:
    """A field path bound to the schema: the reference hops to follow, then the field to read."""

    hops: tuple[tuple[SObject, Field], ...]  # (object holding the reference, reference field)
    field: Field
    owner: SObject  # the object the final field belongs to


@dataclass
class Plan:
    obj: SObject
    query: Query
    select: list[tuple[Bound, Any] | tuple[None, Plan]]
    predicate: Callable[[Record], bool]
    order: list[tuple[Bound, bool, bool]]
    relationship: str | None = None  # for a subquery: the child relationship name
    child_field: str | None = None  # for a subquery: the child's reference to the parent


class QueryEngine:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.schema = store.schema

    # ----- entry point -----
    def run(
        self, soql: str, *, include_deleted: bool, version: str, schema: Schema | None = None
    ) -> tuple[list[Record], int, bool]:
        """Records (projected), totalSize, and whether the query was ``COUNT()``. ``schema``: the org as the
        caller sees it (access.py), so a field or object it has no permission for is unknown to SOQL."""
        self.text = soql
        self.schema = schema or self.store.schema
        try:
            query = _parse(soql)
        except SoqlSyntaxError as exc:
            raise SalesforceError(400, "MALFORMED_QUERY", _locate(soql, exc.pos, exc.reason)) from None
        obj = self.schema.sobject(query.source)
        if obj is None:
            raise self._error(
                "INVALID_TYPE",
                query.source_pos,
                f"sObject type '{query.source}' is not supported. If you are attempting to use a custom object, be "
                "sure to append the '__c' after the entity name. Please reference your WSDL or the describe call "
                "for the appropriate names.",
            )
        plan = self._plan(obj, query)
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise SalesforceError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        rows = [r for r in self.store.all_rows(obj, deleted=include_deleted) if plan.predicate(r)]
        rows = self._sort(rows, plan.order)
        start = query.offset or 0
        rows = rows[start : start + query.limit if query.limit is not None else None]
        if query.count:
            return [], len(rows), True
        return [self._project(plan, row, version, include_deleted) for row in rows], len(rows), False

    # ----- binding -----
    def _error(self, code: str, pos: int, reason: str) -> SalesforceError:
        return SalesforceError(400, code, _locate(self.text, pos, reason))

    def _plan(self, obj: SObject, query: Query, relationship: str | None = None) -> Plan:
        select: list[tuple[Bound, Any] | tuple[None, Plan]] = []
        seen: set[str] = set()
        for item in query.fields:
            if isinstance(item, Query):
                child = obj.child(item.source)
                if child is None:
                    raise self._error(
                        "INVALID_TYPE",
                        item.source_pos,
                        f"Didn't understand relationship '{item.source}' in FROM part of query call. "
                        + _CUSTOM_RELATIONSHIP_HINT,
                    )
                sub = self._plan(self.schema.objects[child.child], item, relationship=child.name)
                sub.child_field = child.field
                select.append((None, sub))
                continue
            bound = self._bind(obj, item)
            key = ".".join([*(f.relationship_name or "" for _, f in bound.hops), bound.field.name]).lower()
            if key in seen:
                raise self._error("MALFORMED_QUERY", item.pos, f"duplicate field selected: {bound.field.name}")
            seen.add(key)
            select.append((bound, item))
        predicate = self._predicate(obj, query.where) if query.where is not None else (lambda _row: True)
        order = []
        for o in query.order:
            bound = self._bind(obj, o.path)
            if bound.field.long_text:
                raise self._error(
                    "INVALID_FIELD", o.path.pos, f"field '{bound.field.name}' can not be sorted in a query call"
                )
            order.append((bound, o.descending, o.nulls_last))
        return Plan(obj, query, select, predicate, order, relationship)

    def _bind(self, obj: SObject, path: Path) -> Bound:
        parts = list(path.parts)
        if len(parts) > 1 and parts[0].lower() == obj.name.lower() and obj.relationship(parts[0]) is None:
            parts = parts[1:]  # "Opportunity.Name" FROM Opportunity: the object name may qualify a field
        hops: list[tuple[SObject, Field]] = []
        current = obj
        for name in parts[:-1]:
            ref = current.relationship(name)
            if ref is None:
                raise self._error(
                    "INVALID_FIELD",
                    path.pos,
                    f"Didn't understand relationship '{name}' in field path. " + _CUSTOM_RELATIONSHIP_HINT,
                )
            hops.append((current, ref))
            current = self.schema.objects[ref.reference_to[0]]
        f = current.field(parts[-1])
        if f is None:
            raise self._error(
                "INVALID_FIELD",
                path.pos,
                f"No such column '{parts[-1]}' on entity '{current.name}'. " + _CUSTOM_FIELD_HINT,
            )
        return Bound(tuple(hops), f, current)

    # ----- filters -----
    def _predicate(self, obj: SObject, cond: Condition) -> Callable[[Record], bool]:
        if isinstance(cond, Junction):
            parts = [self._predicate(obj, c) for c in cond.operands]
            if cond.op == "AND":
                return lambda row: all(p(row) for p in parts)
            return lambda row: any(p(row) for p in parts)
        if isinstance(cond, Not):
            inner = self._predicate(obj, cond.operand)
            return lambda row: not inner(row)
        return self._comparison(obj, cond)

    def _comparison(self, obj: SObject, cmp: Comparison) -> Callable[[Record], bool]:
        bound = self._bind(obj, cmp.path)
        f = bound.field
        if f.long_text:
            raise self._error("INVALID_FIELD", cmp.path.pos, f"field '{f.name}' can not be filtered in a query call")
        if cmp.op in ("INCLUDES", "EXCLUDES"):
            raise self._error(
                "INVALID_QUERY_FILTER_OPERATOR",
                cmp.path.pos,
                "includes or excludes operator only valid on multipicklist field",
            )
        values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
        for v in values:
            if v.like_only and cmp.op != "LIKE":
                raise self._error(
                    "MALFORMED_QUERY",
                    v.pos,
                    f"Invalid string literal {v.text}. Illegal character sequence '\\%' or '\\_' in string literal "
                    "(only valid in a LIKE pattern).",
                )
        read = functools.partial(self._read, bound)
        if cmp.op == "LIKE":
            value = values[0]
            if f.type not in TEXT_TYPES or f.type in ("id", "reference") or value.kind != "string":
                raise self._error(
                    "INVALID_QUERY_FILTER_OPERATOR", cmp.path.pos, f"invalid operator on {f.type} field: {f.name}"
                )
            regex = re.compile(value.pattern or "", re.IGNORECASE | re.DOTALL)
            return lambda row: (lambda v: v is not None and regex.fullmatch(str(v)) is not None)(read(row))
        literals = [self._literal(f, v) for v in values]
        if cmp.op in ("IN", "NOT IN"):
            wanted = [lit for lit in literals]
            if cmp.op == "IN":
                return lambda row: any(_matches(_key(f, read(row)), lit) for lit in wanted)
            return lambda row: not any(_matches(_key(f, read(row)), lit) for lit in wanted)
        literal = literals[0]
        op = cmp.op
        return lambda row: _compare(op, _key(f, read(row)), literal)

    def _literal(self, f: Field, v: Value) -> Any:
        """A literal as a comparable key for field ``f`` (see :func:`_key`), or a relative date range."""
        if v.kind == "null":
            return None
        kind = f.type
        expected: str
        if kind in ("id", "reference"):
            if v.kind != "string":
                expected = "id"
            else:
                canonical = normalise(v.value)
                if canonical is None:
                    raise self._error("INVALID_QUERY_FILTER_OPERATOR", v.pos, f"invalid ID field: {v.value}")
                return canonical
        elif kind in TEXT_TYPES:
            if v.kind == "string":
                return v.value.casefold()
            expected = "string"
        elif kind == "boolean":
            if v.kind == "boolean":
                return v.value
            expected = "boolean"
        elif kind in NUMBER_TYPES:
            if v.kind == "number":
                return float(v.value)
            expected = "integer" if kind == "int" else "double"
        elif kind == "date":
            if v.kind == "date":
                return dt.date.fromisoformat(v.value)
            if v.kind == "relative":
                return self._relative(v, dates=True)
            expected = "date"
        else:  # datetime
            if v.kind == "datetime":
                return parse_datetime(v.value)
            if v.kind == "relative":
                return self._relative(v, dates=False)
            expected = "dateTime"
        quoted = "should be enclosed in quotes" if expected in ("string", "id") else "should not be enclosed in quotes"
        raise self._error(
            "INVALID_QUERY_FILTER_OPERATOR",
            v.pos,
            f"value of filter criterion for field '{f.name}' must be of type {expected} and {quoted}",
        )

    def _relative(self, v: Value, *, dates: bool) -> _Range:
        """TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n as a half-open range (UTC days)."""
        name, n = v.value
        today = self.store.clock().astimezone(dt.UTC).date()
        one = dt.timedelta(days=1)
        start, end = {
            "TODAY": (today, today + one),
            "YESTERDAY": (today - one, today),
            "TOMORROW": (today + one, today + 2 * one),
            "LAST_N_DAYS": (today - n * one, today + one),
            "NEXT_N_DAYS": (today + one, today + (n + 1) * one),
        }[name]
        if dates:
            return _Range(start, end)
        return _Range(_midnight(start), _midnight(end))

    def _read(self, bound: Bound, row: Record | None) -> Any:
        for _holder, ref in bound.hops:
            if row is None or row.get(ref.name) is None:
                return None
            row = self.store.find(self.schema.objects[ref.reference_to[0]], row[ref.name])
        return None if row is None else row.get(bound.field.name)

    # ----- ordering -----
    def _sort(self, rows: list[Record], order: list[tuple[Bound, bool, bool]]) -> list[Record]:
        if not order:
            return sorted(rows, key=lambda r: r["Id"])  # unspecified by the service; stable here
        keys = [(functools.partial(self._read, b), b.field, desc, nulls_last) for b, desc, nulls_last in order]

        def compare(a: Record, b: Record) -> int:
            for read, f, desc, nulls_last in keys:
                x, y = _key(f, read(a)), _key(f, read(b))
                if x is None or y is None:
                    if x is None and y is None:
                        continue
                    null_first = -1 if not nulls_last else 1
                    return null_first if x is None else -null_first
                if x != y:
                    result = -1 if x < y else 1
                    return -result if desc else result
            return 0

        return sorted(rows, key=functools.cmp_to_key(compare))

    # ----- projection -----
    def _project(self, plan: Plan, row: Record, version: str, include_deleted: bool) -> Record:
        out: Record = {"attributes": attributes(plan.obj, row["Id"], version)}
        for bound, item in plan.select:
            if bound is None:
                sub: Plan = item
                out[sub.relationship or sub.obj.name] = self._children(sub, row, version, include_deleted)
                continue
            target = out
            current: Record | None = row
            for _holder, ref in bound.hops:
                rel = ref.relationship_name or ref.name
                parent_obj = self.schema.objects[ref.reference_to[0]]
                parent = self.store.find(parent_obj, current[ref.name]) if current and current.get(ref.name) else None
                if parent is None:
                    target.setdefault(rel, None)
                    target = None  # type: ignore[assignment]
                    break
                nested = target.get(rel)
                if not isinstance(nested, dict):
                    nested = {"attributes": attributes(parent_obj, parent["Id"], version)}
                    target[rel] = nested
                target, current = nested, parent
            if target is not None and current is not None:
                target[bound.field.name] = wire_value(bound.field, current.get(bound.field.name))
        return out

    def _children(self, sub: Plan, parent: Record, version: str, include_deleted: bool) -> Record | None:
        rows = [
            r
            for r in self.store.all_rows(sub.obj, deleted=include_deleted)
            if r.get(sub.child_field or "") == parent["Id"] and sub.predicate(r)
        ]
        rows = self._sort(rows, sub.order)
        start = sub.query.offset or 0
        rows = rows[start : start + sub.query.limit if sub.query.limit is not None else None]
        if not rows:
            return None
        records = [self._project(sub, r, version, include_deleted) for r in rows]
        return {"totalSize": len(records), "done": True, "records": records}


@dataclass(frozen=True)
class _Range:
    start: Any
    end: Any  # exclusive


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _key(f: Field, value: Any) -> Any:
    """A stored value as a comparable key: text case-folded, numbers as floats, dates and ids as they are."""
    if value is None:
        return None
    if f.type in ("id", "reference"):
        return value
    if f.type in TEXT_TYPES:
        return str(value).casefold()
    if f.type in NUMBER_TYPES:
        return float(value)
    return value


def _matches(key: Any, literal: Any) -> bool:
    if isinstance(literal, _Range):
        return key is not None and literal.start <= key < literal.end
    return key == literal


def _compare(op: str, key: Any, literal: Any) -> bool:
    if op == "=":
        return _matches(key, literal) if literal is not None else key is None
    if op == "!=":
        return not _matches(key, literal) if literal is not None else key is not None
    if key is None or literal is None:
        return False
    if isinstance(literal, _Range):
        low, high = literal.start, literal.end
        return {"<": key < low, "<=": key < high, ">": key >= high, ">=": key >= low}[op]
    return {"<": key < literal, "<=": key <= literal, ">": key > literal, ">=": key >= literal}[op]


def attributes(obj: SObject, record_id: str, version: str) -> dict[str, str]:
    return {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{record_id}"}


def wire_value(f: Field, value: Any) -> Any:
    """A stored value as JSON: datetimes ``…T12:00:00.000+0000``, dates ``YYYY-MM-DD``, numbers as numbers."""
    if value is None:
        return None
    if f.type == "datetime" and isinstance(value, dt.datetime):
        return format_datetime(value)
    if f.type == "date" and isinstance(value, dt.date):
        return value.isoformat()
    if f.type == "int":
        return int(value)
    if f.type in NUMBER_TYPES:
        return float(value)
    return value


def project_row(obj: SObject, row: Record, version: str, fields: list[Field] | None = None) -> Record:
    """A whole row (or the listed fields) as the sObject Rows resource returns it."""
    out: Record = {"attributes": attributes(obj, row["Id"], version)}
    for f in fields or list(obj.fields.values()):
        out[f.name] = wire_value(f, row.get(f.name))
    return out

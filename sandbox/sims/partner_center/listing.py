"""``GET /v1.0/engagements/referrals``: OData ``$filter``, ``$orderby``, ``$select`` and paging.

Reference §1.3: 100 referrals per page, each page linking the next with an absolute ``@odata.nextLink``
that carries a ``$skiptoken`` (and every other option of the request, so the next page is the same query).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.sims.odata import FilterError, compile_filter, sort_records
from sandbox.sims.partner_center.errors import invalid
from sandbox.sims.partner_center.fields import CANONICAL
from sandbox.sims.partner_center.referrals import REFERRALS_PATH

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

PAGE_SIZE = 100  # "If there are more than 100 items in a collection, use @odata.nextLink" (reference §1.3)
# "Supported $orderby fields: createdDateTime (DateTime), updatedDateTime (DateTime)" (reference §1.3).
ORDERBY_FIELDS: tuple[str, ...] = ("createdDateTime", "updatedDateTime")

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
    try:
        return compile_filter(expression)
    except FilterError as exc:
        raise invalid(f"Invalid $filter: {exc}") from exc


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

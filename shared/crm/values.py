"""Reading a CRM row's loosely typed values into the deal model; both adapters read them the same way."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any


def decimal_or_none(value: Any) -> Decimal | None:
    """A money or number column's value; empty or unreadable is None (the deal then says what is missing)."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def date_or_none(value: Any) -> dt.date | None:
    """A date or date-time column's date part; empty or unreadable is None."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None

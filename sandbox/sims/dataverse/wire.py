"""Wire-format helpers shared by the record and metadata endpoints: responses, ETags, key segments, time."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.sims.base import json_response
from sandbox.sims.dataverse.errors import bad_request

API = "/api/data/v9.2"
MAX_PAGE_SIZE = 5000

Record = dict[str, Any]

LOOKUP_TARGET = "Microsoft.Dynamics.CRM.lookuplogicalname"
LOOKUP_NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"
GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def utc_now() -> str:
    """Now with the service's second precision (``2026-11-21T10:00:00Z``)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def etag(record: Record) -> str:
    return f'W/"{record["versionnumber"]}"'


def etag_matches(header: str, row: Record) -> bool:
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


def odata_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response(payload, status, {"OData-Version": "4.0", **(headers or {})})


def empty_response(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status=status, headers={"OData-Version": "4.0", **(headers or {})})


def base_url(request: Request) -> str:
    return request.host_url.rstrip("/") + API


def read_body(request: Request) -> Record:
    """The JSON object of a write; anything else is the deserialiser's 400."""
    data = request.get_data(cache=True)
    if not data.strip():
        raise bad_request("The request body is empty; a JSON object is required.")
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise bad_request(f"Error identified in Payload provided by the user: invalid JSON ({exc}).") from exc
    if not isinstance(body, dict):
        raise bad_request("Error identified in Payload provided by the user: a JSON object is required.")
    return body


def split_top(text: str, sep: str) -> list[str]:
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


def parse_key_segment(text: str) -> list[tuple[str, Any, bool]]:
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


def preferences(request: Request) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for header in request.headers.getlist("Prefer"):
        for item in split_top(header, ","):
            name, _, value = item.partition("=")
            prefs[name.strip().lower()] = value.strip().strip('"')
    return prefs


def normalise_stamp(value: str) -> str:
    """A seeded ``createdon``/``modifiedon`` the way the service returns it: UTC, whole seconds, ``Z``."""
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?)(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?", value.strip()
    )
    try:
        if not match:
            raise ValueError(value)
        parsed = dt.datetime.fromisoformat(match.group(1) + (match.group(2) or "Z").replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset'.") from None
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def valid_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def valid_datetime(value: str) -> bool:
    if DATE_RE.fullmatch(value):
        return valid_date(value)
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value

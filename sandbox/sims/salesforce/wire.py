"""Wire-format helpers: API versions, JSON responses, the ``Sforce-Limit-Info`` header, dates and datetimes.

Datetimes go out as ``2026-11-30T12:00:00.000+0000`` (what the REST API returns for dateTime fields)
and are stored with second precision; dates as ``2026-11-30``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.sims.base import json_response
from sandbox.sims.salesforce.errors import SalesforceError, json_parser_error, not_found

Record = dict[str, Any]

VERSION_RE = re.compile(r"v(\d+)\.(\d)")
FIRST_VERSION = 20  # /services/data/ lists 20.0 (Winter '11) upwards
DEFAULT_LATEST_VERSION = "66.0"  # Spring '26
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?")


def check_version(version: str) -> str:
    """``v60.0`` -> ``60.0``; anything else is an unknown resource (404 NOT_FOUND)."""
    match = VERSION_RE.fullmatch(version)
    if not match:
        raise not_found()
    return f"{int(match.group(1))}.{match.group(2)}"


def version_at_least(version: str, major: int) -> bool:
    return int(version.split(".")[0]) >= major


def release_label(major: int) -> str:
    """Salesforce names three releases a year: v60.0 = Spring '24, v61.0 = Summer '24, v62.0 = Winter '25."""
    k = major - 60
    season = ("Spring", "Summer", "Winter")[k % 3]
    year = 24 + k // 3 + (1 if season == "Winter" else 0)
    return f"{season} '{year:02d}"


def versions(latest: str) -> list[dict[str, str]]:
    """``GET /services/data/``: ``[{"label", "url", "version"}]`` (resources-versions.md)."""
    last = int(latest.split(".")[0])
    return [
        {"label": release_label(major), "url": f"/services/data/v{major}.0", "version": f"{major}.0"}
        for major in range(FIRST_VERSION, last + 1)
    ]


def sf_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response(payload, status, headers)


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status=status, headers=headers or {})


def error_response(exc: SalesforceError, headers: dict[str, str] | None = None) -> Response:
    return json_response(exc.body(), exc.status, {**exc.headers, **(headers or {})})


def read_json(request: Request) -> Any:
    """The request body as JSON; an unparsable body is JSON_PARSER_ERROR, as the service answers."""
    data = request.get_data(cache=True)
    if not data.strip():
        raise json_parser_error("The request body is either invalid or incomplete.")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise json_parser_error(
            f"Unexpected character ('{data[exc.pos : exc.pos + 1].decode(errors='replace')}'): "
            f"was expecting a JSON value at [line:{exc.lineno}, column:{exc.colno}]"
        ) from None


def read_object(request: Request) -> Record:
    body = read_json(request)
    if not isinstance(body, dict):
        raise json_parser_error("Cannot deserialize instance of sObject from START_ARRAY value [line:1, column:1]")
    return body


# ----------------------------------------------------------------------------- time


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def format_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def parse_datetime(text: str) -> dt.datetime | None:
    """ISO 8601 as clients send it (``Z``, ``+00:00``, ``+0000`` or no zone = UTC), to second precision."""
    match = _DATETIME_RE.fullmatch(text)
    if not match:
        return None
    day, hour, minute, second, zone = match.groups()
    try:
        value = dt.datetime.fromisoformat(f"{day}T{hour}:{minute}:{second}")
    except ValueError:
        return None
    offset = dt.timedelta(0)
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    return value.replace(tzinfo=dt.timezone(offset)).astimezone(dt.UTC)


def parse_date(text: str) -> dt.date | None:
    if not DATE_RE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def sforce_limit_info(used: int, limit: int) -> dict[str, str]:
    # "Sforce-Limit-Info: api-usage=18/5000" on every REST response (headers_api_usage.htm).
    return {"Sforce-Limit-Info": f"api-usage={used}/{limit}"}


def bad_request(code: str, message: str, fields: list[str] | None = None) -> SalesforceError:
    return SalesforceError(400, code, message, fields)

"""JSON responses for the HTTP functions: every refusal says why, in a stable shape."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func


def json_response(payload: Any, status: int = 200) -> func.HttpResponse:
    # A lone surrogate (valid JSON "\ud800" in what we echo) cannot be UTF-8: keep it as an escape.
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace")
    return func.HttpResponse(body, status_code=status, mimetype="application/json", charset="utf-8")


def problem(status: int, reason: str, **extra: Any) -> func.HttpResponse:
    """``{"error": {"status", "reason", ...}}`` for any 4xx/5xx the app answers itself."""
    return json_response({"error": {"status": status, "reason": reason, **extra}}, status)


def json_body(req: func.HttpRequest) -> dict[str, Any] | None:
    """The request body as a JSON object; ``{}`` when empty, None when it is not an object."""
    raw = req.get_body()
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

"""Partner Center's error body, and the codes the simulator puts in it.

Handlers deep in the referral state raise :class:`ApiError`; the WSGI layer turns it into the
``{"error": {"code", "message", "target"}}`` body of reference §3.2, so every refusal looks the same.
"""

from __future__ import annotations

from typing import Any

# Codes the real service uses for these statuses (reference §3.2), given to injected faults.
FAULT_CODES: dict[int, str] = {
    429: "tooManyRequests",
    500: "generalException",
    502: "badGateway",
    503: "serviceNotAvailable",
    504: "gatewayTimeout",
}
# The base simulator names routing failures after werkzeug's exceptions; Partner Center does not.
ROUTING_CODES: dict[str, str] = {
    "NotFound": "itemNotFound",
    "MethodNotAllowed": "methodNotAllowed",
    "BadRequest": "invalidRequest",
}


class ApiError(Exception):
    """A Partner Center error response raised from deep inside a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(message: str) -> ApiError:
    """The 400 ``invalidRequest`` that every validation failure of the Referrals API answers with."""
    return ApiError(400, "invalidRequest", message)


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """The wire body; injected faults and routing failures get the service's own codes."""
    if code.startswith("Injected"):
        code = FAULT_CODES.get(status, "generalException")
    code = ROUTING_CODES.get(code, code)
    return {"error": {"code": code, "message": message, "target": "referral"}}

"""Turn what a remote said into one sentence an operator can act on, and the settings behind it."""

from __future__ import annotations

import httpx

from shared.auth import AuthError, Culprit
from shared.http import ApiError, ApiUnavailable

# What each part of a credential being wrong means for the operator, per identity provider.
_CULPRIT_TEXT: dict[str, dict[Culprit, str]] = {
    "Entra ID": {
        "tenant": "does not know the tenant",
        "client": "does not know the application (client id) in that tenant",
        "secret": "refused the client secret",
        "grant": "refused the refresh token: redo the admin consent",
        "scope": "refused the scope (no such resource in that tenant)",
        "endpoint": "has no token endpoint at that address",
    },
    "Salesforce": {
        "client": "does not know the consumer key (client id)",
        "secret": "refused the consumer secret",
        "grant": "refused the client credentials flow",
        "endpoint": "has no token endpoint at that address",
    },
}
# AADSTS numbers worth their own words (Microsoft Entra error code reference).
_CODE_TEXT: dict[int, str] = {
    7000222: "the client secret has expired: create a new one",
    700082: "the refresh token expired (unused for 90 days): redo the admin consent",
    50173: "the refresh token was revoked: redo the admin consent",
    70008: "the refresh token expired or was revoked: redo the admin consent",
    65001: "the user or admin has not consented to the application: redo the admin consent",
    50076: "the user must sign in again with MFA: redo the admin consent",
    50079: "the user must register for MFA, then redo the admin consent",
    70043: "Conditional Access sign-in frequency ended the refresh token: redo the admin consent",
}


def auth_detail(exc: AuthError, provider: str) -> str:
    """``provider`` is "Entra ID" or "Salesforce"."""
    said = " ".join(part for part in (*(f"AADSTS{c}" for c in exc.codes[:1]), exc.error) if part)
    if provider == "Salesforce" and exc.description:
        said = f"{said}: {exc.description}" if said else exc.description  # Salesforce's words are short
    said = said or "no OAuth error code"
    for code in exc.codes:
        if code in _CODE_TEXT:
            return f"{provider}: {_CODE_TEXT[code]} ({said})"
    if exc.culprit == "endpoint" and not exc.error:
        return f"{provider}'s token endpoint could not be reached"
    text = _CULPRIT_TEXT.get(provider, _CULPRIT_TEXT["Entra ID"]).get(exc.culprit) if exc.culprit else None
    if text:
        return f"{provider} {text} ({said})"
    return f"{provider} gave no token: {exc.reason}"


def unreachable_detail(exc: ApiUnavailable, url: str) -> str:
    cause = type(exc.__cause__).__name__ if exc.__cause__ else "no answer"
    return f"cannot reach {origin(url)} ({cause})"


def api_error_detail(exc: ApiError) -> str:
    message = exc.message.strip()
    if len(message) > 160:
        message = message[:157] + "..."
    code = f" {exc.code}" if exc.code else ""
    return f"{exc.service} answered {exc.status}{code}" + (f": {message}" if message else "")


def origin(url: str) -> str:
    """Scheme, host and port only: paths and queries may carry keys."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(an unreadable URL)"
    if not parsed.host:
        return "(an unreadable URL)"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"

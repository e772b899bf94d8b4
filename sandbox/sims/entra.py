"""Microsoft Entra ID token endpoint simulator (v2.0, client secret, refresh tokens).

Partner Center's Referrals API is app+user only, so the app redeems a stored refresh token (Secure
Application Model). Entra rotates refresh tokens on every redemption; this simulator makes the old
one unusable at once (stricter than Entra, which tolerates reuse for a while) so a test proves the
app persists the rotated token. Access tokens are opaque: other simulators validate them through
:meth:`EntraSimulator.validator` instead of parsing JWTs.

Control API (besides the base one):

- ``POST /_sim/clients``         ``{"clientId", "secret"}`` registers a confidential client
- ``POST /_sim/refresh-tokens``  ``{"clientId"}`` -> ``{"refreshToken"}`` (what partner consent stores)
- ``POST /_sim/expire``          expires every access token issued so far (forces the app to re-acquire)
- ``GET  /_sim/tokens``          ``{"tokensIssued", "accessTokens", "refreshTokens"}`` counts
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.sims.base import Simulator, json_response

# Scopes that name no resource: they only ask for id/refresh tokens.
_OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
_DEFAULT_AUDIENCE = "https://graph.microsoft.com"

# AADSTS numbers Entra uses for the situations the simulator reproduces.
_AADSTS = {
    "invalid_grant": 70000,
    "invalid_client": 7000215,
    "unauthorized_client": 700016,
    "unsupported_grant_type": 70003,
    "invalid_request": 900144,
    "invalid_scope": 1002012,
    "temporarily_unavailable": 90033,
}


# A tenant segment is a tenant id (GUID), a domain, or one of the multi-tenant names; anything else
# is refused before the tenant is looked up (Entra answers AADSTS900023 for it).
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)
_TENANT_ALIASES = frozenset({"common", "organizations", "consumers"})
_AADSTS_NUMBER = re.compile(r"^AADSTS(\d+)")


def _tenant_shaped(tenant: str) -> bool:
    return tenant.lower() in _TENANT_ALIASES or bool(_GUID.match(tenant) or _DOMAIN.match(tenant))


@dataclass
class _AccessToken:
    client_id: str
    audience: str
    expires_at: float


@dataclass
class _RefreshToken:
    client_id: str


class EntraSimulator(Simulator):
    """``POST /<tenant>/oauth2/v2.0/token`` with the client_credentials and refresh_token grants."""

    name = "entra"

    def __init__(self, *, seed: int = 0, token_lifetime: int = 3599, tenants: set[str] | None = None) -> None:
        super().__init__(seed=seed)
        self.token_lifetime = token_lifetime
        # None accepts any tenant segment (ids, domains, "common", "organizations").
        self.tenants = tenants
        self.tokens_issued = 0
        # Every access and refresh token ever handed out (spent ones too): tests scan logs for them.
        self.issued: list[str] = []
        self._clients: dict[str, str] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._revoked: set[str] = set()  # refresh tokens an admin revoked: AADSTS50173, not "unknown"
        self.add_route("/<tenant>/oauth2/v2.0/token", ["POST"], self._token)
        self.add_route("/<tenant>/v2.0/.well-known/openid-configuration", ["GET"], self._openid_configuration)

    # ----- in-process helpers -----
    def add_client(self, client_id: str, secret: str) -> None:
        with self._lock:
            self._clients[client_id] = secret

    def issue_refresh_token(self, client_id: str) -> str:
        """The refresh token the interactive partner-consent step would have stored in Key Vault."""
        with self._lock:
            if client_id not in self._clients:
                raise KeyError(f"unknown client {client_id!r}")
            return self._new_refresh_token(client_id)

    def validator(self, audience: str) -> Callable[[str], bool]:
        """A bearer check for another simulator: the token exists, is unexpired and was issued for ``audience``."""
        wanted = _normalise_audience(audience)

        def validate(token: str) -> bool:
            with self._lock:
                issued = self._access.get(token)
            return issued is not None and issued.audience == wanted and issued.expires_at > time.time()

        return validate

    def expire_access_tokens(self) -> int:
        """Make every access token issued so far expired, as if an hour had passed."""
        with self._lock:
            for issued in self._access.values():
                issued.expires_at = 0.0
            return len(self._access)

    def revoke_refresh_tokens(self, client_id: str | None = None) -> int:
        """Invalidate refresh tokens (all, or one client's): what an admin revoking consent does."""
        with self._lock:
            doomed = [t for t, r in self._refresh.items() if client_id is None or r.client_id == client_id]
            for token in doomed:
                del self._refresh[token]
            self._revoked.update(doomed)
            return len(doomed)

    def access_token_audience(self, token: str) -> str | None:
        with self._lock:
            issued = self._access.get(token)
            return issued.audience if issued else None

    # ----- HTTP -----
    def _token(self, request: Request, tenant: str) -> Response:
        if not _tenant_shaped(tenant):
            return self.error_response(
                400,
                "invalid_request",
                f"AADSTS900023: Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid "
                "external domain.",
            )
        if self.tenants is not None and tenant not in self.tenants:
            return self.error_response(
                400,
                "invalid_request",
                f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the "
                "correct tenant ID and are signing into the correct cloud.",
            )
        form = request.form
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if request.authorization and request.authorization.type == "basic":
            client_id = client_id or request.authorization.username
            secret = secret or request.authorization.password
        grant_type = form.get("grant_type")
        if not grant_type:
            return self.error_response(
                400,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
            )
        if grant_type not in ("client_credentials", "refresh_token"):
            return self.error_response(
                400,
                "unsupported_grant_type",
                f"AADSTS70003: The app requested an unsupported grant type '{grant_type}'.",
            )
        if not client_id:
            return self.error_response(
                400,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
            )
        with self._lock:
            known_secret = self._clients.get(client_id)
        if known_secret is None:
            return self.error_response(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        if not secret:
            return self.error_response(
                401,
                "invalid_client",
                "AADSTS7000218: The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        if not secrets.compare_digest(secret, known_secret):
            return self.error_response(
                401,
                "invalid_client",
                f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                f"in the request is the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        scope_text = form.get("scope", "")
        audience, error = _audience_of(scope_text, require_default=grant_type == "client_credentials")
        if error:
            return self.error_response(400, "invalid_scope", error)
        if grant_type == "client_credentials":
            return self._issue(client_id, audience, scope_text, refresh=False)
        presented = form.get("refresh_token")
        if not presented:
            return self.error_response(
                400,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'refresh_token'.",
            )
        with self._lock:
            held = self._refresh.get(presented)
            if presented in self._revoked:
                # Entra error code reference: "FreshTokenNeeded - The provided grant has expired due to it
                # being revoked, and a fresh auth token is needed."
                return self.error_response(
                    400,
                    "invalid_grant",
                    "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is "
                    "needed. The user might have changed or reset their password.",
                )
            if held is None or held.client_id != client_id:
                return self.error_response(
                    400,
                    "invalid_grant",
                    "AADSTS70000: Provided grant is invalid or malformed. The refresh token "
                    "has been redeemed already, revoked or was issued to another client.",
                )
            # Strict rotation: the presented token is spent the moment it is redeemed.
            del self._refresh[presented]
            return self._issue(client_id, audience, scope_text, refresh=True)

    def _issue(self, client_id: str, audience: str, scope_text: str, *, refresh: bool) -> Response:
        with self._lock:
            token = _opaque("eyJ0eXAiOiJKV1Qi")
            self._access[token] = _AccessToken(client_id, audience, time.time() + self.token_lifetime)
            self.issued.append(token)
            self.tokens_issued += 1
            body: dict[str, Any] = {
                "token_type": "Bearer",
                "scope": _granted_scope(audience, scope_text, refresh=refresh),
                "expires_in": int(self.token_lifetime),
                "ext_expires_in": int(self.token_lifetime),
                "access_token": token,
            }
            if refresh:
                body["refresh_token"] = self._new_refresh_token(client_id)
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _new_refresh_token(self, client_id: str) -> str:
        token = _opaque("0.AXkA")
        self._refresh[token] = _RefreshToken(client_id)
        self.issued.append(token)
        return token

    def _openid_configuration(self, request: Request, tenant: str) -> Response:
        """Enough discovery metadata for OAuth libraries that read the token endpoint from it."""
        base = request.host_url.rstrip("/")
        return json_response(
            {
                "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "issuer": f"{base}/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "grant_types_supported": ["client_credentials", "refresh_token"],
            }
        )

    # ----- wire format -----
    def error_response(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        """Entra's OAuth error body; injected faults and routing errors are mapped onto OAuth error codes."""
        if code not in _AADSTS:
            code = "temporarily_unavailable" if status in (429, 503, 504) else "invalid_request"
            message = f"AADSTS{_AADSTS[code]}: {message}"
        now = dt.datetime.now(dt.UTC)
        trace = str(uuid.uuid4())
        # error_codes holds the AADSTS number of this very answer (90002 for an unknown tenant, even
        # though its OAuth error is the generic invalid_request), as Entra's answers do.
        number = _AADSTS_NUMBER.match(message)
        return json_response(
            {
                "error": code,
                "error_description": f"{message}\r\nTrace ID: {trace}\r\nTimestamp: {now:%Y-%m-%d %H:%M:%SZ}",
                "error_codes": [int(number.group(1)) if number else _AADSTS[code]],
                "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
                "trace_id": trace,
                "correlation_id": str(uuid.uuid4()),
            },
            status,
            headers,
        )

    def control(self, request: Request, action: str) -> Response:
        body = request.get_json(force=True, silent=True) or {}
        if action == "clients" and request.method == "POST":
            client_id, secret = body.get("clientId"), body.get("secret")
            if not isinstance(client_id, str) or not isinstance(secret, str):
                return json_response({"error": "clientId and secret are required strings"}, 400)
            self.add_client(client_id, secret)
            return json_response({"clientId": client_id})
        if action == "refresh-tokens" and request.method == "POST":
            try:
                return json_response({"refreshToken": self.issue_refresh_token(str(body.get("clientId")))})
            except KeyError as exc:
                return json_response({"error": str(exc)}, 404)
        if action == "expire" and request.method == "POST":
            return json_response({"expired": self.expire_access_tokens()})
        if action == "tokens" and request.method == "GET":
            with self._lock:
                counts = {
                    "tokensIssued": self.tokens_issued,
                    "accessTokens": len(self._access),
                    "refreshTokens": len(self._refresh),
                }
            return json_response(counts)
        return super().control(request, action)


def _opaque(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(48)).decode("ascii").rstrip("=")


def _normalise_audience(value: str) -> str:
    return value.strip().rstrip("/").lower()


def _resource_of(scope: str) -> str:
    """``https://api.partner.microsoft.com/.default`` and ``…/user_impersonation`` name the same resource."""
    if "://" in scope:
        scheme, rest = scope.split("://", 1)
        if "/" in rest:
            rest = rest.rsplit("/", 1)[0]
        return f"{scheme}://{rest}"
    return scope.split("/", 1)[0]


def _audience_of(scope_text: str, *, require_default: bool) -> tuple[str, str | None]:
    scopes = scope_text.split()
    resource_scopes = [s for s in scopes if s.lower() not in _OIDC_SCOPES]
    if not scopes:
        return "", "AADSTS90014: The required field 'scope' is missing from the credential."
    if require_default and (len(resource_scopes) != 1 or not resource_scopes[0].endswith("/.default")):
        return "", (
            f"AADSTS1002012: The provided value for scope {scope_text} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier (application ID URI)."
        )
    resources = {_normalise_audience(_resource_of(s)) for s in resource_scopes}
    if len(resources) > 1:
        return "", (
            "AADSTS28000: Provided value for the input parameter scope is not valid because it contains more than "
            "one resource."
        )
    return (resources.pop() if resources else _DEFAULT_AUDIENCE), None


def _granted_scope(audience: str, scope_text: str, *, refresh: bool) -> str:
    if any(s.endswith("/.default") for s in scope_text.split()):
        granted = f"{audience}/user_impersonation" if refresh else f"{audience}/.default"
    else:
        granted = " ".join(s for s in scope_text.split() if s.lower() not in _OIDC_SCOPES) or audience
    return f"{granted} offline_access" if refresh else granted

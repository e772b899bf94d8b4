"""Microsoft Entra ID simulator (v2.0): token endpoint, the authorization endpoint, OIDC discovery.

Partner Center's Referrals API is app+user only, so the app redeems a stored refresh token (Secure
Application Model). Entra rotates refresh tokens on every redemption; this simulator makes the old
one unusable at once (stricter than Entra, which tolerates reuse for a while) so a test proves the
app persists the rotated token. Access tokens are opaque: other simulators validate them through
:meth:`EntraSimulator.validator` instead of parsing JWTs.

The refresh token comes from the partner consent: the authorization-code flow of the confidential
app registration (``python -m shared.cli consent``). ``GET /<tenant>/oauth2/v2.0/authorize`` checks
the client and its registered redirect URI (an error *page* otherwise, as Entra shows one), "signs
the admin in" at once unless told to refuse, and answers the redirect URI with a one-time code
(``response_mode=query``: a 302; ``form_post``: the auto-submitting form Entra serves). The
``authorization_code`` grant checks the client secret, that ``redirect_uri`` equals the one the
code was issued for, the PKCE ``code_verifier`` (S256 or plain), and spends the code; it answers
an access token, a refresh token (``offline_access``), an ID token carrying the request's
``nonce`` (``openid``; unsigned: MSAL only decodes it) and ``client_info`` when asked.

Public clients: a redirect URI registered for the "Mobile and desktop applications" platform makes
the client public for that flow. A code issued there is redeemed without a secret, and its refresh
token remembers it was issued to a public client: presenting a client secret with either gives
Entra's ``invalid_client`` AADSTS700025 ("Client is public so neither 'client_assertion' nor
'client_secret' should be presented"). That is the trap of a refresh token obtained with a public
client (device code, PowerShell) and handed to the app, which always redeems with its secret.

Partner Center roles (Referrals admin) are Partner Center's, not Entra's: the simulated sign-in
cannot know them, and neither can a token redemption. What it can refuse is what Entra refuses.

Control API (besides the base one):

- ``POST /_sim/clients``         ``{"clientId", "secret", "redirectUris": [...], "publicClientRedirectUris": [...]}``
                                 registers a client (the redirect lists are optional: Web and "Mobile and desktop")
- ``POST /_sim/refresh-tokens``  ``{"clientId", "publicClient": false}`` -> ``{"refreshToken"}`` (what partner
                                 consent stores; ``publicClient`` as if consented through a public client)
- ``POST /_sim/sign-in``         ``{"refuse": "access_denied" | "interaction_required" | "consent_required" | null,
                                 "description": optional, "username": optional}``: how the next sign-ins end
- ``GET  /_sim/sign-in``         the current sign-in behaviour
- ``POST /_sim/expire``          expires every access token issued so far (forces the app to re-acquire)
- ``GET  /_sim/tokens``          ``{"tokensIssued", "accessTokens", "refreshTokens", "codes"}`` counts
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from sandbox.sims.base import Simulator, json_response

# Scopes that name no resource: they only ask for id/refresh tokens.
_OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
_DEFAULT_AUDIENCE = "https://graph.microsoft.com"

WEB = "web"
PUBLIC_CLIENT = "publicClient"  # the "Mobile and desktop applications" platform

# How a refused sign-in comes back to the redirect URI ({client_id} and {resource} are filled in).
SIGN_IN_REFUSALS = {
    "access_denied": "AADSTS65004: User declined to consent to access the app.",
    "interaction_required": (
        "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new "
        "location, you must use multi-factor authentication to access '{resource}'."
    ),
    "consent_required": (
        "AADSTS65001: The user or administrator has not consented to use the application with ID '{client_id}'. "
        "Send an interactive authorization request for this user and resource."
    ),
}

# AADSTS numbers Entra uses for the situations the simulator reproduces.
_AADSTS = {
    "invalid_grant": 70000,
    "invalid_client": 7000215,
    "unauthorized_client": 700016,
    "unsupported_grant_type": 70003,
    "invalid_request": 900144,
    "invalid_tenant": 90002,
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
    user: str | None = None


@dataclass
class _RefreshToken:
    client_id: str
    public_client: bool = False
    user: str | None = None


@dataclass
class _Client:
    secret: str
    # redirect URI -> platform (WEB or PUBLIC_CLIENT); Entra compares the URI exactly.
    redirect_uris: dict[str, str] = field(default_factory=dict)


@dataclass
class SignIn:
    """Who "signs in" at the authorization endpoint, or how the sign-in is refused."""

    username: str = "referrals.admin@contoso.onmicrosoft.com"
    name: str = "Co-sell Integration"
    object_id: str = "5f1b7c1e-0000-4000-8000-00000000ad31"
    refuse: str | None = None  # an OAuth error code, e.g. "access_denied"
    description: str | None = None  # None: SIGN_IN_REFUSALS[refuse]


@dataclass
class _AuthorizationCode:
    client_id: str
    tenant: str
    redirect_uri: str
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str
    nonce: str | None
    user: SignIn
    public_client: bool
    expires_at: float


class EntraSimulator(Simulator):
    """``POST /<tenant>/oauth2/v2.0/token`` (client_credentials, refresh_token, authorization_code) and
    ``GET /<tenant>/oauth2/v2.0/authorize``."""

    name = "entra"

    def __init__(
        self,
        *,
        seed: int = 0,
        token_lifetime: int = 3599,
        tenants: set[str] | None = None,
        code_lifetime: int = 600,
    ) -> None:
        super().__init__(seed=seed)
        self.token_lifetime = token_lifetime
        self.code_lifetime = code_lifetime
        # None accepts any tenant segment (ids, domains, "common", "organizations").
        self.tenants = tenants
        self.tokens_issued = 0
        self.sign_in = SignIn()
        # Every access, refresh and ID token and every code ever handed out (spent ones too): tests
        # scan logs and command output for them.
        self.issued: list[str] = []
        self._clients: dict[str, _Client] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._codes: dict[str, _AuthorizationCode] = {}
        self._spent_codes: set[str] = set()
        self._revoked: set[str] = set()  # refresh tokens an admin revoked: AADSTS50173, not "unknown"
        self.add_route("/<tenant>/oauth2/v2.0/token", ["POST"], self._token)
        self.add_route("/<tenant>/oauth2/v2.0/authorize", ["GET"], self._authorize)
        self.add_route("/<tenant>/v2.0/.well-known/openid-configuration", ["GET"], self._openid_configuration)

    # ----- in-process helpers -----
    def add_client(
        self,
        client_id: str,
        secret: str,
        *,
        redirect_uris: Iterable[str] = (),
        public_client_redirect_uris: Iterable[str] = (),
    ) -> None:
        """Register a confidential client; redirect URIs on the Web or the "Mobile and desktop" platform."""
        registered = {uri: WEB for uri in redirect_uris} | {uri: PUBLIC_CLIENT for uri in public_client_redirect_uris}
        with self._lock:
            self._clients[client_id] = _Client(secret, registered)

    def add_redirect_uri(self, client_id: str, uri: str, platform: str = WEB) -> None:
        if platform not in (WEB, PUBLIC_CLIENT):
            raise ValueError(f"platform must be {WEB!r} or {PUBLIC_CLIENT!r}")
        with self._lock:
            self._clients[client_id].redirect_uris[uri] = platform

    def issue_refresh_token(self, client_id: str, *, public_client: bool = False, user: str | None = None) -> str:
        """The refresh token the interactive partner-consent step would have stored in Key Vault.

        ``public_client``: as if the consent had been made through a public client (no secret).
        """
        with self._lock:
            if client_id not in self._clients:
                raise KeyError(f"unknown client {client_id!r}")
            return self._new_refresh_token(client_id, public_client=public_client, user=user)

    def refuse_sign_in(self, error: str | None = "access_denied", description: str | None = None) -> None:
        """Make the next sign-ins end with ``error`` at the redirect URI (``None``: sign in again)."""
        if error is not None and description is None and error not in SIGN_IN_REFUSALS:
            raise ValueError(f"give a description for {error!r}")
        with self._lock:
            self.sign_in.refuse = error
            self.sign_in.description = description

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
    def _tenant_unknown(self, tenant: str) -> str | None:
        if not _tenant_shaped(tenant):
            return (
                f"AADSTS900023: Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid "
                "external domain."
            )
        if self.tenants is not None and tenant not in self.tenants:
            return (
                f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the "
                "correct tenant ID and are signing into the correct cloud."
            )
        return None

    def _token(self, request: Request, tenant: str) -> Response:
        if unknown := self._tenant_unknown(tenant):
            return self.error_response(400, "invalid_request", unknown)
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
        if grant_type not in ("client_credentials", "refresh_token", "authorization_code"):
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
            client = self._clients.get(client_id)
            # A grant obtained through a public client is redeemed as one: without a secret.
            public = self._public_grant(client_id, grant_type, form)
        if client is None:
            return self.error_response(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        if refused := self._client_authentication(client_id, client, secret, public=public):
            return refused
        scope_text = form.get("scope", "")
        if grant_type == "authorization_code":
            return self._redeem_code(request, tenant, client_id, scope_text)
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
            return self._issue(
                client_id, audience, scope_text, refresh=True, public_client=held.public_client, user=held.user
            )

    def _public_grant(self, client_id: str, grant_type: str, form: Any) -> bool:
        """Whether the presented grant belongs to a public-client flow (caller holds the lock)."""
        if grant_type == "refresh_token":
            held = self._refresh.get(form.get("refresh_token", ""))
            return held is not None and held.client_id == client_id and held.public_client
        if grant_type == "authorization_code":
            code = self._codes.get(form.get("code", ""))
            return code is not None and code.client_id == client_id and code.public_client
        return False

    def _client_authentication(
        self, client_id: str, client: _Client, secret: str | None, *, public: bool
    ) -> Response | None:
        if public:
            if secret:
                return self.error_response(
                    401,
                    "invalid_client",
                    "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be "
                    "presented.",
                )
            return None
        if not secret:
            return self.error_response(
                401,
                "invalid_client",
                "AADSTS7000218: The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        if not secrets.compare_digest(secret, client.secret):
            return self.error_response(
                401,
                "invalid_client",
                f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                f"in the request is the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        return None

    def _redeem_code(self, request: Request, tenant: str, client_id: str, scope_text: str) -> Response:
        form = request.form
        presented = form.get("code")
        if not presented:
            return self.error_response(
                400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'code'."
            )
        with self._lock:
            code = self._codes.pop(presented, None)
            if code is None:
                if presented in self._spent_codes:
                    return self.error_response(
                        400,
                        "invalid_grant",
                        "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid "
                        "code or use an existing refresh token.",
                    )
                return self.error_response(
                    400, "invalid_grant", "AADSTS9002313: Invalid request. Request is malformed or invalid."
                )
            # Any redemption attempt spends the code, a failed one too.
            self._spent_codes.add(presented)
        if code.client_id != client_id or code.tenant != tenant:
            return self.error_response(400, "invalid_grant", "AADSTS70000: Provided grant is invalid or malformed.")
        if code.expires_at <= time.time():
            return self.error_response(
                400,
                "invalid_grant",
                "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. "
                "Send a new interactive authorization request for this user and resource.",
            )
        redirect_uri = form.get("redirect_uri", "")
        if redirect_uri != code.redirect_uri:
            return self.error_response(
                400,
                "invalid_grant",
                f"AADSTS500112: The reply address '{redirect_uri}' does not match the reply address "
                f"'{code.redirect_uri}' provided when requesting Authorization code.",
            )
        if code.code_challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                return self.error_response(
                    400,
                    "invalid_request",
                    "AADSTS900144: The request body must contain the following parameter: 'code_verifier'.",
                )
            if not secrets.compare_digest(_pkce_challenge(verifier, code.code_challenge_method), code.code_challenge):
                return self.error_response(
                    400,
                    "invalid_grant",
                    "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the "
                    "authorization request.",
                )
        scopes = scope_text.split() or code.scopes
        audience, error = _audience_of(" ".join(scopes), require_default=False)
        if error:
            return self.error_response(400, "invalid_scope", error)
        lowered = {s.lower() for s in code.scopes}
        id_token = None
        if "openid" in lowered:
            id_token = self._id_token(request, code)
        client_info = None
        if form.get("client_info") == "1":
            client_info = _b64url(json.dumps({"uid": code.user.object_id, "utid": tenant}).encode())
        return self._issue(
            client_id,
            audience,
            " ".join(scopes),
            refresh="offline_access" in lowered,
            public_client=code.public_client,
            user=code.user.username,
            extra={"id_token": id_token, "client_info": client_info},
        )

    def _id_token(self, request: Request, code: _AuthorizationCode) -> str:
        """An unsigned ID token with the claims MSAL reads (and, before 1.38, checked: iss, aud, nonce)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": code.client_id,
            "iss": f"{request.host_url.rstrip('/')}/{code.tenant}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": code.user.name,
            "oid": code.user.object_id,
            "preferred_username": code.user.username,
            "sub": _b64url(hashlib.sha256(f"{code.user.object_id}:{code.client_id}".encode()).digest()),
            "tid": code.tenant,
            "ver": "2.0",
        }
        if code.nonce is not None:
            claims["nonce"] = code.nonce
        header = _b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": "sandbox"}).encode())
        token = f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(secrets.token_bytes(32))}"
        with self._lock:
            self.issued.append(token)
        return token

    def _authorize(self, request: Request, tenant: str) -> Response:
        """The sign-in page: errors before a trusted redirect URI are shown, later ones are sent back."""
        if unknown := self._tenant_unknown(tenant):
            return _error_page(unknown)
        args = request.args
        client_id = args.get("client_id", "")
        if not client_id:
            return _error_page("AADSTS900144: The request body must contain the following parameter: 'client_id'.")
        with self._lock:
            client = self._clients.get(client_id)
            registered = dict(client.redirect_uris) if client else {}
            sign_in = SignIn(**asdict(self.sign_in))
        if client is None:
            return _error_page(
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            )
        if not registered:
            return _error_page("AADSTS500113: No reply address is registered for the application.")
        redirect_uri = args.get("redirect_uri") or next(iter(registered))
        if redirect_uri not in registered:
            return _error_page(
                f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in "
                "the request matches one added to your application in the Azure portal."
            )
        response_mode = args.get("response_mode", "query")
        if response_mode not in ("query", "form_post"):
            return _error_page(f"AADSTS900144: response_mode '{response_mode}' is not supported by the simulator.")
        state = args.get("state")

        def refuse(error: str, description: str) -> Response:
            return _answer(redirect_uri, response_mode, {"error": error, "error_description": description}, state)

        if args.get("response_type") != "code":
            return refuse(
                "unsupported_response_type",
                f"AADSTS700054: response_type '{args.get('response_type', '')}' is not enabled for the application.",
            )
        scopes = args.get("scope", "").split()
        if not scopes:
            return refuse(
                "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'scope'."
            )
        challenge = args.get("code_challenge")
        method = args.get("code_challenge_method", "plain" if challenge else "")
        if challenge is not None and method not in ("S256", "plain"):
            return refuse("invalid_request", f"AADSTS501491: Invalid code_challenge_method '{method}'.")
        if method and challenge is None:
            return refuse("invalid_request", "AADSTS501491: code_challenge_method without a code_challenge.")
        if sign_in.refuse:
            resource = next((s for s in scopes if s.lower() not in _OIDC_SCOPES), "")
            template = sign_in.description or SIGN_IN_REFUSALS[sign_in.refuse]
            return refuse(sign_in.refuse, template.format(client_id=client_id, resource=_resource_of(resource)))
        code = _opaque("1.AXkA")
        with self._lock:
            self._codes[code] = _AuthorizationCode(
                client_id=client_id,
                tenant=tenant,
                redirect_uri=redirect_uri,
                scopes=scopes,
                code_challenge=challenge,
                code_challenge_method=method or "plain",
                nonce=args.get("nonce"),
                user=sign_in,
                public_client=registered[redirect_uri] == PUBLIC_CLIENT,
                expires_at=time.time() + self.code_lifetime,
            )
            self.issued.append(code)
        params = {"code": code}
        if args.get("client_info") == "1":
            params["client_info"] = _b64url(json.dumps({"uid": sign_in.object_id, "utid": tenant}).encode())
        params["session_state"] = str(uuid.uuid4())
        return _answer(redirect_uri, response_mode, params, state)

    def _issue(
        self,
        client_id: str,
        audience: str,
        scope_text: str,
        *,
        refresh: bool,
        public_client: bool = False,
        user: str | None = None,
        extra: dict[str, str | None] | None = None,
    ) -> Response:
        with self._lock:
            token = _opaque("eyJ0eXAiOiJKV1Qi")
            self._access[token] = _AccessToken(client_id, audience, time.time() + self.token_lifetime, user)
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
                body["refresh_token"] = self._new_refresh_token(client_id, public_client=public_client, user=user)
            body.update({k: v for k, v in (extra or {}).items() if v is not None})
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _new_refresh_token(self, client_id: str, *, public_client: bool = False, user: str | None = None) -> str:
        token = _opaque("0.AXkA")
        self._refresh[token] = _RefreshToken(client_id, public_client, user)
        self.issued.append(token)
        return token

    def _openid_configuration(self, request: Request, tenant: str) -> Response:
        """Enough discovery metadata for OAuth libraries (MSAL) that read the endpoints from it."""
        if unknown := self._tenant_unknown(tenant):
            return self.error_response(400, "invalid_tenant", unknown)
        base = request.host_url.rstrip("/")
        return json_response(
            {
                "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "issuer": f"{base}/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "tenant_region_scope": "EU",
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
            web, public = body.get("redirectUris", []), body.get("publicClientRedirectUris", [])
            if not isinstance(client_id, str) or not isinstance(secret, str):
                return json_response({"error": "clientId and secret are required strings"}, 400)
            if not all(isinstance(u, list) and all(isinstance(i, str) for i in u) for u in (web, public)):
                return json_response({"error": "redirectUris and publicClientRedirectUris are lists of strings"}, 400)
            self.add_client(client_id, secret, redirect_uris=web, public_client_redirect_uris=public)
            return json_response({"clientId": client_id})
        if action == "refresh-tokens" and request.method == "POST":
            try:
                public_client = bool(body.get("publicClient"))
                token = self.issue_refresh_token(str(body.get("clientId")), public_client=public_client)
            except KeyError as exc:
                return json_response({"error": str(exc)}, 404)
            return json_response({"refreshToken": token})
        if action == "sign-in" and request.method == "POST":
            try:
                self.refuse_sign_in(body.get("refuse"), body.get("description"))
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
            if isinstance(body.get("username"), str):
                with self._lock:
                    self.sign_in.username = body["username"]
            return json_response(asdict(self.sign_in))
        if action == "sign-in" and request.method == "GET":
            return json_response(asdict(self.sign_in))
        if action == "expire" and request.method == "POST":
            return json_response({"expired": self.expire_access_tokens()})
        if action == "tokens" and request.method == "GET":
            with self._lock:
                counts = {
                    "tokensIssued": self.tokens_issued,
                    "accessTokens": len(self._access),
                    "refreshTokens": len(self._refresh),
                    "codes": len(self._codes),
                }
            return json_response(counts)
        return super().control(request, action)


def _opaque(prefix: str) -> str:
    return prefix + _b64url(secrets.token_bytes(48))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _pkce_challenge(verifier: str, method: str) -> str:
    if method == "S256":
        return _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
    return verifier


def _answer(redirect_uri: str, response_mode: str, params: dict[str, str], state: str | None) -> Response:
    """Send the sign-in's outcome to the redirect URI: a 302 with a query, or Entra's auto-submitting form."""
    if state is not None:
        params = {**params, "state": state}
    if response_mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}" />' for k, v in params.items()
        )
        page = (
            "<html><head><title>Working...</title></head><body>"
            f'<form method="POST" name="hiddenform" action="{html.escape(redirect_uri)}">{fields}'
            "<noscript><p>Script is disabled. Click Submit to continue.</p>"
            '<input type="submit" value="Submit" /></noscript></form>'
            '<script language="javascript">document.forms[0].submit();</script></body></html>'
        )
        return Response(page, 200, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
    separator = "&" if "?" in redirect_uri else "?"
    return Response("", 302, headers={"Location": f"{redirect_uri}{separator}{urlencode(params)}"})


def _error_page(message: str) -> Response:
    """What Entra shows when it cannot trust the redirect URI: a page for the user, nothing sent back."""
    page = (
        "<html><head><title>Sign in to your account</title></head><body>"
        "<h1>Sorry, but we're having trouble signing you in.</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    )
    return Response(page, 400, content_type="text/html; charset=utf-8")


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

"""Entra ID access tokens for Partner Center (app + user) and Dataverse (app only).

Partner Center's Referrals API accepts only App+User tokens, and its MFA rule rules out the
password grant: the supported way is the Secure Application Model, i.e. a refresh token from a
one-time consent, redeemed for access tokens. Entra rotates refresh tokens on every redemption;
the newest one is kept (in memory and in the :class:`RefreshTokenStore`) for the next redemption,
so the integration keeps working past the original token's lifetime.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict, Unpack

import httpx

from shared.http import ApiError, ApiUnavailable, ServiceClient

log = logging.getLogger("cosell.auth")

_EARLY_REFRESH_SECONDS = 120

# Which part of a credential a refusal points at; the composition root knows the settings behind each.
Culprit = Literal["tenant", "client", "secret", "grant", "scope", "endpoint"]
CredentialNames = Mapping[Culprit, Sequence[str]]

# Entra's AADSTS numbers (the ``error_codes`` of an error answer) -> the part of the credential that
# is wrong. Source: Microsoft Entra "authentication and authorization error codes"
# (learn.microsoft.com/entra/identity-platform/reference-error-codes). Microsoft warns that codes
# change over time, so the OAuth ``error`` decides when the number is not listed here.
ENTRA_CULPRITS: dict[int, Culprit] = {
    90002: "tenant",  # InvalidTenantName: the tenant name wasn't found
    900023: "tenant",  # the tenant identifier is neither a valid DNS name nor a valid external domain
    90019: "tenant",  # MissingTenantRealm: unable to determine the tenant identifier from the request
    700016: "client",  # UnauthorizedClient_DoesNotMatchRequest: the application wasn't found in the tenant
    700011: "client",  # UnauthorizedClientAppNotFoundInOrgIdTenant
    70001: "client",  # UnauthorizedClient: the application is disabled
    7000112: "client",  # UnauthorizedClientApplicationDisabled
    7000215: "secret",  # invalid client secret
    7000222: "secret",  # InvalidClientSecretExpiredKeysProvided: the client secret has expired
    7000218: "secret",  # the request must contain 'client_assertion' or 'client_secret'
    70002: "secret",  # InvalidClient: client_secret does not match
    70000: "grant",  # InvalidGrant: the refresh token isn't valid
    70008: "grant",  # ExpiredOrRevokedGrant
    700082: "grant",  # ExpiredOrRevokedGrantInactiveToken: unused for 90 days
    50173: "grant",  # FreshTokenNeeded: the tokens were revoked
    70043: "grant",  # BadTokenDueToSignInFrequency (Conditional Access)
    50076: "grant",  # UserStrongAuthClientAuthNRequired: a new sign-in with MFA is needed
    50079: "grant",  # UserStrongAuthEnrollmentRequired
    65001: "grant",  # DelegationDoesNotExist: the user or admin hasn't consented
    500011: "scope",  # InvalidResourceServicePrincipalNotFound: no such resource in the tenant
    70011: "scope",  # InvalidScope
    1002012: "scope",  # client credentials need a '/.default' scope
}
# The OAuth ``error`` ("should be used to react to errors", same page) when the number is not listed.
OAUTH_CULPRITS: dict[str, Culprit] = {
    "invalid_client": "secret",
    "unauthorized_client": "client",
    "invalid_grant": "grant",
    "interaction_required": "grant",
    "invalid_scope": "scope",
    "invalid_resource": "scope",
}
_AADSTS = re.compile(r"AADSTS(\d+)")


def entra_culprit(error: str, codes: Sequence[int]) -> Culprit | None:
    for code in codes:
        if code in ENTRA_CULPRITS:
            return ENTRA_CULPRITS[code]
    return OAUTH_CULPRITS.get(error)


class AuthError(Exception):
    """A token could not be obtained; the message carries the identity provider's code, never a secret.

    ``error`` and ``codes`` are what the provider answered (OAuth error, AADSTS numbers); ``culprit``
    says which part of the credential it points at; ``settings`` names the app settings behind it
    when the token was built with their names (and the message then ends with them).
    """

    def __init__(
        self,
        message: str,
        *,
        error: str = "",
        codes: Sequence[int] = (),
        culprit: Culprit | None = None,
        names: CredentialNames | None = None,
        description: str = "",
    ) -> None:
        self.error = error
        self.description = description  # the provider's own words (first line), when it gave any
        self.codes = tuple(codes)
        self.culprit = culprit
        self.settings: list[str] = list((names or {}).get(culprit, ())) if culprit else []
        self.reason = message
        super().__init__(f"{message} (check {', '.join(self.settings)})" if self.settings else message)


class RefreshTokenStore(Protocol):
    """Where the newest refresh token lives. ``lock`` serialises redemptions that share it."""

    lock: threading.Lock

    def load(self) -> str | None: ...
    def save(self, token: str) -> None: ...


class MemoryRefreshTokenStore:
    def __init__(self, token: str | None = None) -> None:
        self._token = token
        self.lock = threading.Lock()

    def load(self) -> str | None:
        return self._token

    def save(self, token: str) -> None:
        self._token = token


@dataclass
class _Cached:
    value: str
    expires_at: float


class _Refused(Exception):
    """Entra answered an OAuth error (400/401): what it said, to classify."""

    def __init__(self, error: str, codes: tuple[int, ...], description: str) -> None:
        super().__init__(error)
        self.error = error
        self.codes = codes
        self.description = description


class _TokenEndpoint:
    """POSTs a grant to ``{authority}/{tenant}/oauth2/v2.0/token`` with the shared retry policy."""

    def __init__(
        self,
        authority_host: str,
        tenant_id: str,
        *,
        timeout: float,
        max_attempts: int,
        transport: httpx.BaseTransport | None = None,
        names: CredentialNames | None = None,
    ) -> None:
        self.names = names or {}
        self._client = ServiceClient(
            "entra",
            f"{authority_host.rstrip('/')}/{tenant_id}/oauth2/v2.0/",
            timeout=timeout,
            max_attempts=max_attempts,
            error_parser=_entra_error,
            changes_data=False,
            transport=transport,
            settings=tuple(self.names.get("endpoint", ())),
        )

    def redeem(self, form: dict[str, str]) -> dict[str, object]:
        # OAuth errors are read here rather than by the HTTP policy: their ``error_codes`` say what is wrong.
        response = self._client.request("POST", "token", data=form, expected=(400, 401))
        if response.status_code in (400, 401):
            raise _Refused(*_entra_refusal(response))
        return response.json()


def _entra_refusal(response: httpx.Response) -> tuple[str, tuple[int, ...], str]:
    error, description = _entra_error(response)
    try:
        raw = response.json().get("error_codes") or []
        codes = tuple(int(c) for c in raw if str(c).isdigit())
    except (ValueError, AttributeError, TypeError):
        codes = ()
    if not codes and (match := _AADSTS.match(description)):
        codes = (int(match.group(1)),)
    return error, codes, description


def _entra_error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    if not isinstance(body, dict):
        return "", response.text[:200]
    description = str(body.get("error_description", ""))
    # AADSTS descriptions carry trace ids and timestamps; the first line is the readable part.
    return str(body.get("error", "")), description.splitlines()[0] if description else ""


class TokenEndpointOptions(TypedDict, total=False):
    """How a token provider reaches Entra: the same options, and defaults, for every grant."""

    timeout: float
    max_attempts: int
    transport: httpx.BaseTransport | None
    names: CredentialNames | None


class _CachedToken:
    """An access token kept until shortly before it expires; subclasses say how to redeem one."""

    def __init__(
        self,
        authority_host: str,
        tenant_id: str,
        *,
        timeout: float = 15.0,
        max_attempts: int = 4,
        transport: httpx.BaseTransport | None = None,
        names: CredentialNames | None = None,
    ) -> None:
        self._cached: _Cached | None = None
        self._lock = threading.Lock()
        self._endpoint = _TokenEndpoint(
            authority_host, tenant_id, timeout=timeout, max_attempts=max_attempts, transport=transport, names=names
        )

    def __call__(self) -> str:
        with self._lock:
            if self._cached and self._cached.expires_at > time.time():
                return self._cached.value
            self._cached = _cache_entry(self._redeem_new())
            return self._cached.value

    def invalidate(self, token: str) -> None:
        """The service refused ``token`` (revoked before its expiry): the next call redeems a new one."""
        with self._lock:
            if self._cached and self._cached.value == token:
                self._cached = None

    def _redeem_new(self) -> dict[str, object]:
        raise NotImplementedError


class ClientCredentialsToken(_CachedToken):
    """App-only token (Dataverse application user)."""

    def __init__(
        self,
        authority_host: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        scope: str,
        **endpoint: Unpack[TokenEndpointOptions],
    ) -> None:
        super().__init__(authority_host, tenant_id, **endpoint)
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        }

    def _redeem_new(self) -> dict[str, object]:
        return _redeem(self._endpoint, self._form, "client credentials")


class RefreshTokenGrant(_CachedToken):
    """App+user tokens from a stored refresh token; one instance per scope shares one store."""

    def __init__(
        self,
        authority_host: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        scope: str,
        store: RefreshTokenStore,
        **endpoint: Unpack[TokenEndpointOptions],
    ) -> None:
        super().__init__(authority_host, tenant_id, **endpoint)
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._store = store

    def _redeem_new(self) -> dict[str, object]:
        with self._store.lock:
            return self._redeem_with_store()

    def _redeem_with_store(self) -> dict[str, object]:
        used = self._store.load()
        try:
            return self._redeem(used)
        except AuthError:
            # Another instance may have rotated the token since we read it: try the newest once.
            newest = self._store.load()
            if newest and newest != used:
                return self._redeem(newest)
            raise

    def _redeem(self, refresh_token: str | None) -> dict[str, object]:
        if not refresh_token:
            raise AuthError(
                "No Partner Center refresh token is configured (PARTNER_CENTER_REFRESH_TOKEN).", culprit="grant"
            )
        form = {
            "grant_type": "refresh_token",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": refresh_token,
            "scope": f"{self._scope} offline_access",
        }
        body = _redeem(self._endpoint, form, "refresh token")
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != refresh_token:
            self._store.save(rotated)
            log.info("Partner Center refresh token rotated; the new one is kept for the next redemption")
        return body


def _redeem(endpoint: _TokenEndpoint, form: dict[str, str], grant: str) -> dict[str, object]:
    names = endpoint.names
    try:
        return endpoint.redeem(form)
    except _Refused as exc:
        raise AuthError(
            f"Entra ID refused the {grant} grant: {exc.error} {exc.description}".strip(),
            error=exc.error,
            codes=exc.codes,
            culprit=entra_culprit(exc.error, exc.codes),
            names=names,
            description=exc.description,
        ) from None
    except ApiError as exc:
        # Not an OAuth answer: a 404 means no token endpoint where ENTRA_AUTHORITY_HOST points; a
        # 5xx or 429 that outlasted the retries is Entra's own trouble, no setting's.
        message = f"Entra ID refused the {grant} grant: {exc.status} {exc.code} {exc.message}".strip()
        culprit: Culprit | None = "endpoint" if exc.status in (404, 405) else None
        raise AuthError(message, error=exc.code, culprit=culprit, names=names) from exc
    except ApiUnavailable as exc:
        raise AuthError(
            f"Entra ID token endpoint unreachable for the {grant} grant", culprit="endpoint", names=names
        ) from exc


def _cache_entry(body: dict[str, object]) -> _Cached:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError("Entra ID answered without an access token")
    try:
        lifetime = float(str(body.get("expires_in", 3599)))
    except ValueError:
        lifetime = 3599.0
    return _Cached(token, time.time() + max(0.0, lifetime - _EARLY_REFRESH_SECONDS))

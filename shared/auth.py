"""Entra ID access tokens for Partner Center (app + user) and Dataverse (app only).

Partner Center's Referrals API accepts only App+User tokens, and its MFA rule rules out the
password grant: the supported way is the Secure Application Model, i.e. a refresh token from a
one-time consent, redeemed for access tokens. Entra rotates refresh tokens on every redemption;
the newest one is kept (in memory and in the :class:`RefreshTokenStore`) for the next redemption,
so the integration keeps working past the original token's lifetime.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import httpx

from shared.http import ApiError, ApiUnavailable, ServiceClient

log = logging.getLogger("cosell.auth")

_EARLY_REFRESH_SECONDS = 120


class AuthError(Exception):
    """A token could not be obtained; the message carries Entra's error code, never a secret."""


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
    ) -> None:
        self._client = ServiceClient(
            "entra",
            f"{authority_host.rstrip('/')}/{tenant_id}/oauth2/v2.0/",
            timeout=timeout,
            max_attempts=max_attempts,
            error_parser=_entra_error,
            changes_data=False,
            transport=transport,
        )

    def redeem(self, form: dict[str, str]) -> dict[str, object]:
        response = self._client.request("POST", "token", data=form)
        return response.json()


def _entra_error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    description = str(body.get("error_description", ""))
    # AADSTS descriptions carry trace ids and timestamps; the first line is the readable part.
    return str(body.get("error", "")), description.splitlines()[0] if description else ""


class _CachedToken:
    """An access token kept until shortly before it expires; subclasses say how to redeem one."""

    def __init__(self) -> None:
        self._cached: _Cached | None = None
        self._lock = threading.Lock()

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
        *,
        timeout: float = 15.0,
        max_attempts: int = 4,
    ) -> None:
        super().__init__()
        self._endpoint = _TokenEndpoint(authority_host, tenant_id, timeout=timeout, max_attempts=max_attempts)
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
        *,
        timeout: float = 15.0,
        max_attempts: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__()
        self._endpoint = _TokenEndpoint(
            authority_host, tenant_id, timeout=timeout, max_attempts=max_attempts, transport=transport
        )
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
            raise AuthError("No Partner Center refresh token is configured (PARTNER_CENTER_REFRESH_TOKEN).")
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
    try:
        return endpoint.redeem(form)
    except ApiError as exc:
        raise AuthError(f"Entra ID refused the {grant} grant: {exc.code} {exc.message}".strip()) from exc
    except ApiUnavailable as exc:
        raise AuthError(f"Entra ID token endpoint unreachable for the {grant} grant") from exc


def _cache_entry(body: dict[str, object]) -> _Cached:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError("Entra ID answered without an access token")
    try:
        lifetime = float(str(body.get("expires_in", 3599)))
    except ValueError:
        lifetime = 3599.0
    return _Cached(token, time.time() + max(0.0, lifetime - _EARLY_REFRESH_SECONDS))

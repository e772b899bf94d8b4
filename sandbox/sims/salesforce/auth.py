"""OAuth 2.0 client credentials at ``POST /services/oauth2/token`` and the session check on every API call.

The token request is a form post ``grant_type=client_credentials&client_id=…&client_secret=…`` (or the
client in an ``Authorization: Basic`` header, as simple-salesforce sends it); the answer is
``{"access_token", "signature", "scope", "instance_url", "id", "token_type": "Bearer", "issued_at"}``
with no refresh token and no ``expires_in`` (crm-apis.md B1; Salesforce Help "OAuth 2.0 Client
Credentials Flow for Server-to-Server Integration"). ``id`` is the identity URL
``<login>/id/<org id>/<user id>`` of the Run As user; ``issued_at`` is epoch milliseconds as a string;
``signature`` is base64 HMAC-SHA256 of ``id`` + ``issued_at`` keyed with the client secret (Help,
"OAuth Endpoints" token response parameters).

OAuth errors are a JSON object, not the REST error array: an unknown client is
``{"error": "invalid_client_id", "error_description": "client identifier invalid"}``, a wrong secret
``{"error": "invalid_client", "error_description": "invalid client credentials"}``, another grant
``{"error": "unsupported_grant_type", "error_description": "grant type not supported"}``, all 400.

API calls carry ``Authorization: Bearer <token>`` (``OAuth <token>`` is accepted too); a missing, unknown,
expired or revoked token is 401 ``INVALID_SESSION_ID`` "Session expired or invalid".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from sandbox.sims.base import json_response
from sandbox.sims.salesforce.errors import invalid_session


@dataclass
class Session:
    client_id: str
    user_id: str
    issued: float


class Sessions:
    """Registered clients and issued access tokens; ``lifetime`` None = sessions do not time out."""

    def __init__(self, *, org_id: str, lifetime: float | None = None) -> None:
        self.org_id = org_id
        self.lifetime = lifetime
        self.tokens_issued = 0
        self.issued: list[str] = []  # every token handed out, for tests that scan logs for secrets
        self._lock = threading.Lock()
        self._clients: dict[str, str] = {}
        self._sessions: dict[str, Session] = {}

    def add_client(self, client_id: str, secret: str) -> None:
        with self._lock:
            self._clients[client_id] = secret

    def revoke_all(self) -> int:
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def revoke(self, token: str) -> bool:
        with self._lock:
            return self._sessions.pop(token, None) is not None

    def check(self, request: Request) -> Session:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "oauth") or not token:
            raise invalid_session()
        with self._lock:
            session = self._sessions.get(token)
            if session is not None and self.lifetime is not None and time.time() - session.issued > self.lifetime:
                del self._sessions[token]
                session = None
        if session is None:
            raise invalid_session()
        return session

    def token_endpoint(self, request: Request, run_as: str) -> Response:
        form = request.form
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if request.authorization and request.authorization.type == "basic":
            client_id = client_id or request.authorization.username
            secret = secret or request.authorization.password
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        with self._lock:
            known = self._clients.get(client_id or "")
        if known is None:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not secret or not secrets.compare_digest(secret, known):
            return _oauth_error("invalid_client", "invalid client credentials")
        base = request.host_url.rstrip("/")
        token = f"{self.org_id[:15]}!AQ" + base64.urlsafe_b64encode(secrets.token_bytes(72)).decode().rstrip("=")
        issued_at = str(int(time.time() * 1000))
        identity = f"{base}/id/{self.org_id}/{run_as}"
        signature = base64.b64encode(
            hmac.new(known.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        with self._lock:
            self._sessions[token] = Session(client_id or "", run_as, time.time())
            self.issued.append(token)
            self.tokens_issued += 1
        return json_response(
            {
                "access_token": token,
                "signature": signature,
                "scope": "api",
                "instance_url": base,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            },
            headers={"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"},
        )

    def revoke_endpoint(self, request: Request) -> Response:
        """``POST /services/oauth2/revoke`` with ``token=…``: 200 even for an unknown token (RFC 7009)."""
        self.revoke(request.form.get("token", "") or request.args.get("token", ""))
        return Response(b"", status=200)


def _oauth_error(code: str, description: str) -> Response:
    return json_response({"error": code, "error_description": description}, 400)


__all__ = ["Session", "Sessions", "invalid_session"]

"""Azure Key Vault simulator: the secrets data plane an admin's tool writes the refresh token through.

Enough of the REST API for ``azure-keyvault-secrets``' ``SecretClient.set_secret`` / ``get_secret``:

- ``PUT /secrets/<name>?api-version=…``         ``{"value", "contentType"?, "tags"?, "attributes"?}`` -> the new version
- ``GET /secrets/<name>[/<version>]?api-version=…`` the latest (or that) version; 404 ``SecretNotFound``

Authentication is Key Vault's challenge: a request without a bearer token gets 401 with
``WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"``
(the SDK sends its first request without a body to learn it). A token the ``token_validator``
refuses is a 401 too. The vault is in RBAC mode: :meth:`KeyVaultSimulator.grant` sets what the
caller may do (*Key Vault Secrets Officer*: read and write; *Secrets User*: read only); anything else is
a 403 ``ForbiddenByRbac`` naming the data action. The SDK only sends bearer tokens over HTTPS, so
serve it with ``ServerThread(..., ssl_context=make_server_certificate(pki).ssl_context())``; the
challenge names ``vault.azure.net``, which a loopback URL does not end with, so the client is
built with ``verify_challenge_resource=False`` for the simulator.

Control API (besides the base one):

- ``POST /_sim/permissions``  ``{"get": bool, "set": bool}``
- ``GET  /_sim/secrets``      ``{"<name>": <number of versions>}`` (never values)
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import AccessToken
from werkzeug.wrappers import Request, Response

from sandbox.sims.base import Simulator, json_response

RESOURCE = "https://vault.azure.net"
_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_ACTIONS = {
    "get": "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    "set": "Microsoft.KeyVault/vaults/secrets/setSecret/action",
}


class StaticCredential:
    """The admin's identity in the sandbox: a ``TokenCredential`` handing out one token, recording the scopes.

    Build the simulator with ``token_validator=lambda t: t == credential.token``.
    """

    def __init__(self, token: str = "sandbox-admin-vault-token") -> None:  # noqa: S107 - a sandbox value
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: object) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@dataclass
class SecretVersion:
    value: str
    version: str
    created: int
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    enabled: bool = True


class KeyVaultSimulator(Simulator):
    name = "keyvault"

    def __init__(
        self,
        *,
        token_validator: Callable[[str], bool],
        tenant_id: str = "00000000-0000-4000-8000-00000000c05e",
        authority_host: str = "https://login.microsoftonline.com",
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        self.token_validator = token_validator
        self.tenant_id = tenant_id
        self.authority_host = authority_host.rstrip("/")
        self.permissions = {"get": True, "set": True}
        self._secrets: dict[str, list[SecretVersion]] = {}
        self.add_route("/secrets/<name>", ["PUT"], self._set)
        self.add_route("/secrets/<name>", ["GET"], self._get)
        self.add_route("/secrets/<name>/<version>", ["GET"], self._get)

    # ----- in-process helpers -----
    def grant(self, *, read: bool, write: bool) -> None:
        """What the caller's role allows: Secrets Officer reads and writes, Secrets User only reads."""
        with self._lock:
            self.permissions = {"get": read, "set": write}

    def value(self, name: str) -> str | None:
        """The latest version's value, for tests."""
        with self._lock:
            versions = self._secrets.get(name)
            return versions[-1].value if versions else None

    def versions(self, name: str) -> list[SecretVersion]:
        with self._lock:
            return list(self._secrets.get(name, []))

    # ----- HTTP -----
    def _refused(self, request: Request, action: str, name: str) -> Response | None:
        if not request.args.get("api-version"):
            return self.error_response(
                400, "BadParameter", "The request URI contains an invalid or missing api-version."
            )
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        challenge = {
            "WWW-Authenticate": f'Bearer authorization="{self.authority_host}/{self.tenant_id}", resource="{RESOURCE}"'
        }
        if scheme.lower() != "bearer" or not token.strip():
            return self.error_response(
                401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", challenge
            )
        if not self.token_validator(token.strip()):
            return self.error_response(401, "Unauthorized", "AKV10022: Invalid audience or expired token.", challenge)
        with self._lock:
            allowed = self.permissions.get(action, False)
        if not allowed:
            body = {
                "error": {
                    "code": "Forbidden",
                    "message": (
                        "Caller is not authorized to perform action on resource.\r\n"
                        "If role assignments, deny assignments or role definitions were changed recently, please "
                        f"observe propagation time.\r\nAction: '{_ACTIONS[action]}'\r\n"
                        f"Resource: '/secrets/{name}'"
                    ),
                    "innererror": {"code": "ForbiddenByRbac"},
                }
            }
            return json_response(body, 403)
        return None

    def _set(self, request: Request, name: str) -> Response:
        if refused := self._refused(request, "set", name):
            return refused
        if not _NAME.match(name):
            return self.error_response(
                400,
                "BadParameter",
                "The request URI contains an invalid name: secret names are 1-127 letters, digits or dashes.",
            )
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return self.error_response(400, "BadParameter", "Property 'value' is required and must be a string.")
        attributes = body.get("attributes") if isinstance(body.get("attributes"), dict) else {}
        created = SecretVersion(
            value=body["value"],
            version=uuid.uuid4().hex,
            created=int(time.time()),
            content_type=body.get("contentType"),
            tags=dict(body.get("tags") or {}),
            enabled=bool(attributes.get("enabled", True)),
        )
        with self._lock:
            self._secrets.setdefault(name, []).append(created)
        return json_response(self._bundle(request, name, created))

    def _get(self, request: Request, name: str, version: str | None = None) -> Response:
        if refused := self._refused(request, "get", name):
            return refused
        with self._lock:
            versions = self._secrets.get(name, [])
            found = (
                versions[-1] if versions and not version else next((v for v in versions if v.version == version), None)
            )
        if found is None:
            wanted = f"{name}/{version}" if version else name
            return self.error_response(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {wanted} was not found in this key vault. If you recently deleted this "
                "secret you may be able to recover it using the correct recovery command.",
            )
        return json_response(self._bundle(request, name, found))

    def _bundle(self, request: Request, name: str, secret: SecretVersion) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "value": secret.value,
            "id": f"{request.host_url.rstrip('/')}/secrets/{name}/{secret.version}",
            "attributes": {
                "enabled": secret.enabled,
                "created": secret.created,
                "updated": secret.created,
                "recoveryLevel": "Recoverable",
                "recoverableDays": 90,
            },
            "tags": secret.tags,
        }
        if secret.content_type is not None:
            bundle["contentType"] = secret.content_type
        return bundle

    def control(self, request: Request, action: str) -> Response:
        body = request.get_json(force=True, silent=True) or {}
        if action == "permissions" and request.method == "POST":
            self.grant(read=bool(body.get("get")), write=bool(body.get("set")))
            return json_response(self.permissions)
        if action == "secrets" and request.method == "GET":
            with self._lock:
                return json_response({name: len(versions) for name, versions in self._secrets.items()})
        return super().control(request, action)

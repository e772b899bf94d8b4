"""The Key Vault simulator through azure-keyvault-secrets' SecretClient, over HTTPS with the sandbox CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from sandbox.pki import Pki, make_pki, make_server_certificate
from sandbox.sims.base import ServerThread
from sandbox.sims.keyvault import KeyVaultSimulator, StaticCredential

ADMIN_TOKEN = StaticCredential().token


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def vault(pki: Pki) -> Iterator[tuple[KeyVaultSimulator, str]]:
    sim = KeyVaultSimulator(token_validator=lambda token: token == ADMIN_TOKEN)
    server = ServerThread(sim, ssl_context=make_server_certificate(pki).ssl_context()).start()
    yield sim, server.url
    server.stop()


def _trust(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.root_pem_path))


def _client(url: str, pki: Pki, credential: StaticCredential | None = None) -> SecretClient:
    return SecretClient(
        url,
        credential or StaticCredential(),
        verify_challenge_resource=False,  # the challenge names vault.azure.net; the simulator is on 127.0.0.1
        connection_verify=str(pki.root_pem_path),
    )


def test_set_and_get_secret_through_the_challenge(vault: tuple[KeyVaultSimulator, str], pki: Pki) -> None:
    sim, url = vault
    credential = StaticCredential()
    client = _client(url, pki, credential)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("partner-center-refresh-token")
    first = client.set_secret("partner-center-refresh-token", "0.AXkA-first")
    second = client.set_secret("partner-center-refresh-token", "0.AXkA-second", content_type="text/plain")
    assert second.properties.version != first.properties.version
    assert second.id == f"{url}/secrets/partner-center-refresh-token/{second.properties.version}"
    assert client.get_secret("partner-center-refresh-token").value == "0.AXkA-second"
    assert client.get_secret("partner-center-refresh-token", first.properties.version).value == "0.AXkA-first"
    assert sim.value("partner-center-refresh-token") == "0.AXkA-second"
    assert [v.content_type for v in sim.versions("partner-center-refresh-token")] == [None, "text/plain"]
    assert credential.scopes[0] == ("https://vault.azure.net/.default",)
    # The SDK learned the challenge from a first request without a token, then sent the bearer token.
    assert [r.status for r in sim.recorded()[:2]] == [401, 404]
    assert httpx.get(f"{url}/_sim/secrets", verify=_trust(pki)).json() == {"partner-center-refresh-token": 2}


def test_without_a_valid_token_or_the_role_the_vault_refuses(vault: tuple[KeyVaultSimulator, str], pki: Pki) -> None:
    sim, url = vault
    with pytest.raises(ClientAuthenticationError):
        _client(url, pki, StaticCredential("someone-else")).set_secret("partner-center-refresh-token", "x")
    sim.grant(read=True, write=False)  # Key Vault Secrets User
    with pytest.raises(HttpResponseError) as refused:
        _client(url, pki).set_secret("partner-center-refresh-token", "x")
    assert refused.value.status_code == 403
    assert "setSecret" in str(refused.value.message)
    assert sim.value("partner-center-refresh-token") is None
    raw = httpx.put(
        f"{url}/secrets/bad_name?api-version=7.4",
        json={"value": "x"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        verify=_trust(pki),
    )
    assert raw.status_code == 403  # RBAC is checked before the name
    sim.grant(read=True, write=True)
    raw = httpx.put(
        f"{url}/secrets/bad_name?api-version=7.4",
        json={"value": "x"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        verify=_trust(pki),
    )
    assert (raw.status_code, raw.json()["error"]["code"]) == (400, "BadParameter")
    missing_version = httpx.get(
        f"{url}/secrets/x", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, verify=_trust(pki)
    )
    assert missing_version.status_code == 400
    challenge = httpx.get(f"{url}/secrets/x?api-version=7.4", verify=_trust(pki))
    assert challenge.status_code == 401
    assert 'resource="https://vault.azure.net"' in challenge.headers["WWW-Authenticate"]


def test_the_control_api_sets_permissions(vault: tuple[KeyVaultSimulator, str], pki: Pki) -> None:
    sim, url = vault
    answer = httpx.post(f"{url}/_sim/permissions", json={"get": True, "set": False}, verify=_trust(pki))
    assert answer.json() == {"get": True, "set": False}
    assert sim.permissions == {"get": True, "set": False}

"""The Entra token endpoint simulator over real HTTP: grants, strict refresh-token rotation, errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.entra import EntraSimulator

TENANT = "7d23e5ca-19dc-4eaa-aac8-5e6b559f0d1d"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cr3t-value"
REFERRALS_SCOPE = "https://api.partner.microsoft.com/.default"


@pytest.fixture
def entra() -> Iterator[tuple[EntraSimulator, str]]:
    sim = EntraSimulator(seed=1)
    sim.add_client(CLIENT_ID, SECRET)
    server = ServerThread(sim).start()
    yield sim, f"{server.url}/{TENANT}/oauth2/v2.0/token"
    server.stop()


def _post(url: str, **form: str) -> httpx.Response:
    return httpx.post(url, data=form, timeout=10)


def test_client_credentials_issues_bearer_token_for_the_scope_audience(entra: tuple[EntraSimulator, str]) -> None:
    sim, url = entra
    response = _post(
        url,
        grant_type="client_credentials",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        scope="https://api.partnercenter.microsoft.com/.default",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert "refresh_token" not in body
    assert body["scope"] == "https://api.partnercenter.microsoft.com/.default"
    token = body["access_token"]
    assert sim.validator("https://api.partnercenter.microsoft.com")(token)
    assert not sim.validator("https://api.partner.microsoft.com")(token)
    assert not sim.validator("https://api.partnercenter.microsoft.com")("not-a-token")
    assert sim.tokens_issued == 1


def test_refresh_tokens_rotate_and_a_used_one_is_rejected(entra: tuple[EntraSimulator, str]) -> None:
    sim, url = entra
    first = sim.issue_refresh_token(CLIENT_ID)
    response = _post(
        url,
        grant_type="refresh_token",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=first,
        scope=f"{REFERRALS_SCOPE} offline_access",
    )
    assert response.status_code == 200
    body = response.json()
    second = body["refresh_token"]
    assert second
    assert second != first
    assert sim.validator("https://api.partner.microsoft.com")(body["access_token"])

    reused = _post(
        url,
        grant_type="refresh_token",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=first,
        scope=REFERRALS_SCOPE,
    )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert reused.json()["error_description"].startswith("AADSTS70000")

    rotated = _post(
        url,
        grant_type="refresh_token",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=second,
        scope=REFERRALS_SCOPE,
    )
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] not in (first, second)
    assert sim.tokens_issued == 2


def test_refresh_token_of_another_client_is_invalid_grant(entra: tuple[EntraSimulator, str]) -> None:
    sim, url = entra
    sim.add_client("other-client", "other-secret")
    token = sim.issue_refresh_token("other-client")
    response = _post(
        url,
        grant_type="refresh_token",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=token,
        scope=REFERRALS_SCOPE,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_bad_secret_is_invalid_client_401(entra: tuple[EntraSimulator, str]) -> None:
    sim, url = entra
    response = _post(
        url, grant_type="client_credentials", client_id=CLIENT_ID, client_secret="wrong", scope=REFERRALS_SCOPE
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_codes"] == [7000215]
    assert sim.tokens_issued == 0


def test_unknown_client_and_unsupported_grant(entra: tuple[EntraSimulator, str]) -> None:
    _, url = entra
    unknown = _post(url, grant_type="client_credentials", client_id="nobody", client_secret="x", scope=REFERRALS_SCOPE)
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "unauthorized_client"
    grant = _post(url, grant_type="password", client_id=CLIENT_ID, client_secret=SECRET, scope=REFERRALS_SCOPE)
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"


def test_client_credentials_requires_a_default_scope(entra: tuple[EntraSimulator, str]) -> None:
    _, url = entra
    response = _post(
        url,
        grant_type="client_credentials",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        scope="https://api.partner.microsoft.com/user_impersonation",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_basic_client_authentication_is_accepted(entra: tuple[EntraSimulator, str]) -> None:
    _, url = entra
    response = httpx.post(
        url,
        data={"grant_type": "client_credentials", "scope": REFERRALS_SCOPE},
        auth=(CLIENT_ID, SECRET),
        timeout=10,
    )
    assert response.status_code == 200


def test_expired_tokens_fail_validation_and_lifetime_is_configurable(entra: tuple[EntraSimulator, str]) -> None:
    sim, url = entra
    sim.token_lifetime = 120
    body = _post(
        url, grant_type="client_credentials", client_id=CLIENT_ID, client_secret=SECRET, scope=REFERRALS_SCOPE
    ).json()
    assert body["expires_in"] == 120
    check = sim.validator("https://api.partner.microsoft.com/")
    assert check(body["access_token"])
    sim.expire_access_tokens()
    assert not check(body["access_token"])


def test_control_api_registers_clients_and_issues_refresh_tokens(entra: tuple[EntraSimulator, str]) -> None:
    sim, url = entra
    base = url.split(f"/{TENANT}/")[0]
    assert httpx.post(f"{base}/_sim/clients", json={"clientId": "c2", "secret": "p2"}).status_code == 200
    refresh = httpx.post(f"{base}/_sim/refresh-tokens", json={"clientId": "c2"}).json()["refreshToken"]
    response = _post(
        url,
        grant_type="refresh_token",
        client_id="c2",
        client_secret="p2",
        refresh_token=refresh,
        scope=REFERRALS_SCOPE,
    )
    assert response.status_code == 200
    assert httpx.get(f"{base}/_sim/tokens").json()["tokensIssued"] == 1
    assert sim.count("POST") == 1


def test_injected_fault_uses_oauth_error_body(entra: tuple[EntraSimulator, str]) -> None:
    sim, url = entra
    sim.set_faults({"rate": 1.0, "statuses": [503], "retry_after": 2})
    response = _post(
        url, grant_type="client_credentials", client_id=CLIENT_ID, client_secret=SECRET, scope=REFERRALS_SCOPE
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"] == "temporarily_unavailable"


def test_an_unknown_tenant_is_aadsts90002_in_error_codes_and_a_malformed_one_900023() -> None:
    """error_codes carries the answer's own number (what a client reads to tell a wrong tenant)."""
    sim = EntraSimulator(seed=2, tenants={TENANT})
    sim.add_client(CLIENT_ID, SECRET)
    server = ServerThread(sim).start()
    try:
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
        form["scope"] = REFERRALS_SCOPE
        unknown = httpx.post(f"{server.url}/4b1c7a9e-5d2f-4e61-9a8b-7c6d5e4f3a2b/oauth2/v2.0/token", data=form)
        assert (unknown.status_code, unknown.json()["error"], unknown.json()["error_codes"]) == (
            400,
            "invalid_request",
            [90002],
        )
        malformed = httpx.post(f"{server.url}/contoso/oauth2/v2.0/token", data=form)
        assert (malformed.status_code, malformed.json()["error_codes"]) == (400, [900023])
        assert malformed.json()["error_description"].startswith("AADSTS900023: Specified tenant identifier 'contoso'")
        assert httpx.post(f"{server.url}/{TENANT}/oauth2/v2.0/token", data=form).status_code == 200
    finally:
        server.stop()


def test_a_revoked_refresh_token_is_aadsts50173(entra: tuple[EntraSimulator, str]) -> None:
    sim, url = entra
    token = sim.issue_refresh_token(CLIENT_ID)
    assert sim.revoke_refresh_tokens(CLIENT_ID) == 1
    response = _post(
        url,
        grant_type="refresh_token",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=token,
        scope=REFERRALS_SCOPE,
    )
    assert (response.status_code, response.json()["error"], response.json()["error_codes"]) == (
        400,
        "invalid_grant",
        [50173],
    )

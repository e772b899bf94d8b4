"""OAuth 2.0 client credentials and the session check, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac

import httpx

from sandbox.sims.base import ServerThread
from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.support import CLIENT_ID, CLIENT_SECRET, VERSION, error_of, sign_in


def _token(server: ServerThread, **form: str) -> httpx.Response:
    return httpx.post(f"{server.url}/services/oauth2/token", data=form, timeout=10)


def test_client_credentials_answers_the_documented_token_response(
    server: ServerThread, sim: SalesforceSimulator
) -> None:
    response = _token(server, grant_type="client_credentials", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == server.url
    assert body["id"] == f"{server.url}/id/{sim.org_id}/{sim.integration_user_id}"
    assert body["issued_at"].isdigit()
    assert len(body["issued_at"]) == 13
    assert "refresh_token" not in body
    assert "expires_in" not in body
    expected = hmac.new(CLIENT_SECRET.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256).digest()
    assert base64.b64decode(body["signature"]) == expected


def test_client_in_a_basic_authorization_header_is_accepted(server: ServerThread) -> None:
    response = httpx.post(
        f"{server.url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


def test_wrong_credentials_and_grants_get_oauth_errors(server: ServerThread) -> None:
    wrong_secret = _token(server, grant_type="client_credentials", client_id=CLIENT_ID, client_secret="nope")
    unknown_client = _token(server, grant_type="client_credentials", client_id="someone", client_secret="x")
    password_grant = _token(server, grant_type="password", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)

    assert (wrong_secret.status_code, wrong_secret.json()) == (
        400,
        {"error": "invalid_client", "error_description": "invalid client credentials"},
    )
    assert (unknown_client.status_code, unknown_client.json()["error"]) == (400, "invalid_client_id")
    assert (password_grant.status_code, password_grant.json()["error"]) == (400, "unsupported_grant_type")


def test_api_calls_need_a_live_session(server: ServerThread, sim: SalesforceSimulator) -> None:
    base = f"{server.url}/services/data/{VERSION}"
    missing = httpx.get(f"{base}/sobjects", timeout=10)
    unknown = httpx.get(f"{base}/sobjects", headers={"Authorization": "Bearer 00Dfake!AQxyz"}, timeout=10)

    for response in (missing, unknown):
        assert response.status_code == 401
        assert error_of(response) == {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    assert sim.count(path="/services/data") == 2


def test_revoked_tokens_get_401_until_the_client_signs_in_again(server: ServerThread, sim: SalesforceSimulator) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        headers = {"Authorization": f"Bearer {sign_in(client)}"}
        assert client.get(f"/services/data/{VERSION}/limits", headers=headers).status_code == 200

        revoked = client.post("/_sim/revoke-tokens")
        assert revoked.json() == {"revoked": 1}
        after = client.get(f"/services/data/{VERSION}/limits", headers=headers)
        assert after.status_code == 401
        assert error_of(after)["errorCode"] == "INVALID_SESSION_ID"

        renewed = {"Authorization": f"Bearer {sign_in(client)}"}
        assert client.get(f"/services/data/{VERSION}/limits", headers=renewed).status_code == 200


def test_versions_are_listed_without_a_session_and_any_vNN_N_is_served(server: ServerThread, api: httpx.Client) -> None:
    listing = httpx.get(f"{server.url}/services/data/", timeout=10)

    assert listing.status_code == 200
    assert "Sforce-Limit-Info" not in listing.headers
    by_version = {v["version"]: v for v in listing.json()}
    assert by_version["60.0"] == {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"}
    assert by_version["62.0"]["label"] == "Winter '25"
    other = httpx.get(f"{server.url}/services/data/v58.0/sobjects", headers=api.headers, timeout=10)
    assert other.status_code == 200
    assert other.json()["sobjects"][0]["urls"]["sobject"].startswith("/services/data/v58.0/")
    bogus = httpx.get(f"{server.url}/services/data/60.0/sobjects", headers=api.headers, timeout=10)
    assert bogus.status_code == 404
    assert error_of(bogus)["errorCode"] == "NOT_FOUND"

"""The Entra simulator's authorization-code flow over real HTTP: sign-in, PKCE, one-time codes, public clients."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.entra import EntraSimulator

TENANT = "7d23e5ca-19dc-4eaa-aac8-5e6b559f0d1d"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cr3t-value"
REDIRECT = "http://localhost:8400"
DESKTOP_REDIRECT = "http://localhost:8401"
SCOPE = "https://api.partner.microsoft.com/.default offline_access openid profile"


@pytest.fixture
def entra() -> Iterator[tuple[EntraSimulator, str]]:
    sim = EntraSimulator(seed=3)
    sim.add_client(CLIENT_ID, SECRET, redirect_uris=[REDIRECT], public_client_redirect_uris=[DESKTOP_REDIRECT])
    server = ServerThread(sim).start()
    yield sim, f"{server.url}/{TENANT}/oauth2/v2.0"
    server.stop()


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(43)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def _authorize(base: str, **overrides: str) -> httpx.Response:
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "st4te",
        "nonce": "n0nce",
        "client_info": "1",
        **overrides,
    }
    return httpx.get(f"{base}/authorize", params={k: v for k, v in params.items() if v}, timeout=10)


def _redirected(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" in (REDIRECT, DESKTOP_REDIRECT)
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def _code(base: str, challenge: str, redirect: str = REDIRECT) -> str:
    return _redirected(_authorize(base, code_challenge=challenge, code_challenge_method="S256", redirect_uri=redirect))[
        "code"
    ]


def _redeem(base: str, code: str, verifier: str, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "scope": SCOPE,
        "client_info": "1",
        **overrides,
    }
    return httpx.post(f"{base}/token", data={k: v for k, v in form.items() if v}, timeout=10)


def _claims(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_the_admin_signs_in_and_the_code_is_redeemed_once_for_tokens(entra: tuple[EntraSimulator, str]) -> None:
    sim, base = entra
    verifier, challenge = _pkce()
    answer = _redirected(_authorize(base, code_challenge=challenge, code_challenge_method="S256"))
    assert answer["state"] == "st4te"
    assert json.loads(base64.urlsafe_b64decode(answer["client_info"] + "==")) == {
        "uid": sim.sign_in.object_id,
        "utid": TENANT,
    }
    response = _redeem(base, answer["code"], verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    assert sim.validator("https://api.partner.microsoft.com")(body["access_token"])
    assert body["scope"] == "https://api.partner.microsoft.com/user_impersonation offline_access"
    claims = _claims(body["id_token"])
    assert claims["nonce"] == "n0nce"
    assert claims["aud"] == CLIENT_ID
    assert claims["preferred_username"] == sim.sign_in.username
    assert str(claims["iss"]).endswith(f"/{TENANT}/v2.0")
    assert body["client_info"]

    # The refresh token is the app's: redeemed with the secret, for either Partner Center resource.
    webhooks = httpx.post(
        f"{base}/token",
        data={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "refresh_token": body["refresh_token"],
            "scope": "https://api.partnercenter.microsoft.com/.default offline_access",
        },
        timeout=10,
    )
    assert webhooks.status_code == 200, webhooks.text
    assert sim.validator("https://api.partnercenter.microsoft.com")(webhooks.json()["access_token"])

    again = _redeem(base, answer["code"], verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.json()["error_codes"] == [54005]


def test_form_post_answers_with_the_auto_submitting_form(entra: tuple[EntraSimulator, str]) -> None:
    _, base = entra
    response = _authorize(base, response_mode="form_post")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")

    class Form(HTMLParser):
        action = ""
        fields: dict[str, str] = {}  # noqa: RUF012 - one parse per instance

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if tag == "form":
                self.action = values.get("action") or ""
            if tag == "input" and values.get("type") == "hidden":
                self.fields = {**self.fields, str(values["name"]): str(values["value"])}

    form = Form()
    form.feed(response.text)
    assert form.action == REDIRECT
    assert form.fields["state"] == "st4te"
    assert form.fields["code"]


def test_errors_before_a_trusted_redirect_are_shown_not_sent(entra: tuple[EntraSimulator, str]) -> None:
    sim, base = entra
    unknown = _authorize(base, client_id="00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 400
    assert "AADSTS700016" in unknown.text
    mismatch = _authorize(base, redirect_uri="http://localhost:9999")
    assert mismatch.status_code == 400
    assert "AADSTS50011" in mismatch.text
    assert "Location" not in mismatch.headers
    sim.add_client("no-redirects", "x")
    bare = _authorize(base, client_id="no-redirects")
    assert bare.status_code == 400
    assert "AADSTS500113" in bare.text


def test_a_refused_sign_in_comes_back_as_an_oauth_error_with_the_state(entra: tuple[EntraSimulator, str]) -> None:
    sim, base = entra
    root = base.split(f"/{TENANT}/")[0]
    assert httpx.post(f"{root}/_sim/sign-in", json={"refuse": "access_denied"}).status_code == 200
    answer = _redirected(_authorize(base))
    assert answer["error"] == "access_denied"
    assert answer["error_description"].startswith("AADSTS65004: User declined to consent")
    assert answer["state"] == "st4te"
    assert "code" not in answer

    sim.refuse_sign_in("interaction_required")
    mfa = _redirected(_authorize(base))
    assert "multi-factor authentication to access 'https://api.partner.microsoft.com'" in mfa["error_description"]

    assert httpx.post(f"{root}/_sim/sign-in", json={"refuse": "made_up"}).status_code == 400
    assert httpx.post(f"{root}/_sim/sign-in", json={"refuse": None}).json()["refuse"] is None
    assert "code" in _redirected(_authorize(base))
    wrong_type = _redirected(_authorize(base, response_type="token"))
    assert wrong_type["error"] == "unsupported_response_type"


def test_the_code_is_bound_to_its_redirect_verifier_and_secret(entra: tuple[EntraSimulator, str]) -> None:
    sim, base = entra
    verifier, challenge = _pkce()

    wrong_verifier = _redeem(base, _code(base, challenge), "not-the-verifier")
    assert (wrong_verifier.status_code, wrong_verifier.json()["error_codes"]) == (400, [501481])

    spent = _code(base, challenge)
    _redeem(base, spent, "not-the-verifier")
    assert _redeem(base, spent, verifier).json()["error_codes"] == [54005]  # a failed attempt spends it too

    other_redirect = _redeem(base, _code(base, challenge), verifier, redirect_uri="http://localhost:8400/")
    assert other_redirect.json()["error_codes"] == [500112]
    assert "does not match the reply address 'http://localhost:8400'" in other_redirect.json()["error_description"]

    no_secret = _redeem(base, _code(base, challenge), verifier, client_secret="")
    assert (no_secret.status_code, no_secret.json()["error_codes"]) == (401, [7000218])
    bad_secret = _redeem(base, _code(base, challenge), verifier, client_secret="wrong")
    assert (bad_secret.status_code, bad_secret.json()["error_codes"]) == (401, [7000215])

    assert _redeem(base, "1.AXkAnever-issued", verifier).json()["error_codes"] == [9002313]
    sim.code_lifetime = 0
    assert _redeem(base, _code(base, challenge), verifier).json()["error_codes"] == [70008]
    assert sim.tokens_issued == 0


def test_a_public_client_refresh_token_cannot_be_redeemed_with_a_secret(entra: tuple[EntraSimulator, str]) -> None:
    """The documented trap: consent through a public client, redemption by the confidential app."""
    sim, base = entra
    verifier, challenge = _pkce()
    with_secret = _redeem(base, _code(base, challenge, DESKTOP_REDIRECT), verifier, redirect_uri=DESKTOP_REDIRECT)
    assert with_secret.status_code == 401
    assert with_secret.json()["error"] == "invalid_client"
    assert with_secret.json()["error_codes"] == [700025]

    public = _redeem(
        base, _code(base, challenge, DESKTOP_REDIRECT), verifier, redirect_uri=DESKTOP_REDIRECT, client_secret=""
    )
    assert public.status_code == 200, public.text
    refresh = public.json()["refresh_token"]

    def redeem(token: str, secret: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": token}
        form |= {"scope": "https://api.partner.microsoft.com/.default offline_access"}
        return httpx.post(f"{base}/token", data=form | ({"client_secret": secret} if secret else {}), timeout=10)

    refused = redeem(refresh, SECRET)
    assert refused.status_code == 401
    assert refused.json()["error_description"].startswith(
        "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be presented."
    )
    rotated = redeem(refresh, "")  # what the public client itself does
    assert rotated.status_code == 200
    assert redeem(rotated.json()["refresh_token"], SECRET).json()["error_codes"] == [700025]  # rotation keeps it

    root = base.split(f"/{TENANT}/")[0]
    issued = httpx.post(f"{root}/_sim/refresh-tokens", json={"clientId": CLIENT_ID, "publicClient": True})
    assert redeem(issued.json()["refreshToken"], SECRET).json()["error_codes"] == [700025]
    confidential = httpx.post(f"{root}/_sim/refresh-tokens", json={"clientId": CLIENT_ID})
    assert redeem(confidential.json()["refreshToken"], SECRET).status_code == 200
    assert sim.tokens_issued == 3


def test_discovery_and_control_api_describe_the_code_flow(entra: tuple[EntraSimulator, str]) -> None:
    _, base = entra
    root = base.split(f"/{TENANT}/")[0]
    config = httpx.get(f"{root}/{TENANT}/v2.0/.well-known/openid-configuration").json()
    assert config["authorization_endpoint"] == f"{base}/authorize"
    assert "authorization_code" in config["grant_types_supported"]
    assert "form_post" in config["response_modes_supported"]
    registered = httpx.post(
        f"{root}/_sim/clients",
        json={"clientId": "c3", "secret": "p3", "redirectUris": ["http://localhost:9000"]},
    )
    assert registered.status_code == 200
    assert _authorize(base, client_id="c3", redirect_uri="http://localhost:9000").status_code == 302
    bad = httpx.post(f"{root}/_sim/clients", json={"clientId": "c4", "secret": "p4", "redirectUris": "x"})
    assert bad.status_code == 400
    assert httpx.get(f"{root}/_sim/tokens").json()["codes"] == 1


def test_discovery_of_an_unknown_tenant_fails_as_entra_does() -> None:
    sim = EntraSimulator(tenants={TENANT})
    server = ServerThread(sim).start()
    try:
        known = httpx.get(f"{server.url}/{TENANT}/v2.0/.well-known/openid-configuration", timeout=10)
        assert known.status_code == 200
        unknown = httpx.get(f"{server.url}/contoso.example/v2.0/.well-known/openid-configuration", timeout=10)
        assert unknown.status_code == 400
        assert unknown.json()["error_codes"] == [90002]
        assert _authorize(f"{server.url}/contoso.example/oauth2/v2.0").status_code == 400
    finally:
        server.stop()

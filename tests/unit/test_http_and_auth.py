"""The outbound HTTP policy (retries, Retry-After, errors, call counting) and token providers."""

from __future__ import annotations

import httpx
import pytest
import respx

from shared.auth import AuthError, ClientCredentialsToken, MemoryRefreshTokenStore, RefreshTokenGrant
from shared.http import ApiError, ApiUnavailable, ServiceClient, Throttled, UntrustedLink, count_calls

BASE = "https://api.example.test/v1.0/engagements"


def client(sleeps: list[float], **kwargs) -> ServiceClient:
    return ServiceClient("partner-center", BASE, sleep=sleeps.append, max_attempts=4, max_backoff=30, **kwargs)


@respx.mock
def test_429_waits_what_retry_after_says_then_succeeds() -> None:
    route = respx.get(f"{BASE}/referrals/1").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"statusCode": 429, "message": "slow down"}),
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(200, json={"id": "1"}),
        ]
    )
    sleeps: list[float] = []
    with count_calls() as calls:
        response = client(sleeps).request("GET", "referrals/1")
    assert response.json() == {"id": "1"}
    assert sleeps == [7.0, 2.0]
    assert route.call_count == 3
    assert calls.calls == {"partner-center": 3}
    assert calls.writes == {}


@respx.mock
def test_a_wait_longer_than_an_in_call_retry_is_not_cut_short_but_handed_back() -> None:
    """Dataverse service protection: "wait the full Retry-After"; retrying earlier extends the penalty."""
    route = respx.get(f"{BASE}/x").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "300"}), httpx.Response(200)]
    )
    sleeps: list[float] = []
    with pytest.raises(Throttled) as info:
        client(sleeps).request("GET", "x")
    assert route.call_count == 1
    assert sleeps == []
    assert info.value.retry_after == 300
    assert info.value.transient


@respx.mock
def test_retry_after_within_the_cap_is_waited_in_full_and_backoff_used_without_it() -> None:
    respx.get(f"{BASE}/x").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(500), httpx.Response(200)]
    )
    sleeps: list[float] = []
    client(sleeps).request("GET", "x")
    assert sleeps[0] == 30
    assert 0 <= sleeps[1] <= 30


@respx.mock
def test_links_are_followed_only_to_the_configured_host_and_only_over_https() -> None:
    evil = respx.get("https://evil.example/steal").mock(return_value=httpx.Response(200, json={}))
    own = respx.get("https://api.example.test/v1.0/referrals?$skiptoken=abc").mock(
        return_value=httpx.Response(200, json={"value": []})
    )
    service = client([], auth=lambda: "secret-token")
    with pytest.raises(UntrustedLink):
        service.request("GET", "https://evil.example/steal")
    with pytest.raises(UntrustedLink):
        service.request("GET", "https://api.example.test:8443/v1.0/referrals")
    assert evil.call_count == 0
    # Partner Center's documented nextLink sample is http://: same host, so it is followed over HTTPS.
    service.request("GET", "http://api.example.test/v1.0/referrals?$skiptoken=abc")
    assert own.call_count == 1
    assert own.calls.last.request.url.scheme == "https"


@respx.mock
def test_persistent_5xx_gives_up_after_max_attempts_with_the_service_error() -> None:
    route = respx.get(f"{BASE}/x").mock(
        return_value=httpx.Response(503, json={"error": {"code": "serviceNotAvailable", "message": "down"}})
    )
    with pytest.raises(ApiError) as info:
        client([]).request("GET", "x")
    assert route.call_count == 4
    assert (info.value.status, info.value.code, info.value.message, info.value.transient) == (
        503,
        "serviceNotAvailable",
        "down",
        True,
    )


@respx.mock
def test_4xx_is_not_retried_and_surfaces_the_error_body() -> None:
    route = respx.patch(f"{BASE}/referrals/1").mock(
        return_value=httpx.Response(
            400,
            json={"error": {"code": "invalidRequest", "message": "Closed referrals cannot change", "target": "x"}},
        )
    )
    with pytest.raises(ApiError) as info:
        client([]).request("PATCH", "referrals/1", json=[])
    assert route.call_count == 1
    assert "invalidRequest: Closed referrals cannot change" in str(info.value)
    assert not info.value.transient


@respx.mock
def test_non_idempotent_call_is_not_retried_after_a_timeout() -> None:
    route = respx.post(f"{BASE}/referrals").mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(ApiUnavailable):
        client([]).request("POST", "referrals", json={}, idempotent=False)
    assert route.call_count == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@respx.mock
def test_non_idempotent_call_is_not_retried_after_a_5xx_that_may_have_committed(status: int) -> None:
    route = respx.post(f"{BASE}/referrals").mock(
        side_effect=[httpx.Response(status), httpx.Response(201, json={"id": "twin"})]
    )
    with pytest.raises(ApiError) as info:
        client([]).request("POST", "referrals", json={}, idempotent=False)
    assert (route.call_count, info.value.status, info.value.transient) == (1, status, True)


@respx.mock
def test_non_idempotent_call_is_retried_after_a_429_or_a_connection_that_never_opened() -> None:
    route = respx.post(f"{BASE}/referrals").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.ConnectError("refused"),
            httpx.Response(201, json={"id": "r"}),
        ]
    )
    sleeps: list[float] = []
    assert client(sleeps).request("POST", "referrals", json={}, idempotent=False).json() == {"id": "r"}
    assert route.call_count == 3


@respx.mock
def test_idempotent_call_is_retried_after_a_timeout() -> None:
    route = respx.get(f"{BASE}/x").mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json={})])
    client([]).request("GET", "x")
    assert route.call_count == 2


@respx.mock
def test_bearer_token_is_sent_and_fetched_per_attempt() -> None:
    route = respx.get(f"{BASE}/x").mock(return_value=httpx.Response(200, json={}))
    client([], auth=lambda: "tok-123").request("GET", "x")
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-123"


AUTHORITY = "https://login.example.test"
TOKEN_URL = f"{AUTHORITY}/tenant-1/oauth2/v2.0/token"


@respx.mock
def test_client_credentials_token_is_cached_until_expiry() -> None:
    route = respx.post(TOKEN_URL).mock(
        return_value=httpx.Response(200, json={"access_token": "at-1", "expires_in": 3599, "token_type": "Bearer"})
    )
    provider = ClientCredentialsToken(AUTHORITY, "tenant-1", "app", "s3cret", "https://org.example/.default")
    assert provider() == provider() == "at-1"
    assert route.call_count == 1
    form = dict(httpx.QueryParams(route.calls.last.request.content.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "app",
        "client_secret": "s3cret",
        "scope": "https://org.example/.default",
    }


@respx.mock
def test_refresh_token_rotation_is_kept_for_the_next_redemption() -> None:
    route = respx.post(TOKEN_URL).mock(
        side_effect=[
            httpx.Response(200, json={"access_token": "at-1", "expires_in": 0, "refresh_token": "rt-2"}),
            httpx.Response(200, json={"access_token": "at-2", "expires_in": 3599, "refresh_token": "rt-3"}),
        ]
    )
    store = MemoryRefreshTokenStore("rt-1")
    scope = "https://api.partner.microsoft.com/.default"
    grant = RefreshTokenGrant(AUTHORITY, "tenant-1", "app", "s3cret", scope, store)
    assert grant() == "at-1"
    assert grant() == "at-2"  # expires_in 0: redeemed again, with the rotated token
    sent = [dict(httpx.QueryParams(c.request.content.decode()))["refresh_token"] for c in route.calls]
    assert sent == ["rt-1", "rt-2"]
    assert store.load() == "rt-3"


@respx.mock
def test_refused_grant_raises_a_readable_error_without_secrets() -> None:
    respx.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            400,
            json={"error": "invalid_grant", "error_description": "AADSTS70000: The grant is expired.\r\nTrace ID: x"},
        )
    )
    grant = RefreshTokenGrant(AUTHORITY, "tenant-1", "app", "s3cret", "scope", MemoryRefreshTokenStore("rt-secret"))
    with pytest.raises(AuthError) as info:
        grant()
    expected = "Entra ID refused the refresh token grant: invalid_grant AADSTS70000: The grant is expired."
    assert str(info.value) == expected
    assert "rt-secret" not in str(info.value)
    assert "s3cret" not in str(info.value)


def test_missing_refresh_token_is_a_configuration_error() -> None:
    grant = RefreshTokenGrant(AUTHORITY, "t", "app", "s", "scope", MemoryRefreshTokenStore(None))
    with pytest.raises(AuthError, match="PARTNER_CENTER_REFRESH_TOKEN"):
        grant()


@respx.mock
def test_call_counters_nest() -> None:
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(200, json={}))
    respx.patch(f"{BASE}/x").mock(return_value=httpx.Response(204))
    api = client([])
    with count_calls() as outer:
        api.request("GET", "x")
        with count_calls() as inner:
            api.request("PATCH", "x", json=[])
    assert (inner.calls, inner.writes) == ({"partner-center": 1}, {"partner-center": 1})
    assert (outer.calls, outer.writes) == ({"partner-center": 2}, {"partner-center": 1})


class _Tokens:
    """A token source whose first token the service has revoked."""

    def __init__(self) -> None:
        self.issued = 0
        self.cached: str | None = None

    def __call__(self) -> str:
        if self.cached is None:
            self.issued += 1
            self.cached = f"token-{self.issued}"
        return self.cached

    def invalidate(self, token: str) -> None:
        if self.cached == token:
            self.cached = None


@respx.mock
def test_a_401_drops_the_cached_token_and_tries_once_more_with_a_new_one() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        ok = request.headers["Authorization"] == "Bearer token-2"
        return httpx.Response(200, json={"id": "1"}) if ok else httpx.Response(401, json={"error": {"code": "x"}})

    route = respx.get(f"{BASE}/x").mock(side_effect=answer)
    tokens = _Tokens()
    assert client([], auth=tokens).request("GET", "x").json() == {"id": "1"}
    assert route.call_count == 2
    assert tokens.issued == 2


@respx.mock
def test_a_401_with_a_fresh_token_too_is_final() -> None:
    route = respx.get(f"{BASE}/x").mock(return_value=httpx.Response(401, json={"error": {"code": "InvalidToken"}}))
    tokens = _Tokens()
    with pytest.raises(ApiError) as info:
        client([], auth=tokens).request("GET", "x")
    assert (info.value.status, route.call_count, tokens.issued) == (401, 2, 2)

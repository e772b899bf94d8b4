"""Webhook intake, called as the host calls it: hostile bodies get a 400 with a reason, never a 500."""

from __future__ import annotations

import json
import logging

import azure.functions as func
import pytest

from functions.partner_center_events import partner_center_events
from shared import services

REFERRAL = "4111fffc-f9ee-4d53-bba6-569135228642"


class _Out:
    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, value: str) -> None:
        self.value = value

    def get(self) -> str | None:
        return self.value


class _Accepting:
    def verify(self, headers: object, body: bytes) -> None:  # the signature is tested in test_signature.py
        return None


@pytest.fixture(autouse=True)
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "webhook_verifier", lambda: _Accepting())


def call(body: bytes) -> tuple[func.HttpResponse, _Out]:
    request = func.HttpRequest("POST", "http://localhost/api/partner-center/events", headers={}, body=body)
    out = _Out()
    return partner_center_events(request, out), out


def event(resource_uri: object, name: str = "referral-updated") -> bytes:
    return json.dumps({"EventName": name, "ResourceUri": resource_uri}).encode()


def test_a_referral_event_is_queued_and_answered_200() -> None:
    response, out = call(event(f"https://api.partnercenter.microsoft.com/engagements/v1/referrals/{REFERRAL}"))
    assert response.status_code == 200
    assert json.loads(response.get_body())["status"] == "queued"
    assert out.value is not None
    assert json.loads(out.value)["referralId"] == REFERRAL


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_a_deeply_nested_body_is_a_400_not_a_stack_trace(depth: int) -> None:
    response, out = call(b"[" * depth + b"]" * depth)
    assert response.status_code == 400
    assert json.loads(response.get_body())["error"]["status"] == 400
    assert out.value is None


@pytest.mark.parametrize(
    "uri",
    [
        "https://api.partnercenter.microsoft.com/engagements/v1/referrals/..",
        "https://api.partnercenter.microsoft.com/engagements/v1/referrals/a%2Fb",
        "https://api.partnercenter.microsoft.com/engagements/v1/referrals/'; drop--",
        "https://api.partnercenter.microsoft.com/engagements/v1/referrals/x\nINFO forged log line",
        "https://api.partnercenter.microsoft.com/engagements/v1/referrals/\u0000\u0007",
        "https://api.partnercenter.microsoft.com/engagements/v1/referrals/{{ReferralID}}",
        "https://api.partnercenter.microsoft.com/engagements/v1/referrals/",
        f"https://api.partnercenter.microsoft.com/engagements/v1/referrals/{REFERRAL}x",
        "x" * 5000,
        "",
    ],
)
def test_a_resource_uri_without_a_referral_id_is_refused_and_queues_nothing(
    uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response, out = call(event(uri))
    assert response.status_code == 400
    assert "referral id" in json.loads(response.get_body())["error"]["reason"]
    assert out.value is None
    for record in caplog.records:
        assert "\n" not in record.getMessage()
        assert "\x00" not in record.getMessage()


@pytest.mark.parametrize("body", [b'{"EventName": 5}', b'{"EventName": "referral-updated", "ResourceUri": [1]}'])
def test_wrong_types_are_a_400(body: bytes) -> None:
    response, out = call(body)
    assert response.status_code == 400
    assert out.value is None


def test_an_unknown_event_name_is_ignored_and_logged_escaped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        response, out = call(event("https://x/y", name="evil\nINFO forged"))
    assert (response.status_code, json.loads(response.get_body())["status"]) == (200, "ignored")
    assert out.value is None
    assert all("\n" not in r.getMessage() for r in caplog.records)

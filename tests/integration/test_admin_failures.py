"""Every admin route against the simulators with a refused token or an unreachable host: an
``{"error": {"status", "reason", "settings"}}`` answer naming the setting, one log line naming the
cause, never a 500 or a traceback. (Missing, invalid and placeholder settings: tests/unit/test_misconfigured.py.)"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator

import azure.functions as func
import pytest

from functions.crm_schema import crm_schema
from functions.doctor import doctor
from functions.replay_poison import replay_poison
from functions.resync import resync
from functions.webhook_registration import webhook_registration
from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.ports import free_port
from shared import services
from shared.config import Settings

ALIASES = {str(field.validation_alias) for field in Settings.model_fields.values()}

# (route function, method, body); the admin routes of function_app (tests/unit/test_misconfigured.py checks the list).
CALLS = [
    ("webhook_registration", webhook_registration, "GET", None),
    ("webhook_registration", webhook_registration, "PUT", {}),
    ("resync", resync, "POST", {"referralId": str(uuid.uuid4())}),
    ("replay_poison", replay_poison, "POST", {}),
    ("crm_schema", crm_schema, "GET", None),
    ("crm_schema", crm_schema, "POST", None),
]


def closed() -> str:
    return f"http://127.0.0.1:{free_port()}"


# What is broken, and per route the settings its answer must name (absent: the route does not use it).
BROKEN = {
    "refused secrets": (
        {"PARTNER_CENTER_CLIENT_SECRET": "not-the-secret", "DATAVERSE_CLIENT_SECRET": "not-the-secret"},
        {
            "webhook_registration": ["PARTNER_CENTER_CLIENT_SECRET"],
            "resync": ["PARTNER_CENTER_CLIENT_SECRET"],
            "crm_schema": ["DATAVERSE_CLIENT_SECRET"],
        },
    ),
    "unreachable hosts": (
        {
            "PARTNER_CENTER_API_URL": closed() + "/v1.0/engagements",
            "PARTNER_CENTER_WEBHOOK_API_URL": closed() + "/webhooks/v1",
            "DATAVERSE_URL": closed(),
        },
        {
            "webhook_registration": ["PARTNER_CENTER_WEBHOOK_API_URL"],
            "resync": ["PARTNER_CENTER_API_URL"],
            "crm_schema": ["DATAVERSE_URL"],
        },
    ),
}


@pytest.fixture
def app_settings(sandbox: Sandbox, azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name in ALIASES:
            monkeypatch.delenv(name)
    for name, value in sandbox.app_settings(azurite.connection_string).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    services.reset()
    yield monkeypatch
    services.reset()


def call(function: object, method: str, body: object) -> func.HttpResponse:
    raw = json.dumps(body).encode() if body is not None else b""
    request = func.HttpRequest(method, "https://app.example/api/manage/x", headers={}, body=raw)
    return function(request)  # type: ignore[operator,no-any-return]


@pytest.mark.parametrize("case", list(BROKEN))
def test_admin_routes_name_a_refused_token_or_an_unreachable_host(
    app_settings: pytest.MonkeyPatch, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    changes, expected = BROKEN[case]
    for name, value in changes.items():
        app_settings.setenv(name, value)
    services.reset()
    for name, function, method, body in CALLS:
        where = f"{method} {name} with {case}"
        caplog.clear()
        with caplog.at_level(logging.INFO):
            response = call(function, method, body)
        answer = json.loads(response.get_body())
        if name not in expected:
            assert response.status_code == 200, (where, answer)
            continue
        assert response.status_code == 502, (where, answer)
        assert answer["error"]["status"] == 502
        assert answer["error"]["settings"] == expected[name], where
        assert expected[name][0] in answer["error"]["reason"], where
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, (where, [r.getMessage() for r in errors])
        assert errors[0].exc_info is None, f"{where}: a traceback was logged"
        assert expected[name][0] in errors[0].getMessage(), where
        assert "not-the-secret" not in caplog.text


def test_the_doctor_route_reports_with_this_apps_url(app_settings: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    """The route tells the registration check this app's own events URL, taken from the request."""
    webhooks = sandbox.partner_center.webhooks
    previous = webhooks.registration
    webhooks.clear()
    webhooks.register(
        {"WebhookUrl": "https://app.example/api/partner-center/events?code=k", "WebhookEvents": ["referral-created"]},
        create=True,
    )
    try:
        request = func.HttpRequest("GET", "https://app.example/api/manage/doctor", headers={}, body=b"")
        response = doctor(request)
    finally:
        webhooks.clear()
        if previous is not None:
            webhooks.register(previous.as_written(), create=True)
    body = json.loads(response.get_body())
    assert response.status_code == 200
    [registration] = [c for c in body["checks"] if c["name"] == "Webhook registration"]
    assert registration["status"] == "warn", registration  # points here, but without three of the events
    assert registration["detail"].startswith("points here but without referral-updated")

"""With broken settings the app still indexes, /api/health says 503 misconfigured naming them, and every
admin route answers ``{"error": {"status", "reason", "settings"}}`` naming them (never a 500, never a
traceback), with one log line naming the cause."""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

import function_app
from functions.health import health
from shared import services
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE: dict[str, str] = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
ALIASES = {str(field.validation_alias) for field in Settings.model_fields.values()}

# What an admin route needs in its body to get past its own request checks.
BODIES = {"resync": {"referralId": str(uuid.uuid4())}, "webhook_registration": {}, "replay_poison": {}}

# What a Dynamics deployment must set (CRM_KIND's default): named when nothing, or only placeholders, is set.
REQUIRED = {
    "AzureWebJobsStorage",
    "PARTNER_CENTER_TENANT_ID",
    "PARTNER_CENTER_CLIENT_ID",
    "PARTNER_CENTER_CLIENT_SECRET",
    "PARTNER_CENTER_REFRESH_TOKEN",
    "DATAVERSE_URL",
    "DATAVERSE_TENANT_ID",
    "DATAVERSE_CLIENT_ID",
    "DATAVERSE_CLIENT_SECRET",
}

# Broken settings, each as an operator would have them, and the settings the answer must name.
BROKEN: dict[str, tuple[dict[str, str], set[str]]] = {
    # local.settings.json copied from the example and not filled in (storage too: no emulator here).
    "the example file": (
        {
            **EXAMPLE,
            "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>",
        },
        REQUIRED,
    ),
    "an invalid value": ({"CRM_KIND": "hubspot", "HTTP_MAX_ATTEMPTS": "6"}, {"CRM_KIND"}),
    "nothing set": ({}, REQUIRED),
    "an unresolved Key Vault reference": (
        {
            "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>",
            "PARTNER_CENTER_TENANT_ID": "7d23e5ca-19dc-4eaa-aac8-5e6b559f0d1d",
            "PARTNER_CENTER_CLIENT_ID": "3f0c8b7e-2a41-4c55-9d1e-6b2f8e4a9c10",
            "PARTNER_CENTER_CLIENT_SECRET": "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/pc/)",
            "PARTNER_CENTER_REFRESH_TOKEN": "0.AXkA-realistic",
            "DATAVERSE_URL": "https://contoso.crm.dynamics.com",
            "DATAVERSE_TENANT_ID": "7d23e5ca-19dc-4eaa-aac8-5e6b559f0d1d",
            "DATAVERSE_CLIENT_ID": "a5b1c9d2-7e3f-4a60-8b91-c2d3e4f5a6b7",
            "DATAVERSE_CLIENT_SECRET": "00000000-0000-0000-0000-000000000000",
        },
        {"AzureWebJobsStorage", "PARTNER_CENTER_CLIENT_SECRET", "DATAVERSE_CLIENT_SECRET"},
    ),
}


@pytest.fixture
def settings_as(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], None]]:
    def apply(values: dict[str, str]) -> None:
        for name in list(os.environ):
            if name in ALIASES:
                monkeypatch.delenv(name)
        for name, value in values.items():
            if value != "":
                monkeypatch.setenv(name, str(value))
        services.reset()

    yield apply
    services.reset()


@functools.cache  # the app validates its function names on each get_functions(): read it once
def admin_functions() -> list[tuple[str, str, Callable[..., Any]]]:
    """(name, method, user function) of every HTTP function under the admin prefix, read from the app."""
    found = []
    for function in function_app.app.get_functions():
        trigger = function.get_trigger()
        if trigger.get_binding_name() != "httpTrigger" or not trigger.route.startswith("manage/"):
            continue
        for method in trigger.methods:
            found.append(
                (function.get_function_name(), str(getattr(method, "value", method)), function.get_user_function())
            )
    return found


def test_every_admin_route_is_walked() -> None:
    names = {name for name, _, _ in admin_functions()}
    assert names == {
        "webhook_registration",
        "resync",
        "replay_poison",
        "crm_schema",
        "doctor",
        "backfill",
        "status",
        "dashboard",
    }


def request(name: str, method: str) -> func.HttpRequest:
    body = json.dumps(BODIES.get(name, {})).encode() if method in ("POST", "PUT") else b""
    return func.HttpRequest(method, f"https://app.example/api/manage/{name}", headers={}, body=body)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_admin_routes_refuse_broken_settings_naming_them(
    settings_as: Callable[[dict[str, str]], None], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    values, expected = BROKEN[case]
    settings_as(values)
    for name, method, user_function in admin_functions():
        caplog.clear()
        with caplog.at_level(logging.INFO):
            response = user_function(request(name, method))
        body = json.loads(response.get_body())
        where = f"{method} {name} with {case}"
        if name == "doctor":  # its findings are the answer: every failing line names its settings
            assert response.status_code == 200, where
            assert body["ok"] is False, where
            named = {s for check in body["checks"] for s in check["settings"]}
            assert expected <= named, where
            continue
        assert response.status_code in (400, 403, 404, 409, 422, 502, 503), where
        error = body["error"]
        assert set(error) >= {"status", "reason", "settings"}, where
        assert error["status"] == response.status_code, where
        assert error["settings"], where
        assert set(error["settings"]) <= expected, where
        assert all(s in error["reason"] for s in error["settings"]), where
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, (where, [r.getMessage() for r in errors])
        assert errors[0].exc_info is None, f"{where}: a traceback was logged"
        assert any(s in errors[0].getMessage() for s in error["settings"]), where


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_health_answers_503_misconfigured_naming_the_settings(
    settings_as: Callable[[dict[str, str]], None], case: str
) -> None:
    values, expected = BROKEN[case]
    settings_as(values)
    response = health(func.HttpRequest("GET", "https://app.example/api/health", headers={}, body=b""))
    body = json.loads(response.get_body())
    if case == "nothing set":  # nothing is wrong yet, only missing: the configured flags say so
        assert response.status_code == 200
        assert body["configured"] == {"storage": False, "partnerCenter": False, "dynamics": False, "salesforce": False}
        return
    assert response.status_code == 503
    assert body["status"] == "misconfigured"
    assert set(body["settings"]) == expected
    for value in values.values():
        if len(str(value)) > 8:
            assert str(value) not in json.dumps(body), "health must never show a value"


def test_health_says_ok_with_real_settings(settings_as: Callable[[dict[str, str]], None]) -> None:
    settings_as(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "PARTNER_CENTER_CLIENT_ID": "3f0c8b7e-2a41-4c55-9d1e-6b2f8e4a9c10",
            "PARTNER_CENTER_REFRESH_TOKEN": "0.AXkA-realistic",
        }
    )
    response = health(func.HttpRequest("GET", "https://app.example/api/health", headers={}, body=b""))
    assert (response.status_code, json.loads(response.get_body())["status"]) == (200, "ok")


def test_the_app_indexes_with_invalid_settings(settings_as: Callable[[dict[str, str]], None]) -> None:
    """A module-level exception would hide every function, /api/health too: the routes must still resolve."""
    from functions.routes import admin_route

    settings_as({"CRM_KIND": "hubspot", "ADMIN_ROUTE_PREFIX": "ops"})
    assert admin_route("doctor") == "ops/doctor"
    settings_as({"CRM_KIND": "hubspot", "ADMIN_ROUTE_PREFIX": "../x"})
    assert admin_route("doctor") == "manage/doctor"
    script = "import function_app; print(sorted(f.get_function_name() for f in function_app.app.get_functions()))"
    env = {**{k: v for k, v in os.environ.items() if k not in ALIASES}, "CRM_KIND": "hubspot"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)  # noqa: S603
    assert done.returncode == 0, done.stderr
    assert "'health'" in done.stdout
    assert "'doctor'" in done.stdout


def test_the_queue_worker_puts_the_message_back_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A misconfiguration is not the message's fault: it waits for the fix instead of burning retries into poison."""
    from azure.functions.queue import QueueMessage

    from functions.referral_to_crm import CONFIGURATION_RETRY_SECONDS, referral_to_crm
    from shared.messages import ReferralMessage

    def refuse() -> None:
        raise services.ConfigurationError("Missing app settings: DATAVERSE_URL", ["DATAVERSE_URL"])

    queued: list[tuple[ReferralMessage, float]] = []
    # The Functions host itself needs storage, so a worker always has it (here: stores that are never
    # reached, for a message outside any backfill); the CRM setting is what is missing.
    monkeypatch.setattr(services, "backfill_store", lambda: None)
    monkeypatch.setattr(services, "recent_failures", lambda: None)
    monkeypatch.setattr(services, "inbound_sync", refuse)
    monkeypatch.setattr(services, "enqueue", lambda message, delay_seconds=0: queued.append((message, delay_seconds)))
    referral_id = str(uuid.uuid4())
    message = ReferralMessage(referral_id=referral_id, event_name="referral-updated", source="webhook")
    with caplog.at_level(logging.INFO):
        referral_to_crm(QueueMessage(id="1", body=message.to_json().encode()))
    [(again, delay)] = queued
    assert (again.referral_id, again.deferrals, delay) == (referral_id, 1, CONFIGURATION_RETRY_SECONDS)
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "DATAVERSE_URL" in error.getMessage()
    assert error.exc_info is None


@pytest.mark.parametrize("timer", ["crm_to_partner_center", "referral_reconcile"])
def test_the_timers_refuse_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, timer: str
) -> None:
    from unittest.mock import Mock

    import functions.crm_to_partner_center
    import functions.referral_reconcile

    def refuse() -> None:
        raise services.ConfigurationError(
            "Missing app settings: PARTNER_CENTER_TENANT_ID", ["PARTNER_CENTER_TENANT_ID"]
        )

    monkeypatch.setattr(services, "outbound_sync", refuse)
    monkeypatch.setattr(services, "reconciler", refuse)
    function = {
        "crm_to_partner_center": functions.crm_to_partner_center.crm_to_partner_center,
        "referral_reconcile": functions.referral_reconcile.referral_reconcile,
    }[timer]
    with caplog.at_level(logging.INFO):
        function(Mock(past_due=False))
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "PARTNER_CENTER_TENANT_ID" in error.getMessage()
    assert error.exc_info is None

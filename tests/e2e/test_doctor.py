"""The doctor end to end: GET /api/manage/doctor on the local host, and ``python -m shared.cli doctor``
from an admin's workstation, against the stack ``make run`` starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from sandbox.stack import Stack
from shared.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
ALIASES = {str(field.validation_alias) for field in Settings.model_fields.values()}
NAMES = [
    "Settings",
    "Storage",
    "Partner Center token",
    "Referrals API",
    "Webhook registration",
    "Webhook certificate URL",
    "CRM token",
    "CRM schema",
]


def test_the_route_says_every_integration_works(stack: Stack) -> None:
    response = httpx.get(stack.host.url("/api/manage/doctor"), timeout=60)
    assert response.status_code == 200
    body = response.json()
    assert [c["name"] for c in body["checks"]] == NAMES
    assert {c["name"]: (c["status"], c["settings"]) for c in body["checks"]} == {n: ("ok", []) for n in NAMES}, body
    assert body["ok"] is True
    registration = next(c for c in body["checks"] if c["name"] == "Webhook registration")
    assert stack.host.url("/api/partner-center/events") in registration["detail"]


def run_cli(stack: Stack, tmp_path: Path, *args: str, **changes: str) -> subprocess.CompletedProcess[str]:
    """An admin's workstation: the app's settings in local.settings.json, nothing in the environment."""
    values = {**stack.settings, **changes}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    env = {k: v for k, v in os.environ.items() if k not in ALIASES and not k.startswith("AzureWebJobs")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "shared.cli", "doctor", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_the_command_prints_a_line_per_integration_and_exits_0(stack: Stack, tmp_path: Path) -> None:
    done = run_cli(stack, tmp_path, "--app-url", stack.host.base_url)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines[:-1]] == [f"✔ {name}" for name in NAMES], done.stdout
    assert lines[-1] == "Nothing fails."


def test_the_command_names_a_bad_secret_and_exits_1(stack: Stack, tmp_path: Path) -> None:
    done = run_cli(stack, tmp_path, PARTNER_CENTER_CLIENT_SECRET="not-the-secret")
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "✖ Partner Center token: Entra ID refused the client secret (AADSTS7000215 invalid_client) (both scopes) "
        "[PARTNER_CENTER_CLIENT_SECRET]"
    ) in done.stdout.splitlines()
    assert "not-the-secret" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    as_json = json.loads(run_cli(stack, tmp_path, "--json", DATAVERSE_CLIENT_SECRET="wrong").stdout)
    crm = next(c for c in as_json["checks"] if c["name"] == "CRM token")
    assert (as_json["ok"], crm["status"], crm["settings"]) == (False, "fail", ["DATAVERSE_CLIENT_SECRET"])

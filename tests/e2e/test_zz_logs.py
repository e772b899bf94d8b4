"""No log line holds a secret, a token or a customer email.

Named to run after the other end-to-end modules, so the host log it reads covers everything
they made the app do: webhooks, syncs, retries under faults, registration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.environment import Sandbox
from sandbox.hostproc import HostProcess
from tests.e2e.conftest import FIXTURES

pytestmark = pytest.mark.e2e


def _customer_emails() -> set[str]:
    emails: set[str] = set()
    for path in FIXTURES.glob("fixture_*.json"):
        text = path.read_text()
        for token in text.replace('"', " ").split():
            if "@" in token and "." in token.split("@")[-1]:
                emails.add(token.strip(",").lower())
    return emails


def test_host_log_has_no_secrets_tokens_or_customer_emails(host: HostProcess, sandbox: Sandbox, host_log: Path) -> None:
    sandbox.partner_center.deliver(sandbox.partner_center.referrals()[0]["id"], "referral-updated")
    sandbox.partner_center.wait_for_deliveries(1)
    log = host_log.read_text(encoding="utf-8", errors="replace")
    assert "Executed 'Functions.referral_to_crm' (Succeeded" in log, "the log must cover real syncs"
    settings = sandbox.app_settings("UseDevelopmentStorage=true")
    secrets = {
        "PARTNER_CENTER_CLIENT_SECRET": settings["PARTNER_CENTER_CLIENT_SECRET"],
        "DATAVERSE_CLIENT_SECRET": settings["DATAVERSE_CLIENT_SECRET"],
    }
    tokens = list(sandbox.entra.issued)
    assert len(tokens) >= 3, "refresh and access tokens were issued during the run"
    emails = _customer_emails()
    assert "sue.smith@contoso.com" in emails
    leaks = [name for name, value in secrets.items() if value in log]
    leaks += [f"token {t[:12]}..." for t in tokens if t in log]
    leaks += [email for email in emails if email in log.lower()]
    assert not leaks, f"found in the host log: {leaks}"

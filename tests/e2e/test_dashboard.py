"""The status route and the dashboard against a stack of their own, the dashboard in a real browser.

A fresh stack (not the session's shared one), so every number the status route gives can be held
against what this scenario did: four referrals created, one refused by the CRM and poisoned. Then
Debian's chromium, driven by Playwright, loads the page, finds the failure with its reason and
links, and heals it with the page's own Resync button after the cause is fixed in the CRM.

The screenshots are kept in tests/artifacts/ (gitignored); README's docs/dashboard.png is one of them.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from sandbox.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from sandbox.stack import Stack
from tests.e2e.conftest import fresh, sample

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
REASON = 'Currency "XYZ" is not set up in Dynamics 365'
KEY = "a-function-key"  # the local host does not check keys; the page must still carry ?code= to its POSTs


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = {
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",  # poisoned in seconds
        "CRM_POLL_SCHEDULE": "0 0 0 1 1 *",  # the test fires the timers itself
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "HTTP_TIMEOUT_SECONDS": "2",
    }
    data_dir = tmp_path_factory.mktemp("dashboard")
    with Stack(data_dir, seed=13, log_path=data_dir / "host.log", extra_settings=settings) as running:
        running.register_webhook()
        yield running


def until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def audit_rows(stack: Stack) -> list[dict[str, Any]]:
    table = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    try:
        return [dict(row) for row in table.list_entities()]
    except ResourceNotFoundError:  # the app creates its tables on first use
        return []


def status(stack: Stack) -> dict[str, Any]:
    response = httpx.get(stack.host.url("/api/manage/status"), timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def scenario(stack: Stack) -> dict[str, Any]:
    """Four referrals synced, then one refused by the CRM until the host gives up on it."""
    pc, dv = stack.sandbox.partner_center, stack.sandbox.dataverse
    referrals = [
        fresh(sample("fixture_a_list.json")),
        fresh(sample("fixture_b_shared_accepted.json"), name="Contoso co-sell"),
        fresh(sample("fixture_c_closed_won.json")),
        fresh(sample("fixture_b_shared_accepted.json"), name="אבג 株式会社 🎉 co-sell"),
    ]
    for referral in referrals:
        pc.seed_referral(referral)
    ids = {r["id"] for r in referrals}
    until(lambda: ids <= {r["PartitionKey"] for r in audit_rows(stack) if r["outcome"] == "created"}, "4 creates")
    stack.host.fire("crm_to_partner_center")
    stack.host.fire("referral_reconcile")  # before the refusal: a later run would queue the refused one again
    refused = referrals[3]
    opportunity = next(o for o in dv.records("opportunities") if o.get("cosell_referralid") == refused["id"])
    pc.update_referral(refused["id"], {"details": {"currency": "XYZ"}})
    until(lambda: status(stack)["queues"]["referral-events-poison"]["messages"] == 1, "the message in poison")
    return {"referrals": referrals, "refused": refused, "opportunity_id": opportunity["opportunityid"]}


def test_status_numbers_match_what_the_scenario_did(stack: Stack, scenario: dict[str, Any]) -> None:
    body = status(stack)
    refused, opportunity_id = scenario["refused"], scenario["opportunity_id"]

    # Every sync the audit log recorded, counted by the 24-hour counters (a failure retried for one
    # cause once), without the status route reading the audit log.
    rows = audit_rows(stack)
    expected: Counter[str] = Counter(r["outcome"] for r in rows if r["direction"] == "pc-to-crm")
    expected["failed"] = len({r["PartitionKey"] for r in rows if r["outcome"] == "failed"})
    counted = body["syncs24h"]["byDirection"]["pc-to-crm"]
    assert {k: v for k, v in counted.items() if v} == dict(expected)
    assert (counted["created"], counted["failed"]) == (4, 1)
    assert sum(r["outcome"] == "failed" for r in rows) == 5  # the host's five attempts, all in the history
    hourly = body["syncs24h"]["hourly"]
    assert len(hourly) == 24
    assert sum(h["synced"] for h in hourly) == counted["created"] + counted["updated"]
    assert sum(h["failed"] for h in hourly) == 1

    assert body["queues"]["referral-events-poison"]["messages"] == 1
    assert body["queues"]["referral-events-poison"]["oldestAgeSeconds"] is not None
    (failure,) = body["recentFailures"]
    assert failure["referralId"] == refused["id"]
    assert REASON in failure["reason"]
    assert (failure["crmKind"], failure["crmEntity"], failure["crmId"]) == ("dynamics", "opportunity", opportunity_id)
    dataverse = stack.sandbox.dataverse_url
    assert failure["crmUrl"] == f"{dataverse}/main.aspx?pagetype=entityrecord&etn=opportunity&id={opportunity_id}"
    assert (
        failure["partnerCenterUrl"] == f"https://partner.microsoft.com/dashboard/referrals/v2/inbox?id={refused['id']}"
    )

    for run in ("crmPoll", "reconcile"):
        assert body[run]["lastRunAt"], run
        assert isinstance(body[run]["durationMs"], int), run
    assert body["version"].startswith("0.")
    assert body["health"]["state"] == "attention"
    assert body["health"]["reasons"] == [
        "1 message(s) in referral-events-poison: fix the cause, then replay them (Replay poison).",
        "1 referral sync(s) failed in the last 24 h and have not synced since.",
    ]


def test_the_dashboard_shows_the_failure_and_its_buttons_heal_it(stack: Stack, scenario: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium (.ci/run does)"
    )
    refused, opportunity_id = scenario["refused"], scenario["opportunity_id"]
    dv = stack.sandbox.dataverse
    ARTIFACTS.mkdir(exist_ok=True)
    posts: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            response = page.goto(stack.host.url(f"/api/manage/dashboard?code={KEY}"), timeout=30_000)
            assert response is not None
            assert response.status == 200

            header = page.locator("header#health")
            assert header.get_attribute("data-state") == "attention"
            assert "Attention needed" in header.inner_text()
            assert "1 message(s) in referral-events-poison" in header.inner_text()
            row = page.locator(f'tr.failure[data-referral="{refused["id"]}"]')
            assert row.count() == 1
            assert REASON in row.locator("td.reason").inner_text()
            links = [row.locator("a").nth(n).get_attribute("href") for n in range(row.locator("a").count())]
            assert links == [
                f"https://partner.microsoft.com/dashboard/referrals/v2/inbox?id={refused['id']}",
                f"{stack.sandbox.dataverse_url}/main.aspx?pagetype=entityrecord&etn=opportunity&id={opportunity_id}",
            ]
            assert page.locator("#hourly-chart rect.failed").count() == 1
            assert page.locator("#hourly-chart rect.synced").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "dashboard-attention.png"), full_page=True)

            # Fix the cause in the CRM, then the row's own Resync button.
            dv.insert("transactioncurrencies", {"isocurrencycode": "XYZ", "currencyname": "Test currency"})
            with page.expect_navigation(timeout=60_000):  # the page reloads when the resync answered
                row.locator("button[data-resync]").click()
            assert page.locator(f'tr.failure[data-referral="{refused["id"]}"]').count() == 0
            assert page.locator("#no-failures").is_visible()
            assert f"Resync of {refused['id']}: done." in page.locator("#message").inner_text()
            opportunity = dv.get("opportunities", opportunity_id)
            assert opportunity is not None
            assert opportunity["name"].startswith("✔")
            assert opportunity["_transactioncurrencyid_value"]

            # The poisoned message is still there: Replay poison sends it back, and the app is healthy again.
            with page.expect_navigation(timeout=60_000):
                page.locator("button#replay").click()
            until(lambda: status(stack)["queues"]["referral-events-poison"]["messages"] == 0, "an empty poison queue")
            page.reload()
            assert page.locator("header#health").get_attribute("data-state") == "healthy"
            page.screenshot(path=str(ARTIFACTS / "dashboard-healthy.png"), full_page=True)
            assert errors == []  # no script error, no request the CSP refused
        finally:
            browser.close()
    assert [url.split("/api/manage/")[1] for url in posts] == [f"resync?code={KEY}", f"replay-poison?code={KEY}"]
    assert uuid.UUID(refused["id"])  # the row the test clicked was the refused referral's

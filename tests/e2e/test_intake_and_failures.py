"""Webhook refusals queue nothing; a failure that will not heal is marked, poisoned and replayable."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.hostproc import HostProcess
from sandbox.pki import make_pki
from tests.e2e.conftest import fresh, sample

pytestmark = pytest.mark.e2e

Wait = Callable[..., list[dict[str, Any]]]


def event(referral_id: str, name: str = "referral-updated") -> bytes:
    return json.dumps(
        {
            "EventName": name,
            "ResourceUri": f"https://api.partnercenter.microsoft.com/engagements/v1/referrals/{referral_id}",
            "ResourceName": "referral",
            "AuditUri": None,
            "ResourceChangeUtcDate": "2026-11-21T10:00:00.0000000+00:00",
        }
    ).encode()


def post(host: HostProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        host.url("/api/partner-center/events"),
        content=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=15,
    )


def test_refused_webhooks_answer_the_right_status_and_queue_nothing(
    host: HostProcess, sandbox: Sandbox, wait_for_audit: Wait, tmp_path
) -> None:
    pc = sandbox.partner_center
    victims = {name: str(uuid.uuid4()) for name in ("forged", "url", "org", "truncated", "malformed", "big")}

    forged = event(victims["forged"])
    headers = pc.sign_event(forged)
    headers["Authorization"] = "Signature " + pc.pki.sign(b"something else")
    assert post(host, forged, headers).status_code == 401

    outside = event(victims["url"])
    headers = pc.sign_event(outside)
    headers["X-MS-Certificate-Url"] = "https://evil.example.com/cert/pcnotifications-dispatch.cer"
    response = post(host, outside, headers)
    assert (response.status_code, response.json()["error"]["reason"]) == (
        401,
        "Certificate URL is not on the allow-list (WEBHOOK_CERT_URL_PREFIXES).",
    )

    # A chain issued by another organisation, served from the allowed URL prefix.
    rogue = make_pki(tmp_path / "rogue", "Fabrikam Rogue CA")
    other_org = event(victims["org"])
    headers = pc.sign_event(other_org)
    headers["Authorization"] = "Signature " + rogue.sign(other_org)
    headers["X-MS-Certificate-Url"] = f"{sandbox.partner_center_url}/cert/pcnotifications-dispatch.cer"
    assert post(host, other_org, headers).status_code == 401

    truncated = event(victims["truncated"])
    assert post(host, truncated[:-20], pc.sign_event(truncated)).status_code == 401

    malformed = b'{"EventName": "referral-created", "ResourceUri": '
    response = post(host, malformed, pc.sign_event(malformed))
    assert response.status_code == 400
    assert response.json()["error"]["reason"].startswith("Body is not a Partner Center event")

    no_id = json.dumps({"EventName": "referral-created", "ResourceUri": "https://x/engagements/v1/referrals/"}).encode()
    assert post(host, no_id, pc.sign_event(no_id)).status_code == 400

    missing_url = event(victims["url"])
    headers = pc.sign_event(missing_url)
    del headers["X-MS-Certificate-Url"]
    assert post(host, missing_url, headers).status_code == 400

    huge = event(victims["big"]) + b" " * (1024 * 1024)
    assert post(host, huge, pc.sign_event(huge)).status_code == 413

    test_event = json.dumps({"EventName": "test-created", "ResourceUri": "https://x/validationEvents/1"}).encode()
    assert post(host, test_event, pc.sign_event(test_event)).status_code == 200

    # Sentinel: a valid event sent after all the refused ones. Once it is processed, anything
    # queued before it would have been processed too, so silence for the victims means "not queued".
    sentinel = fresh(sample("fixture_b_shared_accepted.json"), name="Sentinel")
    pc.seed_referral(sentinel, fire=False)
    valid = event(sentinel["id"], "referral-created")
    # 200, as Microsoft's webhook samples answer (some senders treat other 2xx as unexpected).
    accepted = post(host, valid, pc.sign_event(valid))
    assert (accepted.status_code, accepted.json()["status"]) == (200, "queued")
    wait_for_audit(sentinel["id"], outcome="created")
    time.sleep(1.0)
    for victim in victims.values():
        assert not pc.recorded("GET", f"/v1.0/engagements/referrals/{victim}"), victim
    assert all(victim not in host.output() for victim in victims.values())


def _poisoned(azurite: Azurite) -> list[str]:
    """Referral ids in the poison queue (the host creates it on first use)."""
    client = QueueClient.from_connection_string(
        azurite.connection_string, "referral-events-poison", message_decode_policy=TextBase64DecodePolicy()
    )
    try:
        return [json.loads(m.content)["referralId"] for m in client.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def test_unhealable_failure_is_marked_poisoned_then_replayed(
    host: HostProcess, sandbox: Sandbox, azurite: Azurite, wait_for_audit: Wait
) -> None:
    pc, dv = sandbox.partner_center, sandbox.dataverse
    referral = fresh(sample("fixture_b_shared_accepted.json"), name="Currency trouble")
    pc.seed_referral(referral)
    wait_for_audit(referral["id"], outcome="created")
    opportunity_id = next(o for o in dv.records("opportunities") if o.get("cosell_referralid") == referral["id"])[
        "opportunityid"
    ]

    pc.update_referral(referral["id"], {"details": {"currency": "XYZ"}})
    deadline = time.monotonic() + 60
    poisoned: list[str] = []
    while time.monotonic() < deadline and referral["id"] not in poisoned:
        poisoned = _poisoned(azurite)
        time.sleep(0.3)
    assert referral["id"] in poisoned, "the message must end in the poison queue after the host's retries"

    opportunity = dv.get("opportunities", opportunity_id)
    assert opportunity["name"] == "✖ Currency trouble"
    newest = opportunity["cosell_audit"].splitlines()[0]
    assert 'Currency "XYZ" is not set up in Dynamics 365' in newest
    rows = wait_for_audit(referral["id"], count=3)
    failed = [r for r in rows if r["outcome"] == "failed"]
    assert len(failed) == 5  # one per delivery attempt (host.json maxDequeueCount)
    marks = [r for r in dv.recorded("PATCH", f"/api/data/v9.2/opportunities({opportunity_id})")]
    assert sum(1 for r in marks if "✖" in str(r.body)) == 1  # the ✖ is written once, not per retry

    # Fix the cause in the CRM, then replay: the referral syncs and the ✔ comes back.
    xyz = dv.insert("transactioncurrencies", {"isocurrencycode": "XYZ", "currencyname": "Test currency"})
    response = httpx.post(host.url("/api/manage/replay-poison"), json={}, timeout=30)
    assert response.status_code == 200
    assert referral["id"] in response.json()["referralIds"]
    rows = wait_for_audit(referral["id"], outcome="updated")
    assert rows[0]["source"] == "replay"
    opportunity = dv.get("opportunities", opportunity_id)
    assert opportunity["name"] == "✔ Currency trouble"
    assert opportunity["_transactioncurrencyid_value"] == xyz
    assert referral["id"] not in _poisoned(azurite)


def test_replay_refuses_bad_input(host: HostProcess) -> None:
    response = httpx.post(host.url("/api/manage/replay-poison"), content=b"[1, 2]", timeout=15)
    assert (response.status_code, response.json()["error"]["reason"]) == (400, "Body must be a JSON object.")
    response = httpx.post(host.url("/api/manage/replay-poison"), json={"max": 0}, timeout=15)
    assert response.status_code == 400


def test_registration_does_not_take_over_another_url_unless_asked(host: HostProcess, sandbox: Sandbox) -> None:
    ours = host.url("/api/partner-center/events")
    url = host.url("/api/manage/webhook-registration")
    current = httpx.get(url, timeout=15).json()
    assert current["registeredHere"] is True

    other = "https://flow.example.com/workflows/abc/triggers/manual/run?code=flow-secret-key"
    conflict = httpx.put(url, json={"webhookUrl": other}, timeout=15)
    assert conflict.status_code == 409
    assert "only one" in conflict.json()["notes"][0]
    assert sandbox.partner_center.registration["WebhookUrl"] == ours

    try:
        replaced = httpx.put(url, json={"webhookUrl": other, "overwrite": True}, timeout=15)
        assert replaced.status_code == 200
        body = replaced.json()
        assert (body["action"], body["replaced"]["WebhookUrl"]) == ("updated", ours)
        assert body["registration"]["WebhookUrl"].endswith("?code=***")
        assert "flow-secret-key" not in replaced.text
        assert "flow-secret-key" not in host.output()
    finally:
        restored = httpx.put(url, json={"webhookUrl": ours, "overwrite": True}, timeout=15)
        assert restored.status_code == 200
    assert set(sandbox.partner_center.registration["WebhookEvents"]) >= {
        "referral-created",
        "referral-updated",
        "related-referral-created",
        "related-referral-updated",
    }
    # Nothing new: GET answers only WebhookUrl and WebhookEvents, so a second PUT must change nothing.
    before = len(sandbox.partner_center.recorded("PUT", "/webhooks/v1/registration"))
    again = httpx.put(url, json={"webhookUrl": ours}, timeout=15)
    assert (again.status_code, again.json()["action"]) == (200, "unchanged")
    assert len(sandbox.partner_center.recorded("PUT", "/webhooks/v1/registration")) == before
    assert httpx.put(url, json={"overwrite": "yes"}, timeout=15).status_code == 400


def test_crm_schema_route_reports_a_ready_org_and_creates_nothing_more(host: HostProcess, sandbox: Sandbox) -> None:
    url = host.url("/api/manage/crm-schema")
    report = httpx.get(url, timeout=60).json()
    assert (report["crm"], report["ready"], report["missing"]) == ("dynamics", True, [])
    assert {"table": "opportunity", "name": "cosell_referralid", "kind": "column"}.items() <= next(
        f for f in report["present"] if f["name"] == "cosell_referralid" and f["table"] == "opportunity"
    ).items()
    again = httpx.post(url, timeout=60)
    assert (again.status_code, again.json()["created"], again.json()["ready"]) == (200, [], True)

"""Helpers for the resilience tests: signed events, audit rows, queues, waiting."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.hostproc import HostProcess

# As tests/e2e: failed messages are retried at once, timers run only when a test fires them.
STACK_SETTINGS = {
    "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
    "CRM_POLL_SCHEDULE": "0 0 0 1 1 *",
    "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
    "HTTP_TIMEOUT_SECONDS": "2",
    "HTTP_MAX_BACKOFF_SECONDS": "2",
    # Bursts of hundreds of referrals: the suite's org has ten web servers' worth of service protection
    # budget (see the stack fixture), and the app may use it (tests/integration/test_crm_pacing.py paces).
    "CRM_REQUESTS_PER_MINUTE": "60000",
}
SUITE_DATAVERSE_REQUESTS = 60_000  # per 5 minutes: ten web servers of 6,000
EVENTS_PATH = "/api/partner-center/events"
EVENTS_QUEUE = "referral-events"
POISON_QUEUE = "referral-events-poison"
PC_RESOURCE = "https://api.partnercenter.microsoft.com/engagements/v1/referrals/"

T = TypeVar("T")


def event_body(referral_id: str, name: str = "referral-updated") -> bytes:
    """A well-formed Partner Center event for ``referral_id`` (the shape of reference §4.3)."""
    return json.dumps(
        {
            "EventName": name,
            "ResourceUri": f"{PC_RESOURCE}{referral_id}",
            "ResourceName": "referral",
            "AuditUri": None,
            "ResourceChangeUtcDate": "2026-11-21T10:00:00.0000000+00:00",
        }
    ).encode()


def post_event(host: HostProcess, body: bytes, headers: dict[str, str] | list[tuple[str, str]]) -> httpx.Response:
    return httpx.post(host.url(EVENTS_PATH), content=body, headers=headers, timeout=30)


def notify(host: HostProcess, sandbox: Sandbox, referral_id: str) -> None:
    """Deliver a correctly signed event ourselves, for referrals whose stored data would spoil the simulator's."""
    body = event_body(referral_id)
    response = post_event(host, body, sandbox.partner_center.sign_event(body))
    assert (response.status_code, response.json().get("status")) == (200, "queued"), response.text


def audit_rows(table: TableClient, partition: str) -> list[dict[str, Any]]:
    """A partition of ``AuditLog``, newest first ([] before the app created the table)."""
    try:
        return [dict(r) for r in table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})]
    except ResourceNotFoundError:
        return []


def poisoned(storage: Azurite) -> list[str]:
    """Referral ids of the messages in the poison queue (the raw text of a message that is not ours)."""
    client = QueueClient.from_connection_string(
        storage.connection_string, POISON_QUEUE, message_decode_policy=TextBase64DecodePolicy()
    )
    ids: list[str] = []
    try:
        for message in client.peek_messages(max_messages=32):
            try:
                ids.append(str(json.loads(message.content)["referralId"]))
            except (ValueError, KeyError, TypeError):
                ids.append(str(message.content))
    except ResourceNotFoundError:
        pass
    return ids


def queue_depth(storage: Azurite, queue: str) -> int:
    """Messages in a queue, the invisible ones (being worked on, or waiting to be retried) included."""
    client = QueueClient.from_connection_string(storage.connection_string, queue)
    try:
        return int(client.get_queue_properties().approximate_message_count or 0)
    except ResourceNotFoundError:
        return 0


def wait_until(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def new_id() -> str:
    return str(uuid.uuid4())

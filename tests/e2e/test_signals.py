"""The alert signals through the local host: a referral that fails every retry is one ``sync_failed``
line, and a CRM poll writes ``poll_succeeded`` and the poison queue's depth, each readable by the
deployed alert query (infra/app/alerts/*.kql)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.hostproc import HostProcess
from shared import telemetry
from shared.store.queues import POISON_QUEUES
from tests.e2e.conftest import fire, fresh, sample
from tests.infra.kql import queries

pytestmark = pytest.mark.e2e

Wait = Callable[..., list[dict[str, Any]]]
POISON = "referral-events-poison"
LINE = re.compile(rf"^\[[^\]]+\] ({telemetry.PREFIX} .*)$", re.M)  # the local host's "[stamp] message"


def signals(text: str, name: str) -> list[str]:
    return [m for m in LINE.findall(text) if m.startswith(f"{telemetry.PREFIX} {name}=")]


def poison_queue(azurite: Azurite) -> QueueClient:
    return QueueClient.from_connection_string(
        azurite.connection_string, POISON, message_decode_policy=TextBase64DecodePolicy()
    )


def poisoned(azurite: Azurite) -> list[str]:
    try:
        return [json.loads(m.content)["referralId"] for m in poison_queue(azurite).peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def test_a_poisoned_referral_is_one_failure_and_the_poll_reports_the_poison_queue(
    host: HostProcess, sandbox: Sandbox, azurite: Azurite, host_log: Path, wait_for_audit: Wait
) -> None:
    pc = sandbox.partner_center
    referral = fresh(sample("fixture_b_shared_accepted.json"), name="Signal trouble")
    pc.seed_referral(referral)
    wait_for_audit(referral["id"], outcome="created")

    pc.update_referral(referral["id"], {"details": {"currency": "XQQ"}})  # no such currency in the CRM
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and referral["id"] not in poisoned(azurite):
        time.sleep(0.3)
    assert referral["id"] in poisoned(azurite), "the message must end in the poison queue after the host's retries"
    try:
        failed = [r for r in wait_for_audit(referral["id"], count=6) if r["outcome"] == "failed"]
        assert len(failed) == 5, "one audit row per delivery attempt"

        mine = [s for s in signals(host_log.read_text(errors="replace"), "sync_failed") if referral["id"] in s]
        assert mine == [f"cosell_metric sync_failed=1 direction=pc-to-crm outcome=failed referral={referral['id']}"]
        assert queries()["failures"].read(mine[0]) == {"direction": "pc-to-crm", "outcome": "failed"}

        depth = poison_queue(azurite).get_queue_properties().approximate_message_count
        start = len(host_log.read_text(errors="replace"))
        fire(host, "crm_to_partner_center")
        text = host_log.read_text(errors="replace")[start:]

        # One line per poison queue (the referral queue's and the backfill's); this one is the referral queue's.
        samples = {queries()["poison"].read(line)["queue"]: line for line in signals(text, "poison_depth")}
        assert set(samples) == set(POISON_QUEUES)
        sample_line = samples[POISON]
        assert queries()["poison"].read(sample_line) == {"depth": depth, "queue": POISON}
        age = re.search(r" oldest_age_s=(\d+)", sample_line)
        assert age, f"a non-empty poison queue reports its front message's age: {sample_line}"
        [polled] = signals(text, "poll_succeeded")
        assert polled.startswith("cosell_metric poll_succeeded=1 crm=dynamics records=")
        assert queries()["no-poll"].read(polled) == {}
    finally:
        queue = poison_queue(azurite)  # leave the poison queue as the other tests expect it
        for message in queue.receive_messages(max_messages=32, visibility_timeout=5):
            if json.loads(message.content)["referralId"] == referral["id"]:
                queue.delete_message(message)

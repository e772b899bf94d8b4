"""A hostile webhook corpus: no delivery gets a 5xx, every refusal says why, nothing refused is queued.

The whole corpus is posted once (module fixture), then a valid sentinel event for a seeded referral.
Once the sentinel is synced, anything queued before it would have been processed too, so a victim
id that Partner Center was never asked for, with no ``AuditLog`` partition and no log line about a
sync, was not queued. Each case is then its own test, reading its own answer.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

from sandbox.azurite import Azurite
from sandbox.environment import ORGANIZATION, Sandbox
from sandbox.hostproc import HostProcess
from sandbox.pki import make_pki
from tests.e2e.conftest import fresh, sample
from tests.resilience.support import audit_rows, new_id, notify, poisoned, post_event, wait_until
from tests.resilience.webhook_corpus import CORPUS, FORGED, Case, Context

pytestmark = pytest.mark.e2e

_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):\n(?:[ \t].*\n|\S.*Error.*\n)*", re.M)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or the raw text when the answer is not JSON
    victims: tuple[str, ...]


@dataclass(frozen=True)
class Replay:
    answers: dict[str, Answer]
    log: str  # what the host logged from the first delivery until the sentinel was synced
    sentinel: str


@pytest.fixture(scope="module")
def replay(host: HostProcess, sandbox: Sandbox, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Replay:
    pc = sandbox.partner_center
    rogue = make_pki(tmp_path_factory.mktemp("rogue-pki"), ORGANIZATION)  # same names, a root nobody trusts
    context = Context(sign=pc.sign_event, rogue_sign=rogue.sign, cert_url=pc.cert_url)
    start = len(host.output())
    answers: dict[str, Answer] = {}
    for case in CORPUS:
        request = case.build(context, new_id())
        response = post_event(host, request.body, request.headers)
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        answers[case.name] = Answer(response.status_code, body, request.victims)

    audit_table = TableClient.from_connection_string(azurite.connection_string, "AuditLog")
    sentinel = fresh(sample("fixture_b_shared_accepted.json"), name="Corpus sentinel")
    pc.seed_referral(sentinel, fire=False)
    notify(host, sandbox, sentinel["id"])
    wait_until(
        lambda: any(r["outcome"] == "created" for r in audit_rows(audit_table, sentinel["id"])),
        60,
        "the sentinel referral to be synced",
    )
    time.sleep(1.0)  # a message queued just before the sentinel may still be starting
    return Replay(answers, host.output()[start:], sentinel["id"])


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_each_hostile_delivery_gets_its_documented_answer(replay: Replay, case: Case) -> None:
    answer = replay.answers[case.name]
    assert answer.status < 500, f"{case.name}: server error {answer.status} {answer.body!r}"
    assert answer.status == case.expected, f"{case.name}: {answer.status} {answer.body!r}"
    if answer.status >= 400:
        assert isinstance(answer.body, dict), f"a refusal must be JSON: {answer.body!r}"
        assert set(answer.body) == {"error"}
        error = answer.body["error"]
        assert set(error) == {"status", "reason"}
        assert error["status"] == answer.status
        assert isinstance(error["reason"], str)
        assert error["reason"].strip()
        assert error["reason"].isprintable(), f"the reason must be one readable line: {error['reason']!r}"
    else:
        assert isinstance(answer.body, dict)
        assert answer.body.get("status") in ("ignored", "ok"), f"nothing here may be queued: {answer.body!r}"


def test_no_hostile_delivery_queued_fetched_or_audited_anything(
    replay: Replay, sandbox: Sandbox, audit_table: TableClient, azurite: Azurite
) -> None:
    pc_requests = [f"{r.path}?{r.query}" for r in sandbox.partner_center.recorded()]
    in_poison = set(poisoned(azurite))
    leaks: list[str] = []
    for name, answer in replay.answers.items():
        for victim in answer.victims:
            if any(victim in request for request in pc_requests):
                leaks.append(f"{name}: Partner Center was asked for {victim}")
            if audit_rows(audit_table, victim):
                leaks.append(f"{name}: AuditLog has a partition for {victim}")
            if victim in in_poison:
                leaks.append(f"{name}: {victim} is in the poison queue")
            if f"referral {victim}" in replay.log:
                leaks.append(f"{name}: the host logged a sync step for {victim}")
    assert not leaks, "\n".join(leaks)
    assert f"Queued referral-updated for referral {replay.sentinel}" in replay.log  # the check itself works


def test_host_log_has_no_forged_line_and_no_intake_failure(replay: Replay) -> None:
    forged = [line for line in replay.log.splitlines() if line.startswith(FORGED) or line.startswith("FORGED")]
    assert not forged, f"a value reached the log unescaped and forged lines: {forged}"
    failed = [line for line in replay.log.splitlines() if "Functions.partner_center_events' (Failed" in line]
    intake_tracebacks = [
        block for block in _TRACEBACK.findall(replay.log) if "partner_center_events" in block or "signature" in block
    ]
    host_errors = [line for line in replay.log.splitlines() if "Local host error while handling" in line]
    problems = {"failed": failed, "tracebacks": intake_tracebacks, "host errors": host_errors}
    assert not any(problems.values()), json.dumps(problems, indent=1, ensure_ascii=False)


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 100
    assert {case.expected for case in CORPUS} == {200, 400, 401, 413}


def test_the_sentinel_was_fetched_once(replay: Replay, sandbox: Sandbox) -> None:
    """The control: the only delivery that should reach Partner Center did, exactly once."""
    gets = sandbox.partner_center.recorded("GET", f"/v1.0/engagements/referrals/{replay.sentinel}")
    assert len(gets) == 1
    assert httpx.codes.is_success(gets[0].status)

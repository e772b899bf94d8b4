"""End to end: the local functions host running function_app, Azurite, and the simulators.

One stack (the same one ``make run`` starts) per session; each test uses fresh referral ids, so tests
do not see each other's data. Everything starts on free ports and is stopped at the end.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.hostproc import HostProcess
from sandbox.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "sandbox" / "fixtures"


def sample(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text())
    return data["value"][0] if "value" in data else data


def fresh(referral: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A verbatim sample with a new id (the samples share ids), plus any changes."""
    copied = copy.deepcopy(referral)
    copied.pop("links", None)
    copied["id"] = str(uuid.uuid4())
    copied.update(changes)
    return copied


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    # Retry failed messages at once (host.json says 10 s) so the poison-queue test is quick.
    # Timers run only when a test fires them (POST /admin/functions/<name>), never on their own.
    settings = {
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
        "CRM_POLL_SCHEDULE": "0 0 0 1 1 *",
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "HTTP_TIMEOUT_SECONDS": "2",
        # In-call waits up to 2 s; a longer Retry-After hands the message back to the queue (test_throttling).
        "HTTP_MAX_BACKOFF_SECONDS": "2",
        # Bursts of up to 1,000 referrals: the suite's org has ten web servers' worth of service protection
        # budget (60,000 requests / 5 min), and the app may use it (tests/integration/test_crm_pacing.py paces).
        "CRM_REQUESTS_PER_MINUTE": "60000",
    }
    with Stack(data_dir, seed=7, log_path=data_dir / "host.log", extra_settings=settings) as running:
        running.sandbox.dataverse.protection.configure(requests=60_000)
        running.register_webhook()
        yield running


@pytest.fixture(scope="session")
def azurite(stack: Stack) -> Azurite:
    return stack.azurite


@pytest.fixture(scope="session")
def sandbox(stack: Stack) -> Sandbox:
    return stack.sandbox


@pytest.fixture(scope="session")
def host(stack: Stack) -> HostProcess:
    return stack.host


@pytest.fixture(scope="session")
def host_log(stack: Stack) -> Path:
    return stack.host.log_path


@pytest.fixture
def audit_table(azurite: Azurite, host: HostProcess) -> TableClient:
    return TableClient.from_connection_string(azurite.connection_string, "AuditLog")


# A bug (not a remote's fault) in the worker: stop waiting at once instead of timing out.
PROGRAMMING_ERRORS = re.compile(r"^(AttributeError|TypeError|NameError|ImportError|UnboundLocalError): ", re.M)


@pytest.fixture
def wait_for_audit(audit_table: TableClient, host_log: Path) -> Callable[..., list[dict[str, Any]]]:
    """Wait until a referral has at least ``count`` audit rows (newest first) from the inbound sync."""

    def wait(referral_id: str, count: int = 1, *, timeout: float = 60, outcome: str | None = None) -> list[dict]:
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                found = list(audit_table.query_entities("PartitionKey eq @pk", parameters={"pk": referral_id}))
            except ResourceNotFoundError:  # the app creates its tables on first use
                found = []
            rows = [dict(r) for r in found if r.get("outcome") != "retry"]
            if len(rows) >= count and (outcome is None or rows[0].get("outcome") == outcome):
                return rows
            crash = PROGRAMMING_ERRORS.search(host_log.read_text(errors="replace"))
            if crash:
                raise AssertionError(f"the function app crashed: {crash.group(0)}see {host_log}")
            time.sleep(0.2)
        raise AssertionError(f"referral {referral_id}: expected {count} audit row(s), got {rows}")

    return wait


def fire(host: HostProcess, function: str, timeout: float = 60) -> None:
    host.fire(function, timeout)

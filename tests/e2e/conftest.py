"""End to end: the local functions host running function_app, Azurite, and the simulators.

One Azurite, one sandbox and one host per session; each test uses fresh referral ids, so tests
do not see each other's data. Everything starts on free ports and is stopped at the end.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from sandbox.environment import Sandbox
from tests.support.azurite import Azurite, start_azurite
from tests.support.processes import HostProcess, start_host

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "sandbox" / "fixtures"

# Settings with defaults are pinned too, so a developer's local.settings.json cannot change a test.
PINNED = {"DISPLAY_CHECKMARK": "true", "SYNC_COSELL_ONLY": "false", "CRM_FIELD_MAP": ""}


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
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    instance = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    env = Sandbox(tmp_path_factory.mktemp("sandbox"), seed=7, delivery_backoff=0.2).start()
    yield env
    env.stop()


@pytest.fixture(scope="session")
def host_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("host") / "host.log"


@pytest.fixture(scope="session")
def host(azurite: Azurite, sandbox: Sandbox, host_log: Path) -> Iterator[HostProcess]:
    settings = {**sandbox.app_settings(azurite.connection_string), **PINNED}
    process = start_host(REPO_ROOT, env=settings, log_path=host_log, timeout=60)
    response = httpx.put(
        process.url("/api/admin/webhook-registration"),
        json={"webhookUrl": process.url("/api/partner-center/events"), "overwrite": True},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    yield process
    process.stop()


@pytest.fixture
def audit_table(azurite: Azurite, host: HostProcess) -> TableClient:
    return TableClient.from_connection_string(azurite.connection_string, "AuditLog")


@pytest.fixture
def wait_for_audit(audit_table: TableClient) -> Callable[..., list[dict[str, Any]]]:
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
            time.sleep(0.2)
        raise AssertionError(f"referral {referral_id}: expected {count} audit row(s), got {rows}")

    return wait

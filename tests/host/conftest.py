"""Fixtures: one Azurite and one local host (running ``sample_app``) shared by the module's tests.

The sample app is copied to a temporary folder with its own ``local.settings.json``, so nothing is
written into the repository and the file-versus-environment precedence can be tested.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from sandbox.azurite import Azurite, start_azurite
from sandbox.hostproc import HostProcess, start_host

SAMPLE_APP = Path(__file__).parent / "sample_app"
# Set only in local.settings.json (SAMPLE_OVERRIDDEN and AzureWebJobsStorage are also set in the environment).
LOCAL_SETTINGS = {
    "IsEncrypted": False,
    "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "SAMPLE_SCHEDULE": "*/1 * * * * *",
        "SAMPLE_FROM_FILE": "from-file",
        "SAMPLE_OVERRIDDEN": "from-file",
    },
}
FILE_ONLY = ("FUNCTIONS_WORKER_RUNTIME", "SAMPLE_SCHEDULE", "SAMPLE_FROM_FILE", "SAMPLE_UNSET_QUEUE")


@dataclass
class SampleHost:
    """The running host plus what the tests need to reach its storage and its records."""

    process: HostProcess
    azurite: Azurite
    queue: str
    park_queue: str
    records_dir: Path

    def url(self, path: str) -> str:
        return self.process.url(path)

    def queue_client(self, name: str, *, base64: bool = True) -> QueueClient:
        policies: dict[str, Any] = (
            {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}
            if base64
            else {}
        )
        return QueueClient.from_connection_string(self.azurite.connection_string, name, **policies)

    def peek(self, name: str, *, base64: bool = True) -> list[str]:
        """Contents of the visible messages in ``name`` (empty while the queue does not exist yet)."""
        try:
            return [m.content for m in self.queue_client(name, base64=base64).peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []

    def wait_in_queue(self, name: str, content: str, *, base64: bool = True, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while content not in self.peek(name, base64=base64):
            if time.monotonic() > deadline:
                raise AssertionError(f"{content!r} did not appear in queue {name!r} within {timeout:.0f}s")
            time.sleep(0.1)

    def records(self, kind: str, predicate: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[dict[str, Any]]:
        found = [json.loads(p.read_text(encoding="utf-8")) for p in self.records_dir.glob(f"{kind}-*.json")]
        return sorted((r for r in found if predicate(r)), key=lambda r: r["at"])

    def wait_records(
        self,
        kind: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(found := self.records(kind, predicate)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} {kind!r} record(s) within {timeout:.0f}s, got {found}")
            time.sleep(0.05)
        return found


def copy_sample_app(destination: Path) -> Path:
    app_dir = destination / "app"
    shutil.copytree(SAMPLE_APP, app_dir, ignore=shutil.ignore_patterns("__pycache__"))
    (app_dir / "local.settings.json").write_text(json.dumps(LOCAL_SETTINGS, indent=2), encoding="utf-8")
    return app_dir


def host_env(azurite: Azurite, records_dir: Path, suffix: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "SAMPLE_QUEUE": f"work-{suffix}",
        "SAMPLE_PARK_QUEUE": f"park-{suffix}",
        "SAMPLE_RECORD_DIR": str(records_dir),
        "SAMPLE_OVERRIDDEN": "from-env",
    }


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    instance = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_sample_app(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def sample_host(azurite: Azurite, app_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleHost]:
    records_dir = tmp_path_factory.mktemp("records")
    suffix = uuid.uuid4().hex[:8]
    env = host_env(azurite, records_dir, suffix)
    process = start_host(app_dir, env, log_path=app_dir.parent / "host.log", unset=FILE_ONLY)
    try:
        yield SampleHost(process, azurite, env["SAMPLE_QUEUE"], env["SAMPLE_PARK_QUEUE"], records_dir)
    finally:
        process.stop()

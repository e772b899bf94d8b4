"""The whole local stack in one object: Azurite, the simulators and the functions host.

``make run``, ``make demo`` and the end-to-end tests start it the same way, so what a developer
watches locally is what the tests check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx

from sandbox.azurite import Azurite, start_azurite
from sandbox.environment import Sandbox, SandboxPorts
from sandbox.hostproc import HostProcess, HostStartError, start_host

REPO_ROOT = Path(__file__).resolve().parents[1]

# Settings with defaults are pinned, so a developer's local.settings.json cannot change a sandbox run.
PINNED = {"DISPLAY_CHECKMARK": "true", "SYNC_COSELL_ONLY": "false", "CRM_FIELD_MAP": ""}


@dataclass
class Stack:
    data_dir: Path
    host_port: int | None = None
    sandbox_ports: SandboxPorts = field(default_factory=SandboxPorts)
    azurite_ports: tuple[int, int, int] | None = None
    seed: int = 0
    crm: str = "dynamics"  # or "salesforce": which simulated CRM the app is pointed at
    crm_schema: str = "provisioned"  # or "bare": the CRM without the sync's schema (make run)
    log_path: Path | None = None
    extra_settings: Mapping[str, str] = field(default_factory=dict)
    _azurite: Azurite | None = field(default=None, init=False, repr=False)
    _sandbox: Sandbox | None = field(default=None, init=False, repr=False)
    _host: HostProcess | None = field(default=None, init=False, repr=False)
    _settings: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _restarts: int = field(default=0, init=False, repr=False)

    @property
    def azurite(self) -> Azurite:
        return _started(self._azurite)

    @property
    def sandbox(self) -> Sandbox:
        return _started(self._sandbox)

    @property
    def host(self) -> HostProcess:
        return _started(self._host)

    @property
    def settings(self) -> dict[str, str]:
        """The app settings the host runs with (what an admin's local.settings.json would hold)."""
        return dict(self._settings)

    def start(self) -> Stack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._azurite = start_azurite(self.data_dir / "azurite", ports=self.azurite_ports)
            self._sandbox = Sandbox(
                self.data_dir,
                ports=self.sandbox_ports,
                seed=self.seed,
                delivery_backoff=0.2,
                crm_schema=self.crm_schema,
            )
            self._sandbox.start()
            settings = self._sandbox.app_settings(self._azurite.connection_string)
            if self.crm == "salesforce":
                settings.update(self._sandbox.salesforce_settings())
            self._settings = {**settings, **PINNED, **self.extra_settings}
            log_path = self.log_path or self.data_dir / "host.log"
            self._host = start_host(REPO_ROOT, env=self._settings, port=self.host_port, log_path=log_path, timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def register_webhook(self) -> dict[str, object]:
        """What an operator does once after deploying: PUT the events URL to Partner Center."""
        host = self.host
        response = httpx.put(
            host.url("/api/manage/webhook-registration"),
            json={"webhookUrl": host.url("/api/partner-center/events"), "overwrite": True},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def kill_host(self) -> int:
        """``kill -9`` the host: no graceful stop, so work in flight dies mid-call, as in a crash.

        Returns the exit status (``-9``). Storage and the simulators keep running.
        """
        host = self.host
        if host.process.poll() is None:
            os.kill(host.process.pid, signal.SIGKILL)
        host.process.wait(15)
        return host.stop()  # reaps the process and closes its log

    def restart_host(self, settings: Mapping[str, str] | None = None) -> HostProcess:
        """Start a new host on the same storage, simulators and settings (after :meth:`kill_host`).

        It takes the old port when it is free, so Partner Center's registered URL still works;
        otherwise a new port, and the webhook is registered again. Each restart logs to its own
        file (``host.restart1.log``...) so the crashed host's log stays readable. ``settings`` change
        app settings from this start on (a running host is stopped gracefully first), as an operator
        changing them in the portal would.
        """
        old = self.host
        if old.process.poll() is None:
            old.stop()
        if settings:
            self._settings = {**self._settings, **settings}
        self._restarts += 1
        log_path = old.log_path.with_name(f"{old.log_path.stem}.restart{self._restarts}{old.log_path.suffix}")
        try:
            self._host = start_host(REPO_ROOT, env=self._settings, port=old.port, log_path=log_path, timeout=60)
        except HostStartError:
            self._host = start_host(REPO_ROOT, env=self._settings, log_path=log_path, timeout=60)
            self.register_webhook()
        return self._host

    def provision_crm(self, timeout: float = 60) -> dict[str, object]:
        """What an admin does once: create the sync's schema in the CRM, and wait until it is ready."""
        url = self.host.url("/api/manage/crm-schema")
        created = httpx.post(url, timeout=120)
        created.raise_for_status()
        result: dict[str, object] = created.json()
        deadline = time.monotonic() + timeout
        while not result.get("ready") and time.monotonic() < deadline:
            time.sleep(0.5)  # an alternate key's index builds in the background
            result = {**result, **httpx.get(url, timeout=60).json()}
        return result

    def stop(self) -> None:
        for part in (self._host, self._sandbox, self._azurite):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


T = TypeVar("T")


def _started(part: T | None) -> T:
    if part is None:
        raise RuntimeError("the stack is not started")
    return part

"""Run the local functions host (``python -m sandbox.host``) as a subprocess (``make run``, ``make demo``, tests).

Usage::

    with start_host(app_dir, env={"AzureWebJobsStorage": azurite.connection_string}, log_path=tmp / "host.log") as host:
        httpx.get(host.url("/api/items/1"))
        assert "Executed 'Functions.get_item' (Succeeded" in host.output()

``stop()`` sends SIGTERM (a graceful stop), kills after a timeout, and returns the exit code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sandbox.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


class HostStartError(RuntimeError):
    """The host exited or never answered; the message carries its output."""


@dataclass
class HostProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + ("" if path.startswith("/") else "/") + path

    def output(self) -> str:
        """Everything the host printed so far (stdout and stderr)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def status(self, timeout: float = 2.0) -> dict[str, Any]:
        """``GET /admin/host/status`` as a dict."""
        with urllib.request.urlopen(self.url("/admin/host/status"), timeout=timeout) as response:  # noqa: S310
            result: dict[str, Any] = json.loads(response.read())
            return result

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` appears in the output; return the output."""
        deadline = time.monotonic() + timeout
        while text not in (output := self.output()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} did not appear in the host output within {timeout:.0f}s:\n{output}")
            time.sleep(0.05)
        return output

    def fire(self, function: str, timeout: float = 60.0) -> None:
        """Run a non-HTTP function now (``POST /admin/functions/<name>``) and wait until that run ends."""
        marker = f"Executed 'Functions.{function}' ("
        before = self.output().count(marker)
        request = urllib.request.Request(  # noqa: S310 - loopback URL we built
            self.url(f"/admin/functions/{function}"),
            data=b'{"input": ""}',
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            if response.status != 202:
                raise HostStartError(f"admin call for {function} answered {response.status}")
        deadline = time.monotonic() + timeout
        while self.output().count(marker) <= before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{function} did not finish within {timeout:.0f}s")
            time.sleep(0.1)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout)
            return int(self.process.returncode)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> HostProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def host_command(script_root: Path, port: int, *, app: str | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    command = [sys.executable, "-m", "sandbox.host", "--port", str(port), "--script-root", str(script_root)]
    if app:
        command += ["--app", app]
    return command + list(extra_args)


def start_host(
    script_root: Path,
    env: Mapping[str, str] | None = None,
    *,
    log_path: Path | None = None,
    port: int | None = None,
    app: str | None = None,
    extra_args: Sequence[str] = (),
    inherit_env: bool = True,
    unset: Sequence[str] = (),
    timeout: float = 30.0,
) -> HostProcess:
    """Start the host on a free port and wait until ``/admin/host/status`` reports ``Running``.

    ``env`` is layered over the current environment (or replaces it with ``inherit_env=False``);
    names in ``unset`` are removed, so ``local.settings.json`` can supply them. Output goes to
    ``log_path`` (default: a new temporary file).
    """
    port = port or free_port()
    script_root = Path(script_root).resolve()
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix=f"host-{port}-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    full_env = dict(os.environ) if inherit_env else {"PATH": os.environ.get("PATH", "")}
    full_env.update(env or {})
    for name in unset:
        full_env.pop(name, None)
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH", "")) if p)
    log_file = log_path.open("wb")
    process = subprocess.Popen(  # noqa: S603
        host_command(script_root, port, app=app, extra_args=extra_args),
        cwd=script_root,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    host = HostProcess(process=process, port=port, log_path=log_path, _log_file=log_file)
    try:
        _wait_until_running(host, timeout)
    except BaseException:  # it exited, timed out, or Ctrl-C / SIGTERM came while waiting: stop it
        host.stop()
        raise
    return host


def _wait_until_running(host: HostProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if host.process.poll() is not None:
            raise HostStartError(f"the host exited with code {host.process.returncode}:\n{host.output()}")
        try:
            if host.status(timeout=1.0).get("state") == "Running":
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise HostStartError(f"the host did not answer /admin/host/status within {timeout:.0f}s:\n{host.output()}")
        time.sleep(0.1)

"""``make run`` as a new user meets it: the commands it prints work, the log says why an event changed
nothing, a busy port is named, and Ctrl-C / SIGTERM leave nothing running (not even mid start-up).

Each test starts ``python -m sandbox.run`` in its own process group, so "nothing left running" is a
plain fact to check: no process of that group survives it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.act import RUNNING_FILE, fresh_referral
from sandbox.act import main as act_main

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, "-m", "sandbox.run", "--mode", "sandbox", "--ports", "free"]


def _group(pgid: int) -> list[int]:
    """Live processes of a process group (read from /proc: no ps needed)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            members.append(int(stat.parent.name))
    return members


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class MakeRun:
    def __init__(self, data_dir: Path, *args: str) -> None:
        self.out = data_dir / "make-run.out"
        self.data_dir = data_dir
        with self.out.open("wb") as handle:
            self.process = subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "sandbox.run",
                    "--mode",
                    "sandbox",
                    "--ports",
                    "free",
                    "--data-dir",
                    str(data_dir),
                    *list(args),
                ],
                cwd=REPO_ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: pgid == pid
            )

    def text(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def wait_for_text(self, pattern: str, timeout: float = 180) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"make run exited ({self.process.returncode}):\n{self.text()[-3000:]}")
            match = re.search(pattern, self.text())
            if match:
                found.append(match)
            return bool(match)

        _wait_for(seen, timeout, pattern)
        return found[0]

    def signal_and_wait(self, signum: int, timeout: float = 60) -> int:
        """Signal make run's own process only (as ``kill PID`` does; Ctrl-C in a terminal would reach the
        children too and hide whether make run stops them)."""
        os.kill(self.process.pid, signum)
        return self.process.wait(timeout)

    def kill(self) -> None:
        for pid in _group(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_make_run_prints_commands_that_work_names_a_busy_port_and_stops_everything_on_sigterm(
    tmp_path: Path, busy_port: int
) -> None:
    run = MakeRun(tmp_path, "--port", str(busy_port))
    try:
        run.wait_for_text(r"CRM -> Partner Center: .*\n")
        banner = run.text()
        assert f"Port {busy_port} (function app) is busy" in banner
        host_url = re.search(r"Function app\s+(\S+)/api/health", banner)
        assert host_url
        assert f":{busy_port}/" not in host_url.group(1) + "/"
        assert httpx.get(f"{host_url.group(1)}/api/health", timeout=10).status_code == 200
        dashboard = re.search(r"Dashboard\s+(\S+/api/manage/dashboard)\n", banner)
        assert dashboard, banner
        assert dashboard.group(1) == f"{host_url.group(1)}/api/manage/dashboard"
        page = httpx.get(dashboard.group(1), timeout=30)
        assert (page.status_code, page.headers["content-type"]) == (200, "text/html; charset=utf-8")
        assert "Co-sell sync" in page.text

        # The two printed commands, run verbatim from the repo root as a user would paste them.
        printed = {}
        for direction, expected in (
            ("Partner Center -> CRM", "✔ In Dynamics 365 after"),
            ("CRM -> Partner Center", "✔ Shared after"),
        ):
            command = re.search(rf"{direction}:\s+(.+)", banner)
            assert command, banner
            done = subprocess.run(  # noqa: S603
                shlex.split(command.group(1).strip()), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert expected in done.stdout, done.stdout
            printed[direction] = done.stdout

        # Partner Center sends the new referral's event again: nothing changes, and the log says so and why.
        referral_id = re.search(r"shared referral ([0-9a-f-]{36})", printed["Partner Center -> CRM"])
        assert referral_id
        running = json.loads((tmp_path / RUNNING_FILE).read_text())
        httpx.post(
            f"{running['partner_center_url']}/_sim/deliver",
            json={"referralId": referral_id.group(1), "eventName": "referral-updated", "times": 1},
            timeout=10,
        ).raise_for_status()
        run.wait_for_text(rf"referral {referral_id.group(1)}: unchanged \(webhook\).* - No mapped field changed", 60)
    except BaseException:
        run.kill()
        raise

    assert run.signal_and_wait(signal.SIGTERM) == 0
    _wait_for(lambda: not _group(run.process.pid), 30, "every process make run started to exit")
    assert "Stopped: the function app, the simulators and Azurite have exited." in run.text()
    assert not (tmp_path / RUNNING_FILE).exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{host_url.group(1)}/api/health", timeout=2)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_during_start_up_leaves_nothing_running(tmp_path: Path, signum: int) -> None:
    run = MakeRun(tmp_path)
    try:
        # Azurite (node) has started and the rest is still starting: stop there.
        _wait_for(lambda: len(_group(run.process.pid)) >= 2, 60, "make run to start a child process")
        code = run.signal_and_wait(signum)
    finally:
        run.kill()
    assert code == 0, run.text()
    assert not _group(run.process.pid), "processes outlived make run"
    assert "Co-sell sync is running" not in run.text()


def test_act_without_a_running_sandbox_says_to_start_one(tmp_path: Path) -> None:
    out = _Capture()
    assert act_main(["--data-dir", str(tmp_path), "new-referral"], out=out) == 2
    assert "No sandbox is running: start one with 'make run'" in out.text


def test_a_fresh_referral_has_its_own_id_and_current_timestamps() -> None:
    first, second = fresh_referral("אבג & O'Brien 株式会社"), fresh_referral(None)
    assert first["id"] != second["id"]
    assert first["engagementId"] != second["engagementId"]
    created = dt.datetime.fromisoformat(first["createdDateTime"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 60
    assert first["updatedDateTime"] == first["createdDateTime"]
    assert first["customerProfile"]["name"] == "אבג & O'Brien 株式会社"
    assert "eTag" not in first


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

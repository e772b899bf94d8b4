"""Ctrl-C or SIGTERM while Azurite or the host is still starting stops the process just started.

The interrupt is raised at the exact moment (the first readiness probe), so the test does not depend on
how fast a machine starts node or Python; the process is real and must be gone afterwards.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from sandbox import azurite, hostproc
from sandbox.stack import REPO_ROOT


def _spawned(mocker: MockerFixture) -> list[subprocess.Popen[bytes]]:
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        process = real_popen(*args, **kwargs)  # type: ignore[call-overload]
        started.append(process)
        return process

    mocker.patch.object(subprocess, "Popen", side_effect=popen)
    return started


def test_azurite_is_stopped_when_interrupted_while_it_starts(tmp_path: Path, mocker: MockerFixture) -> None:
    started = _spawned(mocker)
    mocker.patch.object(azurite, "port_open", side_effect=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        azurite.start_azurite(tmp_path)
    assert len(started) == 1
    assert started[0].poll() is not None, "node kept running after the interrupt"


def test_the_host_is_stopped_when_interrupted_while_it_starts(tmp_path: Path, mocker: MockerFixture) -> None:
    started = _spawned(mocker)
    mocker.patch.object(hostproc.HostProcess, "status", side_effect=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        hostproc.start_host(REPO_ROOT, env={}, log_path=tmp_path / "host.log")
    assert len(started) == 1
    assert started[0].poll() is not None, "the host kept running after the interrupt"

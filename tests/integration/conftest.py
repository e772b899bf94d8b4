"""Integration: the app's adapters and stores against the simulators and Azurite, no functions host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.azurite import Azurite, start_azurite
from sandbox.environment import Sandbox


@pytest.fixture(scope="package")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with start_azurite(tmp_path_factory.mktemp("azurite")) as instance:
        yield instance


@pytest.fixture(scope="package")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    env = Sandbox(Path(tmp_path_factory.mktemp("sandbox")), seed=11).start()
    yield env
    env.stop()

"""Integration: the app's adapters and stores against the simulators and Azurite, no functions host."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.azurite import Azurite, start_azurite
from sandbox.environment import Sandbox
from shared import services

# Helper modules that assert for several test modules: pytest explains their failures as it does a test's.
pytest.register_assert_rewrite("tests.integration.adopt_support", "tests.integration.schema_support")


@pytest.fixture(scope="package")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with start_azurite(tmp_path_factory.mktemp("azurite")) as instance:
        yield instance


@pytest.fixture(scope="package")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    env = Sandbox(Path(tmp_path_factory.mktemp("sandbox")), seed=11).start()
    yield env
    env.stop()


@pytest.fixture
def app_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Point the app (services, the admin command) at a sandbox, as local.settings.json would."""

    def apply(sandbox: Sandbox, storage: str, *, crm: str = "dynamics", **extra: str) -> None:
        values = sandbox.app_settings(storage)
        if crm == "salesforce":
            values.update(sandbox.salesforce_settings())
        # Pinned, so a developer's own environment cannot change what the test sees.
        values.update(
            {"CRM_FIELD_MAP": "", "CONNECTOR_FIELD_MAP": "", "DISPLAY_CHECKMARK": "true", "SYNC_COSELL_ONLY": "false"}
        )
        values.update(extra)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        services.reset()

    monkeypatch.chdir(tmp_path)  # no local.settings.json here
    yield apply
    services.reset()

"""Integration: the app's adapters and stores against the simulators and Azurite, no functions host."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.azurite import Azurite, start_azurite
from sandbox.environment import PARTNER_CENTER_CLIENT_ID, TENANT_ID, Sandbox
from shared import services
from shared.auth import MemoryRefreshTokenStore, RefreshTokenGrant

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


@pytest.fixture(scope="module")
def partner_center_refresh_token(sandbox: Sandbox) -> str:
    """A Partner Center refresh token of the test module's own, from the sandbox's Entra ID: the sandbox's
    own token may have been redeemed and rotated by another module, into a store this one does not share."""
    return sandbox.entra.issue_refresh_token(PARTNER_CENTER_CLIENT_ID)


@pytest.fixture(scope="module")
def partner_center_token(sandbox: Sandbox, partner_center_refresh_token: str) -> RefreshTokenGrant:
    """App+user tokens for the Referrals API, redeemed from :func:`partner_center_refresh_token`."""
    return RefreshTokenGrant(
        sandbox.entra_url,
        TENANT_ID,
        PARTNER_CENTER_CLIENT_ID,
        sandbox.pc_client_secret,
        "https://api.partner.microsoft.com/.default",
        MemoryRefreshTokenStore(partner_center_refresh_token),
    )


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

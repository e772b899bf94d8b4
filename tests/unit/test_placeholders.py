"""Values copied from local.settings.example.json are refused by name: in the settings, in every use, at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.host import app_settings_problem
from shared import services
from shared.config import ConfigurationError, Settings, get_settings, placeholder_reason

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE: dict[str, str] = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
ALIASES = {str(field.validation_alias) for field in Settings.model_fields.values()}

# Real-looking values for every setting a placeholder could hide (none of them a placeholder).
REAL = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "PARTNER_CENTER_TENANT_ID": "7d23e5ca-19dc-4eaa-aac8-5e6b559f0d1d",
    "PARTNER_CENTER_CLIENT_ID": "3f0c8b7e-2a41-4c55-9d1e-6b2f8e4a9c10",
    "PARTNER_CENTER_CLIENT_SECRET": "Qx18Q~realistic.secret-value_0123456789abcd",
    "PARTNER_CENTER_REFRESH_TOKEN": "0.AXkA-realistic-refresh-token",
    "DATAVERSE_URL": "https://contoso.crm.dynamics.com",
    "DATAVERSE_TENANT_ID": "7d23e5ca-19dc-4eaa-aac8-5e6b559f0d1d",
    "DATAVERSE_CLIENT_ID": "a5b1c9d2-7e3f-4a60-8b91-c2d3e4f5a6b7",
    "DATAVERSE_CLIENT_SECRET": "Zy28Q~another.realistic-secret_9876543210",
    "SALESFORCE_LOGIN_URL": "https://contoso.my.salesforce.com",
    "SALESFORCE_CLIENT_ID": "3MVG9realisticConsumerKey",
    "SALESFORCE_CLIENT_SECRET": "A1B2C3D4E5F6",
}
# What the example file holds in place of a real value: an angle-bracketed hint. Read independently
# of the code under test, so a new placeholder in the example is a new case here by itself.
EXAMPLE_PLACEHOLDERS = sorted(name for name, value in EXAMPLE.items() if "<" in str(value) and ">" in str(value))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Only REAL in the environment; caches cleared before and after."""
    for name in list(os.environ):
        if name in ALIASES:
            monkeypatch.delenv(name)
    for name, value in REAL.items():
        monkeypatch.setenv(name, value)
    services.reset()
    yield monkeypatch
    services.reset()


def test_the_example_holds_placeholders_and_the_real_values_are_not_taken_for_them() -> None:
    assert {
        "PARTNER_CENTER_TENANT_ID",
        "PARTNER_CENTER_CLIENT_SECRET",
        "PARTNER_CENTER_REFRESH_TOKEN",
        "DATAVERSE_URL",
    } <= set(EXAMPLE_PLACEHOLDERS)
    assert not [name for name, value in REAL.items() if placeholder_reason(value)]


@pytest.mark.parametrize("name", EXAMPLE_PLACEHOLDERS)
def test_each_placeholder_of_the_example_is_refused_by_its_name(env: pytest.MonkeyPatch, name: str) -> None:
    env.setenv(name, EXAMPLE[name])
    if name.startswith("SALESFORCE_"):
        env.setenv("CRM_KIND", "salesforce")
    settings = Settings()
    assert settings.placeholders == {name: "a placeholder from local.settings.example.json"}
    with pytest.raises(ConfigurationError) as refused:
        settings.refuse_placeholders()
    assert refused.value.settings == [name]
    assert name in str(refused.value)
    assert EXAMPLE[name] not in str(refused.value)  # the name, never the value


@pytest.mark.parametrize("name", [n for n in EXAMPLE_PLACEHOLDERS if n.startswith(("PARTNER_CENTER_", "DATAVERSE_"))])
def test_each_use_of_a_placeholder_refuses_it_by_name_before_any_call(env: pytest.MonkeyPatch, name: str) -> None:
    env.setenv(name, EXAMPLE[name])
    settings = get_settings()

    def use() -> object:
        if name.startswith("DATAVERSE_"):
            return services.dataverse_token(settings)
        return services.partner_center_token(settings, "partner_center_scope", store=None)  # type: ignore[arg-type]

    with pytest.raises(ConfigurationError) as refused:
        use()
    assert refused.value.settings == [name]


def test_the_whole_example_file_is_refused_naming_each_placeholder_of_the_crm_in_use(env: pytest.MonkeyPatch) -> None:
    for name, value in EXAMPLE.items():
        env.setenv(name, str(value))
    assert sorted(Settings().placeholders) == [n for n in EXAMPLE_PLACEHOLDERS if not n.startswith("SALESFORCE_")]
    # With Salesforce in use, the Dynamics 365 placeholders are not its business (README: "not-used").
    env.setenv("CRM_KIND", "salesforce")
    assert not [n for n in Settings().placeholders if n.startswith("DATAVERSE_")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("<your partner tenant id>", "a placeholder from local.settings.example.json"),
        ("https://<org>.crm.dynamics.com", "a placeholder from local.settings.example.json"),
        ("00000000-0000-0000-0000-000000000000", "an example GUID"),
        ("aaaabbbb-0000-cccc-1111-dddd2222eeee", "an example GUID"),
        ("00001111-aaaa-2222-bbbb-3333cccc4444", "an example GUID"),
        ("@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/x/)", "an unresolved Key Vault reference"),
    ],
)
def test_what_counts_as_a_placeholder(value: str, reason: str) -> None:
    assert placeholder_reason(value) == reason


@pytest.mark.parametrize(
    "value",
    [
        str(uuid.UUID(int=0x7D23E5CA19DC4EAAAAC85E6B559F0D1D)),
        "00000000-0000-4000-8000-00000000c05e",  # the sandbox's tenant
        "11111111-0000-4000-8000-000000000001",  # the sandbox's Partner Center client
        "not-used",  # README: what to put in the secret of the CRM not in use
        "UseDevelopmentStorage=true",
        "https://partner.microsoft.com/dashboard/referrals/v2/inbox?id={id}",
    ],
)
def test_real_values_are_not_placeholders(value: str) -> None:
    assert placeholder_reason(value) is None


def test_an_invalid_value_is_one_line_naming_the_setting_not_its_value(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRM_KIND", "hubspot")
    env.setenv("HTTP_MAX_ATTEMPTS", "many")
    with pytest.raises(ConfigurationError) as refused:
        get_settings()
    assert refused.value.settings == ["CRM_KIND", "HTTP_MAX_ATTEMPTS"]
    assert "\n" not in str(refused.value)
    assert "hubspot" not in str(refused.value)


def app_root(tmp_path: Path) -> Path:
    """This app's shape (shared/config.py) without a developer's local.settings.json."""
    root = tmp_path / "app"
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "config.py").write_text((ROOT / "shared" / "config.py").read_text())
    return root


def test_the_local_host_check_names_placeholders_and_invalid_values(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = app_root(tmp_path)
    assert app_settings_problem(root) is None
    env.setenv("PARTNER_CENTER_CLIENT_SECRET", EXAMPLE["PARTNER_CENTER_CLIENT_SECRET"])
    assert "PARTNER_CENTER_CLIENT_SECRET" in str(app_settings_problem(root))
    env.setenv("CRM_KIND", "hubspot")
    assert "CRM_KIND" in str(app_settings_problem(root))
    assert app_settings_problem(tmp_path) is None, "another app's settings are not this check's business"


def test_the_local_host_refuses_to_start_from_the_example_file_with_one_line(tmp_path: Path) -> None:
    """``python -m sandbox.host`` with a local.settings.json copied from the example: exit 1, no traceback."""
    root = app_root(tmp_path)
    (root / "local.settings.json").write_text((ROOT / "local.settings.example.json").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ALIASES}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "sandbox.host", "--port", "0", "--script-root", str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1, lines
    assert len(lines) == 1, lines
    assert "Refusing to start" in lines[0]
    for name in (n for n in EXAMPLE_PLACEHOLDERS if not n.startswith("SALESFORCE_")):
        assert name in lines[0]

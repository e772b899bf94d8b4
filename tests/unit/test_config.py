"""Settings parsing: names, defaults per CRM, lists, secrets."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.crm.dynamics_fields import dynamics_field_map


def test_defaults_follow_design_md(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRM_KIND", "WEBHOOK_CERT_URL_PREFIXES", "DEAL_VALUE_FIELD"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.crm_kind == "dynamics"
    assert settings.partner_center_api_url == "https://api.partner.microsoft.com/v1.0/engagements"
    assert settings.webhook_cert_url_prefixes == ["https://3psostorageacct.blob.core.windows.net/cert/"]
    assert (settings.deal_value_field, settings.deal_currency_field, settings.account_country_field) == (
        "estimatedvalue",
        "transactioncurrencyid",
        "address1_country",
    )
    assert (settings.crm_poll_schedule, settings.reconcile_schedule) == ("0 */1 * * * *", "0 */15 * * * *")


def test_salesforce_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_KIND", "salesforce")
    monkeypatch.setenv("DEAL_VALUE_FIELD", "Expected_Revenue__c")
    settings = Settings()
    assert (settings.deal_value_field, settings.deal_currency_field, settings.account_country_field) == (
        "Expected_Revenue__c",
        "CurrencyIsoCode",
        "BillingCountryCode",
    )


def test_comma_separated_prefixes_and_booleans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_CERT_URL_PREFIXES", "https://a.example/cert/, http://127.0.0.1:9/cert/ ,")
    monkeypatch.setenv("DISPLAY_CHECKMARK", "false")
    monkeypatch.setenv("SYNC_COSELL_ONLY", "true")
    settings = Settings()
    assert settings.webhook_cert_url_prefixes == ["https://a.example/cert/", "http://127.0.0.1:9/cert/"]
    assert settings.display_checkmark is False
    assert settings.sync_cosell_only is True


def test_secrets_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_SECRET", "very-secret-value")
    monkeypatch.setenv("PARTNER_CENTER_REFRESH_TOKEN", "refresh-secret-value")
    settings = Settings()
    assert "very-secret-value" not in repr(settings)
    assert "refresh-secret-value" not in str(settings)


def test_bad_values_are_refused_with_the_setting_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_KIND", "hubspot")
    with pytest.raises(ValueError, match="CRM_KIND"):
        Settings()


def test_field_map_overrides() -> None:
    fields = dynamics_field_map(
        deal_value_field="new_value",
        deal_currency_field="transactioncurrencyid",
        account_country_field="new_iso2",
        overrides_json='{"opportunity": {"microsoft_crm_id": "new_msxid"}}',
    )
    assert fields.column("opportunity", "deal_value") == "new_value"
    assert fields.column("opportunity", "microsoft_crm_id") == "new_msxid"
    assert fields.column("account", "country") == "new_iso2"
    with pytest.raises(ValueError, match="CRM_FIELD_MAP"):
        dynamics_field_map(
            deal_value_field="a",
            deal_currency_field="b",
            account_country_field="c",
            overrides_json='["not", "a", "map"]',
        )


# Set by the platform in Azure (identity-based storage), never in local.settings.json.
AZURE_ONLY = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__clientId",
}


def setting_names() -> set[str]:
    return {str(field.validation_alias) for field in Settings.model_fields.values()}


def test_every_setting_is_in_local_settings_example_and_nothing_else() -> None:
    import json
    from pathlib import Path

    example = json.loads((Path(__file__).resolve().parents[2] / "local.settings.example.json").read_text())["Values"]
    assert setting_names() - AZURE_ONLY - set(example) == set()
    assert set(example) - setting_names() - {"FUNCTIONS_WORKER_RUNTIME"} == set()


def test_empty_values_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEAL_VALUE_FIELD", "")
    monkeypatch.setenv("AUDIT_MAX_CHARS", "")
    settings = Settings()
    assert settings.deal_value_field == "estimatedvalue"
    assert settings.audit_max_chars == 4000


def test_admin_route_prefix_moves_the_admin_routes(tmp_path) -> None:
    """Routes are fixed at indexing, so index the app in a fresh interpreter with the setting."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import json, function_app\n"
        "print(json.dumps(sorted(f.get_trigger().route for f in function_app.app.get_functions()"
        " if f.get_trigger().get_binding_name() == 'httpTrigger')))\n"
    )
    root = Path(__file__).resolve().parents[2]

    def routes(prefix: str | None) -> list[str]:
        env = {k: v for k, v in os.environ.items() if k != "ADMIN_ROUTE_PREFIX"}
        if prefix:
            env["ADMIN_ROUTE_PREFIX"] = prefix
        out = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True)  # noqa: S603
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.splitlines()[-1])

    default = routes(None)
    assert {"manage/resync", "manage/webhook-registration", "manage/replay-poison"} <= set(default)
    assert not [r for r in default if r.startswith("admin")]
    moved = routes("ops")
    assert {"ops/resync", "ops/webhook-registration", "ops/replay-poison"} <= set(moved)
    assert not [r for r in moved if r.startswith("manage")]
    with pytest.raises(ValueError, match="ADMIN_ROUTE_PREFIX"):
        Settings(ADMIN_ROUTE_PREFIX="../x")

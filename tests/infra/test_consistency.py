"""The templates and the code agree: app settings, their defaults, secrets, queues, tables, routes,
and the azd parameters."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from pydantic import SecretStr

from shared.messages import BACKFILL_QUEUE, REFERRAL_EVENTS_QUEUE
from shared.store.clients import POISON_SUFFIX, TABLES
from tests.infra import (
    APP_SETTINGS_DOC,
    INFRA,
    MAIN,
    REPO,
    Template,
    app_settings,
    app_settings_resource,
    code_settings,
    config_where,
    function_app_facts,
    infra,
    json_where,
    load,
    rel,
    settings_doc,
)

IDENTITY_STORAGE_SETTINGS = (
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__clientId",
)
LOCAL_SETTINGS_EXAMPLE = REPO / "local.settings.example.json"
README = REPO / "README.md"
README_DEPLOY = README  # the "Deploy to Azure" section
PARAMETERS = INFRA / "main.parameters.json"


# --- app settings ---------------------------------------------------------------------------


def test_every_setting_the_code_reads_is_set_in_bicep_or_documented_optional() -> None:
    settings = app_settings()
    optional = settings_doc()["optional"]
    where = app_settings_resource().where
    missing = [
        f"{config_where(alias)}: {alias} is neither set in the Bicep app settings ({where}) "
        f"nor listed under 'optional' in {rel(APP_SETTINGS_DOC)}"
        for alias in code_settings()
        if alias not in settings and alias not in optional
    ]
    assert not missing, "\n".join(missing)


def test_optional_settings_are_real_and_not_also_set() -> None:
    settings = app_settings()
    aliases = code_settings()
    problems = []
    for alias, default in settings_doc()["optional"].items():
        where = json_where(APP_SETTINGS_DOC, f'"{alias}"')
        if alias not in aliases:
            problems.append(f"{where}: {alias} is not a setting shared/config.py reads")
        if alias in settings:
            problems.append(f"{where}: {alias} is listed as optional but the Bicep sets it too")
        if not str(default).strip():
            problems.append(f"{where}: say what applies when {alias} is not set")
    assert not problems, "\n".join(problems)


def test_connection_string_storage_is_not_used_in_azure() -> None:
    settings = app_settings()
    assert "AzureWebJobsStorage" not in settings, (
        f"{app_settings_resource().where}: AzureWebJobsStorage (a connection string) is set; Azure uses identity"
    )
    missing = [name for name in IDENTITY_STORAGE_SETTINGS if name not in settings]
    assert not missing, f"{app_settings_resource().where}: identity-based storage settings missing: {missing}"
    assert settings.get("AzureWebJobsStorage__credential") == "managedidentity"


def _env_value(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# Deliberate differences from the code's default, each with its reason.
DELIBERATE: dict[str, str] = {}


def test_bicep_values_give_the_code_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the Bicep sets a setting to a fixed value or a parameter's default, the app reads the
    same value it would use with the setting absent (DESIGN.md's defaults live in shared/config.py)."""
    from shared.config import Settings

    settings = app_settings()
    aliases = code_settings()
    for alias in aliases:
        monkeypatch.delenv(alias, raising=False)
    problems, compared = [], 0
    for alias, (field_name, info) in aliases.items():
        value = _env_value(settings.get(alias))
        if value is None or isinstance(info.get_default(call_default_factory=True), SecretStr):
            continue
        monkeypatch.setenv(alias, value)
        try:
            got = getattr(Settings(), field_name)
        except ValueError as exc:
            problems.append(f"{config_where(alias)}: the Bicep value {value!r} of {alias} is invalid: {exc}")
            continue
        finally:
            monkeypatch.delenv(alias, raising=False)
        compared += 1
        expected = DELIBERATE.get(alias, info.get_default(call_default_factory=True))
        if got != expected:
            problems.append(
                f"{config_where(alias)}: Bicep sets {alias}={value!r}: the app reads {got!r}, "
                f"its default is {expected!r}"
            )
    assert not problems, "\n".join(problems)
    assert compared >= 20, f"only {compared} settings had a fixed value to compare"


def test_secret_settings_are_key_vault_references() -> None:
    settings = app_settings()
    secrets = settings_doc()["keyVaultSecrets"]
    problems = []
    for alias, (_name, info) in code_settings().items():
        if info.annotation is None or "SecretStr" not in str(info.annotation):
            continue
        if alias not in secrets:
            problems.append(f"{config_where(alias)}: secret {alias} has no Key Vault secret in {rel(APP_SETTINGS_DOC)}")
            continue
        value = settings.get(alias)
        expected = f"@Microsoft.KeyVault(SecretUri={{?}}secrets/{secrets[alias]})"
        if not isinstance(value, Template) or value.render() != expected:
            problems.append(f"{app_settings_resource().where}: {alias} = {value}, expected {expected}")
            continue
        source = infra().origin(value.unknowns()[0])
        if (
            source is None
            or source[1].resource_type != "Microsoft.KeyVault/vaults"
            or source[2] != "properties.vaultUri"
        ):
            problems.append(f"{app_settings_resource().where}: {alias} does not point at the template's Key Vault")
    assert not problems, "\n".join(problems)
    assert set(secrets.values()) == {
        "partner-center-client-secret",
        "partner-center-refresh-token",
        "dataverse-client-secret",
        "salesforce-client-secret",
    }


def test_settings_bindings_read_as_percent_names_are_set() -> None:
    """Timers read %CRM_POLL_SCHEDULE% / %RECONCILE_SCHEDULE%: the host refuses to start them unset."""
    settings = app_settings()
    problems = []
    for function in function_app_facts()["functions"]:
        for name in re.findall(r"%(\w+)%", function["json"]):
            if name not in settings:
                problems.append(f"{rel_path(function['file'])}:{function['line']}: %{name}% is not set in the Bicep")
    assert not problems, "\n".join(problems)


def test_local_settings_example_has_every_setting() -> None:
    values = json.loads(LOCAL_SETTINGS_EXAMPLE.read_text())["Values"]
    missing = [
        f"{config_where(alias)}: {alias} is missing from {rel(LOCAL_SETTINGS_EXAMPLE)}"
        for alias in code_settings()
        if alias not in values and alias not in IDENTITY_STORAGE_SETTINGS
    ]
    assert not missing, "\n".join(missing)


# --- queues and tables ------------------------------------------------------------------------


def _created_names(resource_type: str) -> dict[str, str]:
    names = {}
    for resource in infra().resources(resource_type):
        if resource.type.lower() == resource_type.lower():
            name = resource.get("name")
            assert isinstance(name, str), f"{resource.where}: name {name} cannot be read"
            names[name] = resource.where
    return names


def test_queues_match_the_code() -> None:
    created = _created_names("Microsoft.Storage/storageAccounts/queueServices/queues")
    expected = {name + suffix for name in (REFERRAL_EVENTS_QUEUE, BACKFILL_QUEUE) for suffix in ("", POISON_SUFFIX)}
    assert set(created) == expected, f"queues created {created}, the code uses {sorted(expected)}"
    queue_triggers = [f for f in function_app_facts()["functions"] if f["binding"] == "queueTrigger"]
    assert queue_triggers, "no queue trigger found"
    for trigger in queue_triggers:
        where = f"{rel_path(trigger['file'])}:{trigger['line']}"
        assert trigger["queue"] in created, f"{where}: queue {trigger['queue']} is not created by the Bicep"
        assert trigger["connection"] == "AzureWebJobsStorage", f"{where}: connection is not AzureWebJobsStorage"


def test_tables_match_the_code() -> None:
    created = _created_names("Microsoft.Storage/storageAccounts/tableServices/tables")
    assert set(created) == set(TABLES), f"tables created {created}, the code uses {sorted(TABLES)}"


# --- HTTP routes ------------------------------------------------------------------------------

ROUTE_ROW = re.compile(r"^\|\s*`(?P<methods>[A-Z]+(?:/[A-Z]+)*) /api/(?P<route>[^`\s]+)`\s*\|")


def rel_path(path: str) -> str:
    return os.path.relpath(path, REPO)


def readme_routes() -> dict[tuple[str, str], str]:
    routes = {}
    for number, line in enumerate(README.read_text().splitlines(), 1):
        match = ROUTE_ROW.match(line)
        if match:
            for method in match["methods"].split("/"):
                routes[(method, match["route"])] = f"{rel(README)}:{number}"
    return routes


def code_routes() -> dict[tuple[str, str], str]:
    routes = {}
    for function in function_app_facts()["functions"]:
        if function["binding"] == "httpTrigger":
            for method in function["methods"]:
                routes[(method.upper(), function["route"])] = f"{rel_path(function['file'])}:{function['line']}"
    return routes


def test_readme_route_table_matches_the_http_functions() -> None:
    documented, registered = readme_routes(), code_routes()
    assert documented, f"no route rows like | `POST /api/...` | found in {rel(README)}"
    problems = [
        f"{where}: {m} /api/{r} is documented but no function serves it"
        for (m, r), where in documented.items()
        if (m, r) not in registered
    ]
    problems += [
        f"{where}: {m} /api/{r} is served but missing from the route table in {rel(README)}"
        for (m, r), where in registered.items()
        if (m, r) not in documented
    ]
    assert not problems, "\n".join(problems)


def test_events_url_output_is_the_events_route() -> None:
    main = load(MAIN)
    output = main.get("output", "AZURE_FUNCTION_EVENTS_URL")
    assert output is not None, f"{rel(MAIN)}: no AZURE_FUNCTION_EVENTS_URL output"
    value = infra().root.evaluator.eval(output.value)
    where = main.where(output.node)
    assert isinstance(value, Template), f"{where}: {value}"
    match = re.fullmatch(r"https://\{\?\}/api/(.+)", value.render())
    assert match, f"{where}: expected https://<host>/api/<route>, got {value.render()}"
    assert ("POST", match[1]) in code_routes(), f"{where}: /api/{match[1]} is not the app's POST events route"
    source = infra().origin(value.unknowns()[0])
    assert source, f"{where}: the host cannot be traced"
    assert source[1].resource_type == "Microsoft.Web/sites", f"{where}: host is not the function app's"
    assert source[2] == "properties.defaultHostName"
    host = json.loads((REPO / "host.json").read_text())
    assert host.get("extensions", {}).get("http", {}).get("routePrefix", "api") == "api"


def test_outputs_name_the_app_and_the_vault() -> None:
    main = load(MAIN)
    outputs = {d.name: d for d in main.of_kind("output")}
    for name, resource_type, path in (
        ("AZURE_FUNCTION_NAME", "Microsoft.Web/sites", "name"),
        ("AZURE_KEY_VAULT_NAME", "Microsoft.KeyVault/vaults", "name"),
    ):
        assert name in outputs, f"{rel(MAIN)}: output {name} is missing"
        source = infra().origin(infra().root.evaluator.eval(outputs[name].value))
        assert source, f"{main.where(outputs[name].node)}: {name} cannot be traced"
        assert (source[1].resource_type, source[2]) == (resource_type, path), (
            f"{main.where(outputs[name].node)}: {name} is not the {resource_type} {path}"
        )


# --- azd parameters ---------------------------------------------------------------------------

ENV_REFERENCE = re.compile(r"^\$\{(?P<name>[A-Z][A-Z0-9_]*)(?:=(?P<default>[^}]*))?\}$")


def parameter_file() -> dict[str, Any]:
    return json.loads(PARAMETERS.read_text())["parameters"]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_parameters_file_maps_every_parameter_to_an_azd_variable() -> None:
    main = load(MAIN)
    params = {d.name: d for d in main.of_kind("param")}
    entries = parameter_file()
    problems = []
    for name, decl in params.items():
        if name not in entries:
            problems.append(f"{main.where(decl.node)}: parameter {name} is not in {rel(PARAMETERS)}")
    for name, entry in entries.items():
        where = json_where(PARAMETERS, f'"{name}"')
        if name not in params:
            problems.append(f"{where}: {name} is not a parameter of {rel(MAIN)}")
            continue
        match = ENV_REFERENCE.match(str(entry.get("value")))
        if not match:
            problems.append(f"{where}: {name} should be an azd reference like ${{NAME}} or ${{NAME=default}}")
            continue
        decl = params[name]
        default = infra().root.evaluator.eval(decl.value) if decl.value is not None else None
        if match["default"] is not None and decl.value is None:
            problems.append(f"{where}: {name} has a default here but is required in {main.where(decl.node)}")
        elif match["default"] is not None and match["default"] != _as_text(default):
            problems.append(
                f"{where}: default {match['default']!r} differs from the Bicep default {_as_text(default)!r} "
                f"({main.where(decl.node)})"
            )
    assert not problems, "\n".join(problems)
    assert entries["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert entries["location"]["value"] == "${AZURE_LOCATION}"


def test_deploy_guide_explains_every_input_and_secret() -> None:
    guide = README_DEPLOY.read_text()
    problems = []
    for name, entry in parameter_file().items():
        variable = ENV_REFERENCE.match(entry["value"])["name"]
        if variable not in ("AZURE_ENV_NAME", "AZURE_LOCATION") and f"azd env set {variable}" not in guide:
            problems.append(
                f"{json_where(PARAMETERS, name)}: {rel(README_DEPLOY)} never shows `azd env set {variable}`"
            )
        if variable not in guide:
            problems.append(f"{json_where(PARAMETERS, name)}: {rel(README_DEPLOY)} does not explain {variable}")
    for secret in settings_doc()["keyVaultSecrets"].values():
        if not re.search(rf"az keyvault secret set [^\n]*--name {re.escape(secret)}\b", guide):
            problems.append(f"{rel(README_DEPLOY)}: no `az keyvault secret set ... --name {secret}`")
    assert not problems, "\n".join(problems)


def test_module_calls_pass_exactly_the_declared_params() -> None:
    """Every module call binds only parameters its module declares (a typo would go unnoticed)."""
    problems = []
    for instance in infra().instances[1:]:
        declared = {d.name for d in instance.file.of_kind("param")}
        caller = instance.caller
        for name in instance.evaluator.bindings:
            if name not in declared:
                problems.append(f"{caller.file.where(instance.module.node)}: {instance.file.rel} has no param {name}")
        for decl in instance.file.of_kind("param"):
            if decl.value is None and decl.name not in instance.evaluator.bindings:
                problems.append(f"{caller.file.where(instance.module.node)}: required param {decl.name} not passed")
    assert not problems, "\n".join(problems)

"""No key material in the templates, identity everywhere, exactly the roles the app needs, and the
hardening settings of the storage account, the function app and the Key Vault."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra import (
    INFRA,
    REPO,
    BicepFile,
    Call,
    Resource,
    Template,
    Unknown,
    app_settings,
    app_settings_resource,
    bicep_files,
    infra,
    line_of,
    load,
    rel,
    settings_doc,
    text,
)

ALLOWED_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),
    "4633458b-17de-408a-b874-0445c86b69e6": ("Key Vault Secrets User", "Microsoft.KeyVault/vaults"),
    "3913510d-42f4-4e42-8a64-420c390055eb": ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
}
GUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# Key material, connection strings with keys, and the functions that read keys at deployment.
FORBIDDEN = re.compile(
    r"AccountKey=|DefaultEndpointsProtocol=|SharedAccessSignature|SharedAccessKey|InstrumentationKey="
    r"|\blist(Keys|AccountSas|ServiceSas|Secrets|ConnectionStrings|Credentials?)\s*\(",
    re.IGNORECASE,
)
SENSITIVE_NAME = re.compile(
    r"secret|password|passwd|pwd|token|credential|connectionstring|connection_string|apikey|sas", re.I
)
# Long base64-looking runs (mixed case and digits, so resource type paths are not caught) and hex
# runs: account keys, SAS signatures, instrumentation keys, tokens.
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
HEX_RUN = re.compile(r"\b[0-9a-fA-F]{32,}\b")
# Literal values that may stand under a secret-looking name: they name a credential, they are none.
NOT_SECRETS = {"managedidentity", *ALLOWED_ROLES}
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("


def looks_like_key(value: str) -> bool:
    if HEX_RUN.search(value):
        return True
    return any(
        re.search(r"[0-9]", run) and re.search(r"[A-Z]", run) and re.search(r"[a-z]", run)
        for run in BASE64_RUN.findall(value)
    )


OTHER_FILES = [INFRA / "main.parameters.json", INFRA / "app-settings.json", REPO / "azure.yaml"]


def code_lines(file: BicepFile) -> dict[int, str]:
    """Each line's tokens without comments: what Azure would actually evaluate."""
    lines: dict[int, str] = {}
    for node in file.walk():
        if node.child_count == 0 and node.type != "comment":
            lines[line_of(node)] = lines.get(line_of(node), "") + " " + text(node)
    return lines


def strings(file: BicepFile) -> list[tuple[int, str]]:
    return [(line_of(n), text(n)) for n in file.walk() if n.type == "string_content"]


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: rel(p))
def test_no_key_material_or_key_listing_in_bicep(path: Path) -> None:
    file = load(path)
    found = [f"{file.rel}:{line}: {code.strip()}" for line, code in code_lines(file).items() if FORBIDDEN.search(code)]
    found += [f"{file.rel}:{line}: key-like literal" for line, value in strings(file) if looks_like_key(value)]
    assert not found, "key material or key listing:\n" + "\n".join(found)


@pytest.mark.parametrize("path", OTHER_FILES, ids=lambda p: rel(p))
def test_no_key_material_in_parameters_and_settings(path: Path) -> None:
    found = [
        f"{rel(path)}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if FORBIDDEN.search(line) or looks_like_key(line)
    ]
    assert not found, "\n".join(found)


def _literal_parts(value_node: Any) -> str | None:
    """The literal text of a string node, None when the value is not a string."""
    if value_node.type != "string":
        return None
    return "".join(text(c) for c in value_node.named_children if c.type in ("string_content", "escape_sequence"))


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: rel(p))
def test_secret_named_properties_hold_no_literal(path: Path) -> None:
    """A property or variable named like a secret is a Key Vault reference or an expression, never a
    literal value (the names of the Key Vault secrets, role ids and `managedidentity` are allowed)."""
    file = load(path)
    secret_names = set(settings_doc()["keyVaultSecrets"].values())
    problems = []
    pairs = []
    for node in file.walk():
        if node.type == "object_property":
            pairs.append((node.named_children[0], node.named_children[-1]))
    for decl in file.of_kind("var"):
        pairs.append((decl.node.named_children[0], decl.value))
    for key_node, value_node in pairs:
        key = text(key_node).strip("'")
        if not SENSITIVE_NAME.search(key) or value_node is None:
            continue
        literal = _literal_parts(value_node)
        if literal is None or literal in secret_names | NOT_SECRETS or not literal.strip():
            continue
        if literal.startswith(KEY_VAULT_REFERENCE):
            continue
        problems.append(f"{file.where(value_node)}: {key} holds a literal value")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: rel(p))
def test_secret_parameters_are_secure_and_outputs_are_not_secrets(path: Path) -> None:
    file = load(path)
    problems = []
    for decl in file.of_kind("param"):
        if SENSITIVE_NAME.search(decl.name) and "secure" not in decl.decorators:
            problems.append(f"{file.where(decl.node)}: parameter {decl.name} looks secret but is not @secure()")
        if "secure" in decl.decorators and decl.value is not None:
            problems.append(f"{file.where(decl.node)}: @secure() parameter {decl.name} has a default value")
    for decl in file.of_kind("output"):
        source = text(decl.value) if decl.value is not None else ""
        if "secure" in decl.decorators or SENSITIVE_NAME.search(decl.name):
            problems.append(f"{file.where(decl.node)}: output {decl.name} is a secret")
        if re.search(r"ConnectionString|InstrumentationKey|secret|listKeys|\.keys\b", source, re.I):
            problems.append(f"{file.where(decl.node)}: output {decl.name} exposes {source}")
    assert not problems, "\n".join(problems)


def test_app_settings_with_secret_names_are_key_vault_references() -> None:
    settings = app_settings()
    where = app_settings_resource().where
    allowed_plain = {"APPLICATIONINSIGHTS_CONNECTION_STRING"}  # no key: local auth is disabled (below)
    problems = []
    for name, value in settings.items():
        if (
            not SENSITIVE_NAME.search(name)
            or name in allowed_plain
            or (isinstance(value, str) and value in NOT_SECRETS)
        ):
            continue
        if not (isinstance(value, Template) and value.render().startswith(KEY_VAULT_REFERENCE)):
            problems.append(f"{where}: {name} = {value} is not a Key Vault reference")
    assert not problems, "\n".join(problems)
    connection = settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    source = infra().origin(connection)
    assert source, f"{where}: {connection}"
    assert source[1].resource_type == "Microsoft.Insights/components", f"{where}: {connection}"
    assert source[2] == "properties.ConnectionString"


def test_every_guid_in_the_templates_is_an_allowed_role() -> None:
    found = [
        f"{file.rel}:{line}: {guid}"
        for file in infra().files()
        for line, value in strings(file)
        for guid in GUID.findall(value)
        if guid.lower() not in ALLOWED_ROLES
    ]
    assert not found, "GUIDs that are not one of the allowed roles:\n" + "\n".join(found)


def _role_guid(resource: Resource) -> str | None:
    role = resource.get("properties", "roleDefinitionId")
    values = role.args if isinstance(role, Call) else (role,)
    for value in values:
        match = GUID.search(value if isinstance(value, str) else "")
        if match:
            return match[0].lower()
    return None


def _identity_origin(value: Any) -> tuple[str, str] | None:
    """(resource type, property path) of where a value comes from, for identity checks."""
    source = infra().origin(value)
    return (source[1].resource_type, source[2]) if source else None


UAMI = "Microsoft.ManagedIdentity/userAssignedIdentities"


def test_role_assignments_are_exactly_the_data_plane_roles_of_the_app_identity() -> None:
    assignments = infra().resources("Microsoft.Authorization/roleAssignments")
    problems = []
    granted: dict[str, str] = {}
    for assignment in assignments:
        guid = _role_guid(assignment)
        if guid not in ALLOWED_ROLES:
            problems.append(f"{assignment.where}: role {assignment.get('properties', 'roleDefinitionId')} not allowed")
            continue
        if guid in granted:
            problems.append(f"{assignment.where}: {ALLOWED_ROLES[guid][0]} granted twice (also {granted[guid]})")
        granted[guid] = assignment.where
        if assignment.condition is not True:
            problems.append(f"{assignment.where}: conditional role assignment")
        principal = _identity_origin(assignment.get("properties", "principalId"))
        if principal != (UAMI, "properties.principalId"):
            problems.append(f"{assignment.where}: principal is not the user-assigned identity ({principal})")
        if assignment.get("properties", "principalType") != "ServicePrincipal":
            problems.append(f"{assignment.where}: principalType is not ServicePrincipal")
        scope = assignment.get("scope")
        scope_decl = assignment.instance.file.get("resource", scope.source) if isinstance(scope, Unknown) else None
        expected_scope = ALLOWED_ROLES[guid][1]
        if scope_decl is None or scope_decl.resource_type != expected_scope:
            problems.append(f"{assignment.where}: {ALLOWED_ROLES[guid][0]} should be scoped to a {expected_scope}")
    missing = [ALLOWED_ROLES[g][0] for g in ALLOWED_ROLES if g not in granted]
    if missing:
        problems.append(f"roles the app needs but nobody grants: {missing}")
    assert not problems, "\n".join(problems)


def test_storage_account_is_hardened() -> None:
    accounts = infra().resources("Microsoft.Storage/storageAccounts")
    accounts = [a for a in accounts if a.type == "Microsoft.Storage/storageAccounts"]
    assert len(accounts) == 1, [a.where for a in accounts]
    account = accounts[0]
    expected = {
        "allowSharedKeyAccess": False,
        "minimumTlsVersion": "TLS1_2",
        "supportsHttpsTrafficOnly": True,
        "allowBlobPublicAccess": False,
    }
    wrong = {k: account.get("properties", k) for k, v in expected.items() if account.get("properties", k) != v}
    assert not wrong, f"{account.where}: {wrong}, expected {expected}"
    for container in infra().resources("Microsoft.Storage/storageAccounts/blobServices/containers"):
        assert container.get("properties", "publicAccess") in ("None", None), f"{container.where}: public container"


def test_function_app_is_hardened() -> None:
    site = infra().resource_of_type("Microsoft.Web/sites")
    expected = {
        ("properties", "httpsOnly"): True,
        ("properties", "siteConfig", "minTlsVersion"): "1.2",
    }
    wrong = {"/".join(k): site.get(*k) for k, v in expected.items() if site.get(*k) != v}
    assert not wrong, f"{site.where}: {wrong}"
    # Flex Consumption refuses siteConfig.ftpsState (FTP is off through the publishing credentials policy).
    assert site.get("properties", "siteConfig", "ftpsState") is None, f"{site.where}: ftpsState is set"
    scm_tls = site.get("properties", "siteConfig", "scmMinTlsVersion")
    assert scm_tls in (None, "1.2"), f"{site.where}: scmMinTlsVersion {scm_tls}"
    policies = {
        p.get("name"): p
        for p in infra().resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
        if isinstance(p.get("parent"), Unknown) and p.get("parent").source == site.decl.name
    }
    for name in ("ftp", "scm"):
        assert name in policies, f"{site.where}: no basicPublishingCredentialsPolicies '{name}' for the site"
        assert policies[name].get("properties", "allow") is False, f"{policies[name].where}: {name} publishing allowed"


def test_key_vault_is_rbac_mode_with_purge_protection_and_no_secret_values() -> None:
    vault = infra().resource_of_type("Microsoft.KeyVault/vaults")
    expected = {"enableRbacAuthorization": True, "enableSoftDelete": True, "enablePurgeProtection": True}
    wrong = {k: vault.get("properties", k) for k, v in expected.items() if vault.get("properties", k) != v}
    assert not wrong, f"{vault.where}: {wrong}"
    assert not vault.get("properties", "accessPolicies"), f"{vault.where}: access policies in RBAC mode"
    created = [s.where for s in infra().resources("Microsoft.KeyVault/vaults/secrets")]
    assert not created, f"the templates create secret values: {created}"


def test_one_user_assigned_identity_does_everything() -> None:
    site = infra().resource_of_type("Microsoft.Web/sites")
    identity = site.get("identity")
    assert isinstance(identity, dict), f"{site.where}: no identity"
    assert identity.get("type") == "UserAssigned", f"{site.where}: identity {identity}"
    keys = list(identity.get("userAssignedIdentities", {}))
    assert len(keys) == 1, f"{site.where}: expected one user-assigned identity, got {keys}"
    key = keys[0]
    assigned = key.unknowns()[0] if isinstance(key, Template) and len(key.parts) == 1 else key
    assert _identity_origin(assigned) == (UAMI, "id"), f"{site.where}: the site identity is not the template's UAMI"
    authentication = site.get("properties", "functionAppConfig", "deployment", "storage", "authentication")
    checks = {
        "keyVaultReferenceIdentity": (site.get("properties", "keyVaultReferenceIdentity"), (UAMI, "id")),
        "deployment storage identity": (authentication.get("userAssignedIdentityResourceId"), (UAMI, "id")),
        "AzureWebJobsStorage__clientId": (
            app_settings().get("AzureWebJobsStorage__clientId"),
            (UAMI, "properties.clientId"),
        ),
    }
    wrong = {name: _identity_origin(value) for name, (value, want) in checks.items() if _identity_origin(value) != want}
    assert not wrong, f"{site.where}: not the user-assigned identity: {wrong}"
    assert authentication.get("type") == "UserAssignedIdentity", f"{site.where}: deployment auth {authentication}"


def test_application_insights_accepts_identity_only() -> None:
    component = infra().resource_of_type("Microsoft.Insights/components")
    assert component.get("properties", "DisableLocalAuth") is True, f"{component.where}: local auth enabled"
    workspace = component.get("properties", "WorkspaceResourceId")
    assert _identity_origin(workspace) == ("Microsoft.OperationalInsights/workspaces", "id"), (
        f"{component.where}: not workspace-based"
    )
    auth = app_settings().get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")
    where = app_settings_resource().where
    assert isinstance(auth, Template), f"{where}: {auth}"
    assert auth.render() == "ClientId={?};Authorization=AAD", f"{where}: {auth}"
    assert _identity_origin(auth.unknowns()[0]) == (UAMI, "properties.clientId"), f"{where}: not the UAMI client id"

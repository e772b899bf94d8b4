"""The doctor against the simulators and Azurite over real HTTP: with each setting broken in turn, the
line of that integration fails naming that setting and the lines that do not depend on it still say ok;
with everything right, every line says ok."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.ports import free_port
from shared import doctor, services
from shared.auth import RefreshTokenGrant
from shared.config import Settings
from shared.doctor.report import Check, Report
from shared.partner_center.registration import WANTED_EVENTS
from shared.store.clients import TOKEN_TABLE, table_client
from shared.store.tokens import TableRefreshTokenStore

EVENTS_URL = "https://cosell-app.example/api/partner-center/events"
ALIASES = {str(field.validation_alias) for field in Settings.model_fields.values()}

STORAGE, SETTINGS, CERT = "Storage", "Settings", "Webhook certificate URL"
PC_AUTH, REFERRALS, REGISTRATION = "Partner Center token", "Referrals API", "Webhook registration"
CRM_AUTH, SCHEMA = "CRM token", "CRM schema"
PARTNER_CENTER = {PC_AUTH, REFERRALS, REGISTRATION}
CRM = {CRM_AUTH, SCHEMA}


@dataclass
class World:
    sandbox: Sandbox
    azurite: Azurite
    base: dict[str, str]

    def diagnose(self, timeout: float = doctor.DEFAULT_TIMEOUT, **changes: str) -> Report:
        values = {**self.base, **changes}
        return doctor.run(Settings(**values), events_url=EVENTS_URL, environ=values, timeout=timeout)

    def register(self, url: str = EVENTS_URL) -> None:
        webhooks = self.sandbox.partner_center.webhooks
        webhooks.clear()
        webhooks.register({"WebhookUrl": url, "WebhookEvents": list(WANTED_EVENTS)}, create=True)

    def provision(self) -> None:
        """What an admin does once: the sync's schema in the bare org (the crm-schema route's code)."""
        patient = {**self.base, "HTTP_TIMEOUT_SECONDS": "60"}  # setup, not under test: a loaded machine is slow
        services.schema_of(services.build_crm(Settings(**patient))).apply()
        self.sandbox.dataverse.complete_key_indexes()


@pytest.fixture(scope="module")
def world(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):  # only what each test passes counts
            if name in ALIASES:
                patch.delenv(name)
        sandbox = Sandbox(Path(tmp_path_factory.mktemp("doctor")), seed=21, crm_schema="bare").start()
        try:
            world = World(sandbox, azurite, sandbox.app_settings(azurite.connection_string))
            world.provision()
            world.register()
            yield world
        finally:
            sandbox.stop()


def statuses(report: Report) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


def line(report: Report, name: str) -> Check:
    return next(check for check in report.checks if check.name == name)


def closed_url(path: str = "") -> str:
    return f"http://127.0.0.1:{free_port()}{path}"


def test_with_everything_right_every_line_says_ok(world: World) -> None:
    report = world.diagnose()
    assert [c.name for c in report.checks] == list(doctor.NAMES)
    assert {c.name: (c.status, c.settings) for c in report.checks} == {n: ("ok", []) for n in doctor.NAMES}, (
        report.lines()
    )
    assert report.ok
    assert line(report, REGISTRATION).detail.startswith(f"points to this app ({EVENTS_URL})")


def test_redeeming_the_refresh_token_never_strands_the_app(world: World) -> None:
    """Entra (here strictly) spends a refresh token when it is redeemed: the doctor must leave the newest
    one where the app looks for it, so the app's own redemption after two doctor runs still works."""
    world.diagnose()
    world.diagnose()
    settings = Settings(**world.base)
    store = TableRefreshTokenStore(table_client(settings, TOKEN_TABLE), seed=world.base["PARTNER_CENTER_REFRESH_TOKEN"])
    grant: RefreshTokenGrant = services.partner_center_token(settings, "partner_center_scope", store)
    assert grant()


@dataclass(frozen=True)
class Broken:
    changes: dict[str, str]
    check: str  # the line that names the setting
    settings: list[str]
    said: str  # a fragment of that line's detail
    affected: frozenset[str]  # every line that may not say ok (the others must)
    status: str = "fail"


GOOD_GUID_SHAPE = "4b1c7a9e-5d2f-4e61-9a8b-7c6d5e4f3a2b"
CASES = {
    "bad Partner Center tenant": Broken(
        {"PARTNER_CENTER_TENANT_ID": GOOD_GUID_SHAPE},
        PC_AUTH,
        ["PARTNER_CENTER_TENANT_ID"],
        "AADSTS90002",
        frozenset(PARTNER_CENTER),
    ),
    "tenant that is no tenant id": Broken(
        {"PARTNER_CENTER_TENANT_ID": "contoso"},
        PC_AUTH,
        ["PARTNER_CENTER_TENANT_ID"],
        "AADSTS900023",
        frozenset(PARTNER_CENTER),
    ),
    "bad Partner Center client id": Broken(
        {"PARTNER_CENTER_CLIENT_ID": GOOD_GUID_SHAPE},
        PC_AUTH,
        ["PARTNER_CENTER_CLIENT_ID", "PARTNER_CENTER_TENANT_ID"],
        "AADSTS700016",
        frozenset(PARTNER_CENTER),
    ),
    "bad Partner Center client secret": Broken(
        {"PARTNER_CENTER_CLIENT_SECRET": "not-the-secret"},
        PC_AUTH,
        ["PARTNER_CENTER_CLIENT_SECRET"],
        "refused the client secret (AADSTS7000215",
        frozenset(PARTNER_CENTER),
    ),
    "bad refresh token": Broken(
        {"PARTNER_CENTER_REFRESH_TOKEN": "0.AXkA-revoked-or-never-issued"},
        PC_AUTH,
        ["PARTNER_CENTER_REFRESH_TOKEN"],
        "redo the admin consent (AADSTS70000 invalid_grant)",
        frozenset(PARTNER_CENTER),
    ),
    "placeholder client secret": Broken(
        {"PARTNER_CENTER_CLIENT_SECRET": "<app registration client secret>"},
        PC_AUTH,
        ["PARTNER_CENTER_CLIENT_SECRET"],
        "placeholder",
        frozenset({SETTINGS, *PARTNER_CENTER}),
    ),
    "unreachable token endpoint": Broken(
        {"ENTRA_AUTHORITY_HOST": closed_url()},
        PC_AUTH,
        ["ENTRA_AUTHORITY_HOST"],
        "could not be reached",
        frozenset({*PARTNER_CENTER, *CRM}),
    ),
    "unreachable Referrals API": Broken(
        {"PARTNER_CENTER_API_URL": closed_url("/v1.0/engagements")},
        REFERRALS,
        ["PARTNER_CENTER_API_URL"],
        "cannot reach http://127.0.0.1:",
        frozenset({REFERRALS}),
    ),
    "Referrals API at a wrong path": Broken(
        {"PARTNER_CENTER_API_URL": "{pc}/v0.9/nothing-here"},
        REFERRALS,
        ["PARTNER_CENTER_API_URL"],
        "answered 404",
        frozenset({REFERRALS}),
    ),
    "token for another API": Broken(
        {"PARTNER_CENTER_SCOPE": "https://api.partnercenter.microsoft.com/.default"},
        REFERRALS,
        ["PARTNER_CENTER_SCOPE"],
        "answered 401",
        frozenset({REFERRALS}),
    ),
    "unreachable Webhooks API": Broken(
        {"PARTNER_CENTER_WEBHOOK_API_URL": closed_url("/webhooks/v1")},
        REGISTRATION,
        ["PARTNER_CENTER_WEBHOOK_API_URL"],
        "cannot reach",
        frozenset({REGISTRATION}),
    ),
    "bad CRM secret": Broken(
        {"DATAVERSE_CLIENT_SECRET": "not-the-secret"},
        CRM_AUTH,
        ["DATAVERSE_CLIENT_SECRET"],
        "Dynamics 365: Entra ID refused the client secret (AADSTS7000215",
        frozenset(CRM),
    ),
    "bad CRM tenant": Broken(
        {"DATAVERSE_TENANT_ID": GOOD_GUID_SHAPE},
        CRM_AUTH,
        ["DATAVERSE_TENANT_ID"],
        "AADSTS90002",
        frozenset(CRM),
    ),
    "unreachable CRM": Broken(
        {"DATAVERSE_URL": closed_url()},
        SCHEMA,
        ["DATAVERSE_URL"],
        "cannot reach",
        frozenset({SCHEMA}),
    ),
    "unreachable storage": Broken(
        {
            "AzureWebJobsStorage": (
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                f"BlobEndpoint={closed_url('/devstoreaccount1')};QueueEndpoint={closed_url('/devstoreaccount1')};"
                f"TableEndpoint={closed_url('/devstoreaccount1')};"
            )
        },
        STORAGE,
        ["AzureWebJobsStorage"],
        "cannot reach the storage account",
        frozenset({STORAGE, *PARTNER_CENTER}),  # the refresh token lives in Table Storage; the CRM does not
    ),
    "certificate host not allowed": Broken(
        {"WEBHOOK_CERT_URL_PREFIXES": "{pc}/cert/"},
        CERT,
        ["WEBHOOK_CERT_URL_PREFIXES"],
        "3psostorageacct.blob.core.windows.net",
        frozenset({CERT}),
        status="warn",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_setting_is_named_and_the_rest_still_says_ok(world: World, case: str) -> None:
    broken = CASES[case]
    changes = {k: v.format(pc=world.sandbox.partner_center_url) for k, v in broken.changes.items()}
    report = world.diagnose(**changes)
    found = line(report, broken.check)
    assert (found.status, found.settings) == (broken.status, broken.settings), report.lines()
    assert broken.said in found.detail, found.detail
    not_ok = {name for name, status in statuses(report).items() if status != "ok"}
    assert not_ok <= broken.affected, report.lines()
    assert broken.check in not_ok
    for value in changes.values():  # names, never values (secrets, connection strings)
        if "secret" in value or "AccountKey" in value:
            assert value not in "\n".join(report.lines())


def test_a_missing_schema_is_named_with_the_command_that_creates_it(world: World) -> None:
    world.sandbox.dataverse.clear()  # back to a bare org
    try:
        report = world.diagnose()
        found = line(report, SCHEMA)
        assert found.status == "fail"
        assert found.detail.startswith("Dynamics 365: missing cosell_"), found.detail
        assert " more: run " in found.detail
        assert "crm-schema --apply" in found.detail
        assert {n for n, s in statuses(report).items() if s != "ok"} == {SCHEMA}
        renamed = world.diagnose(CRM_FIELD_MAP='{"opportunity": {"microsoft_crm_id": "cosell_msxid"}}')
        assert line(renamed, SCHEMA).settings == ["CRM_FIELD_MAP"]
    finally:
        world.provision()
    assert line(world.diagnose(), SCHEMA).status == "ok"


def test_a_registration_elsewhere_says_where_it_points(world: World) -> None:
    world.register("https://prod-42.westeurope.logic.azure.com/workflows/abc/triggers/manual?code=flow-key")
    try:
        report = world.diagnose()
        found = line(report, REGISTRATION)
        assert found.status == "fail"
        assert "points to https://prod-42.westeurope.logic.azure.com/workflows/abc/triggers/manual?code=***" in (
            found.detail
        )
        assert "flow-key" not in found.detail
        assert '{"overwrite": true}' in found.detail
        assert line(world.diagnose(WEBHOOK_CALLBACK_URL=EVENTS_URL), REGISTRATION).settings == ["WEBHOOK_CALLBACK_URL"]
        world.sandbox.partner_center.webhooks.clear()
        assert "no webhook is registered" in line(world.diagnose(), REGISTRATION).detail
    finally:
        world.register()


def test_salesforce_lines_name_the_salesforce_settings(world: World) -> None:
    salesforce = world.sandbox.salesforce_settings()
    good = world.diagnose(**salesforce)
    assert line(good, CRM_AUTH).status == "ok"
    bare = line(good, SCHEMA)  # the sandbox's org starts without the sync's fields
    assert (bare.status, "crm-schema --apply" in bare.detail) == ("fail", True)
    secret = world.diagnose(**{**salesforce, "SALESFORCE_CLIENT_SECRET": "not-the-secret"})
    assert line(secret, CRM_AUTH).settings == ["SALESFORCE_CLIENT_SECRET"]
    client = world.diagnose(**{**salesforce, "SALESFORCE_CLIENT_ID": "3MVGunknownConsumerKey"})
    assert line(client, CRM_AUTH).settings == ["SALESFORCE_CLIENT_ID"]
    assert "invalid_client_id" in line(client, CRM_AUTH).detail


def test_a_host_that_never_answers_does_not_hang_the_doctor(world: World) -> None:
    """A host that accepts connections and never answers: the doctor reports at its deadline, naming it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        report = world.diagnose(timeout=4, ENTRA_AUTHORITY_HOST=url)
    for name in (PC_AUTH, CRM_AUTH):
        found = line(report, name)
        assert found.status == "fail"
        assert found.detail.startswith("no answer within 4 s while ")
        assert found.settings == ["ENTRA_AUTHORITY_HOST"]
    assert line(report, REFERRALS).detail == f"not checked: {PC_AUTH} did not finish in time"
    assert line(report, STORAGE).status == "ok"

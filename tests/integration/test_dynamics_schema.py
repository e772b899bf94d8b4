"""The Dynamics 365 schema check and setup against a bare simulated org, over the metadata Web API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from sandbox.sims.entra import EntraSimulator
from shared.auth import ClientCredentialsToken
from shared.crm.dataverse_client import API_PATH, DataverseClient
from shared.crm.dynamics import DynamicsCrm
from shared.crm.dynamics_fields import dynamics_field_map
from shared.crm.dynamics_schema import SOLUTION, _column_body
from shared.crm.schema import SchemaItem, SchemaRefused
from shared.http import ServiceClient
from shared.mapping.inbound import InboundOptions, plan_for
from tests.integration.schema_support import (
    assert_a_sync_asks_for_the_schema,
    assert_the_renamed_name_is_checked_and_created,
    names,
    shared_referral,
)

TENANT, CLIENT, SECRET = "00000000-0000-4000-8000-0000000005c1", "5c4e0000-0000-4000-8000-000000000001", "schema"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def org() -> Iterator[tuple[DataverseSimulator, str, ClientCredentialsToken]]:
    entra = EntraSimulator(seed=3)
    entra.add_client(CLIENT, SECRET)
    entra_server = ServerThread(entra).start()
    audience: dict[str, str] = {}
    sim = DataverseSimulator(seed=3, schema="bare", token_validator=lambda t: entra.validator(audience["url"])(t))
    server = ServerThread(sim).start()
    audience["url"] = server.url
    token = ClientCredentialsToken(entra_server.url, TENANT, CLIENT, SECRET, f"{server.url}/.default")
    token.entra_url = entra_server.url  # type: ignore[attr-defined]  # for the command-line test
    try:
        yield sim, server.url, token
    finally:
        server.stop()
        entra_server.stop()


@pytest.fixture
def bare(org: tuple[DataverseSimulator, str, ClientCredentialsToken]) -> DataverseSimulator:
    sim = org[0]
    sim.clear()  # back to the bare org it started as
    sim.set_privileges(customizer=True)
    return sim


def crm_for(org: tuple[DataverseSimulator, str, ClientCredentialsToken], overrides: str | None = None) -> DynamicsCrm:
    _, url, token = org
    fields = dynamics_field_map(
        deal_value_field="estimatedvalue",
        deal_currency_field="transactioncurrencyid",
        account_country_field="address1_country",
        overrides_json=overrides,
    )
    return DynamicsCrm(DataverseClient(ServiceClient("dataverse", f"{url}/{API_PATH}", auth=token)), fields)


def test_a_bare_org_is_not_ready_then_created_then_ready_then_nothing_more_to_create(bare, org) -> None:
    crm = crm_for(org)
    report = crm.schema.check().to_json()
    assert report["ready"] is False
    missing = names(report["missing"])
    assert {
        "opportunity.cosell_referralid",
        "opportunity.cosell_referralid_key",
        "lead.cosell_audit",
        "cosell_solution.cosell_solution",
        "cosell_solution.cosell_opportunityid",
    } <= missing
    assert all(f["name"].startswith("cosell_") for f in report["missing"]), "standard columns exist in every org"
    assert "opportunity.estimatedvalue" in names(report["present"])

    created = crm.schema.apply().to_json()
    assert names(created["created"]) == missing
    bare.complete_key_indexes()  # Dataverse builds an alternate key's index asynchronously
    assert crm.schema.check().ready
    again = crm.schema.apply().to_json()
    assert (again["created"], again["ready"]) == ([], True)

    # The sync now works against the org it provisioned.
    referral = shared_referral()
    result = crm_for(org).apply_inbound(plan_for(referral, InboundOptions()), None, "Synced into a provisioned org.")
    row = bare.get("opportunities", result.crm_id)
    assert row is not None
    assert row["cosell_referralid"] == referral.id
    assert [s["cosell_solutionidentifier"] for s in bare.records("cosell_solutions")] == ["Dynamics365forFieldService"]


def test_an_alternate_key_still_building_is_pending_not_ready(bare, org) -> None:
    crm = crm_for(org)
    result = crm.schema.apply().to_json()
    assert result["ready"] is False
    assert {f["name"] for f in result["pending"]} == {"cosell_referralid_key"}


def test_a_renamed_column_is_what_gets_checked_and_created(bare, org) -> None:
    crm = crm_for(org, overrides='{"opportunity": {"microsoft_crm_id": "cosell_msxid"}}')
    assert_the_renamed_name_is_checked_and_created(crm, "opportunity.cosell_msxid", "opportunity.cosell_microsoftcrmid")


def test_a_column_of_the_wrong_type_is_reported_and_left_alone(bare, org) -> None:
    crm = crm_for(org)
    # An admin made cosell_referralprogram by hand, as a multi-line text column.
    schema = crm.schema
    schema._ensure_publisher("cosell")
    mistake = SchemaItem("opportunity", "cosell_referralprogram", "column", "Memo", 2000, purpose="Referral Program")
    crm._dv.post(
        "EntityDefinitions(LogicalName='opportunity')/Attributes",
        _column_body(mistake),
        headers={"MSCRM.SolutionUniqueName": SOLUTION},
    )
    report = schema.check().to_json()
    [wrong] = [f for f in report["wrong"] if f["name"] == "cosell_referralprogram"]
    assert wrong["reason"] == (
        "cosell_referralprogram on opportunity is a Memo column; the sync needs a String column."
    )
    result = schema.apply().to_json()
    assert "opportunity.cosell_referralprogram" not in names(result["created"])
    assert "opportunity.cosell_referralprogram" in names(result["wrong"])


def test_without_customizer_rights_the_crm_reason_is_given_and_the_check_still_works(bare, org) -> None:
    crm = crm_for(org)
    bare.set_privileges(customizer=False)
    with pytest.raises(SchemaRefused) as info:
        crm.schema.apply()
    assert "prv" in info.value.reason  # Dataverse names the missing privilege
    assert crm.schema.check().ready is False


def test_the_admin_command_checks_and_applies_with_the_app_settings(bare, org, tmp_path: Path) -> None:
    """``python -m shared.cli crm-schema``: settings from local.settings.json; exit 1 until ready."""
    _, url, token = org
    (tmp_path / "local.settings.json").write_text(
        json.dumps(
            {
                "Values": {
                    "CRM_KIND": "dynamics",
                    "ENTRA_AUTHORITY_HOST": token.entra_url,  # type: ignore[attr-defined]
                    "DATAVERSE_URL": url,
                    "DATAVERSE_TENANT_ID": TENANT,
                    "DATAVERSE_CLIENT_ID": CLIENT,
                    "DATAVERSE_CLIENT_SECRET": SECRET,
                }
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAVERSE_", "CRM_", "ENTRA_"))}
    env["PYTHONPATH"] = str(ROOT)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "shared.cli", "crm-schema", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    check = run("--check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "missing  opportunity.cosell_referralid: The column cosell_referralid on opportunity does not exist." in (
        check.stdout
    )
    applied = run("--apply")
    assert "created  cosell_solution.cosell_solution (table)" in applied.stdout, applied.stdout + applied.stderr
    bare.complete_key_indexes()
    ready = run("--check", "--json")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert json.loads(ready.stdout)["ready"] is True


def test_a_sync_into_a_bare_org_says_to_create_the_schema(bare, org) -> None:
    assert_a_sync_asks_for_the_schema(crm_for(org), "Dynamics 365")

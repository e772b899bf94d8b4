"""The co-sell connector's solution in the Dataverse simulator: absent until installed, then served like any column."""

from __future__ import annotations

import httpx

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from sandbox.sims.dataverse.connector import HELP_OPTIONS
from tests.sandbox.dataverse_support import error_of

REFERRAL = "msft_microsoftpartnercenterreferralidentifier"
HELP = "msft_microsoftpartnercenterhelp"
MD = "Microsoft.Dynamics.CRM."


def test_the_connector_columns_are_unknown_until_the_solution_is_installed(
    sim: DataverseSimulator, server: ServerThread, client: httpx.Client
) -> None:
    refused = client.post("/opportunities", json={"name": "Deal", REFERRAL: "x"})
    assert refused.status_code == 400
    assert f"The property '{REFERRAL}' does not exist" in error_of(refused)["message"]
    assert client.get("/opportunities", params={"$select": REFERRAL}).status_code == 400

    assert httpx.post(f"{server.url}/_sim/connector").json() == {"installed": True}

    for entity_set in ("opportunities", "leads"):
        created = client.post(f"/{entity_set}", json={"subject" if entity_set == "leads" else "name": "Deal",
                                                      "lastname" if entity_set == "leads" else "description": "x",
                                                      REFERRAL: "b4d321d5-c5d8-4131-8358-0f570446a6c2",
                                                      HELP: 100000005})  # fmt: skip
        assert created.status_code == 204, created.text
    rows = client.get("/opportunities", params={"$select": f"{REFERRAL},{HELP}", "$filter": f"{REFERRAL} ne null"})
    assert [(r[REFERRAL], r[HELP]) for r in rows.json()["value"]] == [
        ("b4d321d5-c5d8-4131-8358-0f570446a6c2", 100000005)
    ]

    refused = client.post("/opportunities", json={"name": "Deal", HELP: 7})  # not one of the choice's values
    assert refused.status_code == 400

    sim.clear()
    assert client.get("/opportunities", params={"$select": REFERRAL}).status_code == 400, "clear() uninstalls"


def test_the_metadata_serves_the_connector_columns_and_the_help_labels(
    sim: DataverseSimulator, client: httpx.Client
) -> None:
    sim.install_connector()
    sim.install_connector()  # installing twice is one install
    base = "/EntityDefinitions(LogicalName='lead')/Attributes"
    kinds = {
        r["LogicalName"]: r["AttributeType"]
        for r in client.get(base, params={"$select": "LogicalName,AttributeType"}).json()["value"]
    }
    assert (kinds[REFERRAL], kinds[HELP], kinds["msft_microsoftpartnercenterreferralsync"]) == (
        "String",
        "Picklist",
        "Boolean",
    )
    picklists = client.get(
        f"{base}/{MD}PicklistAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    ).json()["value"]
    [help_column] = [p for p in picklists if p["LogicalName"] == HELP]
    options = [(o["Value"], o["Label"]["UserLocalizedLabel"]["Label"]) for o in help_column["OptionSet"]["Options"]]
    assert options == list(HELP_OPTIONS)
    publishers = client.get("/publishers", params={"$filter": "customizationprefix eq 'msft'"}).json()["value"]
    assert len(publishers) == 1

"""Users and owners: the seeded caller, default ownership, ownerid binds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import (
    GUID_A,
    error_of,
    make_opportunity,
)


def test_whoami_user_is_the_seeded_systemuser(client: httpx.Client, sim: DataverseSimulator):
    who = client.get("/WhoAmI").json()
    assert who["UserId"] == sim.user_id

    response = client.get(
        f"/systemusers({who['UserId']})",
        params={"$select": "fullname,firstname,lastname,internalemailaddress,domainname"},
    )

    assert response.status_code == 200
    user = response.json()
    assert user["fullname"] == "Sandbox Seller"
    assert (user["firstname"], user["lastname"]) == ("Sandbox", "Seller")
    assert user["internalemailaddress"] == "seller@partner.example"
    assert user["domainname"] == "seller@partner.example"
    assert user["systemuserid"] == user["ownerid"] == sim.user_id  # principal inheritance: both keys
    assert [u["systemuserid"] for u in sim.records("systemusers")] == [sim.user_id]  # back after clear()


@pytest.mark.parametrize(
    ("entity_set", "body"),
    [
        ("accounts", {"name": "A"}),
        ("contacts", {"lastname": "C"}),
        ("opportunities", {"name": "O"}),
        ("leads", {"subject": "L"}),
    ],
)
def test_new_rows_are_owned_by_the_caller(
    client: httpx.Client, sim: DataverseSimulator, entity_set: str, body: dict[str, Any]
):
    response = client.post(
        f"/{entity_set}",
        json=body,
        headers={"Prefer": 'return=representation,odata.include-annotations="Microsoft.Dynamics.CRM.*"'},
    )

    assert response.status_code == 201
    row = response.json()
    assert row["_ownerid_value"] == sim.user_id
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "systemuser"
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "ownerid"
    seeded = sim.get(entity_set, sim.insert(entity_set, body))
    assert seeded is not None
    assert seeded["_ownerid_value"] == sim.user_id  # direct inserts too


def test_ownerid_bind_assigns_another_user_and_expands(client: httpx.Client, sim: DataverseSimulator):
    created = client.post(
        "/systemusers",
        json={"firstname": "Other", "lastname": "Seller", "internalemailaddress": "other@partner.example"},
    )
    assert created.status_code == 204
    other = created.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    opportunity_id = make_opportunity(client, **{"ownerid@odata.bind": f"/systemusers({other})"})
    mine = make_opportunity(client)

    expanded = client.get(
        f"/opportunities({opportunity_id})",
        params={
            "$select": "name,_ownerid_value,_owninguser_value",
            "$expand": "owninguser($select=fullname,internalemailaddress)",
        },
    ).json()
    assert expanded["_ownerid_value"] == expanded["_owninguser_value"] == other
    assert expanded["owninguser"]["fullname"] == "Other Seller"
    assert expanded["owninguser"]["internalemailaddress"] == "other@partner.example"
    assert expanded["owninguser"]["systemuserid"] == other

    by_owner = client.get("/opportunities", params={"$filter": f"_ownerid_value eq {other}", "$select": "name"})
    assert [r["opportunityid"] for r in by_owner.json()["value"]] == [opportunity_id]
    by_name = client.get("/opportunities", params={"$filter": "owninguser/fullname eq 'Sandbox Seller'"}).json()
    assert [r["opportunityid"] for r in by_name["value"]] == [mine]

    reassigned = client.patch(
        f"/opportunities({opportunity_id})", json={"ownerid@odata.bind": f"/systemusers({sim.user_id})"}
    )
    assert reassigned.status_code == 204
    reassigned_row = sim.get("opportunities", opportunity_id)
    assert reassigned_row is not None
    assert reassigned_row["_ownerid_value"] == reassigned_row["_owninguser_value"] == sim.user_id


@pytest.mark.parametrize(
    ("entity_set", "body", "status"),
    [
        ("opportunities", {"name": "x", "ownerid@odata.bind": "/accounts(ACCOUNT)"}, 400),  # not a user
        ("opportunities", {"name": "x", "ownerid@odata.bind": f"/systemusers({GUID_A})"}, 404),
        ("opportunities", {"name": "x", "ownerid@odata.bind": None}, 400),  # an owner is required
        ("opportunities", {"name": "x", "OwnerId@odata.bind": "/systemusers(USER)"}, 400),  # case-sensitive
        ("opportunities", {"name": "x", "_ownerid_value": "USER"}, 400),  # lookups are set by bind
        ("opportunities", {"name": "x", "ownerid@odata.bind": f"/teams({GUID_A})"}, 404),  # no such team
        ("opportunities", {"name": "x", "owninguser@odata.bind": "/systemusers(USER)"}, 400),  # read-only
        ("opportunities", {"name": "x", "owningteam@odata.bind": "/teams(USER)"}, 400),  # read-only
        ("cosell_solutions", {"cosell_name": "x", "ownerid@odata.bind": "/systemusers(USER)"}, 400),  # org-owned
    ],
)
def test_bad_owner_is_rejected(
    client: httpx.Client, sim: DataverseSimulator, entity_set: str, body: dict[str, Any], status: int
):
    account = sim.insert("accounts", {"name": "A"})
    payload = {
        k: v.replace("ACCOUNT", account).replace("USER", sim.user_id) if isinstance(v, str) else v
        for k, v in body.items()
    }

    response = client.post(f"/{entity_set}", json=payload)

    assert response.status_code == status
    error_of(response)
    assert sim.records(entity_set) == []


# ----------------------------------------------------------------------------- ownerid is typed principal

OWNER_COLUMNS = "fullname,firstname,lastname,internalemailaddress"


@pytest.mark.parametrize("entity_set", ["accounts", "contacts", "opportunities", "leads"])
def test_ownerid_is_a_principal_so_user_columns_come_through_owninguser(
    client: httpx.Client, sim: DataverseSimulator, entity_set: str
):
    """ownerid's type is principal (systemuser or team), whose only property is ownerid; the user's
    columns are on the owninguser navigation property (entity reference pages, OwnerId / OwningUser)."""
    sim.insert(entity_set, {"name": "x"} if entity_set in ("accounts", "opportunities") else {"lastname": "x"})

    through_owner = client.get(f"/{entity_set}", params={"$expand": f"ownerid($select={OWNER_COLUMNS})"})
    through_user = client.get(f"/{entity_set}", params={"$expand": f"owninguser($select={OWNER_COLUMNS})"})

    assert through_owner.status_code == 400
    assert error_of(through_owner) == {
        "code": "0x80060888",
        "message": "Could not find a property named 'fullname' on type 'Microsoft.Dynamics.CRM.principal'.",
    }
    assert through_user.status_code == 200, through_user.text
    user = through_user.json()["value"][0]["owninguser"]
    assert {k: user[k] for k in OWNER_COLUMNS.split(",")} == {
        "fullname": "Sandbox Seller",
        "firstname": "Sandbox",
        "lastname": "Seller",
        "internalemailaddress": "seller@partner.example",
    }
    assert user["systemuserid"] == sim.user_id


def test_ownerid_expands_to_the_principal_and_filters_by_its_key(client: httpx.Client, sim: DataverseSimulator):
    opportunity = sim.insert("opportunities", {"name": "mine"})

    expanded = client.get(f"/opportunities({opportunity})", params={"$select": "name", "$expand": "ownerid"}).json()
    by_owner = client.get("/opportunities", params={"$filter": f"ownerid/ownerid eq {sim.user_id}"})
    by_owner_name = client.get("/opportunities", params={"$filter": "ownerid/fullname eq 'Sandbox Seller'"})

    assert expanded["ownerid"] == {"@odata.type": "#Microsoft.Dynamics.CRM.systemuser", "ownerid": sim.user_id}
    assert [r["opportunityid"] for r in by_owner.json()["value"]] == [opportunity]
    assert by_owner_name.status_code == 400
    assert "on type 'Microsoft.Dynamics.CRM.principal'" in error_of(by_owner_name)["message"]


def test_a_team_can_own_a_row_and_the_owning_columns_follow(client: httpx.Client, sim: DataverseSimulator):
    team = sim.insert("teams", {"name": "Partner sellers"})
    opportunity = make_opportunity(client)

    assigned = client.patch(
        f"/opportunities({opportunity})",
        json={"ownerid@odata.bind": f"/teams({team})"},
        headers={"Prefer": 'return=representation,odata.include-annotations="*"'},
        params={
            "$select": "_ownerid_value,_owninguser_value,_owningteam_value",
            "$expand": "ownerid,owningteam($select=name),owninguser($select=fullname)",
        },
    )
    back = client.patch(f"/opportunities({opportunity})", json={"ownerid@odata.bind": f"/systemusers({sim.user_id})"})

    assert assigned.status_code == 200, assigned.text
    row = assigned.json()
    assert (row["_ownerid_value"], row["_owningteam_value"], row["_owninguser_value"]) == (team, team, None)
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "team"
    assert row["ownerid"] == {"@odata.type": "#Microsoft.Dynamics.CRM.team", "ownerid": team}
    assert row["owningteam"]["name"] == "Partner sellers"
    assert row["owninguser"] is None
    assert back.status_code == 204
    stored = sim.get("opportunities", opportunity)
    assert stored is not None
    assert (stored["_owninguser_value"], stored["_owningteam_value"]) == (sim.user_id, None)

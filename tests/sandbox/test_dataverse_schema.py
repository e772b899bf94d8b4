"""The org's schema over real HTTP: documented lengths and choices, case-sensitive names, bare vs provisioned."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import SOLUTIONS, error_of, make_opportunity

# (entity set, column, MaxLength from the entity reference, other columns the create needs)
LENGTHS: list[tuple[str, str, int, dict[str, Any]]] = [
    ("accounts", "name", 160, {}),
    ("accounts", "address1_postalcode", 20, {}),
    ("accounts", "description", 2000, {}),  # Memo
    ("contacts", "firstname", 50, {}),
    ("contacts", "lastname", 50, {}),
    ("contacts", "emailaddress1", 100, {}),
    ("contacts", "telephone1", 50, {}),
    ("leads", "subject", 300, {}),
    ("leads", "companyname", 100, {}),
    ("leads", "mobilephone", 20, {}),
    ("leads", "address1_name", 100, {}),  # 200 on account: the tables differ
    ("opportunities", "name", 300, {}),
    ("opportunities", "description", 2000, {}),
    ("opportunities", "stepname", 200, {}),
    ("opportunities", "cosell_referralid", 100, {}),
    ("opportunities", "cosell_audit", 4000, {}),  # custom Memo
    ("leads", "cosell_referrallink", 200, {}),
    ("systemusers", "firstname", 256, {}),
    ("systemusers", "internalemailaddress", 100, {}),
    ("teams", "name", 160, {}),
    ("transactioncurrencies", "isocurrencycode", 5, {"currencyname": "x"}),
    ("cosell_solutions", "cosell_name", 100, {}),
    ("opportunitycloses", "subject", 200, {}),
]


@pytest.mark.parametrize(("entity_set", "column", "max_length", "extra"), LENGTHS)
def test_strings_longer_than_their_column_are_refused(
    client: httpx.Client, sim: DataverseSimulator, entity_set: str, column: str, max_length: int, extra: dict[str, Any]
):
    before = len(sim.records(entity_set))
    fits = client.post(f"/{entity_set}", json={**extra, column: "x" * max_length})
    too_long = client.post(f"/{entity_set}", json={**extra, column: "x" * (max_length + 1)})

    assert fits.status_code == 204, fits.text
    assert too_long.status_code == 400
    error = error_of(too_long)
    assert error["code"] == "0x80044331"
    logical = sim.schema.by_set[entity_set].logical
    assert error["message"] == (
        f"A validation error occurred. The length of the '{column}' attribute of the '{logical}' entity "
        f"exceeded the maximum allowed length of '{max_length}'."
    )
    assert len(sim.records(entity_set)) == before + 1


def test_updates_are_length_checked_too(client: httpx.Client, sim: DataverseSimulator):
    account = sim.insert("accounts", {"name": "Contoso"})

    response = client.patch(f"/accounts({account})", json={"name": "x" * 161}, headers={"If-Match": "*"})

    assert response.status_code == 400
    assert "maximum allowed length of '160'" in error_of(response)["message"]
    assert sim.get("accounts", account)["name"] == "Contoso"  # type: ignore[index]


@pytest.mark.parametrize(
    ("entity_set", "body", "accepted"),
    [
        ("opportunities", {"name": "x", "cosell_helpneeded": 100000006}, "100000000,100000001,100000002"),
        ("opportunities", {"name": "x", "salesstage": 4}, "0,1,2,3"),
        ("accounts", {"name": "x", "industrycode": 34}, "1,2,3"),
        ("leads", {"subject": "x", "leadsourcecode": 0}, "1,2,3"),
    ],
)
def test_choice_values_outside_the_option_set_are_refused(
    client: httpx.Client, sim: DataverseSimulator, entity_set: str, body: dict[str, Any], accepted: str
):
    response = client.post(f"/{entity_set}", json=body)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "0x80044331"
    assert "is outside the valid range. Accepted Values: " + accepted in error["message"]
    assert sim.records(entity_set) == []


def test_choice_and_boolean_values_and_defaults(client: httpx.Client):
    created = client.post(
        "/opportunities",
        json={"name": "x", "cosell_helpneeded": 100000005, "salesstage": 2},
        headers={"Prefer": "return=representation"},
        params={"$select": "cosell_helpneeded,salesstage,cosell_syncwithpartnercenter,cosell_visible"},
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["cosell_helpneeded"], body["salesstage"]) == (100000005, 2)
    # Two-option columns get their DefaultValue (No) on create, not null.
    assert (body["cosell_syncwithpartnercenter"], body["cosell_visible"]) == (False, False)


def test_custom_lookup_binds_only_through_its_schema_name_navigation(client: httpx.Client, sim: DataverseSimulator):
    opportunity = make_opportunity(client)

    lower = client.post(
        "/cosell_solutions",
        json={"cosell_name": "x", "cosell_opportunityid@odata.bind": f"/opportunities({opportunity})"},
    )
    right = client.post(
        "/cosell_solutions",
        json={"cosell_name": "Azure", "cosell_OpportunityId@odata.bind": f"/opportunities({opportunity})"},
        headers={"Prefer": 'return=representation,odata.include-annotations="Microsoft.Dynamics.CRM.*"'},
    )

    assert lower.status_code == 400
    error = error_of(lower)
    assert error["code"] == "0x80048d19"
    assert error["message"].startswith("An undeclared property 'cosell_opportunityid' which only has property")
    assert right.status_code == 201, right.text
    row = right.json()
    assert row["_cosell_opportunityid_value"] == opportunity
    assert row["_cosell_opportunityid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == (
        "cosell_OpportunityId"
    )
    assert row["_cosell_opportunityid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "opportunity"
    by_parent = client.get("/cosell_solutions", params={"$filter": f"_cosell_opportunityid_value eq {opportunity}"})
    assert [r["cosell_name"] for r in by_parent.json()["value"]] == ["Azure"]
    through_nav = client.get("/cosell_solutions", params={"$filter": "cosell_OpportunityId/name eq 'Deal'"})
    assert [r["cosell_name"] for r in through_nav.json()["value"]] == ["Azure"]
    assert len(sim.records("cosell_solutions")) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"$select": "Name"},  # logical names are lower case
        {"$select": "cosell_ReferralId"},
        {"$filter": "Name eq 'x'"},
        {"$orderby": "EstimatedValue desc"},
        {"$expand": "ParentAccountId"},
        {"$expand": "parentaccountid($select=Name)"},
        {"$expand": "owninguser($select=nosuchcolumn)"},
        {"$filter": "ParentAccountId/name eq 'x'"},
        {"$filter": "parentaccountid/Name eq 'x'"},
        {"$filter": "parentaccountid/nosuchcolumn eq 'x'"},
        {"$expand": f"{SOLUTIONS}($orderby=cosell_Name)"},
    ],
)
def test_wrongly_cased_or_unknown_names_are_refused_in_queries(client: httpx.Client, params: dict[str, str]):
    response = client.get("/opportunities", params=params)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "0x80060888"
    assert error["message"].startswith("Could not find a property named ")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"Name": "x"}, "The property 'Name' does not exist on type 'Microsoft.Dynamics.CRM.opportunity'"),
        ({"name": "x", "ParentAccountId@odata.bind": "/accounts(ACCOUNT)"}, "An undeclared property 'ParentAccountId'"),
        ({"name": "x", "customerid@odata.bind": "/accounts(ACCOUNT)"}, "An undeclared property 'customerid'"),
        ({"name": "x", "fullname": "x"}, "The property 'fullname' does not exist"),  # a contact/lead column
    ],
)
def test_wrongly_cased_or_unknown_names_are_refused_in_bodies(
    client: httpx.Client, sim: DataverseSimulator, body: dict[str, str], fragment: str
):
    account = sim.insert("accounts", {"name": "A"})
    payload = {k: v.replace("ACCOUNT", account) for k, v in body.items()}

    response = client.post("/opportunities", json=payload)

    assert response.status_code == 400
    assert fragment in error_of(response)["message"]
    assert sim.records("opportunities") == []


def test_standard_relationships_give_collection_valued_navigation_properties(
    client: httpx.Client, sim: DataverseSimulator
):
    account = sim.insert("accounts", {"name": "Fabrikam"})
    other = sim.insert("accounts", {"name": "Other"})
    ada = sim.insert("contacts", {"lastname": "Ada", "parentcustomerid_account@odata.bind": f"/accounts({account})"})
    sim.insert("contacts", {"lastname": "Elsewhere", "parentcustomerid_account@odata.bind": f"/accounts({other})"})
    deal = sim.insert("opportunities", {"name": "Deal", "parentaccountid@odata.bind": f"/accounts({account})"})

    response = client.get(
        f"/accounts({account})",
        params={
            "$select": "name",
            "$expand": "contact_customer_accounts($select=lastname),opportunity_parent_account($select=name)",
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert [(c["contactid"], c["lastname"]) for c in body["contact_customer_accounts"]] == [(ada, "Ada")]
    assert [(o["opportunityid"], o["name"]) for o in body["opportunity_parent_account"]] == [(deal, "Deal")]


def test_unknown_entity_set_names_the_segment(client: httpx.Client):
    response = client.get("/cosell_solution")  # the logical name, not the entity set

    assert response.status_code == 404
    assert error_of(response) == {
        "code": "0x80060888",
        "message": "Resource not found for the segment 'cosell_solution'.",
    }


# ----------------------------------------------------------------------------- a bare org


def test_bare_org_has_no_cosell_columns(bare: httpx.Client, client: httpx.Client):
    bare_select = bare.get("/opportunities", params={"$select": "name,cosell_referralid"})
    provisioned_select = client.get("/opportunities", params={"$select": "name,cosell_referralid"})
    bare_create = bare.post("/leads", json={"subject": "x", "cosell_syncwithpartnercenter": True})

    assert provisioned_select.status_code == 200
    assert bare_select.status_code == 400
    assert error_of(bare_select)["message"] == (
        "Could not find a property named 'cosell_referralid' on type 'Microsoft.Dynamics.CRM.opportunity'."
    )
    assert bare_create.status_code == 400
    assert "The property 'cosell_syncwithpartnercenter' does not exist" in error_of(bare_create)["message"]
    created = bare.post("/leads", json={"subject": "plain"}, headers={"Prefer": "return=representation"})
    assert created.status_code == 201
    assert not any(name.startswith("cosell_") for name in created.json())


def test_bare_org_has_no_solution_table_and_no_referral_key(bare: httpx.Client):
    table = bare.get("/cosell_solutions")
    upsert = bare.patch("/opportunities(cosell_referralid='REF-1')", json={"name": "x"})
    expand = bare.get("/opportunities", params={"$expand": SOLUTIONS})

    assert table.status_code == 404
    assert error_of(table)["message"] == "Resource not found for the segment 'cosell_solutions'."
    assert upsert.status_code == 400
    assert "The key in the request URI is not valid" in error_of(upsert)["message"]
    assert expand.status_code == 400
    assert error_of(expand)["message"].startswith(f"Could not find a property named '{SOLUTIONS}'")
    assert bare.get("/opportunities").json()["value"] == []


def test_schema_option_is_checked() -> None:
    with pytest.raises(ValueError, match="schema must be 'bare' or 'provisioned'"):
        DataverseSimulator(schema="half")  # type: ignore[arg-type]

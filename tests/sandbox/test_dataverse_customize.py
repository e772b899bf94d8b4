"""The metadata Web API's create side over real HTTP, on a bare org: what is created, what is refused."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from sandbox.sims.dataverse import DataverseSimulator
from sandbox.sims.dataverse.schema import metadata_id
from tests.sandbox.dataverse_provisioning import (
    NS,
    SOLUTION_HEADER,
    create_publisher,
    label,
    required_level,
)
from tests.sandbox.dataverse_support import error_of

OPPORTUNITY = "/EntityDefinitions(LogicalName='opportunity')"


def string_column(schema_name: str, max_length: int = 100, **extra: Any) -> dict[str, Any]:
    """The documented StringAttributeMetadata body (create-update-column-definitions-using-web-api.md)."""
    return {
        "@odata.type": f"{NS}.StringAttributeMetadata",
        "AttributeType": "String",
        "AttributeTypeName": {"Value": "StringType"},
        "SchemaName": schema_name,
        "DisplayName": label(schema_name.split("_", 1)[-1]),
        "RequiredLevel": required_level(),
        "MaxLength": max_length,
        "FormatName": {"Value": "Text"},
        **extra,
    }


def table_body(schema_name: str, ownership: str = "OrganizationOwned", **extra: Any) -> dict[str, Any]:
    return {
        "@odata.type": f"{NS}.EntityMetadata",
        "SchemaName": schema_name,
        "DisplayName": label("Thing"),
        "DisplayCollectionName": label("Things"),
        "OwnershipType": ownership,
        "IsActivity": False,
        "HasActivities": False,
        "HasNotes": False,
        "Attributes": [string_column(schema_name.split("_")[0] + "_Name", IsPrimaryName=True)],
        **extra,
    }


def post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    return client.post(path, json=body, headers=SOLUTION_HEADER)


@pytest.fixture
def org(bare: httpx.Client) -> httpx.Client:
    """The bare org with the sync's publisher (prefix cosell) and solution created, as an app does first."""
    create_publisher(bare)
    return bare


# ----------------------------------------------------------------------------- columns


def test_string_memo_boolean_picklist_and_money_columns_are_created_and_served(org: httpx.Client):
    bodies = [
        string_column("cosell_ReferralLink", 200, FormatName={"Value": "Url"}),
        {
            "@odata.type": f"{NS}.MemoAttributeMetadata",
            "SchemaName": "cosell_Audit",
            "DisplayName": label("Audit"),
            "MaxLength": 4000,
            "Format": "TextArea",
        },
        {
            "@odata.type": f"{NS}.BooleanAttributeMetadata",
            "SchemaName": "cosell_Visible",
            "DisplayName": label("Visible"),
            "DefaultValue": False,
            "OptionSet": {
                "TrueOption": {"Value": 1, "Label": label("Shown")},
                "FalseOption": {"Value": 0, "Label": label("Hidden")},
                "OptionSetType": "Boolean",
            },
        },
        {
            "@odata.type": f"{NS}.PicklistAttributeMetadata",
            "SchemaName": "cosell_HelpNeeded",
            "DisplayName": label("Help Needed"),
            "OptionSet": {
                "@odata.type": f"{NS}.OptionSetMetadata",
                "IsGlobal": False,
                "OptionSetType": "Picklist",
                "Options": [
                    {"Value": None, "Label": label("GeneralOrOther")},  # the service assigns it
                    {"Value": 100000005, "Label": label("WorkloadSpecificValueProposition")},
                ],
            },
        },
        {"@odata.type": f"{NS}.MoneyAttributeMetadata", "SchemaName": "cosell_DealSize", "PrecisionSource": 2},
    ]

    responses = [post(org, f"{OPPORTUNITY}/Attributes", body) for body in bodies]

    for response, logical in zip(
        responses,
        ("cosell_referrallink", "cosell_audit", "cosell_visible", "cosell_helpneeded", "cosell_dealsize"),
        strict=True,
    ):
        assert response.status_code == 204, response.text
        assert response.content == b""
        served = org.get(f"{OPPORTUNITY}/Attributes(LogicalName='{logical}')").json()
        assert response.headers["OData-EntityId"].endswith(
            f"/api/data/v9.2/EntityDefinitions(LogicalName='opportunity')/Attributes({served['MetadataId']})"
        )
        assert served["IsCustomAttribute"] is True
    link = org.get(f"{OPPORTUNITY}/Attributes(LogicalName='cosell_referrallink')").json()
    assert (link["MaxLength"], link["FormatName"], link["DisplayName"]["UserLocalizedLabel"]["Label"]) == (
        200,
        {"Value": "Url"},
        "ReferralLink",
    )
    visible = org.get(
        f"{OPPORTUNITY}/Attributes(LogicalName='cosell_visible')/{NS}.BooleanAttributeMetadata",
        params={"$select": "DefaultValue", "$expand": "OptionSet($select=TrueOption,FalseOption)"},
    ).json()
    assert visible["DefaultValue"] is False
    assert visible["OptionSet"]["TrueOption"]["Label"]["UserLocalizedLabel"]["Label"] == "Shown"
    choice = org.get(
        f"{OPPORTUNITY}/Attributes(LogicalName='cosell_helpneeded')/{NS}.PicklistAttributeMetadata",
        params={"$expand": "OptionSet($select=Options)"},
    ).json()
    assert [o["Value"] for o in choice["OptionSet"]["Options"]] == [100000000, 100000005]  # publisher prefix 10000
    # The records API enforces the new columns at once (creations need no publishing).
    good = org.post(
        "/opportunities",
        json={"name": "x", "cosell_referrallink": "https://x", "cosell_helpneeded": 100000000, "cosell_dealsize": 5},
        headers={"Prefer": "return=representation"},
        params={"$select": "cosell_visible,cosell_audit"},
    )
    assert good.status_code == 201, good.text
    assert good.json()["cosell_visible"] is False  # DefaultValue applied on create
    too_long = org.post("/opportunities", json={"name": "x", "cosell_referrallink": "x" * 201})
    bad_choice = org.post("/opportunities", json={"name": "x", "cosell_helpneeded": 100000001})
    assert (too_long.status_code, bad_choice.status_code) == (400, 400)
    assert "maximum allowed length of '200'" in error_of(too_long)["message"]
    assert "Accepted Values: 100000000,100000005" in error_of(bad_choice)["message"]


def test_a_column_that_exists_is_refused(org: httpx.Client, bare_sim: DataverseSimulator):
    first = post(org, f"{OPPORTUNITY}/Attributes", string_column("cosell_ReferralId"))
    again = post(org, f"{OPPORTUNITY}/Attributes", string_column("cosell_REFERRALID", 50))
    on_lead = post(org, "/EntityDefinitions(LogicalName='lead')/Attributes", string_column("cosell_ReferralId"))

    assert first.status_code == 204, first.text
    assert again.status_code == 400
    assert error_of(again) == {
        "code": "0x80047013",
        "message": "An attribute with the name cosell_REFERRALID already exists on entity opportunity.",
    }
    assert on_lead.status_code == 204  # names are unique per table
    assert bare_sim.schema.entity("opportunity").columns["cosell_referralid"].max_length == 100


@pytest.mark.parametrize(
    ("schema_name", "headers", "code", "fragment"),
    [
        ("ReferralId", SOLUTION_HEADER, "0x80048062", "Custom attribute names must start with a valid customization"),
        ("contoso_ReferralId", SOLUTION_HEADER, "0x80048062", "start with a valid customization prefix"),
        ("new_ReferralId", SOLUTION_HEADER, "0x80048062", "(CosellSync: cosell_)"),  # not the solution's publisher
        ("cosell_", SOLUTION_HEADER, "0x80048062", "start with a valid customization prefix"),
        ("cosell_Referral Id", SOLUTION_HEADER, "0x80040203", "Only characters within the ranges [A-Z], [a-z] or"),
        ("cosell_Referral-Id", {}, "0x80040203", "The first character may only be in the ranges"),
        ("9cosell_x", {}, "0x80040203", "Invalid name for attribute 9cosell_x."),
    ],
)
def test_names_without_a_publisher_prefix_or_with_invalid_characters_are_refused(
    org: httpx.Client, schema_name: str, headers: dict[str, str], code: str, fragment: str
):
    response = org.post(f"{OPPORTUNITY}/Attributes", json=string_column(schema_name), headers=headers)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == code
    assert fragment in error["message"]
    assert org.get(f"{OPPORTUNITY}/Attributes", params={"$filter": "IsCustomAttribute eq true"}).json()["value"] == []


def test_a_bare_org_takes_cosell_names_only_once_the_publisher_exists(bare: httpx.Client):
    before = bare.post(f"{OPPORTUNITY}/Attributes", json=string_column("cosell_ReferralId"))
    default_prefix = bare.post(f"{OPPORTUNITY}/Attributes", json=string_column("new_Legacy"))
    unknown_solution = bare.post(f"{OPPORTUNITY}/Attributes", json=string_column("new_Other"), headers=SOLUTION_HEADER)
    create_publisher(bare)
    after = bare.post(f"{OPPORTUNITY}/Attributes", json=string_column("cosell_ReferralId"))

    assert before.status_code == 400
    assert error_of(before)["message"].endswith("the publisher of the solution (Default: new_).")
    assert default_prefix.status_code == 204  # the default publisher's prefix
    assert unknown_solution.status_code == 404
    assert error_of(unknown_solution)["message"] == "A solution with the unique name 'CosellSync' does not exist."
    assert after.status_code == 204, after.text


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"@odata.type": f"{NS}.MultiSelectPicklistAttributeMetadata"}, 400, "not supported by this simulator"),
        ({"@odata.type": f"{NS}.LookupAttributeMetadata"}, 400, "POST RelationshipDefinitions"),
        ({"@odata.type": "Contoso.StringAttributeMetadata"}, 400, "could not be resolved by the model"),
        ({"@odata.type": None}, 400, "'@odata.type' of the attribute is required"),
        ({"Maxlength": 10}, 400, f"The property 'Maxlength' does not exist on type '{NS}.StringAttributeMetadata'"),
        ({"MaxLength": 4001}, 400, "outside the valid range 1 to 4000"),
        ({"MaxLength": "100"}, 400, "Cannot convert the literal '100' to the expected type 'Edm.Int32'"),
        ({"FormatName": {"Value": "Website"}}, 400, "The value 'Website' of 'FormatName' is not valid"),
        ({"RequiredLevel": required_level("SystemRequired")}, 400, "of 'RequiredLevel' is not valid"),
        ({"DisplayName": {"LocalizedLabels": [{"Label": "x"}]}}, 400, "expected type 'Edm.Int32'"),
        ({"IsPrimaryName": True}, 400, "An entity can only have one primary name attribute."),
        ({"AttributeType": "Memo"}, 400, "does not match the type"),
    ],
)
def test_column_bodies_the_service_would_not_take_are_refused(
    org: httpx.Client, body: dict[str, Any], status: int, fragment: str
):
    payload = {**string_column("cosell_Thing"), **body}
    payload = {k: v for k, v in payload.items() if v is not None}

    response = post(org, f"{OPPORTUNITY}/Attributes", payload)

    assert response.status_code == status
    assert fragment in error_of(response)["message"]


def test_columns_go_only_on_customizable_tables_that_exist(org: httpx.Client):
    missing = post(org, "/EntityDefinitions(LogicalName='cosell_thing')/Attributes", string_column("cosell_X"))
    system = post(org, "/EntityDefinitions(LogicalName='publisher')/Attributes", string_column("cosell_X"))
    wrong_nav = post(org, f"{OPPORTUNITY}/ManyToOneRelationships", {})

    assert missing.status_code == 404
    assert error_of(missing)["code"] == "0x80041102"
    assert system.status_code == 400
    assert error_of(system) == {"code": "0x80047008", "message": "The specified entity is not customizable"}
    assert wrong_nav.status_code == 405


# ----------------------------------------------------------------------------- tables


def test_a_table_is_created_with_its_entity_set_primary_columns_and_routes(org: httpx.Client):
    response = post(org, "/EntityDefinitions", table_body("cosell_Solution"))

    assert response.status_code == 204, response.text
    definition = org.get("/EntityDefinitions(LogicalName='cosell_solution')").json()
    assert response.headers["OData-EntityId"].endswith(f"/EntityDefinitions({definition['MetadataId']})")
    assert {
        k: definition[k] for k in ("SchemaName", "EntitySetName", "PrimaryIdAttribute", "PrimaryNameAttribute")
    } == {
        "SchemaName": "cosell_Solution",
        "EntitySetName": "cosell_solutions",
        "PrimaryIdAttribute": "cosell_solutionid",
        "PrimaryNameAttribute": "cosell_name",
    }
    assert (definition["OwnershipType"], definition["IsCustomEntity"], definition["HasNotes"]) == (
        "OrganizationOwned",
        True,
        False,
    )
    assert definition["DisplayCollectionName"]["UserLocalizedLabel"]["Label"] == "Things"
    columns = org.get("/EntityDefinitions(LogicalName='cosell_solution')/Attributes", params={"$select": "LogicalName"})
    assert {c["LogicalName"] for c in columns.json()["value"]} == {
        "cosell_solutionid",
        "cosell_name",
        "statecode",
        "statuscode",
        "createdon",
        "modifiedon",
        "versionnumber",
    }
    created = org.post("/cosell_solutions", json={"cosell_name": "Azure"}, headers={"Prefer": "return=representation"})
    assert created.status_code == 201, created.text
    assert (created.json()["statecode"], created.json()["statuscode"]) == (0, 1)
    assert org.get("/cosell_solutions").json()["value"][0]["cosell_name"] == "Azure"


def test_a_user_owned_table_gets_owner_columns_and_the_derived_plural(org: httpx.Client, bare_sim: DataverseSimulator):
    categories = post(org, "/EntityDefinitions", table_body("cosell_Category", "UserOwned", HasActivities=True))
    boxes = post(org, "/EntityDefinitions", table_body("cosell_Box", EntitySetName="cosell_crates"))

    assert (categories.status_code, boxes.status_code) == (204, 204), categories.text + boxes.text
    sets = org.get("/EntityDefinitions", params={"$select": "LogicalName,EntitySetName,HasActivities"}).json()["value"]
    by_name = {s["LogicalName"]: (s["EntitySetName"], s["HasActivities"]) for s in sets}
    assert by_name["cosell_category"] == ("cosell_categories", True)
    assert by_name["cosell_box"] == ("cosell_crates", False)
    row = org.post("/cosell_categories", json={"cosell_name": "A"}, headers={"Prefer": "return=representation"})
    assert row.status_code == 201, row.text
    assert row.json()["_ownerid_value"] == bare_sim.user_id  # the caller owns what it creates


@pytest.mark.parametrize(
    ("change", "status", "code", "fragment"),
    [
        ({"SchemaName": "cosell_Solution"}, 400, "0x8004700b", "An entity with the specified name already exists."),
        ({"SchemaName": "Solution2"}, 400, "0x80048062", "Custom entity names must start with a valid customization"),
        ({"EntitySetName": "solutions"}, 400, "0x8006089c", "must start with a valid customization prefix"),
        ({"EntitySetName": "cosell_solutions"}, 400, "0x8006089b", "entity set name cosell_solutions already exists"),
        ({"Attributes": []}, 400, "0x80044355", "PrimaryName attribute not found for Entity: cosell_Other"),
        ({"OwnershipType": "BusinessOwned"}, 400, "0x8004700d", "ownership type mask is not valid"),
        ({"DisplayCollectionName": None}, 400, "0x80040203", "'DisplayCollectionName' is required"),
        ({"IsActivity": True}, 400, "0x80040203", "not supported by this simulator"),
    ],
)
def test_table_definitions_the_service_would_not_take_are_refused(
    org: httpx.Client, change: dict[str, Any], status: int, code: str, fragment: str
):
    assert post(org, "/EntityDefinitions", table_body("cosell_Solution")).status_code == 204
    body = {**table_body("cosell_Other"), **change}
    body = {k: v for k, v in body.items() if v is not None}

    response = post(org, "/EntityDefinitions", body)

    assert response.status_code == status
    error = error_of(response)
    assert (error["code"], fragment in error["message"]) == (code, True), error


# ----------------------------------------------------------------------------- relationships


def _relationship(**extra: Any) -> dict[str, Any]:
    return {
        "@odata.type": f"{NS}.OneToManyRelationshipMetadata",
        "SchemaName": "cosell_opportunity_cosell_solution_OpportunityId",
        "ReferencedEntity": "opportunity",
        "ReferencedAttribute": "opportunityid",
        "ReferencingEntity": "cosell_solution",
        "CascadeConfiguration": {"Assign": "NoCascade", "Delete": "RemoveLink", "Share": "NoCascade"},
        "Lookup": {
            "@odata.type": f"{NS}.LookupAttributeMetadata",
            "AttributeType": "Lookup",
            "AttributeTypeName": {"Value": "LookupType"},
            "SchemaName": "cosell_OpportunityId",
            "DisplayName": label("Opportunity"),
            "RequiredLevel": required_level(),
        },
        **extra,
    }


def test_a_relationship_creates_the_lookup_and_navigation_properties_the_records_api_uses(org: httpx.Client):
    assert post(org, "/EntityDefinitions", table_body("cosell_Solution")).status_code == 204

    response = post(org, "/RelationshipDefinitions", _relationship())

    assert response.status_code == 204, response.text
    relationship = org.get(
        "/RelationshipDefinitions(SchemaName='cosell_opportunity_cosell_solution_OpportunityId')"
    ).json()
    assert response.headers["OData-EntityId"].endswith(f"/RelationshipDefinitions({relationship['MetadataId']})")
    assert {k: relationship[k] for k in relationship if "Navigation" in k or k.startswith("Referenc")} == {
        "ReferencedEntity": "opportunity",
        "ReferencedAttribute": "opportunityid",
        "ReferencingEntity": "cosell_solution",
        "ReferencingAttribute": "cosell_opportunityid",
        "ReferencedEntityNavigationPropertyName": "cosell_opportunity_cosell_solution_OpportunityId",
        "ReferencingEntityNavigationPropertyName": "cosell_OpportunityId",
    }
    lookup = org.get("/EntityDefinitions(LogicalName='cosell_solution')/Attributes(LogicalName='cosell_opportunityid')")
    assert (lookup.json()["AttributeType"], lookup.json()["Targets"]) == ("Lookup", ["opportunity"])
    deal = org.post("/opportunities", json={"name": "Deal"}, headers={"Prefer": "return=representation"})
    opportunity = deal.json()["opportunityid"]
    lower = org.post(
        "/cosell_solutions",
        json={"cosell_name": "x", "cosell_opportunityid@odata.bind": f"/opportunities({opportunity})"},
    )
    bound = org.post(
        "/cosell_solutions",
        json={"cosell_name": "Azure", "cosell_OpportunityId@odata.bind": f"/opportunities({opportunity})"},
    )
    assert lower.status_code == 400
    assert bound.status_code == 204, bound.text
    expanded = org.get(
        f"/opportunities({opportunity})",
        params={"$select": "name", "$expand": "cosell_opportunity_cosell_solution_OpportunityId($select=cosell_name)"},
    ).json()
    assert [s["cosell_name"] for s in expanded["cosell_opportunity_cosell_solution_OpportunityId"]] == ["Azure"]
    via_nav = org.get("/cosell_solutions", params={"$filter": "cosell_OpportunityId/name eq 'Deal'"}).json()["value"]
    assert [s["cosell_name"] for s in via_nav] == ["Azure"]


@pytest.mark.parametrize(
    ("change", "status", "code", "fragment"),
    [
        ({}, 400, "0x8004432b", "A relationship with the specified name already exists."),
        ({"SchemaName": "cosell_other", "Lookup": None}, 400, "0x80040203", "'Lookup' is required"),
        ({"SchemaName": "cosell_other"}, 400, "0x80047013", "cosell_OpportunityId already exists"),
        ({"SchemaName": "opportunity_solutions"}, 400, "0x80048062", "Custom relationship names must start with"),
        ({"SchemaName": "cosell_other", "ReferencedEntity": "nothing"}, 404, "0x80041102", "name = 'nothing'"),
        ({"SchemaName": "cosell_other", "ReferencingEntity": "solution"}, 400, "0x80047008", "not customizable"),
        ({"@odata.type": None}, 400, "0x80040203", "You must include the @odata.type"),
        ({"@odata.type": f"{NS}.ManyToManyRelationshipMetadata"}, 400, "0x80040203", "not supported by this simulator"),
        ({"CascadeConfiguration": {"Delete": "NoCascade"}}, 400, "0x80048204", "The cascade link type is not valid"),
    ],
)
def test_relationship_definitions_the_service_would_not_take_are_refused(
    org: httpx.Client, change: dict[str, Any], status: int, code: str, fragment: str
):
    assert post(org, "/EntityDefinitions", table_body("cosell_Solution")).status_code == 204
    assert post(org, "/RelationshipDefinitions", _relationship()).status_code == 204
    body = {k: v for k, v in {**_relationship(), **change}.items() if v is not None}

    response = post(org, "/RelationshipDefinitions", body)

    assert response.status_code == status
    error = error_of(response)
    assert (error["code"], fragment in error["message"]) == (code, True), error


# ----------------------------------------------------------------------------- alternate keys


def _with_referral_column(org: httpx.Client) -> None:
    assert post(org, f"{OPPORTUNITY}/Attributes", string_column("cosell_ReferralId")).status_code == 204


def test_a_key_is_pending_then_active_and_upserts_by_it_wait_for_it(org: httpx.Client):
    _with_referral_column(org)
    key = {
        "SchemaName": "cosell_ReferralId_Key",
        "DisplayName": label("Referral"),
        "KeyAttributes": ["cosell_referralid"],
    }

    created = post(org, f"{OPPORTUNITY}/Keys", key)
    pending = org.get(f"{OPPORTUNITY}/Keys(LogicalName='cosell_referralid_key')").json()
    early = org.patch("/opportunities(cosell_referralid='R-1')", json={"name": "x"})
    time.sleep(0.35)  # the bare org's key_index_seconds is 0.3
    active = org.get(f"{OPPORTUNITY}/Keys", params={"$select": "LogicalName,EntityKeyIndexStatus"}).json()["value"]
    upsert = org.patch("/opportunities(cosell_referralid='R-1')", json={"name": "x"})
    duplicate = org.post("/opportunities", json={"name": "y", "cosell_referralid": "r-1"})

    assert created.status_code == 204, created.text
    assert created.headers["OData-EntityId"].endswith(
        f"EntityDefinitions(LogicalName='opportunity')/Keys({pending['MetadataId']})"
    )
    assert (pending["EntityKeyIndexStatus"], pending["KeyAttributes"]) == ("Pending", ["cosell_referralid"])
    assert early.status_code == 400
    assert error_of(early)["message"].startswith("The key in the request URI is not valid for resource")
    assert [(k["LogicalName"], k["EntityKeyIndexStatus"]) for k in active] == [("cosell_referralid_key", "Active")]
    assert upsert.status_code == 204, upsert.text
    assert duplicate.status_code == 412
    assert error_of(duplicate)["code"] == "0x80060892"


def test_a_key_over_duplicate_values_fails(org: httpx.Client, bare_url: str):
    _with_referral_column(org)
    for name in ("a", "b"):
        assert org.post("/opportunities", json={"name": name, "cosell_referralid": "SAME"}).status_code == 204
    created = post(org, f"{OPPORTUNITY}/Keys", key_body_for("cosell_ReferralId_Key", "cosell_referralid"))

    control = org.post(f"{bare_url}/_sim/key-index", json={"complete": True})
    keys = org.get(f"{OPPORTUNITY}/Keys", params={"$select": "EntityKeyIndexStatus"}).json()["value"]
    upsert = org.patch("/opportunities(cosell_referralid='SAME')", json={"name": "x"})

    assert created.status_code == 204
    assert [(k["entity"], k["key"], k["status"]) for k in control.json()["keys"]] == [
        ("opportunity", "cosell_referralid_key", "Failed")
    ]
    assert [k["EntityKeyIndexStatus"] for k in keys] == ["Failed"]
    assert upsert.status_code == 400  # a Failed key never addresses records


def key_body_for(schema_name: str, *columns: str) -> dict[str, Any]:
    return {"SchemaName": schema_name, "DisplayName": label(schema_name), "KeyAttributes": list(columns)}


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (
            key_body_for("cosell_ReferralId_Key", "name"),
            "0x80060893",
            "An entity key with the name cosell_ReferralId_Key",
        ),
        (key_body_for("cosell_Other", "cosell_referralid"), "0x80060894", "with the selected attributes already"),
        (key_body_for("cosell_Desc", "description"), "0x8006088f", "attribute description of type Memo cannot"),
        (key_body_for("cosell_Nope", "nosuchcolumn"), "0x8005e009", "Attribute nosuchcolumn cannot be found"),
        (key_body_for("ReferralKey", "name"), "0x80048062", "Custom entity key names must start with"),
        ({"SchemaName": "cosell_X"}, "0x80040203", "'KeyAttributes' is required"),
        ({**key_body_for("cosell_X", "name"), "KeyAttribute": ["name"]}, "0x80048d19", "'KeyAttribute' does not exist"),
    ],
)
def test_key_definitions_the_service_would_not_take_are_refused(
    org: httpx.Client, body: dict[str, Any], code: str, fragment: str
):
    _with_referral_column(org)
    first = post(org, f"{OPPORTUNITY}/Keys", key_body_for("cosell_ReferralId_Key", "cosell_referralid"))
    assert first.status_code == 204

    response = post(org, f"{OPPORTUNITY}/Keys", body)

    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], fragment in error["message"]) == (code, True), error


# ----------------------------------------------------------------------------- choices and publishing


def test_a_global_choice_is_created_and_a_column_binds_it(org: httpx.Client):
    choice = post(
        org,
        "/GlobalOptionSetDefinitions",
        {
            "@odata.type": f"{NS}.OptionSetMetadata",
            "Name": "cosell_helpneeded",
            "DisplayName": label("Help Needed"),
            "OptionSetType": "Picklist",
            "Options": [{"Value": None, "Label": label("GeneralOrOther")}, {"Value": None, "Label": label("Quotes")}],
        },
    )
    column = post(
        org,
        f"{OPPORTUNITY}/Attributes",
        {
            "@odata.type": f"{NS}.PicklistAttributeMetadata",
            "SchemaName": "cosell_HelpNeeded",
            "DisplayName": label("Help Needed"),
            "GlobalOptionSet@odata.bind": "/GlobalOptionSetDefinitions(Name='cosell_helpneeded')",
        },
    )
    again = post(org, "/GlobalOptionSetDefinitions", {"Name": "cosell_HelpNeeded", "Options": [{"Value": 1}]})

    assert choice.status_code == 204, choice.text
    assert choice.headers["OData-EntityId"].endswith(
        f"/GlobalOptionSetDefinitions({metadata_id('globaloptionset', 'cosell_helpneeded')})"
    )
    assert column.status_code == 204, column.text
    listed = org.get("/GlobalOptionSetDefinitions", params={"$select": "Name,Options"}).json()["value"]
    assert [(c["Name"], [o["Value"] for o in c["Options"]]) for c in listed] == [
        ("cosell_helpneeded", [100000000, 100000001])
    ]
    served = org.get(
        f"{OPPORTUNITY}/Attributes(LogicalName='cosell_helpneeded')/{NS}.PicklistAttributeMetadata",
        params={"$expand": "OptionSet($select=Name,IsGlobal)"},
    ).json()["OptionSet"]
    assert (served["Name"], served["IsGlobal"]) == ("cosell_helpneeded", True)
    assert org.post("/opportunities", json={"name": "x", "cosell_helpneeded": 100000001}).status_code == 204
    assert again.status_code == 400
    assert error_of(again)["code"] == "0x80044345"


def test_publish_actions_are_accepted_with_their_documented_parameters(org: httpx.Client):
    xml = "<importexportxml><entities><entity>opportunity</entity><entity>lead</entity></entities></importexportxml>"

    publish = org.post("/PublishXml", json={"ParameterXml": xml})
    publish_all = org.post("/PublishAllXml")
    missing = org.post("/PublishXml", json={})
    not_xml = org.post("/PublishXml", json={"ParameterXml": "opportunity"})
    unknown = org.post("/PublishXml", json={"ParameterXml": xml.replace("lead", "cosell_nothing")})
    extra = org.post("/PublishAllXml", json={"ParameterXml": xml})

    assert (publish.status_code, publish_all.status_code) == (204, 204)
    assert (missing.status_code, not_xml.status_code, unknown.status_code, extra.status_code) == (400, 400, 404, 400)
    assert "'ParameterXml' (Edm.String)" in error_of(missing)["message"]


# ----------------------------------------------------------------------------- privileges and control


def test_without_customizer_rights_every_metadata_write_is_403_while_reads_and_data_work(
    org: httpx.Client, bare_url: str, bare_sim: DataverseSimulator
):
    revoked = org.post(f"{bare_url}/_sim/privileges", json={"customizer": False})
    writes = {
        "prvCreateEntity": post(org, "/EntityDefinitions", table_body("cosell_Solution")),
        "prvCreateAttribute": post(org, f"{OPPORTUNITY}/Attributes", string_column("cosell_ReferralId")),
        "prvCreateRelationship": post(org, "/RelationshipDefinitions", _relationship()),
        "prvCreateEntityKey": post(org, f"{OPPORTUNITY}/Keys", key_body_for("cosell_K", "name")),
        "prvCreateOptionSet": post(org, "/GlobalOptionSetDefinitions", {"Name": "cosell_x"}),
        "prvPublishCustomizations": org.post("/PublishAllXml"),
    }
    read = org.get(f"{OPPORTUNITY}/Attributes", params={"$select": "LogicalName"})
    data = org.post("/opportunities", json={"name": "still works"})

    assert revoked.json() == {"customizer": False, "missing": []}
    for privilege, response in writes.items():
        assert response.status_code == 403, privilege
        assert error_of(response) == {
            "code": "0x80040220",
            "message": f"Principal user (Id={bare_sim.user_id}, type=8) is missing {privilege} privilege "
            f"(Id={metadata_id('privilege', privilege)})",
        }
    assert (read.status_code, data.status_code) == (200, 204)
    org.post(f"{bare_url}/_sim/privileges", json={"customizer": True, "missing": ["prvCreateEntityKey"]})
    assert post(org, f"{OPPORTUNITY}/Attributes", string_column("cosell_ReferralId")).status_code == 204
    assert post(org, f"{OPPORTUNITY}/Keys", key_body_for("cosell_K", "cosell_referralid")).status_code == 403
    bad = org.post(f"{bare_url}/_sim/privileges", json={"missing": ["prvEverything"]})
    assert bad.status_code == 400


def test_clear_gives_back_the_org_as_it_started(org: httpx.Client, bare_sim: DataverseSimulator, bare_url: str):
    assert post(org, "/EntityDefinitions", table_body("cosell_Solution")).status_code == 204
    assert post(org, f"{OPPORTUNITY}/Attributes", string_column("cosell_ReferralId")).status_code == 204
    org.post(f"{bare_url}/_sim/key-index", json={"seconds": 5})
    bare_sim.set_privileges(customizer=False)

    org.post(f"{bare_url}/_sim/clear")

    assert org.get("/cosell_solutions").status_code == 404
    assert org.get(f"{OPPORTUNITY}/Attributes(LogicalName='cosell_referralid')").status_code == 404
    publishers = org.get("/publishers", params={"$select": "customizationprefix"}).json()["value"]
    assert [p["customizationprefix"] for p in publishers] == ["new"]
    assert org.get(f"{bare_url}/_sim/privileges").json()["customizer"] is True
    assert org.get(f"{bare_url}/_sim/key-index").json() == {"seconds": 5, "keys": []}
    bare_sim.customizations.index_seconds = 0.3

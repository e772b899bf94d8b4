"""The read-only metadata endpoints: the names, types and lengths the app can read instead of assuming."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.dataverse_support import SOLUTIONS, error_of

OPPORTUNITY = "/EntityDefinitions(LogicalName='opportunity')"
SOLUTION = "/EntityDefinitions(LogicalName='cosell_solution')"
STRING = "Microsoft.Dynamics.CRM.StringAttributeMetadata"


def test_entity_definition_answers_the_table_names_with_select(client: httpx.Client):
    response = client.get(
        OPPORTUNITY, params={"$select": "LogicalName,SchemaName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"].endswith(
        "$metadata#EntityDefinitions(LogicalName,SchemaName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute)"
        "/$entity"
    )
    metadata_id = body.pop("MetadataId")  # always returned, even when not selected
    body.pop("@odata.context")
    assert body == {
        "LogicalName": "opportunity",
        "SchemaName": "Opportunity",
        "EntitySetName": "opportunities",
        "PrimaryIdAttribute": "opportunityid",
        "PrimaryNameAttribute": "name",
    }
    by_id = client.get(f"/EntityDefinitions({metadata_id})", params={"$select": "LogicalName"}).json()
    assert (by_id["LogicalName"], by_id["MetadataId"]) == ("opportunity", metadata_id)


def test_entity_definitions_filter_and_the_custom_table(client: httpx.Client):
    response = client.get(
        "/EntityDefinitions",
        params={
            "$select": "LogicalName,EntitySetName,OwnershipType,IsCustomEntity",
            "$filter": "IsCustomEntity eq true",
        },
    )

    assert response.status_code == 200, response.text
    rows = [{k: v for k, v in r.items() if k != "MetadataId"} for r in response.json()["value"]]
    assert rows == [
        {
            "LogicalName": "cosell_solution",
            "EntitySetName": "cosell_solutions",
            "OwnershipType": "OrganizationOwned",
            "IsCustomEntity": True,
        }
    ]
    user_owned = client.get(
        "/EntityDefinitions",
        params={
            "$select": "LogicalName",
            "$filter": "OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'",
        },
    ).json()["value"]
    assert {r["LogicalName"] for r in user_owned} == {"account", "contact", "opportunity", "lead", "opportunityclose"}


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        (
            "/EntityDefinitions(LogicalName='opportunities')",  # the entity set, not the logical name
            {},
            404,
            "The entity with a name = 'opportunities' with namemapping = 'Logical' was not found in the MetadataCache.",
        ),
        (
            OPPORTUNITY,
            {"$select": "LogicalName,logicalname"},
            400,
            "Could not find a property named 'logicalname' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.",
        ),
        (
            f"{OPPORTUNITY}/Attributes",
            {"$select": "LogicalName,MaxLength"},  # MaxLength needs the cast
            400,
            "Could not find a property named 'MaxLength' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'.",
        ),
        (
            f"{OPPORTUNITY}/Attributes",
            {"$filter": "Logicalname eq 'name'"},
            400,
            "Could not find a property named 'Logicalname' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'.",
        ),
        (
            "/RelationshipDefinitions",
            {"$select": "SchemaName,ReferencedEntity"},  # ReferencedEntity needs the cast
            400,
            "Could not find a property named 'ReferencedEntity' on type "
            "'Microsoft.Dynamics.CRM.RelationshipMetadataBase'.",
        ),
        (f"{OPPORTUNITY}/Attributes(LogicalName='cosell_opportunityid')", {}, 404, None),
        (f"{OPPORTUNITY}/Columns", {}, 404, "Resource not found for the segment 'Columns'."),
        (f"{OPPORTUNITY}/Attributes", {"$top": "1"}, 400, "The query parameter $top is not supported"),
        (
            f"{OPPORTUNITY}/Attributes",
            {"$filter": "startswith(LogicalName,'cosell_')"},
            400,
            "Only comparisons (eq, ne, and, or) are supported in a metadata $filter.",
        ),
    ],
)
def test_metadata_refusals(client: httpx.Client, path: str, params: dict[str, str], status: int, message: str | None):
    response = client.get(path, params=params)

    assert response.status_code == status
    error = error_of(response)
    if message is not None:
        assert error["message"] == message


def test_attribute_answers_type_and_max_length(client: httpx.Client):
    referral = client.get(f"{OPPORTUNITY}/Attributes(LogicalName='cosell_referralid')")
    name = client.get("/EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')")

    assert referral.status_code == 200, referral.text
    body = referral.json()
    assert body["@odata.type"] == f"#{STRING}"
    assert (body["LogicalName"], body["SchemaName"], body["AttributeType"], body["MaxLength"]) == (
        "cosell_referralid",
        "cosell_ReferralId",
        "String",
        100,
    )
    assert body["IsCustomAttribute"] is True
    assert body["AttributeTypeName"] == {"Value": "StringType"}
    account_name = name.json()
    assert (account_name["MaxLength"], account_name["IsPrimaryName"], account_name["IsCustomAttribute"]) == (
        160,
        True,
        False,
    )
    assert account_name["RequiredLevel"]["Value"] == "ApplicationRequired"


def test_cast_selects_derived_properties_and_filters_custom_columns(client: httpx.Client):
    response = client.get(
        f"{OPPORTUNITY}/Attributes/{STRING}",
        params={"$select": "LogicalName,MaxLength", "$filter": "IsCustomAttribute eq true"},
    )
    memo = client.get(
        f"{OPPORTUNITY}/Attributes(LogicalName='cosell_audit')/Microsoft.Dynamics.CRM.MemoAttributeMetadata",
        params={"$select": "MaxLength"},
    )

    assert response.status_code == 200, response.text
    assert {r["LogicalName"]: r["MaxLength"] for r in response.json()["value"]} == {
        "cosell_referralid": 100,
        "cosell_referrallink": 200,
        "cosell_microsoftcrmid": 100,
        "cosell_referralprogram": 100,
    }
    assert all(r["@odata.type"] == f"#{STRING}" for r in response.json()["value"])
    assert memo.status_code == 200, memo.text
    assert memo.json()["MaxLength"] == 4000


def test_lookup_attributes_answer_their_targets(client: httpx.Client):
    lookups = client.get(
        f"{SOLUTION}/Attributes",
        params={
            "$select": "LogicalName,SchemaName,AttributeType",
            "$filter": "AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Lookup'",
        },
    ).json()["value"]
    owner = client.get(f"{OPPORTUNITY}/Attributes(LogicalName='ownerid')").json()

    assert [(r["LogicalName"], r["SchemaName"], r["@odata.type"]) for r in lookups] == [
        ("cosell_opportunityid", "cosell_OpportunityId", "#Microsoft.Dynamics.CRM.LookupAttributeMetadata")
    ]
    assert (owner["AttributeType"], owner["Targets"]) == ("Owner", ["systemuser", "team"])


def test_choice_options_through_the_picklist_cast(client: httpx.Client):
    response = client.get(
        f"{OPPORTUNITY}/Attributes(LogicalName='cosell_helpneeded')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    )
    uncast = client.get(f"{OPPORTUNITY}/Attributes(LogicalName='cosell_helpneeded')", params={"$expand": "OptionSet"})

    assert response.status_code == 200, response.text
    options = response.json()["OptionSet"]["Options"]
    assert [(o["Value"], o["Label"]["UserLocalizedLabel"]["Label"]) for o in options] == [
        (100000000, "GeneralOrOther"),
        (100000001, "CustomerTechnicalArchitecture"),
        (100000002, "ProofOfConceptOrDemo"),
        (100000003, "QuotesOrLicensing"),
        (100000004, "PostSalesCustomerSuccess"),
        (100000005, "WorkloadSpecificValueProposition"),
    ]
    assert uncast.status_code == 400
    assert "'OptionSet' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'" in error_of(uncast)["message"]


def test_relationships_answer_the_navigation_property_names(client: httpx.Client):
    many_to_one = client.get(
        f"{SOLUTION}/ManyToOneRelationships",
        params={
            "$select": "SchemaName,ReferencedEntity,ReferencingAttribute,"
            "ReferencingEntityNavigationPropertyName,ReferencedEntityNavigationPropertyName"
        },
    ).json()["value"]
    one_to_many = client.get(
        f"{OPPORTUNITY}/OneToManyRelationships",
        params={
            "$select": "ReferencedEntityNavigationPropertyName",
            "$filter": "ReferencingEntity eq 'cosell_solution'",
        },
    ).json()["value"]
    owners = client.get(
        f"{OPPORTUNITY}/ManyToOneRelationships",
        params={
            "$select": "SchemaName,ReferencedEntity,ReferencingEntityNavigationPropertyName",
            "$filter": "ReferencingAttribute eq 'ownerid' or ReferencingAttribute eq 'owninguser'",
        },
    ).json()["value"]

    assert [{k: v for k, v in r.items() if k != "MetadataId"} for r in many_to_one] == [
        {
            "SchemaName": SOLUTIONS,
            "ReferencedEntity": "opportunity",
            "ReferencingAttribute": "cosell_opportunityid",
            "ReferencingEntityNavigationPropertyName": "cosell_OpportunityId",
            "ReferencedEntityNavigationPropertyName": SOLUTIONS,
        }
    ]
    assert [r["ReferencedEntityNavigationPropertyName"] for r in one_to_many] == [SOLUTIONS]
    assert sorted(
        (r["SchemaName"], r["ReferencedEntity"], r["ReferencingEntityNavigationPropertyName"]) for r in owners
    ) == [
        ("opportunity_owning_user", "systemuser", "owninguser"),
        ("owner_opportunitys", "owner", "ownerid"),
    ]


def test_relationship_definitions_by_schema_name_and_by_cast(client: httpx.Client):
    single = client.get(f"/RelationshipDefinitions(SchemaName='{SOLUTIONS}')")
    cast = client.get(
        "/RelationshipDefinitions/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        params={"$select": "SchemaName,ReferencingEntity", "$filter": "ReferencedEntity eq 'opportunity'"},
    )
    missing = client.get("/RelationshipDefinitions(SchemaName='cosell_opportunity_cosell_solutions')")

    assert single.status_code == 200, single.text
    body = single.json()
    assert body["@odata.type"] == "#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata"
    assert (body["ReferencingEntity"], body["ReferencingAttribute"], body["IsCustomRelationship"]) == (
        "cosell_solution",
        "cosell_opportunityid",
        True,
    )
    assert cast.status_code == 200, cast.text
    assert {(r["SchemaName"], r["ReferencingEntity"]) for r in cast.json()["value"]} == {
        (SOLUTIONS, "cosell_solution"),
        ("lead_qualifying_opportunity", "lead"),
        ("Opportunity_OpportunityClose", "opportunityclose"),
    }
    assert missing.status_code == 404
    error_of(missing)


def test_keys_answer_the_alternate_key(client: httpx.Client):
    for table in ("opportunity", "lead"):
        keys = client.get(f"/EntityDefinitions(LogicalName='{table}')/Keys").json()["value"]
        assert [(k["LogicalName"], k["KeyAttributes"], k["EntityKeyIndexStatus"]) for k in keys] == [
            ("cosell_referralid_key", ["cosell_referralid"], "Active")
        ]
    single = client.get(f"{OPPORTUNITY}/Keys(LogicalName='cosell_referralid_key')", params={"$select": "KeyAttributes"})
    assert single.json()["KeyAttributes"] == ["cosell_referralid"]
    assert client.get("/EntityDefinitions(LogicalName='account')/Keys").json()["value"] == []


def test_expand_attributes_and_keys_on_the_entity(client: httpx.Client):
    response = client.get(
        OPPORTUNITY,
        params={
            "$select": "LogicalName",
            "$expand": "Attributes($select=LogicalName,AttributeType;$filter=IsCustomAttribute eq true),"
            "Keys($select=LogicalName)",
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert {a["LogicalName"]: a["AttributeType"] for a in body["Attributes"]} == {
        "cosell_syncwithpartnercenter": "Boolean",
        "cosell_referralid": "String",
        "cosell_referrallink": "String",
        "cosell_helpneeded": "Picklist",
        "cosell_visible": "Boolean",
        "cosell_microsoftcrmid": "String",
        "cosell_referralprogram": "String",
        "cosell_audit": "Memo",
    }
    assert [k["LogicalName"] for k in body["Keys"]] == ["cosell_referralid_key"]


def test_metadata_lengths_are_the_ones_writes_enforce(client: httpx.Client):
    lengths = client.get(
        "/EntityDefinitions(LogicalName='lead')/Attributes/" + STRING, params={"$select": "LogicalName,MaxLength"}
    ).json()["value"]
    max_length = {r["LogicalName"]: r["MaxLength"] for r in lengths}

    for column in ("companyname", "subject", "emailaddress1", "mobilephone", "address1_postalcode"):
        too_long = client.post("/leads", json={"subject": "x", column: "x" * (max_length[column] + 1)})
        assert too_long.status_code == 400, column
        assert f"maximum allowed length of '{max_length[column]}'" in error_of(too_long)["message"]


def test_bare_org_metadata_has_no_cosell_schema(bare: httpx.Client):
    solution = bare.get(SOLUTION)
    custom = bare.get(
        f"{OPPORTUNITY}/Attributes", params={"$select": "LogicalName", "$filter": "IsCustomAttribute eq true"}
    )
    keys = bare.get(f"{OPPORTUNITY}/Keys")
    relationship = bare.get(f"/RelationshipDefinitions(SchemaName='{SOLUTIONS}')")

    assert solution.status_code == 404
    assert error_of(solution)["code"] == "0x80041102"
    assert custom.json()["value"] == []
    assert keys.json()["value"] == []
    assert relationship.status_code == 404

"""Field-level security over real HTTP: a field created through the Tooling API is hidden from the API user
(describe, SOQL, writes) until a permission set granting it is assigned; the rules of the setup objects;
what an app reads back to find its permission set; a provisioned org's integration user already has access."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.provisioning import tooling
from tests.sims.salesforce.support import create, error_of, opportunity, query, records

REFERRAL = {
    "FullName": "Opportunity.Referral_Identifier__c",
    "Metadata": {"type": "Text", "label": "Referral Identifier", "length": 100, "externalId": True, "unique": True},
}
DEAL = {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}


def _names(api: httpx.Client, sobject: str = "Opportunity") -> set[str]:
    return {f["name"] for f in api.get(f"/sobjects/{sobject}/describe").json()["fields"]}


def _hidden(api: httpx.Client) -> None:
    """Everything the API user can do with Referral_Identifier__c fails as if the field did not exist."""
    assert "Referral_Identifier__c" not in _names(api)
    soql = error_of(query(api, "SELECT Id, Referral_Identifier__c FROM Opportunity"))
    assert soql["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Referral_Identifier__c' on entity 'Opportunity'" in soql["message"]
    write = api.post("/sobjects/Opportunity", json={**DEAL, "Referral_Identifier__c": "R-1"})
    assert (write.status_code, error_of(write)) == (
        400,
        {"errorCode": "INVALID_FIELD", "message": "No such column 'Referral_Identifier__c' on sobject of type "
         "Opportunity", "fields": []},
    )  # fmt: skip
    upsert = api.patch("/sobjects/Opportunity/Referral_Identifier__c/R-1", json=DEAL)
    assert (upsert.status_code, error_of(upsert)["errorCode"]) == (404, "NOT_FOUND")
    assert api.get("/sobjects/Opportunity/Referral_Identifier__c/R-1").status_code == 404


def test_a_created_field_is_invisible_until_a_permission_set_grants_it_and_is_assigned(
    bare: httpx.Client, bare_sim: SalesforceSimulator
) -> None:
    tooling(bare, "CustomField", REFERRAL)
    _hidden(bare)
    assert bare_sim.visible_fields("Opportunity") is not None
    assert "Referral_Identifier__c" not in (bare_sim.visible_fields("Opportunity") or [])

    permission_set = create(bare, "PermissionSet", Name="Cosell_Sync", Label="Co-sell sync")
    _hidden(bare)
    create(bare, "FieldPermissions", ParentId=permission_set, SobjectType="Opportunity",
           Field="Opportunity.Referral_Identifier__c", PermissionsRead=True, PermissionsEdit=True)  # fmt: skip
    _hidden(bare)  # granted, but not yet assigned to the API user
    create(bare, "PermissionSetAssignment", AssigneeId=bare_sim.integration_user_id, PermissionSetId=permission_set)

    field = next(f for f in bare.get("/sobjects/Opportunity/describe").json()["fields"]
                 if f["name"] == "Referral_Identifier__c")  # fmt: skip
    assert (field["createable"], field["updateable"], field["externalId"]) == (True, True, True)
    created = bare.patch("/sobjects/Opportunity/Referral_Identifier__c/R-1", json=DEAL)
    assert created.status_code == 201, created.text
    assert records(bare, "SELECT Referral_Identifier__c FROM Opportunity")[0]["Referral_Identifier__c"] == "R-1"
    assert bare.get(f"/sobjects/Opportunity/{created.json()['id']}").json()["Referral_Identifier__c"] == "R-1"
    assert "Referral_Identifier__c" in (bare_sim.visible_fields("Opportunity") or [])


def test_read_without_edit_is_read_only_and_a_hidden_field_still_gets_its_default(
    bare: httpx.Client, bare_sim: SalesforceSimulator
) -> None:
    tooling(bare, "CustomField", REFERRAL)
    tooling(bare, "CustomField", {"FullName": "Opportunity.Sync__c", "Metadata": {
        "type": "Checkbox", "label": "Sync", "defaultValue": "true"}})  # fmt: skip
    early = opportunity(bare)  # made while Sync__c is hidden
    permission_set = create(bare, "PermissionSet", Name="Cosell_Sync", Label="Co-sell sync")
    readable = create(bare, "FieldPermissions", ParentId=permission_set, SobjectType="Opportunity",
                      Field="Opportunity.Referral_Identifier__c", PermissionsRead=True)  # fmt: skip
    create(bare, "FieldPermissions", ParentId=permission_set, SobjectType="Opportunity", Field="Opportunity.Sync__c",
           PermissionsRead=True, PermissionsEdit=True)  # fmt: skip
    create(bare, "PermissionSetAssignment", AssigneeId=bare_sim.integration_user_id, PermissionSetId=permission_set)

    field = next(f for f in bare.get("/sobjects/Opportunity/describe").json()["fields"]
                 if f["name"] == "Referral_Identifier__c")  # fmt: skip
    assert (field["createable"], field["updateable"]) == (False, False)
    refused = bare.patch(f"/sobjects/Opportunity/{early}", json={"Referral_Identifier__c": "R-1"})
    assert error_of(refused)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert "read/write for your profile or permission set" in error_of(refused)["message"]
    assert records(bare, "SELECT Referral_Identifier__c, Sync__c FROM Opportunity") == [
        {"attributes": {"type": "Opportunity", "url": f"/services/data/v60.0/sobjects/Opportunity/{early}"},
         "Referral_Identifier__c": None, "Sync__c": True}]  # fmt: skip

    assert bare.patch(f"/sobjects/FieldPermissions/{readable}", json={"PermissionsEdit": True}).status_code == 204
    assert bare.patch(f"/sobjects/Opportunity/{early}", json={"Referral_Identifier__c": "R-1"}).status_code == 204


def test_a_custom_object_needs_object_permissions_for_each_operation(
    bare: httpx.Client, bare_sim: SalesforceSimulator
) -> None:
    tooling(bare, "CustomObject", {"FullName": "Thing__c", "Metadata": {
        "label": "Thing", "pluralLabel": "Things", "nameField": {"type": "Text", "label": "Thing Name"},
        "deploymentStatus": "Deployed", "sharingModel": "ReadWrite"}})  # fmt: skip
    assert "Thing__c" not in {o["name"] for o in bare.get("/sobjects").json()["sobjects"]}
    assert bare.post("/sobjects/Thing__c", json={"Name": "x"}).status_code == 404
    permission_set = create(bare, "PermissionSet", Name="Things", Label="Things")
    read_only = create(bare, "ObjectPermissions", ParentId=permission_set, SobjectType="Thing__c", PermissionsRead=True)
    create(bare, "PermissionSetAssignment", AssigneeId=bare_sim.integration_user_id, PermissionSetId=permission_set)

    summary = next(o for o in bare.get("/sobjects").json()["sobjects"] if o["name"] == "Thing__c")
    assert (summary["createable"], summary["updateable"], summary["deletable"]) == (False, False, False)
    refused = bare.post("/sobjects/Thing__c", json={"Name": "x"})
    assert error_of(refused)["errorCode"] == "INVALID_TYPE_FOR_OPERATION"
    assert records(bare, "SELECT Id, Name, OwnerId FROM Thing__c") == []

    flags = {"PermissionsCreate": True, "PermissionsEdit": True, "PermissionsDelete": True}
    assert bare.patch(f"/sobjects/ObjectPermissions/{read_only}", json=flags).status_code == 204
    thing = create(bare, "Thing__c", Name="x")
    assert records(bare, "SELECT OwnerId FROM Thing__c")[0]["OwnerId"] == bare_sim.integration_user_id
    assert bare.delete(f"/sobjects/Thing__c/{thing}").status_code == 204


def _permission_set(api: httpx.Client) -> str:
    return create(api, "PermissionSet", Name="Cosell_Sync", Label="Co-sell sync")


FIELD = {"SobjectType": "Opportunity", "Field": "Opportunity.Referral_Identifier__c"}
RULES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("edit needs read", "FieldPermissions", {**FIELD, "PermissionsEdit": True}, "FIELD_INTEGRITY_EXCEPTION",
     "Permission Edit Opportunity.Referral_Identifier__c depends on permission(s): Read "
     "Opportunity.Referral_Identifier__c"),
    ("field of another object", "FieldPermissions", {"SobjectType": "Lead", "Field": FIELD["Field"],
     "PermissionsRead": True}, "FIELD_INTEGRITY_EXCEPTION", "must be prefixed with its SobjectType Lead"),
    ("a field that does not exist", "FieldPermissions", {"SobjectType": "Opportunity", "Field": "Opportunity.Nope__c",
     "PermissionsRead": True}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
     "Field Name: bad value for restricted picklist field: Opportunity.Nope__c"),
    ("a required field", "FieldPermissions", {"SobjectType": "Opportunity", "Field": "Opportunity.StageName",
     "PermissionsRead": True}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "bad value for restricted picklist field"),
    ("no parent", "FieldPermissions", {**FIELD, "ParentId": None, "PermissionsRead": True}, "REQUIRED_FIELD_MISSING",
     "[ParentId]"),
    ("create needs read", "ObjectPermissions", {"SobjectType": "Opportunity", "PermissionsCreate": True},
     "FIELD_INTEGRITY_EXCEPTION", "Permission Create Opportunity depends on permission(s): Read Opportunity"),
    ("delete needs read and edit", "ObjectPermissions", {"SobjectType": "Opportunity", "PermissionsRead": True,
     "PermissionsDelete": True}, "FIELD_INTEGRITY_EXCEPTION",
     "Permission Delete Opportunity depends on permission(s): Read Opportunity, Edit Opportunity"),
    ("an object that does not exist", "ObjectPermissions", {"SobjectType": "Nope__c", "PermissionsRead": True},
     "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "SObject Type Name: bad value for restricted picklist field: Nope__c"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "sobject", "body", "code", "message"), RULES, ids=[r[0] for r in RULES])
def test_the_rules_of_field_and_object_permissions(
    bare: httpx.Client, case: str, sobject: str, body: dict[str, Any], code: str, message: str
) -> None:
    tooling(bare, "CustomField", REFERRAL)
    permission_set = _permission_set(bare)

    response = bare.post(f"/sobjects/{sobject}", json={"ParentId": permission_set, **body})

    assert (response.status_code, error_of(response)["errorCode"]) == (400, code), response.text
    assert message in error_of(response)["message"]
    assert records(bare, f"SELECT Id FROM {sobject}") == []  # noqa: S608


def test_duplicates_names_and_a_permission_without_read(bare: httpx.Client, bare_sim: SalesforceSimulator) -> None:
    tooling(bare, "CustomField", REFERRAL)
    permission_set = _permission_set(bare)
    create(bare, "FieldPermissions", ParentId=permission_set, PermissionsRead=True, **FIELD)
    create(bare, "ObjectPermissions", ParentId=permission_set, SobjectType="Account", PermissionsRead=True)
    create(bare, "PermissionSetAssignment", AssigneeId=bare_sim.integration_user_id, PermissionSetId=permission_set)

    again = bare.post("/sobjects/FieldPermissions", json={"ParentId": permission_set, "PermissionsRead": True, **FIELD})
    masked = "duplicate value found: <unknown> duplicates value on record with id: <unknown>"
    assert error_of(again) == {"errorCode": "DUPLICATE_VALUE", "fields": [], "message": masked}
    object_again = bare.post(
        "/sobjects/ObjectPermissions",
        json={"ParentId": permission_set, "SobjectType": "Account", "PermissionsRead": True},
    )
    assert error_of(object_again)["errorCode"] == "DUPLICATE_VALUE"
    assigned_again = bare.post(
        "/sobjects/PermissionSetAssignment",
        json={"AssigneeId": bare_sim.integration_user_id, "PermissionSetId": permission_set},
    )
    assert error_of(assigned_again)["message"] == (
        f"Duplicate PermissionSetAssignment. Assignee: {bare_sim.integration_user_id}, Permission Set: {permission_set}"
    )
    same_name = bare.post("/sobjects/PermissionSet", json={"Name": "cosell_sync", "Label": "Again"})
    assert error_of(same_name)["errorCode"] == "DUPLICATE_VALUE"
    bad_name = bare.post("/sobjects/PermissionSet", json={"Name": "Co-sell sync", "Label": "Again"})
    assert (error_of(bad_name)["errorCode"], error_of(bad_name)["fields"]) == ("FIELD_INTEGRITY_EXCEPTION", ["Name"])
    no_label = bare.post("/sobjects/PermissionSet", json={"Name": "Other"})
    assert error_of(no_label)["errorCode"] == "REQUIRED_FIELD_MISSING"
    not_a_user = bare.post(
        "/sobjects/PermissionSetAssignment", json={"AssigneeId": permission_set, "PermissionSetId": permission_set}
    )
    assert error_of(not_a_user)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"

    # "A FieldPermissions record must have at minimum PermissionsRead set to true, or it will be deleted."
    other = create(bare, "PermissionSet", Name="Other", Label="Other")
    kept = bare.post("/sobjects/FieldPermissions", json={"ParentId": other, "PermissionsRead": False, **FIELD})
    assert kept.status_code == 201
    assert records(bare, f"SELECT Id FROM FieldPermissions WHERE ParentId = '{other}'") == []  # noqa: S608
    revoked = records(bare, f"SELECT Id FROM FieldPermissions WHERE ParentId = '{permission_set}'")[0]["Id"]  # noqa: S608
    assert bare.patch(f"/sobjects/FieldPermissions/{revoked}", json={"PermissionsRead": False}).status_code == 204
    _hidden(bare)


def test_an_app_finds_its_permission_set_and_grants_again_by_soql(
    bare: httpx.Client, bare_sim: SalesforceSimulator
) -> None:
    tooling(bare, "CustomField", REFERRAL)
    permission_set = _permission_set(bare)
    create(bare, "FieldPermissions", ParentId=permission_set, PermissionsRead=True, PermissionsEdit=True, **FIELD)
    create(bare, "PermissionSetAssignment", AssigneeId=bare_sim.integration_user_id, PermissionSetId=permission_set)
    user = bare_sim.integration_user_id

    found = records(bare, "SELECT Id, Label, IsOwnedByProfile, IsCustom FROM PermissionSet WHERE Name = 'Cosell_Sync'")
    assert [(r["Id"], r["Label"], r["IsOwnedByProfile"], r["IsCustom"]) for r in found] == [
        (permission_set, "Co-sell sync", False, True)]  # fmt: skip
    granted = records(
        bare,
        "SELECT Field, PermissionsRead, PermissionsEdit, Parent.Name FROM FieldPermissions "
        "WHERE Parent.Name = 'Cosell_Sync' AND SobjectType = 'Opportunity'",
    )
    assert [(r["Field"], r["PermissionsRead"], r["PermissionsEdit"], r["Parent"]["Name"]) for r in granted] == [
        ("Opportunity.Referral_Identifier__c", True, True, "Cosell_Sync")]  # fmt: skip
    soql = (
        f"SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = '{user}' AND PermissionSetId = '{permission_set}'"  # noqa: S608
    )
    assert len(records(bare, soql)) == 1
    nested = records(
        bare,
        "SELECT Name, (SELECT Field FROM FieldPerms), (SELECT Assignee.Username FROM Assignments) FROM PermissionSet",
    )
    assert nested[0]["FieldPerms"]["records"][0]["Field"] == "Opportunity.Referral_Identifier__c"
    assert nested[0]["Assignments"]["records"][0]["Assignee"]["Username"] == "integration@partner.example.sandbox"
    describe = bare.get("/sobjects/FieldPermissions/describe").json()
    values = next(f for f in describe["fields"] if f["name"] == "Field")["picklistValues"]
    assert "Opportunity.Referral_Identifier__c" in {v["value"] for v in values}


def test_in_a_provisioned_org_the_integration_user_already_has_access(
    api: httpx.Client, sim: SalesforceSimulator
) -> None:
    user = sim.integration_user_id

    assigned = records(api, f"SELECT PermissionSet.Name FROM PermissionSetAssignment WHERE AssigneeId = '{user}'")  # noqa: S608
    assert [r["PermissionSet"]["Name"] for r in assigned] == ["Cosell_Sync_Integration"]
    fields = {r["Field"] for r in records(api, "SELECT Field FROM FieldPermissions WHERE PermissionsEdit = true")}
    assert {"Opportunity.Referral_Identifier__c", "Lead.Audit__c", "Microsoft_Solution__c.Solution_Type__c"} <= fields
    assert "Microsoft_Solution__c.Opportunity__c" not in fields  # master-detail: always visible, no FLS
    objects = records(api, "SELECT SobjectType, PermissionsDelete FROM ObjectPermissions")
    assert [(r["SobjectType"], r["PermissionsDelete"]) for r in objects] == [("Microsoft_Solution__c", True)]
    assert {"Referral_Identifier__c", "Audit__c", "How_can_Microsoft_help__c"} <= _names(api)
    assert "Opportunity__c" in _names(api, "Microsoft_Solution__c")

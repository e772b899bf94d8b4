"""An API user without "Customize Application" / "Modify All Data": Tooling writes and permission-set writes
answer 403, reads and data calls keep working; the control API switch and clear() restoring the rights."""

from __future__ import annotations

import httpx

from sandbox.sims.base import ServerThread
from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.provisioning import tooling
from tests.sims.salesforce.support import create, error_of, opportunity, records

FIELD = {"FullName": "Opportunity.Referral_Link__c", "Metadata": {"type": "Url", "label": "Referral Link"}}
OBJECT = {"FullName": "Thing__c", "Metadata": {"label": "Thing", "pluralLabel": "Things", "nameField": {
    "type": "Text", "label": "Thing Name"}, "deploymentStatus": "Deployed", "sharingModel": "ReadWrite"}}  # fmt: skip


def test_without_customizer_rights_writes_to_metadata_and_permissions_are_refused_reads_are_not(
    bare: httpx.Client, bare_sim: SalesforceSimulator
) -> None:
    existing = tooling(bare, "CustomField", FIELD)
    permission_set = create(bare, "PermissionSet", Name="Cosell_Sync", Label="Co-sell sync")
    bare_sim.set_customizer(False)

    for kind, body in (("CustomField", {**FIELD, "FullName": "Opportunity.Other__c"}), ("CustomObject", OBJECT)):
        refused = bare.post(f"/tooling/sobjects/{kind}", json=body)
        assert (refused.status_code, error_of(refused)) == (
            403,
            {"errorCode": "INSUFFICIENT_ACCESS", "message": "use of the Metadata API requires a user with the "
             "ModifyAllData or ModifyMetadata permissions"},
        ), kind  # fmt: skip
    grants = {
        "PermissionSet": {"Name": "Another", "Label": "Another"},
        "FieldPermissions": {"ParentId": permission_set, "SobjectType": "Opportunity",
                             "Field": "Opportunity.Referral_Link__c", "PermissionsRead": True},
        "ObjectPermissions": {"ParentId": permission_set, "SobjectType": "Account", "PermissionsRead": True},
        "PermissionSetAssignment": {"AssigneeId": bare_sim.integration_user_id, "PermissionSetId": permission_set},
    }  # fmt: skip
    for sobject, body in grants.items():
        refused = bare.post(f"/sobjects/{sobject}", json=body)
        assert (refused.status_code, error_of(refused)) == (
            403,
            {"errorCode": "INSUFFICIENT_ACCESS_OR_READONLY", "message": "insufficient access rights on object id",
             "fields": []},
        ), sobject  # fmt: skip
    assert bare.delete(f"/sobjects/PermissionSet/{permission_set}").status_code == 403

    # Reads: the Tooling API, the setup objects, describe; and the data API as before.
    listed = bare.get("/tooling/query", params={"q": "SELECT Id, DeveloperName FROM CustomField"}).json()
    assert [r["Id"] for r in listed["records"]] == [existing]
    assert bare.get(f"/tooling/sobjects/CustomField/{existing}").status_code == 200
    assert [r["Name"] for r in records(bare, "SELECT Name FROM PermissionSet")] == ["Cosell_Sync"]
    assert bare.get("/sobjects/Opportunity/describe").status_code == 200
    opp = opportunity(bare)
    assert bare.patch(f"/sobjects/Opportunity/{opp}", json={"StageName": "Qualification"}).status_code == 204
    assert len(records(bare, "SELECT Id FROM Opportunity")) == 1

    bare_sim.set_customizer(True)
    assert bare.post("/tooling/sobjects/CustomObject", json=OBJECT).status_code == 201


def test_the_control_api_switches_the_rights_and_clear_restores_them(
    bare_sim: SalesforceSimulator, bare_server: ServerThread, bare: httpx.Client
) -> None:
    url = bare_server.url
    assert httpx.get(f"{url}/_sim/customizer", timeout=10).json() == {"customizer": True}
    switched = httpx.post(f"{url}/_sim/customizer", json={"customizer": False}, timeout=10)
    assert switched.json() == {"customizer": False}
    assert bare_sim.customizer is False
    assert bare.post("/tooling/sobjects/CustomField", json=FIELD).status_code == 403
    bad = httpx.post(f"{url}/_sim/customizer", json={"customizer": "no"}, timeout=10)
    assert bad.status_code == 400

    bare_sim.clear()

    assert bare_sim.customizer is True
    assert httpx.get(f"{url}/_sim/visible-fields/Opportunity", timeout=10).json()["visible"] is True
    assert httpx.get(f"{url}/_sim/visible-fields/Thing__c", timeout=10).json() == {"visible": False, "fields": []}

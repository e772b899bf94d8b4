"""The Tooling API over real HTTP: custom fields of every supported type, custom objects with a master-detail,
what the Tooling query and GET show, and the errors for duplicates, bad names and bad definitions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.provisioning import grant, tooling
from tests.sims.salesforce.support import create, error_of, opportunity, records

HELP = {"restricted": True, "valueSetDefinition": {"sorted": False, "value": [
    {"fullName": "GeneralOrOther", "label": "General or other", "default": False},
    {"fullName": "QuotesOrLicensing", "label": "Quotes or licensing", "default": True},
]}}  # fmt: skip
# FullName suffix -> Metadata, one per supported type, and what describe then says about the field.
FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "Sync__c": (
        {"type": "Checkbox", "label": "Sync", "defaultValue": "false"},
        {"type": "boolean", "nillable": False, "defaultValue": False, "defaultedOnCreate": True},
    ),
    "Referral_Identifier__c": (
        {"type": "Text", "label": "Referral Identifier", "length": 100, "externalId": True, "unique": True},
        {"type": "string", "length": 100, "externalId": True, "unique": True, "idLookup": True, "caseSensitive": False},
    ),
    "Referral_Link__c": ({"type": "Url", "label": "Referral Link"}, {"type": "url", "length": 255}),
    "Help__c": (
        {"type": "Picklist", "label": "Help", "valueSet": HELP},
        {"type": "picklist", "restrictedPicklist": True, "defaultedOnCreate": True},
    ),
    "Audit__c": (
        {"type": "LongTextArea", "label": "Audit", "length": 32768, "visibleLines": 10},
        {"type": "textarea", "length": 32768, "filterable": False, "sortable": False},
    ),
    "Note__c": ({"type": "TextArea", "label": "Note"}, {"type": "textarea", "length": 255, "filterable": True}),
    "Contact_Email__c": ({"type": "Email", "label": "Contact Email"}, {"type": "email", "length": 80}),
    "Hotline__c": ({"type": "Phone", "label": "Hotline"}, {"type": "phone", "length": 40}),
    "Seats__c": (
        {"type": "Number", "label": "Seats", "precision": 8, "scale": 0},
        {"type": "double", "precision": 8, "scale": 0},
    ),
    "Deal_Value__c": (
        {"type": "Currency", "label": "Deal Value", "precision": 18, "scale": 2},
        {"type": "currency", "precision": 18, "scale": 2},
    ),
    "Share__c": ({"type": "Percent", "label": "Share", "precision": 5, "scale": 2}, {"type": "percent", "scale": 2}),
    "Accepted_On__c": ({"type": "Date", "label": "Accepted On"}, {"type": "date"}),
    "Synced_At__c": ({"type": "DateTime", "label": "Synced At"}, {"type": "datetime"}),
    "Partner_Account__c": (
        {"type": "Lookup", "label": "Partner Account", "referenceTo": "Account", "relationshipName": "Referrals",
         "relationshipLabel": "Referrals", "deleteConstraint": "SetNull"},
        {"type": "reference", "referenceTo": ["Account"], "relationshipName": "Partner_Account__r", "nillable": True,
         "cascadeDelete": False},
    ),
}  # fmt: skip


def _field(describe: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in describe["fields"] if f["name"] == name)


def test_every_field_type_is_created_and_described_as_the_service_does(
    bare: httpx.Client, bare_sim: SalesforceSimulator
) -> None:
    ids = {name: tooling(bare, "CustomField", {"FullName": f"Opportunity.{name}", "Metadata": md})
           for name, (md, _) in FIELDS.items()}  # fmt: skip
    grant(bare, bare_sim.integration_user_id, fields=[f"Opportunity.{name}" for name in FIELDS])

    describe = bare.get("/sobjects/Opportunity/describe").json()
    assert all(i.startswith("00N") and len(i) == 18 for i in ids.values())
    for name, (md, expected) in FIELDS.items():
        field = _field(describe, name)
        assert {k: field[k] for k in expected} == expected, name
        assert (field["label"], field["custom"], field["createable"], field["updateable"]) == (
            md["label"],
            True,
            True,
            True,
        )
    assert [(p["value"], p["label"], p["defaultValue"]) for p in _field(describe, "Help__c")["picklistValues"]] == [
        ("GeneralOrOther", "General or other", False),
        ("QuotesOrLicensing", "Quotes or licensing", True),
    ]
    account = bare.get("/sobjects/Account/describe").json()
    referrals = next(c for c in account["childRelationships"] if c["relationshipName"] == "Referrals__r")
    assert (referrals["childSObject"], referrals["field"]) == ("Opportunity", "Partner_Account__c")

    account_id = create(bare, "Account", Name="Contoso")
    opp = opportunity(bare, Referral_Identifier__c="R-1", Seats__c=12, Partner_Account__c=account_id)
    row = bare.get(f"/sobjects/Opportunity/{opp}").json()
    assert (row["Sync__c"], row["Help__c"], row["Seats__c"], row["Referral_Identifier__c"]) == (
        False, "QuotesOrLicensing", 12.0, "R-1")  # fmt: skip
    partners = records(bare, "SELECT Name, (SELECT Referral_Identifier__c FROM Referrals__r) FROM Account")
    assert partners[0]["Referrals__r"]["records"][0]["Referral_Identifier__c"] == "R-1"
    bad = bare.patch(f"/sobjects/Opportunity/{opp}", json={"Help__c": "Anything"})
    assert error_of(bad)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    too_long = bare.patch(f"/sobjects/Opportunity/{opp}", json={"Referral_Identifier__c": "x" * 101})
    assert error_of(too_long)["errorCode"] == "STRING_TOO_LONG"


def test_the_tooling_query_and_get_show_what_exists(bare: httpx.Client) -> None:
    object_id = tooling(
        bare,
        "CustomObject",
        {"FullName": "Microsoft_Solution__c", "Metadata": {"label": "Microsoft Solution", "pluralLabel":
         "Microsoft Solutions", "nameField": {"type": "Text", "label": "Solution Name"}, "deploymentStatus":
         "Deployed", "sharingModel": "ReadWrite"}},
    )  # fmt: skip
    text = {"type": "Text", "label": "Solution Type", "length": 100, "description": "What kind of solution"}
    on_object = tooling(bare, "CustomField", {"FullName": "Microsoft_Solution__c.Solution_Type__c", "Metadata": text})
    on_opportunity = tooling(bare, "CustomField", {"FullName": "Opportunity.Referral_Link__c", "Metadata":
                                                   {"type": "Url", "label": "Referral Link"}})  # fmt: skip

    listed = bare.get(
        "/tooling/query",
        params={"q": "SELECT Id, DeveloperName, TableEnumOrId FROM CustomField ORDER BY DeveloperName"},
    )
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert {k: body[k] for k in ("size", "totalSize", "done", "queryLocator", "entityTypeName")} == {
        "size": 2, "totalSize": 2, "done": True, "queryLocator": None, "entityTypeName": "CustomField"}  # fmt: skip
    assert [(r["Id"], r["DeveloperName"], r["TableEnumOrId"]) for r in body["records"]] == [
        (on_opportunity, "Referral_Link", "Opportunity"),
        (on_object, "Solution_Type", object_id),  # a custom object's fields name its CustomObject id
    ]
    url = f"/services/data/v60.0/tooling/sobjects/CustomField/{on_opportunity}"
    assert body["records"][0]["attributes"] == {"type": "CustomField", "url": url}
    found = bare.get(
        "/tooling/query", params={"q": "SELECT Id FROM CustomObject WHERE DeveloperName = 'Microsoft_Solution'"}
    )
    assert [r["Id"] for r in found.json()["records"]] == [object_id]

    got = bare.get(f"/tooling/sobjects/CustomField/{on_object}").json()
    assert (got["FullName"], got["DeveloperName"], got["Length"], got["Description"]) == (
        "Microsoft_Solution__c.Solution_Type__c", "Solution_Type", 100, "What kind of solution")  # fmt: skip
    assert got["Metadata"] == text
    assert bare.get(f"/tooling/sobjects/CustomObject/{object_id}").json()["Metadata"]["sharingModel"] == "ReadWrite"
    one = bare.get(
        "/tooling/query",
        params={"q": f"SELECT FullName, Metadata FROM CustomField WHERE Id = '{on_object}'"},  # noqa: S608
    )
    assert one.json()["records"][0]["Metadata"]["length"] == 100

    many = bare.get("/tooling/query", params={"q": "SELECT Id, Metadata FROM CustomField"})
    assert (many.status_code, error_of(many)["errorCode"]) == (400, "MALFORMED_QUERY")
    assert "no more than one row for retrieval. Result size: 2" in error_of(many)["message"]
    unknown = bare.get("/tooling/query", params={"q": "SELECT Id FROM FieldDefinition"})
    assert error_of(unknown)["errorCode"] == "INVALID_TYPE"
    missing = bare.get("/tooling/sobjects/CustomField/00N8d0000000001")
    assert (missing.status_code, error_of(missing)["errorCode"]) == (404, "NOT_FOUND")


def test_a_custom_object_with_a_master_detail_to_opportunity(bare: httpx.Client, bare_sim: SalesforceSimulator) -> None:
    object_id = tooling(bare, "CustomObject", {"FullName": "Microsoft_Solution__c", "Metadata": {
        "label": "Microsoft Solution", "pluralLabel": "Microsoft Solutions",
        "nameField": {"type": "Text", "label": "Solution Name"}, "deploymentStatus": "Deployed",
        "sharingModel": "ReadWrite"}})  # fmt: skip
    tooling(bare, "CustomField", {"FullName": "Microsoft_Solution__c.Opportunity__c", "Metadata": {
        "type": "MasterDetail", "label": "Opportunity", "referenceTo": "Opportunity",
        "relationshipName": "Microsoft_Solutions", "relationshipLabel": "Microsoft Solutions"}})  # fmt: skip

    # Nobody may use the object yet: it is not in describe or SOQL (ObjectPermissions decide, access.py).
    assert bare.get("/sobjects/Microsoft_Solution__c/describe").status_code == 404
    assert error_of(records_response(bare, "SELECT Id FROM Microsoft_Solution__c"))["errorCode"] == "INVALID_TYPE"
    grant(bare, bare_sim.integration_user_id, objects=["Microsoft_Solution__c"])

    solution = bare.get("/sobjects/Microsoft_Solution__c/describe").json()
    names = [f["name"] for f in solution["fields"]]
    assert "OwnerId" not in names  # a detail record is owned through its master
    assert bare.get(f"/tooling/sobjects/CustomObject/{object_id}").json()["SharingModel"] == "ControlledByParent"
    master = _field(solution, "Opportunity__c")
    expected = {"type": "reference", "nillable": False, "updateable": False, "cascadeDelete": True,
                "relationshipName": "Opportunity__r", "referenceTo": ["Opportunity"], "relationshipOrder": 0,
                "custom": True}  # fmt: skip
    assert {k: master[k] for k in expected} == expected
    assert (solution["custom"], solution["keyPrefix"]) == (True, "a0S")
    children = bare.get("/sobjects/Opportunity/describe").json()["childRelationships"]
    assert {"childSObject": "Microsoft_Solution__c", "field": "Opportunity__c", "cascadeDelete": True,
            "relationshipName": "Microsoft_Solutions__r"}.items() <= next(
        c for c in children if c["relationshipName"] == "Microsoft_Solutions__r").items()  # fmt: skip

    opp, other = opportunity(bare), opportunity(bare, Name="Other")
    missing = bare.post("/sobjects/Microsoft_Solution__c", json={"Name": "Azure"})
    assert error_of(missing)["errorCode"] == "REQUIRED_FIELD_MISSING"
    solution_id = create(bare, "Microsoft_Solution__c", Name="Azure", Opportunity__c=opp)
    moved = bare.patch(f"/sobjects/Microsoft_Solution__c/{solution_id}", json={"Opportunity__c": other})
    assert error_of(moved)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"  # not reparentable
    rows = records(bare, f"SELECT Name, (SELECT Name FROM Microsoft_Solutions__r) FROM Opportunity WHERE Id = '{opp}'")  # noqa: S608
    assert rows[0]["Microsoft_Solutions__r"]["records"][0]["Name"] == "Azure"
    # Another master-detail on an object that has records is refused.
    second = {"type": "MasterDetail", "label": "Account", "referenceTo": "Account", "relationshipName": "Solutions"}
    late = bare.post(
        "/tooling/sobjects/CustomField", json={"FullName": "Microsoft_Solution__c.Account__c", "Metadata": second}
    )
    assert (late.status_code, error_of(late)["errorCode"]) == (400, "FIELD_INTEGRITY_EXCEPTION")
    assert bare.delete(f"/sobjects/Opportunity/{opp}").status_code == 204
    assert records(bare, "SELECT Id FROM Microsoft_Solution__c") == []  # cascade


def records_response(api: httpx.Client, soql: str) -> httpx.Response:
    return api.get("/query", params={"q": soql})


def _text(name: str, **metadata: Any) -> dict[str, Any]:
    return {"FullName": name, "Metadata": {"type": "Text", "label": "X", "length": 50, **metadata}}


OBJECT = {"label": "Thing", "pluralLabel": "Things", "nameField": {"type": "Text", "label": "Thing Name"},
          "deploymentStatus": "Deployed", "sharingModel": "ReadWrite"}  # fmt: skip
REFUSED: list[tuple[str, str, dict[str, Any], int, str, str]] = [
    ("duplicate field", "CustomField", _text("Opportunity.Existing__c"), 400, "DUPLICATE_DEVELOPER_NAME",
     "You can't create a custom object or custom field with a duplicate developer name."),
    ("duplicate, other case", "CustomField", _text("opportunity.EXISTING__c"), 400, "DUPLICATE_DEVELOPER_NAME",
     "duplicate developer name"),
    ("no __c", "CustomField", _text("Opportunity.Referral"), 400, "FIELD_INTEGRITY_EXCEPTION",
     "Invalid fullName, must end in __c"),
    ("standard name", "CustomField", _text("Opportunity.Amount"), 400, "FIELD_INTEGRITY_EXCEPTION", "must end in __c"),
    ("two underscores", "CustomField", _text("Opportunity.Referral__Id__c"), 400, "FIELD_INTEGRITY_EXCEPTION",
     "not contain two consecutive underscores"),
    ("leading digit", "CustomField", _text("Opportunity.1Referral__c"), 400, "FIELD_INTEGRITY_EXCEPTION",
     "begin with a letter"),
    ("trailing underscore", "CustomField", _text("Opportunity.Referral___c"), 400, "FIELD_INTEGRITY_EXCEPTION",
     "not end with an underscore"),
    ("space", "CustomField", _text("Opportunity.Referral Id__c"), 400, "FIELD_INTEGRITY_EXCEPTION",
     "not include spaces"),
    ("hyphen", "CustomField", _text("Opportunity.Referral-Id__c"), 400, "FIELD_INTEGRITY_EXCEPTION",
     "only contain underscores and alphanumeric characters"),
    ("41 characters", "CustomField", _text(f"Opportunity.{'A' * 41}__c"), 400, "FIELD_INTEGRITY_EXCEPTION",
     "longer than 40"),
    ("no object", "CustomField", _text("Nope__c.Referral__c"), 400, "FIELD_INTEGRITY_EXCEPTION", "no object Nope__c"),
    ("no dot", "CustomField", _text("Referral__c"), 400, "FIELD_INTEGRITY_EXCEPTION", "<object>.<field>"),
    ("unknown type", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {"type": "Texty", "label": "X"}},
     400, "JSON_PARSER_ERROR", "Cannot deserialize instance of FieldType from VALUE_STRING value Texty"),
    ("type not simulated", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {"type": "Html", "label": "X"}},
     400, "FIELD_INTEGRITY_EXCEPTION", "does not implement CustomField type Html"),
    ("no label", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {"type": "Url"}}, 400,
     "FIELD_INTEGRITY_EXCEPTION", "Must specify a non-empty label for the CustomField"),
    ("text without length", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {"type": "Text", "label": "X"}},
     400, "FIELD_INTEGRITY_EXCEPTION", "Text fields require length"),
    ("text too long", "CustomField", _text("Opportunity.X__c", length=256), 400, "FIELD_INTEGRITY_EXCEPTION",
     "between 1 and 255"),
    ("long text, 1 line", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {
        "type": "LongTextArea", "label": "X", "length": 32768, "visibleLines": 1}}, 400, "FIELD_INTEGRITY_EXCEPTION",
     "visibleLines must be between 2 and 50"),
    ("checkbox without default", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {
        "type": "Checkbox", "label": "X"}}, 400, "FIELD_INTEGRITY_EXCEPTION", "defaultValue"),
    ("picklist without values", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {
        "type": "Picklist", "label": "X", "valueSet": {"valueSetDefinition": {"value": []}}}}, 400,
     "FIELD_INTEGRITY_EXCEPTION", "at least one value"),
    ("external id on a checkbox", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {
        "type": "Checkbox", "label": "X", "defaultValue": "false", "externalId": True}}, 400,
     "FIELD_INTEGRITY_EXCEPTION", "only for Text, Number and Email"),
    ("lookup to nothing", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {
        "type": "Lookup", "label": "X", "referenceTo": "Nope__c", "relationshipName": "Xs"}}, 400,
     "FIELD_INTEGRITY_EXCEPTION", "no object Nope__c"),
    ("master-detail on a standard object", "CustomField", {"FullName": "Opportunity.X__c", "Metadata": {
        "type": "MasterDetail", "label": "X", "referenceTo": "Account", "relationshipName": "Xs"}}, 400,
     "FIELD_INTEGRITY_EXCEPTION", "only be created on custom objects"),
    ("unknown property", "CustomField", {**_text("Opportunity.X__c"), "DeveloperName": "X"}, 400, "INVALID_FIELD",
     "No such column 'DeveloperName'"),
    ("no Metadata", "CustomField", {"FullName": "Opportunity.X__c"}, 400, "REQUIRED_FIELD_MISSING", "[Metadata]"),
    ("duplicate object", "CustomObject", {"FullName": "thing__c", "Metadata": OBJECT}, 400, "DUPLICATE_DEVELOPER_NAME",
     "duplicate developer name"),
    ("object without __c", "CustomObject", {"FullName": "Gadget", "Metadata": OBJECT}, 400,
     "FIELD_INTEGRITY_EXCEPTION", "must end in __c"),
    ("object without plural", "CustomObject", {"FullName": "Gadget__c", "Metadata": {
        k: v for k, v in OBJECT.items() if k != "pluralLabel"}}, 400, "FIELD_INTEGRITY_EXCEPTION",
     "non-empty pluralLabel"),
    ("bad sharing model", "CustomObject", {"FullName": "Gadget__c", "Metadata": {**OBJECT, "sharingModel": "Open"}},
     400, "JSON_PARSER_ERROR", "SharingModel"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "kind", "body", "status", "code", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_duplicates_bad_names_and_bad_definitions_are_refused(
    bare: httpx.Client, case: str, kind: str, body: dict[str, Any], status: int, code: str, message: str
) -> None:
    tooling(bare, "CustomField", _text("Opportunity.Existing__c"))
    tooling(bare, "CustomObject", {"FullName": "Thing__c", "Metadata": OBJECT})

    response = bare.post(f"/tooling/sobjects/{kind}", json=body)

    error = error_of(response)
    assert (response.status_code, error["errorCode"]) == (status, code), response.text
    assert message in error["message"]
    listed = bare.get("/tooling/query", params={"q": f"SELECT Id FROM {kind}"}).json()  # noqa: S608
    assert listed["totalSize"] == 1  # nothing was created

"""What an org provisioned for the sync adds (DESIGN.md, "Default CRM fields", the Salesforce paragraph), as the
Tooling API request bodies that create it, and the permission set that lets the API user see it.

On Opportunity and Lead: the referral fields; the ``Microsoft_Solution__c`` custom object, a
master-detail child of Opportunity (child relationship ``Microsoft_Solutions__r``); on Account and Contact
the sync's keys (External ID, unique). The bodies are the shapes
``tooling.py`` documents (crm-apis.md B6): Text has a length, Long Text Area a length and visible lines,
Checkbox a default, the help picklist is restricted to the six ``assistanceRequestCode`` strings, the
referral identifier is an External ID marked unique (case-insensitive, the default), and the master-detail
field is required, not reparentable and cascades deletes from its master (Salesforce Help, "Object
Relationships Overview").

``schema="provisioned"`` is a bare org after exactly these creates (:func:`provision`) plus what an admin
does so the integration user can use them (:func:`grant`): a permission set with read/edit on every field
FLS governs and full access to the custom object, assigned to that user. An app provisioning a bare org
over HTTP sends the same bodies (tests/sims/salesforce/test_tooling_provisioning.py does).
"""

from __future__ import annotations

from typing import Any

from sandbox.sims.salesforce import access
from sandbox.sims.salesforce.schema import Schema
from sandbox.sims.salesforce.setup import OBJECT_FLAGS

SOLUTION = "Microsoft_Solution__c"
SOLUTIONS_RELATIONSHIP = "Microsoft_Solutions__r"
# The six assistanceRequestCode values, in the order DESIGN.md gives them; the app lists them too
# (shared.mapping.model.HELP_CODES), and on purpose not from here (sandbox/sims/__init__.py).
HELP_VALUES = (
    "GeneralOrOther",
    "CustomerTechnicalArchitecture",
    "ProofOfConceptOrDemo",
    "QuotesOrLicensing",
    "PostSalesCustomerSuccess",
    "WorkloadSpecificValueProposition",
)
REFERRAL_OBJECTS = ("Opportunity", "Lead")
# The permission set an admin made for the integration user of a provisioned org (names: the simulator's).
PERMISSION_SET = {"Name": "Cosell_Sync_Integration", "Label": "Co-sell sync integration"}


def _field(sobject: str, name: str, **metadata: Any) -> dict[str, Any]:
    return {"FullName": f"{sobject}.{name}", "Metadata": metadata}


def referral_fields(sobject: str) -> list[dict[str, Any]]:
    help_values = [{"fullName": v, "label": v, "default": False} for v in HELP_VALUES]
    return [
        _field(sobject, "Sync_with_Partner_Center__c", type="Checkbox", label="Sync with Partner Center",
               defaultValue="false"),
        _field(sobject, "Referral_Identifier__c", type="Text", label="Referral Identifier", length=100,
               externalId=True, unique=True, caseSensitive=False),
        _field(sobject, "Referral_Link__c", type="Url", label="Referral Link"),
        _field(sobject, "How_can_Microsoft_help__c", type="Picklist", label="How can Microsoft help",
               valueSet={"restricted": True, "valueSetDefinition": {"sorted": False, "value": help_values}}),
        _field(sobject, "Referral_Visible__c", type="Checkbox", label="Referral Visible", defaultValue="false"),
        _field(sobject, "Microsoft_CRM_Identifier__c", type="Text", label="Microsoft CRM Identifier", length=100),
        _field(sobject, "Referral_Program__c", type="Text", label="Referral Program", length=100),
        _field(sobject, "Audit__c", type="LongTextArea", label="Audit", length=32768, visibleLines=10),
    ]  # fmt: skip


SOLUTION_OBJECT: dict[str, Any] = {
    "FullName": SOLUTION,
    "Metadata": {
        "label": "Microsoft Solution",
        "pluralLabel": "Microsoft Solutions",
        # A custom object's Name is a required Text(80) unless it is an auto-number.
        "nameField": {"type": "Text", "label": "Microsoft Solution Name"},
        "deploymentStatus": "Deployed",
        "sharingModel": "ControlledByParent",
    },
}

SOLUTION_FIELDS = [
    _field(SOLUTION, "Solution_Identifier__c", type="Text", label="Solution Identifier", length=100),
    _field(SOLUTION, "Solution_Type__c", type="Text", label="Solution Type", length=100),
    _field(SOLUTION, "Opportunity__c", type="MasterDetail", label="Opportunity", referenceTo="Opportunity",
           relationshipName="Microsoft_Solutions", relationshipLabel="Microsoft Solutions", relationshipOrder=0,
           reparentableMasterDetail=False, writeRequiresMasterRead=False),
]  # fmt: skip

# The customer's and the contact's keys (UUIDs): External ID, unique, so a create by upsert on them makes one row
# however many workers create the same customer at once.
KEY_FIELDS = [
    _field("Account", "Cosell_Account_Key__c", type="Text", label="Co-sell account key", length=36,
           externalId=True, unique=True, caseSensitive=False),
    _field("Contact", "Cosell_Contact_Key__c", type="Text", label="Co-sell contact key", length=36,
           externalId=True, unique=True, caseSensitive=False),
]  # fmt: skip

OBJECTS = [SOLUTION_OBJECT]
FIELDS = [*(f for sobject in REFERRAL_OBJECTS for f in referral_fields(sobject)), *SOLUTION_FIELDS, *KEY_FIELDS]


def field_permissions(schema: Schema) -> list[dict[str, Any]]:
    """FieldPermissions bodies (without ParentId) for every created field a permission set can govern."""
    grants = []
    for body in FIELDS:
        sobject, _, name = body["FullName"].partition(".")
        obj = schema.objects[sobject]
        if access.permissionable(obj, obj.fields[name]):
            grants.append({"SobjectType": sobject, "Field": body["FullName"], "PermissionsRead": True,
                           "PermissionsEdit": True})  # fmt: skip
    return grants


def object_permissions() -> list[dict[str, Any]]:
    """ObjectPermissions bodies (without ParentId): read, create, edit and delete on the custom object."""
    flags = {flag: flag in OBJECT_FLAGS[:4] for flag in OBJECT_FLAGS}
    return [{"SobjectType": body["FullName"], **flags} for body in OBJECTS]

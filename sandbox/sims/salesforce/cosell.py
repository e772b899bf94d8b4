"""What an org provisioned for the sync adds (DESIGN.md, "Default CRM fields", the Salesforce paragraph).

On Opportunity and Lead: the referral fields; and the ``Microsoft_Solution__c`` custom object, a
master-detail child of Opportunity (child relationship ``Microsoft_Solutions__r``). Custom field
properties follow the Tooling API ``CustomField`` metadata (crm-apis.md B6): Text has a length,
Long Text Area is not filterable, Checkbox has a default, a restricted Picklist refuses other values,
an External ID text field marked unique refuses duplicates (case-insensitively, the default), and a
master-detail field is required, not reparentable by default, and cascades deletes from its master
(Salesforce Help, "Object Relationships Overview").
"""

from __future__ import annotations

from dataclasses import replace

from sandbox.sims.salesforce.objects import checkbox, make, picklist, reference, required, text
from sandbox.sims.salesforce.schema import Field, SObject

SOLUTION = "Microsoft_Solution__c"
SOLUTIONS_RELATIONSHIP = "Microsoft_Solutions__r"
SOLUTION_KEY_PREFIX = "a0S"  # custom objects get an a0… prefix chosen by the org
# The six assistanceRequestCode values, in the order DESIGN.md gives them.
HELP_VALUES = (
    "GeneralOrOther",
    "CustomerTechnicalArchitecture",
    "ProofOfConceptOrDemo",
    "QuotesOrLicensing",
    "PostSalesCustomerSuccess",
    "WorkloadSpecificValueProposition",
)


CHILD_NAMES = {(SOLUTION, "Opportunity__c"): SOLUTIONS_RELATIONSHIP}


def _custom(f: Field) -> Field:
    return replace(f, custom=True)


def referral_fields() -> list[Field]:
    return [
        _custom(checkbox("Sync_with_Partner_Center__c", "Sync with Partner Center")),
        _custom(text("Referral_Identifier__c", "Referral Identifier", 100, external_id=True, unique=True)),
        _custom(Field("Referral_Link__c", "url", "Referral Link", length=255)),
        _custom(picklist("How_can_Microsoft_help__c", "How can Microsoft help", HELP_VALUES, restricted=True)),
        _custom(checkbox("Referral_Visible__c", "Referral Visible")),
        _custom(text("Microsoft_CRM_Identifier__c", "Microsoft CRM Identifier", 100)),
        _custom(text("Referral_Program__c", "Referral Program", 100)),
        _custom(Field("Audit__c", "textarea", "Audit", length=32768, long_text=True)),
    ]


def solution() -> SObject:
    obj = make(
        SOLUTION,
        "Microsoft Solution",
        "Microsoft Solutions",
        SOLUTION_KEY_PREFIX,
        [
            # A custom object's Name is a required Text(80) unless it is an auto-number.
            required(text("Name", "Microsoft Solution Name", 80, name_field=True)),
            _custom(text("Solution_Identifier__c", "Solution Identifier", 100)),
            _custom(text("Solution_Type__c", "Solution Type", 100)),
            _custom(
                required(
                    reference(
                        "Opportunity__c",
                        "Opportunity",
                        "Opportunity",
                        "Opportunity__r",
                        updateable=False,  # "Allow reparenting" is off by default
                        cascade_delete=True,
                        master_detail=True,
                    )
                )
            ),
        ],
        "DESIGN.md, Default CRM fields (custom object)",
        custom=True,
    )
    # Master-detail children have no owner of their own; their OwnerId is the master's (not modelled).
    return obj


def provision(objects: dict[str, SObject]) -> None:
    for name in ("Opportunity", "Lead"):
        obj = objects[name]
        obj.fields.update({f.name: f for f in referral_fields()})
    objects[SOLUTION] = solution()

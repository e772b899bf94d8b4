"""The fields Microsoft's co-sell connector package adds to Opportunity and Lead, for an org that installed it.

"Partner Center Referrals Synchronization for Salesforce" asks the admin to install a package of custom
fields and objects (``installPackage.apexp?p0=04t2w000006WIwV``, connector docs 2021-2023). No org has its
fields unless a test or the sandbox installs it (:meth:`SalesforceSimulator.install_connector`), so until
then a query or write naming them is refused like any unknown field.

Sources, and what is the simulator's choice:

- Field names and types: the 2020 setup guide's table, from before the package (connector-salesforce.md,
  ms.date 05/17/2020: ``Referral_Identifier__c`` Text(100) External ID (indexed, not said to be unique),
  ``Referral_Link__c`` URL(255), ``Audit__c`` Long Text Area(100000) with 4 visible lines,
  ``How_can_Microsoft_help__c`` Picklist, ``Products__c`` Text(255), and a "Sync with Partner Center"
  checkbox printed as ``sync-with-partner-center-c``). The visibility, Microsoft CRM id and program
  fields appear on the later forms without API names; the names here are the simulator's choice (the
  ones the sync uses).
- The namespace: whether the package is managed, and its prefix, are not documented. :data:`NAMESPACE` is
  the simulator's choice; ``install_connector(namespace="")`` installs the fields unprefixed.
- Picklist values: the labels of the docs' screenshot, used as the API values (what Salesforce does when
  an admin types values in); an adopting app must not assume the sync's codes.
- Installed "for all users" by default: the integration user gets read access through a permission set
  (``grant=False`` leaves them hidden from it by field-level security, as an install for admins only does).
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "pcref"  # the simulator's choice; the real package's prefix is unconfirmed
OBJECTS = ("Opportunity", "Lead")
HELP_VALUES = (
    "Workload Specific Value Proposition",
    "Customer Technical Architecture",
    "Proof Of Concept or Demo",
    "Quotes or Licensing",
    "Post Sales Customer Success",
    "General or Other",
)
PERMISSION_SET = {"Name": "Partner_Center_Referrals_Connector", "Label": "Partner Center Referrals connector"}


def permission_set(namespace: str) -> dict[str, str]:
    """The permission set an install "for all users" amounts to (one per installed package)."""
    suffix = f"_{namespace}" if namespace else ""
    return {
        "Name": PERMISSION_SET["Name"] + suffix,
        "Label": PERMISSION_SET["Label"] + (f" ({namespace})" if namespace else ""),
    }


def fields() -> list[tuple[str, dict[str, Any]]]:
    """(field name without namespace, CustomField metadata) of each packaged field."""
    help_values = [{"fullName": v, "label": v, "default": False} for v in HELP_VALUES]
    return [
        ("Sync_with_Partner_Center__c", {"type": "Checkbox", "label": "Sync With Partner Center",
                                         "defaultValue": "false"}),
        # "Text(100)(External ID)", indexed; the guide does not make it unique (the connector's doubles exist).
        ("Referral_Identifier__c", {"type": "Text", "label": "Referral Identifier", "length": 100,
                                    "externalId": True}),
        ("Referral_Link__c", {"type": "Url", "label": "Referral Link"}),
        ("How_can_Microsoft_help__c", {"type": "Picklist", "label": "How can Microsoft help?",
                                       "valueSet": {"restricted": True,
                                                    "valueSetDefinition": {"sorted": False, "value": help_values}}}),
        ("Referral_Visible__c", {"type": "Checkbox", "label": "Referral visible to Microsoft sellers?",
                                 "defaultValue": "false"}),
        ("Microsoft_CRM_Identifier__c", {"type": "Text", "label": "Microsoft CRM Identifier", "length": 100}),
        ("Referral_Program__c", {"type": "Text", "label": "Referral Program", "length": 100}),
        ("Audit__c", {"type": "LongTextArea", "label": "Audit", "length": 100000, "visibleLines": 4}),
        ("Products__c", {"type": "Text", "label": "Products: Obsolete", "length": 255}),
    ]  # fmt: skip

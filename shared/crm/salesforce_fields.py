"""Salesforce defaults of the field map (DESIGN.md), field sizes, and the stage rules.

Standard fields and sizes: Salesforce Object Reference (Opportunity, Lead, Account, Contact,
OpportunityContactRole). Custom fields: DESIGN.md ("Default CRM fields", the Salesforce paragraph).
"""

from __future__ import annotations

import functools

from shared.crm.fields import FieldMap, knob_field_map, with_overrides

_REFERRAL_FIELDS = {
    "sync": "Sync_with_Partner_Center__c",
    "referral_id": "Referral_Identifier__c",
    "referral_link": "Referral_Link__c",
    "help_needed": "How_can_Microsoft_help__c",
    "visible": "Referral_Visible__c",
    "microsoft_crm_id": "Microsoft_CRM_Identifier__c",
    "referral_program": "Referral_Program__c",
    "audit": "Audit__c",
}

SALESFORCE_DEFAULTS: dict[str, dict[str, str]] = {
    "opportunity": {
        "object": "Opportunity",
        "name": "Name",
        "deal_value": "Amount",
        "currency": "CurrencyIsoCode",
        "close_date": "CloseDate",
        "description": "Description",
        "stage": "StageName",
        **_REFERRAL_FIELDS,
    },
    "lead": {
        "object": "Lead",
        # A Lead has no deal value or close date: the opportunity made on acceptance carries them.
        "description": "Description",
        "status": "Status",
        "company": "Company",
        "first_name": "FirstName",
        "last_name": "LastName",
        "email": "Email",
        "phone": "Phone",
        "address_line1": "Street",
        "city": "City",
        "state": "State",
        "postal_code": "PostalCode",
        "country": "CountryCode",
        **_REFERRAL_FIELDS,
    },
    "account": {
        "object": "Account",
        "name": "Name",
        "address_line1": "BillingStreet",
        "city": "BillingCity",
        "state": "BillingState",
        "postal_code": "BillingPostalCode",
        "country": "BillingCountryCode",
        # External ID, unique: the customer's key (shared.crm.matching.account_id), the upsert key of a create.
        "key": "Cosell_Account_Key__c",
    },
    "contact": {
        "object": "Contact",
        "first_name": "FirstName",
        "last_name": "LastName",
        "email": "Email",
        "phone": "Phone",
        # External ID, unique: the email's key (shared.crm.matching.contact_id), the upsert key of a create.
        "key": "Cosell_Contact_Key__c",
    },
    "solution": {
        "object": "Microsoft_Solution__c",
        "relationship": "Microsoft_Solutions__r",
        "id": "Solution_Identifier__c",
        "name": "Name",
        "type": "Solution_Type__c",
        "parent": "Opportunity__c",
    },
}

# Field sizes (Object Reference "Properties"/length; DESIGN.md for the custom fields).
MAX_LENGTH: dict[str, dict[str, int]] = {
    "Opportunity": {
        "Name": 120,
        "Description": 32000,
        "Referral_Identifier__c": 100,
        "Referral_Link__c": 255,
        "Microsoft_CRM_Identifier__c": 100,
        "Referral_Program__c": 100,
    },
    "Lead": {
        "Company": 255,
        "FirstName": 40,
        "LastName": 80,
        "Email": 80,
        "Phone": 40,
        "Street": 255,
        "City": 40,
        "State": 80,
        "PostalCode": 20,
        "Description": 32000,
        "Referral_Identifier__c": 100,
        "Referral_Link__c": 255,
        "Microsoft_CRM_Identifier__c": 100,
        "Referral_Program__c": 100,
    },
    "Account": {
        "Name": 255,
        "BillingStreet": 255,
        "BillingCity": 40,
        "BillingState": 80,
        "BillingPostalCode": 20,
        "Cosell_Account_Key__c": 36,
    },
    "Contact": {"FirstName": 40, "LastName": 80, "Email": 80, "Phone": 40, "Cosell_Contact_Key__c": 36},
    "Microsoft_Solution__c": {"Name": 80, "Solution_Identifier__c": 100, "Solution_Type__c": 100},
}

STAGE_WON = "Closed Won"
STAGE_LOST = "Closed Lost"


# The Salesforce field map: these defaults, the connector's three knobs, then CRM_FIELD_MAP over all.
salesforce_field_map = functools.partial(knob_field_map, SALESFORCE_DEFAULTS)


# Microsoft's co-sell connector for Salesforce: the field names of the 2020 setup guide, which had the
# admin create them by hand (connector-salesforce.md, ms.date 05/17/2020, "Set up fields and
# relationships": Referral_Identifier__c Text(100) External ID, Referral_Link__c, Audit__c,
# How_can_Microsoft_help__c, and "sync-with-partner-center-c" as printed). From 2021 a package
# (04t2w000006WIwV) installs them; whether it adds a namespace prefix, and the names of its visibility,
# Microsoft CRM id and program fields, are not documented (unconfirmed): those three are assumed to be
# named as the sync's are. The adapter finds a namespaced copy (``<ns>__Referral_Identifier__c``) by
# itself; CONNECTOR_FIELD_MAP names any field exactly. A name equal to the sync's own field is the same
# field: an org set up by hand needs no adoption at all.
SALESFORCE_CONNECTOR: dict[str, dict[str, str]] = {
    "opportunity": dict(_REFERRAL_FIELDS),
    "lead": dict(_REFERRAL_FIELDS),
}


def salesforce_connector_map(overrides_json: str | None = None) -> tuple[FieldMap, frozenset[tuple[str, str]]]:
    """The connector's fields and which (record, field) were named by CONNECTOR_FIELD_MAP (used as given)."""
    return with_overrides(SALESFORCE_CONNECTOR, overrides_json, "CONNECTOR_FIELD_MAP")

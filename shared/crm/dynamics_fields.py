"""Dynamics 365 defaults of the field map (DESIGN.md), the help choice values, and the connector's knobs.

DEAL_VALUE_FIELD, DEAL_CURRENCY_FIELD and ACCOUNT_COUNTRY_FIELD override the connector's three
knobs; CRM_FIELD_MAP overrides any other column.
"""

from __future__ import annotations

import functools

from shared.crm.fields import FieldMap, knob_field_map, with_overrides

# The sync's own columns, the same on opportunity and lead.
_REFERRAL_COLUMNS = {
    "sync": "cosell_syncwithpartnercenter",
    "referral_id": "cosell_referralid",
    "referral_link": "cosell_referrallink",
    "help_needed": "cosell_helpneeded",
    "visible": "cosell_visible",
    "microsoft_crm_id": "cosell_microsoftcrmid",
    "referral_program": "cosell_referralprogram",
    "audit": "cosell_audit",
}
# The address block lead and account share (address1_* on both tables).
_ADDRESS_COLUMNS = {
    "address_line1": "address1_line1",
    "address_line2": "address1_line2",
    "city": "address1_city",
    "state": "address1_stateorprovince",
    "postal_code": "address1_postalcode",
    "country": "address1_country",
}
# The person columns lead and contact share.
_PERSON_COLUMNS = {
    "first_name": "firstname",
    "last_name": "lastname",
    "email": "emailaddress1",
    "phone": "telephone1",
}

DYNAMICS_DEFAULTS: dict[str, dict[str, str]] = {
    "opportunity": {
        "name": "name",
        "deal_value": "estimatedvalue",
        "currency": "transactioncurrencyid",
        "close_date": "estimatedclosedate",
        "description": "description",
        **_REFERRAL_COLUMNS,
    },
    "lead": {
        "name": "subject",
        "deal_value": "estimatedamount",
        "currency": "transactioncurrencyid",
        "close_date": "estimatedclosedate",
        "description": "description",
        "company": "companyname",
        **_PERSON_COLUMNS,
        **_ADDRESS_COLUMNS,
        **_REFERRAL_COLUMNS,
    },
    "account": {
        "name": "name",
        **_ADDRESS_COLUMNS,
    },
    "contact": dict(_PERSON_COLUMNS),
    "solution": {
        "table": "cosell_solution",
        "entity_set": "cosell_solutions",
        "key": "cosell_solutionid",
        "id": "cosell_solutionidentifier",
        "name": "cosell_name",
        "type": "cosell_solutiontype",
        "parent": "cosell_opportunityid",
    },
}

# cosell_helpneeded choice values (publisher option prefix 10000) for assistanceRequestCode.
DYNAMICS_HELP_NEEDED: dict[str, int] = {
    "GeneralOrOther": 100000000,
    "CustomerTechnicalArchitecture": 100000001,
    "ProofOfConceptOrDemo": 100000002,
    "QuotesOrLicensing": 100000003,
    "PostSalesCustomerSuccess": 100000004,
    "WorkloadSpecificValueProposition": 100000005,
}


# The Dynamics field map: these defaults, the connector's three knobs, then CRM_FIELD_MAP over all.
dynamics_field_map = functools.partial(knob_field_map, DYNAMICS_DEFAULTS)


# Microsoft's co-sell connector solution ("Partner Center Referrals Synchronization for Dynamics 365"):
# its columns on opportunity, as observed on a live org's opportunity table (a partner's published
# Link-to-Fabric profile of it, found in public code: ``msft_microsoftpartnercenterreferralidentifier``,
# ``…referrallink``, ``…referralsync``, ``…referralvisible``, ``…referralprogram``, ``…referralsyncaudit``,
# ``msft_microsoftpartnercenterhelp``, ``msft_microsoftcrmidentifier``); the publisher prefix ``msft_`` is
# also the one of the solution's environment variables (connector docs). Microsoft documents none of
# these names; the same names on lead are assumed (unconfirmed). CONNECTOR_FIELD_MAP overrides any of them.
_CONNECTOR_COLUMNS = {
    "referral_id": "msft_microsoftpartnercenterreferralidentifier",
    "referral_link": "msft_microsoftpartnercenterreferrallink",
    "sync": "msft_microsoftpartnercenterreferralsync",
    "visible": "msft_microsoftpartnercenterreferralvisible",
    "help_needed": "msft_microsoftpartnercenterhelp",
    "microsoft_crm_id": "msft_microsoftcrmidentifier",
    "referral_program": "msft_microsoftpartnercenterreferralprogram",
    "audit": "msft_microsoftpartnercenterreferralsyncaudit",
}
DYNAMICS_CONNECTOR: dict[str, dict[str, str]] = {
    "opportunity": dict(_CONNECTOR_COLUMNS),
    "lead": dict(_CONNECTOR_COLUMNS),
}


def dynamics_connector_map(overrides_json: str | None = None) -> FieldMap:
    """The connector's columns: the defaults above, with CONNECTOR_FIELD_MAP's overrides."""
    return with_overrides(DYNAMICS_CONNECTOR, overrides_json, "CONNECTOR_FIELD_MAP")[0]

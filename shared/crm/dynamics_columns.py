"""String column sizes the Dynamics adapter writes to, so a long value is cut rather than refused.

Standard columns: Microsoft's entity reference (powerapps-docs ``…/reference/entities/account.md``,
``contact.md``; dynamics-365-customer-engagement ``ce/developer/reference/entities/opportunity.md``,
``lead.md``: "MaxLength"). ``cosell_*`` columns: the sizes DESIGN.md gives them (the schema route
creates them so). A column this table does not know (a ``CRM_FIELD_MAP`` override) is not cut: the
CRM's own refusal then says which value is too long.
"""

from __future__ import annotations

_ADDRESS = {
    "address1_line1": 250,
    "address1_line2": 250,
    "address1_city": 80,
    "address1_stateorprovince": 50,
    "address1_postalcode": 20,
    "address1_country": 80,
}
_COSELL = {
    "cosell_referralid": 100,
    "cosell_referrallink": 200,
    "cosell_microsoftcrmid": 100,
    "cosell_referralprogram": 100,
}

MAX_LENGTH: dict[str, dict[str, int]] = {
    "opportunity": {"name": 300, "description": 2000, **_COSELL},
    "lead": {
        "subject": 300,
        "description": 2000,
        "companyname": 100,
        "firstname": 50,
        "lastname": 50,
        "emailaddress1": 100,
        "telephone1": 50,
        **_ADDRESS,
        **_COSELL,
    },
    "account": {"name": 160, **_ADDRESS},
    "contact": {"firstname": 50, "lastname": 50, "emailaddress1": 100, "telephone1": 50},
    "cosell_solution": {"cosell_name": 100, "cosell_solutionidentifier": 100, "cosell_solutiontype": 100},
}

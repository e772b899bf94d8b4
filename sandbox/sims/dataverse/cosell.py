"""The custom schema an org provisioned for the sync has (DESIGN.md, "Default CRM fields").

None of this exists on a fresh org: a ``bare`` simulator has no ``cosell_*`` column, no alternate key
and no ``cosell_solution`` table, so the app has to find out (metadata) and create it.

Names follow what the maker portal creates for publisher prefix ``cosell``: SchemaNames are
``cosell_`` + the display name without spaces, logical names are their lower case, choice values
start at the publisher's option prefix (10000, so 100000000). A provisioned org also has that
publisher and an unmanaged solution of it (:data:`PUBLISHER`, :data:`SOLUTION_RECORD`: the names
are the simulator's choice), which a bare org lacks until the app creates them. The lookup from ``cosell_solution`` to
``opportunity`` is the maker portal's shape for a lookup column named "OpportunityId": column
``cosell_OpportunityId`` (logical ``cosell_opportunityid``, read as ``_cosell_opportunityid_value``),
relationship ``cosell_opportunity_cosell_solution_OpportunityId``, single-valued navigation property
named by the column's SchemaName (``cosell_OpportunityId``: navigation names are case-sensitive, so
``cosell_opportunityid@odata.bind`` is refused), collection-valued navigation property on opportunity
named by the relationship. Source for the naming rules: crm-apis.md A4 ("For custom lookups use the
relationship's ReferencingEntityNavigationPropertyName, which is usually the SchemaName") and the
``msdyn_PredictiveScoreId`` navigation on ``ce/developer/reference/entities/opportunity.md``.
"""

from __future__ import annotations

from typing import Any

from sandbox.sims.dataverse.schema import AlternateKey, AttributeType, Column, Extension, Relationship, Table
from sandbox.sims.dataverse.tables import ACTIVE_INACTIVE, STATE, STATUS, SYSTEM, primary_key

# The six assistanceRequestCode values, in DESIGN.md's order.
HELP_NEEDED = {
    100000000: "GeneralOrOther",
    100000001: "CustomerTechnicalArchitecture",
    100000002: "ProofOfConceptOrDemo",
    100000003: "QuotesOrLicensing",
    100000004: "PostSalesCustomerSuccess",
    100000005: "WorkloadSpecificValueProposition",
}


# The sync's publisher and its unmanaged solution, as rows of the publisher / solution tables.
PUBLISHER = {
    "uniquename": "cosell",
    "friendlyname": "Co-sell",
    "customizationprefix": "cosell",
    "customizationoptionvalueprefix": 10000,
}
SOLUTION_RECORD = {"uniquename": "CosellSync", "friendlyname": "Co-sell sync", "version": "1.0.0.0"}


def _column(schema_name: str, display_name: str, kind: AttributeType, **facts: Any) -> Column:
    return Column(schema_name, kind, custom=True, display_name=display_name, **facts)


def _referral_columns() -> tuple[Column, ...]:
    """The same referral columns on opportunity and lead."""
    return (
        _column("cosell_SyncWithPartnerCenter", "Sync With Partner Center", "Boolean", default=False),
        _column("cosell_ReferralId", "Referral Id", "String", max_length=100, format="Text"),
        _column("cosell_ReferralLink", "Referral Link", "String", max_length=200, format="Url"),
        _column("cosell_HelpNeeded", "Help Needed", "Picklist", options=tuple(HELP_NEEDED.items())),
        _column("cosell_Visible", "Visible", "Boolean", default=False),
        _column("cosell_MicrosoftCrmId", "Microsoft Crm Id", "String", max_length=100, format="Text"),
        _column("cosell_ReferralProgram", "Referral Program", "String", max_length=100, format="Text"),
        # 4000 matches the app's default AUDIT_MAX_CHARS and the SDK's usual Memo size.
        _column("cosell_Audit", "Audit", "Memo", max_length=4000, format="TextArea"),
    )


REFERRAL_KEY = AlternateKey("cosell_ReferralId_Key", ("cosell_referralid",), display_name="Referral Id Key")

# A custom table, organization-owned: its rows belong to an opportunity, not to a user.
SOLUTION = Table(
    "cosell_Solution",
    "cosell_solutions",
    "cosell_solutionid",
    "cosell_name",
    "OrganizationOwned",
    (
        primary_key("cosell_SolutionId"),
        _column("cosell_Name", "Name", "String", max_length=100, format="Text", required="ApplicationRequired"),
        _column("cosell_SolutionIdentifier", "Solution Identifier", "String", max_length=100, format="Text"),
        _column("cosell_SolutionType", "Solution Type", "String", max_length=100, format="Text"),
        _column("cosell_PublisherName", "Publisher Name", "String", max_length=100, format="Text"),
        _column("cosell_OpportunityId", "Opportunity Id", "Lookup", targets=("opportunity",)),
        STATE,
        STATUS,
        *SYSTEM,
    ),
    (
        Relationship(
            "cosell_opportunity_cosell_solution_OpportunityId",
            "cosell_opportunityid",
            "opportunity",
            "cosell_OpportunityId",
            custom=True,
        ),
    ),
    states=ACTIVE_INACTIVE,
    display_name="Solution",
    display_collection_name="Solutions",
    custom=True,
    source="DESIGN.md, Default CRM fields (a custom table, created by the maker portal or the app)",
)

PROVISIONED = Extension(
    tables=(SOLUTION,),
    columns={"opportunity": _referral_columns(), "lead": _referral_columns()},
    keys={"opportunity": (REFERRAL_KEY,), "lead": (REFERRAL_KEY,)},
)

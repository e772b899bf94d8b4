"""The custom schema an org provisioned for the sync has (DESIGN.md, "Default CRM fields").

None of this exists on a fresh org: a ``bare`` simulator has no ``cosell_*`` column, no alternate key
and no ``cosell_solution`` table, so the app has to find out (metadata) and create it.

Names follow what the maker portal creates for publisher prefix ``cosell``: SchemaNames are
``cosell_`` + the display name without spaces, logical names are their lower case, choice values
start at the publisher's option prefix (100000000). The lookup from ``cosell_solution`` to
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

from sandbox.sims.dataverse.schema import AlternateKey, Column, Extension, Relationship, Table
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


def _referral_columns() -> tuple[Column, ...]:
    """The same referral columns on opportunity and lead."""
    return (
        Column("cosell_SyncWithPartnerCenter", "Boolean", default=False, custom=True),
        Column("cosell_ReferralId", "String", max_length=100, format="Text", custom=True),
        Column("cosell_ReferralLink", "String", max_length=200, format="Url", custom=True),
        Column("cosell_HelpNeeded", "Picklist", options=tuple(HELP_NEEDED.items()), custom=True),
        Column("cosell_Visible", "Boolean", default=False, custom=True),
        Column("cosell_MicrosoftCrmId", "String", max_length=100, format="Text", custom=True),
        Column("cosell_ReferralProgram", "String", max_length=100, format="Text", custom=True),
        # 4000 matches the app's default AUDIT_MAX_CHARS and the SDK's usual Memo size.
        Column("cosell_Audit", "Memo", max_length=4000, format="TextArea", custom=True),
    )


REFERRAL_KEY = AlternateKey("cosell_ReferralId_Key", ("cosell_referralid",))

# A custom table, organization-owned: its rows belong to an opportunity, not to a user.
SOLUTION = Table(
    "cosell_Solution",
    "cosell_solutions",
    "cosell_solutionid",
    "cosell_name",
    "OrganizationOwned",
    (
        primary_key("cosell_SolutionId"),
        Column("cosell_Name", "String", max_length=100, format="Text", required="ApplicationRequired", custom=True),
        Column("cosell_SolutionIdentifier", "String", max_length=100, format="Text", custom=True),
        Column("cosell_SolutionType", "String", max_length=100, format="Text", custom=True),
        Column("cosell_PublisherName", "String", max_length=100, format="Text", custom=True),
        Column("cosell_OpportunityId", "Lookup", targets=("opportunity",), custom=True),
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
    custom=True,
    source="DESIGN.md, Default CRM fields (a custom table, created by the maker portal or the app)",
)

PROVISIONED = Extension(
    tables=(SOLUTION,),
    columns={"opportunity": _referral_columns(), "lead": _referral_columns()},
    keys={"opportunity": (REFERRAL_KEY,), "lead": (REFERRAL_KEY,)},
)

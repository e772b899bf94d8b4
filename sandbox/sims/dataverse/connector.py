"""The columns Microsoft's co-sell connector solution adds to opportunity and lead, for an org that had it.

"Partner Center Referrals Synchronization for Dynamics 365" (AppSource, publisher prefix ``msft``) keeps a
referral's id, link, sync flag, visibility, help, Microsoft CRM id, program and audit trail in columns of
its own. No org has them unless a test or the sandbox installs the solution
(:meth:`DataverseSimulator.install_connector`), so a write naming them is refused like any unknown column
until then, as in an org without the solution.

Sources, and what is the simulator's choice:

- Logical names: observed on the opportunity table of a live org that had the solution (a partner's
  published Link-to-Fabric profile of its ``opportunity`` table, found in public code); the same names
  on lead are assumed. Microsoft documents none of them (cosell-connector-solution.md §2.1).
- Types: two-option toggles for sync and visibility, a choice for help, text for the rest, a long text
  audit trail (the docs' form screenshots, §2.1). Lengths: 100 for the referral id (the Salesforce guide's
  Text(100)), the rest the simulator's choice.
- SchemaNames' casing, the help choice's option values and order are the simulator's choice (not
  documented); the labels are the ones the docs' Salesforce picklist screenshot shows, and the connector's
  form shows "General Or Other". An adopting app must read them from the metadata, not assume them.
- The publisher and solution names are the simulator's choice (the screenshots show ``PartnerCenterReferra…``).
"""

from __future__ import annotations

from sandbox.sims.dataverse.schema import Column, Extension

# The help choice, as the connector's picklist lists it (labels from the docs; values the simulator's).
HELP_OPTIONS: tuple[tuple[int, str], ...] = (
    (100000000, "Workload Specific Value Proposition"),
    (100000001, "Customer Technical Architecture"),
    (100000002, "Proof Of Concept or Demo"),
    (100000003, "Quotes or Licensing"),
    (100000004, "Post Sales Customer Success"),
    (100000005, "General Or Other"),
)
PUBLISHER = {
    "uniquename": "MicrosoftPartnerCenter",
    "friendlyname": "Microsoft Partner Center",
    "customizationprefix": "msft",
    "customizationoptionvalueprefix": 10000,
}
SOLUTION_RECORD = {
    "uniquename": "PartnerCenterReferralsSynchronization",
    "friendlyname": "Partner Center Referrals Synchronization for Dynamics 365",
    "version": "1.0.2102.1",  # the version the 2021 screenshots show installed
}


def _column(schema_name: str, display_name: str, kind: str, **facts: object) -> Column:
    return Column(schema_name, kind, custom=True, display_name=display_name, **facts)  # type: ignore[arg-type]


def _columns() -> tuple[Column, ...]:
    return (
        _column("msft_MicrosoftPartnerCenterReferralIdentifier", "Referral Identifier", "String", max_length=100,
                format="Text"),
        _column("msft_MicrosoftPartnerCenterReferralLink", "Referral Link", "String", max_length=500, format="Url"),
        _column("msft_MicrosoftPartnerCenterReferralSync", "Sync With Partner Center", "Boolean", default=False),
        _column("msft_MicrosoftPartnerCenterReferralVisible", "Microsoft Partner Center Referral Visibility",
                "Boolean", default=False),
        _column("msft_MicrosoftPartnerCenterHelp", "How can Microsoft help?", "Picklist", options=HELP_OPTIONS),
        _column("msft_MicrosoftCrmIdentifier", "Microsoft CRM Identifier", "String", max_length=100, format="Text"),
        _column("msft_MicrosoftPartnerCenterReferralProgram", "Referral Program", "String", max_length=100,
                format="Text"),
        _column("msft_MicrosoftPartnerCenterReferralSyncAudit", "Audit", "Memo", max_length=100000,
                format="TextArea"),
        # "Products: Obsolete" (2021+ docs: "Don't use this field"); kept so an org looks like one that had it.
        _column("msft_MicrosoftPartnerCenterSolutions", "Products: Obsolete", "String", max_length=4000,
                format="Text"),
    )  # fmt: skip


CONNECTOR = Extension(columns={"opportunity": _columns(), "lead": _columns()})

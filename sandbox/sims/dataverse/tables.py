"""The standard tables a fresh org has, curated from Microsoft's generated entity reference.

Each table names the reference page its facts come from (``MicrosoftDocs/powerapps-docs`` under
``powerapps-docs/developer/data-platform/reference/entities/`` for Dataverse tables,
``MicrosoftDocs/dynamics-365-customer-engagement`` under ``ce/developer/reference/entities/`` for the
Sales tables). Columns are the ones the app and the tests use plus their common neighbours, with the
documented type, MaxLength, ranges and choice values; SchemaNames are as listed on the pages
("Listed by SchemaName"), logical names are their lower case. Relationships carry the documented
SchemaName and ``ReferencingEntityNavigationPropertyName``; the collection-valued side is named by
the relationship SchemaName (the pages' ``ReferencedEntityNavigationPropertyName``).

Rules about owners (every user-owned table below): ``ownerid`` is an ``Owner`` column targeting
``systemuser`` and ``team``; its navigation property ``ownerid`` is typed ``principal`` (relationship
``owner_<tables>``, ReferencedEntity ``owner``), whose only property is ``ownerid``. The user or team
itself is reached through the read-only ``owninguser`` / ``owningteam`` lookups (relationships
``<table>_owning_user`` / ``team_<tables>`` and the like), which the service keeps in step with
``ownerid``. Source: the OwnerId / OwningUser / OwningTeam columns and the owner_opportunitys,
opportunity_owning_user and team_opportunities relationships on ``ce/.../opportunity.md`` (the
same pattern on ``lead.md``: owner_leads, lead_owning_user, lead_owning_team).
"""

from __future__ import annotations

from sandbox.sims.dataverse.schema import Column, Relationship, State, Table

# ----------------------------------------------------------------------------- column helpers


def string(
    schema_name: str, max_length: int, *, fmt: str = "Text", required: str = "None", writable: bool = True
) -> Column:
    return Column(schema_name, "String", max_length=max_length, format=fmt, required=required, writable=writable)


def memo(schema_name: str, max_length: int = 2000) -> Column:
    return Column(schema_name, "Memo", max_length=max_length, format="TextArea")


def integer(schema_name: str, low: int = -2147483648, high: int = 2147483647) -> Column:
    return Column(schema_name, "Integer", min_value=low, max_value=high)


def money(schema_name: str, low: float, high: float) -> Column:
    return Column(schema_name, "Money", min_value=low, max_value=high, precision=2)


def decimal(schema_name: str, low: float, high: float, precision: int) -> Column:
    return Column(schema_name, "Decimal", min_value=low, max_value=high, precision=precision)


def boolean(schema_name: str, default: bool = False) -> Column:
    return Column(schema_name, "Boolean", default=default)


def date_only(schema_name: str) -> Column:
    """DateTime with DateTimeBehavior DateOnly: the Web API takes and returns ``yyyy-MM-dd``."""
    return Column(schema_name, "DateTime", date_only=True, format="DateOnly")


def date_time(schema_name: str, *, writable: bool = True) -> Column:
    return Column(schema_name, "DateTime", format="DateAndTime", writable=writable)


def choice(schema_name: str, options: dict[int, str]) -> Column:
    return Column(schema_name, "Picklist", options=tuple(options.items()))


def lookup(schema_name: str, *targets: str, writable: bool = True, required: str = "None") -> Column:
    return Column(schema_name, "Lookup", targets=targets, writable=writable, required=required)


def customer(schema_name: str, required: str = "None") -> Column:
    return Column(schema_name, "Customer", targets=("account", "contact"), required=required)


def primary_key(schema_name: str) -> Column:
    return Column(schema_name, "Uniqueidentifier", required="SystemRequired")


STATE = Column("StateCode", "State", required="SystemRequired")
STATUS = Column("StatusCode", "Status")
CREATED_ON = date_time("CreatedOn", writable=False)
MODIFIED_ON = date_time("ModifiedOn", writable=False)
VERSION = Column("VersionNumber", "BigInt", writable=False)
SYSTEM = (CREATED_ON, MODIFIED_ON, VERSION)

OWNER = (
    Column("OwnerId", "Owner", targets=("systemuser", "team"), required="SystemRequired"),
    lookup("OwningUser", "systemuser", writable=False),
    lookup("OwningTeam", "team", writable=False),
)


def owner_relationships(owner: str, user: str, team: str) -> tuple[Relationship, ...]:
    """ownerid (typed principal) plus the read-only owninguser / owningteam lookups."""
    return (
        Relationship(owner, "ownerid", "owner", "ownerid"),
        Relationship(user, "owninguser", "systemuser", "owninguser"),
        Relationship(team, "owningteam", "team", "owningteam"),
    )


ACTIVE_INACTIVE = (State(0, "Active", ((1, "Active"),)), State(1, "Inactive", ((2, "Inactive"),)))
INDUSTRY = {
    1: "Accounting",
    2: "Agriculture and Non-petrol Natural Resource Extraction",
    3: "Broadcasting Printing and Publishing",
    4: "Brokers",
    5: "Building Supply Retail",
    6: "Business Services",
    7: "Consulting",
    8: "Consumer Services",
    9: "Design, Direction and Creative Management",
    10: "Distributors, Dispatchers and Processors",
    11: "Doctor's Offices and Clinics",
    12: "Durable Manufacturing",
    13: "Eating and Drinking Places",
    14: "Entertainment Retail",
    15: "Equipment Rental and Leasing",
    16: "Financial",
    17: "Food and Tobacco Processing",
    18: "Inbound Capital Intensive Processing",
    19: "Inbound Repair and Services",
    20: "Insurance",
    21: "Legal Services",
    22: "Non-Durable Merchandise Retail",
    23: "Outbound Consumer Service",
    24: "Petrochemical Extraction and Distribution",
    25: "Service Retail",
    26: "SIG Affiliations",
    27: "Social Services",
    28: "Special Outbound Trade Contractors",
    29: "Specialty Realty",
    30: "Transportation",
    31: "Utility Creation and Distribution",
    32: "Vehicle Retail",
    33: "Wholesale",
}
TIMEFRAME = {0: "Immediate", 1: "This Quarter", 2: "Next Quarter", 3: "This Year", 4: "Unknown"}
RATING = {1: "Hot", 2: "Warm", 3: "Cold"}


def address1(name_length: int) -> tuple[Column, ...]:
    """The Address 1 columns; the lengths are the same on account and lead (Address1_Name differs)."""
    return (
        string("Address1_Name", name_length),
        string("Address1_Line1", 250),
        string("Address1_Line2", 250),
        string("Address1_Line3", 250),
        string("Address1_City", 80),
        string("Address1_County", 50),
        string("Address1_StateOrProvince", 50),
        string("Address1_PostalCode", 20),
        string("Address1_Country", 80),
        string("Address1_Telephone1", 50, fmt="Phone"),
    )


# ----------------------------------------------------------------------------- the tables

# powerapps-docs/developer/data-platform/reference/entities/account.md
ACCOUNT = Table(
    "Account",
    "accounts",
    "accountid",
    "name",
    "UserOwned",
    (
        primary_key("AccountId"),
        string("Name", 160, required="ApplicationRequired"),
        string("AccountNumber", 20),
        *address1(200),
        string("Telephone1", 50, fmt="Phone"),
        string("Telephone2", 50, fmt="Phone"),
        string("Fax", 50),
        string("EMailAddress1", 100, fmt="Email"),
        string("EMailAddress2", 100, fmt="Email"),
        string("WebSiteURL", 200, fmt="Url"),
        string("TickerSymbol", 10),
        string("StockExchange", 20),
        string("SIC", 20),
        memo("Description", 2000),
        integer("NumberOfEmployees", 0, 1000000000),
        money("Revenue", 0, 100000000000000),
        money("CreditLimit", 0, 100000000000000),
        boolean("CreditOnHold"),
        boolean("DoNotEMail"),
        boolean("DoNotPhone"),
        choice("AccountCategoryCode", {1: "Preferred Customer", 2: "Standard"}),
        choice("IndustryCode", INDUSTRY),
        choice(
            "CustomerTypeCode",
            {
                1: "Competitor",
                2: "Consultant",
                3: "Customer",
                4: "Investor",
                5: "Partner",
                6: "Influencer",
                7: "Press",
                8: "Prospect",
                9: "Reseller",
                10: "Supplier",
                11: "Vendor",
                12: "Other",
            },
        ),
        lookup("ParentAccountId", "account"),
        lookup("PrimaryContactId", "contact"),
        lookup("TransactionCurrencyId", "transactioncurrency"),
        *OWNER,
        STATE,
        STATUS,
        *SYSTEM,
    ),
    (
        # The page (old format) lists these many-to-one relationships without navigation names; the
        # names follow the lookup logical names, as on the Sales pages that list them.
        Relationship("account_parent_account", "parentaccountid", "account", "parentaccountid"),
        Relationship("account_primary_contact", "primarycontactid", "contact", "primarycontactid"),
        Relationship(
            "transactioncurrency_account", "transactioncurrencyid", "transactioncurrency", "transactioncurrencyid"
        ),
        *owner_relationships("owner_accounts", "user_accounts", "team_accounts"),
    ),
    states=ACTIVE_INACTIVE,
    display_name="Account",
    source="powerapps-docs/developer/data-platform/reference/entities/account.md",
)

# powerapps-docs/developer/data-platform/reference/entities/contact.md
CONTACT = Table(
    "Contact",
    "contacts",
    "contactid",
    "fullname",
    "UserOwned",
    (
        primary_key("ContactId"),
        string("FirstName", 50, required="Recommended"),
        string("MiddleName", 50),
        string("LastName", 50, required="ApplicationRequired"),
        string("FullName", 160, writable=False),  # read-only, composed from first and last name
        string("Salutation", 100),
        string("Suffix", 10),
        string("NickName", 100),
        string("JobTitle", 100),
        string("Department", 100),
        string("EMailAddress1", 100, fmt="Email"),
        string("EMailAddress2", 100, fmt="Email"),
        string("EMailAddress3", 100, fmt="Email"),
        string("Telephone1", 50, fmt="Phone"),
        string("Telephone2", 50, fmt="Phone"),
        string("MobilePhone", 50, fmt="Phone"),
        string("Fax", 50),
        string("WebSiteUrl", 200, fmt="Url"),
        string("EmployeeId", 50),
        string("GovernmentId", 50),
        string("ManagerName", 100),
        string("SpousesName", 100),
        # Address 1 as on account (the same platform address columns).
        *address1(200)[1:],
        memo("Description", 2000),
        boolean("DoNotEMail"),
        boolean("DoNotPhone"),
        choice("GenderCode", {1: "Male", 2: "Female"}),
        choice("FamilyStatusCode", {1: "Single", 2: "Married", 3: "Divorced", 4: "Widowed"}),
        customer("ParentCustomerId"),
        lookup("TransactionCurrencyId", "transactioncurrency"),
        *OWNER,
        STATE,
        STATUS,
        *SYSTEM,
    ),
    (
        # parentcustomerid_account is named in the associate/disassociate Web API docs.
        Relationship("contact_customer_accounts", "parentcustomerid", "account", "parentcustomerid_account"),
        Relationship("contact_customer_contacts", "parentcustomerid", "contact", "parentcustomerid_contact"),
        Relationship(
            "transactioncurrency_contact", "transactioncurrencyid", "transactioncurrency", "transactioncurrencyid"
        ),
        *owner_relationships("owner_contacts", "contact_owning_user", "team_contacts"),
    ),
    states=ACTIVE_INACTIVE,
    display_name="Contact",
    source="powerapps-docs/developer/data-platform/reference/entities/contact.md",
)

# ce/developer/reference/entities/opportunity.md (MicrosoftDocs/dynamics-365-customer-engagement)
OPPORTUNITY = Table(
    "Opportunity",
    "opportunities",
    "opportunityid",
    "name",
    "UserOwned",
    (
        primary_key("OpportunityId"),
        string("Name", 300, required="ApplicationRequired"),
        memo("Description", 2000),
        money("EstimatedValue", -1000000000000, 1000000000000),
        date_only("EstimatedCloseDate"),
        money("ActualValue", -1000000000000, 1000000000000),
        date_only("ActualCloseDate"),
        integer("CloseProbability", 0, 100),
        boolean("IsRevenueSystemCalculated"),
        money("BudgetAmount", 0, 1000000000000),
        choice("BudgetStatus", {0: "No Committed Budget", 1: "May Buy", 2: "Can Buy", 3: "Will Buy"}),
        decimal("DiscountPercentage", 0, 100, 2),
        string("EmailAddress", 100, fmt="Email"),
        string("StepName", 200),
        memo("CurrentSituation", 2000),
        memo("CustomerNeed", 2000),
        memo("CustomerPainPoints", 2000),
        memo("ProposedSolution", 2000),
        memo("QualificationComments", 2000),
        memo("QuoteComments", 2000),
        date_only("FinalDecisionDate"),
        choice("OpportunityRatingCode", RATING),
        choice("PriorityCode", {1: "Default Value"}),
        choice("SalesStage", {0: "Qualify", 1: "Develop", 2: "Propose", 3: "Close"}),
        choice("SalesStageCode", {1: "Default Value"}),
        choice("PurchaseTimeframe", TIMEFRAME),
        choice("PurchaseProcess", {0: "Individual", 1: "Committee", 2: "Unknown"}),
        choice("Need", {0: "Must have", 1: "Should have", 2: "Good to have", 3: "No need"}),
        choice("TimeLine", {0: "Immediate", 1: "This Quarter", 2: "Next Quarter", 3: "This Year", 4: "Not known"}),
        customer("CustomerId", required="ApplicationRequired"),
        lookup("ParentAccountId", "account"),
        lookup("ParentContactId", "contact"),
        lookup("OriginatingLeadId", "lead"),
        lookup("TransactionCurrencyId", "transactioncurrency", required="ApplicationRequired"),
        *OWNER,
        STATE,
        STATUS,
        *SYSTEM,
    ),
    (
        Relationship("opportunity_customer_accounts", "customerid", "account", "customerid_account"),
        Relationship("opportunity_customer_contacts", "customerid", "contact", "customerid_contact"),
        Relationship("opportunity_parent_account", "parentaccountid", "account", "parentaccountid"),
        Relationship("opportunity_parent_contact", "parentcontactid", "contact", "parentcontactid"),
        Relationship("opportunity_originating_lead", "originatingleadid", "lead", "originatingleadid"),
        Relationship(
            "transactioncurrency_opportunity", "transactioncurrencyid", "transactioncurrency", "transactioncurrencyid"
        ),
        *owner_relationships("owner_opportunitys", "opportunity_owning_user", "team_opportunities"),
    ),
    states=(
        State(0, "Open", ((1, "In Progress"), (2, "On Hold"))),
        State(1, "Won", ((3, "Won"),)),
        State(2, "Lost", ((4, "Canceled"), (5, "Out-Sold"))),
    ),
    state_enum="OpportunityState",
    display_name="Opportunity",
    source="ce/developer/reference/entities/opportunity.md",
)

# ce/developer/reference/entities/lead.md (MicrosoftDocs/dynamics-365-customer-engagement)
LEAD = Table(
    "Lead",
    "leads",
    "leadid",
    "fullname",
    "UserOwned",
    (
        primary_key("LeadId"),
        string("Subject", 300, required="ApplicationRequired"),
        string("FirstName", 50, required="Recommended"),
        string("MiddleName", 50),
        string("LastName", 50, required="ApplicationRequired"),
        string("FullName", 160, writable=False),  # read-only, composed from first and last name
        string("Salutation", 100),
        string("JobTitle", 100),
        string("CompanyName", 100, required="Recommended"),
        string("EMailAddress1", 100, fmt="Email"),
        string("EMailAddress2", 100, fmt="Email"),
        string("EMailAddress3", 100, fmt="Email"),
        string("Telephone1", 50, fmt="Phone"),
        string("Telephone2", 50, fmt="Phone"),
        string("Telephone3", 50, fmt="Phone"),
        string("MobilePhone", 20, fmt="Phone"),
        string("Fax", 50),
        string("Pager", 20),
        string("WebSiteUrl", 200, fmt="Url"),
        string("SIC", 20),
        *address1(100),
        memo("Description", 2000),
        memo("QualificationComments", 2000),
        money("EstimatedAmount", 0, 1000000000000),
        date_only("EstimatedCloseDate"),
        money("BudgetAmount", 0, 1000000000000),
        money("Revenue", 0, 100000000000000),
        integer("NumberOfEmployees", 0, 1000000),
        boolean("DoNotEMail"),
        boolean("DoNotPhone"),
        choice(
            "LeadSourceCode",
            {
                1: "Advertisement",
                2: "Employee Referral",
                3: "External Referral",
                4: "Partner",
                5: "Public Relations",
                6: "Seminar",
                7: "Trade Show",
                8: "Web",
                9: "Word of Mouth",
                10: "Other",
            },
        ),
        choice("LeadQualityCode", RATING),
        choice("IndustryCode", INDUSTRY),
        choice("PurchaseTimeFrame", TIMEFRAME),
        customer("CustomerId"),
        lookup("ParentAccountId", "account"),
        lookup("ParentContactId", "contact"),
        lookup("QualifyingOpportunityId", "opportunity"),
        lookup("TransactionCurrencyId", "transactioncurrency"),
        *OWNER,
        STATE,
        STATUS,
        *SYSTEM,
    ),
    (
        Relationship("lead_customer_accounts", "customerid", "account", "customerid_account"),
        Relationship("lead_customer_contacts", "customerid", "contact", "customerid_contact"),
        Relationship("lead_parent_account", "parentaccountid", "account", "parentaccountid"),
        Relationship("lead_parent_contact", "parentcontactid", "contact", "parentcontactid"),
        Relationship(
            "lead_qualifying_opportunity", "qualifyingopportunityid", "opportunity", "qualifyingopportunityid"
        ),
        Relationship(
            "transactioncurrency_lead", "transactioncurrencyid", "transactioncurrency", "transactioncurrencyid"
        ),
        *owner_relationships("owner_leads", "lead_owning_user", "lead_owning_team"),
    ),
    states=(
        State(0, "Open", ((1, "New"), (2, "Contacted"))),
        State(1, "Qualified", ((3, "Qualified"),)),
        State(2, "Disqualified", ((4, "Lost"), (5, "Cannot Contact"), (6, "No Longer Interested"), (7, "Canceled"))),
    ),
    state_enum="LeadState",
    display_name="Lead",
    source="ce/developer/reference/entities/lead.md",
)

# powerapps-docs/developer/data-platform/reference/entities/systemuser.md
SYSTEMUSER = Table(
    "SystemUser",
    "systemusers",
    "systemuserid",
    "fullname",
    "BusinessOwned",
    (
        primary_key("SystemUserId"),
        string("FirstName", 256, required="ApplicationRequired"),
        string("MiddleName", 50),
        string("LastName", 256, required="ApplicationRequired"),
        string("FullName", 200, writable=False),  # read-only, composed from first and last name
        string("NickName", 50),
        string("Salutation", 20),
        string("Title", 128),
        string("JobTitle", 100),
        string("InternalEMailAddress", 100, fmt="Email", required="SystemRequired"),
        string("PersonalEMailAddress", 100, fmt="Email"),
        string("DomainName", 1024, required="SystemRequired"),
        string("MobilePhone", 64, fmt="Phone"),
        string("HomePhone", 50, fmt="Phone"),
        boolean("IsDisabled"),
        *SYSTEM,
    ),
    display_name="User",
    source="powerapps-docs/developer/data-platform/reference/entities/systemuser.md",
)

# powerapps-docs/developer/data-platform/reference/entities/team.md
TEAM = Table(
    "Team",
    "teams",
    "teamid",
    "name",
    "BusinessOwned",
    (primary_key("TeamId"), string("Name", 160, required="SystemRequired"), *SYSTEM),
    display_name="Team",
    source="powerapps-docs/developer/data-platform/reference/entities/team.md",
)

# powerapps-docs/developer/data-platform/reference/entities/transactioncurrency.md
TRANSACTIONCURRENCY = Table(
    "TransactionCurrency",
    "transactioncurrencies",
    "transactioncurrencyid",
    "currencyname",
    "OrganizationOwned",
    (
        primary_key("TransactionCurrencyId"),
        string("CurrencyName", 100, required="SystemRequired"),
        string("ISOCurrencyCode", 5, required="SystemRequired"),
        string("CurrencySymbol", 10, required="SystemRequired"),
        integer("CurrencyPrecision", 0, 10),
        decimal("ExchangeRate", 0.000000000001, 100000000000, 12),
        STATE,
        STATUS,
        *SYSTEM,
    ),
    states=ACTIVE_INACTIVE,
    display_name="Currency",
    source="powerapps-docs/developer/data-platform/reference/entities/transactioncurrency.md",
)

# ce/developer/reference/entities/opportunityclose.md (MicrosoftDocs/dynamics-365-customer-engagement).
# An activity; its owner columns are left out of this curated subset.
OPPORTUNITYCLOSE = Table(
    "OpportunityClose",
    "opportunitycloses",
    "activityid",
    "subject",
    "UserOwned",
    (
        primary_key("ActivityId"),
        string("Subject", 200),
        memo("Description", 2000),
        money("ActualRevenue", -922337203685477, 922337203685477),
        # UserLocal with DateOnly format: a DateTimeOffset on the wire (a bare date is accepted too).
        date_time("ActualEnd"),
        date_time("ActualStart"),
        string("Category", 250),
        string("Subcategory", 250),
        lookup("OpportunityId", "opportunity", required="ApplicationRequired"),
        STATE,
        STATUS,
        *SYSTEM,
    ),
    (Relationship("Opportunity_OpportunityClose", "opportunityid", "opportunity", "opportunityid"),),
    states=(
        State(0, "Open", ((1, "Open"),)),
        State(1, "Completed", ((2, "Completed"),)),
        State(2, "Canceled", ((3, "Canceled"),)),
    ),
    display_name="Opportunity Close",
    source="ce/developer/reference/entities/opportunityclose.md",
)

# powerapps-docs/developer/data-platform/reference/entities/publisher.md. A solution's publisher owns the
# customization prefix every custom table, column, relationship and key name must start with, and the
# option value prefix of new choices (customize.py). Description is a String with TextArea format there.
PUBLISHER = Table(
    "Publisher",
    "publishers",
    "publisherid",
    "friendlyname",
    "OrganizationOwned",
    (
        primary_key("PublisherId"),
        string("FriendlyName", 256, required="SystemRequired"),
        string("UniqueName", 256, required="SystemRequired"),
        string("Description", 2000, fmt="TextArea"),
        string("CustomizationPrefix", 8, required="SystemRequired"),
        Column(
            "CustomizationOptionValuePrefix", "Integer", min_value=10000, max_value=99999, required="SystemRequired"
        ),
        string("EMailAddress", 100, fmt="Email"),
        string("SupportingWebsiteUrl", 200, fmt="Url"),
        Column("IsReadonly", "Boolean", default=False, required="SystemRequired", writable=False),
        *SYSTEM,
    ),
    display_name="Publisher",
    display_collection_name="Publishers",
    customizable=False,
    source="powerapps-docs/developer/data-platform/reference/entities/publisher.md",
)

# powerapps-docs/developer/data-platform/reference/entities/solution.md
SOLUTION = Table(
    "Solution",
    "solutions",
    "solutionid",
    "friendlyname",
    "OrganizationOwned",
    (
        primary_key("SolutionId"),
        string("UniqueName", 65, required="SystemRequired"),
        string("FriendlyName", 256, required="SystemRequired"),
        string("Version", 256, required="SystemRequired"),
        string("Description", 2000, fmt="TextArea"),
        lookup("PublisherId", "publisher", required="SystemRequired"),
        Column("IsManaged", "Boolean", default=False, writable=False),
        *SYSTEM,
    ),
    (Relationship("publisher_solution", "publisherid", "publisher", "publisherid"),),
    display_name="Solution",
    display_collection_name="Solutions",
    customizable=False,
    source="powerapps-docs/developer/data-platform/reference/entities/solution.md",
)

# The type of every ownerid navigation property: abstract, no entity set, one property. In $metadata
# systemuser and team derive from it; a $select or $filter path through ownerid sees only ownerid.
PRINCIPAL_TABLE = Table(
    "principal",
    "",
    "ownerid",
    "",
    "None",
    (Column("OwnerId", "Uniqueidentifier"),),
    abstract=True,
    customizable=False,
)

STANDARD_TABLES: tuple[Table, ...] = (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    LEAD,
    SYSTEMUSER,
    TEAM,
    TRANSACTIONCURRENCY,
    OPPORTUNITYCLOSE,
    PUBLISHER,
    SOLUTION,
    PRINCIPAL_TABLE,
)

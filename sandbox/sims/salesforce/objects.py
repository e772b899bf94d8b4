"""The standard objects a fresh org has, curated from the Object Reference and the Field Reference.

Lengths and types are the Field Reference's (https://developer.salesforce.com/docs/platform/field-reference/
references/field-reference/salesforce-field-reference-<object>.html: Account, Contact, Opportunity, Lead,
User, OpportunityContactRole); required fields, read-only fields and defaults are the Object Reference's
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_<object>.htm).
Each object lists the fields an integration uses plus their common neighbours, not every field.

Org features the simulated org has switched on, because the sync's default field map assumes them:
multiple currencies (``CurrencyIsoCode`` on every object, restricted to the active currencies) and
State and Country/Territory Picklists (``…StateCode`` / ``…CountryCode`` next to every address).
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.sims.salesforce.countries import COUNTRIES
from sandbox.sims.salesforce.schema import Field, PicklistValue, SObject

# ----------------------------------------------------------------------------- field helpers


def text(name: str, label: str, length: int, **kw: object) -> Field:
    return Field(name, "string", label, length=length, **kw)  # type: ignore[arg-type]


def area(name: str, label: str, length: int = 255) -> Field:
    # Text Area (255) filters and sorts; Long Text Area (above 255) cannot (SOQL: "Comparison operators").
    return Field(name, "textarea", label, length=length, long_text=length > 255)


def email(name: str, label: str = "Email", length: int = 80) -> Field:
    # Contact.Email / Lead.Email are idLookup fields: they identify a record in upsert and by-field GETs.
    return Field(name, "email", label, length=length, id_lookup=True)


def phone(name: str, label: str) -> Field:
    return Field(name, "phone", label, length=40)


def url(name: str, label: str) -> Field:
    return Field(name, "url", label, length=255)


def checkbox(name: str, label: str, default: bool = False, **kw: object) -> Field:
    # Checkboxes are never null: nillable false, defaulted on create.
    return Field(name, "boolean", label, nillable=False, default=default, defaulted_on_create=True, **kw)  # type: ignore[arg-type]


def picklist(
    name: str,
    label: str,
    values: tuple[str, ...],
    *,
    default: str | None = None,
    restricted: bool = False,
    **kw: object,
) -> Field:
    options = tuple(PicklistValue(v, v, v == default) for v in values)
    return Field(
        name,
        "picklist",
        label,
        length=255,
        picklist=options,
        restricted=restricted,
        default=default,
        defaulted_on_create=default is not None,
        **kw,  # type: ignore[arg-type]
    )


def reference(name: str, label: str, target: str, relationship: str, **kw: object) -> Field:
    return Field(name, "reference", label, length=18, reference_to=(target,), relationship_name=relationship, **kw)  # type: ignore[arg-type]


def read_only(f: Field) -> Field:
    from dataclasses import replace

    return replace(f, createable=False, updateable=False, calculated=True)


def required(f: Field) -> Field:
    from dataclasses import replace

    return replace(f, nillable=False, required=True)


# ----------------------------------------------------------------------------- shared parts

# The org's active currencies; USD is the corporate currency and every user's default.
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "INR")
CORPORATE_CURRENCY = "USD"


def currency_iso_code(label: str) -> Field:
    # "Only in multi-currency orgs"; a restricted picklist, defaulted on create (OpportunityContactRole reference).
    return picklist("CurrencyIsoCode", label, CURRENCIES, default=CORPORATE_CURRENCY, restricted=True)


def system_fields() -> list[Field]:
    """Id, IsDeleted and the audit fields every object has ("System Fields", Object Reference)."""
    return [
        Field("Id", "id", "Record ID", length=18, nillable=False, createable=False, updateable=False, id_lookup=True),
        read_only(checkbox("IsDeleted", "Deleted")),
        read_only(Field("CreatedDate", "datetime", "Created Date", nillable=False, defaulted_on_create=True)),
        read_only(reference("CreatedById", "Created By ID", "User", "CreatedBy", nillable=False)),
        read_only(
            Field("LastModifiedDate", "datetime", "Last Modified Date", nillable=False, defaulted_on_create=True)
        ),
        read_only(reference("LastModifiedById", "Last Modified By ID", "User", "LastModifiedBy", nillable=False)),
        read_only(Field("SystemModstamp", "datetime", "System Modstamp", nillable=False, defaulted_on_create=True)),
    ]


COUNTRY_CODES = tuple(COUNTRIES)


def address(prefix: str, label: str) -> list[Field]:
    """Street, City, State, PostalCode, Country and the StateCode/CountryCode picklists (Field Reference lengths)."""
    sep = " " if label else ""
    return [
        area(f"{prefix}Street", f"{label}{sep}Street"),
        text(f"{prefix}City", f"{label}{sep}City", 40),
        text(f"{prefix}State", f"{label}{sep}State/Province", 80),
        text(f"{prefix}PostalCode", f"{label}{sep}Zip/Postal Code", 20),
        text(f"{prefix}Country", f"{label}{sep}Country", 80),
        # The state list depends on the country; its values are validated against countries.STATES.
        Field(f"{prefix}StateCode", "picklist", f"{label}{sep}State/Province Code", length=10, restricted=True),
        picklist(f"{prefix}CountryCode", f"{label}{sep}Country Code", COUNTRY_CODES, restricted=True),
    ]


ADDRESSES: dict[str, tuple[str, ...]] = {
    "Account": ("Billing", "Shipping"),
    "Contact": ("Mailing",),
    "Lead": ("",),
}


def owner() -> Field:
    return reference("OwnerId", "Owner ID", "User", "Owner", nillable=False, defaulted_on_create=True)


def person_name(length: int = 121) -> Field:
    # Name = FirstName + LastName, read-only (Contact / Lead / User "Name" in the Object Reference).
    return read_only(text("Name", "Full Name", length, name_field=True))


def make(name: str, label: str, plural: str, prefix: str, fields: list[Field], source: str, **kw: object) -> SObject:
    ordered = {f.name: f for f in [*system_fields(), *fields]}
    return SObject(name, label, plural, prefix, ordered, source=source, **kw)  # type: ignore[arg-type]


_REF = "https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/"

# ----------------------------------------------------------------------------- picklist values

# The OpportunityStage rows of a new org: (stage, probability %, forecast category, closed, won).
# Object Reference "OpportunityStage"; the default Sales Process uses all of them.
STAGES: tuple[tuple[str, int, str, bool, bool], ...] = (
    ("Prospecting", 10, "Pipeline", False, False),
    ("Qualification", 10, "Pipeline", False, False),
    ("Needs Analysis", 20, "Pipeline", False, False),
    ("Value Proposition", 50, "Pipeline", False, False),
    ("Id. Decision Makers", 60, "Pipeline", False, False),
    ("Perception Analysis", 70, "Pipeline", False, False),
    ("Proposal/Price Quote", 75, "Pipeline", False, False),
    ("Negotiation/Review", 90, "Commit", False, False),
    ("Closed Won", 100, "Closed", True, True),
    ("Closed Lost", 0, "Omitted", True, False),
)
STAGE_BY_NAME = {s[0]: s for s in STAGES}
# The LeadStatus rows of a new org: (status, is converted); the first is the default (Object Reference "LeadStatus").
LEAD_STATUSES: tuple[tuple[str, bool], ...] = (
    ("Open - Not Contacted", False),
    ("Working - Contacted", False),
    ("Closed - Converted", True),
    ("Closed - Not Converted", False),
)
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
FORECAST_CATEGORIES = ("Omitted", "Pipeline", "Best Case", "Commit", "Closed")
CONTACT_ROLES = (
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Economic Decision Maker",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
)
INDUSTRIES = (
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications", "Construction",
    "Consulting", "Education", "Electronics", "Energy", "Engineering", "Entertainment", "Environmental",
    "Finance", "Food & Beverage", "Government", "Healthcare", "Hospitality", "Insurance", "Machinery",
    "Manufacturing", "Media", "Not For Profit", "Recreation", "Retail", "Shipping", "Technology",
    "Telecommunications", "Transportation", "Utilities", "Other",
)  # fmt: skip
SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")

# ----------------------------------------------------------------------------- objects


def account() -> SObject:
    return make(
        "Account",
        "Account",
        "Accounts",
        "001",
        [
            required(text("Name", "Account Name", 255, name_field=True)),
            picklist("Type", "Account Type", ("Prospect", "Customer - Direct", "Customer - Channel", "Other")),
            reference("ParentId", "Parent Account ID", "Account", "Parent"),
            *address("Billing", "Billing"),
            *address("Shipping", "Shipping"),
            phone("Phone", "Account Phone"),
            phone("Fax", "Account Fax"),
            url("Website", "Website"),
            picklist("Industry", "Industry", INDUSTRIES),
            Field("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
            Field("NumberOfEmployees", "int", "Employees", precision=8),
            text("AccountNumber", "Account Number", 40),
            picklist("AccountSource", "Account Source", LEAD_SOURCES),
            area("Description", "Account Description", 32000),
            owner(),
            currency_iso_code("Account Currency"),
        ],
        _REF + "sforce_api_objects_account.htm",
    )


def contact() -> SObject:
    return make(
        "Contact",
        "Contact",
        "Contacts",
        "003",
        [
            # Deleting an account deletes its contacts and opportunities (childRelationships cascadeDelete).
            reference("AccountId", "Account ID", "Account", "Account", cascade_delete=True),
            required(text("LastName", "Last Name", 80)),
            text("FirstName", "First Name", 40),
            picklist("Salutation", "Salutation", SALUTATIONS),
            person_name(),
            email("Email"),
            phone("Phone", "Business Phone"),
            phone("MobilePhone", "Mobile Phone"),
            text("Title", "Title", 128),
            text("Department", "Department", 80),
            *address("Mailing", "Mailing"),
            picklist("LeadSource", "Lead Source", LEAD_SOURCES),
            area("Description", "Contact Description", 32000),
            owner(),
            currency_iso_code("Contact Currency"),
        ],
        _REF + "sforce_api_objects_contact.htm",
    )


def opportunity() -> SObject:
    stage_names = tuple(s[0] for s in STAGES)
    return make(
        "Opportunity",
        "Opportunity",
        "Opportunities",
        "006",
        [
            reference("AccountId", "Account ID", "Account", "Account", cascade_delete=True),
            required(text("Name", "Name", 120, name_field=True)),
            area("Description", "Description", 32000),
            # StageName drives IsClosed, IsWon, Probability and ForecastCategoryName (Opportunity reference).
            required(picklist("StageName", "Stage", stage_names, restricted=True)),
            Field("Amount", "currency", "Amount", precision=18, scale=2),
            Field("Probability", "percent", "Probability (%)", precision=3, scale=0),
            required(Field("CloseDate", "date", "Close Date")),
            picklist(
                "Type",
                "Opportunity Type",
                (
                    "Existing Customer - Upgrade",
                    "Existing Customer - Replacement",
                    "Existing Customer - Downgrade",
                    "New Customer",
                ),
            ),
            text("NextStep", "Next Step", 255),
            picklist("LeadSource", "Lead Source", LEAD_SOURCES),
            read_only(checkbox("IsClosed", "Closed")),
            read_only(checkbox("IsWon", "Won")),
            picklist("ForecastCategoryName", "Forecast Category", FORECAST_CATEGORIES, restricted=True),
            # ContactId: API 46.0+, settable on create only (crm-apis.md B4).
            reference("ContactId", "Contact ID", "Contact", "Contact", updateable=False),
            owner(),
            currency_iso_code("Opportunity Currency"),
        ],
        _REF + "sforce_api_objects_opportunity.htm",
    )


def lead() -> SObject:
    return make(
        "Lead",
        "Lead",
        "Leads",
        "00Q",
        [
            required(text("LastName", "Last Name", 80)),
            text("FirstName", "First Name", 40),
            picklist("Salutation", "Salutation", SALUTATIONS),
            person_name(),
            text("Title", "Title", 128),
            # Company is required (the Lead reference marks it so; the JP edition says "必須").
            required(text("Company", "Company", 255)),
            *address("", ""),
            phone("Phone", "Phone"),
            phone("MobilePhone", "Mobile Phone"),
            email("Email"),
            url("Website", "Website"),
            area("Description", "Description", 32000),
            picklist("LeadSource", "Lead Source", LEAD_SOURCES),
            # Status values and their IsConverted flags come from LeadStatus; the default is the first.
            picklist(
                "Status", "Status", tuple(s for s, _ in LEAD_STATUSES), default=LEAD_STATUSES[0][0], restricted=True
            ),
            picklist("Industry", "Industry", INDUSTRIES),
            Field("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
            Field("NumberOfEmployees", "int", "Employees", precision=8),
            read_only(checkbox("IsConverted", "Converted")),
            read_only(Field("ConvertedDate", "date", "Converted Date")),
            read_only(reference("ConvertedAccountId", "Converted Account ID", "Account", "ConvertedAccount")),
            read_only(reference("ConvertedContactId", "Converted Contact ID", "Contact", "ConvertedContact")),
            read_only(
                reference("ConvertedOpportunityId", "Converted Opportunity ID", "Opportunity", "ConvertedOpportunity")
            ),
            owner(),
            currency_iso_code("Lead Currency"),
        ],
        _REF + "sforce_api_objects_lead.htm",
    )


def user() -> SObject:
    # Users are provisioned by an admin, not by the integration: the simulator refuses REST writes to User.
    return make(
        "User",
        "User",
        "Users",
        "005",
        [
            required(text("Username", "Username", 80, unique=True)),
            required(text("LastName", "Last Name", 80)),
            text("FirstName", "First Name", 40),
            person_name(),
            required(email("Email", length=128)),
            required(text("Alias", "Alias", 8)),
            checkbox("IsActive", "Active", default=True),
            text("Title", "Title", 80),
            text("CompanyName", "Company Name", 80),
            currency_iso_code("User Currency"),
        ],
        _REF + "sforce_api_objects_user.htm",
        createable=False,
        updateable=False,
        deletable=False,
    )


def opportunity_contact_role() -> SObject:
    # OpportunityId is required and cannot be updated after create; only one primary per opportunity
    # (crm-apis.md B4, OpportunityContactRole reference). Deleting the opportunity deletes its roles.
    return make(
        "OpportunityContactRole",
        "Opportunity Contact Role",
        "Opportunity Contact Role",
        "00K",
        [
            required(
                reference("OpportunityId", "Opportunity ID", "Opportunity", "Opportunity", updateable=False,
                          cascade_delete=True)
            ),
            # No cascade: "ContactId … may also return values for contacts that have been deleted".
            required(reference("ContactId", "Contact ID", "Contact", "Contact")),
            picklist("Role", "Role", CONTACT_ROLES),
            checkbox("IsPrimary", "Primary"),
            currency_iso_code("Currency ISO Code"),
        ],
        _REF + "sforce_api_objects_opportunitycontactrole.htm",
    )  # fmt: skip


STANDARD: dict[str, Callable[[], SObject]] = {
    "Account": account,
    "Contact": contact,
    "Opportunity": opportunity,
    "Lead": lead,
    "User": user,
    "OpportunityContactRole": opportunity_contact_role,
}

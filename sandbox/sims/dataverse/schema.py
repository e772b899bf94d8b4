"""The tables, columns and navigation properties the simulated org has, as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

EDM_TYPES = {
    "string": "Edm.String",
    "int": "Edm.Int32",
    "bool": "Edm.Boolean",
    "money": "Edm.Decimal",
    "date": "Edm.Date",
    "datetime": "Edm.DateTimeOffset",
}
SYSTEM_COLUMNS = ("createdon", "modifiedon", "versionnumber")


@dataclass(frozen=True)
class Column:
    kind: str  # string | int | bool | money | date | datetime
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None


@dataclass(frozen=True)
class Lookup:
    target: str  # entity set of the referenced table
    column: str  # stored/read column, e.g. ``_customerid_value``


@dataclass(frozen=True)
class Collection:
    """A one-to-many (collection-valued) navigation property: rows of ``target`` whose ``column`` is us."""

    target: str  # entity set of the referencing table
    column: str  # its lookup column pointing back, e.g. ``_cosell_opportunityid_value``


@dataclass(frozen=True)
class EntityDef:
    set_name: str
    logical: str
    pk: str
    columns: dict[str, Column]
    lookups: dict[str, Lookup] = field(default_factory=dict)
    alt_key: str | None = None
    collections: dict[str, Collection] = field(default_factory=dict)
    computed: tuple[str, ...] = ()  # read-only columns derived on write (fullname)
    states: dict[int, frozenset[int]] | None = None  # statecode -> valid statuscodes
    default_status: dict[int, int] = field(default_factory=dict)
    state_names: dict[int, str] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.logical}"

    @cached_property
    def lookup_columns(self) -> frozenset[str]:
        return frozenset(lk.column for lk in self.lookups.values())

    @cached_property
    def readable_set(self) -> frozenset[str]:
        return frozenset(self.readable)

    @cached_property
    def readable(self) -> tuple[str, ...]:
        """Every column a GET returns without ``$select`` (Dataverse returns unset ones as null)."""
        names = [self.pk, *self.columns, *self.computed]
        for lk in self.lookups.values():
            if lk.column not in names:
                names.append(lk.column)
        names.extend(SYSTEM_COLUMNS)
        return tuple(names)


def _s(max_length: int | None = None) -> Column:
    return Column("string", max_length)


_INT = Column("int")
_BOOL = Column("bool")
_MONEY = Column("money")
_DATE = Column("date")
_STATE = Column("int")

_ADDRESS: dict[str, Column] = {
    "address1_line1": _s(250),
    "address1_line2": _s(250),
    "address1_city": _s(80),
    "address1_stateorprovince": _s(50),
    "address1_postalcode": _s(20),
    "address1_country": _s(80),
}
# cosell_audit's 4000 matches the app's default AUDIT_MAX_CHARS and the SDK's usual Memo size.
_COSELL: dict[str, Column] = {
    "cosell_syncwithpartnercenter": _BOOL,
    "cosell_referralid": _s(100),
    "cosell_referrallink": _s(),
    "cosell_helpneeded": _INT,
    "cosell_visible": _BOOL,
    "cosell_microsoftcrmid": _s(),
    "cosell_referralprogram": _s(),
    "cosell_audit": _s(4000),
}
_ACTIVE_INACTIVE = {0: frozenset({1}), 1: frozenset({2})}
# User-owned tables: ownerid is polymorphic (systemuser or team) on the service; the simulator has users only.
_OWNER = {"ownerid": Lookup("systemusers", "_ownerid_value")}

ENTITIES: dict[str, EntityDef] = {
    e.set_name: e
    for e in (
        EntityDef(
            "accounts",
            "account",
            "accountid",
            {
                "name": _s(160),
                "accountnumber": _s(20),
                **_ADDRESS,
                "telephone1": _s(50),
                "websiteurl": _s(200),
                "description": _s(2000),
                "statecode": _STATE,
                "statuscode": _STATE,
            },
            {
                "primarycontactid": Lookup("contacts", "_primarycontactid_value"),
                "transactioncurrencyid": Lookup("transactioncurrencies", "_transactioncurrencyid_value"),
                **_OWNER,
            },
            states=_ACTIVE_INACTIVE,
            default_status={0: 1, 1: 2},
            state_names={0: "Active", 1: "Inactive"},
        ),
        EntityDef(
            "contacts",
            "contact",
            "contactid",
            {
                "firstname": _s(50),
                "lastname": _s(50),
                "emailaddress1": _s(100),
                "telephone1": _s(50),
                "jobtitle": _s(100),
                **_ADDRESS,
                "statecode": _STATE,
                "statuscode": _STATE,
            },
            {"parentcustomerid_account": Lookup("accounts", "_parentcustomerid_value"), **_OWNER},
            computed=("fullname",),
            states=_ACTIVE_INACTIVE,
            default_status={0: 1, 1: 2},
            state_names={0: "Active", 1: "Inactive"},
        ),
        EntityDef(
            "opportunities",
            "opportunity",
            "opportunityid",
            {
                "name": _s(300),
                "description": _s(2000),
                "estimatedvalue": _MONEY,
                "estimatedclosedate": _DATE,
                "actualvalue": _MONEY,
                "actualclosedate": _DATE,
                "closeprobability": Column("int", min_value=0, max_value=100),
                "isrevenuesystemcalculated": _BOOL,
                "statecode": _STATE,
                "statuscode": _STATE,
                "salesstage": _INT,
                "stepname": _s(200),
                **_COSELL,
            },
            {
                "customerid_account": Lookup("accounts", "_customerid_value"),
                "customerid_contact": Lookup("contacts", "_customerid_value"),
                "parentaccountid": Lookup("accounts", "_parentaccountid_value"),
                "parentcontactid": Lookup("contacts", "_parentcontactid_value"),
                "transactioncurrencyid": Lookup("transactioncurrencies", "_transactioncurrencyid_value"),
                "originatingleadid": Lookup("leads", "_originatingleadid_value"),
                **_OWNER,
            },
            alt_key="cosell_referralid",
            collections={
                "cosell_opportunity_cosell_solutions": Collection("cosell_solutions", "_cosell_opportunityid_value")
            },
            states={0: frozenset({1, 2}), 1: frozenset({3}), 2: frozenset({4, 5})},
            default_status={0: 1, 1: 3, 2: 4},
            state_names={0: "OpportunityState.Open", 1: "OpportunityState.Won", 2: "OpportunityState.Lost"},
        ),
        EntityDef(
            "leads",
            "lead",
            "leadid",
            {
                "subject": _s(300),
                "firstname": _s(50),
                "lastname": _s(50),
                "companyname": _s(100),
                "emailaddress1": _s(100),
                "telephone1": _s(50),
                "jobtitle": _s(100),
                "websiteurl": _s(200),
                **_ADDRESS,
                "description": _s(2000),
                "estimatedamount": _MONEY,
                "estimatedclosedate": _DATE,
                "statecode": _STATE,
                "statuscode": _STATE,
                **_COSELL,
            },
            {
                "parentaccountid": Lookup("accounts", "_parentaccountid_value"),
                "parentcontactid": Lookup("contacts", "_parentcontactid_value"),
                "transactioncurrencyid": Lookup("transactioncurrencies", "_transactioncurrencyid_value"),
                **_OWNER,
            },
            alt_key="cosell_referralid",
            computed=("fullname",),
            states={0: frozenset({1, 2}), 1: frozenset({3}), 2: frozenset({4, 5, 6, 7})},
            default_status={0: 1, 1: 3, 2: 4},
            state_names={0: "LeadState.Open", 1: "LeadState.Qualified", 2: "LeadState.Disqualified"},
        ),
        EntityDef(
            "transactioncurrencies",
            "transactioncurrency",
            "transactioncurrencyid",
            {"isocurrencycode": _s(5), "currencyname": _s(100), "currencysymbol": _s(10)},
        ),
        EntityDef(
            "systemusers",
            "systemuser",
            "systemuserid",
            {
                "firstname": _s(256),
                "lastname": _s(256),
                "internalemailaddress": _s(100),
                "domainname": _s(1024),
            },
            computed=("fullname",),
        ),
        EntityDef(
            "cosell_solutions",
            "cosell_solution",
            "cosell_solutionid",
            {
                "cosell_name": _s(),
                "cosell_solutionidentifier": _s(),
                "cosell_solutiontype": _s(),
                "cosell_publishername": _s(),
            },
            {"cosell_opportunityid": Lookup("opportunities", "_cosell_opportunityid_value")},
        ),
        EntityDef(
            "opportunitycloses",
            "opportunityclose",
            "activityid",
            {
                "subject": _s(200),
                "description": _s(2000),
                "actualrevenue": _MONEY,
                "actualend": Column("datetime"),
                "statecode": _STATE,
                "statuscode": _STATE,
            },
            {"opportunityid": Lookup("opportunities", "_opportunityid_value")},
        ),
    )
}

SEED_CURRENCIES: tuple[tuple[str, str, str], ...] = (
    ("USD", "US Dollar", "$"),
    ("EUR", "Euro", "€"),
    ("GBP", "Pound Sterling", "£"),
    ("JPY", "Yen", "¥"),
    ("CAD", "Canadian Dollar", "CA$"),
    ("AUD", "Australian Dollar", "A$"),
    ("INR", "Indian Rupee", "₹"),
)
DEFAULT_CURRENCY = "USD"
# The org's one seeded user: the caller (WhoAmI) and the default owner of new rows.
SEED_USER: dict[str, str] = {
    "firstname": "Sandbox",
    "lastname": "Seller",
    "internalemailaddress": "seller@partner.example",
    "domainname": "seller@partner.example",
}

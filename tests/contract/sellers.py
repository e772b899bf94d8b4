"""A seller working in the CRM, with one interface for every adapter under contract.

The contract tests arrange data the way a seller types it (an account, a contact, an opportunity
marked for sync) and read records back as neutral :class:`DealView` values, without going through the
adapter under test: the memory CRM is read from its dicts, Dynamics 365 from the simulator's rows
(in-process, uncounted). :meth:`Seller.writes` counts the writes *the adapter* made, never the
seller's own.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx

from sandbox.memory_crm import MemoryCrm
from sandbox.sims.dataverse import DataverseSimulator
from shared.crm.dynamics_fields import DYNAMICS_DEFAULTS, DYNAMICS_HELP_NEEDED
from shared.mapping.model import AccountData, ContactData, DealKind, DealStage, SolutionData


@dataclass(frozen=True)
class DealView:
    """An opportunity or lead as the CRM holds it, in neutral terms."""

    kind: DealKind
    id: str
    name: str  # as stored, with the ✔/✖ mark
    stage: DealStage
    deal_value: Decimal | None
    currency: str | None
    close_date: dt.date | None
    description: str | None
    referral_id: str | None
    referral_link: str | None
    help_needed: str | None
    visible: bool
    sync: bool
    audit: str
    account_id: str | None = None  # an opportunity's customer account
    contact_id: str | None = None  # an opportunity's primary contact
    solutions: frozenset[str] = field(default_factory=frozenset)
    company: str | None = None  # a lead's company

    @property
    def audit_lines(self) -> list[str]:
        return [line for line in self.audit.splitlines() if line.strip()]


@dataclass(frozen=True)
class ContactRow:
    id: str
    contact: ContactData
    account_id: str | None


# The neutral deal fields a DealView carries; ``Seller.lead_fields`` says which of them a CRM lead holds.
DEAL_FIELDS = frozenset(
    {"name", "deal_value", "currency", "close_date", "description", "referral_id", "referral_link", "help_needed",
     "visible"}
)  # fmt: skip


class Seller(Protocol):
    # Which of DEAL_FIELDS a lead holds in this CRM: a fact of the CRM, not of the adapter. A field a lead
    # does not hold reads as None (or "" for the name) in every DealView of a lead.
    lead_fields: frozenset[str]
    # Accepting a lead referral converts the CRM lead, which then reads as accepted. Where the CRM cannot
    # (Salesforce over REST), the lead stays as the seller left it and names the opportunity made from it.
    converts_leads: bool

    def create_account(self, name: str, postal_code: str | None = None, *, country: str | None = None) -> str: ...

    def create_contact(
        self, first_name: str, last_name: str, email: str | None, account_id: str | None = None
    ) -> str: ...

    def create_opportunity(
        self,
        title: str,
        *,
        account_id: str,
        contact_id: str | None = None,
        deal_value: Decimal | None = None,
        currency: str | None = "USD",
        close_date: dt.date | None = None,
        description: str | None = None,
        help_needed: str | None = None,
        visible: bool = False,
        solutions: tuple[SolutionData, ...] = (),
        sync: bool = True,
        referral_id: str | None = None,
    ) -> str: ...

    def create_lead(self, title: str, *, company: str, referral_id: str | None = None) -> str: ...

    def update(self, kind: DealKind, crm_id: str, **fields: Any) -> None:
        """Change ``title``, ``description``, ``deal_value``, ``sync`` or ``referral_id`` as a seller does."""
        ...

    def delete(self, kind: DealKind, crm_id: str) -> None: ...

    def deal(self, crm_id: str) -> DealView | None: ...

    def deals(self, kind: DealKind) -> list[DealView]: ...

    def accounts(self) -> dict[str, AccountData]: ...

    def contacts(self) -> list[ContactRow]: ...

    def writes(self) -> int: ...


# ============================================================================ memory
class MemorySeller:
    lead_fields = DEAL_FIELDS
    converts_leads = True

    def __init__(self, crm: MemoryCrm) -> None:
        self.crm = crm

    def create_account(self, name: str, postal_code: str | None = None, *, country: str | None = None) -> str:
        return self.crm.seller_creates_account(AccountData(name, postal_code=postal_code, country=country))

    def create_contact(self, first_name: str, last_name: str, email: str | None, account_id: str | None = None) -> str:
        return self.crm.seller_creates_contact(ContactData(first_name, last_name, email), account_id)

    def create_opportunity(self, title: str, *, account_id: str, contact_id: str | None = None, **fields: Any) -> str:
        return self.crm.seller_creates(title=title, account_ref=account_id, contact_ref=contact_id, **fields)

    def create_lead(self, title: str, *, company: str, referral_id: str | None = None) -> str:
        return self.crm.seller_creates(
            title=title, account=AccountData(company), kind="lead", referral_id=referral_id, currency=None
        )

    def update(self, kind: DealKind, crm_id: str, **fields: Any) -> None:
        if "title" in fields:
            fields["name"] = fields.pop("title")
        self.crm.seller_updates(crm_id, **fields)

    def delete(self, kind: DealKind, crm_id: str) -> None:
        del self.crm.records[crm_id]

    def deal(self, crm_id: str) -> DealView | None:
        record = self.crm.records.get(crm_id)
        if record is None:
            return None
        f = record.fields
        return DealView(
            kind=record.kind,
            id=record.id,
            name=str(f.get("name") or ""),
            stage=record.stage,
            deal_value=Decimal(str(f["deal_value"])) if f.get("deal_value") is not None else None,
            currency=f.get("currency"),
            close_date=_date(f.get("close_date")),
            description=f.get("description"),
            referral_id=f.get("referral_id"),
            referral_link=f.get("referral_link"),
            help_needed=f.get("help_needed"),
            visible=bool(f.get("visible")),
            sync=record.sync,
            audit=record.audit,
            account_id=record.account_id if record.kind == "opportunity" else None,
            contact_id=record.contact_ids[0] if record.contact_ids and record.kind == "opportunity" else None,
            solutions=frozenset(record.solutions),
            company=record.company.name if record.kind == "lead" and record.company else None,
        )

    def deals(self, kind: DealKind) -> list[DealView]:
        return [view for r in list(self.crm.records.values()) if r.kind == kind and (view := self.deal(r.id))]

    def accounts(self) -> dict[str, AccountData]:
        return dict(self.crm.accounts)

    def contacts(self) -> list[ContactRow]:
        return [ContactRow(ref, contact, account) for ref, (contact, account) in self.crm.contacts.items()]

    def writes(self) -> int:
        return self.crm.writes


# ============================================================================ Dynamics 365
OPP = DYNAMICS_DEFAULTS["opportunity"]
LEAD = DYNAMICS_DEFAULTS["lead"]
ACC = DYNAMICS_DEFAULTS["account"]
CON = DYNAMICS_DEFAULTS["contact"]
SOL = DYNAMICS_DEFAULTS["solution"]
_HELP_BY_VALUE = {value: code for code, value in DYNAMICS_HELP_NEEDED.items()}
_OPPORTUNITY_STAGE = {0: DealStage.OPEN, 1: DealStage.WON, 2: DealStage.LOST}
_LEAD_STAGE = {0: DealStage.PENDING, 1: DealStage.ACCEPTED, 2: DealStage.LOST}
_KEYS = {"accounts": "accountid", "contacts": "contactid", "opportunities": "opportunityid", "leads": "leadid"}


class CountingTransport(httpx.BaseTransport):
    """The adapter's HTTP transport: counts every request that is not a read."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.writes = 0
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if request.method not in ("GET", "HEAD"):
            self.writes += 1
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class DynamicsSeller:
    """A seller in Dynamics 365: Web API writes with its own token (as ``sandbox.crm_user``), in-process reads."""

    lead_fields = DEAL_FIELDS  # a lead has a topic (subject), an estimated amount, currency and close date
    converts_leads = True  # the adapter qualifies the lead (statecode 1)

    def __init__(self, sim: DataverseSimulator, api_url: str, token: Callable[[], str], transport: CountingTransport):
        self.sim = sim
        self.transport = transport
        self._token = token
        self.http = httpx.Client(base_url=api_url, timeout=10)

    def close(self) -> None:
        self.http.close()

    # ----- writes, as a seller types them -----
    def _post(self, entity_set: str, body: dict[str, Any]) -> str:
        response = self.http.post(
            entity_set,
            json=body,
            headers={"Prefer": "return=representation", "Authorization": f"Bearer {self._token()}"},
        )
        assert response.status_code == 201, response.text
        return str(response.json()[_KEYS.get(entity_set, SOL["key"])])

    def _patch(self, path: str, body: dict[str, Any]) -> None:
        headers = {"If-Match": "*", "Authorization": f"Bearer {self._token()}"}
        response = self.http.patch(path, json=body, headers=headers)
        assert response.status_code == 204, response.text

    def create_account(self, name: str, postal_code: str | None = None, *, country: str | None = None) -> str:
        body = {ACC["name"]: name, ACC["postal_code"]: postal_code, ACC["country"]: country}
        return self._post("accounts", {k: v for k, v in body.items() if v is not None})

    def create_contact(self, first_name: str, last_name: str, email: str | None, account_id: str | None = None) -> str:
        body: dict[str, Any] = {CON["first_name"]: first_name, CON["last_name"]: last_name}
        if email:
            body[CON["email"]] = email
        if account_id:
            body["parentcustomerid_account@odata.bind"] = f"/accounts({account_id})"
        return self._post("contacts", body)

    def create_opportunity(
        self,
        title: str,
        *,
        account_id: str,
        contact_id: str | None = None,
        deal_value: Decimal | None = None,
        currency: str | None = "USD",
        close_date: dt.date | None = None,
        description: str | None = None,
        help_needed: str | None = None,
        visible: bool = False,
        solutions: tuple[SolutionData, ...] = (),
        sync: bool = True,
        referral_id: str | None = None,
    ) -> str:
        body: dict[str, Any] = {
            OPP["name"]: title,
            OPP["sync"]: sync,
            OPP["visible"]: visible,
            "isrevenuesystemcalculated": False,
            "customerid_account@odata.bind": f"/accounts({account_id})",
            "parentaccountid@odata.bind": f"/accounts({account_id})",
        }
        if deal_value is not None:
            body[OPP["deal_value"]] = float(deal_value)
        if currency:
            body["transactioncurrencyid@odata.bind"] = f"/transactioncurrencies({self.sim.currency_id(currency)})"
        if close_date:
            body[OPP["close_date"]] = close_date.isoformat()
        if description is not None:
            body[OPP["description"]] = description
        if help_needed:
            body[OPP["help_needed"]] = DYNAMICS_HELP_NEEDED[help_needed]
        if referral_id is not None:
            body[OPP["referral_id"]] = referral_id
        if contact_id:
            body["parentcontactid@odata.bind"] = f"/contacts({contact_id})"
        opportunity_id = self._post("opportunities", body)
        for solution in solutions:
            self._post(
                SOL["entity_set"],
                {
                    SOL["id"]: solution.id,
                    SOL["name"]: solution.name or solution.id,
                    "cosell_OpportunityId@odata.bind": f"/opportunities({opportunity_id})",
                },
            )
        return opportunity_id

    def create_lead(self, title: str, *, company: str, referral_id: str | None = None) -> str:
        body: dict[str, Any] = {LEAD["name"]: title, LEAD["company"]: company, LEAD["last_name"]: company}
        if referral_id is not None:
            body[LEAD["referral_id"]] = referral_id
        return self._post("leads", body)

    def update(self, kind: DealKind, crm_id: str, **fields: Any) -> None:
        columns = OPP if kind == "opportunity" else LEAD
        body: dict[str, Any] = {}
        for name, value in fields.items():
            column = columns["name" if name == "title" else name]
            body[column] = float(value) if isinstance(value, Decimal) else value
        self._patch(f"{'opportunities' if kind == 'opportunity' else 'leads'}({crm_id})", body)

    def delete(self, kind: DealKind, crm_id: str) -> None:
        entity_set = "opportunities" if kind == "opportunity" else "leads"
        response = self.http.delete(f"{entity_set}({crm_id})", headers={"Authorization": f"Bearer {self._token()}"})
        assert response.status_code == 204, response.text

    # ----- reads, straight from the simulator's rows -----
    def deal(self, crm_id: str) -> DealView | None:
        row = self.sim.get("opportunities", crm_id)
        if row is not None:
            return self._view("opportunity", row)
        row = self.sim.get("leads", crm_id)
        return self._view("lead", row) if row is not None else None

    def deals(self, kind: DealKind) -> list[DealView]:
        entity_set = "opportunities" if kind == "opportunity" else "leads"
        return [self._view(kind, row) for row in self.sim.records(entity_set)]

    def _view(self, kind: DealKind, row: dict[str, Any]) -> DealView:
        columns = OPP if kind == "opportunity" else LEAD
        state = int(row.get("statecode") or 0)
        value = row.get(columns["deal_value"])
        help_value = row.get(columns["help_needed"])
        record_id = str(row["opportunityid" if kind == "opportunity" else "leadid"])
        solutions = (
            frozenset(
                str(s[SOL["id"]])
                for s in self.sim.records(SOL["entity_set"])
                if s.get(f"_{SOL['parent']}_value") == record_id
            )
            if kind == "opportunity"
            else frozenset()
        )
        return DealView(
            kind=kind,
            id=record_id,
            name=str(row.get(columns["name"]) or ""),
            stage=(_OPPORTUNITY_STAGE if kind == "opportunity" else _LEAD_STAGE)[state],
            deal_value=Decimal(str(value)) if value is not None else None,
            currency=self._currency(row.get("_transactioncurrencyid_value")),
            close_date=_date(row.get(columns["close_date"])),
            description=row.get(columns["description"]),
            referral_id=row.get(columns["referral_id"]),
            referral_link=row.get(columns["referral_link"]),
            help_needed=_HELP_BY_VALUE.get(help_value) if help_value is not None else None,
            visible=bool(row.get(columns["visible"])),
            sync=bool(row.get(columns["sync"])),
            audit=str(row.get(columns["audit"]) or ""),
            account_id=row.get("_parentaccountid_value") if kind == "opportunity" else None,
            contact_id=row.get("_parentcontactid_value") if kind == "opportunity" else None,
            solutions=solutions,
            company=row.get(LEAD["company"]) if kind == "lead" else None,
        )

    def _currency(self, currency_id: str | None) -> str | None:
        if not currency_id:
            return None
        row = self.sim.get("transactioncurrencies", currency_id)
        return str(row["isocurrencycode"]) if row else None

    def accounts(self) -> dict[str, AccountData]:
        return {
            str(row["accountid"]): AccountData(
                name=row.get(ACC["name"]) or "",
                address_line1=row.get(ACC["address_line1"]),
                address_line2=row.get(ACC["address_line2"]),
                city=row.get(ACC["city"]),
                state=row.get(ACC["state"]),
                postal_code=row.get(ACC["postal_code"]),
                country=row.get(ACC["country"]),
            )
            for row in self.sim.records("accounts")
        }

    def contacts(self) -> list[ContactRow]:
        return [
            ContactRow(
                str(row["contactid"]),
                ContactData(row.get(CON["first_name"]), row.get(CON["last_name"]), row.get(CON["email"])),
                row.get("_parentcustomerid_value"),
            )
            for row in self.sim.records("contacts")
        ]

    def writes(self) -> int:
        return self.transport.writes


class SteppingClock:
    """The simulator's clock: one second later at every write, never repeating across tests.

    Dataverse stamps ``modifiedon`` to the second; stepping makes "modified at or after" and "oldest
    first" observable in a test that runs in milliseconds.
    """

    def __init__(self, start: dt.datetime) -> None:
        self._seconds = itertools.count()
        self._start = start

    def __call__(self) -> str:
        return (self._start + dt.timedelta(seconds=next(self._seconds))).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])

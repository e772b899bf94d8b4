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
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx

from sandbox.memory_crm import MemoryCrm
from sandbox.sims.dataverse import DataverseSimulator
from shared.crm.dynamics_fields import DYNAMICS_DEFAULTS, DYNAMICS_HELP_NEEDED
from shared.crm.salesforce_fields import SALESFORCE_DEFAULTS, STAGE_LOST, STAGE_WON
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


_INNER_WRITE = re.compile(rb"^(?:POST|PATCH|PUT|DELETE) \S+ HTTP/1\.1\r?$", re.MULTILINE)


class CountingTransport(httpx.BaseTransport):
    """The adapter's HTTP transport: counts every request that is not a read (a Dataverse ``$batch``
    counts the writes it carries, none for a batch of look-ups)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.writes = 0
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if request.url.path.endswith("/composite"):
            # Salesforce Composite: its subrequests say what it writes (a call of queries writes nothing).
            subs = json.loads(request.content).get("compositeRequest", [])
            self.writes += sum(1 for sub in subs if sub.get("method") != "GET")
        elif request.url.path.endswith("/$batch"):
            self.writes += len(_INNER_WRITE.findall(request.read()))
        elif request.method not in ("GET", "HEAD"):
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


# ============================================================================ Salesforce
SF_OPP = SALESFORCE_DEFAULTS["opportunity"]
SF_LEAD = SALESFORCE_DEFAULTS["lead"]
SF_ACC = SALESFORCE_DEFAULTS["account"]
SF_CON = SALESFORCE_DEFAULTS["contact"]
SF_SOL = SALESFORCE_DEFAULTS["solution"]
_SF_PREFIX: dict[DealKind, str] = {"opportunity": "006", "lead": "00Q"}
_SF_ID = re.compile(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?")
# A seller's close date when the test names none: CloseDate is required on a Salesforce opportunity.
_SF_DEFAULT_CLOSE_DAYS = 30


class SalesforceSeller:
    """A seller in Salesforce: the seller's own connected app over the REST API, writes and reads (SOQL).

    Facts of Salesforce the tests read from here rather than from the adapter:

    - ``lead_fields``: a Lead holds no deal name and no deal value (Lead ``Name`` is the person's name;
      ``Amount``/``CloseDate`` live on the opportunity made on acceptance), so a lead's ✔/✖ mark and value
      cannot be seen on the record.
    - ``converts_leads``: the REST API cannot convert a Lead (``convertLead`` is a SOAP / Apex call), so the
      adapter leaves the Lead open (``IsConverted`` false) and writes on it which opportunity carries the
      accepted referral on.
    - ``stage_pending`` / ``stage_accepted``: the org's picklist stages the adapter is configured with
      (``SALESFORCE_STAGE_PENDING`` / ``SALESFORCE_STAGE_ACCEPTED``); an open opportunity a seller types
      is in the accepted stage, one in the pending (on-hold) stage reads as not accepted yet.
    """

    lead_fields = DEAL_FIELDS - {"name", "deal_value", "currency", "close_date"}
    converts_leads = False

    def __init__(
        self,
        api_url: str,
        token: Callable[[], str],
        transport: CountingTransport,
        *,
        stage_pending: str,
        stage_accepted: str,
    ) -> None:
        self.transport = transport
        self.stage_pending = stage_pending
        self.stage_accepted = stage_accepted
        self._token = token
        self.http = httpx.Client(base_url=api_url.rstrip("/") + "/", timeout=10)

    def close(self) -> None:
        self.http.close()

    # ----- REST, as the seller's app calls it -----
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}

    def _create(self, sobject: str, body: dict[str, Any]) -> str:
        response = self.http.post(f"sobjects/{sobject}", json=body, headers=self._headers())
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def _query(self, soql: str) -> list[dict[str, Any]]:
        response = self.http.get("query", params={"q": soql}, headers=self._headers())
        assert response.status_code == 200, response.text
        body = response.json()
        rows = list(body["records"])
        while not body.get("done", True):
            response = self.http.get(str(body["nextRecordsUrl"]), headers=self._headers())
            assert response.status_code == 200, response.text
            body = response.json()
            rows += body["records"]
        return rows

    # ----- writes, as a seller types them -----
    def create_account(self, name: str, postal_code: str | None = None, *, country: str | None = None) -> str:
        body = {SF_ACC["name"]: name, SF_ACC["postal_code"]: postal_code, SF_ACC["country"]: country}
        return self._create(SF_ACC["object"], {k: v for k, v in body.items() if v is not None})

    def create_contact(self, first_name: str, last_name: str, email: str | None, account_id: str | None = None) -> str:
        body: dict[str, Any] = {SF_CON["first_name"]: first_name, SF_CON["last_name"]: last_name}
        if email:
            body[SF_CON["email"]] = email
        if account_id:
            body["AccountId"] = account_id
        return self._create(SF_CON["object"], body)

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
        close = close_date or dt.date.today() + dt.timedelta(days=_SF_DEFAULT_CLOSE_DAYS)
        body: dict[str, Any] = {
            SF_OPP["name"]: title,
            SF_OPP["stage"]: self.stage_accepted,
            SF_OPP["close_date"]: close.isoformat(),
            SF_OPP["sync"]: sync,
            SF_OPP["visible"]: visible,
            "AccountId": account_id,
        }
        if deal_value is not None:
            body[SF_OPP["deal_value"]] = float(deal_value)
        if currency:
            body[SF_OPP["currency"]] = currency
        if description is not None:
            body[SF_OPP["description"]] = description
        if help_needed:
            body[SF_OPP["help_needed"]] = help_needed
        if referral_id is not None:
            body[SF_OPP["referral_id"]] = referral_id
        opportunity_id = self._create(SF_OPP["object"], body)
        if contact_id:
            self._create(
                "OpportunityContactRole",
                {"OpportunityId": opportunity_id, "ContactId": contact_id, "IsPrimary": True, "Role": "Decision Maker"},
            )
        for solution in solutions:
            row = {SF_SOL["id"]: solution.id, SF_SOL["name"]: solution.name or solution.id}
            if solution.type:
                row[SF_SOL["type"]] = solution.type
            self._create(SF_SOL["object"], {**row, SF_SOL["parent"]: opportunity_id})
        return opportunity_id

    def create_lead(self, title: str, *, company: str, referral_id: str | None = None) -> str:
        # A Lead has no deal title: the seller notes it in the description.
        body: dict[str, Any] = {
            SF_LEAD["last_name"]: company,  # LastName is required on a Lead; the seller knows no person yet
            SF_LEAD["company"]: company,
            SF_LEAD["description"]: title,
        }
        if referral_id is not None:
            body[SF_LEAD["referral_id"]] = referral_id
        return self._create(SF_LEAD["object"], body)

    def update(self, kind: DealKind, crm_id: str, **fields: Any) -> None:
        columns = SF_OPP if kind == "opportunity" else SF_LEAD
        body: dict[str, Any] = {}
        for name, value in fields.items():
            column = columns["name" if name == "title" else name]
            body[column] = float(value) if isinstance(value, Decimal) else value
        response = self.http.patch(f"sobjects/{columns['object']}/{crm_id}", json=body, headers=self._headers())
        assert response.status_code == 204, response.text

    def delete(self, kind: DealKind, crm_id: str) -> None:
        columns = SF_OPP if kind == "opportunity" else SF_LEAD
        response = self.http.delete(f"sobjects/{columns['object']}/{crm_id}", headers=self._headers())
        assert response.status_code == 204, response.text

    # ----- reads, with SOQL -----
    def _soql(self, kind: DealKind, where: str = "") -> str:
        if kind == "opportunity":
            c = SF_OPP
            fields = [
                "Id", c["name"], c["stage"], c["deal_value"], c["currency"], c["close_date"], c["description"],
                c["referral_id"], c["referral_link"], c["help_needed"], c["visible"], c["sync"], c["audit"],
                "AccountId",
                f"(SELECT {SF_SOL['id']} FROM {SF_SOL['relationship']})",  # noqa: S608 - names only
                "(SELECT ContactId FROM OpportunityContactRoles WHERE IsPrimary = true)",
            ]  # fmt: skip
        else:
            c = SF_LEAD
            fields = [
                "Id", c["status"], "IsConverted", c["description"], c["company"], c["referral_id"],
                c["referral_link"], c["help_needed"], c["visible"], c["sync"], c["audit"],
            ]  # fmt: skip
        text = f"SELECT {', '.join(fields)} FROM {c['object']}"  # noqa: S608 - names only, the id is checked
        return f"{text} WHERE {where} ORDER BY Id" if where else f"{text} ORDER BY Id"

    def deal(self, crm_id: str) -> DealView | None:
        if not _SF_ID.fullmatch(crm_id):
            return None
        kind: DealKind | None = next((k for k, p in _SF_PREFIX.items() if crm_id.startswith(p)), None)
        if kind is None:
            return None
        rows = self._query(self._soql(kind, f"Id = '{crm_id}'"))
        return self._view(kind, rows[0]) if rows else None

    def deals(self, kind: DealKind) -> list[DealView]:
        return [self._view(kind, row) for row in self._query(self._soql(kind))]

    def _view(self, kind: DealKind, row: dict[str, Any]) -> DealView:
        c = SF_OPP if kind == "opportunity" else SF_LEAD
        common = {
            "kind": kind,
            "id": str(row["Id"]),
            "description": row.get(c["description"]),
            "referral_id": row.get(c["referral_id"]),
            "referral_link": row.get(c["referral_link"]),
            "help_needed": row.get(c["help_needed"]),
            "visible": bool(row.get(c["visible"])),
            "sync": bool(row.get(c["sync"])),
            "audit": str(row.get(c["audit"]) or ""),
        }
        if kind == "lead":
            status = str(row.get(c["status"]) or "")
            stage = (
                DealStage.ACCEPTED
                if row.get("IsConverted")
                else DealStage.LOST
                if status.startswith("Closed")
                else DealStage.PENDING
            )
            # No deal name, value, currency or close date on a Lead (see ``lead_fields``).
            return DealView(
                **common,
                name="",
                stage=stage,
                deal_value=None,
                currency=None,
                close_date=None,
                company=row.get(c["company"]),
            )
        stage_name = row.get(c["stage"])
        stage = {STAGE_WON: DealStage.WON, STAGE_LOST: DealStage.LOST, self.stage_pending: DealStage.PENDING}.get(
            stage_name, DealStage.ACCEPTED
        )
        value = row.get(c["deal_value"])
        roles = (row.get("OpportunityContactRoles") or {}).get("records") or []
        solutions = (row.get(SF_SOL["relationship"]) or {}).get("records") or []
        return DealView(
            **common,
            name=str(row.get(c["name"]) or ""),
            stage=stage,
            deal_value=Decimal(str(value)) if value is not None else None,
            currency=row.get(c["currency"]),
            close_date=_date(row.get(c["close_date"])),
            account_id=row.get("AccountId"),
            contact_id=roles[0].get("ContactId") if roles else None,
            solutions=frozenset(str(s[SF_SOL["id"]]) for s in solutions),
        )

    def accounts(self) -> dict[str, AccountData]:
        c = SF_ACC
        names = ["Id", c["name"], c["address_line1"], c["city"], c["state"], c["postal_code"], c["country"]]
        rows = self._query(f"SELECT {', '.join(names)} FROM {c['object']} ORDER BY Id")  # noqa: S608 - names only
        return {
            str(row["Id"]): AccountData(
                name=row.get(c["name"]) or "",
                address_line1=row.get(c["address_line1"]),
                city=row.get(c["city"]),
                state=row.get(c["state"]),
                postal_code=row.get(c["postal_code"]),
                country=row.get(c["country"]),
            )
            for row in rows
        }

    def contacts(self) -> list[ContactRow]:
        c = SF_CON
        names = ["Id", c["first_name"], c["last_name"], c["email"], "AccountId"]
        rows = self._query(f"SELECT {', '.join(names)} FROM {c['object']} ORDER BY Id")  # noqa: S608 - names only
        return [
            ContactRow(
                str(row["Id"]),
                ContactData(row.get(c["first_name"]), row.get(c["last_name"]), row.get(c["email"])),
                row.get("AccountId"),
            )
            for row in rows
        ]

    def writes(self) -> int:
        return self.transport.writes


class StepClock:
    """The Salesforce org's clock: one second later at every write (``SystemModstamp`` is to the second)."""

    def __init__(self, start: dt.datetime) -> None:
        self._seconds = itertools.count()
        self._start = start

    def __call__(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=next(self._seconds))

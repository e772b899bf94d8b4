"""An in-memory CRM behind the same port as Dynamics 365 and Salesforce.

The engine's unit tests run against it in milliseconds, and the contract suite
(``tests/contract``) holds it to the same behaviour as the real adapters: it follows the shared
matching rules (``shared.crm.matching``), writes only what changed, and counts its writes so a
test can say "a sync that changes nothing makes no writes". It is deliberately plain: records are
dicts of neutral fields, ids are deterministic where the rules say so and sequential otherwise.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from shared.crm.matching import account_id, contact_id, customer_key, same_customer, same_email
from shared.crm.port import Capabilities, CrmRejected, InboundResult, KnownRecord
from shared.mapping.model import AccountData, ContactData, CrmDeal, CrmPlan, DealKind, DealStage, SolutionData
from shared.mapping.text import CHECK, CROSS, audit_line, prepend_audit, strip_mark, with_mark

_DEAL_FIELDS = (
    "name",
    "deal_value",
    "currency",
    "close_date",
    "description",
    "referral_id",
    "referral_link",
    "help_needed",
    "visible",
    "microsoft_crm_id",
    "referral_program",
)
_CLOSED = (DealStage.WON, DealStage.LOST)


@dataclass
class Record:
    kind: DealKind
    id: str
    fields: dict[str, Any]
    stage: DealStage
    modified_on: str
    sync: bool = True
    account_id: str | None = None
    contact_ids: list[str] = field(default_factory=list)
    solutions: dict[str, SolutionData] = field(default_factory=dict)
    audit: str = ""
    owner: ContactData | None = None
    # inline customer of a lead
    company: AccountData | None = None
    lead_contact: ContactData | None = None


class MemoryCrm:
    kind = "memory"

    def __init__(
        self,
        *,
        pending_stage: bool = False,
        display_checkmark: bool = True,
        audit_max_chars: int = 4000,
        limits: dict[str, int] | None = None,
        currencies: tuple[str, ...] = ("USD", "EUR", "GBP", "JPY"),
    ) -> None:
        self.capabilities = Capabilities(pending_stage=pending_stage, closes_by_action=False)
        self.records: dict[str, Record] = {}
        self.accounts: dict[str, AccountData] = {}
        self.contacts: dict[str, tuple[ContactData, str | None]] = {}
        self.writes = 0
        self._checkmark = display_checkmark
        self._audit_max = audit_max_chars
        self._limits = limits if limits is not None else {"deal.name": 300, "deal.description": 2000}
        self._currencies = currencies
        self._ids = itertools.count(1)
        self._clock = itertools.count(1)
        self._lock = threading.RLock()
        self.fail_next: Exception | None = None  # the next write raises this (a test's fault)

    # ------------------------------------------------------------------ the seller's side
    def seller_creates_account(self, account: AccountData) -> str:
        """An account as a seller types it (not a write of the sync: not counted)."""
        with self._lock:
            ref = f"acc-{next(self._ids)}"
            self.accounts[ref] = account
            return ref

    def seller_creates_contact(self, contact: ContactData, account_ref: str | None = None) -> str:
        """A contact as a seller types it, under ``account_ref`` (not counted)."""
        with self._lock:
            ref = f"con-{next(self._ids)}"
            self.contacts[ref] = (contact, account_ref)
            return ref

    def seller_creates(
        self,
        *,
        title: str,
        account: AccountData | None = None,
        contact: ContactData | None = None,
        account_ref: str | None = None,
        contact_ref: str | None = None,
        deal_value: Any = None,
        currency: str | None = "USD",
        close_date: dt.date | None = None,
        description: str | None = None,
        help_needed: str | None = None,
        visible: bool = False,
        solutions: tuple[SolutionData, ...] = (),
        referral_id: str | None = None,
        sync: bool = True,
        owner: ContactData | None = None,
        kind: DealKind = "opportunity",
        stage: DealStage | None = None,
    ) -> str:
        """An opportunity (or lead) as a seller types it, marked for sync.

        An opportunity's customer is a new ``account`` (and ``contact``) or existing ones by reference;
        a lead holds its company and contact inline.
        """
        with self._lock:
            if account is not None and kind == "opportunity":
                account_ref = self.seller_creates_account(account)
            if contact is not None and kind == "opportunity":
                contact_ref = self.seller_creates_contact(contact, account_ref)
            contact_refs = [contact_ref] if contact_ref else []
            record = Record(
                kind=kind,
                id=f"{kind[:3]}-{next(self._ids)}",
                fields={
                    "name": title,
                    "deal_value": deal_value,
                    "currency": currency,
                    "close_date": close_date,
                    "description": description,
                    "referral_id": referral_id,
                    "referral_link": None,
                    "help_needed": help_needed,
                    "visible": visible,
                    "microsoft_crm_id": None,
                    "referral_program": None,
                },
                stage=stage or (DealStage.PENDING if kind == "lead" else self._open_stage()),
                modified_on=self._tick(),
                sync=sync,
                account_id=account_ref,
                contact_ids=contact_refs,
                solutions={s.id: s for s in solutions},
                owner=owner,
                company=account if kind == "lead" else None,
                lead_contact=contact if kind == "lead" else None,
            )
            self.records[record.id] = record
            return record.id

    def seller_updates(self, crm_id: str, *, stage: DealStage | None = None, **fields: Any) -> None:
        with self._lock:
            record = self.records[crm_id]
            if "solutions" in fields:
                record.solutions = {s.id: s for s in fields.pop("solutions")}
            if "sync" in fields:
                record.sync = bool(fields.pop("sync"))
            record.fields.update(fields)
            if stage is not None:
                record.stage = stage
            record.modified_on = self._tick()

    # ------------------------------------------------------------------ port: outbound
    def changed_deals(self, since: str | None) -> Iterator[CrmDeal]:
        with self._lock:
            rows = [
                r
                for r in self.records.values()
                if (r.sync if r.kind == "opportunity" else bool(r.fields.get("referral_id")))
                and (since is None or r.modified_on >= since)
            ]
            deals = [self._deal(r) for r in sorted(rows, key=lambda r: (r.modified_on, r.id))]
        yield from deals

    def get_deal(self, crm_id: str, kind: DealKind | None = None) -> CrmDeal | None:
        with self._lock:
            record = self.records.get(crm_id)
            return self._deal(record) if record and (kind is None or record.kind == kind) else None

    def write_back(
        self, deal: CrmDeal, *, message: str, ok: bool, referral_id: str | None = None, link: str | None = None
    ) -> bool:
        with self._lock:
            record = self.records.get(deal.crm_id)
            if record is None:
                return False
            changes: dict[str, Any] = {}
            if referral_id:
                changes.update(referral_id=referral_id, referral_link=link)
            if self._checkmark:
                changes["name"] = self._marked(deal.title, CHECK if ok else CROSS)
            self._write(record, changes, message)
            return True

    # ------------------------------------------------------------------ port: inbound
    def field_limits(self, kind: DealKind) -> dict[str, int]:
        return dict(self._limits)

    def memo_for(self, plan: CrmPlan) -> dict[str, Any]:
        deal = plan.deal
        if deal is None:
            return {}
        values = {name: getattr(deal, name) for name in _DEAL_FIELDS if name not in ("name",)}
        values["name"] = deal.name
        values["close_date"] = deal.close_date.isoformat() if deal.close_date else None
        values["deal_value"] = str(deal.deal_value) if deal.deal_value is not None else None
        memo = {k: v for k, v in values.items() if k not in deal.unreadable}
        if plan.kind == "lead":
            # A lead holds its company and first contact inline: they follow the referral like any field.
            memo["_company"] = asdict(plan.account) if plan.account else None
            memo["_lead_contact"] = asdict(plan.contacts[0]) if plan.contacts else None
        return memo

    def apply_inbound(self, plan: CrmPlan, known: KnownRecord | None, audit_message: str) -> InboundResult:
        deal = plan.deal
        if deal is None or plan.kind == "skip":
            raise ValueError("apply_inbound needs a plan with a deal")
        if deal.currency and deal.currency not in self._currencies:
            raise CrmRejected(f'Currency "{deal.currency}" is not set up in the CRM.')
        with self._lock:
            record = self._current(plan, known)
            memo = self.memo_for(plan)
            if record is None:
                return self._create(plan, known, memo, audit_message)
            last = known.memo if known and known.crm_id == record.id else {}
            changes = {k: v for k, v in memo.items() if last.get(k, _MISSING) != v}
            if known and known.failed_before and self._checkmark:
                changes["name"] = memo["name"]
            parts = known.part_hashes if known else {}
            new_parts = plan.part_hashes()
            if plan.kind == "opportunity" and (
                parts.get("account") != new_parts["account"] or parts.get("contacts") != new_parts["contacts"]
            ):
                # A deal that has an account keeps it (the seller's choice); new contacts go under it.
                account_ref = record.account_id or (
                    self._ensure_account(plan.account, plan.referral_id) if plan.account else None
                )
                contacts = self._ensure_contacts(plan.contacts, account_ref)
                if contacts and record.contact_ids[:1] != contacts[:1]:
                    changes["_contacts"] = contacts
            notes: list[str] = []
            stage = self._stage_for(plan)
            if record.stage in _CLOSED and stage in _CLOSED and changes:
                notes.append("the deal is closed in the CRM; field changes not applied")
                changes = {}
            if changes or stage != record.stage:
                self._write(record, changes, audit_message, stage=stage)
            if plan.kind == "opportunity" and parts.get("solutions") != new_parts["solutions"]:
                self._sync_solutions(record, plan.solutions)
            return InboundResult(plan.kind, record.id, False, memo, notes=notes)

    def mark_failed(self, kind: DealKind, crm_id: str, message: str) -> bool:
        with self._lock:
            record = self.records.get(crm_id)
            if record is None:
                return False
            changes = {"name": self._marked(str(record.fields["name"]), CROSS)} if self._checkmark else {}
            self._write(record, changes, message)
            return True

    # ------------------------------------------------------------------ internals
    def _open_stage(self) -> DealStage:
        return DealStage.ACCEPTED if self.capabilities.pending_stage else DealStage.OPEN

    def _stage_for(self, plan: CrmPlan) -> DealStage:
        assert plan.deal is not None
        stage = plan.deal.stage
        if plan.kind == "opportunity" and stage in (DealStage.PENDING, DealStage.ACCEPTED):
            return stage if self.capabilities.pending_stage else DealStage.OPEN
        return stage

    def _current(self, plan: CrmPlan, known: KnownRecord | None) -> Record | None:
        if known and known.kind == plan.kind and known.crm_id in self.records:
            return self.records[known.crm_id]
        for record in self.records.values():
            if record.kind == plan.kind and record.fields.get("referral_id") == plan.referral_id:
                return record
        external = self.records.get(plan.external_id or "")
        return external if external and external.kind == plan.kind == "opportunity" else None

    def _create(self, plan: CrmPlan, known: KnownRecord | None, memo: dict[str, Any], message: str) -> InboundResult:
        deal = plan.deal
        assert deal is not None
        record = Record(
            kind=plan.kind,  # type: ignore[arg-type]
            id=f"{plan.kind[:3]}-{next(self._ids)}",
            fields={name: None for name in _DEAL_FIELDS},
            stage=self._stage_for(plan),
            modified_on="",
        )
        if plan.kind == "opportunity":
            record.account_id = self._ensure_account(plan.account or AccountData(deal.title), plan.referral_id)
            record.contact_ids = self._ensure_contacts(plan.contacts, record.account_id)
            record.solutions = {s.id: s for s in plan.solutions}
        else:
            record.company = plan.account
            record.lead_contact = plan.contacts[0] if plan.contacts else None
        self._check_lengths(memo)
        record.fields.update({k: v for k, v in memo.items() if not k.startswith("_")})
        record.fields["referral_id"] = plan.referral_id
        self._write(record, {}, message)  # a failing write (fail_next) leaves no half-created record
        self.records[record.id] = record
        lead_id = known.crm_id if known and known.kind == "lead" and plan.kind == "opportunity" else ""
        if lead_id and lead_id in self.records:
            self._write(self.records[lead_id], {}, f"{message} (converted to an opportunity)", stage=DealStage.ACCEPTED)
        return InboundResult(plan.kind, record.id, True, memo, lead_id=lead_id)  # type: ignore[arg-type]

    def _ensure_account(self, account: AccountData | None, referral_id: str) -> str | None:
        if account is None:
            return None
        wanted = customer_key(account)
        for ref, existing in self.accounts.items():
            if same_customer(existing.name, existing.postal_code, wanted):
                return ref
        ref = account_id(account, referral_id)
        if ref not in self.accounts:
            self.accounts[ref] = account
            self.writes += 1
        return ref

    def _ensure_contacts(self, contacts: tuple[ContactData, ...], account_ref: str | None) -> list[str]:
        refs: list[str] = []
        for contact in contacts:
            if not contact.email:
                continue
            found = next((ref for ref, (c, _) in self.contacts.items() if same_email(c.email, contact.email)), None)
            if found is None:
                found = contact_id(contact.email)
                self.contacts[found] = (contact, account_ref)
                self.writes += 1
            refs.append(found)
        return refs

    def _sync_solutions(self, record: Record, solutions: tuple[SolutionData, ...]) -> None:
        wanted = {s.id: s for s in solutions}
        if wanted.keys() != record.solutions.keys():
            self.writes += len(wanted.keys() ^ record.solutions.keys())
            record.solutions = {**{k: v for k, v in record.solutions.items() if k in wanted}, **wanted}

    def _write(self, record: Record, changes: dict[str, Any], message: str, *, stage: DealStage | None = None) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self._check_lengths(changes)
        contacts = changes.pop("_contacts", None)
        if contacts is not None:
            record.contact_ids = contacts
        if "_company" in changes:
            company = changes.pop("_company")
            record.company = AccountData(**company) if company else None
        if "_lead_contact" in changes:
            lead_contact = changes.pop("_lead_contact")
            record.lead_contact = ContactData(**lead_contact) if lead_contact else None
        record.fields.update(changes)
        if stage is not None:
            record.stage = stage
        record.audit = prepend_audit(record.audit, audit_line(dt.datetime.now(dt.UTC), message), self._audit_max)
        record.modified_on = self._tick()
        self.writes += 1

    def _marked(self, title: str, mark: str) -> str:
        """The name with its mark, the title cut so that both fit the name field (as ``limits.fit`` cuts)."""
        name = with_mark(title, mark, True)
        limit = self._limits.get("deal.name")
        if limit is None or len(name) <= limit:
            return name
        prefix = with_mark("", mark, True)
        return prefix + strip_mark(title)[: max(0, limit - len(prefix))]

    def _check_lengths(self, values: dict[str, Any]) -> None:
        """Like a real CRM, refuse the whole write when a value is longer than its field."""
        for name, value in values.items():
            limit = self._limits.get(f"deal.{name}")
            if isinstance(value, str) and limit is not None and len(value) > limit:
                raise CrmRejected(f"The {name} is {len(value)} characters long; the CRM holds {limit}.")

    def _deal(self, record: Record) -> CrmDeal:
        f = record.fields
        if record.kind == "lead":
            account, contact = record.company, record.lead_contact
        else:
            account = self.accounts.get(record.account_id or "")
            contact = self.contacts[record.contact_ids[0]][0] if record.contact_ids else None
        return CrmDeal(
            entity=record.kind,
            crm_id=record.id,
            modified_on=record.modified_on,
            referral_id=f.get("referral_id"),
            title=strip_mark(str(f.get("name") or "")),
            deal_value=Decimal(str(f["deal_value"])) if f.get("deal_value") is not None else None,
            currency=f.get("currency"),
            close_date=_date(f.get("close_date")),
            description=f.get("description"),
            stage=record.stage,
            help_needed=f.get("help_needed"),
            visible=bool(f.get("visible")),
            account=account,
            contact=contact,
            owner=record.owner,
            solutions=tuple(sorted(record.solutions.values(), key=lambda s: s.id)),
            audit=record.audit,
        )

    def _tick(self) -> str:
        return f"{next(self._clock):012d}"


_MISSING = object()


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))

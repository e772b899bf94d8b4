"""Salesforce adapter: the neutral plan into the fewest REST calls, and shared deals out of SOQL.

- Opportunities and Leads are upserted by their ``Referral_Identifier__c`` External ID, so a retry
  after a lost answer updates the row it created. Accounts are matched by normalised name + postal
  code and contacts by email (``shared.crm.matching``), found again by the same query on a retry.
- Stages (DESIGN.md): not accepted -> ``SALESFORCE_STAGE_PENDING`` (the on-hold stage), accepted ->
  ``SALESFORCE_STAGE_ACCEPTED``, won/lost -> ``Closed Won`` / ``Closed Lost``. The stage is written
  only when the neutral stage changes, so a seller's own later stage is not pulled back.
- The primary customer contact is an ``OpportunityContactRole`` (``IsPrimary``); solutions are
  ``Microsoft_Solution__c`` rows under the opportunity (master-detail ``Opportunity__c``).
- A lead accepted in Partner Center: REST cannot convert a Lead (conversion is the SOAP/Apex
  ``convertLead`` call), so the opportunity is created from the referral and the Lead is linked to it
  by the shared referral id, with an audit line saying so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.crm.fields import LEAD_CUSTOMER_FIELDS, FieldMap
from shared.crm.matching import account_id as account_key
from shared.crm.matching import contact_id as contact_key
from shared.crm.matching import customer_key, same_customer, same_email
from shared.crm.port import Capabilities, CrmRejected, InboundResult, KnownRecord, SchemaNotReady
from shared.crm.salesforce_client import SalesforceClient, SubRequest, soql, soql_like_prefix, soql_string
from shared.crm.salesforce_fields import MAX_LENGTH, STAGE_LOST, STAGE_WON, salesforce_connector_map
from shared.crm.salesforce_schema import SalesforceSchema
from shared.crm.values import date_or_none, decimal_or_none
from shared.http import ApiError
from shared.mapping.model import (
    AccountData,
    ContactData,
    CrmDeal,
    CrmPlan,
    DealData,
    DealKind,
    DealStage,
    SolutionData,
)
from shared.mapping.text import CHECK, CROSS, audit_line, prepend_audit, strip_mark, with_mark

if TYPE_CHECKING:
    from shared.crm.salesforce_adopt import SalesforceAdoption

log = logging.getLogger("cosell.crm.salesforce")

_ID = re.compile(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?")
_PREFIX = {"opportunity": "006", "lead": "00Q"}
DEFAULT_CLOSE_DAYS = 90  # CloseDate is required: the last resort when a plan has none (see mapping/inbound)
_MISSING = object()


class SalesforceCrm:
    kind = "salesforce"
    # The on-hold stage says "not accepted yet"; closing is a stage like any other.
    capabilities = Capabilities(pending_stage=True, closes_by_action=False)

    def __init__(
        self,
        client: SalesforceClient,
        fields: FieldMap,
        *,
        user: Callable[[], str | None] = lambda: None,
        stage_pending: str = "Prospecting",
        stage_accepted: str = "Qualification",
        lead_status: str = "Open - Not Contacted",
        display_checkmark: bool = True,
        audit_max_chars: int = 32000,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._sf = client
        self._fields = fields
        self._user = user
        self._stage_pending = stage_pending
        self._stage_accepted = stage_accepted
        self._lead_status = lead_status
        self._checkmark = display_checkmark
        self._audit_max = audit_max_chars
        self._clock = clock
        self._describes: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    @property
    def schema(self) -> SalesforceSchema:
        return SalesforceSchema(self._sf, self._fields, user=self._user)

    def adoption(self, connector_overrides: str | None = None) -> SalesforceAdoption:
        """Linking the records Microsoft's co-sell connector made (``python -m shared.cli adopt``)."""
        from shared.crm.salesforce_adopt import SalesforceAdoption

        connector, explicit = salesforce_connector_map(connector_overrides)
        return SalesforceAdoption(
            self._sf, self._fields, connector, explicit=explicit, audit_max_chars=self._audit_max, clock=self._clock
        )

    # ------------------------------------------------------------------ names
    def _obj(self, record: str) -> str:
        return self._fields.column(record, "object")

    def _col(self, record: str, field: str) -> str | None:
        return self._fields.get(record, field)

    def _described(self, record: str) -> dict[str, dict[str, Any]]:
        """The object's fields as this org describes them (read once per process)."""
        obj = self._obj(record)
        with self._lock:
            known = self._describes.get(obj)
        if known is None:
            known = {str(f["name"]): f for f in (self._sf.describe(obj) or {}).get("fields", [])}
            with self._lock:
                self._describes[obj] = known
        return known

    def _has(self, record: str, field: str) -> bool:
        """An optional standard field exists in this org (CurrencyIsoCode only in multi-currency orgs)."""
        column = self._col(record, field)
        return bool(column) and column in self._described(record)

    def _check_currency(self, deal: DealData) -> None:
        """A currency the org does not have would refuse the write after the account and contacts exist."""
        if not deal.currency or "currency" in deal.unreadable or not self._has("opportunity", "currency"):
            return
        column = self._fields.column("opportunity", "currency")
        values = self._described("opportunity")[column].get("picklistValues") or []
        active = {str(v.get("value")) for v in values if v.get("active", True)}
        if active and deal.currency not in active:
            raise CrmRejected(f'Currency "{deal.currency}" is not set up in Salesforce (Setup → Manage Currencies).')

    # ------------------------------------------------------------------ port: limits and memo
    def field_limits(self, kind: DealKind) -> dict[str, int]:
        record = "lead" if kind == "lead" else "opportunity"
        parts: dict[str, tuple[str, dict[str, str]]] = {
            "deal": (
                record,
                {
                    "name": "name",
                    "description": "description",
                    "microsoft_crm_id": "microsoft_crm_id",
                    "referral_program": "referral_program",
                    "referral_link": "referral_link",
                },
            ),
            "account": (
                record,
                {
                    "name": "company",
                    "address_line1": "address_line1",
                    "city": "city",
                    "state": "state",
                    "postal_code": "postal_code",
                },
            )
            if kind == "lead"
            else ("account", {k: k for k in ("name", "address_line1", "city", "state", "postal_code")}),
            "contact": (
                record if kind == "lead" else "contact",
                {k: k for k in ("first_name", "last_name", "email", "phone")},
            ),
            "solution": ("solution", {k: k for k in ("id", "name", "type")}),
        }
        limits: dict[str, int] = {}
        for part, (table, names) in parts.items():
            sizes = MAX_LENGTH.get(self._obj(table), {})
            for neutral, field in names.items():
                size = sizes.get(self._col(table, field) or "")
                if size is not None:
                    limits[f"{part}.{neutral}"] = size
        return limits

    def memo_for(self, plan: CrmPlan) -> dict[str, Any]:
        return self._lead_values(plan) if plan.kind == "lead" else self._deal_values("opportunity", _deal_of(plan))

    # ------------------------------------------------------------------ port: outbound
    def changed_deals(self, since: str | None) -> Iterator[CrmDeal]:
        opportunities = self._changed("opportunity", since)
        leads = self._changed("lead", since)
        with _schema_hint():
            yield from heapq.merge(opportunities, leads, key=lambda d: (d.modified_on, d.crm_id))

    def get_deal(self, crm_id: str, kind: DealKind | None = None) -> CrmDeal | None:
        if not _ID.fullmatch(crm_id):
            return None
        for entity in (kind,) if kind else ("opportunity", "lead"):
            if not crm_id.startswith(_PREFIX[entity]):
                continue
            rows = list(self._sf.query(self._soql(entity, f"Id = {soql_string(crm_id)}")))
            if rows:
                return self._deal(entity, rows[0])
        return None

    def write_back(
        self, deal: CrmDeal, *, message: str, ok: bool, referral_id: str | None = None, link: str | None = None
    ) -> bool:
        record = deal.entity
        values: dict[str, Any] = {}
        audit = self._col(record, "audit")
        if audit:
            values[audit] = prepend_audit(deal.audit, audit_line(self._clock(), message), self._audit_max)
        if referral_id:
            values[self._fields.column(record, "referral_id")] = referral_id
            values[self._fields.column(record, "referral_link")] = link
        name = self._col(record, "name")
        if self._checkmark and name:
            values[name] = with_mark(deal.title, CHECK if ok else CROSS, True, self._size(record, name))
        self._sf.update(self._obj(record), deal.crm_id, values)
        return True

    def _size(self, record: str, column: str) -> int | None:
        return MAX_LENGTH.get(self._obj(record), {}).get(column)

    def mark_failed(self, kind: DealKind, crm_id: str, message: str) -> bool:
        name, audit = self._col(kind, "name"), self._col(kind, "audit")
        fields = [f for f in ("Id", name, audit) if f]
        current = self._sf.get(self._obj(kind), crm_id, fields)
        if current is None:
            return False
        values: dict[str, Any] = {}
        if audit:
            values[audit] = prepend_audit(current.get(audit), audit_line(self._clock(), message), self._audit_max)
        if self._checkmark and name:
            values[name] = with_mark(str(current.get(name) or ""), CROSS, True, self._size(kind, name))
        try:
            self._sf.update(self._obj(kind), crm_id, values)
        except ApiError as exc:
            log.warning("Could not mark %s %s as failed: HTTP %s %s", kind, crm_id, exc.status, exc.code)
            return False
        return True

    # ------------------------------------------------------------------ port: inbound
    def apply_inbound(self, plan: CrmPlan, known: KnownRecord | None, audit_message: str) -> InboundResult:
        if plan.deal is None or plan.kind == "skip":
            raise ValueError("apply_inbound needs a plan with a deal")
        line = audit_line(self._clock(), audit_message)
        with _schema_hint():
            if plan.kind == "lead":
                return self._apply_lead(plan, known, line)
            try:
                return self._apply_opportunity(plan, known, line)
            except ApiError as exc:
                if exc.code != "DUPLICATE_VALUE":
                    raise
                # Another sync keyed the same customer or contact between our look-up and our write (the write
                # was rolled back whole): look again, and this time find theirs.
                log.info("Another sync created the same customer first; looking it up again")
                return self._apply_opportunity(plan, known, line)

    def _apply_opportunity(self, plan: CrmPlan, known: KnownRecord | None, line: str) -> InboundResult:
        """One look-up call (the deal with its roles and solutions, the customer's accounts and contacts, the
        lead it came from), then one atomic write call (Composite, allOrNone) for whatever changed."""
        deal = _deal_of(plan)
        self._check_currency(deal)
        audit, stage_col = self._col("opportunity", "audit"), "StageName"
        values = self._deal_values("opportunity", deal)
        parts, new_parts = (known.part_hashes if known else {}), plan.part_hashes()
        customer = known is None or any(parts.get(p) != new_parts[p] for p in ("account", "contacts"))
        lead_id = known.crm_id if known and known.kind == "lead" else ""
        found = self._lookup("opportunity", plan, known, customer=customer, lead_id=lead_id)
        current = found.deal
        if (current is None or customer) and not found.customer_read:
            found = self._lookup("opportunity", plan, known, customer=True, lead_id=lead_id)  # the record went away
            current = found.deal
        writes = _Writes()
        if current is None:
            account = self._plan_account(writes, plan.account or AccountData(name=deal.title), plan.referral_id, found)
            contacts = self._plan_contacts(writes, plan.contacts, account, found)
            referral_col = self._fields.column("opportunity", "referral_id")
            body = {k: v for k, v in values.items() if k != referral_col}
            body.update({"AccountId": account, stage_col: self._stage_name(deal)})
            close = self._fields.column("opportunity", "close_date")
            if not body.get(close):
                body[close] = (self._clock().date() + dt.timedelta(days=DEFAULT_CLOSE_DAYS)).isoformat()
            if audit:
                body[audit] = prepend_audit(None, line, self._audit_max)
            path = f"sobjects/{self._obj('opportunity')}/{referral_col}/{quote(deal.referral_id, safe='')}"
            deal_ref = writes.add("PATCH", path, "deal", body)
            if contacts:
                self._plan_primary_role(writes, deal_ref, contacts[0], [])
            self._plan_solutions(writes, deal_ref, plan.solutions, [])
            answers = self._write(writes)
            crm_id, created = str(answers["deal"]["id"]), bool(answers["deal"].get("created", True))
            if lead_id and found.lead is not None:
                self._link_lead(found.lead, crm_id, line)
            return InboundResult("opportunity", crm_id, created, values, lead_id=lead_id)

        crm_id = str(current["Id"])
        last = known.memo if known and known.crm_id == crm_id else {}
        body = {k: v for k, v in values.items() if last.get(k, _MISSING) != v}
        name = self._col("opportunity", "name")
        if known and known.failed_before and self._checkmark and name:
            body[name] = values[name]
        contacts = []
        if customer:
            # An opportunity that has an account keeps it (the seller's, or the connector's); contacts go under it.
            account_id = current.get("AccountId") or (
                self._plan_account(writes, plan.account, plan.referral_id, found) if plan.account else None
            )
            if account_id and not current.get("AccountId"):
                body["AccountId"] = account_id
            contacts = self._plan_contacts(writes, plan.contacts, account_id, found)
        if self._stage_of_name(current.get(stage_col)) != self._neutral_stage(deal):
            body[stage_col] = self._stage_name(deal)
        if body and audit:
            body[audit] = prepend_audit(current.get(audit), line, self._audit_max)
        if body:
            writes.add("PATCH", f"sobjects/{self._obj('opportunity')}/{crm_id}", "deal", body)
        if contacts:
            self._plan_primary_role(writes, crm_id, contacts[0], _children(current, "OpportunityContactRoles"))
        if parts.get("solutions") != new_parts["solutions"]:
            present = _children(current, self._fields.tables["solution"]["relationship"])
            self._plan_solutions(writes, crm_id, plan.solutions, present)
        self._write(writes)
        return InboundResult("opportunity", crm_id, False, values)

    def _apply_lead(self, plan: CrmPlan, known: KnownRecord | None, line: str) -> InboundResult:
        obj, audit = self._obj("lead"), self._col("lead", "audit")
        status_col = self._fields.column("lead", "status")
        current = self._lookup("lead", plan, known).deal
        values = self._lead_values(plan)
        deal = _deal_of(plan)
        referral_col = self._fields.column("lead", "referral_id")
        if current is None:
            body = {k: v for k, v in values.items() if k != referral_col}
            body[status_col] = self._lead_status if deal.stage != DealStage.LOST else "Closed - Not Converted"
            if audit:
                body[audit] = prepend_audit(None, line, self._audit_max)
            state = self._col("lead", "state")
            crm_id, created = self._upsert_with_state(obj, referral_col, deal.referral_id, body, state)
            return InboundResult("lead", crm_id, created, values)
        crm_id = str(current["Id"])
        last = known.memo if known and known.crm_id == crm_id else {}
        body = {k: v for k, v in values.items() if last.get(k, _MISSING) != v}
        closed = str(current.get(status_col) or "").startswith("Closed")
        if deal.stage == DealStage.LOST and not current.get("IsConverted") and not closed:
            body[status_col] = "Closed - Not Converted"
        if not body:
            return InboundResult("lead", crm_id, False, values)
        if audit:
            body[audit] = prepend_audit(current.get(audit), line, self._audit_max)
        self._sf.update(obj, crm_id, body)
        return InboundResult("lead", crm_id, False, values)

    # ------------------------------------------------------------------ the look-up: one call
    def _lookup(
        self, kind: DealKind, plan: CrmPlan, known: KnownRecord | None, *, customer: bool = False, lead_id: str = ""
    ) -> _Found:
        """The deal (by its known id, else its referral id, else the opportunity it was shared from) and, when
        asked, the customer's candidate accounts and contacts and the lead it came from: one Composite call
        of up to four queries (a plain query when only the deal is wanted)."""
        obj, referral_col = self._obj(kind), self._fields.column(kind, "referral_id")
        audit = self._col(kind, "audit")
        if kind == "lead":
            fields = [
                "Id",
                referral_col,
                self._fields.column("lead", "status"),
                "IsConverted",
                *(f for f in (audit,) if f),
            ]
        else:
            solution = self._fields.tables["solution"]
            fields = ["Id", referral_col, "StageName", "AccountId", *(f for f in (audit,) if f)]
            fields.append(f"({soql(['Id', 'ContactId', 'IsPrimary'], 'OpportunityContactRoles')})")
            fields.append(f"({soql(['Id', solution['id']], solution['relationship'])})")
        known_id = known.crm_id if known and known.kind == kind and _is_id(known.crm_id, kind) else ""
        external = plan.external_id or ""
        shared_from = external if kind == "opportunity" and _is_id(external, "opportunity") else ""
        terms = [f"{referral_col} = {soql_string(plan.referral_id)}"]
        terms += [f"Id = {soql_string(i)}" for i in dict.fromkeys((known_id, shared_from)) if i]
        queries = {"deal": soql(fields, obj, " OR ".join(terms))}
        account, contacts = plan.account or AccountData(name=_deal_of(plan).title), plan.contacts
        if customer:
            queries["accounts"] = self._account_query(account, plan.referral_id)
            if any(c.email for c in contacts):
                queries["contacts"] = self._contact_query(contacts)
        if lead_id and audit and _is_id(lead_id, "lead"):
            queries["lead"] = soql(["Id", audit], self._obj("lead"), f"Id = {soql_string(lead_id)}")
        rows = self._sf.queries(queries)
        deals = rows["deal"]
        by_referral = [r for r in deals if str(r.get(referral_col) or "").lower() == plan.referral_id.lower()]
        deal = next(
            (r for r in deals if known_id and r["Id"] == known_id),
            next(iter(by_referral), next((r for r in deals if shared_from and r["Id"] == shared_from), None)),
        )
        return _Found(
            deal=deal,
            customer_read=customer,
            accounts=rows.get("accounts", []),
            contacts=rows.get("contacts", []),
            lead=next(iter(rows.get("lead", [])), None),
        )

    # ------------------------------------------------------------------ the writes: one atomic call
    def _write(self, writes: _Writes) -> dict[str, Any]:
        """All of it or nothing (Composite, allOrNone); in an org with state picklists a state it does not list
        is left out of the account, not the account out of Salesforce."""
        if not writes.requests:
            return {}
        try:
            return self._sf.composite(writes.requests)
        except ApiError as exc:
            state = self._col("account", "state")
            if not state or not writes.has(state) or not _state_refused(exc, state):
                raise
            log.info("Account written without its state: the org does not list it")
            return self._sf.composite(writes.without(state))

    def _account_query(self, account: AccountData, referral_id: str) -> str:
        """The account holding the customer's key, and the candidates a seller may have made without one (the
        exact name, the postal code as typed, names that start with the same first word)."""
        obj, name = self._obj("account"), self._fields.column("account", "name")
        postal, key_col = self._col("account", "postal_code"), self._fields.column("account", "key")
        terms = [f"{key_col} = {soql_string(account_key(account, referral_id))}"]
        if customer_key(account)[0]:
            terms.append(f"{name} = {soql_string(account.name)}")
            if postal and account.postal_code:
                terms.append(f"{postal} = {soql_string(account.postal_code)}")
            first = account.name.split()[0] if account.name.split() else ""
            if len(first) >= 3:
                terms.append(f"{name} LIKE {soql_like_prefix(first)}")
        return soql(["Id", key_col, name, *([postal] if postal else [])], obj, " OR ".join(terms))

    def _contact_query(self, contacts: tuple[ContactData, ...]) -> str:
        email_col, key_col = self._fields.column("contact", "email"), self._fields.column("contact", "key")
        emails = [c.email for c in contacts if c.email]
        where = (
            f"{email_col} IN ({', '.join(soql_string(e) for e in emails)}) OR "
            f"{key_col} IN ({', '.join(soql_string(contact_key(e)) for e in emails)})"
        )
        return soql(["Id", key_col, email_col], self._obj("contact"), where)

    def _plan_account(self, writes: _Writes, account: AccountData, referral_id: str, found: _Found) -> str:
        """The customer's account id, or a reference to the one the write call makes.

        Found by its key, else a seller's by normalised name + postal code (shared.crm.matching), which gets
        the key; else created by upsert on the key (``Cosell_Account_Key__c``, External ID, unique): when two
        workers create the same new customer at once, Salesforce refuses a second row with the key, so the
        second create updates the first row.
        """
        obj, name = self._obj("account"), self._fields.column("account", "name")
        postal, key_col = self._col("account", "postal_code"), self._fields.column("account", "key")
        key, wanted = account_key(account, referral_id), customer_key(account)
        row = _pick(
            found.accounts,
            key_col,
            key,
            lambda r: same_customer(r.get(name), r.get(postal) if postal else None, wanted),
        )
        if row is not None:
            if not row.get(key_col):  # a seller's account: keyed from now on
                writes.add("PATCH", f"sobjects/{obj}/{row['Id']}", "accountKey", {key_col: key})
            return str(row["Id"])
        values = {name: account.name}
        for field, value in (
            ("address_line1", _street(account, MAX_LENGTH["Account"].get(self._col("account", "address_line1") or ""))),
            ("city", account.city),
            ("state", account.state),
            ("postal_code", account.postal_code),
            ("country", account.country),
        ):
            column = self._col("account", field)
            if column and value:
                values[column] = value
        return writes.add("PATCH", f"sobjects/{obj}/{key_col}/{key}", "account", values)

    def _plan_contacts(
        self, writes: _Writes, contacts: tuple[ContactData, ...], account: str | None, found: _Found
    ) -> list[str]:
        """Customer contacts, in team order: the one holding the email's key, else one with the email (given the
        key), else created under the account by upsert on the key (one Contact per email, as for accounts)."""
        obj, email_col = self._obj("contact"), self._fields.column("contact", "email")
        key_col = self._fields.column("contact", "key")
        ids: list[str] = []
        planned: dict[str, str] = {}
        for contact in contacts:
            if not contact.email:
                continue  # without an email there is nothing safe to match on
            key = contact_key(contact.email)
            if key in planned:
                ids.append(planned[key])
                continue
            row = _pick(found.contacts, key_col, key, lambda r, e=contact.email: same_email(r.get(email_col), e))  # type: ignore[misc]
            if row is not None:
                if not row.get(key_col):
                    writes.add("PATCH", f"sobjects/{obj}/{row['Id']}", f"contactKey{len(ids)}", {key_col: key})
                planned[key] = str(row["Id"])
            else:
                values: dict[str, Any] = {
                    self._fields.column("contact", "last_name"): contact.last_name or contact.email,
                    email_col: contact.email,
                }
                for field, value in (("first_name", contact.first_name), ("phone", contact.phone)):
                    column = self._col("contact", field)
                    if column and value:
                        values[column] = value
                if account:
                    values["AccountId"] = account
                planned[key] = writes.add("PATCH", f"sobjects/{obj}/{key_col}/{key}", f"contact{len(ids)}", values)
            ids.append(planned[key])
        return ids

    def _plan_primary_role(self, writes: _Writes, opportunity: str, contact: str, roles: list[dict[str, Any]]) -> None:
        """The first team member is the opportunity's primary contact role (one primary per opportunity)."""
        mine = next((r for r in roles if r.get("ContactId") == contact), None)
        if mine is None:
            body = {"OpportunityId": opportunity, "ContactId": contact, "IsPrimary": True, "Role": "Decision Maker"}
            writes.add("POST", "sobjects/OpportunityContactRole", "role", body)
        elif not mine.get("IsPrimary"):
            writes.add("PATCH", f"sobjects/OpportunityContactRole/{mine['Id']}", "role", {"IsPrimary": True})

    def _plan_solutions(
        self, writes: _Writes, opportunity: str, solutions: tuple[SolutionData, ...], present: list[dict[str, Any]]
    ) -> None:
        """One ``Microsoft_Solution__c`` row per solution; rows for solutions no longer listed are removed."""
        col = self._fields.tables["solution"]
        obj, key, parent = col["object"], col["id"], col["parent"]
        rows = {str(r.get(key)): str(r["Id"]) for r in present}
        wanted = {s.id: s for s in solutions}
        for n, (solution_id, solution) in enumerate(wanted.items()):
            if solution_id in rows:
                continue
            values = {col["name"]: solution.name or solution.id, key: solution.id, parent: opportunity}
            if solution.type:
                values[col["type"]] = solution.type
            writes.add("POST", f"sobjects/{obj}", f"solution{n}", values)
        for n, (solution_id, row_id) in enumerate(rows.items()):
            if solution_id not in wanted:
                writes.add("DELETE", f"sobjects/{obj}/{row_id}", f"removed{n}")

    def _link_lead(self, lead: dict[str, Any], opportunity_id: str, line: str) -> None:
        """REST cannot convert a Lead: say on it which opportunity carries the accepted referral on (a call of its
        own after the write, as the note names the new opportunity's id)."""
        audit = self._fields.column("lead", "audit")
        note = f"{line} (accepted: opportunity {opportunity_id} carries the referral on)"
        self._sf.update(
            self._obj("lead"), str(lead["Id"]), {audit: prepend_audit(lead.get(audit), note, self._audit_max)}
        )

    # ------------------------------------------------------------------ values
    def _deal_values(self, record: str, deal: DealData) -> dict[str, Any]:
        col = self._col
        values: dict[str, Any] = {}

        def put(field: str, value: Any) -> None:
            column = col(record, field)
            if column and field not in deal.unreadable:
                values[column] = value

        put("name", deal.name if self._checkmark else deal.title)
        put("deal_value", float(deal.deal_value) if deal.deal_value is not None else None)
        if deal.currency and self._has(record, "currency"):
            put("currency", deal.currency)
        if deal.close_date:  # CloseDate is required on an Opportunity: never cleared
            put("close_date", deal.close_date.isoformat())
        put("description", deal.description)
        put("sync", True)
        put("referral_id", deal.referral_id)
        put("referral_link", deal.referral_link)
        put("help_needed", deal.help_needed)
        put("visible", deal.visible)
        put("microsoft_crm_id", deal.microsoft_crm_id)
        put("referral_program", deal.referral_program)
        return values

    def _lead_values(self, plan: CrmPlan) -> dict[str, Any]:
        values = self._deal_values("lead", _deal_of(plan))
        account = plan.account or AccountData(name="")
        primary = plan.contacts[0] if plan.contacts else ContactData(None, None, None)
        col = self._col
        inline = {
            "company": account.name,
            "first_name": primary.first_name,
            "last_name": primary.last_name or account.name,  # LastName is required on a Lead
            "email": primary.email,
            "phone": primary.phone,
            "address_line1": _street(account, self._size("lead", self._col("lead", "address_line1") or "")),
            "city": account.city,
            "state": account.state,
            "postal_code": account.postal_code,
            "country": account.country,
        }
        for field, value in inline.items():
            column = col("lead", field)
            if column:
                values[column] = value
        return values

    def _stage_name(self, deal: DealData) -> str:
        return {
            DealStage.WON: STAGE_WON,
            DealStage.LOST: STAGE_LOST,
            DealStage.PENDING: self._stage_pending,
        }.get(deal.stage, self._stage_accepted)

    @staticmethod
    def _neutral_stage(deal: DealData) -> DealStage:
        return deal.stage if deal.stage != DealStage.OPEN else DealStage.ACCEPTED

    def _stage_of_name(self, stage_name: Any) -> DealStage:
        name = str(stage_name or "")
        if name == STAGE_WON:
            return DealStage.WON
        if name == STAGE_LOST:
            return DealStage.LOST
        return DealStage.PENDING if name == self._stage_pending else DealStage.ACCEPTED

    # ------------------------------------------------------------------ leads
    def _upsert_with_state(
        self, obj: str, key: str, value: str, values: dict[str, Any], state: str | None
    ) -> tuple[str, bool]:
        """Upsert; in an org with state picklists a state it does not list is left out, not the record."""
        try:
            return self._sf.upsert(obj, key, value, values)
        except ApiError as exc:
            if not state or state not in values or not _state_refused(exc, values.get(state)):
                raise
            log.info("%s written without its state: the org does not list it", obj)
            return self._sf.upsert(obj, key, value, {k: v for k, v in values.items() if k != state})

    # ------------------------------------------------------------------ reading deals
    def _changed(self, kind: DealKind, since: str | None) -> Iterator[CrmDeal]:
        where = (
            f"{self._fields.column('opportunity', 'sync')} = true"
            if kind == "opportunity"
            else f"{self._fields.column('lead', 'referral_id')} != null"
        )
        if since:
            where += f" AND SystemModstamp >= {_soql_datetime(since)}"
        for row in self._sf.query(self._soql(kind, where) + " ORDER BY SystemModstamp ASC, Id ASC"):
            yield self._deal(kind, row)

    def _soql(self, kind: DealKind, where: str) -> str:
        col = self._col
        fields = (
            ["Id", "SystemModstamp", "IsClosed", "IsWon", "StageName"]
            if kind == "opportunity"
            else ["Id", "SystemModstamp", "IsConverted", self._fields.column("lead", "status")]
        )
        names = (
            "name",
            "deal_value",
            "currency",
            "close_date",
            "description",
            "referral_id",
            "help_needed",
            "visible",
            "audit",
        )
        for field in names:
            column = col(kind, field)
            if column and (field != "currency" or self._has(kind, "currency")):
                fields.append(column)
        if kind == "lead":
            fields += [c for f in LEAD_CUSTOMER_FIELDS if (c := col("lead", f))]
        else:
            account = [
                c
                for f in ("name", "address_line1", "city", "state", "postal_code", "country")
                if (c := col("account", f))
            ]
            fields += [f"Account.{c}" for c in account]
            fields += ["Owner.FirstName", "Owner.LastName", "Owner.Email"]
            solution = self._fields.tables["solution"]
            children = [solution["id"], solution["name"], solution["type"]]
            fields.append(f"({soql(children, solution['relationship'])})")
            contact = ["Contact.FirstName", "Contact.LastName", "Contact.Email", "Contact.Phone"]
            fields.append(f"({soql(contact, 'OpportunityContactRoles', 'IsPrimary = true')})")
        return soql(fields, self._obj(kind), where)

    def _deal(self, kind: DealKind, row: dict[str, Any]) -> CrmDeal:
        col = self._col
        help_value = row.get(col(kind, "help_needed") or "")
        return CrmDeal(
            entity=kind,
            crm_id=str(row["Id"]),
            modified_on=str(row.get("SystemModstamp") or ""),
            referral_id=row.get(col(kind, "referral_id") or "") or None,
            title=strip_mark(str(row.get(col(kind, "name") or "") or "")) if kind == "opportunity" else "",
            deal_value=decimal_or_none(row.get(col(kind, "deal_value") or "")),
            currency=row.get(col(kind, "currency") or "") or None,
            close_date=date_or_none(row.get(col(kind, "close_date") or "")),
            description=row.get(col(kind, "description") or ""),
            stage=self._row_stage(kind, row),
            help_needed=str(help_value) if help_value else None,
            visible=bool(row.get(col(kind, "visible") or "")),
            account=self._row_account(kind, row),
            contact=self._row_contact(kind, row),
            owner=_owner(row.get("Owner")),
            solutions=self._row_solutions(row),
            audit=row.get(col(kind, "audit") or ""),
        )

    def _row_stage(self, kind: DealKind, row: dict[str, Any]) -> DealStage:
        if kind == "lead":
            if row.get("IsConverted"):
                return DealStage.ACCEPTED
            status = str(row.get(self._fields.column("lead", "status")) or "")
            return DealStage.LOST if status.startswith("Closed") else DealStage.PENDING
        if row.get("IsClosed"):
            return DealStage.WON if row.get("IsWon") else DealStage.LOST
        return self._stage_of_name(row.get("StageName"))

    def _row_account(self, kind: DealKind, row: dict[str, Any]) -> AccountData | None:
        col = self._col
        source, table = (row, "lead") if kind == "lead" else (row.get("Account") or {}, "account")
        name = source.get(col(table, "company" if kind == "lead" else "name") or "")
        if not name:
            return None
        return AccountData(
            name=str(name),
            address_line1=source.get(col(table, "address_line1") or ""),
            city=source.get(col(table, "city") or ""),
            state=source.get(col(table, "state") or ""),
            postal_code=source.get(col(table, "postal_code") or ""),
            country=source.get(col(table, "country") or ""),
        )

    def _row_contact(self, kind: DealKind, row: dict[str, Any]) -> ContactData | None:
        col = self._col
        if kind == "lead":
            return ContactData(
                row.get(col("lead", "first_name") or ""),
                row.get(col("lead", "last_name") or ""),
                row.get(col("lead", "email") or ""),
                row.get(col("lead", "phone") or ""),
            )
        roles = (row.get("OpportunityContactRoles") or {}).get("records") or []
        contact = (roles[0].get("Contact") or {}) if roles else {}
        if not contact:
            return None
        return ContactData(
            contact.get("FirstName"), contact.get("LastName"), contact.get("Email"), contact.get("Phone")
        )

    def _row_solutions(self, row: dict[str, Any]) -> tuple[SolutionData, ...]:
        col = self._fields.tables["solution"]
        items = (row.get(col["relationship"]) or {}).get("records") or []
        found = [SolutionData(id=i.get(col["id"]), name=i.get(col["name"]), type=i.get(col["type"])) for i in items]
        return tuple(sorted((s for s in found if s.id), key=lambda s: s.id))


# Salesforce's answers when a field or object the request names does not exist (or is hidden by FLS).
_SCHEMA_CODES = ("INVALID_FIELD", "INVALID_TYPE", "INVALID_FIELD_FOR_INSERT_UPDATE")


@contextlib.contextmanager
def _schema_hint() -> Iterator[None]:
    """Say "create the schema" instead of passing on Salesforce's words for a field that is not there."""
    try:
        yield
    except ApiError as exc:
        external_missing = exc.status == 404 and "external ID field does not exist" in exc.message
        if exc.code in _SCHEMA_CODES or external_missing:
            raise SchemaNotReady(f"Salesforce refused a name the sync needs ({exc.message})") from exc
        raise


@dataclass
class _Found:
    """What the look-up call found: the deal row (None: not in Salesforce yet) and the customer's candidates."""

    deal: dict[str, Any] | None
    customer_read: bool
    accounts: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    lead: dict[str, Any] | None


class _Writes:
    """The subrequests of one atomic write call; a later one names an earlier one's new id as ``@{ref.id}``."""

    def __init__(self) -> None:
        self.requests: list[SubRequest] = []

    def add(self, method: str, path: str, ref: str, body: dict[str, Any] | None = None) -> str:
        self.requests.append(SubRequest(method, path, ref, body))
        return f"@{{{ref}.id}}"

    def has(self, field: str) -> bool:
        return any(field in (r.body or {}) for r in self.requests if r.path.startswith("sobjects/Account/"))

    def without(self, field: str) -> list[SubRequest]:
        return [
            SubRequest(r.method, r.path, r.ref, {k: v for k, v in r.body.items() if k != field})
            if r.body and r.path.startswith("sobjects/Account/")
            else r
            for r in self.requests
        ]


def _children(row: dict[str, Any], relationship: str) -> list[dict[str, Any]]:
    return list((row.get(relationship) or {}).get("records") or [])


def _is_id(value: str, kind: DealKind) -> bool:
    return bool(_ID.fullmatch(value)) and value.startswith(_PREFIX[kind])


def _pick(
    rows: list[dict[str, Any]], key_col: str, key: str, same: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The row holding ``key``, else the first the matching rule accepts (one holding no key first: a row
    keyed for another customer stays that customer's)."""
    keyed = next((r for r in rows if str(r.get(key_col) or "").lower() == key), None)
    if keyed is not None:
        return keyed
    matches = [r for r in rows if same(r)]
    return next((r for r in matches if not r.get(key_col)), matches[0] if matches else None)


def _deal_of(plan: CrmPlan) -> DealData:
    if plan.deal is None:
        raise ValueError(f"plan for referral {plan.referral_id} has no deal")
    return plan.deal


def _street(account: AccountData, limit: int | None = None) -> str | None:
    """Salesforce keeps one street field: both lines, cut to its size."""
    lines = [line for line in (account.address_line1, account.address_line2) if line]
    street = "\n".join(lines) or None
    return street[:limit] if street and limit else street


def _state_refused(exc: ApiError, state: Any) -> bool:
    # State and country picklists: "There's a problem with this state ..." (FIELD_INTEGRITY_EXCEPTION).
    return exc.code == "FIELD_INTEGRITY_EXCEPTION" and "state" in exc.message.lower() and bool(state)


def _owner(owner: Any) -> ContactData | None:
    if not isinstance(owner, dict):
        return None
    return ContactData(owner.get("FirstName"), owner.get("LastName"), owner.get("Email"))


def _soql_datetime(value: str) -> str:
    """SOQL datetime literals are unquoted, with a zone: 2026-11-30T12:00:00Z (SOQL Reference, Date Formats)."""
    text = value.replace("+0000", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not a SystemModstamp watermark: {value!r}") from exc
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

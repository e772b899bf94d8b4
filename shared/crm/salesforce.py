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
from typing import TYPE_CHECKING, Any

from shared.crm.fields import FieldMap
from shared.crm.matching import account_id as account_key
from shared.crm.matching import contact_id as contact_key
from shared.crm.matching import customer_key, same_customer, same_email
from shared.crm.port import Capabilities, CrmRejected, InboundResult, KnownRecord, SchemaNotReady
from shared.crm.salesforce_client import SalesforceClient, soql, soql_like_prefix, soql_string
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
            return self._apply_opportunity(plan, known, line)

    def _apply_opportunity(self, plan: CrmPlan, known: KnownRecord | None, line: str) -> InboundResult:
        deal = _deal_of(plan)
        self._check_currency(deal)
        obj, audit, stage_col = self._obj("opportunity"), self._col("opportunity", "audit"), "StageName"
        fields = ["Id", stage_col, "AccountId", *(f for f in (audit,) if f)]
        current = self._current("opportunity", plan, known, fields)
        values = self._deal_values("opportunity", deal)
        if current is None:
            return self._create_opportunity(plan, known, values, line)
        crm_id = str(current["Id"])
        last = known.memo if known and known.crm_id == crm_id else {}
        body = {k: v for k, v in values.items() if last.get(k, _MISSING) != v}
        name = self._col("opportunity", "name")
        if known and known.failed_before and self._checkmark and name:
            body[name] = values[name]
        parts = known.part_hashes if known else {}
        new_parts = plan.part_hashes()
        contacts: list[str] = []
        if parts.get("account") != new_parts["account"] or parts.get("contacts") != new_parts["contacts"]:
            # An opportunity that has an account keeps it (the seller's, or the connector's); contacts go under it.
            account_id = current.get("AccountId") or (
                self._ensure_account(plan.account, plan.referral_id) if plan.account else None
            )
            if account_id and not current.get("AccountId"):
                body["AccountId"] = account_id
            contacts = self._ensure_contacts(plan.contacts, account_id)
        if self._stage_of_name(current.get(stage_col)) != self._neutral_stage(deal):
            body[stage_col] = self._stage_name(deal)
        if body and audit:
            body[audit] = prepend_audit(current.get(audit), line, self._audit_max)
        if body:
            self._sf.update(obj, crm_id, body)
        if contacts:
            self._ensure_primary_role(crm_id, contacts[0])
        if parts.get("solutions") != new_parts["solutions"]:
            self._sync_solutions(crm_id, plan.solutions)
        return InboundResult("opportunity", crm_id, False, values)

    def _create_opportunity(
        self, plan: CrmPlan, known: KnownRecord | None, values: dict[str, Any], line: str
    ) -> InboundResult:
        deal = _deal_of(plan)
        account_id = self._ensure_account(plan.account or AccountData(name=deal.title), plan.referral_id)
        contacts = self._ensure_contacts(plan.contacts, account_id)
        referral_col = self._fields.column("opportunity", "referral_id")
        body = {k: v for k, v in values.items() if k != referral_col}
        body.update({"AccountId": account_id, "StageName": self._stage_name(deal)})
        close = self._fields.column("opportunity", "close_date")
        if not body.get(close):
            body[close] = (self._clock().date() + dt.timedelta(days=DEFAULT_CLOSE_DAYS)).isoformat()
        audit = self._col("opportunity", "audit")
        if audit:
            body[audit] = prepend_audit(None, line, self._audit_max)
        crm_id, created = self._sf.upsert(self._obj("opportunity"), referral_col, deal.referral_id, body)
        if contacts:
            self._ensure_primary_role(crm_id, contacts[0])
        self._sync_solutions(crm_id, plan.solutions)
        lead_id = known.crm_id if known and known.kind == "lead" else ""
        if lead_id:
            self._link_lead(lead_id, crm_id, line)
        return InboundResult("opportunity", crm_id, created, values, lead_id=lead_id)

    def _apply_lead(self, plan: CrmPlan, known: KnownRecord | None, line: str) -> InboundResult:
        obj, audit = self._obj("lead"), self._col("lead", "audit")
        status_col = self._fields.column("lead", "status")
        current = self._current("lead", plan, known, ["Id", status_col, "IsConverted", *(f for f in (audit,) if f)])
        values = self._lead_values(plan)
        deal = _deal_of(plan)
        referral_col = self._fields.column("lead", "referral_id")
        if current is None:
            body = {k: v for k, v in values.items() if k != referral_col}
            body[status_col] = self._lead_status if deal.stage != DealStage.LOST else "Closed - Not Converted"
            if audit:
                body[audit] = prepend_audit(None, line, self._audit_max)
            crm_id, created = self._upsert_with_state(
                obj, referral_col, deal.referral_id, body, self._col("lead", "state")
            )
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

    def _link_lead(self, lead_id: str, opportunity_id: str, line: str) -> None:
        """REST cannot convert a Lead: say on it which opportunity carries the accepted referral on."""
        audit = self._col("lead", "audit")
        if not audit:
            return
        current = self._sf.get(self._obj("lead"), lead_id, ["Id", audit])
        if current is None:
            return
        note = f"{line} (accepted: opportunity {opportunity_id} carries the referral on)"
        self._sf.update(self._obj("lead"), lead_id, {audit: prepend_audit(current.get(audit), note, self._audit_max)})

    def _current(
        self, kind: DealKind, plan: CrmPlan, known: KnownRecord | None, fields: list[str]
    ) -> dict[str, Any] | None:
        obj = self._obj(kind)
        if known and known.kind == kind and known.crm_id:
            found = self._sf.get(obj, known.crm_id, fields)
            if found is not None:
                return found
        referral_col = self._fields.column(kind, "referral_id")
        where = f"{referral_col} = {soql_string(plan.referral_id)}"
        rows = list(self._sf.query(soql(fields, obj, where, "LIMIT 1")))
        if rows:
            return rows[0]
        external = plan.external_id or ""
        if kind == "opportunity" and _ID.fullmatch(external) and external.startswith(_PREFIX["opportunity"]):
            # Shared from this CRM: link the referral to the opportunity it was created from.
            return self._sf.get(obj, external, fields)
        return None

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

    # ------------------------------------------------------------------ accounts, contacts, roles, solutions
    def _ensure_account(self, account: AccountData, referral_id: str) -> str:
        """The customer's account: the one holding its key, else one a seller made (same normalised name +
        postal code, shared.crm.matching), given the key; else created by upsert on the key.

        The key (``Cosell_Account_Key__c``, External ID, unique) is what ends the race between two
        workers syncing two referrals of one new customer: both upsert the same key, and Salesforce
        refuses a second row with it, so the second create becomes an update of the first row.
        """
        obj, name = self._obj("account"), self._fields.column("account", "name")
        postal = self._col("account", "postal_code")
        key_col = self._fields.column("account", "key")
        key = account_key(account, referral_id)
        wanted = customer_key(account)
        terms = [f"{key_col} = {soql_string(key)}"]
        if wanted[0]:
            terms.append(f"{name} = {soql_string(account.name)}")
            if postal and account.postal_code:
                terms.append(f"{postal} = {soql_string(account.postal_code)}")
            first = account.name.split()[0] if account.name.split() else ""
            if len(first) >= 3:
                terms.append(f"{name} LIKE {soql_like_prefix(first)}")
        fields = ["Id", key_col, name, *([postal] if postal else [])]
        rows = list(self._sf.query(soql(fields, obj, " OR ".join(terms))))
        found = _pick(
            rows, key_col, key, lambda r: same_customer(r.get(name), r.get(postal) if postal else None, wanted)
        )
        if found is not None:
            if not found.get(key_col):
                self._sf.update(obj, str(found["Id"]), {key_col: key})  # a seller's account: keyed from now on
            return str(found["Id"])
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
        return self._upsert_with_state(obj, key_col, key, values, self._col("account", "state"))[0]

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

    def _ensure_contacts(self, contacts: tuple[ContactData, ...], account_id: str | None) -> list[str]:
        """Customer contacts, ids in team order: the one holding the email's key, else one with the email
        (given the key), else created under the account by upsert on the key (one Contact per email,
        even when two workers create it at once: see :meth:`_ensure_account`)."""
        obj, email_col = self._obj("contact"), self._fields.column("contact", "email")
        key_col = self._fields.column("contact", "key")
        wanted = [c for c in contacts if c.email]  # without an email there is nothing safe to match on
        if not wanted:
            return []
        emails = ", ".join(soql_string(c.email or "") for c in wanted)
        keys = ", ".join(soql_string(contact_key(c.email or "")) for c in wanted)
        where = f"{email_col} IN ({emails}) OR {key_col} IN ({keys})"
        rows = list(self._sf.query(soql(["Id", key_col, email_col], obj, where)))
        ids: list[str] = []
        for contact in wanted:
            email = contact.email or ""
            key = contact_key(email)
            found = _pick(rows, key_col, key, lambda r, e=email: same_email(r.get(email_col), e))  # type: ignore[misc]
            if found is not None:
                if not found.get(key_col):
                    self._sf.update(obj, str(found["Id"]), {key_col: key})
                    found[key_col] = key
                ids.append(str(found["Id"]))
                continue
            values: dict[str, Any] = {
                self._fields.column("contact", "last_name"): contact.last_name or email,
                email_col: email,
            }
            for field, value in (("first_name", contact.first_name), ("phone", contact.phone)):
                column = self._col("contact", field)
                if column and value:
                    values[column] = value
            if account_id:
                values["AccountId"] = account_id
            crm_id, _ = self._sf.upsert(obj, key_col, key, values)
            rows.append({"Id": crm_id, key_col: key, email_col: email})
            ids.append(crm_id)
        return ids

    def _ensure_primary_role(self, opportunity_id: str, contact_id: str) -> None:
        """The first team member is the opportunity's primary contact role (one primary per opportunity)."""
        rows = list(
            self._sf.query(
                soql(
                    ["Id", "ContactId", "IsPrimary"],
                    "OpportunityContactRole",
                    f"OpportunityId = {soql_string(opportunity_id)}",
                )
            )
        )
        mine = next((r for r in rows if r.get("ContactId") == contact_id), None)
        if mine is None:
            self._sf.create(
                "OpportunityContactRole",
                {"OpportunityId": opportunity_id, "ContactId": contact_id, "IsPrimary": True, "Role": "Decision Maker"},
            )
        elif not mine.get("IsPrimary"):
            self._sf.update("OpportunityContactRole", str(mine["Id"]), {"IsPrimary": True})

    def _sync_solutions(self, opportunity_id: str, solutions: tuple[SolutionData, ...]) -> None:
        """One ``Microsoft_Solution__c`` row per solution; rows for solutions no longer listed are removed."""
        col = self._fields.tables["solution"]
        obj, key, parent = col["object"], col["id"], col["parent"]
        present = {
            str(row.get(key)): str(row["Id"])
            for row in self._sf.query(soql(["Id", key], obj, f"{parent} = {soql_string(opportunity_id)}"))
        }
        wanted = {s.id: s for s in solutions}
        for solution_id, solution in wanted.items():
            if solution_id in present:
                continue
            values = {col["name"]: solution.name or solution.id, key: solution.id, parent: opportunity_id}
            if solution.type:
                values[col["type"]] = solution.type
            self._sf.create(obj, values)
        for solution_id, row_id in present.items():
            if solution_id not in wanted:
                self._sf.delete(obj, row_id)

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
            fields += [
                c
                for f in (
                    "company",
                    "first_name",
                    "last_name",
                    "email",
                    "phone",
                    "address_line1",
                    "city",
                    "state",
                    "postal_code",
                    "country",
                )
                if (c := col("lead", f))
            ]
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

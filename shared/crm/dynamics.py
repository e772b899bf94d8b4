"""Dynamics 365 (Dataverse) adapter: turns a neutral plan into the fewest Web API writes.

Every create is an idempotent upsert: opportunities and leads by their ``cosell_referralid``
alternate key, accounts, contacts and solution rows by deterministic (UUIDv5) ids. A retry after
a lost response therefore updates the record it already created instead of adding a second one.
Updates PATCH only the columns whose value differs from what was last synced. Opportunities are
closed through ``WinOpportunity``/``LoseOpportunity``, never by patching ``statecode``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.crm.dataverse_batch import BatchRequest
from shared.crm.dataverse_client import DataverseClient, bind, key_by_alternate, key_by_id
from shared.crm.dataverse_metadata import DataverseNavigation
from shared.crm.dynamics_columns import MAX_LENGTH
from shared.crm.dynamics_customers import DynamicsCustomers
from shared.crm.dynamics_deals import DynamicsDeals
from shared.crm.dynamics_fields import DYNAMICS_HELP_NEEDED, dynamics_connector_map
from shared.crm.dynamics_schema import DynamicsSchema
from shared.crm.dynamics_status import LEAD_QUALIFIED, lead_codes, opportunity_codes
from shared.crm.fields import FieldMap
from shared.crm.matching import solution_row_id
from shared.crm.port import Capabilities, CrmRejected, InboundResult, KnownRecord, SchemaNotReady
from shared.http import ApiError
from shared.mapping.model import AccountData, ContactData, CrmDeal, CrmPlan, DealData, DealKind, DealStage, SolutionData
from shared.mapping.text import (
    CHECK,
    CROSS,
    audit_line,
    prepend_audit,
    with_mark,
)
from shared.odata import odata_string

if TYPE_CHECKING:
    from shared.crm.dynamics_adopt import DynamicsAdoption

log = logging.getLogger("cosell.crm.dynamics")


OPPORTUNITIES = "opportunities"
LEADS = "leads"
ACCOUNTS = "accounts"
CONTACTS = "contacts"
CURRENCIES = "transactioncurrencies"
_ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "state", "postal_code", "country")


class DynamicsCrm:
    kind = "dynamics"
    # No "not accepted yet" state on an opportunity; closing is WinOpportunity / LoseOpportunity.
    capabilities = Capabilities(pending_stage=False, closes_by_action=True)

    def __init__(
        self,
        client: DataverseClient,
        fields: FieldMap,
        *,
        display_checkmark: bool = True,
        audit_max_chars: int = 4000,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._dv = client
        self._fields = fields
        self._checkmark = display_checkmark
        self._audit_max = audit_max_chars
        self._clock = clock
        self._currency_ids: dict[str, str] = {}
        self._currency_lock = threading.Lock()
        self._nav = DataverseNavigation(client)
        self._deals = DynamicsDeals(client, fields, self._nav)
        self._customers = DynamicsCustomers(client, fields)

    @property
    def schema(self) -> DynamicsSchema:
        return DynamicsSchema(self._dv, self._fields, audit_max_chars=self._audit_max)

    def adoption(self, connector_overrides: str | None = None) -> DynamicsAdoption:
        """Linking the records Microsoft's co-sell connector made (``python -m shared.cli adopt``)."""
        from shared.crm.dynamics_adopt import DynamicsAdoption

        connector = dynamics_connector_map(connector_overrides)
        return DynamicsAdoption(self._dv, self._fields, connector, audit_max_chars=self._audit_max, clock=self._clock)

    # ------------------------------------------------------------------ outbound (CRM -> Partner Center)
    def changed_deals(self, since: str | None) -> Iterator[CrmDeal]:
        with _schema_hint():
            yield from self._deals.changed_since(since)

    def get_deal(self, crm_id: str, kind: DealKind | None = None) -> CrmDeal | None:
        if not _is_guid(crm_id):
            return None  # every Dataverse record id is a GUID
        for entity in (kind,) if kind else ("opportunity", "lead"):
            deal = self._deals.get(entity, crm_id)
            if deal is not None:
                return deal
        return None

    def write_back(
        self, deal: CrmDeal, *, message: str, ok: bool, referral_id: str | None = None, link: str | None = None
    ) -> bool:
        """Referral id and link (after a create), ✔ or ✖, and an audit line: one PATCH.

        A closed opportunity is read-only in Dynamics 365, so it gets nothing; the audit table has it.
        """
        if deal.entity == "opportunity" and deal.stage in (DealStage.WON, DealStage.LOST):
            return False
        entity_set, col = (LEADS, self._col_lead) if deal.entity == "lead" else (OPPORTUNITIES, self._col_opportunity)
        line = audit_line(self._clock(), message)
        body: dict[str, Any] = {col("audit"): prepend_audit(deal.audit, line, self._audit_max)}
        if referral_id:
            body[col("referral_id")] = referral_id
            body[col("referral_link")] = link
        if self._checkmark:
            body[col("name")] = with_mark(deal.title, CHECK if ok else CROSS, True, self._name_limit(deal.entity))
        self._dv.update(key_by_id(entity_set, deal.crm_id), body)
        return True

    def _name_limit(self, entity: str) -> int | None:
        return MAX_LENGTH.get(entity, {}).get(self._fields.column(entity, "name"))

    def memo_for(self, plan: CrmPlan) -> dict[str, Any]:
        """The memo is the columns an inbound sync of ``plan`` writes (the next one writes only what differs)."""
        return self._lead_fields(plan) if plan.kind == "lead" else self._opportunity_fields(_deal_of(plan))

    def field_limits(self, kind: DealKind) -> dict[str, int]:
        """How long each neutral field may be in the columns an inbound ``kind`` plan writes to."""
        fields = self._fields
        record_table = "lead" if kind == "lead" else "opportunity"
        # A lead holds its company and first contact inline; an opportunity has account and contact rows.
        parts = {
            "deal": (
                record_table,
                {
                    "name": "name",
                    "description": "description",
                    "microsoft_crm_id": "microsoft_crm_id",
                    "referral_program": "referral_program",
                    "referral_link": "referral_link",
                },
            ),
            "account": (record_table, {"name": "company", **{k: k for k in _ADDRESS_FIELDS}})
            if kind == "lead"
            else ("account", {"name": "name", **{k: k for k in _ADDRESS_FIELDS}}),
            "contact": (
                record_table,
                {"first_name": "first_name", "last_name": "last_name", "email": "email", "phone": "phone"},
            )
            if kind == "lead"
            else ("contact", {k: k for k in ("first_name", "last_name", "email", "phone")}),
        }
        limits: dict[str, int] = {}
        for part, (table, names) in parts.items():
            for neutral, field in names.items():
                column = fields.get(table, field)
                size = MAX_LENGTH.get(table, {}).get(column or "")
                if size is not None:
                    limits[f"{part}.{neutral}"] = size
        solution = fields.tables["solution"]
        for neutral in ("id", "name", "type"):
            size = MAX_LENGTH.get(solution["table"], {}).get(solution[neutral])
            if size is not None:
                limits[f"solution.{neutral}"] = size
        return limits

    # ------------------------------------------------------------------ inbound
    def apply_inbound(self, plan: CrmPlan, previous: KnownRecord | None, audit_message: str) -> InboundResult:
        if plan.deal is None or plan.kind == "skip":
            raise ValueError("apply_inbound needs a plan with a deal")
        line = audit_line(self._clock(), audit_message)
        with _schema_hint():
            if plan.kind == "lead":
                return self._apply_lead(plan, previous, line)
            return self._apply_opportunity(plan, previous, line)

    def _apply_opportunity(self, plan: CrmPlan, previous: KnownRecord | None, line: str) -> InboundResult:
        deal = _deal_of(plan)
        col = self._col_opportunity
        select = ["opportunityid", "statecode", "statuscode", "_parentaccountid_value", col("name"), col("audit")]
        known_id = previous.crm_id if previous and previous.kind == "opportunity" and previous.crm_id else None
        lead_id = previous.crm_id if previous and previous.kind == "lead" and previous.crm_id else ""
        customer = plan.account or AccountData(name=deal.title)
        reads: dict[str, BatchRequest | None] = {
            "current": self._dv.get_request(self._current_key("opportunity", plan, known_id), select=select),
            "currency": self._currency_read(deal),
        }
        if known_id is None:
            # New to this sync: everything a create needs is looked up in the same call, the
            # customer's account and contacts included (a referral found already in the CRM
            # uses them too when its customer changed).
            if plan.external_id and _is_guid(plan.external_id):
                # A referral shared from this CRM names its opportunity in externalReferenceId: link to
                # it, even if Partner Center's webhook for our own create overtakes our write-back.
                reads["external"] = self._dv.get_request(key_by_id(OPPORTUNITIES, plan.external_id), select=select)
            reads["accounts"] = self._customers.account_read(customer)
            reads["contacts"] = self._customers.contacts_read(plan.contacts)
            if lead_id:
                reads["lead"] = self._dv.get_request(key_by_id(LEADS, lead_id), select=["leadid", col("audit")])
        found = self._read(reads)
        self._remember_currency(deal, found)
        current = found.get("current") or found.get("external")
        fields = self._opportunity_fields(deal)
        if current is None:
            return self._create_opportunity(plan, customer, fields, line, found, lead_id)

        crm_id = str(current["opportunityid"])
        notes: list[str] = []
        known = previous.memo if previous and previous.crm_id == crm_id else {}
        changed = {k: v for k, v in fields.items() if known.get(k, _MISSING) != v}
        if previous and previous.failed_before and self._checkmark:
            changed[col("name")] = fields[col("name")]  # a success after a failure puts ✔ back
        hashes = previous.part_hashes if previous else {}
        new_hashes = plan.part_hashes()
        writes: list[BatchRequest] = []
        if hashes.get("contacts") != new_hashes["contacts"] or hashes.get("account") != new_hashes["account"]:
            # An opportunity that has an account keeps it (the seller's, or the connector's); contacts go under it.
            who = self._customers.plan(
                plan.account,
                plan.contacts,
                plan.referral_id,
                account_rows=found.get("accounts"),
                contact_rows=found.get("contacts"),
                known_account=current.get("_parentaccountid_value"),
            )
            writes.extend(who.writes)
            if who.contact_ids:
                changed["parentcontactid@odata.bind"] = bind(CONTACTS, who.contact_ids[0])
        state, status = opportunity_codes(deal.stage, deal.close_reason)
        current_state = int(current.get("statecode") or 0)
        body = dict(changed)
        if body or current_state != state:
            body[col("audit")] = prepend_audit(current.get(col("audit")), line, self._audit_max)
        path = key_by_id(OPPORTUNITIES, crm_id)
        if current_state != 0:
            if state == 0:
                # Reopen: the one PATCH that may touch a closed opportunity.
                writes.append(_update(path, {**body, "statecode": 0, "statuscode": status}))
            elif changed:
                notes.append("opportunity is closed in Dynamics 365; field changes not applied")
        elif body:
            writes.append(_update(path, body))
        if writes:
            # Upserts by deterministic id and updates: sending the change set twice writes the same rows.
            self._dv.write_atomic(writes, idempotent=True)
        if current_state == 0 and state != 0:
            self._close_opportunity(crm_id, deal, status)
        if hashes.get("solutions") != new_hashes["solutions"]:
            self._sync_solutions(crm_id, plan.solutions)
        return InboundResult("opportunity", crm_id, False, fields, notes=notes)

    def _current_key(self, entity: str, plan: CrmPlan, known_id: str | None) -> str:
        """Where the record this referral already has is: the id we stored, else its referral id key."""
        entity_set = OPPORTUNITIES if entity == "opportunity" else LEADS
        if known_id:
            return key_by_id(entity_set, known_id)
        return key_by_alternate(entity_set, self._fields.column(entity, "referral_id"), plan.referral_id)

    def _read(self, reads: dict[str, BatchRequest | None]) -> dict[str, Any]:
        """The look-ups a sync needs, in one call (one ``$batch``, or the request alone)."""
        asked = {name: request for name, request in reads.items() if request is not None}
        return dict(zip(asked, self._dv.read_many(list(asked.values())), strict=True))

    def _create_opportunity(
        self,
        plan: CrmPlan,
        customer: AccountData,
        fields: dict[str, Any],
        line: str,
        found: dict[str, Any],
        lead_id: str,
    ) -> InboundResult:
        """Account, contacts, opportunity, solution rows and the converted lead: one change set.

        Every write in it is idempotent: the account, contacts and solution rows are upserts by
        deterministic id, the opportunity an upsert by its ``cosell_referralid`` alternate key, the
        lead an update whose values do not depend on what it holds. A change set whose answer was
        lost can therefore be sent again (and is, by the HTTP policy) without creating anything twice.
        Solution rows reach the new opportunity through its Content-ID (``$1``), so their ids come from
        the referral id rather than the opportunity's. Closing an opportunity is an action, not
        idempotent: it follows in its own call, only for a referral that is already won or lost.
        """
        deal = _deal_of(plan)
        col = self._col_opportunity
        who = self._customers.plan(
            customer,
            plan.contacts,
            plan.referral_id,
            account_rows=found.get("accounts"),
            contact_rows=found.get("contacts"),
        )
        assert who.account_id is not None  # a customer always gets an account
        body: dict[str, Any] = {
            **{k: v for k, v in fields.items() if k != col("referral_id")},
            col("audit"): prepend_audit(None, line, self._audit_max),
            "isrevenuesystemcalculated": False,
            "customerid_account@odata.bind": bind(ACCOUNTS, who.account_id),
            "parentaccountid@odata.bind": bind(ACCOUNTS, who.account_id),
        }
        if who.contact_ids:
            body["parentcontactid@odata.bind"] = bind(CONTACTS, who.contact_ids[0])
        if lead_id:
            body["originatingleadid@odata.bind"] = bind(LEADS, lead_id)
        opportunity = _upsert_by_referral(OPPORTUNITIES, col("referral_id"), deal.referral_id, "opportunityid", body)
        writes = [*who.writes, opportunity]
        writes.extend(self._solution_writes("$1", f"referral|{plan.referral_id}", plan.solutions))
        lead = found.get("lead")
        if lead_id and lead is not None:
            state, status = LEAD_QUALIFIED
            audit = prepend_audit(
                lead.get(self._col_lead("audit")), f"{line} (converted to an opportunity)", self._audit_max
            )
            writes.append(
                _update(
                    key_by_id(LEADS, lead_id),
                    {"statecode": state, "statuscode": status, self._col_lead("audit"): audit},
                )
            )
        answers = self._dv.write_atomic(writes, idempotent=True)
        answer = answers[writes.index(opportunity)]
        crm_id = str(answer.body["opportunityid"])
        state, status = opportunity_codes(deal.stage, deal.close_reason)
        if state != 0:
            self._close_opportunity(crm_id, deal, status)
        return InboundResult("opportunity", crm_id, answer.status == 201, fields, lead_id=lead_id)

    def _apply_lead(self, plan: CrmPlan, previous: KnownRecord | None, line: str) -> InboundResult:
        deal = _deal_of(plan)
        col = self._col_lead
        select = ["leadid", "statecode", "statuscode", col("name"), col("audit")]
        known_id = previous.crm_id if previous and previous.kind == "lead" and previous.crm_id else None
        found = self._read(
            {
                "current": self._dv.get_request(self._current_key("lead", plan, known_id), select=select),
                "currency": self._currency_read(deal),
            }
        )
        self._remember_currency(deal, found)
        current = found.get("current")
        fields = self._lead_fields(plan)
        state, status = lead_codes(deal.stage, deal.close_reason)
        if current is None:
            body = {
                **{k: v for k, v in fields.items() if k != col("referral_id")},
                col("audit"): prepend_audit(None, line, self._audit_max),
            }
            create = _upsert_by_referral(LEADS, col("referral_id"), deal.referral_id, "leadid", body)
            writes = [create]
            if state != 0:  # statecode is not valid on create: set right after it, in the same change set
                writes.append(_update("$1", {"statecode": state, "statuscode": status}))
            # An upsert by alternate key and an update of the row it wrote: idempotent as a whole.
            answer = self._dv.write_atomic(writes, idempotent=True)[0]
            return InboundResult("lead", str(answer.body["leadid"]), answer.status == 201, fields)
        crm_id = str(current["leadid"])
        known = previous.memo if previous and previous.crm_id == crm_id else {}
        body = {k: v for k, v in fields.items() if known.get(k, _MISSING) != v}
        if previous and previous.failed_before and self._checkmark:
            body[col("name")] = fields[col("name")]
        if int(current.get("statecode") or 0) != state or int(current.get("statuscode") or 0) != status:
            body.update({"statecode": state, "statuscode": status})
        if not body:
            return InboundResult("lead", crm_id, False, fields)
        body[col("audit")] = prepend_audit(current.get(col("audit")), line, self._audit_max)
        self._dv.update(key_by_id(LEADS, crm_id), body)
        return InboundResult("lead", crm_id, False, fields)

    def _close_opportunity(self, crm_id: str, deal: DealData, status: int) -> None:
        won = deal.stage == DealStage.WON
        close: dict[str, Any] = {
            "subject": f"{'Won' if won else 'Lost'} in Partner Center ({deal.close_reason or 'won'})",
            "opportunityid@odata.bind": bind(OPPORTUNITIES, crm_id),
            "actualend": (deal.close_date or self._clock().date()).isoformat(),
        }
        if won and deal.deal_value is not None:
            close["actualrevenue"] = float(deal.deal_value)
        try:
            self._dv.action(
                "WinOpportunity" if won else "LoseOpportunity", {"Status": status, "OpportunityClose": close}
            )
        except ApiError as exc:
            # A close re-sent after its answer was lost meets an opportunity that is already closed:
            # the state we wanted is the state it has, which is success, not a permanent failure.
            current = self._dv.get(key_by_id(OPPORTUNITIES, crm_id), select=["statecode"]) if exc.status < 500 else None
            target_state = opportunity_codes(deal.stage, deal.close_reason)[0]
            if current is None or int(current.get("statecode") or 0) != target_state:
                raise

    # ------------------------------------------------------------------ failure marking
    def mark_failed(self, entity: DealKind, crm_id: str, message: str) -> bool:
        entity_set, col = (LEADS, self._col_lead) if entity == "lead" else (OPPORTUNITIES, self._col_opportunity)
        current = self._dv.get(key_by_id(entity_set, crm_id), select=[col("name"), col("audit"), "statecode"])
        if current is None:
            return False
        line = audit_line(self._clock(), message)
        body: dict[str, Any] = {col("audit"): prepend_audit(current.get(col("audit")), line, self._audit_max)}
        if self._checkmark:
            body[col("name")] = with_mark(str(current.get(col("name")) or ""), CROSS, True, self._name_limit(entity))
        try:
            self._dv.update(key_by_id(entity_set, crm_id), body)
        except ApiError as exc:
            log.warning("Could not mark %s %s as failed: HTTP %s %s", entity, crm_id, exc.status, exc.code)
            return False
        return True

    # ------------------------------------------------------------------ field building
    def _col_opportunity(self, name: str) -> str:
        return self._fields.column("opportunity", name)

    def _col_lead(self, name: str) -> str:
        return self._fields.column("lead", name)

    def _deal_columns(self, record: str, deal: DealData) -> dict[str, Any]:
        def col(name: str) -> str:
            return self._fields.column(record, name)

        help_value = DYNAMICS_HELP_NEEDED.get(deal.help_needed or "")
        values: dict[str, Any] = {
            col("name"): deal.name,
            col("deal_value"): _money(deal.deal_value),
            col("close_date"): deal.close_date.isoformat() if deal.close_date else None,
            col("description"): deal.description,
            col("sync"): True,
            col("referral_id"): deal.referral_id,
            col("referral_link"): deal.referral_link,
            col("help_needed"): help_value,
            col("visible"): deal.visible,
            col("microsoft_crm_id"): deal.microsoft_crm_id,
            col("referral_program"): deal.referral_program,
        }
        currency_bind = None if "currency" in deal.unreadable else self._currency_bind(deal.currency)
        if currency_bind:
            values[f"{self._nav.single(record, col('currency'))}@odata.bind"] = currency_bind
        for field in deal.unreadable - {"currency", "title"}:
            values.pop(col(field), None)  # Partner Center's value could not be read: keep the CRM's
        return values

    def _opportunity_fields(self, deal: DealData) -> dict[str, Any]:
        return self._deal_columns("opportunity", deal)

    def _lead_fields(self, plan: CrmPlan) -> dict[str, Any]:
        col = self._col_lead
        values = self._deal_columns("lead", _deal_of(plan))
        account = plan.account or AccountData(name="")
        primary = plan.contacts[0] if plan.contacts else ContactData(None, None, None)
        values.update(
            {
                col("company"): account.name,
                col("first_name"): primary.first_name,
                col("last_name"): primary.last_name or account.name,
                col("email"): primary.email,
                col("phone"): primary.phone,
                **_address_columns(account, col),
            }
        )
        return values

    # ------------------------------------------------------------------ lookups
    def _currency_read(self, deal: DealData) -> BatchRequest | None:
        """The currency query, when the deal has a currency this instance has not looked up yet."""
        iso_code = None if "currency" in deal.unreadable else deal.currency
        if not iso_code:
            return None
        with self._currency_lock:
            if iso_code in self._currency_ids:
                return None
        return self._dv.get_request(
            CURRENCIES,
            select=["transactioncurrencyid", "isocurrencycode"],
            filter=f"isocurrencycode eq {odata_string(iso_code)}",
        )

    def _remember_currency(self, deal: DealData, found: dict[str, Any]) -> None:
        rows = found.get("currency")
        if rows is None or not deal.currency:
            return
        if not rows:
            raise CrmRejected(f'Currency "{deal.currency}" is not set up in Dynamics 365 (transactioncurrencies).')
        with self._currency_lock:
            self._currency_ids[deal.currency] = str(rows[0]["transactioncurrencyid"])

    def _currency_bind(self, iso_code: str | None) -> str | None:
        if not iso_code:
            return None
        with self._currency_lock:
            cached = self._currency_ids.get(iso_code)
        if cached is None:
            rows = self._dv.read_many(
                [
                    self._dv.get_request(
                        CURRENCIES,
                        select=["transactioncurrencyid"],
                        filter=f"isocurrencycode eq {odata_string(iso_code)}",
                    )
                ]
            )[0]
            if not rows:
                raise CrmRejected(f'Currency "{iso_code}" is not set up in Dynamics 365 (transactioncurrencies).')
            cached = str(rows[0]["transactioncurrencyid"])
            with self._currency_lock:
                self._currency_ids[iso_code] = cached
        return bind(CURRENCIES, cached)

    def _solution_writes(self, parent: str, id_seed: str, solutions: tuple[SolutionData, ...]) -> list[BatchRequest]:
        """Upserts of ``cosell_solution`` rows under ``parent`` (a bind path or a ``$n`` reference), with
        ids derived from ``id_seed`` and the solution id."""
        col = self._fields.tables["solution"]
        nav = self._nav.single(col["table"], col["parent"])
        writes: list[BatchRequest] = []
        for solution in {s.id: s for s in solutions}.values():
            body = _drop_none(
                {
                    col["id"]: solution.id,
                    col["name"]: solution.name or solution.id,
                    col["type"]: solution.type,
                    f"{nav}@odata.bind": parent,
                }
            )
            row_id = solution_row_id(id_seed, solution.id)
            writes.append(BatchRequest("PATCH", key_by_id(col["entity_set"], row_id), body=body))
        return writes

    def _sync_solutions(self, opportunity_id: str, solutions: tuple[SolutionData, ...]) -> None:
        """Rows for solutions newly listed are added (one change set of upserts by deterministic id),
        rows for solutions no longer listed are removed."""
        col = self._fields.tables["solution"]
        entity_set, key = col["entity_set"], col["key"]
        present: dict[str, str] = {}
        lookup = f"_{col['parent']}_value"
        for row in self._dv.query(entity_set, select=[key, col["id"]], filter=f"{lookup} eq {opportunity_id}"):
            present[str(row.get(col["id"]))] = str(row[key])
        added = tuple(s for s in solutions if s.id not in present)
        writes = self._solution_writes(bind(OPPORTUNITIES, opportunity_id), opportunity_id, added)
        if writes:
            self._dv.write_atomic(writes, idempotent=True)
        wanted = {s.id for s in solutions}
        for solution_id, row_id in present.items():
            if solution_id not in wanted:
                # Alone, not in the change set: a delete sent again answers 404, which is fine here
                # but would fail (and roll back) a change set.
                self._dv.delete(key_by_id(entity_set, row_id))


_MISSING = object()
# Dataverse's answers when a column, table or alternate key the request names does not exist.
_SCHEMA_ERRORS = (
    "Could not find a property named",
    "key in the request URI is not valid",
    "Resource not found for the segment",
)


@contextlib.contextmanager
def _schema_hint() -> Iterator[None]:
    """Say "create the schema" instead of passing on Dataverse's words for a column that is not there."""
    try:
        yield
    except ApiError as exc:
        if exc.status in (400, 404) and any(text in exc.message for text in _SCHEMA_ERRORS):
            raise SchemaNotReady(f"Dynamics 365 refused a name the sync needs ({exc.message})") from exc
        raise


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _deal_of(plan: CrmPlan) -> DealData:
    if plan.deal is None:
        raise ValueError(f"plan for referral {plan.referral_id} has no deal")
    return plan.deal


def _money(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def _address_columns(account: AccountData, col: Callable[[str], str]) -> dict[str, Any]:
    return {col(field): getattr(account, field) for field in _ADDRESS_FIELDS}


def _update(path: str, body: dict[str, Any]) -> BatchRequest:
    """A PATCH with ``If-Match: *``: update only, never an accidental create."""
    return BatchRequest("PATCH", path, body=body, headers={"If-Match": "*"})


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _upsert_by_referral(
    entity_set: str, key_column: str, referral_id: str, id_column: str, body: dict[str, Any]
) -> BatchRequest:
    """The deal's upsert by its referral-id alternate key, first in its change set (``$1``): a resend is safe."""
    return BatchRequest(
        "PATCH",
        key_by_alternate(entity_set, key_column, referral_id),
        params={"$select": id_column},
        body=body,
        headers={"Prefer": "return=representation"},
        content_id="1",
    )

"""Reading shared deals out of Dynamics 365 for the CRM → Partner Center direction.

One query per table and page, with the account, primary contact, owner and solutions expanded,
so a poll costs a handful of calls however many records changed. Opportunities are the ones
marked "Sync with Partner Center"; leads are the ones that carry a referral id.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from shared.crm.dataverse_client import DataverseClient, key_by_id
from shared.crm.dataverse_metadata import DataverseNavigation
from shared.crm.dynamics_fields import DYNAMICS_HELP_NEEDED
from shared.crm.dynamics_status import lead_stage, opportunity_stage
from shared.crm.fields import LEAD_CUSTOMER_FIELDS, FieldMap
from shared.crm.values import date_or_none, decimal_or_none
from shared.mapping.model import AccountData, ContactData, CrmDeal, SolutionData
from shared.mapping.text import strip_mark

# The owner: ``ownerid`` is typed ``principal`` (user or team), which has no name columns, so the
# user is read through ``owninguser`` (Microsoft Learn, opportunity entity reference; a team-owned
# record has none and is shared without a partner seller).
OWNER_NAV = "owninguser"
_OWNER_COLUMNS = "fullname,firstname,lastname,internalemailaddress"
_HELP_BY_VALUE = {value: code for code, value in DYNAMICS_HELP_NEEDED.items()}


class DynamicsDeals:
    def __init__(self, client: DataverseClient, fields: FieldMap, navigation: DataverseNavigation) -> None:
        self._dv = client
        self._fields = fields
        self._nav = navigation

    def changed_since(self, since: str | None) -> Iterator[CrmDeal]:
        """Shared opportunities and referral-carrying leads modified at or after ``since``, oldest first."""
        opportunities = self._query("opportunity", since)
        leads = self._query("lead", since)
        yield from _merge_by_modified(opportunities, leads)

    def get(self, entity: str, crm_id: str) -> CrmDeal | None:
        entity_set = "opportunities" if entity == "opportunity" else "leads"
        row = self._dv.get(key_by_id(entity_set, crm_id), select=self._select(entity), expand=self._expand(entity))
        return self._deal(entity, row) if row else None

    # ------------------------------------------------------------------ queries
    def _query(self, entity: str, since: str | None) -> Iterator[CrmDeal]:
        col = self._col(entity)
        entity_set, key = ("opportunities", "opportunityid") if entity == "opportunity" else ("leads", "leadid")
        conditions = [f"{col('sync')} eq true"] if entity == "opportunity" else [f"{col('referral_id')} ne null"]
        if since:
            conditions.append(f"modifiedon ge {since}")
        rows = self._dv.query(
            entity_set,
            select=self._select(entity),
            filter=" and ".join(conditions),
            orderby=f"modifiedon asc,{key} asc",
            expand=self._expand(entity),
        )
        for row in rows:
            yield self._deal(entity, row)

    def _col(self, entity: str) -> Any:
        def col(name: str) -> str:
            return self._fields.column(entity, name)

        return col

    def _select(self, entity: str) -> list[str]:
        col = self._col(entity)
        base = ["statecode", "statuscode", "modifiedon"]
        names = ["name", "deal_value", "close_date", "description", "referral_id", "help_needed", "visible", "audit"]
        key = "opportunityid" if entity == "opportunity" else "leadid"
        columns = [key, *base, *(col(n) for n in names)]
        if entity == "lead":
            columns += [col(n) for n in LEAD_CUSTOMER_FIELDS]
        return columns

    def _expand(self, entity: str) -> str:
        account = self._fields.tables["account"]
        contact = self._fields.tables["contact"]
        solution = self._fields.tables["solution"]
        parts = [
            f"{self._currency_nav(entity)}($select=isocurrencycode)",
            f"{OWNER_NAV}($select={_OWNER_COLUMNS})",
        ]
        if entity == "opportunity":
            account_columns = ",".join(
                account[k]
                for k in ("name", "address_line1", "address_line2", "city", "state", "postal_code", "country")
            )
            parts += [
                f"parentaccountid($select={account_columns})",
                f"parentcontactid($select={','.join(contact.values())})",
                f"{self._solutions_nav()}($select={solution['id']},{solution['name']},{solution['type']})",
            ]
        return ",".join(parts)

    def _currency_nav(self, entity: str) -> str:
        return self._nav.single(entity, self._col(entity)("currency"))

    def _solutions_nav(self) -> str:
        solution = self._fields.tables["solution"]
        return self._nav.lookup(solution["table"], solution["parent"]).collection

    # ------------------------------------------------------------------ parsing
    def _deal(self, entity: str, row: dict[str, Any]) -> CrmDeal:
        col = self._col(entity)
        statecode = int(row.get("statecode") or 0)
        stage = lead_stage(statecode) if entity == "lead" else opportunity_stage(statecode)
        currency = (row.get(self._currency_nav(entity)) or {}).get("isocurrencycode")
        owner = row.get(OWNER_NAV) or {}
        help_value = row.get(col("help_needed"))
        return CrmDeal(
            entity=entity,
            crm_id=str(row["opportunityid" if entity == "opportunity" else "leadid"]),
            modified_on=str(row.get("modifiedon") or ""),
            referral_id=row.get(col("referral_id")) or None,
            title=strip_mark(str(row.get(col("name")) or "")),
            deal_value=decimal_or_none(row.get(col("deal_value"))),
            currency=currency,
            close_date=date_or_none(row.get(col("close_date"))),
            description=row.get(col("description")),
            stage=stage,
            help_needed=_HELP_BY_VALUE.get(help_value) if help_value is not None else None,
            visible=bool(row.get(col("visible"))),
            account=self._account(entity, row),
            contact=self._contact(entity, row),
            owner=ContactData(owner.get("firstname"), owner.get("lastname"), owner.get("internalemailaddress"))
            if owner
            else None,
            solutions=self._solutions(row),
            audit=row.get(col("audit")),
        )

    def _account(self, entity: str, row: dict[str, Any]) -> AccountData | None:
        if entity == "lead":
            col = self._col("lead")
            if not row.get(col("company")):
                return None
            return AccountData(
                name=row[col("company")],
                address_line1=row.get(col("address_line1")),
                city=row.get(col("city")),
                state=row.get(col("state")),
                postal_code=row.get(col("postal_code")),
                country=row.get(col("country")),
            )
        account = row.get("parentaccountid")
        if not account:
            return None
        col = self._fields.tables["account"]
        return AccountData(
            name=account.get(col["name"]) or "",
            address_line1=account.get(col["address_line1"]),
            address_line2=account.get(col["address_line2"]),
            city=account.get(col["city"]),
            state=account.get(col["state"]),
            postal_code=account.get(col["postal_code"]),
            country=account.get(col["country"]),
        )

    def _contact(self, entity: str, row: dict[str, Any]) -> ContactData | None:
        if entity == "lead":
            col = self._col("lead")
            email = row.get(col("email"))
            return ContactData(row.get(col("first_name")), row.get(col("last_name")), email, row.get(col("phone")))
        contact = row.get("parentcontactid")
        if not contact:
            return None
        col = self._fields.tables["contact"]
        return ContactData(
            contact.get(col["first_name"]),
            contact.get(col["last_name"]),
            contact.get(col["email"]),
            contact.get(col["phone"]),
        )

    def _solutions(self, row: dict[str, Any]) -> tuple[SolutionData, ...]:
        col = self._fields.tables["solution"]
        items = row.get(self._solutions_nav()) or []
        found = [SolutionData(id=i[col["id"]], name=i.get(col["name"]), type=i.get(col["type"])) for i in items]
        return tuple(sorted((s for s in found if s.id), key=lambda s: s.id))


def _merge_by_modified(*streams: Iterator[CrmDeal]) -> Iterator[CrmDeal]:
    yield from heapq.merge(*streams, key=lambda d: (d.modified_on, d.crm_id))

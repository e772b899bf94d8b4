"""Adopting the co-sell connector's records in Dynamics 365: its ``msft_`` columns read, the sync's written.

Which connector columns an org has comes from its metadata (``EntityDefinitions(…)/Attributes``), so a
connector version without, say, the visibility column is adopted with what it has. The help choice's
option values are the connector's own and undocumented; its labels are read from the same metadata and
matched to Partner Center's codes (:func:`shared.crm.adopt.help_code`).

A closed (won or lost) opportunity is read-only in Dynamics 365 (the simulator enforces it too), so it
is reported as locked unless the admin asks to reopen it: one PATCH reopens it with the sync's columns,
then ``WinOpportunity`` / ``LoseOpportunity`` closes it again with the status reason, actual revenue and
close date it had. That makes a second ``opportunityclose`` activity, which is why it is not the default.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from shared.crm.adopt import (
    LINK_FIELDS,
    ConnectorColumns,
    ConnectorRecord,
    Link,
    audit_after_copy,
    help_code,
    link_from_row,
)
from shared.crm.dataverse_client import PAGE_SIZE, DataverseClient, bind, key_by_alternate, key_by_id
from shared.crm.dynamics import _schema_hint
from shared.crm.dynamics_columns import MAX_LENGTH
from shared.crm.dynamics_fields import DYNAMICS_HELP_NEEDED
from shared.crm.fields import FieldMap
from shared.mapping.model import DealKind
from shared.odata import odata_string

_MD = "Microsoft.Dynamics.CRM."
_SETS = {"opportunity": ("opportunities", "opportunityid"), "lead": ("leads", "leadid")}
# What each connector column must be to be read (Dataverse AttributeType names).
_TYPES = {
    "referral_id": ("String", "Memo"),
    "referral_link": ("String", "Memo"),
    "sync": ("Boolean",),
    "visible": ("Boolean",),
    "help_needed": ("Picklist",),
    "microsoft_crm_id": ("String", "Memo"),
    "referral_program": ("String", "Memo"),
    "audit": ("Memo", "String"),
}
_HELP_BY_VALUE = {value: code for code, value in DYNAMICS_HELP_NEEDED.items()}
_LOCKED = "A closed opportunity is read-only in Dynamics 365."


class DynamicsAdoption:
    crm = "dynamics"

    def __init__(
        self,
        client: DataverseClient,
        fields: FieldMap,
        connector: FieldMap,
        *,
        audit_max_chars: int = 4000,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._dv = client
        self._page_size = page_size
        self._fields = fields
        self._connector = connector
        self._audit_max = audit_max_chars
        self._clock = clock
        self._help: dict[str, dict[int, str | None]] = {}  # table -> connector option value -> code
        self._closed: dict[str, dict[str, Any]] = {}  # opportunity id -> how it was closed

    # ------------------------------------------------------------------ metadata
    def columns(self) -> ConnectorColumns:
        found = ConnectorColumns()
        for table in _SETS:
            attributes = self._attributes(table)
            names = self._connector.tables.get(table, {})
            for neutral in LINK_FIELDS:
                column = names.get(neutral)
                if not column:
                    continue
                if column == self._fields.get(table, neutral):
                    found.shared.setdefault(table, []).append(neutral)
                    continue
                kind = attributes.get(column.lower())
                if kind is None:
                    found.missing.setdefault(table, []).append(column)
                elif kind not in _TYPES[neutral]:
                    wanted = " or ".join(_TYPES[neutral])
                    found.notes.append(f"{table}.{column} is a {kind} column, not {wanted}: not read.")
                else:
                    found.found.setdefault(table, {})[neutral] = column.lower()
            help_column = found.found.get(table, {}).get("help_needed")
            if help_column:
                self._help[table] = self._help_options(table, help_column)
        if not any(found.found.get(t, {}).get("referral_id") for t in _SETS):
            found.notes.append(
                "Dynamics 365 has no connector referral id column on opportunity or lead: the connector's solution "
                "is not installed here, or its columns are named differently (set CONNECTOR_FIELD_MAP)."
            )
        return found

    def _attributes(self, table: str) -> dict[str, str]:
        """Logical name -> AttributeType of every column of ``table`` (empty when there is no such table)."""
        base = f"EntityDefinitions(LogicalName={odata_string(table)})"
        if self._dv.get(base, select=["LogicalName"]) is None:
            return {}
        rows = self._dv.query(f"{base}/Attributes", select=["LogicalName", "AttributeType"], page_size=None)
        return {str(r["LogicalName"]).lower(): str(r.get("AttributeType") or "") for r in rows}

    def _help_options(self, table: str, column: str) -> dict[int, str | None]:
        rows = self._dv.query(
            f"EntityDefinitions(LogicalName={odata_string(table)})/Attributes/{_MD}PicklistAttributeMetadata",
            select=["LogicalName"],
            expand="OptionSet($select=Options)",
            page_size=None,
        )
        for row in rows:
            if str(row.get("LogicalName", "")).lower() == column:
                options = (row.get("OptionSet") or {}).get("Options") or []
                return {int(o["Value"]): help_code(_label(o.get("Label"))) for o in options if "Value" in o}
        return {}

    # ------------------------------------------------------------------ records
    def records(self, kind: DealKind, columns: ConnectorColumns) -> Iterator[ConnectorRecord]:
        entity_set, key = _SETS[kind]
        theirs = columns.found.get(kind, {})
        ours = {n: c for n in LINK_FIELDS if (c := self._fields.get(kind, n))}
        select = [key, "createdon", "statecode", "statuscode", *ours.values(), *theirs.values()]
        if kind == "opportunity":
            select += ["actualvalue", "actualclosedate"]
        rows = self._dv.query(
            entity_set,
            select=list(dict.fromkeys(select)),
            filter=f"{theirs['referral_id']} ne null",
            orderby=f"createdon asc,{key} asc",
            page_size=self._page_size,
        )
        with _schema_hint():
            for row in rows:
                yield self._record(kind, row, ours, theirs)

    def _record(
        self, kind: DealKind, row: dict[str, Any], ours: dict[str, str], theirs: dict[str, str]
    ) -> ConnectorRecord:
        crm_id = str(row[_SETS[kind][1]])
        state = int(row.get("statecode") or 0)
        unreadable: list[str] = []
        help_value = row.get(theirs["help_needed"]) if "help_needed" in theirs else None
        their_help = self._help.get(kind, {}).get(int(help_value)) if isinstance(help_value, int) else None
        if help_value is not None and their_help is None:
            unreadable.append(f"help ({theirs['help_needed']} = {help_value}, which no Partner Center code matches)")
        locked = ""
        if kind == "opportunity" and state != 0:
            locked = _LOCKED
            self._closed[crm_id] = {
                "statecode": state,
                "statuscode": row.get("statuscode"),
                "actualvalue": row.get("actualvalue"),
                "actualclosedate": row.get("actualclosedate"),
            }
        return ConnectorRecord(
            kind=kind,
            crm_id=crm_id,
            created_on=str(row.get("createdon") or ""),
            open=state == 0,
            theirs=link_from_row(row, theirs, their_help),
            ours=link_from_row(row, ours, _HELP_BY_VALUE.get(row.get(ours.get("help_needed", "")))),
            locked=locked,
            reopenable=bool(locked),
            unreadable=tuple(unreadable),
        )

    def holder(self, kind: DealKind, referral_id: str) -> str | None:
        entity_set, key = _SETS[kind]
        with _schema_hint():
            row = self._dv.get(
                key_by_alternate(entity_set, self._fields.column(kind, "referral_id"), referral_id), select=[key]
            )
        return str(row[key]) if row else None

    # ------------------------------------------------------------------ writing
    def copy(self, record: ConnectorRecord, values: Link, message: str, *, reopen: bool) -> None:
        entity_set, _ = _SETS[record.kind]
        body, left_out = self._body(record.kind, values)
        audit = self._fields.get(record.kind, "audit")
        if audit:
            body[audit] = audit_after_copy(record, message, left_out, self._clock(), self._audit_max, noun="columns")
        path = key_by_id(entity_set, record.crm_id)
        with _schema_hint():
            if not reopen:
                self._dv.update(path, body)
                return
            closed = self._closed[record.crm_id]
            self._dv.update(path, {**body, "statecode": 0, "statuscode": 1})
            self._close_again(record.crm_id, closed)

    def _body(self, kind: str, values: Link) -> tuple[dict[str, Any], list[str]]:
        body: dict[str, Any] = {}
        left_out: list[str] = []
        sizes = MAX_LENGTH.get(kind, {})
        for neutral in values.filled():
            column = self._fields.get(kind, neutral)
            if not column:
                continue
            value: Any = getattr(values, neutral)
            if neutral == "help_needed":
                value = DYNAMICS_HELP_NEEDED[value]
            elif isinstance(value, str) and column in sizes and len(value) > sizes[column]:
                left_out.append(neutral.replace("_", " "))
                continue
            body[column] = value
        return body, left_out

    def _close_again(self, crm_id: str, closed: dict[str, Any]) -> None:
        """As it was: the same status reason, revenue and date (a second opportunityclose records it)."""
        won = closed["statecode"] == 1
        close: dict[str, Any] = {
            "subject": "Closed again after linking it to the co-sell sync",
            "opportunityid@odata.bind": bind("opportunities", crm_id),
            "actualend": str(closed.get("actualclosedate") or self._clock().date().isoformat())[:10],
        }
        if won and closed.get("actualvalue") is not None:
            close["actualrevenue"] = float(closed["actualvalue"])
        self._dv.action(
            "WinOpportunity" if won else "LoseOpportunity", {"Status": closed["statuscode"], "OpportunityClose": close}
        )


def _label(label: Any) -> str:
    if not isinstance(label, dict):
        return ""
    user = label.get("UserLocalizedLabel") or {}
    if user.get("Label"):
        return str(user["Label"])
    localized = label.get("LocalizedLabels") or []
    return str(localized[0].get("Label", "")) if localized else ""

"""Adopting the co-sell connector's records in Salesforce: its fields read, the sync's written.

Which connector fields exist comes from ``describe`` (what the integration user may see: a package field
without field-level access is as absent as one never installed, and the report says so). A field of a
managed package carries its namespace (``<ns>__Referral_Identifier__c``); the package's namespace is not
documented, so one namespaced copy of a default name is taken as the connector's. A connector field
named exactly like the sync's is the sync's field: nothing to copy (an org set up by the 2020 guide).

Salesforce writes to closed opportunities like to open ones; a converted Lead refuses every update
(``CANNOT_UPDATE_CONVERTED_LEAD``), so it is reported as locked (its opportunity carries the referral).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
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
from shared.crm.fields import FieldMap
from shared.crm.salesforce import _schema_hint
from shared.crm.salesforce_client import SalesforceClient, soql, soql_string
from shared.crm.salesforce_fields import MAX_LENGTH
from shared.http import ApiError
from shared.mapping.model import DealKind

log = logging.getLogger("cosell.crm.salesforce.adopt")

# What each connector field must be to be read (describe's type names).
_TYPES = {
    "referral_id": ("string",),
    "referral_link": ("url", "string"),
    "sync": ("boolean",),
    "visible": ("boolean",),
    "help_needed": ("picklist", "string"),
    "microsoft_crm_id": ("string",),
    "referral_program": ("string",),
    "audit": ("textarea", "string"),
}
_CONVERTED = (
    "A converted Lead cannot be changed in Salesforce (CANNOT_UPDATE_CONVERTED_LEAD); "
    "the opportunity it was converted to carries the referral."
)


class SalesforceAdoption:
    crm = "salesforce"

    def __init__(
        self,
        client: SalesforceClient,
        fields: FieldMap,
        connector: FieldMap,
        *,
        explicit: frozenset[tuple[str, str]] = frozenset(),
        audit_max_chars: int = 32000,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._sf = client
        self._fields = fields
        self._connector = connector
        self._explicit = explicit  # (record, field) named by CONNECTOR_FIELD_MAP: used exactly as given
        self._audit_max = audit_max_chars
        self._clock = clock

    def _obj(self, kind: str) -> str:
        return self._fields.column(kind, "object")

    # ------------------------------------------------------------------ metadata
    def columns(self) -> ConnectorColumns:
        found = ConnectorColumns()
        hidden = self._packaged_fields()
        for kind in ("opportunity", "lead"):
            described = self._sf.describe(self._obj(kind))
            fields = {str(f["name"]): f for f in (described or {}).get("fields", [])}
            for neutral in LINK_FIELDS:
                wanted = self._connector.get(kind, neutral)
                if not wanted:
                    continue
                name = self._resolve(kind, neutral, wanted, fields, found)
                unseen = [
                    h
                    for h in hidden.get(self._obj(kind), [])
                    if (h.lower() == wanted.lower() or _named_like(h, wanted)) and h not in fields
                ]
                if unseen and (name is None or name.lower() == (self._fields.get(kind, neutral) or "").lower()):
                    # The package's field exists (the Tooling API sees past field-level security), but the
                    # integration user cannot read it: the sync's own field of the same name is not it.
                    found.notes.append(
                        f"{self._obj(kind)}.{unseen[0]} exists but is not visible to this user (grant read access)."
                    )
                    name = None
                if name is None:
                    found.missing.setdefault(kind, []).append(wanted)
                elif name.lower() == (self._fields.get(kind, neutral) or "").lower():
                    found.shared.setdefault(kind, []).append(neutral)
                elif str(fields[name].get("type")) not in _TYPES[neutral]:
                    kind_of = fields[name].get("type")
                    found.notes.append(f"{self._obj(kind)}.{name} is a {kind_of} field: not read.")
                else:
                    found.found.setdefault(kind, {})[neutral] = name
        if not any(found.found.get(k, {}).get("referral_id") for k in ("opportunity", "lead")):
            if any("referral_id" in found.shared.get(k, []) for k in ("opportunity", "lead")):
                found.notes.append(
                    "The connector's referral id field is named like the sync's own and no packaged copy exists: "
                    "in an org set up by the connector's 2020 guide they are the same field, so its records are "
                    "linked already; otherwise the connector was never installed here."
                )
            else:
                found.notes.append(
                    "Salesforce shows the integration user no connector referral id field: the package is not "
                    "installed, its fields are not visible to this user (grant read access), or they are named "
                    "differently (set CONNECTOR_FIELD_MAP)."
                )
        return found

    def _packaged_fields(self) -> dict[str, list[str]]:
        """Object -> names of the custom fields that packages installed (with their namespace), from Tooling."""
        query = soql(["DeveloperName", "NamespacePrefix", "TableEnumOrId"], "CustomField", "NamespacePrefix != null")
        try:
            rows = self._sf.tooling_query(query)
        except ApiError as exc:
            log.info("Tooling API refused to list packaged fields (HTTP %s): relying on describe", exc.status)
            return {}
        found: dict[str, list[str]] = {}
        for row in rows:
            name = f"{row['NamespacePrefix']}__{row['DeveloperName']}__c"
            found.setdefault(str(row.get("TableEnumOrId") or ""), []).append(name)
        return found

    def _resolve(
        self, kind: str, neutral: str, wanted: str, fields: dict[str, Any], found: ConnectorColumns
    ) -> str | None:
        by_lower = {name.lower(): name for name in fields}
        if (kind, neutral) in self._explicit:
            return by_lower.get(wanted.lower())
        pattern = re.compile(rf"[A-Za-z][A-Za-z0-9]*__{re.escape(wanted)}", re.IGNORECASE)
        namespaced = sorted(name for name in fields if pattern.fullmatch(name))
        if len(namespaced) == 1:
            return namespaced[0]
        if len(namespaced) > 1:
            found.notes.append(
                f"{self._obj(kind)} has several fields named like the connector's {wanted} "
                f"({', '.join(namespaced)}): name one in CONNECTOR_FIELD_MAP."
            )
            return None
        return by_lower.get(wanted.lower())

    # ------------------------------------------------------------------ records
    def records(self, kind: DealKind, columns: ConnectorColumns) -> Iterator[ConnectorRecord]:
        theirs = columns.found.get(kind, {})
        ours = {n: c for n in LINK_FIELDS if (c := self._fields.get(kind, n))}
        state = ["IsClosed"] if kind == "opportunity" else ["IsConverted", self._fields.column("lead", "status")]
        select = ["Id", "CreatedDate", *state, *ours.values(), *theirs.values()]
        query = soql(select, self._obj(kind), f"{theirs['referral_id']} != null", "ORDER BY CreatedDate ASC, Id ASC")
        with _schema_hint():
            for row in self._sf.query(query):
                yield self._record(kind, row, ours, theirs)

    def _record(
        self, kind: DealKind, row: dict[str, Any], ours: dict[str, str], theirs: dict[str, str]
    ) -> ConnectorRecord:
        unreadable: list[str] = []
        help_value = row.get(theirs["help_needed"]) if "help_needed" in theirs else None
        their_help = help_code(help_value)
        if help_value not in (None, "") and their_help is None:
            unreadable.append(f"help ({theirs['help_needed']} = {help_value!r}, which no Partner Center code matches)")
        if kind == "opportunity":
            open_, locked = not row.get("IsClosed"), ""
        else:
            converted = bool(row.get("IsConverted"))
            status = str(row.get(self._fields.column("lead", "status")) or "")
            open_, locked = not converted and not status.startswith("Closed"), _CONVERTED if converted else ""
        return ConnectorRecord(
            kind=kind,
            crm_id=str(row["Id"]),
            created_on=str(row.get("CreatedDate") or ""),
            open=open_,
            theirs=link_from_row(row, theirs, their_help),
            ours=link_from_row(row, ours, help_code(row.get(ours.get("help_needed", "")))),
            locked=locked,
            unreadable=tuple(unreadable),
        )

    def holder(self, kind: DealKind, referral_id: str) -> str | None:
        column = self._fields.column(kind, "referral_id")
        query = soql(["Id"], self._obj(kind), f"{column} = {soql_string(referral_id)}", "LIMIT 1")
        with _schema_hint():
            rows = list(self._sf.query(query))
        return str(rows[0]["Id"]) if rows else None

    # ------------------------------------------------------------------ writing
    def copy(self, record: ConnectorRecord, values: Link, message: str, *, reopen: bool) -> None:
        obj = self._obj(record.kind)
        sizes = MAX_LENGTH.get(obj, {})
        body: dict[str, Any] = {}
        left_out: list[str] = []
        for neutral in values.filled():
            column = self._fields.get(record.kind, neutral)
            value = getattr(values, neutral)
            if not column:
                continue
            if isinstance(value, str) and column in sizes and len(value) > sizes[column]:
                left_out.append(neutral.replace("_", " "))
                continue
            body[column] = value
        audit = self._fields.get(record.kind, "audit")
        if audit:
            body[audit] = audit_after_copy(record, message, left_out, self._clock(), self._audit_max, noun="fields")
        with _schema_hint():
            self._sf.update(obj, record.crm_id, body)


def _named_like(name: str, wanted: str) -> bool:
    """``ns__Referral_Identifier__c`` is named like ``Referral_Identifier__c``."""
    return re.fullmatch(rf"[A-Za-z][A-Za-z0-9]*__{re.escape(wanted)}", name, re.IGNORECASE) is not None

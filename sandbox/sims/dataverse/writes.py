"""Writing rows: body validation, ``@odata.bind`` lookups, state rules, create / update / upsert / delete
and the ``WinOpportunity`` / ``LoseOpportunity`` actions.

The body is validated the way the OData deserialiser does it (unknown or wrongly cased names, literal
types, lengths) before any business rule runs, so a bad body never half-writes a row.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from sandbox.sims.dataverse.errors import (
    CODE_INVALID_ARGUMENT,
    CODE_INVALID_STATUS,
    CODE_NOT_FOUND,
    CODE_VALIDATION,
    DataverseError,
    bad_request,
    duplicate_key,
    version_mismatch,
)
from sandbox.sims.dataverse.query import parse_key
from sandbox.sims.dataverse.schema import Column, Entity, Nav
from sandbox.sims.dataverse.store import Changes, Ref, RowKey, Store
from sandbox.sims.dataverse.wire import (
    DATE_RE,
    GUID_RE,
    Record,
    etag_matches,
    normalise_stamp,
    valid_date,
    valid_datetime,
)

_REF_RE = re.compile(r"^(?:[a-z]+://[^/]+)?(?:/?api/data/v9\.\d+)?/?(?P<set>[A-Za-z_][A-Za-z0-9_]*)\((?P<key>.*)\)$")
_EDM_TYPES = {
    "String": "Edm.String",
    "Memo": "Edm.String",
    "Integer": "Edm.Int32",
    "Picklist": "Edm.Int32",
    "State": "Edm.Int32",
    "Status": "Edm.Int32",
    "BigInt": "Edm.Int64",
    "Boolean": "Edm.Boolean",
    "Money": "Edm.Decimal",
    "Decimal": "Edm.Decimal",
    "Double": "Edm.Double",
    "Uniqueidentifier": "Edm.Guid",
}


def not_found(ent: Entity, key: RowKey) -> DataverseError:
    if key.kind == "pk":
        return DataverseError(404, CODE_NOT_FOUND, f"{ent.logical} With Id = {key.value} Does Not Exist")
    return DataverseError(
        404, CODE_NOT_FOUND, f"A record with the specified key values does not exist in {ent.logical} entity"
    )


def _undeclared(ent: Entity, prop: str) -> DataverseError:
    return bad_request(
        f"An undeclared property '{prop}' which only has property annotations in the payload but no property "
        f"value was found in the payload. In OData, only declared navigation properties and declared named "
        f"streams can be represented as properties without values. (type '{ent.type_name}')"
    )


class Writer:
    """Validated writes against a :class:`Store`; callers hold ``store.lock``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.schema = store.schema

    # ----- body validation -----
    def parse_payload(self, ent: Entity, body: Record, *, raw: bool = False) -> Changes:
        """Validate a create/update body the way the OData deserialiser does, before any business rule."""
        changes = Changes()
        bound_by: dict[str, str] = {}
        for key, value in body.items():
            if "@" in key:
                prop, _, annotation = key.partition("@")
                if annotation == "odata.bind" and prop:
                    self._parse_bind(ent, prop, value, changes, bound_by)
                elif prop and prop not in ent.readable_set and prop not in ent.navs:
                    raise _undeclared(ent, prop)
                continue  # instance/property annotations such as @odata.type or @odata.etag
            if key == ent.pk:
                if not isinstance(value, str) or not GUID_RE.fullmatch(value):
                    raise bad_request(f"Cannot convert the literal '{value}' to the expected type 'Edm.Guid'.")
                changes.pk = value.lower()
            elif key in ent.values:
                changes.values[key] = check_value(ent, ent.values[key], value)
            elif key in ent.lookup_columns:
                if not raw:
                    raise bad_request(
                        "CRM do not support direct update of Entity Reference properties, "
                        "Use Navigation properties instead."
                    )
                self._parse_raw_lookup(ent, key, value, changes)
            elif key in ent.navs or key in ent.collections:
                raise bad_request(
                    f"The navigation property '{key}' must be set with '{key}@odata.bind' "
                    "(deep insert is not supported by the simulator)."
                )
            elif key in ent.read_only:
                if raw and key in ("createdon", "modifiedon") and isinstance(value, str):
                    changes.system[key] = normalise_stamp(value)
                # read-only on the service: silently ignored there too
            else:
                raise bad_request(
                    f"The property '{key}' does not exist on type '{ent.type_name}'. Make sure to only use "
                    "property names that are defined by the type or mark the type as open type."
                )
        return changes

    def _parse_bind(self, ent: Entity, name: str, value: Any, changes: Changes, bound_by: dict[str, str]) -> None:
        nav = ent.navs.get(name)
        if nav is None:  # case-sensitive, as on the service (crm-apis.md A4)
            raise _undeclared(ent, name)
        if not nav.writable:
            # owninguser / owningteam are read-only (IsValidForCreate/Update false on the reference pages);
            # refusing the bind (rather than ignoring it) is the simulator's choice, so a caller notices.
            raise bad_request(
                f"'{name}' is read-only on {ent.logical}; it follows ownerid. Assign the owner with "
                "'ownerid@odata.bind'.",
                CODE_INVALID_ARGUMENT,
            )
        if name == "ownerid" and value is None:  # a user-owned record always has an owner
            raise bad_request(
                f"ownerid cannot be cleared on {ent.logical}: assign another owner with "
                "'ownerid@odata.bind': '/systemusers(<id>)'.",
                CODE_INVALID_ARGUMENT,
            )
        if nav.column in bound_by:
            raise bad_request(f"'{name}' and '{bound_by[nav.column]}' both set {nav.column}; bind only one of them.")
        bound_by[nav.column] = name
        changes.refs[nav.column] = None if value is None else self._resolve_ref(value, nav)

    def _resolve_ref(self, text: Any, nav: Nav) -> Ref:
        sets = [self.schema.entity(t).set_name for t in nav.targets]
        if not isinstance(text, str):
            raise bad_request(f"The value of '{nav.name}@odata.bind' must be a URI string such as '/{sets[0]}(<id>)'.")
        match = _REF_RE.match(text.strip())
        if not match:
            raise bad_request(f"The URI '{text}' in '{nav.name}@odata.bind' is not a valid entity reference.")
        set_name = match.group("set")
        target = self.schema.by_set.get(set_name)
        if target is None or target.logical not in nav.targets:
            raise bad_request(
                f"The URI '{text}' in '{nav.name}@odata.bind' must reference the "
                f"{' or '.join(repr(s) for s in sets)} entity set, not '{set_name}'."
            )
        key = parse_key(target, match.group("key"))
        record = self.store.find(target, key)
        if record is None:
            raise not_found(target, key)
        return (target.logical, record[target.pk], nav.name)

    def _parse_raw_lookup(self, ent: Entity, column: str, value: Any, changes: Changes) -> None:
        """Seeding only: a raw ``_x_value`` id, bound through the navigation property whose table has it."""
        if value is None:
            changes.refs[column] = None
            return
        if not isinstance(value, str) or not GUID_RE.fullmatch(value):
            raise bad_request(f"{column} must be a GUID")
        navs = [nav for nav in ent.navs_for(column) if nav.writable]
        for nav in navs:
            for target in nav.targets:
                if value.lower() in self.store.rows[target]:
                    changes.refs[column] = (target, value.lower(), nav.name)
                    return
        changes.refs[column] = (navs[0].targets[0], value.lower(), navs[0].name)

    # ----- state rules -----
    def apply_state(self, ent: Entity, current: Record | None, values: dict[str, Any], *, strict: bool) -> None:
        """State/status validation; ``strict`` adds the opportunity rules that only apply to API writes."""
        if not ent.states:
            return
        has_state, has_status = "statecode" in values, "statuscode" in values
        if ent.logical == "opportunity" and strict:
            if current is None and has_state:
                raise bad_request(
                    "statecode is not valid for create on opportunity. Create the opportunity open and close "
                    "it with the WinOpportunity or LoseOpportunity action.",
                    CODE_INVALID_ARGUMENT,
                )
            if has_state and values["statecode"] in (1, 2):
                raise bad_request(
                    "An opportunity cannot be closed by setting statecode; use the WinOpportunity or "
                    "LoseOpportunity action.",
                    CODE_INVALID_ARGUMENT,
                )
            if current is not None and current.get("statecode") in (1, 2) and values.get("statecode") != 0:
                raise bad_request(
                    "The opportunity is closed and cannot be modified. Reopen it first (statecode 0 with "
                    "statuscode 1 or 2).",
                    CODE_INVALID_ARGUMENT,
                )
        state = values["statecode"] if has_state else (current or {}).get("statecode", 0)
        if state not in ent.states:
            raise bad_request(f"{state} is not a valid state code on {ent.logical}.", CODE_INVALID_STATUS)
        if has_status:
            status = values["statuscode"]
            if status not in {value for value, _ in ent.states[state].statuses}:
                raise bad_request(
                    f"{status} is not a valid status code for state code {ent.state_name(state)} on {ent.logical}.",
                    CODE_INVALID_STATUS,
                )
        elif has_state or current is None:
            values["statuscode"] = ent.states[state].default_status
        values["statecode"] = state

    # ----- writes -----
    def insert_raw(self, ent: Entity, record: Record) -> str:
        """A seeded row: raw ``_x_value`` ids, any valid state pair and stamps allowed; no opportunity rules."""
        changes = self.parse_payload(ent, record, raw=True)
        self.apply_state(ent, None, changes.values, strict=False)
        row = self.store.new_row(ent, changes, None)
        return self.store.write(ent, row, changes, creating=True)[ent.pk]

    def create(self, ent: Entity, changes: Changes, record_id: str | None = None) -> Record:
        self.apply_state(ent, None, changes.values, strict=True)
        row = self.store.new_row(ent, changes, record_id)
        return self.store.write(ent, row, changes, creating=True)

    def update(self, ent: Entity, current: Record, changes: Changes) -> Record:
        self.apply_state(ent, current, changes.values, strict=True)
        return self.store.write(ent, copy.deepcopy(current), changes, creating=False)

    def upsert(
        self, ent: Entity, key: RowKey, body: Record, *, if_match: str | None, if_none_match: str | None
    ) -> tuple[Record, bool]:
        """PATCH semantics: update, or create when the key is free; ``If-Match``/``If-None-Match`` restrict it."""
        changes = self.parse_payload(ent, body)
        current = self.store.find(ent, key)
        if if_none_match is not None and if_none_match.strip() == "*" and current is not None:
            raise duplicate_key()
        if if_match is not None:
            if current is None:
                raise not_found(ent, key)
            if not etag_matches(if_match, current):
                raise version_mismatch()
        if current is None:
            if key.kind == "alt" and key.key is not None:
                # Body values win over the URL's when they differ, per the upsert docs.
                changes.values = {**dict(zip(key.key.attributes, key.values, strict=True)), **changes.values}
                return self.create(ent, changes), True
            return self.create(ent, changes, record_id=key.value), True
        if key.kind == "alt" and key.key is not None:
            for attribute in key.key.attributes:
                changes.values.pop(attribute, None)  # key values in the body are discarded on update
        changes.pk = None
        return self.update(ent, current, changes), False

    def delete(self, ent: Entity, key: RowKey, *, if_match: str | None) -> None:
        row = self.store.find(ent, key)
        if row is None:
            raise not_found(ent, key)
        if if_match is not None and not etag_matches(if_match, row):
            raise version_mismatch()
        self.store.delete(ent, row)

    def close_opportunity(self, body: Record, kind: str) -> None:
        """WinOpportunity / LoseOpportunity: close the opportunity and record an opportunityclose."""
        status = body.get("Status")
        close = body.get("OpportunityClose")
        if not isinstance(status, int) or isinstance(status, bool):
            raise bad_request("The parameter 'Status' (Edm.Int32) is required.", CODE_INVALID_ARGUMENT)
        if not isinstance(close, dict):
            raise bad_request(
                "The parameter 'OpportunityClose' (an opportunityclose entity) is required.", CODE_INVALID_ARGUMENT
            )
        unknown = set(body) - {"Status", "OpportunityClose"}
        if unknown:
            raise bad_request(
                f"The parameter '{sorted(unknown)[0]}' is not declared on the {kind.title()}Opportunity action."
            )
        opportunities = self.schema.entity("opportunity")
        closes = self.schema.entity("opportunityclose")
        state = 1 if kind == "win" else 2
        changes = self.parse_payload(closes, close)
        ref = changes.refs.get("_opportunityid_value")
        if ref is None:
            raise bad_request(
                "OpportunityClose must reference the opportunity with 'opportunityid@odata.bind'.",
                CODE_INVALID_ARGUMENT,
            )
        if status not in {value for value, _ in opportunities.states[state].statuses}:
            raise bad_request(
                f"{status} is not a valid status code for state code {opportunities.state_name(state)} on opportunity.",
                CODE_INVALID_STATUS,
            )
        current = self.store.rows["opportunity"][ref[1]]
        if current.get("statecode") in (1, 2):
            raise bad_request(
                "The opportunity is already closed; reopen it before closing it again.", CODE_INVALID_ARGUMENT
            )
        actual_end = changes.values.get("actualend") or self.store.clock()[:10]
        update = Changes(values={"statecode": state, "statuscode": status, "actualclosedate": actual_end[:10]})
        if changes.values.get("actualrevenue") is not None:
            update.values["actualvalue"] = changes.values["actualrevenue"]
        self.store.write(opportunities, copy.deepcopy(current), update, creating=False)
        changes.values.setdefault("statecode", 1)  # Completed
        changes.values.setdefault("statuscode", 2)
        changes.values.setdefault("actualend", actual_end)
        self.store.write(closes, self.store.new_row(closes, changes, None), changes, creating=True)


def _literal_ok(column: Column, value: Any) -> bool:
    kind = column.type
    if kind in ("String", "Memo"):
        return isinstance(value, str)
    if kind in ("Integer", "BigInt", "Picklist", "State", "Status"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind in ("Money", "Decimal", "Double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "Uniqueidentifier":
        return isinstance(value, str) and bool(GUID_RE.fullmatch(value))
    if kind == "DateTime" and column.date_only:  # DateOnly behaviour: yyyy-MM-dd and nothing else
        return isinstance(value, str) and bool(DATE_RE.fullmatch(value)) and valid_date(value)
    if kind == "DateTime":  # DateTimeOffset; a bare date is accepted too (actualend is often sent that way)
        return isinstance(value, str) and valid_datetime(value)
    return False


def check_value(ent: Entity, column: Column, value: Any) -> Any:
    """The literal's type, then length, range and choice value, with the service's messages."""
    if value is None:
        return None
    name = column.logical
    if not _literal_ok(column, value):
        literal = json.dumps(value) if not isinstance(value, str) else value
        edm = "Edm.Date" if column.date_only else _EDM_TYPES.get(column.type, "Edm.DateTimeOffset")
        raise bad_request(f"Cannot convert the literal '{literal}' to the expected type '{edm}'.")
    if column.max_length is not None and len(value) > column.max_length:
        raise bad_request(
            f"A validation error occurred. The length of the '{name}' attribute of the '{ent.logical}' entity "
            f"exceeded the maximum allowed length of '{column.max_length}'.",
            CODE_VALIDATION,
        )
    if (column.min_value is not None and value < column.min_value) or (
        column.max_value is not None and value > column.max_value
    ):
        raise bad_request(
            f"A validation error occurred. The value {value} of '{name}' on record of type '{ent.logical}' is "
            f"outside the valid range. Accepted Values: {_number(column.min_value)} to {_number(column.max_value)}",
            CODE_VALIDATION,
        )
    if column.type == "Picklist" and value not in {v for v, _ in column.options}:
        raise bad_request(
            f"A validation error occurred. The value {value} of '{name}' on record of type '{ent.logical}' is "
            f"outside the valid range. Accepted Values: {','.join(str(v) for v, _ in column.options)}",
            CODE_VALIDATION,
        )
    return value


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)

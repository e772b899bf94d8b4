"""Writing rows: body validation, derived fields, create / update / upsert by external id / delete.

A body is checked the way the service checks it, before anything is stored, so a bad body never
half-writes a row: unknown fields (INVALID_FIELD), JSON types (JSON_PARSER_ERROR), read-only fields
(INVALID_FIELD_FOR_INSERT_UPDATE, all of them named at once), lengths (STRING_TOO_LONG), restricted
picklists (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST), emails, ids (MALFORMED_ID and friends), addresses
(FIELD_INTEGRITY_EXCEPTION, see countries.py), required fields (REQUIRED_FIELD_MISSING) and unique
fields (DUPLICATE_VALUE). An empty string is stored as null, as Salesforce stores it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.sims.salesforce import errors
from sandbox.sims.salesforce.countries import COUNTRIES, COUNTRY_BY_NAME, STATES
from sandbox.sims.salesforce.errors import SalesforceError
from sandbox.sims.salesforce.ids import normalise
from sandbox.sims.salesforce.objects import ADDRESSES, STAGE_BY_NAME
from sandbox.sims.salesforce.schema import TEXT_TYPES, Field, Schema, SObject
from sandbox.sims.salesforce.store import Store
from sandbox.sims.salesforce.wire import Record, parse_date, parse_datetime

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Fields a seeded row ("as a seller would have made it") may carry although the API refuses them.
_SEEDABLE = frozenset(
    {"CreatedDate", "LastModifiedDate", "IsConverted", "ConvertedDate", "ConvertedAccountId", "ConvertedContactId",
     "ConvertedOpportunityId", "CreatedById", "LastModifiedById"}
)  # fmt: skip
_PERSON_NAMED = frozenset({"Contact", "Lead", "User"})


@dataclass
class Changes:
    values: dict[str, Any] = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)  # fields the body named (for derived-field rules)


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, (int, float)):
        return "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT"
    return "VALUE_STRING"


def _cannot_deserialize(kind: str, value: Any) -> SalesforceError:
    # The deserializer's wording, e.g. "Cannot deserialize instance of date from VALUE_STRING value 2026-13-01
    # or value not in the required format ..." (JSON_PARSER_ERROR, 400).
    shown = value if not isinstance(value, (dict, list)) else _type_name(value)
    return errors.json_parser_error(
        f"Cannot deserialize instance of {kind} from {_type_name(value)} value {shown} or request may be missing "
        "a required field at [line:1, column:1]"
    )


def coerce(f: Field, value: Any) -> Any:
    """A JSON value as the field's Python value; ``None`` for null and for empty strings."""
    if value is None or (isinstance(value, str) and value == "" and f.type != "boolean"):
        return False if f.type == "boolean" else None
    kind = f.type
    if kind in TEXT_TYPES:
        if isinstance(value, (bool, dict, list)):
            raise _cannot_deserialize("string", value)
        return value if isinstance(value, str) else str(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _cannot_deserialize("boolean", value)
    if kind in ("currency", "double", "percent", "int"):
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None:
            raise _cannot_deserialize("double" if kind != "int" else "int", value)
        if kind == "int":
            if not number.is_integer():
                raise _cannot_deserialize("int", value)
            return int(number)
        return round(number, f.scale) if f.scale or kind == "currency" else number
    if kind == "date":
        parsed = parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            raise _cannot_deserialize("date", value)
        return parsed
    if kind == "datetime":
        stamp = parse_datetime(value) if isinstance(value, str) else None
        if stamp is None:
            raise _cannot_deserialize("datetime", value)
        return stamp
    raise _cannot_deserialize(kind, value)  # pragma: no cover - every FieldType is handled above


Rule = Callable[[SObject, Record, Record, bool], None]  # (object, row, row with the changes, creating)


class Writer:
    """Validated writes against a :class:`Store`; callers hold ``store.lock``.

    ``obj`` is either the org's object (control API, ``raw``) or a user's view of it (access.py): a view
    lacks the fields its user may not see, so naming one is INVALID_FIELD, and marks the ones it may only
    read as neither createable nor updateable. ``rules`` add object-specific checks (the setup objects),
    ``after_commit`` runs after a row is stored, ``guard`` refuses operations the caller has no right to."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.schema = store.schema
        self.rules: dict[str, Rule] = {}
        self.after_commit: dict[str, Callable[[SObject, Record], None]] = {}
        self.guard: Callable[[SObject, str, bool], None] = lambda obj, operation, raw: None

    # ----- the operations -----
    def create(
        self, obj: SObject, body: Record, *, user_id: str, raw: bool = False, schema: Schema | None = None
    ) -> Record:
        self._allow(obj, "insert", raw)
        changes = self.parse(obj, body, creating=True, raw=raw, schema=schema)
        row: Record = {"Id": self.store.new_id(obj)}
        self._defaults(obj, row, changes, user_id)
        self._check(obj, row, changes, creating=True)
        return self._commit(obj, row, changes, user_id=user_id, creating=True)

    def update(
        self,
        obj: SObject,
        row: Record,
        body: Record,
        *,
        user_id: str,
        raw: bool = False,
        schema: Schema | None = None,
    ) -> Record:
        self._allow(obj, "update", raw)
        if obj.name == "Lead" and row.get("IsConverted") and not raw:
            # A converted lead is read-only (CANNOT_UPDATE_CONVERTED_LEAD in the API's StatusCode list).
            raise SalesforceError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
        changes = self.parse(obj, body, creating=False, raw=raw, schema=schema)
        self._check(obj, row, changes, creating=False)
        return self._commit(obj, row, changes, user_id=user_id, creating=False)

    def upsert(
        self,
        obj: SObject,
        ext: Field,
        value: str,
        body: Record,
        *,
        user_id: str,
        update_only: bool = False,
        schema: Schema | None = None,
    ) -> tuple[Record, bool] | list[Record]:
        """Create or update by an external id; several matches are returned for the caller's 300 answer."""
        for key in body:
            if key.lower() in ("id", ext.name.lower()):
                # "Do not specify Id or an external ID field in the request body or an error is generated."
                # (sObject Rows by External ID, REST API Developer Guide v54.0, resources_sobject_upsert.htm)
                raise SalesforceError(
                    400, "INVALID_FIELD", f"{key} is the key of this upsert and cannot also be set in the body", [key]
                )
        matches = self.store.matching(obj, ext.name, coerce(ext, value))
        if len(matches) > 1:
            return matches
        if matches:
            return self.update(obj, matches[0], body, user_id=user_id, schema=schema), False
        if update_only:
            raise errors.not_found()
        return self.create(obj, {**body, ext.name: value}, user_id=user_id, schema=schema), True

    def delete(self, obj: SObject, row: Record, *, raw: bool = False) -> None:
        self._allow(obj, "delete", raw)
        self.store.remove(obj.full, row)

    def _allow(self, obj: SObject, operation: Literal["insert", "update", "delete"], raw: bool) -> None:
        """The user's rights (``guard``), then the object's describe flag; the control API (raw) skips the flag."""
        self.guard(obj, operation, raw)
        allowed = {"insert": obj.createable, "update": obj.updateable, "delete": obj.deletable}[operation]
        if not allowed and not raw:
            raise _not_supported(obj, operation)

    # ----- validation -----
    def parse(
        self, obj: SObject, body: Record, *, creating: bool, raw: bool = False, schema: Schema | None = None
    ) -> Changes:
        changes = Changes()
        refused: list[str] = []
        for key, value in body.items():
            if key == "attributes":
                continue
            f = obj.field(key)
            if f is None:
                rel = obj.relationship(key)
                if rel is not None and isinstance(value, dict):
                    changes.values[rel.name] = self._by_external_id(obj, rel, value, schema or self.schema)
                    changes.explicit.add(rel.name)
                    continue
                raise errors.unknown_column(key, obj.name)
            allowed = f.createable if creating else f.updateable
            if not allowed and not (raw and f.name in _SEEDABLE):
                refused.append(f.name)
                continue
            changes.values[f.name] = coerce(f, value)
            changes.explicit.add(f.name)
        if refused:
            raise errors.read_only(refused)
        for name, value in changes.values.items():
            self._check_value(obj, obj.fields[name], value)
        return changes

    def _check_value(self, obj: SObject, f: Field, value: Any) -> None:
        if value is None:
            return
        if f.type in ("string", "textarea", "email", "phone", "url") and f.length and len(value) > f.length:
            raise errors.string_too_long(f.label, f.name, value, f.length)
        if f.type == "email" and not _EMAIL_RE.fullmatch(value):
            raise SalesforceError(400, "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [f.name])
        address_code = f.name.endswith(("StateCode", "CountryCode"))  # checked with the address (countries.py)
        if f.type == "picklist" and f.restricted and not address_code and value not in f.picklist_values:
            raise errors.bad_picklist(f.label, f.name, value)
        if f.is_reference:
            self._check_reference(f, value)

    def _check_reference(self, f: Field, value: str) -> None:
        canonical = normalise(value)
        if canonical is None:
            raise errors.malformed_id(f.label, f.name, value)
        targets = [self.schema.objects[t] for t in f.reference_to if t in self.schema.objects]
        target = next((t for t in targets if t.key_prefix == canonical[:3]), None)
        if target is None:
            raise SalesforceError(
                400, "FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {value}", [f.name]
            )
        if self.store.find(target, canonical) is None:
            if self.store.find(target, canonical, deleted=True) is not None:
                raise SalesforceError(400, "ENTITY_IS_DELETED", "entity is deleted", [f.name])
            raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])

    def _by_external_id(self, obj: SObject, rel: Field, value: Record, schema: Schema) -> str:
        """``"Opportunity__r": {"Referral_Identifier__c": "x"}`` sets ``Opportunity__c`` to the matching record
        (REST API Developer Guide, "Insert or Update (Upsert) a Record Using an External ID", relationship example).
        The external id is looked up in the caller's view: a field it cannot see is no external id to it."""
        target = schema.objects[rel.reference_to[0]]
        keys = [k for k in value if k != "attributes"]
        if len(keys) != 1:
            raise SalesforceError(
                400, "INVALID_FIELD", f"Exactly one external ID field is needed for {rel.relationship_name}", []
            )
        ext = target.field(keys[0])
        if ext is None or not (ext.external_id or ext.id_lookup):
            raise SalesforceError(
                400, "INVALID_FIELD", f"Field {keys[0]} is not an External ID or indexed field for {target.name}", []
            )
        wanted = coerce(ext, value[keys[0]])
        matches = (
            [r["Id"] for r in self.store.matching(target, ext.name, wanted)]
            if ext.name != "Id"
            else ([normalise(wanted)] if wanted and self.store.find(target, str(wanted)) else [])
        )
        if not matches:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"Foreign key external ID: {wanted} not found for field {ext.name} in entity {target.name}",
                [],
            )
        if len(matches) > 1:
            raise SalesforceError(
                400, "INVALID_FIELD", f"Foreign key external ID: {wanted} matches multiple records in {target.name}", []
            )
        return str(matches[0])

    def _defaults(self, obj: SObject, row: Record, changes: Changes, user_id: str) -> None:
        # Fields the caller cannot see get their defaults too (a hidden checkbox is still false, not null).
        for f in obj.full.fields.values():
            if f.name in changes.values or f.name == "Id":
                continue
            if f.type == "boolean":
                row[f.name] = bool(f.default)
            elif f.default is not None:
                row[f.name] = f.default
            else:
                row[f.name] = None
        if "OwnerId" in obj.fields and changes.values.get("OwnerId") is None:
            changes.values["OwnerId"] = user_id

    def _check(self, obj: SObject, row: Record, changes: Changes, *, creating: bool) -> None:
        """Rules that need the whole row: addresses, derived fields, required and unique fields."""
        merged = {**row, **changes.values}
        for prefix in ADDRESSES.get(obj.name, ()):
            self._sync_address(obj, prefix, merged, changes)
        self._derive(obj, row, merged, changes)
        missing = [f.name for f in obj.required_fields if merged.get(f.name) is None]
        if missing and (creating or any(name in changes.values for name in missing)):
            raise errors.required_missing(missing)
        for name, value in changes.values.items():
            f = obj.fields[name]
            if f.unique and value is not None:
                holders = [r for r in self.store.matching(obj, name, value) if r["Id"] != row["Id"]]
                if holders:
                    raise errors.duplicate_value(name, holders[0]["Id"])
        rule = self.rules.get(obj.name)
        if rule is not None:
            rule(obj, row, merged, creating)

    def _sync_address(self, obj: SObject, prefix: str, merged: Record, changes: Changes) -> None:
        """Keep ``…CountryCode``/``…Country`` and ``…StateCode``/``…State`` in step (countries.py)."""
        code_f, name_f = f"{prefix}CountryCode", f"{prefix}Country"
        state_code_f, state_f = f"{prefix}StateCode", f"{prefix}State"
        if code_f in changes.explicit and merged.get(code_f) is not None:
            code = merged[code_f]
            if code not in COUNTRIES:
                raise _bad_country(code_f)
            if (
                name_f in changes.explicit
                and merged.get(name_f)
                and COUNTRY_BY_NAME.get(merged[name_f].casefold()) != code
            ):
                raise _bad_country(name_f)
            changes.values[name_f] = COUNTRIES[code]
        elif name_f in changes.explicit:
            country = merged.get(name_f)
            if country is None:
                changes.values[code_f] = None
            else:
                code = COUNTRY_BY_NAME.get(country.casefold()) or (country if country in COUNTRIES else None)
                if code is None:
                    raise _bad_country(name_f)
                changes.values[code_f], changes.values[name_f] = code, COUNTRIES[code]
        elif code_f in changes.explicit:  # CountryCode set to null clears the name
            changes.values[name_f] = None
        country_code = changes.values.get(code_f, merged.get(code_f))
        states = STATES.get(country_code or "", {})
        if state_code_f in changes.explicit and merged.get(state_code_f) is not None:
            if merged[state_code_f] not in states:
                raise SalesforceError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "The existing country/territory doesn't recognize the state value for field: "
                    f"{obj.fields[state_code_f].label}",
                    [state_code_f],
                )  # wording from SalesforceFoundation/NPSP#2432
            changes.values[state_f] = states[merged[state_code_f]]
        elif state_f in changes.explicit and merged.get(state_f) is not None and states:
            by_name = {name.casefold(): code for code, name in states.items()}
            wanted = merged[state_f]
            code = by_name.get(wanted.casefold()) or (wanted if wanted in states else None)
            if code is None:
                raise SalesforceError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "There's a problem with this state, even though it may appear correct. Please select a "  # noqa: S608 (a message, not SQL)
                    f"state from the list of valid states.: {state_f}",
                    [state_f],
                )
            changes.values[state_code_f], changes.values[state_f] = code, states[code]

    def _derive(self, obj: SObject, row: Record, merged: Record, changes: Changes) -> None:
        if obj.name in _PERSON_NAMED and ({"FirstName", "LastName"} & changes.explicit or not row.get("Name")):
            changes.values["Name"] = " ".join(p for p in (merged.get("FirstName"), merged.get("LastName")) if p) or None
        if obj.name == "Opportunity" and "StageName" in changes.values and merged.get("StageName") in STAGE_BY_NAME:
            # StageName sets IsClosed/IsWon, and Probability/ForecastCategoryName unless the body sets them.
            _, probability, forecast, closed, won = STAGE_BY_NAME[merged["StageName"]]
            changes.values["IsClosed"], changes.values["IsWon"] = closed, won
            if "Probability" not in changes.explicit:
                changes.values["Probability"] = float(probability)
            if "ForecastCategoryName" not in changes.explicit:
                changes.values["ForecastCategoryName"] = forecast

    def _commit(self, obj: SObject, row: Record, changes: Changes, *, user_id: str, creating: bool) -> Record:
        now = self.store.stamp()
        row.update(changes.values)
        if creating:
            row["IsDeleted"] = False
            if row.get("CreatedDate") is None:
                row["CreatedDate"] = now
            if row.get("CreatedById") is None:
                row["CreatedById"] = user_id
        if not (creating and "LastModifiedDate" in changes.values):
            row["LastModifiedDate"] = now
        if "LastModifiedById" not in changes.values:
            row["LastModifiedById"] = user_id
        row["SystemModstamp"] = now
        self.store.put(obj, row)
        if obj.name == "OpportunityContactRole" and row.get("IsPrimary"):
            self._one_primary(obj, row, user_id, now)
        after = self.after_commit.get(obj.name)
        if after is not None:
            after(obj, row)
        return row

    def _one_primary(self, obj: SObject, primary: Record, user_id: str, now: dt.datetime) -> None:
        """Only one primary contact role per opportunity: marking one clears the others (OCR reference, IsPrimary)."""
        for other in self.store.rows[obj.name].values():
            if other is not primary and other.get("OpportunityId") == primary["OpportunityId"] and other["IsPrimary"]:
                other.update(IsPrimary=False, LastModifiedDate=now, LastModifiedById=user_id, SystemModstamp=now)


def _bad_country(field_name: str) -> SalesforceError:
    # verbb/formie#963: [{"message":"There's a problem with this country, even though it may appear correct.
    # Please select a country/territory from the list of valid countries.: Country",
    #   "errorCode":"FIELD_INTEGRITY_EXCEPTION","fields":["Country"]}]
    return SalesforceError(
        400,
        "FIELD_INTEGRITY_EXCEPTION",
        "There's a problem with this country, even though it may appear correct. Please select a "  # noqa: S608 (a message)
        f"country/territory from the list of valid countries.: {field_name}",
        [field_name],
    )


def _not_supported(obj: SObject, operation: str) -> SalesforceError:
    return SalesforceError(
        400,
        "INVALID_TYPE_FOR_OPERATION",
        f"entity type {obj.name} does not support {operation} (the simulator's integration user cannot {operation} "
        f"{obj.label_plural.lower()})",
    )

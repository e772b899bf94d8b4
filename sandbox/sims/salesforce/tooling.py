"""The Tooling API's create side for custom fields and objects, and the reads an app needs to see what exists.

Resources under ``/services/data/vXX.X/tooling/`` ("Use Tooling API with REST", Tooling API Developer Guide):

- ``POST /tooling/sobjects/CustomField`` with ``{"FullName": "Opportunity.Referral_Identifier__c",
  "Metadata": {"type": "Text", "label": …, "length": 100, …}}``. The Tooling ``CustomField`` object supports
  "Query, GET, POST, PATCH"; ``Metadata`` is CustomFieldMetadata (``type``, ``label``, ``length``,
  ``defaultValue``, ``externalId``, ``unique``, ``caseSensitive``, ``required``, ``precision``, ``scale``,
  ``valueSet``, ``visibleLines``, ``referenceTo``, ``relationshipName``, ``relationshipLabel``,
  ``relationshipOrder``, ``reparentableMasterDetail``, ``writeRequiresMasterRead``, ``deleteConstraint``,
  ``description``, ``inlineHelpText``; tooling_api_objects_customfield.htm). ``DeveloperName`` is the name
  without ``__c`` ("the internal name for the custom field CF__c is CF"); ``TableEnumOrId`` is the object's
  name for a standard object and its CustomObject id for a custom one.
- ``POST /tooling/sobjects/CustomObject`` with ``{"FullName": "Microsoft_Solution__c", "Metadata": {"label",
  "pluralLabel", "nameField": {"type": "Text", "label"}, "deploymentStatus", "sharingModel"}}`` (the Metadata
  API CustomObject fields). The Tooling API Developer Guide lists only "Query, GET" for CustomObject; the
  POST is what public integrations send and the service accepts (e.g. simstudioai/sim PR #5209's
  ``salesforce_create_custom_object``), so it is simulated; see the report.
- Success is 201 ``{"id", "success": true, "errors": [], "warnings": [], "infos": []}`` (the Tooling
  SaveResult). ``GET /tooling/sobjects/CustomField/{id}`` and ``…/CustomObject/{id}`` return the row with
  ``FullName`` and ``Metadata``; ``GET /tooling/query?q=SELECT Id, DeveloperName, TableEnumOrId FROM CustomField
  WHERE …`` answers ``{"size", "totalSize", "done", "queryLocator", "entityTypeName", "records"}``.
  ``FullName`` and ``Metadata`` can only be queried for one row at a time (the service's MALFORMED_QUERY
  "When retrieving results with Metadata or FullName fields, the query qualifications must specify no more
  than one row for retrieval").

Rules and where they come from:

- Names: "The __c suffix must be appended to custom object names and custom field names when you are
  setting the fullName" (Metadata API, "Metadata", ``fullName``); a name without it is refused with the
  Metadata API's "Invalid fullName, must end in __c". The name itself "can only contain underscores and
  alphanumeric characters. It must be unique, begin with a letter, not include spaces, not end with an
  underscore, and not contain two consecutive underscores" (the API-name rule, Object Reference
  PermissionSet ``Name``, and the Setup error for a bad field name); at most 40 characters.
- A name already used on the object (or by another object) is DUPLICATE_DEVELOPER_NAME, "You can't create
  a custom object or custom field with a duplicate developer name." (the StatusCode list, SOAP API
  Developer Guide, "Core Data Types Used in API Calls").
- A ``type`` that is not a FieldType is a deserialization error (JSON_PARSER_ERROR, as for any enum in a
  request body); a FieldType the simulator does not implement is refused by name.
- Per type (Salesforce Help, "Custom Field Attributes" and "Custom Field Types"; crm-apis.md B6):
  Checkbox needs ``defaultValue``; Text ``length`` 1–255; Text Area is 255; Long Text Area ``length``
  256–131,072 and ``visibleLines`` 2–50 ("You can show from 2 through 50 lines"); Number, Currency and
  Percent ``precision`` 1–18 and ``scale`` up to it; Picklist ``valueSet.valueSetDefinition.value[]`` of
  ``{fullName, label, default}``, ``valueSet.restricted``; Lookup and MasterDetail ``referenceTo``,
  ``relationshipName`` (the child relationship name, "The name used in API SOQL relationship queries",
  published as ``<relationshipName>__r``; the field's own relationship is ``<DeveloperName>__r``).
  External ID and unique apply to Text, Number and Email fields.
- Master-detail: only on a custom object, at most two per object, not on an object that has records, and
  the detail object loses its owner (its records are "controlled by parent"; the field is required,
  reparentable only with ``reparentableMasterDetail``, and deleting the master deletes the details;
  Salesforce Help, "Object Relationships Overview").
- A field created here is hidden from every profile until a permission set grants it (access.py).
- Writes need the customizer rights (access.py); without them 403 INSUFFICIENT_ACCESS, "use of the Metadata
  API requires a user with the ModifyAllData or ModifyMetadata permissions" (the service's words for a
  metadata write by such a user, forcedotcom/cli#3048). Reads do not.

Not simulated: PATCH (update) and DELETE of CustomField / CustomObject (405), the other Tooling objects
(EntityDefinition, FieldDefinition, … answer INVALID_TYPE / 404), AutoNumber name fields, formula, roll-up
and the rarer field types. Messages marked "(simulator)" in the code are the simulator's own where no
service wording was found; FIELD_INTEGRITY_EXCEPTION for an invalid definition is the simulator's choice
of code (the service's code for each metadata validation error is not documented).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.sims.salesforce import access, errors, soql
from sandbox.sims.salesforce.errors import SalesforceError
from sandbox.sims.salesforce.ids import normalise
from sandbox.sims.salesforce.objects import make, required, text
from sandbox.sims.salesforce.query import QueryEngine, project_row
from sandbox.sims.salesforce.records import Call
from sandbox.sims.salesforce.schema import Field, FieldType, PicklistValue, Schema, SObject
from sandbox.sims.salesforce.store import Store
from sandbox.sims.salesforce.wire import Record, read_object, sf_response

CUSTOM_FIELD, CUSTOM_OBJECT = "CustomField", "CustomObject"
MAX_NAME = 40  # custom object and field names, without __c
MAX_LABEL = 40
# Custom object key prefixes the simulated org hands out, in this order (an org's own choice; ids.py).
_PREFIX_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
FIRST_CUSTOM_PREFIX = "a0S"
# FieldType (Metadata API): every value, so an unknown one is told apart from one the simulator lacks.
FIELD_TYPES = frozenset(
    {"AutoNumber", "Lookup", "MasterDetail", "MetadataRelationship", "Checkbox", "Currency", "Date", "DateTime",
     "Email", "EncryptedText", "ExternalLookup", "IndirectLookup", "Number", "Percent", "Phone", "Picklist",
     "MultiselectPicklist", "Summary", "Text", "TextArea", "LongTextArea", "Url", "Hierarchy", "File", "Html",
     "Location", "Time"}
)  # fmt: skip
SHARING_MODELS = frozenset(
    {"Private", "Read", "ReadWrite", "ReadWriteTransfer", "FullAccess", "ControlledByParent", "ControlledByCampaign",
     "ControlledByLeadOrContact"}
)  # fmt: skip
DEPLOYMENT_STATUSES = frozenset({"Deployed", "InDevelopment"})
_SIMPLE: dict[str, tuple[FieldType, int]] = {
    "TextArea": ("textarea", 255),
    "Url": ("url", 255),
    "Email": ("email", 80),
    "Phone": ("phone", 40),
    "Date": ("date", 0),
    "DateTime": ("datetime", 0),
}
_NUMBERS: dict[str, FieldType] = {"Number": "double", "Currency": "currency", "Percent": "percent"}
_KEYED = frozenset({"Text", "Number", "Email"})  # may be External ID / unique
_NAME_RE = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*")


def _integrity(message: str, fields: list[str] | None = None) -> SalesforceError:
    return SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", message, fields or [])


def _no_rights() -> SalesforceError:
    return SalesforceError(
        403,
        "INSUFFICIENT_ACCESS",
        "use of the Metadata API requires a user with the ModifyAllData or ModifyMetadata permissions",
    )


def _duplicate_name() -> SalesforceError:
    return SalesforceError(
        400,
        "DUPLICATE_DEVELOPER_NAME",
        "You can't create a custom object or custom field with a duplicate developer name.",
        [],
    )


def _bad_enum(kind: str, value: Any) -> SalesforceError:
    return errors.json_parser_error(
        f"Cannot deserialize instance of {kind} from VALUE_STRING value {value} or request may be missing a "
        "required field at [line:1, column:1]"
    )


def check_name(full_name: str, what: str) -> str:
    """The developer name of ``X__c`` after the naming rules; raises the service's errors."""
    if not full_name.endswith("__c"):
        raise _integrity("Invalid fullName, must end in __c", ["FullName"])
    developer = full_name[:-3]
    if not _NAME_RE.fullmatch(developer) or developer.endswith("_"):
        raise _integrity(f"The {what} Name field {access.API_NAME_RULE}", ["FullName"])
    if len(developer) > MAX_NAME:
        raise _integrity(f"The {what} Name field can't be longer than {MAX_NAME} characters. (simulator)", ["FullName"])
    return developer


def _flag(md: Record, key: str, default: bool = False) -> bool:
    value = md.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise errors.json_parser_error(
        f"Cannot deserialize instance of boolean from VALUE_STRING value {value} or request may be missing a "
        "required field at [line:1, column:1]"
    )


def _int(md: Record, key: str) -> int | None:
    value = md.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _bad_enum("int", value)
    try:
        number = float(value)
    except ValueError:
        raise _bad_enum("int", value) from None
    if not number.is_integer():
        raise _bad_enum("int", value)
    return int(number)


def _in_range(md: Record, key: str, low: int, high: int, kind: str) -> int:
    value = _int(md, key)
    if value is None:
        raise _integrity(f"{kind} fields require {key} (simulator)", [key])
    if not low <= value <= high:
        raise _integrity(f"{key} must be between {low} and {high} for {kind} fields, not {value} (simulator)", [key])
    return value


def _label(md: Record, what: str, key: str = "label") -> str:
    label = md.get(key)
    if not isinstance(label, str) or not label.strip():
        raise _integrity(f"Must specify a non-empty {key} for the {what}", [key])
    if len(label) > MAX_LABEL and key == "label":
        raise _integrity(f"{what} label: data value too large: {label} (max length={MAX_LABEL})", [key])
    return label


def next_prefix(used: set[str], start: str = FIRST_CUSTOM_PREFIX) -> str:
    """The first free custom-object key prefix from ``start`` in base-62 order (``a0S``, ``a0T``, …)."""
    head, position = start[0], _PREFIX_DIGITS.index(start[1]) * 62 + _PREFIX_DIGITS.index(start[2])
    while True:
        candidate = head + _PREFIX_DIGITS[position // 62] + _PREFIX_DIGITS[position % 62]
        if candidate not in used:
            return candidate
        position += 1


# ----------------------------------------------------------------------------- the Tooling objects themselves


def _meta_field(name: str, kind: FieldType = "string", length: int = 255, **kw: Any) -> Field:
    return Field(name, kind, name, length=length, createable=False, updateable=False, **kw)


def _audit() -> list[Field]:
    return [
        _meta_field("CreatedDate", "datetime"),
        _meta_field("CreatedById", "reference", 18),
        _meta_field("LastModifiedDate", "datetime"),
        _meta_field("LastModifiedById", "reference", 18),
    ]


def tooling_schema() -> Schema:
    """The Tooling API's ``CustomField`` and ``CustomObject`` as queryable objects (Tooling API object reference)."""

    def obj(name: str, prefix: str, fields: list[Field]) -> SObject:
        every = [_meta_field("Id", "id", 18, id_lookup=True), *fields, *_audit()]
        # Metadata is a complex value: selectable, not filterable (long_text), served as JSON.
        every += [_meta_field("FullName"), _meta_field("Metadata", "textarea", 0, long_text=True)]
        return SObject(name, name, name, prefix, {f.name: f for f in every}, createable=False)

    field_facts = [
        _meta_field("DeveloperName", length=40),
        _meta_field("TableEnumOrId", length=40),
        _meta_field("EntityDefinitionId", length=40),
        _meta_field("NamespacePrefix", length=15),
        _meta_field("ManageableState", "picklist", 40),
        _meta_field("Description", "textarea", 1000),
        _meta_field("InlineHelpText", "textarea", 510),
        _meta_field("Length", "int"),
        _meta_field("Precision", "int"),
        _meta_field("Scale", "int"),
        _meta_field("RelationshipLabel", length=80),
    ]
    object_facts = [
        _meta_field("DeveloperName", length=40),
        _meta_field("NamespacePrefix", length=15),
        _meta_field("ManageableState", "picklist", 40),
        _meta_field("Description", "textarea", 1000),
        _meta_field("SharingModel", "picklist", 40),
        _meta_field("ExternalName", length=255),
    ]
    schema = Schema(
        {CUSTOM_FIELD: obj(CUSTOM_FIELD, "00N", field_facts), CUSTOM_OBJECT: obj(CUSTOM_OBJECT, "01I", object_facts)}
    )
    schema.refresh()
    return schema


class Tooling:
    """Custom objects and fields: the Tooling resources, and the same creates in-process (provisioning)."""

    def __init__(self, store: Store, rights: access.Access, *, seed: int = 0) -> None:
        self.store = store
        self.rights = rights
        self.meta = Store(tooling_schema(), seed=seed + 1)
        self.meta.lock = store.lock
        self.engine = QueryEngine(self.meta)

    @property
    def schema(self) -> Schema:
        return self.store.schema

    def reset(self) -> None:
        self.meta.wipe()

    # ----- HTTP -----
    def sobjects(self, request: Request, call: Call, name: str) -> Response:
        kind = self._kind(name)
        if request.method != "POST":
            raise SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed "
                                  "are POST")  # fmt: skip
        body = read_object(request)
        with self.store.lock:
            if not self.rights.customizer:
                raise _no_rights()
            create = self.create_field if kind == CUSTOM_FIELD else self.create_object
            new_id = create(body, user_id=call.user_id)
        return sf_response({"id": new_id, "success": True, "errors": [], "warnings": [], "infos": []}, 201)

    def row(self, request: Request, call: Call, name: str, record_id: str) -> Response:
        kind = self._kind(name)
        obj = self.meta.schema.objects[kind]
        canonical = normalise(record_id)
        if canonical is None or canonical[:3] != obj.key_prefix:
            raise errors.malformed_id(f"{kind} ID", None, record_id)
        if request.method != "GET":
            raise SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed "
                                  "are GET")  # fmt: skip
        with self.store.lock:
            row = self.meta.find(obj, canonical)
            if row is None:
                raise errors.not_found()
            return sf_response(_tooling_urls(project_row(obj, copy.deepcopy(row), call.version)))

    def query(self, request: Request, call: Call) -> Response:
        text_ = request.args.get("q")
        if not text_ or not text_.strip():
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        with self.store.lock:
            records, total, _count = self.engine.run(text_, include_deleted=False, version=call.version)
            parsed = soql.parse(text_)
            selected = {p.parts[-1].lower() for p in parsed.fields if isinstance(p, soql.Path)}
            if {"fullname", "metadata"} & selected and total > 1:
                raise SalesforceError(
                    400,
                    "MALFORMED_QUERY",
                    "When retrieving results with Metadata or FullName fields, the query qualifications must specify "
                    f"no more than one row for retrieval. Result size: {total}",
                )
            records = [_tooling_urls(copy.deepcopy(r)) for r in records]
        kind = self.meta.schema.sobject(parsed.source)
        return sf_response(
            {
                "size": len(records),
                "totalSize": total,
                "done": True,
                "queryLocator": None,
                "entityTypeName": kind.name if kind else parsed.source,
                "records": records,
            }
        )

    def _kind(self, name: str) -> str:
        for kind in (CUSTOM_FIELD, CUSTOM_OBJECT):
            if name.lower() == kind.lower():
                return kind
        # Other Tooling objects exist in the service; the simulator has only these two.
        raise errors.not_found()

    # ----- creates (callers hold the store lock) -----
    def create_object(self, body: Record, *, user_id: str) -> str:
        full_name, md = _body(body, CUSTOM_OBJECT)
        developer = check_name(full_name, "Object")
        if self.schema.sobject(full_name) is not None:
            raise _duplicate_name()
        label = _label(md, CUSTOM_OBJECT)
        plural = _label(md, CUSTOM_OBJECT, "pluralLabel")
        name_field = md.get("nameField")
        if not isinstance(name_field, dict):
            raise _integrity("Must specify a nameField for the CustomObject", ["nameField"])
        if name_field.get("type") != "Text":
            if name_field.get("type") == "AutoNumber":
                raise _integrity("The simulator does not support AutoNumber name fields (simulator)", ["nameField"])
            raise _bad_enum("FieldType", name_field.get("type"))
        name_label = _label(name_field, "nameField")
        sharing = md.get("sharingModel")
        if sharing is None:
            raise _integrity("Must specify a sharingModel for the CustomObject (simulator)", ["sharingModel"])
        if sharing not in SHARING_MODELS:
            raise _bad_enum("SharingModel", sharing)
        status = md.get("deploymentStatus")
        if status is None:
            raise _integrity("Must specify a deploymentStatus for the CustomObject (simulator)", ["deploymentStatus"])
        if status not in DEPLOYMENT_STATUSES:
            raise _bad_enum("DeploymentStatus", status)
        prefix = next_prefix({o.key_prefix for o in self.schema.objects.values()})
        fields = [required(text("Name", name_label, 80, name_field=True))]
        if sharing != "ControlledByParent":
            fields.append(
                Field("OwnerId", "reference", "Owner ID", length=18, nillable=False, defaulted_on_create=True,
                      reference_to=("User",), relationship_name="Owner")
            )  # fmt: skip
        obj = make(full_name, label, plural, prefix, fields, "Tooling API (CustomObject)", custom=True)
        self.schema.objects[full_name] = obj
        self.store.rows[full_name], self.store.bin[full_name] = {}, {}
        access.settle(self.schema)
        return self._record(
            CUSTOM_OBJECT,
            user_id,
            DeveloperName=developer,
            SharingModel=sharing,
            Description=md.get("description"),
            FullName=full_name,
            Metadata=md,
        )

    def create_field(self, body: Record, *, user_id: str) -> str:
        full_name, md = _body(body, CUSTOM_FIELD)
        object_name, dot, field_name = full_name.partition(".")
        if not dot:
            raise _integrity(f"Invalid fullName {full_name}: a custom field's is <object>.<field> (simulator)",
                             ["FullName"])  # fmt: skip
        obj = self.schema.sobject(object_name)
        if obj is None or not access.data_object(obj):
            raise _integrity(f"Invalid fullName {full_name}: there is no object {object_name} (simulator)",
                             ["FullName"])  # fmt: skip
        developer = check_name(field_name, "Field")
        if obj.field(field_name) is not None or obj.field(developer) is not None:
            raise _duplicate_name()
        field, child = build_field(self.schema, obj, field_name, md, has_rows=bool(self.store.rows[obj.name]))
        obj.fields[field.name] = field
        if field.master_detail:
            obj.fields.pop("OwnerId", None)  # records of a detail object are owned through their master
            for row in self.meta.rows[CUSTOM_OBJECT].values():
                if row["FullName"] == obj.name:
                    row["SharingModel"] = row["Metadata"]["sharingModel"] = "ControlledByParent"
        if child is not None:
            self.schema.child_names[(obj.name, field.name)] = child
        access.settle(self.schema)
        table = self._table_id(obj)
        length = field.length if field.type in ("string", "textarea", "url", "email", "phone", "picklist") else None
        return self._record(
            CUSTOM_FIELD,
            user_id,
            DeveloperName=developer,
            TableEnumOrId=table,
            EntityDefinitionId=table,
            Description=md.get("description"),
            InlineHelpText=md.get("inlineHelpText"),
            Length=length,
            Precision=field.precision or None,
            Scale=field.scale if field.type in _NUMBERS.values() else None,
            RelationshipLabel=md.get("relationshipLabel"),
            FullName=f"{obj.name}.{field.name}",
            Metadata=md,
        )

    def install_field(self, obj: SObject, local: str, md: Record, *, namespace: str, user_id: str) -> str:
        """A field a package installs (``<namespace>__<local>``): no Tooling name rules, since the package's
        publisher made it; listed by the Tooling API with its NamespacePrefix, as installed fields are."""
        name = f"{namespace}__{local}" if namespace else local
        if obj.field(name) is not None:
            raise ValueError(f"{obj.name}.{name} exists already")
        field, _ = build_field(self.schema, obj, name, md, has_rows=bool(self.store.rows[obj.name]))
        obj.fields[field.name] = field
        table = self._table_id(obj)
        self._record(
            CUSTOM_FIELD,
            user_id,
            namespace=namespace or None,
            DeveloperName=local.removesuffix("__c"),
            TableEnumOrId=table,
            EntityDefinitionId=table,
            Description=None,
            InlineHelpText=None,
            Length=field.length if field.type in ("string", "textarea", "url", "picklist") else None,
            Precision=None,
            Scale=None,
            RelationshipLabel=None,
            FullName=f"{obj.name}.{field.name}",
            Metadata=md,
        )
        return field.name

    def _table_id(self, obj: SObject) -> str:
        if not obj.custom:
            return obj.name
        rows = self.meta.rows[CUSTOM_OBJECT].values()
        return next((r["Id"] for r in rows if r["FullName"] == obj.name), obj.name)

    def _record(self, kind: str, user_id: str, *, namespace: str | None = None, **values: Any) -> str:
        obj = self.meta.schema.objects[kind]
        now = self.store.stamp()
        row: Record = {f: None for f in obj.fields}
        manageable = "installed" if namespace else "unmanaged"
        row.update(values, Id=self.meta.new_id(obj), NamespacePrefix=namespace, ManageableState=manageable)
        row.update(CreatedDate=now, CreatedById=user_id, LastModifiedDate=now, LastModifiedById=user_id)
        row["Metadata"] = copy.deepcopy(values["Metadata"])
        self.meta.put(obj, row)
        return str(row["Id"])


def _body(body: Record, kind: str) -> tuple[str, Record]:
    for key in body:
        if key not in ("FullName", "Metadata", "attributes"):
            raise SalesforceError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {kind}", [])
    missing = [key for key in ("FullName", "Metadata") if body.get(key) in (None, "")]
    if missing:
        raise errors.required_missing(missing)
    full_name, md = body["FullName"], body["Metadata"]
    if not isinstance(full_name, str):
        raise _bad_enum("string", full_name)
    if not isinstance(md, dict):
        raise errors.json_parser_error("Cannot deserialize instance of Metadata from a value that is not an object")
    return full_name, md


def _tooling_urls(record: Record) -> Record:
    """Tooling records name Tooling URLs: ``/services/data/vXX.X/tooling/sobjects/CustomField/00N…``."""
    attrs = record.get("attributes")
    if isinstance(attrs, dict) and "/sobjects/" in attrs.get("url", ""):
        attrs["url"] = attrs["url"].replace("/sobjects/", "/tooling/sobjects/", 1)
    return record


# ----------------------------------------------------------------------------- CustomFieldMetadata -> Field


def build_field(schema: Schema, obj: SObject, name: str, md: Record, *, has_rows: bool) -> tuple[Field, str | None]:
    """The field ``md`` describes on ``obj`` and, for a relationship, its child relationship name."""
    kind = md.get("type")
    if kind is None:
        raise _integrity("Must specify a type for the CustomField (simulator)", ["type"])
    if kind not in FIELD_TYPES:
        raise _bad_enum("FieldType", kind)
    label = _label(md, CUSTOM_FIELD)
    external_id, unique = _flag(md, "externalId"), _flag(md, "unique")
    if (external_id or unique) and kind not in _KEYED:
        raise _integrity(f"External ID and unique are only for Text, Number and Email fields, not {kind} (simulator)",
                         ["externalId" if external_id else "unique"])  # fmt: skip
    base: dict[str, Any] = {"custom": True, "external_id": external_id, "unique": unique}
    if unique:
        base["case_sensitive"] = _flag(md, "caseSensitive")
    if _flag(md, "required") and kind not in ("Checkbox", "MasterDetail"):
        base |= {"nillable": False, "required": True}
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise _integrity(f"The simulator does not implement CustomField type {kind} (simulator)", ["type"])
    field, child = builder(schema, obj, name, label, md, has_rows)
    return replace(field, **base) if not field.master_detail else replace(field, custom=True), child


def _text(schema: Schema, obj: SObject, name: str, label: str, md: Record, has_rows: bool) -> tuple[Field, None]:
    return Field(name, "string", label, length=_in_range(md, "length", 1, 255, "Text")), None


def _long_text(schema: Schema, obj: SObject, name: str, label: str, md: Record, has_rows: bool) -> tuple[Field, None]:
    length = _in_range(md, "length", 256, 131072, "LongTextArea")
    _in_range(md, "visibleLines", 2, 50, "LongTextArea")
    return Field(name, "textarea", label, length=length, long_text=True), None


def _simple(kind: str) -> Callable[..., tuple[Field, None]]:
    field_type, length = _SIMPLE[kind]

    def build(schema: Schema, obj: SObject, name: str, label: str, md: Record, has_rows: bool) -> tuple[Field, None]:
        return Field(name, field_type, label, length=length), None

    return build


def _number(kind: str) -> Callable[..., tuple[Field, None]]:
    def build(schema: Schema, obj: SObject, name: str, label: str, md: Record, has_rows: bool) -> tuple[Field, None]:
        precision = _in_range(md, "precision", 1, 18, kind)
        scale = _in_range(md, "scale", 0, precision, kind)
        return Field(name, _NUMBERS[kind], label, precision=precision, scale=scale), None

    return build


def _checkbox(schema: Schema, obj: SObject, name: str, label: str, md: Record, has_rows: bool) -> tuple[Field, None]:
    if md.get("defaultValue") in (None, ""):
        raise _integrity("Checkbox fields require a defaultValue of true or false (simulator)", ["defaultValue"])
    default = _flag(md, "defaultValue")
    return Field(name, "boolean", label, nillable=False, default=default, defaulted_on_create=True), None


def _picklist(schema: Schema, obj: SObject, name: str, label: str, md: Record, has_rows: bool) -> tuple[Field, None]:
    value_set = md.get("valueSet")
    definition = value_set.get("valueSetDefinition") if isinstance(value_set, dict) else None
    values = definition.get("value") if isinstance(definition, dict) else None
    if not isinstance(values, list) or not values:
        raise _integrity("Picklist fields require valueSet.valueSetDefinition.value with at least one value "
                         "(simulator)", ["valueSet"])  # fmt: skip
    options: list[PicklistValue] = []
    seen: set[str] = set()
    for item in values:
        if not isinstance(item, dict) or not isinstance(item.get("fullName"), str) or not item["fullName"].strip():
            raise _integrity("Each picklist value needs a fullName (simulator)", ["valueSet"])
        value = item["fullName"]
        if value.casefold() in seen:
            raise _integrity(f"Duplicate picklist value: {value} (simulator)", ["valueSet"])
        seen.add(value.casefold())
        options.append(PicklistValue(value, str(item.get("label") or value), _flag(item, "default")))
    defaults = [o.value for o in options if o.default]
    if len(defaults) > 1:
        raise _integrity("A picklist can have only one default value (simulator)", ["valueSet"])
    assert isinstance(value_set, dict)
    return Field(
        name,
        "picklist",
        label,
        length=255,
        picklist=tuple(options),
        restricted=_flag(value_set, "restricted"),
        default=defaults[0] if defaults else None,
        defaulted_on_create=bool(defaults),
    ), None


def _relationship(master: bool) -> Callable[..., tuple[Field, str]]:
    def build(schema: Schema, obj: SObject, name: str, label: str, md: Record, has_rows: bool) -> tuple[Field, str]:
        target_name = md.get("referenceTo")
        target = schema.sobject(target_name) if isinstance(target_name, str) else None
        if target is None or not access.data_object(target):
            raise _integrity(f"referenceTo: no object {target_name} to relate to (simulator)", ["referenceTo"])
        child = md.get("relationshipName")
        if not isinstance(child, str) or not child:
            raise _integrity("Must specify a relationshipName for a relationship field (simulator)",
                             ["relationshipName"])  # fmt: skip
        if not _NAME_RE.fullmatch(child) or child.endswith("_") or len(child) > MAX_NAME:
            raise _integrity(f"The Child Relationship Name field {access.API_NAME_RULE}", ["relationshipName"])
        taken = {n.lower() for (_child, ref), n in schema.child_names.items() if _parent_of(schema, _child, ref)
                 == target.name}  # fmt: skip
        if f"{child}__r".lower() in taken:
            raise _integrity(f"The Child Relationship Name {child} is already used on {target.name} (simulator)",
                             ["relationshipName"])  # fmt: skip
        own = f"{name[:-3]}__r"
        if not master:
            constraint = md.get("deleteConstraint") or "SetNull"
            if constraint not in ("SetNull", "Restrict", "Cascade"):
                raise _bad_enum("DeleteConstraint", constraint)
            return Field(name, "reference", label, length=18, reference_to=(target.name,), relationship_name=own,
                         cascade_delete=constraint == "Cascade"), f"{child}__r"  # fmt: skip
        if not obj.custom:
            raise _integrity("Master-Detail relationships can only be created on custom objects (simulator)", ["type"])
        if sum(f.master_detail for f in obj.fields.values()) >= 2:
            raise _integrity(f"{obj.name} already has two master-detail relationships (simulator)", ["type"])
        if has_rows:
            raise _integrity(f"You can't create a master-detail relationship on {obj.name}: it already has records "
                             "(simulator)", ["type"])  # fmt: skip
        return Field(
            name,
            "reference",
            label,
            length=18,
            nillable=False,
            required=True,
            updateable=_flag(md, "reparentableMasterDetail"),
            reference_to=(target.name,),
            relationship_name=own,
            cascade_delete=True,
            master_detail=True,
        ), f"{child}__r"

    return build


def _parent_of(schema: Schema, child: str, ref: str) -> str | None:
    obj = schema.objects.get(child)
    f = obj.fields.get(ref) if obj else None
    return f.reference_to[0] if f is not None and f.reference_to else None


_BUILDERS: dict[str, Callable[..., tuple[Field, str | None]]] = {
    "Text": _text,
    "LongTextArea": _long_text,
    "Checkbox": _checkbox,
    "Picklist": _picklist,
    "Lookup": _relationship(master=False),
    "MasterDetail": _relationship(master=True),
    **{kind: _simple(kind) for kind in _SIMPLE},
    **{kind: _number(kind) for kind in _NUMBERS},
}

"""The Salesforce schema the sync needs: checked with describe and the Tooling API, the missing part created.

Sources: Tooling API Developer Guide (``CustomField``, ``CustomObject``: ``FullName`` + ``Metadata``),
Metadata API field types (Checkbox ``defaultValue``, Text ``length``, LongTextArea ``visibleLines``,
Picklist ``valueSet``, MasterDetail ``referenceTo``/``relationshipName``), and the Object Reference
for ``PermissionSet``, ``FieldPermissions``, ``ObjectPermissions``, ``PermissionSetAssignment``.
Fields made through an API are hidden from every profile (crm-apis.md B6, "the FLS trap"): the sync's
permission set grants the integration user read/edit on each of them and is assigned to that user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.crm.fields import FieldMap
from shared.crm.salesforce_client import SalesforceClient, soql, soql_string
from shared.crm.schema import ApplyResult, Finding, SchemaItem, SchemaRefused, SchemaReport
from shared.http import ApiError
from shared.mapping.model import HELP_CODES

log = logging.getLogger("cosell.crm.salesforce.schema")

PERMISSION_SET = "Cosell_Sync"
# Field role -> (Metadata API type, length, label); describe reports them as the second name.
_OWN_FIELDS: dict[str, tuple[str, int | None, str]] = {
    "sync": ("Checkbox", None, "Sync with Partner Center"),
    "referral_id": ("Text", 100, "Referral Identifier"),
    "referral_link": ("Url", None, "Referral Link"),
    "help_needed": ("Picklist", None, "How can Microsoft help"),
    "visible": ("Checkbox", None, "Referral Visible"),
    "microsoft_crm_id": ("Text", 100, "Microsoft CRM Identifier"),
    "referral_program": ("Text", 100, "Referral Program"),
    "audit": ("LongTextArea", 32768, "Audit"),
}
# Field role -> label of the External ID, unique keys on standard objects: creates upsert on them, so two
# workers creating the same customer or contact at once make one row (shared.crm.matching keys: UUIDs).
_KEY_FIELDS: dict[str, str] = {"account": "Co-sell account key", "contact": "Co-sell contact key"}
KEY_LENGTH = 36
_DESCRIBE_TYPE = {
    "Checkbox": "boolean",
    "Text": "string",
    "Url": "url",
    "Picklist": "picklist",
    "LongTextArea": "textarea",
    "MasterDetail": "reference",
}
_STANDARD = {
    "opportunity": ("name", "deal_value", "close_date", "description", "stage"),
    "lead": ("company", "last_name", "email", "status", "description"),
    "account": ("name", "postal_code", "country"),
    "contact": ("first_name", "last_name", "email"),
}


class SalesforceSchema:
    def __init__(self, client: SalesforceClient, fields: FieldMap, *, user: Callable[[], str | None]) -> None:
        self._sf = client
        self._fields = fields
        self._user = user  # the integration user: known once a token was issued

    @property
    def _user_id(self) -> str | None:
        return self._user()

    @property
    def _referral_objects(self) -> set[str]:
        return {self._fields.column(record, "object") for record in ("opportunity", "lead")}

    # ------------------------------------------------------------------ what the sync needs
    def required(self) -> list[SchemaItem]:
        items: list[SchemaItem] = []
        solution = self._fields.tables["solution"]
        obj = solution["object"]
        items.append(SchemaItem(obj, obj, "table", purpose="Microsoft solutions of a deal"))
        for key in ("id", "type"):
            items.append(SchemaItem(obj, solution[key], "column", "Text", 100, purpose=f"solution {key}"))
        items.append(SchemaItem(obj, solution["parent"], "relationship", "MasterDetail", purpose="the solution's deal"))
        for record in ("opportunity", "lead"):
            sobject = self._fields.column(record, "object")
            for role, (kind, length, label) in _OWN_FIELDS.items():
                name = self._fields.get(record, role)
                if name:
                    options = HELP_CODES if kind == "Picklist" else ()
                    items.append(SchemaItem(sobject, name, "column", kind, length, options, purpose=label))
        for record, label in _KEY_FIELDS.items():
            name = self._fields.get(record, "key")
            if name:
                items.append(
                    SchemaItem(self._fields.column(record, "object"), name, "column", "Text", KEY_LENGTH, purpose=label)
                )
        for record, roles in _STANDARD.items():
            sobject = self._fields.column(record, "object")
            for role in roles:
                name = self._fields.get(record, role)
                if name:
                    items.append(SchemaItem(sobject, name, "column", own=False, purpose=role.replace("_", " ")))
        items.append(SchemaItem("PermissionSet", PERMISSION_SET, "access", purpose="the integration user's access"))
        return items

    # ------------------------------------------------------------------ check
    def check(self) -> SchemaReport:
        items = self.required()
        report = SchemaReport("salesforce")
        objects = {item.table for item in items if item.kind != "access"}
        visible = {obj: self._visible_fields(obj) for obj in objects}
        existing = self._existing_custom_fields()
        for item in items:
            report.findings.append(self._judge(item, visible, existing))
        return report

    def _judge(
        self, item: SchemaItem, visible: dict[str, dict[str, dict[str, Any]] | None], existing: set[str]
    ) -> Finding:
        if item.kind == "access":
            granted = self._permission_set_assigned()
            if not granted:
                return Finding(
                    item, "missing", f"The permission set {item.name} is not assigned to the integration user."
                )
            return Finding(item, "present")
        fields = visible.get(item.table)
        if item.kind == "table":
            if fields is None:
                return Finding(item, "missing", f"The object {item.name} does not exist.")
            return Finding(item, "present")
        if fields is None:
            return Finding(item, "missing", f"{item.name} cannot exist: its object {item.table} does not exist.")
        field = fields.get(item.name)
        if field is None:
            if f"{item.table}.{item.name}" in existing:
                return Finding(
                    item,
                    "missing",
                    f"{item.table}.{item.name} exists but the integration user cannot see it: grant it field access.",
                )
            return Finding(item, "missing", f"The field {item.name} on {item.table} does not exist.")
        expected = _DESCRIBE_TYPE.get(item.type)
        if expected and field.get("type") != expected:
            return Finding(
                item,
                "wrong",
                f"{item.name} on {item.table} is a {field.get('type')} field; the sync needs {item.type}.",
            )
        length = field.get("length")
        if item.length and isinstance(length, int) and length < item.length:
            return Finding(
                item, "wrong", f"{item.name} on {item.table} holds {length} characters; the sync needs {item.length}."
            )
        if self._is_key(item) and not (field.get("externalId") and field.get("unique")):
            return Finding(item, "wrong", f"{item.name} on {item.table} must be an External ID marked unique.")
        values = {str(v.get("value")) for v in field.get("picklistValues") or []}
        missing = [o for o in item.options if o not in values]
        if missing:
            return Finding(
                item, "wrong", f"The picklist {item.name} on {item.table} lacks the values {', '.join(missing)}."
            )
        return Finding(item, "present")

    def _is_key(self, item: SchemaItem) -> bool:
        """An upsert key: the referral identifier on Opportunity and Lead, the account and contact keys."""
        if item.name == self._fields.get("opportunity", "referral_id") and item.table in self._referral_objects:
            return True
        return any(
            item.name == self._fields.get(record, "key") and item.table == self._fields.get(record, "object")
            for record in _KEY_FIELDS
        )

    def _visible_fields(self, sobject: str) -> dict[str, dict[str, Any]] | None:
        described = self._sf.describe(sobject)
        return None if described is None else {str(f["name"]): f for f in described.get("fields", [])}

    def _existing_custom_fields(self) -> set[str]:
        """Every custom field the org has (the Tooling API sees past field-level security)."""
        objects = {
            row["Id"]: row["DeveloperName"]
            for row in self._sf.tooling_query(soql(["Id", "DeveloperName"], "CustomObject"))
        }
        found: set[str] = set()
        query = soql(["Id", "DeveloperName", "TableEnumOrId", "NamespacePrefix"], "CustomField")
        for row in self._sf.tooling_query(query):
            table = str(row.get("TableEnumOrId") or "")
            table = f"{objects[table]}__c" if table in objects else table
            # A package's field is <namespace>__<name>__c: the connector's Referral_Identifier__c in a
            # namespace is not the sync's.
            namespace = f"{row['NamespacePrefix']}__" if row.get("NamespacePrefix") else ""
            found.add(f"{table}.{namespace}{row['DeveloperName']}__c")
        return found

    def _permission_set(self) -> str | None:
        rows = list(self._sf.query(soql(["Id"], "PermissionSet", f"Name = {soql_string(PERMISSION_SET)}")))
        return str(rows[0]["Id"]) if rows else None

    def _permission_set_assigned(self) -> bool:
        permission_set = self._permission_set()
        if permission_set is None or not self._user_id:
            return False
        where = f"PermissionSetId = {soql_string(permission_set)} AND AssigneeId = {soql_string(self._user_id)}"
        return bool(list(self._sf.query(soql(["Id"], "PermissionSetAssignment", where))))

    # ------------------------------------------------------------------ apply
    def apply(self) -> ApplyResult:
        report = self.check()
        todo = [f.item for f in report.of("missing") if f.item.own]
        created: list[SchemaItem] = []
        existing = self._existing_custom_fields()
        try:
            for kind in ("table", "column", "relationship"):
                for item in (i for i in todo if i.kind == kind):
                    if item.kind != "table" and f"{item.table}.{item.name}" in existing:
                        continue  # exists, only not visible: the permission set below grants it
                    self._create(item)
                    created.append(item)
            if todo:
                self._grant([f.item for f in report.findings if f.item.own and f.item.kind in ("column",)])
                access = [i for i in todo if i.kind == "access"]
                created += access
        except ApiError as exc:
            if exc.status == 403 or exc.code.startswith("INSUFFICIENT_ACCESS"):
                raise SchemaRefused(exc.message or exc.code, created) from exc
            raise
        return ApplyResult(created, self.check())

    def _create(self, item: SchemaItem) -> None:
        if item.kind == "table":
            body = {
                "FullName": item.name,
                "Metadata": {
                    "label": "Microsoft Solution",
                    "pluralLabel": "Microsoft Solutions",
                    "nameField": {"type": "Text", "label": "Microsoft Solution Name"},
                    "deploymentStatus": "Deployed",
                    "sharingModel": "ControlledByParent",
                },
            }
            self._sf.tooling_create("CustomObject", body)
        else:
            body = {"FullName": f"{item.table}.{item.name}", "Metadata": _metadata(item, external=self._is_key(item))}
            self._sf.tooling_create("CustomField", body)
        log.info("Created %s %s on %s", item.kind, item.name, item.table)

    def _grant(self, fields: list[SchemaItem]) -> None:
        """The sync's permission set: read/edit on its fields, full access to its object, assigned to the user."""
        permission_set = self._permission_set() or self._sf.create(
            "PermissionSet", {"Name": PERMISSION_SET, "Label": "Co-sell sync"}
        )
        granted = {
            str(row.get("Field"))
            for row in self._sf.query(soql(["Field"], "FieldPermissions", f"ParentId = {soql_string(permission_set)}"))
        }
        for item in fields:
            name = f"{item.table}.{item.name}"
            if name in granted:
                continue
            self._sf.create(
                "FieldPermissions",
                {
                    "ParentId": permission_set,
                    "SobjectType": item.table,
                    "Field": name,
                    "PermissionsRead": True,
                    "PermissionsEdit": True,
                },
            )
        solution = self._fields.tables["solution"]["object"]
        where = f"ParentId = {soql_string(permission_set)} AND SobjectType = {soql_string(solution)}"
        if not list(self._sf.query(soql(["Id"], "ObjectPermissions", where))):
            self._sf.create(
                "ObjectPermissions",
                {
                    "ParentId": permission_set,
                    "SobjectType": solution,
                    "PermissionsRead": True,
                    "PermissionsCreate": True,
                    "PermissionsEdit": True,
                    "PermissionsDelete": True,
                },
            )
        if self._user_id and not self._permission_set_assigned():
            self._sf.create("PermissionSetAssignment", {"AssigneeId": self._user_id, "PermissionSetId": permission_set})


def _metadata(item: SchemaItem, *, external: bool = False) -> dict[str, Any]:
    label = item.purpose or item.name
    if item.type == "Checkbox":
        return {"type": "Checkbox", "label": label, "defaultValue": "false"}
    if item.type == "Text":
        # An upsert key (referral identifier, account and contact keys): an External ID, unique (case-insensitive).
        extra = {"externalId": True, "unique": True, "caseSensitive": False} if external else {}
        return {"type": "Text", "label": label, "length": item.length or 100, **extra}
    if item.type == "Url":
        return {"type": "Url", "label": label}
    if item.type == "LongTextArea":
        return {"type": "LongTextArea", "label": label, "length": item.length or 32768, "visibleLines": 10}
    if item.type == "Picklist":
        values = [{"fullName": v, "label": v, "default": False} for v in item.options]
        return {
            "type": "Picklist",
            "label": label,
            "valueSet": {"restricted": True, "valueSetDefinition": {"sorted": False, "value": values}},
        }
    if item.type == "MasterDetail":
        return {
            "type": "MasterDetail",
            "label": "Opportunity",
            "referenceTo": "Opportunity",
            "relationshipName": "Microsoft_Solutions",
            "relationshipLabel": "Microsoft Solutions",
            "relationshipOrder": 0,
            "reparentableMasterDetail": False,
            "writeRequiresMasterRead": False,
        }
    raise ValueError(f"no field definition for a {item.type} field")

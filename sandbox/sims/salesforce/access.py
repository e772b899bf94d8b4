"""Who sees what: field-level security, object permissions and the customizer rights of the API user.

**The FLS trap** (crm-apis.md B6). A field created through the Tooling or Metadata API is hidden from
every profile; the API user "gets ``No such column 'X__c'`` or doesn't see the field in ``describe``, even
though the field exists" (simple-salesforce #621/#540/#681, restforce #353, ForceCLI/force #163). "To grant
a user access to a field, associate a FieldPermissions record with a PermissionSet that's assigned to a
user. FieldPermissions records are only supported in PermissionSet, not in Profile." (Object Reference,
FieldPermissions); the same sentence for objects under ObjectPermissions. So every API call sees the org
through a *view* (:func:`view`) built from the PermissionSetAssignment rows of the caller:

- a custom field that FLS governs (:func:`controlled`) is in the view only if an assigned permission set
  has a FieldPermissions row with ``PermissionsRead`` on it, and is createable/updateable only with
  ``PermissionsEdit``. Absent from the view means absent from ``describe``, ``No such column`` in SOQL
  (INVALID_FIELD), ``No such column … on sobject of type`` on writes; read-only means
  INVALID_FIELD_FOR_INSERT_UPDATE ("… verify that it is read/write for your profile or permission set").
- a custom object is in the view only with ``PermissionsRead`` from an ObjectPermissions row (INVALID_TYPE in
  SOQL, 404 on its resources); insert/update/delete need Create/Edit/Delete.
- fields FLS does not govern are always there: standard fields (the profile's business, not simulated),
  system and owner fields, required fields and master-detail fields. The last two are not in the
  FieldPermissions ``Field`` picklist (a "Restricted picklist" in the Object Reference), so a row naming
  one is refused as a bad value of it. That required and master-detail fields carry no field-level
  security (Setup shows them as read/edit for everyone who can see the object) is the simulator's
  reading of Salesforce Help; it is flagged in the report as unverified against a live org.

Rules on the setup objects (Object Reference, each object's field descriptions):

- FieldPermissions: ``Field`` "must be prefixed with the SobjectType"; ``PermissionsEdit`` "Requires
  PermissionsRead for the same field to be true"; "A FieldPermissions record must have at minimum
  PermissionsRead set to true, or it will be deleted." (so a row saved with both false is deleted after
  the save, which still answers success).
- ObjectPermissions: Create and Edit require Read, Delete requires Read and Edit, View All requires Read,
  Modify All requires Read, Edit, Delete and View All. A missing dependency is refused with the
  service's wording "Permission Create X depends on permission(s): Read X" and FIELD_INTEGRITY_EXCEPTION
  (the wording Salesforce uses for permission dependencies in deploy and DML errors, as quoted in
  public code that parses it; the code is the one the same sources report).
- PermissionSet: ``Name`` follows the API-name rule quoted in ``setup.py`` and is unique.
- PermissionSetAssignment: one per user and permission set; a second is DUPLICATE_VALUE "Duplicate
  PermissionSetAssignment. Assignee: …, Permission Set: …" (the message ``sf org assign permset``
  surfaces, as handled in many public scripts).
- One FieldPermissions row per permission set and field, one ObjectPermissions row per permission set and
  object: a second is DUPLICATE_VALUE "duplicate value found: <unknown> duplicates value on record with
  id: <unknown>" (the masked form public reports quote for duplicates of setup rows; which form the
  service uses for these two objects is not documented).

**Rights.** Creating metadata needs "Customize Application" (and, for the Metadata API, "use of the
Metadata API requires a user with the ModifyAllData or ModifyMetadata permissions", forcedotcom/cli#3048);
managing permission sets needs "Manage Profiles and Permission Sets" / "Assign Permission Sets" (Object
Reference, Special Access Rules). :attr:`Access.customizer` False is an API user without them: Tooling
writes and writes to the setup objects are refused, reads (SOQL on the setup objects needs only "View
Setup and Configuration") and data calls are not. A refused setup-object write is 403
INSUFFICIENT_ACCESS_OR_READONLY "insufficient access rights on object id": the code and message are the
ones quoted for missing access; 403 is errorcodes.html's status for "appropriate permissions" (whether the
service answers 400 or 403 for this DML error is not documented).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sandbox.sims.salesforce.errors import SalesforceError
from sandbox.sims.salesforce.schema import Field, PicklistValue, Schema, SObject
from sandbox.sims.salesforce.setup import (
    ASSIGNMENT,
    FIELD_PERMISSIONS,
    OBJECT_FLAGS,
    OBJECT_PERMISSIONS,
    PERMISSION_SET,
    SETUP_OBJECTS,
)
from sandbox.sims.salesforce.store import Store
from sandbox.sims.salesforce.wire import Record

# Fields every object has that no permission set governs.
_UNGOVERNED = frozenset(
    {"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp",
     "OwnerId", "CurrencyIsoCode"}
)  # fmt: skip
# ObjectPermissions dependencies (Object Reference, each flag's "Requires …").
_OBJECT_NEEDS = {
    "PermissionsCreate": ("PermissionsRead",),
    "PermissionsEdit": ("PermissionsRead",),
    "PermissionsDelete": ("PermissionsRead", "PermissionsEdit"),
    "PermissionsViewAllRecords": ("PermissionsRead",),
    "PermissionsModifyAllRecords": (
        "PermissionsRead", "PermissionsEdit", "PermissionsDelete", "PermissionsViewAllRecords"),
}  # fmt: skip
_VERBS = {
    "PermissionsRead": "Read",
    "PermissionsCreate": "Create",
    "PermissionsEdit": "Edit",
    "PermissionsDelete": "Delete",
    "PermissionsViewAllRecords": "View All",
    "PermissionsModifyAllRecords": "Modify All",
}
# "can contain only underscores and alphanumeric characters … begin with a letter, not include spaces, not end
# with an underscore, and not contain two consecutive underscores" (PermissionSet.Name, Object Reference).
API_NAME_RULE = (
    "can only contain underscores and alphanumeric characters. It must be unique, begin with a letter, not "
    "include spaces, not end with an underscore, and not contain two consecutive underscores."
)
_API_NAME_RE = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*")


def valid_api_name(name: str) -> bool:
    return bool(_API_NAME_RE.fullmatch(name)) and not name.endswith("_")


def data_object(obj: SObject) -> bool:
    """Objects whose records an app works with (not the setup objects, not User)."""
    return obj.name not in SETUP_OBJECTS and obj.name != "User"


def permissionable(obj: SObject, f: Field) -> bool:
    """Fields a FieldPermissions row can name: not system, owner or name fields, not required, not master-detail."""
    return (
        data_object(obj) and f.name not in _UNGOVERNED and not f.required and not f.master_detail and not f.name_field
    )


def controlled(obj: SObject, f: Field) -> bool:
    """Custom fields whose visibility FieldPermissions decides (standard fields are the profile's business)."""
    return f.custom and permissionable(obj, f)


def settle(schema: Schema) -> None:
    """After the schema changed: the setup picklists name its objects and fields again; caches are dropped."""
    objects = [o for o in schema.objects.values() if data_object(o)]
    object_values = tuple(PicklistValue(o.name, o.label) for o in objects)
    field_values = tuple(
        PicklistValue(f"{o.name}.{f.name}", f.label) for o in objects for f in o.fields.values() if permissionable(o, f)
    )
    for name, picklists in (
        (FIELD_PERMISSIONS, {"SobjectType": object_values, "Field": field_values}),
        (OBJECT_PERMISSIONS, {"SobjectType": object_values}),
    ):
        obj = schema.objects.get(name)
        if obj is None:
            continue
        for field_name, values in picklists.items():
            obj.fields[field_name] = replace(obj.fields[field_name], picklist=values)
    schema.version += 1
    schema.refresh()


@dataclass(frozen=True)
class Grants:
    """What a user's assigned permission sets grant: field -> editable, object -> permission flags."""

    fields: frozenset[tuple[str, str, bool]]
    objects: frozenset[tuple[str, frozenset[str]]]

    def field(self, sobject: str, name: str) -> bool | None:
        """None: no read access; False: read only; True: read and edit."""
        found = None
        for obj, field_name, edit in self.fields:
            if obj == sobject and field_name == name:
                found = found or edit
        return found

    def object(self, sobject: str) -> frozenset[str]:
        flags: set[str] = set()
        for obj, granted in self.objects:
            if obj == sobject:
                flags |= granted
        return frozenset(flags)


def grants_for(store: Store, user_id: str) -> Grants:
    sets = {r["PermissionSetId"] for r in store.rows[ASSIGNMENT].values() if r["AssigneeId"] == user_id}
    fields = set()
    for row in store.rows[FIELD_PERMISSIONS].values():
        if row["ParentId"] in sets and row["PermissionsRead"]:
            sobject, _, name = str(row["Field"]).partition(".")
            fields.add((sobject, name, bool(row["PermissionsEdit"])))
    objects = set()
    for row in store.rows[OBJECT_PERMISSIONS].values():
        if row["ParentId"] in sets:
            objects.add((row["SobjectType"], frozenset(flag for flag in OBJECT_FLAGS if row[flag])))
    return Grants(frozenset(fields), frozenset(objects))


def view(schema: Schema, grants: Grants) -> Schema:
    """The org as a user with ``grants`` sees it (objects and fields it may not read left out)."""
    readable = {
        name for name, obj in schema.objects.items() if not obj.custom or "PermissionsRead" in grants.object(name)
    }
    objects: dict[str, SObject] = {}
    for name in readable:
        obj = schema.objects[name]
        fields: dict[str, Field] = {}
        for field_name, f in obj.fields.items():
            if controlled(obj, f):
                edit = grants.field(name, field_name)
                if edit is None:
                    continue
                if not edit and (f.createable or f.updateable):
                    f = replace(f, createable=False, updateable=False)
            if f.is_reference and not any(t in readable for t in f.reference_to):
                continue
            fields[field_name] = f
        flags = grants.object(name) if obj.custom else frozenset(OBJECT_FLAGS)
        objects[name] = replace(
            obj,
            fields=fields,
            children=[],
            createable=obj.createable and "PermissionsCreate" in flags,
            updateable=obj.updateable and "PermissionsEdit" in flags,
            deletable=obj.deletable and "PermissionsDelete" in flags,
            base=obj,
        )
    seen = Schema({name: objects[name] for name in schema.objects if name in objects}, dict(schema.child_names))
    seen.version = schema.version
    seen.link_children()
    return seen


# ----------------------------------------------------------------------------- errors


def insufficient_access() -> SalesforceError:
    # "insufficient access rights on object id" is the message INSUFFICIENT_ACCESS_OR_READONLY carries in the
    # answers quoted publicly; 403 is the status errorcodes.html gives for "appropriate permissions".
    return SalesforceError(403, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id", [])


def _integrity(message: str, fields: list[str]) -> SalesforceError:
    return SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", message, fields)


def _masked_duplicate() -> SalesforceError:
    return SalesforceError(
        400, "DUPLICATE_VALUE", "duplicate value found: <unknown> duplicates value on record with id: <unknown>", []
    )


class Access:
    """The caller's view of the org (cached per user and permission state) and the setup-object rules."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.customizer = True
        self._views: dict[tuple[Any, ...], Schema] = {}

    def reset(self) -> None:
        self.customizer = True
        self._views.clear()

    def view(self, user_id: str) -> Schema:
        with self.store.lock:
            grants = grants_for(self.store, user_id)
            key = (self.store.schema.version, id(self.store.schema.objects), user_id, grants)
            seen = self._views.get(key)
            if seen is None:
                if len(self._views) > 64:
                    self._views.clear()
                seen = self._views[key] = view(self.store.schema, grants)
            return seen

    # ----- hooks the writer calls -----
    def guard(self, obj: SObject, operation: str, raw: bool) -> None:
        """Writes to the setup objects need the rights an admin has (see the module docstring)."""
        if not raw and not self.customizer and obj.name in SETUP_OBJECTS:
            raise insufficient_access()

    def rules(self) -> dict[str, Callable[[SObject, Record, Record, bool], None]]:
        return {
            PERMISSION_SET: self._permission_set,
            FIELD_PERMISSIONS: self._field_permissions,
            OBJECT_PERMISSIONS: self._object_permissions,
            ASSIGNMENT: self._assignment,
        }

    def after_commit(self) -> dict[str, Callable[[SObject, Record], None]]:
        return {FIELD_PERMISSIONS: self._drop_unreadable}

    def _others(self, obj: SObject, row: Record) -> list[Record]:
        return [r for r in self.store.rows[obj.name].values() if r["Id"] != row["Id"]]

    def _permission_set(self, obj: SObject, row: Record, merged: Record, creating: bool) -> None:
        name = merged.get("Name")
        if name is not None and not valid_api_name(str(name)):
            raise _integrity(f"The Permission Set Name field {API_NAME_RULE}", ["Name"])

    def _field_permissions(self, obj: SObject, row: Record, merged: Record, creating: bool) -> None:
        sobject, field = str(merged["SobjectType"]), str(merged["Field"])
        if field.partition(".")[0] != sobject:
            raise _integrity(f"Field {field} must be prefixed with its SobjectType {sobject}", ["Field"])
        if merged.get("PermissionsEdit") and not merged.get("PermissionsRead"):
            raise _integrity(f"Permission Edit {field} depends on permission(s): Read {field}", ["PermissionsEdit"])
        if any(r["ParentId"] == merged["ParentId"] and r["Field"] == field for r in self._others(obj, row)):
            raise _masked_duplicate()

    def _object_permissions(self, obj: SObject, row: Record, merged: Record, creating: bool) -> None:
        sobject = str(merged["SobjectType"])
        for flag, needs in _OBJECT_NEEDS.items():
            if merged.get(flag) and not all(merged.get(n) for n in needs):
                wanted = ", ".join(f"{_VERBS[n]} {sobject}" for n in needs)
                raise _integrity(f"Permission {_VERBS[flag]} {sobject} depends on permission(s): {wanted}", [flag])
        if any(r["ParentId"] == merged["ParentId"] and r["SobjectType"] == sobject for r in self._others(obj, row)):
            raise _masked_duplicate()

    def _assignment(self, obj: SObject, row: Record, merged: Record, creating: bool) -> None:
        user, permission_set = merged["AssigneeId"], merged["PermissionSetId"]
        for other in self._others(obj, row):
            if other["AssigneeId"] == user and other["PermissionSetId"] == permission_set:
                raise SalesforceError(
                    400,
                    "DUPLICATE_VALUE",
                    f"Duplicate PermissionSetAssignment. Assignee: {user}, Permission Set: {permission_set}",
                    [],
                )

    def _drop_unreadable(self, obj: SObject, row: Record) -> None:
        # "A FieldPermissions record must have at minimum PermissionsRead set to true, or it will be deleted."
        if not row.get("PermissionsRead") and not row.get("PermissionsEdit"):
            self.store.remove(self.store.schema.objects[obj.name], row)

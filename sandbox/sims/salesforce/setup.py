"""The setup objects an app uses to grant its API user access: PermissionSet, FieldPermissions,
ObjectPermissions and PermissionSetAssignment, as ordinary sObjects of every org (bare or provisioned).

Fields, types and properties are the Object Reference's (https://developer.salesforce.com/docs/atlas.en-us.
object_reference.meta/object_reference/sforce_api_objects_<object>.htm) and the Field Reference's lengths:

- PermissionSet: ``Name`` ("The unique name of the object in the API. This name can contain only underscores
  and alphanumeric characters, and must be unique in your organization. It must begin with a letter, not
  include spaces, not end with an underscore, and not contain two consecutive underscores. … Limit: 80
  characters."), ``Label`` (80), ``Description`` (255), ``IsOwnedByProfile`` and ``IsCustom`` (defaulted on
  create, not createable), ``NamespacePrefix``.
- FieldPermissions: ``ParentId`` (Create, Filter: not updateable; relationship ``Parent``), ``SobjectType``
  and ``Field`` (restricted picklists, Create only; ``Field`` "must be prefixed with the SobjectType"),
  ``PermissionsRead`` / ``PermissionsEdit`` (defaulted on create, updateable).
- ObjectPermissions: ``ParentId``, ``SobjectType``, ``PermissionsRead/Create/Edit/Delete/ViewAllRecords/
  ModifyAllRecords``.
- PermissionSetAssignment: ``AssigneeId`` (relationship ``Assignee``, refers to User) and
  ``PermissionSetId`` (relationship ``PermissionSet``), both Create, Filter: "To update an assignment,
  delete an existing assignment and insert a new one."

Child relationships: ``PermissionSet.FieldPerms``, ``.ObjectPerms``, ``.Assignments`` and
``User.PermissionSetAssignments``; deleting a permission set deletes its permissions and assignments.
Key prefixes are the service's: 0PS, 01k, 110, 0Pa. The picklist values of ``SobjectType`` and ``Field``
depend on the org's schema; ``access.settle`` fills them in whenever the schema changes.
"""

from __future__ import annotations

from sandbox.sims.salesforce.objects import _REF, area, checkbox, make, read_only, reference, required, text
from sandbox.sims.salesforce.schema import Field, SObject

PERMISSION_SET = "PermissionSet"
FIELD_PERMISSIONS = "FieldPermissions"
OBJECT_PERMISSIONS = "ObjectPermissions"
ASSIGNMENT = "PermissionSetAssignment"
SETUP_OBJECTS = frozenset({PERMISSION_SET, FIELD_PERMISSIONS, OBJECT_PERMISSIONS, ASSIGNMENT})

# ObjectPermissions flags, in the order the Object Reference lists their dependencies.
OBJECT_FLAGS = (
    "PermissionsRead",
    "PermissionsCreate",
    "PermissionsEdit",
    "PermissionsDelete",
    "PermissionsViewAllRecords",
    "PermissionsModifyAllRecords",
)

CHILD_NAMES = {
    (FIELD_PERMISSIONS, "ParentId"): "FieldPerms",
    (OBJECT_PERMISSIONS, "ParentId"): "ObjectPerms",
    (ASSIGNMENT, "PermissionSetId"): "Assignments",
    (ASSIGNMENT, "AssigneeId"): "PermissionSetAssignments",
}


def _restricted(name: str, label: str) -> Field:
    # Values are filled in from the schema (access.settle); Create only.
    return required(Field(name, "picklist", label, length=255, restricted=True, updateable=False))


def _parent() -> Field:
    return required(reference("ParentId", "Parent ID", PERMISSION_SET, "Parent", updateable=False, cascade_delete=True))


def permission_set() -> SObject:
    return make(
        PERMISSION_SET,
        "Permission Set",
        "Permission Sets",
        "0PS",
        [
            required(text("Name", "Permission Set Name", 80, unique=True, name_field=True)),
            required(text("Label", "Permission Set Label", 80)),
            area("Description", "Description", 255),
            read_only(checkbox("IsOwnedByProfile", "Is Owned By Profile")),
            read_only(checkbox("IsCustom", "Custom", default=True)),
            read_only(text("NamespacePrefix", "Namespace Prefix", 15)),
        ],
        _REF + "sforce_api_objects_permissionset.htm",
    )


def field_permissions() -> SObject:
    return make(
        FIELD_PERMISSIONS,
        "Field Permissions",
        "Field Permissions",
        "01k",
        [
            _parent(),
            _restricted("SobjectType", "SObject Type Name"),
            _restricted("Field", "Field Name"),
            checkbox("PermissionsRead", "Read Field"),
            checkbox("PermissionsEdit", "Edit Field"),
        ],
        _REF + "sforce_api_objects_fieldpermissions.htm",
    )


def object_permissions() -> SObject:
    labels = ("Read Records", "Create Records", "Edit Records", "Delete Records", "Read All Records",
              "Edit All Records")  # fmt: skip
    return make(
        OBJECT_PERMISSIONS,
        "Object Permissions",
        "Object Permissions",
        "110",
        [
            _parent(),
            _restricted("SobjectType", "SObject Type Name"),
            *(checkbox(flag, label) for flag, label in zip(OBJECT_FLAGS, labels, strict=True)),
        ],
        _REF + "sforce_api_objects_objectpermissions.htm",
    )


def permission_set_assignment() -> SObject:
    return make(
        ASSIGNMENT,
        "Permission Set Assignment",
        "Permission Set Assignments",
        "0Pa",
        [
            required(reference("AssigneeId", "Assignee ID", "User", "Assignee", updateable=False)),
            required(
                reference(
                    "PermissionSetId", "Permission Set ID", PERMISSION_SET, "PermissionSet", updateable=False,
                    cascade_delete=True,
                )
            ),
        ],
        _REF + "sforce_api_objects_permissionsetassignment.htm",
    )  # fmt: skip


SETUP = {
    PERMISSION_SET: permission_set,
    FIELD_PERMISSIONS: field_permissions,
    OBJECT_PERMISSIONS: object_permissions,
    ASSIGNMENT: permission_set_assignment,
}

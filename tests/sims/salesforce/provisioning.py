"""Provisioning an org over HTTP the way an app must: Tooling creates, then a permission set that grants them.

:func:`provision` sends cosell.py's bodies (what ``schema="provisioned"`` is made of) and then grants every
created field that field-level security governs (not the master-detail field: required and master-detail
fields have no FieldPermissions) and full access to the custom object, assigned to the API user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from sandbox.sims.salesforce import cosell
from tests.sims.salesforce.support import create

OBJECT_FLAGS = ("PermissionsRead", "PermissionsCreate", "PermissionsEdit", "PermissionsDelete")


def tooling(api: httpx.Client, kind: str, body: dict[str, Any]) -> str:
    response = api.post(f"/tooling/sobjects/{kind}", json=body)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result == {"id": result["id"], "success": True, "errors": [], "warnings": [], "infos": []}
    return str(result["id"])


def grant(
    api: httpx.Client,
    user_id: str,
    *,
    fields: Sequence[str] = (),
    objects: Sequence[str] = (),
    name: str = "Cosell_Sync_Integration",
    label: str = "Co-sell sync integration",
    edit: bool = True,
) -> str:
    """A permission set with read (and edit) on ``fields`` and full access to ``objects``, assigned to the user."""
    permission_set = create(api, "PermissionSet", Name=name, Label=label)
    for full_name in fields:
        body = {"SobjectType": full_name.partition(".")[0], "Field": full_name, "PermissionsRead": True}
        create(api, "FieldPermissions", ParentId=permission_set, PermissionsEdit=edit, **body)
    for sobject in objects:
        create(
            api, "ObjectPermissions", ParentId=permission_set, SobjectType=sobject, **dict.fromkeys(OBJECT_FLAGS, True)
        )
    create(api, "PermissionSetAssignment", AssigneeId=user_id, PermissionSetId=permission_set)
    return permission_set


def governed(body: dict[str, Any]) -> bool:
    """Whether FLS governs a field created with ``body`` (required and master-detail fields are always visible)."""
    metadata = body["Metadata"]
    return metadata["type"] != "MasterDetail" and not metadata.get("required")


def provision(api: httpx.Client, user_id: str) -> None:
    for body in cosell.OBJECTS:
        tooling(api, "CustomObject", body)
    for body in cosell.FIELDS:
        tooling(api, "CustomField", body)
    grant(
        api,
        user_id,
        fields=[body["FullName"] for body in cosell.FIELDS if governed(body)],
        objects=[body["FullName"] for body in cosell.OBJECTS],
    )

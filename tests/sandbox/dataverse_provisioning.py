"""Metadata create bodies built from schema data, and the provisioning of a bare org over HTTP.

:func:`provision` creates, through the metadata Web API alone, exactly what ``cosell.py`` gives a
``provisioned`` org: the publisher and solution, the ``cosell_solution`` table, the referral columns
on opportunity and lead, the lookup with its relationship, the alternate keys. The bodies follow the
documented shapes (``powerapps-docs/developer/data-platform/webapi/create-update-*.md``).
"""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.sims.dataverse import cosell
from sandbox.sims.dataverse.schema import AlternateKey, Column, Relationship, Table

NS = "Microsoft.Dynamics.CRM"
SOLUTION_HEADER = {"MSCRM.SolutionUniqueName": cosell.SOLUTION_RECORD["uniquename"]}
_TYPES = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
}


def label(text: str) -> dict[str, Any]:
    return {
        "@odata.type": f"{NS}.Label",
        "LocalizedLabels": [{"@odata.type": f"{NS}.LocalizedLabel", "Label": text, "LanguageCode": 1033}],
    }


def required_level(value: str = "None") -> dict[str, Any]:
    return {"Value": value, "CanBeChanged": True, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}


def attribute_body(column: Column, *, primary_name: bool = False) -> dict[str, Any]:
    """The POST …/Attributes body for a column (or a table's ``Attributes`` item)."""
    type_name = _TYPES[column.type]
    body: dict[str, Any] = {
        "@odata.type": f"{NS}.{type_name}",
        "AttributeType": column.type,
        "AttributeTypeName": {"Value": f"{column.type}Type"},
        "SchemaName": column.schema_name,
        "DisplayName": label(column.display_name),
        "RequiredLevel": required_level(column.required),
    }
    if column.type == "String":
        body |= {"MaxLength": column.max_length, "FormatName": {"Value": column.format or "Text"}}
    elif column.type == "Memo":
        body |= {"MaxLength": column.max_length, "Format": column.format or "TextArea"}
    elif column.type == "Boolean":
        labels = dict(column.options) or {1: "Yes", 0: "No"}
        body |= {
            "DefaultValue": bool(column.default),
            "OptionSet": {
                "TrueOption": {"Value": 1, "Label": label(labels[1])},
                "FalseOption": {"Value": 0, "Label": label(labels[0])},
                "OptionSetType": "Boolean",
            },
        }
    elif column.type == "Picklist":
        body["OptionSet"] = {
            "@odata.type": f"{NS}.OptionSetMetadata",
            "IsGlobal": False,
            "OptionSetType": "Picklist",
            "Options": [{"Value": value, "Label": label(text)} for value, text in column.options],
        }
    elif column.type == "Money":
        body["PrecisionSource"] = 2
    if primary_name:
        body["IsPrimaryName"] = True
    return body


def entity_body(table: Table) -> dict[str, Any]:
    """The POST EntityDefinitions body: the table with its primary name column."""
    primary = next(c for c in table.columns if c.logical == table.primary_name)
    return {
        "@odata.type": f"{NS}.EntityMetadata",
        "SchemaName": table.schema_name,
        "DisplayName": label(table.display_name),
        "DisplayCollectionName": label(table.display_collection_name),
        "Description": label(f"{table.display_name} (created by the tests)"),
        "OwnershipType": table.ownership,
        "IsActivity": False,
        "HasActivities": table.has_activities,
        "HasNotes": table.has_notes,
        "Attributes": [attribute_body(primary, primary_name=True)],
    }


def relationship_body(referencing: str, relationship: Relationship, lookup: Column) -> dict[str, Any]:
    """The POST RelationshipDefinitions body: a one-to-many relationship with its lookup deep-inserted."""
    return {
        "@odata.type": f"{NS}.OneToManyRelationshipMetadata",
        "SchemaName": relationship.schema_name,
        "ReferencedEntity": relationship.referenced_entity,
        "ReferencingEntity": referencing,
        "CascadeConfiguration": {
            "Assign": "NoCascade",
            "Delete": "RemoveLink",
            "Merge": "NoCascade",
            "Reparent": "NoCascade",
            "Share": "NoCascade",
            "Unshare": "NoCascade",
        },
        "AssociatedMenuConfiguration": {"Behavior": "UseCollectionName", "Group": "Details", "Order": 10000},
        "Lookup": {
            "@odata.type": f"{NS}.LookupAttributeMetadata",
            "AttributeType": "Lookup",
            "AttributeTypeName": {"Value": "LookupType"},
            "SchemaName": lookup.schema_name,
            "DisplayName": label(lookup.display_name),
            "RequiredLevel": required_level(lookup.required),
        },
    }


def key_body(key: AlternateKey) -> dict[str, Any]:
    return {
        "@odata.type": f"{NS}.EntityKeyMetadata",
        "SchemaName": key.schema_name,
        "DisplayName": label(key.display_name),
        "KeyAttributes": list(key.attributes),
    }


def create_publisher(client: httpx.Client) -> None:
    """The sync's publisher and solution: ordinary records (POST publishers, POST solutions)."""
    created = client.post("/publishers", json=cosell.PUBLISHER, headers={"Prefer": "return=representation"})
    assert created.status_code == 201, created.text
    publisher = created.json()["publisherid"]
    solution = client.post(
        "/solutions", json={**cosell.SOLUTION_RECORD, "publisherid@odata.bind": f"/publishers({publisher})"}
    )
    assert solution.status_code == 204, solution.text


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> None:
    response = client.post(path, json=body, headers=SOLUTION_HEADER)
    assert response.status_code == 204, f"{path}: {response.text}"
    assert response.headers["OData-EntityId"]


def provision(client: httpx.Client, control_url: str) -> None:
    """Give a bare org, over HTTP, what ``cosell.PROVISIONED`` gives a provisioned one."""
    extension = cosell.PROVISIONED
    create_publisher(client)
    relationships: list[tuple[str, Relationship, Column]] = []
    for table in extension.tables:
        _post(client, "/EntityDefinitions", entity_body(table))
        lookups = {r.referencing_attribute: r for r in table.relationships if r.custom}
        for column in table.columns:
            if not column.custom or column.logical == table.primary_name:
                continue
            if column.logical in lookups:
                relationships.append((table.logical, lookups[column.logical], column))
            else:
                _post(client, f"/EntityDefinitions(LogicalName='{table.logical}')/Attributes", attribute_body(column))
    for logical, columns in extension.columns.items():
        for column in columns:
            _post(client, f"/EntityDefinitions(LogicalName='{logical}')/Attributes", attribute_body(column))
    for referencing, relationship, lookup in relationships:
        _post(client, "/RelationshipDefinitions", relationship_body(referencing, relationship, lookup))
    for logical, keys in extension.keys.items():
        for key in keys:
            _post(client, f"/EntityDefinitions(LogicalName='{logical}')/Keys", key_body(key))
    entities = "".join(f"<entity>{name}</entity>" for name in ("opportunity", "lead", "cosell_solution"))
    published = client.post(
        "/PublishXml", json={"ParameterXml": f"<importexportxml><entities>{entities}</entities></importexportxml>"}
    )
    assert published.status_code == 204, published.text
    built = client.post(f"{control_url}/_sim/key-index", json={"complete": True})
    assert built.status_code == 200, built.text
    assert built.json()["keys"] == []  # every key Active

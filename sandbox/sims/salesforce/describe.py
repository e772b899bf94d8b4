"""Metadata, read-only: ``GET /sobjects/`` (global describe), ``GET /sobjects/{Object}`` (basic information)
and ``GET /sobjects/{Object}/describe`` (fields and child relationships).

Shapes follow the REST API Developer Guide ("Describe Global", "sObject Basic Information", "sObject
Describe") and the DescribeSObjectResult / Field / ChildRelationship / PicklistEntry properties of the
SOAP API Developer Guide (describeSObjects()): a field carries ``name``, ``label``, ``type``, ``length``,
``nillable``, ``createable``, ``updateable``, ``unique``, ``externalId``, ``idLookup``, ``picklistValues``
(``active``, ``defaultValue``, ``label``, ``validFor``, ``value``), ``restrictedPicklist``, ``referenceTo``,
``relationshipName``, ``cascadeDelete``, ``custom``, ``calculated``, ``defaultedOnCreate``, ``filterable``,
``sortable``, ``soapType``; a child relationship ``childSObject``, ``field``, ``relationshipName``,
``cascadeDelete``. Tests and the app's schema check read ``externalId``, ``unique`` and ``length`` here.
"""

from __future__ import annotations

from typing import Any

from sandbox.sims.salesforce.schema import SOAP_TYPES, Field, Schema, SObject


def urls(obj: SObject, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def summary(obj: SObject, version: str) -> dict[str, Any]:
    """One entry of the global describe's ``sobjects`` list."""
    return {
        "activateable": False,
        "createable": obj.createable,
        "custom": obj.custom,
        "customSetting": False,
        "deletable": obj.deletable,
        "deprecatedAndHidden": False,
        "feedEnabled": not obj.custom,
        "hasSubtypes": False,
        "isSubtype": False,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": True,
        "mergeable": obj.name in ("Account", "Contact", "Lead"),
        "mruEnabled": True,
        "name": obj.name,
        "queryable": True,
        "replicateable": True,
        "retrieveable": True,
        "searchable": True,
        "triggerable": True,
        "undeletable": obj.deletable,
        "updateable": obj.updateable,
        "urls": urls(obj, version),
    }


def global_describe(schema: Schema, version: str) -> dict[str, Any]:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [summary(obj, version) for obj in schema.objects.values()],
    }


def field_describe(f: Field) -> dict[str, Any]:
    text_like = f.type in ("string", "textarea", "email", "phone", "url", "picklist")
    return {
        "aggregatable": not f.long_text,
        "autoNumber": False,
        "byteLength": f.length * 3 if text_like or f.type in ("id", "reference") else 0,
        "calculated": f.calculated,
        "caseSensitive": f.case_sensitive,
        "cascadeDelete": f.cascade_delete,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": f.default if f.type == "boolean" else None,
        "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": f.name.endswith("StateCode"),
        "digits": f.precision if f.type == "int" else 0,
        "externalId": f.external_id,
        "extraTypeInfo": "plaintextarea" if f.type == "textarea" else None,
        "filterable": f.filterable,
        "groupable": f.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "htmlFormatted": False,
        "idLookup": f.id_lookup or f.external_id,
        "label": f.label,
        "length": f.length if text_like else (18 if f.type in ("id", "reference") else 0),
        "name": f.name,
        "nameField": f.name_field,
        "nillable": f.nillable,
        "picklistValues": [
            {"active": True, "defaultValue": p.default, "label": p.label or p.value, "validFor": None, "value": p.value}
            for p in f.picklist
        ],
        "precision": f.precision if f.type in ("currency", "double", "percent") else 0,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "relationshipOrder": 0 if f.master_detail else None,
        "restrictedPicklist": f.restricted,
        "scale": f.scale,
        "soapType": SOAP_TYPES.get(f.type, "xsd:string"),
        "sortable": not f.long_text,
        "type": f.type,
        "unique": f.unique,
        "updateable": f.updateable,
        "writeRequiresMasterRead": f.master_detail,
    }


def describe(obj: SObject, version: str) -> dict[str, Any]:
    return {
        **summary(obj, version),
        "childRelationships": [
            {
                "cascadeDelete": c.cascade_delete,
                "childSObject": c.child,
                "deprecatedAndHidden": False,
                "field": c.field,
                "junctionIdListNames": [],
                "junctionReferenceTo": [],
                "relationshipName": c.name,
                "restrictedDelete": False,
            }
            for c in obj.children
        ],
        "fields": [field_describe(f) for f in obj.fields.values()],
        "recordTypeInfos": [],
    }


def basic_info(obj: SObject, version: str) -> dict[str, Any]:
    return {"objectDescribe": summary(obj, version), "recentItems": []}

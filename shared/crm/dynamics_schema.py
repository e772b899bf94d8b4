"""The Dataverse schema the sync needs: checked through the metadata Web API, the missing part created.

Sources (Microsoft Learn, powerapps-docs ``developer/data-platform/webapi``): "Query schema
definitions" (EntityDefinitions, Attributes with a cast to the derived type for MaxLength and
OptionSet, Keys, ManyToOneRelationships), "Create and update table definitions", "Create and update
column definitions", "Create and update table relationships", "Define alternate keys" (the key's
index builds asynchronously: EntityKeyIndexStatus Pending until Active), and the ``PublishXml``
action. Custom items belong to a publisher whose prefix their names carry; they are created in the
sync's solution (``MSCRM.SolutionUniqueName``), so an admin can see and move them as one unit.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.crm.dataverse_client import DataverseClient
from shared.crm.dynamics_fields import DYNAMICS_HELP_NEEDED
from shared.crm.fields import FieldMap
from shared.crm.schema import ApplyResult, Finding, SchemaItem, SchemaRefused, SchemaReport
from shared.http import ApiError
from shared.odata import odata_string

log = logging.getLogger("cosell.crm.dynamics.schema")

SOLUTION = "CosellSync"
_MD = "Microsoft.Dynamics.CRM."
_REQUIRED_NONE = {
    "Value": "None",
    "CanBeChanged": True,
    "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
}

# The sync's own columns on opportunity and lead: field -> (type, length, display name).
_OWN_COLUMNS: dict[str, tuple[str, int | None, str]] = {
    "sync": ("Boolean", None, "Sync with Partner Center"),
    "referral_id": ("String", 100, "Referral Identifier"),
    "referral_link": ("String", 200, "Referral Link"),
    "help_needed": ("Picklist", None, "How can Microsoft help?"),
    "visible": ("Boolean", None, "Referral visible to Microsoft sellers"),
    "microsoft_crm_id": ("String", 100, "Microsoft CRM Identifier"),
    "referral_program": ("String", 100, "Referral Program"),
    "audit": ("Memo", None, "Partner Center Audit"),
}
# Standard columns the sync reads and writes: checked, never created (type as Dataverse names it).
_STANDARD: dict[str, dict[str, str]] = {
    "opportunity": {
        "name": "String",
        "deal_value": "Money",
        "currency": "Lookup",
        "close_date": "DateTime",
        "description": "Memo",
    },
    "lead": {
        "name": "String",
        "company": "String",
        "first_name": "String",
        "last_name": "String",
        "email": "String",
        "phone": "String",
        "postal_code": "String",
        "country": "String",
        "description": "Memo",
    },
    "account": {"name": "String", "postal_code": "String", "country": "String", "city": "String"},
    "contact": {"first_name": "String", "last_name": "String", "email": "String"},
}
_SCHEMA_NAMES = {  # nicer SchemaNames for the default columns (logical name = SchemaName lower-cased)
    "cosell_syncwithpartnercenter": "cosell_SyncWithPartnerCenter",
    "cosell_referralid": "cosell_ReferralId",
    "cosell_referrallink": "cosell_ReferralLink",
    "cosell_helpneeded": "cosell_HelpNeeded",
    "cosell_visible": "cosell_Visible",
    "cosell_microsoftcrmid": "cosell_MicrosoftCrmId",
    "cosell_referralprogram": "cosell_ReferralProgram",
    "cosell_audit": "cosell_Audit",
    "cosell_solution": "cosell_Solution",
    "cosell_name": "cosell_Name",
    "cosell_solutionidentifier": "cosell_SolutionIdentifier",
    "cosell_solutiontype": "cosell_SolutionType",
    "cosell_opportunityid": "cosell_OpportunityId",
}


def _label(text: str) -> dict[str, Any]:
    return {
        "@odata.type": f"{_MD}Label",
        "LocalizedLabels": [{"@odata.type": f"{_MD}LocalizedLabel", "Label": text, "LanguageCode": 1033}],
    }


def _schema_name(logical: str) -> str:
    return _SCHEMA_NAMES.get(logical, logical)


class DynamicsSchema:
    def __init__(self, client: DataverseClient, fields: FieldMap, *, audit_max_chars: int = 4000) -> None:
        self._dv = client
        self._fields = fields
        self._audit = audit_max_chars

    # ------------------------------------------------------------------ what the sync needs
    def required(self) -> list[SchemaItem]:
        items: list[SchemaItem] = []
        solution = self._fields.tables["solution"]
        items.append(SchemaItem(solution["table"], solution["table"], "table", purpose="Microsoft solutions of a deal"))
        items.append(SchemaItem(solution["table"], solution["name"], "column", "String", 100, purpose="solution name"))
        for key in ("id", "type"):
            items.append(
                SchemaItem(solution["table"], solution[key], "column", "String", 100, purpose=f"solution {key}")
            )
        items.append(
            SchemaItem(solution["table"], solution["parent"], "relationship", "Lookup", purpose="the solution's deal")
        )
        for table in ("opportunity", "lead"):
            for field, (kind, length, label) in _OWN_COLUMNS.items():
                column = self._fields.get(table, field)
                if not column:
                    continue
                if field == "audit":
                    length = self._audit
                options = tuple(str(v) for v in DYNAMICS_HELP_NEEDED.values()) if kind == "Picklist" else ()
                items.append(SchemaItem(table, column, "column", kind, length, options, purpose=label))
            referral = self._fields.column(table, "referral_id")
            items.append(SchemaItem(table, f"{referral}_key", "key", options=(referral,), purpose="idempotent upsert"))
        for table, columns in _STANDARD.items():
            for field, kind in columns.items():
                column = self._fields.get(table, field)
                if column:
                    items.append(SchemaItem(table, column, "column", kind, own=False, purpose=field.replace("_", " ")))
        return items

    # ------------------------------------------------------------------ check
    def check(self) -> SchemaReport:
        items = self.required()
        report = SchemaReport("dynamics")
        tables = {item.table for item in items}
        columns = {table: self._columns(table) for table in tables}
        keys = {table: self._keys(table) for table in ("opportunity", "lead")}
        for item in items:
            report.findings.append(self._judge(item, columns, keys))
        return report

    def _judge(
        self,
        item: SchemaItem,
        columns: dict[str, dict[str, dict[str, Any]] | None],
        keys: dict[str, dict[str, dict[str, Any]] | None],
    ) -> Finding:
        table_columns = columns.get(item.table)
        if item.kind == "table":
            if table_columns is None:
                return Finding(item, "missing", f"The table {item.name} does not exist.")
            return Finding(item, "present")
        if table_columns is None:
            return Finding(item, "missing", f"{item.name} cannot exist: its table {item.table} does not exist.")
        if item.kind == "key":
            found = (keys.get(item.table) or {}).get(item.name)
            if found is None:
                return Finding(item, "missing", f"The alternate key {item.name} on {item.table} does not exist.")
            status = str(found.get("EntityKeyIndexStatus") or "Active")
            if status == "Failed":
                return Finding(item, "wrong", f"The alternate key {item.name} failed to build (duplicate values?).")
            if status != "Active":
                return Finding(item, "pending", f"The alternate key {item.name} is {status}: its index is building.")
            return Finding(item, "present")
        column = table_columns.get(item.name.lower())
        if column is None:
            what = "lookup" if item.kind == "relationship" else "column"
            return Finding(item, "missing", f"The {what} {item.name} on {item.table} does not exist.")
        actual = str(column.get("AttributeType") or "")
        if item.type and actual != item.type and not (item.type == "Lookup" and actual in ("Lookup", "Customer")):
            return Finding(
                item, "wrong", f"{item.name} on {item.table} is a {actual} column; the sync needs a {item.type} column."
            )
        length = column.get("MaxLength")
        if item.length and isinstance(length, int) and length < item.length:
            advice = " (or set AUDIT_MAX_CHARS to fit)" if item.type == "Memo" else ""
            return Finding(
                item,
                "wrong",
                f"{item.name} on {item.table} holds {length} characters; the sync needs {item.length}{advice}.",
            )
        missing = [o for o in item.options if o not in set(map(str, column.get("Options", ())))]
        if item.type == "Picklist" and missing:
            return Finding(
                item, "wrong", f"The choice {item.name} on {item.table} lacks the values {', '.join(missing)}."
            )
        return Finding(item, "present")

    def _columns(self, table: str) -> dict[str, dict[str, Any]] | None:
        """Every column of ``table`` by logical name, with MaxLength and choice values; None: no table."""
        base = f"EntityDefinitions(LogicalName={odata_string(table)})"
        if self._dv.get(base, select=["LogicalName"]) is None:
            return None
        found = {
            str(row["LogicalName"]): dict(row)
            for row in self._dv.query(f"{base}/Attributes", select=["LogicalName", "AttributeType"], page_size=None)
        }
        for cast in ("StringAttributeMetadata", "MemoAttributeMetadata"):
            for row in self._dv.query(
                f"{base}/Attributes/{_MD}{cast}", select=["LogicalName", "MaxLength"], page_size=None
            ):
                found.setdefault(str(row["LogicalName"]), {})["MaxLength"] = row.get("MaxLength")
        for row in self._dv.query(
            f"{base}/Attributes/{_MD}PicklistAttributeMetadata",
            select=["LogicalName"],
            expand="OptionSet($select=Options)",
            page_size=None,
        ):
            options = (row.get("OptionSet") or {}).get("Options") or []
            found.setdefault(str(row["LogicalName"]), {})["Options"] = [o.get("Value") for o in options]
        return found

    def _keys(self, table: str) -> dict[str, dict[str, Any]] | None:
        base = f"EntityDefinitions(LogicalName={odata_string(table)})"
        if self._dv.get(base, select=["LogicalName"]) is None:
            return None
        rows = self._dv.query(
            f"{base}/Keys", select=["LogicalName", "KeyAttributes", "EntityKeyIndexStatus"], page_size=None
        )
        return {str(r["LogicalName"]): dict(r) for r in rows}

    # ------------------------------------------------------------------ apply
    def apply(self) -> ApplyResult:
        """Create what is missing of the sync's own items, in dependency order; never touch the rest."""
        report = self.check()
        todo = [f.item for f in report.of("missing") if f.item.own]
        created: list[SchemaItem] = []
        if not todo:
            return ApplyResult(created, report)
        try:
            prefix = todo[0].name.split("_", 1)[0]
            self._ensure_publisher(prefix)
            made_with_table = {(i.table, self._fields.tables["solution"]["name"]) for i in todo if i.kind == "table"}
            for kind in ("table", "column", "relationship", "key"):
                for item in (i for i in todo if i.kind == kind):
                    if (item.table, item.name) not in made_with_table:  # a new table brings its name column
                        self._create(item)
                    created.append(item)
            self._dv.action("PublishAllXml", {})
        except ApiError as exc:
            if exc.status == 403:
                raise SchemaRefused(exc.message or exc.code, created) from exc
            raise
        return ApplyResult(created, self.check())

    def _ensure_publisher(self, prefix: str) -> None:
        if not list(
            self._dv.query(
                "publishers", select=["publisherid"], filter=f"customizationprefix eq {odata_string(prefix)}"
            )
        ):
            self._dv.post(
                "publishers",
                {
                    "uniquename": prefix,
                    "friendlyname": "Co-sell sync",
                    "customizationprefix": prefix,
                    "customizationoptionvalueprefix": 10000,
                },
            )
        publisher = next(
            iter(
                self._dv.query(
                    "publishers", select=["publisherid"], filter=f"customizationprefix eq {odata_string(prefix)}"
                )
            )
        )
        if not list(
            self._dv.query("solutions", select=["solutionid"], filter=f"uniquename eq {odata_string(SOLUTION)}")
        ):
            self._dv.post(
                "solutions",
                {
                    "uniquename": SOLUTION,
                    "friendlyname": "Co-sell sync",
                    "version": "1.0.0.0",
                    "publisherid@odata.bind": f"/publishers({publisher['publisherid']})",
                },
            )

    def _create(self, item: SchemaItem) -> None:
        headers = {"MSCRM.SolutionUniqueName": SOLUTION}
        if item.kind == "table":
            solution = self._fields.tables["solution"]
            body = {
                "@odata.type": f"{_MD}EntityMetadata",
                "SchemaName": _schema_name(item.name),
                "DisplayName": _label("Microsoft Solution"),
                "DisplayCollectionName": _label("Microsoft Solutions"),
                "OwnershipType": "OrganizationOwned",
                "IsActivity": False,
                "HasActivities": False,
                "HasNotes": False,
                "Attributes": [
                    {
                        **_string(solution["name"], 100, "Solution Name"),
                        "IsPrimaryName": True,
                        "RequiredLevel": {"Value": "ApplicationRequired"},
                    }
                ],
            }
            self._dv.post("EntityDefinitions", body, headers=headers)
        elif item.kind == "column":
            path = f"EntityDefinitions(LogicalName={odata_string(item.table)})/Attributes"
            self._dv.post(path, _column_body(item), headers=headers)
        elif item.kind == "relationship":
            self._dv.post("RelationshipDefinitions", self._relationship_body(item), headers=headers)
        elif item.kind == "key":
            body = {
                "@odata.type": f"{_MD}EntityKeyMetadata",
                "SchemaName": _schema_name(item.name),
                "DisplayName": _label("Referral Identifier Key"),
                "KeyAttributes": list(item.options),
            }
            self._dv.post(f"EntityDefinitions(LogicalName={odata_string(item.table)})/Keys", body, headers=headers)
        log.info("Created %s %s on %s", item.kind, item.name, item.table)

    def _relationship_body(self, item: SchemaItem) -> dict[str, Any]:
        lookup = _schema_name(item.name)
        return {
            "@odata.type": f"{_MD}OneToManyRelationshipMetadata",
            "SchemaName": f"{item.name.split('_', 1)[0]}_opportunity_{item.table}_{lookup.split('_', 1)[-1]}",
            "ReferencedEntity": "opportunity",
            "ReferencedAttribute": "opportunityid",
            "ReferencingEntity": item.table,
            "CascadeConfiguration": {
                "Assign": "NoCascade",
                "Delete": "Cascade",
                "Merge": "NoCascade",
                "Reparent": "NoCascade",
                "Share": "NoCascade",
                "Unshare": "NoCascade",
            },
            "Lookup": {
                "@odata.type": f"{_MD}LookupAttributeMetadata",
                "AttributeType": "Lookup",
                "AttributeTypeName": {"Value": "LookupType"},
                "SchemaName": lookup,
                "DisplayName": _label("Opportunity"),
                "RequiredLevel": _REQUIRED_NONE,
            },
        }


def _string(logical: str, length: int, label: str) -> dict[str, Any]:
    return {
        "@odata.type": f"{_MD}StringAttributeMetadata",
        "AttributeType": "String",
        "AttributeTypeName": {"Value": "StringType"},
        "SchemaName": _schema_name(logical),
        "DisplayName": _label(label),
        "RequiredLevel": _REQUIRED_NONE,
        "MaxLength": length,
        "FormatName": {"Value": "Text"},
    }


def _column_body(item: SchemaItem) -> dict[str, Any]:
    label = item.purpose or item.name
    if item.type == "String":
        return _string(item.name, item.length or 100, label)
    common = {"SchemaName": _schema_name(item.name), "DisplayName": _label(label), "RequiredLevel": _REQUIRED_NONE}
    if item.type == "Memo":
        return {
            "@odata.type": f"{_MD}MemoAttributeMetadata",
            "AttributeType": "Memo",
            "AttributeTypeName": {"Value": "MemoType"},
            "MaxLength": item.length or 4000,
            "Format": "TextArea",
            **common,
        }
    if item.type == "Boolean":
        return {
            "@odata.type": f"{_MD}BooleanAttributeMetadata",
            "AttributeType": "Boolean",
            "AttributeTypeName": {"Value": "BooleanType"},
            "DefaultValue": False,
            "OptionSet": {
                "TrueOption": {"Value": 1, "Label": _label("Yes")},
                "FalseOption": {"Value": 0, "Label": _label("No")},
                "OptionSetType": "Boolean",
            },
            **common,
        }
    if item.type == "Picklist":
        labels = {str(v): code for code, v in DYNAMICS_HELP_NEEDED.items()}
        return {
            "@odata.type": f"{_MD}PicklistAttributeMetadata",
            "AttributeType": "Picklist",
            "AttributeTypeName": {"Value": "PicklistType"},
            "OptionSet": {
                "@odata.type": f"{_MD}OptionSetMetadata",
                "IsGlobal": False,
                "OptionSetType": "Picklist",
                "Options": [{"Value": int(v), "Label": _label(labels.get(v, v))} for v in item.options],
            },
            **common,
        }
    raise ValueError(f"no column body for a {item.type} column")

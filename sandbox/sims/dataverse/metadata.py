"""The metadata endpoints (read-only): ``EntityDefinitions`` and ``RelationshipDefinitions``.

They let the app read names instead of assuming them: a table's entity set and primary columns, a
column's type and MaxLength, a lookup's navigation property names, an alternate key. Shapes follow
Microsoft's "Query table definitions using the Web API" (``MicrosoftDocs/powerapps-docs``,
``powerapps-docs/developer/data-platform/webapi/query-metadata-web-api.md``):

- ``GET EntityDefinitions(LogicalName='opportunity')`` (or ``(<MetadataId>)``), ``$select`` honoured,
  ``MetadataId`` always returned; ``GET EntityDefinitions?$filter=LogicalName eq 'opportunity'``.
  ``$expand`` of ``Attributes``, ``Keys``, ``ManyToOneRelationships``, ``OneToManyRelationships``.
- ``.../Attributes``, ``.../Attributes(LogicalName='name')``: each item carries its derived type in
  ``@odata.type`` (``#Microsoft.Dynamics.CRM.StringAttributeMetadata``) and, without ``$select``, the
  derived type's properties (``MaxLength``, ``Targets``, ...). ``$select``/``$filter`` see only the
  ``AttributeMetadata`` properties unless the path casts to a derived type:
  ``.../Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength``
  (the document: "In order to retrieve the properties of a specific type of attribute you must cast").
  A cast to ``PicklistAttributeMetadata`` (or State/Status) allows ``$expand=OptionSet``.
- ``.../ManyToOneRelationships``, ``.../OneToManyRelationships`` (``OneToManyRelationshipMetadata``),
  ``.../Keys`` (``EntityKeyMetadata``); ``RelationshipDefinitions(SchemaName='x')`` and
  ``RelationshipDefinitions/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata?$filter=...``.
- ``$filter`` takes enum literals as the document writes them
  (``AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'``) and one-level complex
  paths (``RequiredLevel/Value eq ...``). There is no paging: "All matching resources will be
  returned in the first response."

Creating schema (POST to these paths) is ``customize.py``'s; everything here reads :class:`Schema`,
so a schema that grows at run time shows up without changes. Keys come with their
``EntityKeyIndexStatus`` from the customizer (Pending / Failed while an index is built or could not
be); ``GlobalOptionSetDefinitions`` lists the global choices created at run time (a fresh org's own
global choices are not simulated). A Boolean column's ``OptionSet`` (``TrueOption`` / ``FalseOption``)
is served through the ``BooleanAttributeMetadata`` cast, like a choice's through the Picklist cast.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from odata_query import ast
from odata_query.grammar import ODataLexer, ODataParser
from werkzeug.wrappers import Request, Response

from sandbox.sims.dataverse.errors import (
    CODE_METADATA_NOT_FOUND,
    CODE_NOT_FOUND,
    CODE_QUERY,
    DataverseError,
    bad_request,
    unknown_property,
)
from sandbox.sims.dataverse.query import ast_children
from sandbox.sims.dataverse.schema import (
    OWNER_ENTITY,
    AlternateKey,
    Column,
    Entity,
    Schema,
    StoredRelationship,
    metadata_id,
)
from sandbox.sims.dataverse.wire import GUID_RE, Record, base_url, odata_response, parse_key_segment, split_top
from sandbox.sims.odata import FilterError, compile_filter

if TYPE_CHECKING:
    from sandbox.sims.dataverse.customize import Customizer

NS = "Microsoft.Dynamics.CRM"
_ENUM_LITERAL = re.compile(r"Microsoft\.Dynamics\.CRM\.[A-Za-z]+'([^']*)'")
_PATH = re.compile(
    r"^\((?P<key>[^)]*)\)"
    r"(?:/(?P<nav>[A-Za-z]+)(?:\((?P<subkey>[^)]*)\))?)?"
    r"(?:/(?P<cast>Microsoft\.Dynamics\.CRM\.[A-Za-z]+))?$"
)

# AttributeType -> (derived metadata type, AttributeTypeName)
_ATTRIBUTE_TYPES: dict[str, tuple[str, str]] = {
    "String": ("StringAttributeMetadata", "StringType"),
    "Memo": ("MemoAttributeMetadata", "MemoType"),
    "Integer": ("IntegerAttributeMetadata", "IntegerType"),
    "BigInt": ("BigIntAttributeMetadata", "BigIntType"),
    "Boolean": ("BooleanAttributeMetadata", "BooleanType"),
    "Money": ("MoneyAttributeMetadata", "MoneyType"),
    "Decimal": ("DecimalAttributeMetadata", "DecimalType"),
    "Double": ("DoubleAttributeMetadata", "DoubleType"),
    "DateTime": ("DateTimeAttributeMetadata", "DateTimeType"),
    "Picklist": ("PicklistAttributeMetadata", "PicklistType"),
    "State": ("StateAttributeMetadata", "StateType"),
    "Status": ("StatusAttributeMetadata", "StatusType"),
    "Lookup": ("LookupAttributeMetadata", "LookupType"),
    "Owner": ("LookupAttributeMetadata", "OwnerType"),
    "Customer": ("LookupAttributeMetadata", "CustomerType"),
    "Uniqueidentifier": ("UniqueIdentifierAttributeMetadata", "UniqueidentifierType"),
}
# Properties each derived type adds to AttributeMetadata (the ones the simulator fills in).
_DERIVED_PROPERTIES: dict[str, frozenset[str]] = {
    "StringAttributeMetadata": frozenset({"MaxLength", "FormatName", "Format"}),
    "MemoAttributeMetadata": frozenset({"MaxLength", "Format"}),
    "IntegerAttributeMetadata": frozenset({"MinValue", "MaxValue", "Format"}),
    "BigIntAttributeMetadata": frozenset({"MinValue", "MaxValue"}),
    "BooleanAttributeMetadata": frozenset({"DefaultValue"}),
    "MoneyAttributeMetadata": frozenset({"MinValue", "MaxValue", "Precision", "PrecisionSource"}),
    "DecimalAttributeMetadata": frozenset({"MinValue", "MaxValue", "Precision"}),
    "DoubleAttributeMetadata": frozenset({"MinValue", "MaxValue", "Precision"}),
    "DateTimeAttributeMetadata": frozenset({"Format", "DateTimeBehavior"}),
    "PicklistAttributeMetadata": frozenset({"DefaultFormValue"}),
    "StateAttributeMetadata": frozenset(),
    "StatusAttributeMetadata": frozenset(),
    "LookupAttributeMetadata": frozenset({"Targets"}),
    "UniqueIdentifierAttributeMetadata": frozenset(),
}
_OPTION_SET_TYPES = frozenset(
    {"PicklistAttributeMetadata", "StateAttributeMetadata", "StatusAttributeMetadata", "BooleanAttributeMetadata"}
)
_OPTION_SET_PROPERTIES = frozenset(
    {"MetadataId", "Name", "IsGlobal", "OptionSetType", "Options", "TrueOption", "FalseOption"}
)
_GLOBAL_OPTION_SET_PROPERTIES = frozenset(
    {"MetadataId", "Name", "IsGlobal", "IsCustomOptionSet", "OptionSetType", "DisplayName", "Options", "HasChanged"}
)
_ATTRIBUTE_BASE = frozenset(
    {
        "MetadataId",
        "LogicalName",
        "SchemaName",
        "EntityLogicalName",
        "AttributeType",
        "AttributeTypeName",
        "AttributeOf",
        "IsCustomAttribute",
        "IsPrimaryId",
        "IsPrimaryName",
        "IsValidForCreate",
        "IsValidForUpdate",
        "IsValidForRead",
        "RequiredLevel",
        "DisplayName",
        "HasChanged",
    }
)
_ENTITY_PROPERTIES = frozenset(
    {
        "MetadataId",
        "LogicalName",
        "SchemaName",
        "EntitySetName",
        "LogicalCollectionName",
        "PrimaryIdAttribute",
        "PrimaryNameAttribute",
        "OwnershipType",
        "TableType",
        "IsCustomEntity",
        "IsActivity",
        "IsManaged",
        "DisplayName",
        "DisplayCollectionName",
        "HasActivities",
        "HasNotes",
        "HasChanged",
    }
)
_RELATIONSHIP_BASE = frozenset(
    {"MetadataId", "SchemaName", "RelationshipType", "IsCustomRelationship", "IsManaged", "HasChanged"}
)
_ONE_TO_MANY = _RELATIONSHIP_BASE | {
    "ReferencedEntity",
    "ReferencedAttribute",
    "ReferencingEntity",
    "ReferencingAttribute",
    "ReferencedEntityNavigationPropertyName",
    "ReferencingEntityNavigationPropertyName",
    "IsHierarchical",
}
_KEY_PROPERTIES = frozenset(
    {
        "MetadataId",
        "LogicalName",
        "SchemaName",
        "EntityLogicalName",
        "KeyAttributes",
        "EntityKeyIndexStatus",
        "DisplayName",
        "IsManaged",
    }
)
_ENTITY_NAVS = ("Attributes", "Keys", "ManyToOneRelationships", "OneToManyRelationships", "ManyToManyRelationships")


def _label(text: str) -> Record:
    """A ``Label`` complex value in the user's language (1033)."""
    localized = {"Label": text, "LanguageCode": 1033, "IsManaged": True, "MetadataId": None, "HasChanged": None}
    return {"LocalizedLabels": [localized] if text else [], "UserLocalizedLabel": localized if text else None}


@dataclass
class _Options:
    """$select / $filter / $expand of one metadata request, checked against the addressed type."""

    select: list[str] | None = None
    filter: Callable[[Record], bool] | None = None
    expand: dict[str, _Options] | None = None


def not_found_entity(key: str) -> DataverseError:
    """Unknown table: the status the brief asks for, the metadata cache's message for unknown names."""
    return DataverseError(
        404,
        CODE_METADATA_NOT_FOUND,
        f"The entity with a name = '{key}' with namemapping = 'Logical' was not found in the MetadataCache.",
    )


def find_entity(schema: Schema, raw: str) -> Entity:
    """The table a key segment names: ``LogicalName='x'`` or its MetadataId."""
    value = _key_value(raw, "LogicalName")
    for ent in schema.entities.values():
        if not ent.table.abstract and value in (ent.logical, metadata_id("entity", ent.logical)):
            return ent
    raise not_found_entity(value)


class MetadataApi:
    """Metadata reads over one org's :class:`Schema` (and the key index states of its :class:`Customizer`)."""

    def __init__(self, schema: Schema, customizer: Customizer) -> None:
        self.schema = schema
        self.customizer = customizer

    # ----- routing targets -----
    def entity_definitions(self, request: Request, rest: str = "") -> Response:
        base = base_url(request)
        if not rest:
            options = self._options(request, _ENTITY_PROPERTIES, "EntityMetadata", navs=self._entity_nav_types())
            items = [
                self._entity_out(e, options) for e in self._entities() if self._matches(options, self._entity_record(e))
            ]
            context = f"{base}/$metadata#EntityDefinitions{_selection(options)}"
            return odata_response({"@odata.context": context, "value": items})
        match = _PATH.match(rest)
        if not match:
            raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment 'EntityDefinitions{rest}'.")
        ent = self._find_entity(match.group("key"))
        nav, subkey, cast = match.group("nav"), match.group("subkey"), match.group("cast")
        if nav is None:
            if cast:
                raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{cast}'.")
            options = self._options(request, _ENTITY_PROPERTIES, "EntityMetadata", navs=self._entity_nav_types())
            context = f"{base}/$metadata#EntityDefinitions{_selection(options)}/$entity"
            return odata_response({"@odata.context": context, **self._entity_out(ent, options)})
        if nav not in _ENTITY_NAVS:
            raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{nav}'.")
        return self._entity_nav(request, ent, nav, subkey, cast)

    def relationship_definitions(self, request: Request, rest: str = "") -> Response:
        base = base_url(request)
        cast = None
        key = None
        if rest:
            match = re.fullmatch(r"(?:\((?P<key>[^)]*)\))?(?:/(?P<cast>Microsoft\.Dynamics\.CRM\.[A-Za-z]+))?", rest)
            if not match or (match.group("key") is None and match.group("cast") is None):
                raise DataverseError(
                    404, CODE_QUERY, f"Resource not found for the segment 'RelationshipDefinitions{rest}'."
                )
            key, cast = match.group("key"), match.group("cast")
        type_name = "RelationshipMetadataBase"
        allowed = _RELATIONSHIP_BASE
        if cast is not None:
            if cast != f"{NS}.OneToManyRelationshipMetadata":
                raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{cast}'.")
            type_name, allowed = "OneToManyRelationshipMetadata", _ONE_TO_MANY
        options = self._options(request, allowed, type_name)
        suffix = f"/{cast}" if cast else ""
        if key is None:
            items = [
                self._relationship_out(r, options, typed=True)
                for r in self.schema.relationships.values()
                if self._matches(options, self._relationship(r))
            ]
            context = f"{base}/$metadata#RelationshipDefinitions{suffix}{_selection(options)}"
            return odata_response({"@odata.context": context, "value": items})
        stored = self._find_relationship(key)
        context = f"{base}/$metadata#RelationshipDefinitions{suffix}{_selection(options)}/$entity"
        return odata_response({"@odata.context": context, **self._relationship_out(stored, options, typed=True)})

    def global_option_sets(self, request: Request, rest: str = "") -> Response:
        """``GlobalOptionSetDefinitions`` and ``GlobalOptionSetDefinitions(Name='x')`` (or ``(<MetadataId>)``)."""
        base = base_url(request)
        options = self._options(request, _GLOBAL_OPTION_SET_PROPERTIES, "OptionSetMetadata")
        records = [self._choice_record(c) for c in self.customizer.choices.values()]
        if not rest:
            items = [
                {"@odata.type": r["@odata.type"], **_project(r, options.select)}
                for r in records
                if self._matches(options, r)
            ]
            context = f"{base}/$metadata#GlobalOptionSetDefinitions{_selection(options)}"
            return odata_response({"@odata.context": context, "value": items})
        match = re.fullmatch(r"\((?P<key>[^)]*)\)", rest)
        if not match:
            raise DataverseError(
                404, CODE_QUERY, f"Resource not found for the segment 'GlobalOptionSetDefinitions{rest}'."
            )
        value = _key_value(match.group("key"), "Name")
        for record in records:
            if value in (record["Name"], record["MetadataId"]):
                context = f"{base}/$metadata#GlobalOptionSetDefinitions{_selection(options)}/$entity"
                body = {"@odata.type": record["@odata.type"], **_project(record, options.select)}
                return odata_response({"@odata.context": context, **body})
        # The simulator's wording for an unknown global choice.
        raise DataverseError(404, CODE_NOT_FOUND, f"Could not find optionset '{value}'.")

    @staticmethod
    def _choice_record(choice: Any) -> Record:
        return {
            "@odata.type": f"#{NS}.OptionSetMetadata",
            "MetadataId": choice.metadata_id,
            "Name": choice.name,
            "IsGlobal": True,
            "IsCustomOptionSet": True,
            "OptionSetType": "Picklist",
            "DisplayName": _label(choice.display_name),
            "Options": [{"Value": value, "Label": _label(text)} for value, text in choice.options],
            "HasChanged": None,
        }

    # ----- the entity's collection-valued navigation properties -----
    def _entity_nav(self, request: Request, ent: Entity, nav: str, subkey: str | None, cast: str | None) -> Response:
        base = base_url(request)
        prefix = f"{base}/$metadata#EntityDefinitions({self._entity_id(ent)})/{nav}"
        if nav == "Attributes":
            cast_type = None
            if cast is not None:
                cast_type = cast.removeprefix(f"{NS}.")
                if cast_type not in _DERIVED_PROPERTIES:
                    raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{cast}'.")
            allowed = _ATTRIBUTE_BASE | (_DERIVED_PROPERTIES[cast_type] if cast_type else frozenset())
            navs = {"OptionSet": _OPTION_SET_PROPERTIES}
            options = self._options(
                request,
                allowed,
                cast_type or "AttributeMetadata",
                navs=navs if cast_type in _OPTION_SET_TYPES else None,
            )
            columns = [c for c in ent.table.columns if cast_type is None or _ATTRIBUTE_TYPES[c.type][0] == cast_type]
            suffix = f"/{cast}" if cast else ""
            if subkey is not None:
                column = self._find_column(ent, subkey)
                if column not in columns:
                    raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{cast}'.")
                body = self._attribute_out(ent, column, options)
                context = f"{prefix}({self._attribute_id(ent, column)}){suffix}{_selection(options)}/$entity"
                return odata_response({"@odata.context": context, **body})
            items = [
                self._attribute_out(ent, c, options) for c in columns if self._matches(options, self._attribute(ent, c))
            ]
            return odata_response({"@odata.context": f"{prefix}{suffix}{_selection(options)}", "value": items})
        if cast is not None:
            raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{cast}'.")
        if nav == "Keys":
            options = self._options(request, _KEY_PROPERTIES, "EntityKeyMetadata")
            keys = self.customizer.keys_of(ent)
            if subkey is not None:
                key, status = self._find_key(ent, subkey)
                context = f"{prefix}({self._key_id(ent, key)}){_selection(options)}/$entity"
                return odata_response({"@odata.context": context, **self._key_out(ent, key, status, options)})
            items = [
                self._key_out(ent, k, status, options)
                for k, status in keys
                if self._matches(options, self._key(ent, k, status))
            ]
            return odata_response({"@odata.context": f"{prefix}{_selection(options)}", "value": items})
        if nav == "ManyToManyRelationships":
            options = self._options(request, _RELATIONSHIP_BASE, "ManyToManyRelationshipMetadata")
            return odata_response({"@odata.context": f"{prefix}{_selection(options)}", "value": []})
        options = self._options(request, _ONE_TO_MANY, "OneToManyRelationshipMetadata")
        related = self._relationships_of(ent, nav)
        if subkey is not None:
            stored = self._find_relationship(subkey)
            if stored not in related:
                raise DataverseError(404, CODE_NOT_FOUND, f"Could not find relationship '{subkey}' on {ent.logical}.")
            context = f"{prefix}({self._relationship_id(stored)}){_selection(options)}/$entity"
            return odata_response({"@odata.context": context, **self._relationship_out(stored, options)})
        items = [self._relationship_out(r, options) for r in related if self._matches(options, self._relationship(r))]
        return odata_response({"@odata.context": f"{prefix}{_selection(options)}", "value": items})

    # ----- the metadata records -----
    def _entities(self) -> list[Entity]:
        return [e for e in self.schema.entities.values() if not e.table.abstract]

    def _entity_record(self, ent: Entity) -> Record:
        table = ent.table
        return {
            "MetadataId": self._entity_id(ent),
            "LogicalName": ent.logical,
            "SchemaName": table.schema_name,
            "EntitySetName": ent.set_name,
            "LogicalCollectionName": ent.set_name,
            "PrimaryIdAttribute": table.primary_id,
            "PrimaryNameAttribute": table.primary_name,
            "OwnershipType": table.ownership,
            "TableType": "Standard",
            "IsCustomEntity": table.custom,
            "IsActivity": ent.logical == "opportunityclose",
            "IsManaged": not table.custom,
            "DisplayName": _label(table.display_name),
            "DisplayCollectionName": _label(table.display_collection_name),
            "HasActivities": table.has_activities,
            "HasNotes": table.has_notes,
            "HasChanged": None,
        }

    def _attribute(self, ent: Entity, column: Column) -> Record:
        type_name, type_code = _ATTRIBUTE_TYPES[column.type]
        out: Record = {
            "@odata.type": f"#{NS}.{type_name}",
            "MetadataId": self._attribute_id(ent, column),
            "LogicalName": column.logical,
            "SchemaName": column.schema_name,
            "EntityLogicalName": ent.logical,
            "AttributeType": column.type,
            "AttributeTypeName": {"Value": type_code},
            "AttributeOf": None,
            "IsCustomAttribute": column.custom,
            "IsPrimaryId": column.logical == ent.pk,
            "IsPrimaryName": column.logical == ent.table.primary_name,
            "IsValidForCreate": column.writable,
            "IsValidForUpdate": column.writable,
            "IsValidForRead": True,
            "RequiredLevel": {
                "Value": column.required,
                "CanBeChanged": True,
                "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
            },
            "DisplayName": _label(column.display_name),
            "HasChanged": None,
        }
        if column.type in ("String", "Memo"):
            out["MaxLength"] = column.max_length
            out["Format"] = column.format
            if column.type == "String":
                out["FormatName"] = {"Value": column.format or "Text"}
        elif column.type in ("Integer", "BigInt", "Money", "Decimal", "Double"):
            out["MinValue"], out["MaxValue"] = column.min_value, column.max_value
            if column.type == "Integer":
                out["Format"] = "None"
            if column.precision is not None:
                out["Precision"] = column.precision
            if column.type == "Money":
                out["PrecisionSource"] = 2
        elif column.type == "DateTime":
            out["Format"] = column.format or ("DateOnly" if column.date_only else "DateAndTime")
            out["DateTimeBehavior"] = {"Value": "DateOnly" if column.date_only else "UserLocal"}
        elif column.type == "Boolean":
            out["DefaultValue"] = bool(column.default)
        elif column.type == "Picklist":
            out["DefaultFormValue"] = -1
        elif column.is_lookup:
            out["Targets"] = list(column.targets)
        return out

    def _option_set(self, ent: Entity, column: Column) -> Record:
        if column.type == "Boolean":
            labels = dict(column.options) or {1: "Yes", 0: "No"}  # the maker portal's labels by default
            return {
                "MetadataId": metadata_id("optionset", ent.logical, column.logical),
                "Name": f"{ent.logical}_{column.logical}",
                "IsGlobal": False,
                "OptionSetType": "Boolean",
                "TrueOption": {"Value": 1, "Label": _label(labels.get(1, ""))},
                "FalseOption": {"Value": 0, "Label": _label(labels.get(0, ""))},
            }
        if column.type == "Picklist":
            options = [{"Value": v, "Label": _label(label)} for v, label in column.options]
            if column.option_set is not None:
                return {
                    "MetadataId": metadata_id("globaloptionset", column.option_set),
                    "Name": column.option_set,
                    "IsGlobal": True,
                    "OptionSetType": "Picklist",
                    "Options": options,
                }
        elif column.type == "State":
            options = [
                {
                    "Value": s.value,
                    "Label": _label(s.invariant),
                    "DefaultStatus": s.default_status,
                    "InvariantName": s.invariant,
                }
                for s in ent.table.states
            ]
        else:
            options = [
                {"Value": v, "Label": _label(label), "State": s.value}
                for s in ent.table.states
                for v, label in s.statuses
            ]
        return {
            "MetadataId": metadata_id("optionset", ent.logical, column.logical),
            "Name": f"{ent.logical}_{column.logical}",
            "IsGlobal": False,
            "OptionSetType": column.type,
            "Options": options,
        }

    def _relationship(self, stored: StoredRelationship) -> Record:
        rel = stored.relationship
        referenced = rel.referenced_entity
        referenced_attribute = "ownerid" if referenced == OWNER_ENTITY else self.schema.entity(referenced).pk
        return {
            "MetadataId": self._relationship_id(stored),
            "SchemaName": rel.schema_name,
            "RelationshipType": "OneToManyRelationship",
            "IsCustomRelationship": rel.custom,
            "IsManaged": not rel.custom,
            "IsHierarchical": False,
            "ReferencedEntity": referenced,
            "ReferencedAttribute": referenced_attribute,
            "ReferencingEntity": stored.referencing_entity,
            "ReferencingAttribute": rel.referencing_attribute,
            "ReferencedEntityNavigationPropertyName": rel.collection_nav,
            "ReferencingEntityNavigationPropertyName": rel.referencing_nav,
            "HasChanged": None,
        }

    def _key(self, ent: Entity, key: AlternateKey, status: str) -> Record:
        return {
            "MetadataId": self._key_id(ent, key),
            "LogicalName": key.logical,
            "SchemaName": key.schema_name,
            "EntityLogicalName": ent.logical,
            "KeyAttributes": list(key.attributes),
            "EntityKeyIndexStatus": status,
            "DisplayName": _label(key.display_name),
            "IsManaged": False,
        }

    # ----- projection of the records -----
    def _entity_out(self, ent: Entity, options: _Options) -> Record:
        out = _project(self._entity_record(ent), options.select)
        for nav, nested in (options.expand or {}).items():
            if nav == "Attributes":
                out[nav] = [
                    self._attribute_out(ent, c, nested)
                    for c in ent.table.columns
                    if self._matches(nested, self._attribute(ent, c))
                ]
            elif nav == "Keys":
                out[nav] = [
                    self._key_out(ent, k, status, nested)
                    for k, status in self.customizer.keys_of(ent)
                    if self._matches(nested, self._key(ent, k, status))
                ]
            elif nav == "ManyToManyRelationships":
                out[nav] = []
            else:
                out[nav] = [
                    self._relationship_out(r, nested)
                    for r in self._relationships_of(ent, nav)
                    if self._matches(nested, self._relationship(r))
                ]
        return out

    def _attribute_out(self, ent: Entity, column: Column, options: _Options) -> Record:
        record = self._attribute(ent, column)
        out = {"@odata.type": record["@odata.type"], **_project(record, options.select)}
        if options.expand and "OptionSet" in options.expand:
            out["OptionSet"] = _project(self._option_set(ent, column), options.expand["OptionSet"].select)
        return out

    def _relationship_out(self, stored: StoredRelationship, options: _Options, *, typed: bool = False) -> Record:
        """``typed``: served from RelationshipDefinitions, whose declared type is the base type."""
        out = _project(self._relationship(stored), options.select)
        return {"@odata.type": f"#{NS}.OneToManyRelationshipMetadata", **out} if typed else out

    def _key_out(self, ent: Entity, key: AlternateKey, status: str, options: _Options) -> Record:
        return _project(self._key(ent, key, status), options.select)

    # ----- lookups by key -----
    def _find_entity(self, raw: str) -> Entity:
        return find_entity(self.schema, raw)

    def _find_column(self, ent: Entity, raw: str) -> Column:
        value = _key_value(raw, "LogicalName")
        for column in ent.table.columns:
            if value in (column.logical, self._attribute_id(ent, column)):
                return column
        # The simulator's wording: the service's exact message for this case was not verified.
        raise DataverseError(404, CODE_NOT_FOUND, f"Could not find attribute '{value}' on entity '{ent.logical}'.")

    def _find_key(self, ent: Entity, raw: str) -> tuple[AlternateKey, str]:
        value = _key_value(raw, "LogicalName")
        for key, status in self.customizer.keys_of(ent):
            if value in (key.logical, self._key_id(ent, key)):
                return key, status
        raise DataverseError(404, CODE_NOT_FOUND, f"Could not find key '{value}' on entity '{ent.logical}'.")

    def _find_relationship(self, raw: str) -> StoredRelationship:
        value = _key_value(raw, "SchemaName")
        for stored in self.schema.relationships.values():
            if value in (stored.relationship.schema_name, self._relationship_id(stored)):
                return stored
        raise DataverseError(404, CODE_NOT_FOUND, f"Could not find relationship '{value}'.")

    def _relationships_of(self, ent: Entity, nav: str) -> list[StoredRelationship]:
        if nav == "ManyToOneRelationships":
            return [r for r in self.schema.relationships.values() if r.referencing_entity == ent.logical]
        return [r for r in self.schema.relationships.values() if r.relationship.referenced_entity == ent.logical]

    @staticmethod
    def _entity_id(ent: Entity) -> str:
        return metadata_id("entity", ent.logical)

    @staticmethod
    def _attribute_id(ent: Entity, column: Column) -> str:
        return metadata_id("attribute", ent.logical, column.logical)

    @staticmethod
    def _key_id(ent: Entity, key: AlternateKey) -> str:
        return metadata_id("key", ent.logical, key.logical)

    @staticmethod
    def _relationship_id(stored: StoredRelationship) -> str:
        return metadata_id("relationship", stored.relationship.schema_name)

    def _entity_nav_types(self) -> dict[str, frozenset[str]]:
        return {
            "Attributes": _ATTRIBUTE_BASE,
            "Keys": _KEY_PROPERTIES,
            "ManyToOneRelationships": _ONE_TO_MANY,
            "OneToManyRelationships": _ONE_TO_MANY,
            "ManyToManyRelationships": _RELATIONSHIP_BASE,
        }

    # ----- query options -----
    @staticmethod
    def _matches(options: _Options, record: Record) -> bool:
        if options.filter is None:
            return True
        try:
            return options.filter(record)
        except FilterError as exc:
            raise bad_request(str(exc), CODE_QUERY) from exc

    def _options(
        self,
        request: Request,
        allowed: frozenset[str],
        type_name: str,
        *,
        navs: dict[str, frozenset[str]] | None = None,
    ) -> _Options:
        raw: dict[str, str] = {}
        for part in request.query_string.decode("latin-1").split("&"):
            if part:
                name, _, value = part.partition("=")
                raw[unquote_plus(name)] = unquote_plus(value)
        for name in raw:
            if name.startswith("$") and name not in ("$select", "$filter", "$expand"):
                raise bad_request(f"The query parameter {name} is not supported", CODE_QUERY)
        return _parse_options(raw.get("$select"), raw.get("$filter"), raw.get("$expand"), allowed, type_name, navs)


def _parse_options(
    select: str | None,
    filter_text: str | None,
    expand: str | None,
    allowed: frozenset[str],
    type_name: str,
    navs: dict[str, frozenset[str]] | None,
) -> _Options:
    options = _Options()
    qualified = f"{NS}.{type_name}"
    if select is not None:
        options.select = [n.strip() for n in select.split(",") if n.strip()]
        for name in options.select:
            if name not in allowed:
                raise unknown_property(qualified, name)
    if filter_text:
        options.filter = _compile(filter_text, allowed, qualified)
    if expand:
        options.expand = {}
        for item in split_top(expand, ","):
            match = re.fullmatch(r"([A-Za-z]+)\s*(?:\((.*)\))?", item, re.DOTALL)
            if not match:
                raise bad_request(f"Syntax error in $expand: '{item}'.", CODE_QUERY)
            nav = match.group(1)
            if not navs or nav not in navs:
                raise unknown_property(qualified, nav)
            nested: dict[str, str] = {}
            for option in split_top(match.group(2) or "", ";"):
                name, _, value = option.partition("=")
                if name.strip() not in ("$select", "$filter"):
                    raise bad_request(
                        f"Only $select and $filter are supported inside $expand, not '{name}'.", CODE_QUERY
                    )
                nested[name.strip()] = value.strip()
            target = _nav_type(nav)
            options.expand[nav] = _parse_options(
                nested.get("$select"), nested.get("$filter"), None, navs[nav], target, None
            )
    return options


def _nav_type(nav: str) -> str:
    return {
        "Attributes": "AttributeMetadata",
        "Keys": "EntityKeyMetadata",
        "ManyToOneRelationships": "OneToManyRelationshipMetadata",
        "OneToManyRelationships": "OneToManyRelationshipMetadata",
        "ManyToManyRelationships": "ManyToManyRelationshipMetadata",
        "OptionSet": "OptionSetMetadata",
    }[nav]


def _compile(text: str, allowed: frozenset[str], type_name: str) -> Callable[[Record], bool]:
    """A metadata $filter: enum literals become strings, names are checked against the type."""
    expression = _ENUM_LITERAL.sub(lambda m: "'" + m.group(1) + "'", text)
    try:
        predicate = compile_filter(expression)
        tree = ODataParser().parse(ODataLexer().tokenize(expression))
    except (FilterError, Exception) as exc:
        raise bad_request(f"Syntax error in $filter: {exc}", CODE_QUERY) from exc
    _check_names(tree, allowed, type_name)
    return predicate


def _check_names(node: Any, allowed: frozenset[str], type_name: str) -> None:
    if isinstance(node, (ast.Call, ast.CollectionLambda)):
        # The query document shows comparisons only; functions are refused rather than guessed at.
        raise bad_request("Only comparisons (eq, ne, and, or) are supported in a metadata $filter.", CODE_QUERY)
    if isinstance(node, ast.Attribute):  # RequiredLevel/Value: one level into a complex property
        if not isinstance(node.owner, ast.Identifier) or node.owner.name not in allowed:
            raise unknown_property(type_name, getattr(node.owner, "name", str(node.owner)))
        return
    if isinstance(node, ast.Identifier):
        if node.name not in allowed:
            raise unknown_property(type_name, node.name)
        return
    for child in ast_children(node):
        _check_names(child, allowed, type_name)


def _project(record: Record, select: list[str] | None) -> Record:
    """``$select``'d properties plus ``MetadataId``, which "is always returned" (the query document)."""
    if select is None:
        return {k: v for k, v in record.items() if k != "@odata.type"}
    out = {name: record.get(name) for name in select}
    if "MetadataId" in record:
        out["MetadataId"] = record["MetadataId"]
    return out


def _selection(options: _Options) -> str:
    return f"({','.join(options.select)})" if options.select else ""


def _key_value(raw: str, name: str) -> str:
    """``LogicalName='x'`` (or ``SchemaName='x'``) or a bare MetadataId."""
    text = raw.strip()
    if GUID_RE.fullmatch(text):
        return text.lower()
    try:
        pairs = parse_key_segment(text)
    except ValueError:
        pairs = []
    if len(pairs) != 1 or pairs[0][0] != name or not pairs[0][2]:
        raise bad_request(f"The key in the request URI is not valid: use {name}='<value>' or a MetadataId.", CODE_QUERY)
    return str(pairs[0][1])

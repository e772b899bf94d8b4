"""Metadata bodies the Web API takes in a ``POST``, checked and turned into schema data.

Pure parsing: no org state. ``customize.py`` adds what needs the org (publisher prefixes, duplicate
names, the tables a relationship joins) and applies the result. Shapes and rules come from
``MicrosoftDocs/powerapps-docs``, ``powerapps-docs/developer/data-platform/webapi/``:

- ``create-update-column-definitions-using-web-api.md`` (column bodies per type: ``@odata.type``,
  ``SchemaName``, ``DisplayName``, ``RequiredLevel``, ``MaxLength``, ``FormatName``, ``Format``,
  Boolean ``OptionSet`` with ``TrueOption``/``FalseOption``, Picklist ``OptionSet`` with ``Options``,
  Money ``PrecisionSource``, DateTime ``Format``, Decimal/Integer ``MinValue``/``MaxValue``/``Precision``);
- ``create-update-entity-definitions-using-web-api.md`` (table body; "The entity must include the
  definition for the primary name attribute"; "The items on this list except for Description are
  required": ``SchemaName``, ``DisplayName``, ``DisplayCollectionName``, ``OwnershipType``,
  ``IsActivity``, ``HasActivities``, ``HasNotes``; the primary name is a ``StringAttributeMetadata``
  with ``IsPrimaryName`` true and "must use Text format");
- ``create-update-entity-relationships-using-web-api.md`` (``OneToManyRelationshipMetadata`` with its
  ``Lookup`` deep-inserted; "You must include the @odata.type property value");
- ``create-update-optionsets.md`` (``GlobalOptionSetDefinitions`` body; ``GlobalOptionSet@odata.bind``;
  "let the system assign the value by passing a null value");
- ``../define-alternate-keys-entity.md`` (``EntityKeyMetadata``: the column types a key may use, at most
  16 columns per key).

A property the type does not declare is refused with the OData deserialiser's message, as for
record bodies, so a misspelt ``Maxlength`` fails here rather than being silently ignored. Properties
the types declare but the simulator does not model (``Description``, ``IsAuditEnabled``, ``ImeMode``
…) are accepted and dropped. Attribute types the sync does not need answer 400 "not supported by
this simulator".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox.sims.dataverse.errors import CODE_INVALID_ARGUMENT, CODE_PAYLOAD, DataverseError, bad_request
from sandbox.sims.dataverse.schema import AlternateKey, AttributeType, Column, Ownership
from sandbox.sims.dataverse.wire import Record

NS = "Microsoft.Dynamics.CRM"
# "Only characters within the ranges [A-Z], [a-z] or [0-9] or _ are allowed. The first character may
# only be in the ranges [A-Z], [a-z] or _." (the service's wording for solution unique names, the same
# character rule the maker portal applies to schema names).
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CASCADE_ACTIONS = frozenset({"Assign", "Delete", "Merge", "Reparent", "Share", "Unshare", "RollupView", "Archive"})
CASCADE_TYPES = frozenset({"NoCascade", "Cascade", "Active", "UserOwned", "RemoveLink", "Restrict"})
DELETE_CASCADE_TYPES = frozenset({"Cascade", "RemoveLink", "Restrict"})
# define-alternate-keys-entity.md, "Valid columns in key table definitions" (Lookup keys are not
# simulated: a key on a lookup column is addressed as _x_value, which the records API does not parse).
KEY_TYPES = frozenset({"String", "Integer", "Decimal", "DateTime", "Picklist"})
MAX_KEY_COLUMNS = 16


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LABEL = frozenset({"@odata.type", "LocalizedLabels", "UserLocalizedLabel"})
_LOCALIZED_LABEL = frozenset({"@odata.type", "Label", "LanguageCode", "IsManaged", "MetadataId", "HasChanged"})
_MANAGED_PROPERTY = frozenset({"@odata.type", "Value", "CanBeChanged", "ManagedPropertyLogicalName"})
# AttributeMetadata's properties (the GET of a column in create-update-column-definitions-using-web-api.md).
_ATTRIBUTE = _names(
    """
    @odata.type MetadataId HasChanged AttributeOf AttributeType AttributeTypeName ColumnNumber
    DeprecatedVersion IntroducedVersion EntityLogicalName IsCustomAttribute IsPrimaryId
    IsValidODataAttribute IsPrimaryName IsValidForCreate IsValidForRead IsValidForUpdate CanBeSecuredForRead
    CanBeSecuredForCreate CanBeSecuredForUpdate IsSecured IsRetrievable IsFilterable IsSearchable IsManaged
    LinkedAttributeId LogicalName IsValidForForm IsRequiredForForm IsValidForGrid SchemaName ExternalName
    IsLogical IsDataSourceSecret InheritsFrom CreatedOn ModifiedOn SourceType AutoNumberFormat Description
    DisplayName IsAuditEnabled IsGlobalFilterEnabled IsSortableEnabled IsCustomizable IsRenameable
    IsValidForAdvancedFind RequiredLevel CanModifyAdditionalSettings Settings
    """
)
_FORMULA = frozenset({"FormulaDefinition", "SourceTypeMask"})
# odata type -> (AttributeType, AttributeTypeName, the properties the derived type adds)
ATTRIBUTE_TYPES: dict[str, tuple[AttributeType, str, frozenset[str]]] = {
    "StringAttributeMetadata": (
        "String",
        "StringType",
        _FORMULA | _names("MaxLength Format FormatName ImeMode YomiOf IsLocalizable DatabaseLength IsAutoNumber"),
    ),
    "MemoAttributeMetadata": ("Memo", "MemoType", _names("MaxLength Format FormatName ImeMode IsLocalizable")),
    "BooleanAttributeMetadata": ("Boolean", "BooleanType", _FORMULA | _names("DefaultValue OptionSet")),
    "PicklistAttributeMetadata": (
        "Picklist",
        "PicklistType",
        _FORMULA
        | _names("OptionSet GlobalOptionSet DefaultFormValue ParentPicklistLogicalName ChildPicklistLogicalNames"),
    ),
    "MoneyAttributeMetadata": (
        "Money",
        "MoneyType",
        _FORMULA | _names("Precision PrecisionSource MinValue MaxValue ImeMode CalculationOf IsBaseCurrency"),
    ),
    "IntegerAttributeMetadata": ("Integer", "IntegerType", _FORMULA | _names("MinValue MaxValue Format")),
    "DecimalAttributeMetadata": ("Decimal", "DecimalType", _FORMULA | _names("MinValue MaxValue Precision ImeMode")),
    "DateTimeAttributeMetadata": (
        "DateTime",
        "DateTimeType",
        _FORMULA
        | _names("Format DateTimeBehavior CanChangeDateTimeBehavior ImeMode MinSupportedValue MaxSupportedValue"),
    ),
}
LOOKUP_PROPERTIES = _ATTRIBUTE | {"Targets", "Format"}
# Types the service has that the simulator does not create (a lookup is created with its relationship).
_UNSUPPORTED_ATTRIBUTE_TYPES = _names(
    """
    MultiSelectPicklistAttributeMetadata BigIntAttributeMetadata DoubleAttributeMetadata
    LookupAttributeMetadata ComplexLookupAttributeMetadata FileAttributeMetadata ImageAttributeMetadata
    UniqueIdentifierAttributeMetadata EntityNameAttributeMetadata ManagedPropertyAttributeMetadata
    StateAttributeMetadata StatusAttributeMetadata AttributeMetadata
    """
)
_STRING_FORMATS = _names(
    """
    Text Email Url Phone TextArea TickerSymbol PhoneticGuide VersionNumber Json RichText
    """
)
_MEMO_FORMATS = frozenset({"TextArea", "Text", "Email", "Json", "RichText"})
_REQUIRED_LEVELS = frozenset({"None", "Recommended", "ApplicationRequired"})
# EntityMetadata properties a create may carry (the table GET in create-update-entity-definitions-using-web-api.md).
_ENTITY = _names(
    """
    @odata.type @odata.context MetadataId HasChanged SchemaName LogicalName DisplayName
    DisplayCollectionName Description OwnershipType IsActivity IsActivityParty HasActivities HasNotes
    Attributes EntitySetName LogicalCollectionName CollectionSchemaName PrimaryIdAttribute
    PrimaryNameAttribute PrimaryImageAttribute TableType ActivityTypeMask AutoRouteToOwnerQueue
    CanTriggerWorkflow EntityHelpUrlEnabled EntityHelpUrl EntityColor IsDocumentManagementEnabled
    IsOneNoteIntegrationEnabled IsInteractionCentricEnabled IsKnowledgeManagementEnabled
    AutoCreateAccessTeams IsAuditEnabled IsAvailableOffline IsChildEntity IsAIRUpdated IsValidForQueue
    IsConnectionsEnabled IconLargeName IconMediumName IconSmallName IconVectorName IsCustomEntity
    IsBusinessProcessEnabled IsCustomizable IsRenameable IsMappable IsDuplicateDetectionEnabled
    CanCreateAttributes CanCreateForms CanCreateViews CanCreateCharts CanBeRelatedEntityInRelationship
    CanBePrimaryEntityInRelationship CanBeInManyToMany CanEnableSyncToExternalSearchIndex
    SyncToExternalSearchIndex CanModifyAdditionalSettings CanChangeHierarchicalRelationship
    IsOptimisticConcurrencyEnabled ChangeTrackingEnabled IsImportable IsIntersect IsMailMergeEnabled
    IsManaged IsEnabledForCharts IsEnabledForTrace IsValidForAdvancedFind IsVisibleInMobile
    IsVisibleInMobileClient IsReadOnlyInMobileClient IsOfflineInMobileClient DaysSinceRecordLastModified
    IsReadingPaneEnabled IsQuickCreateEnabled ObjectTypeCode Settings
    """
)
_RELATIONSHIP = _names(
    """
    @odata.type MetadataId HasChanged SchemaName RelationshipType IsCustomRelationship IsManaged
    IsCustomizable IsValidForAdvancedFind IntroducedVersion SecurityTypes RelationshipBehavior
    ReferencedEntity ReferencedAttribute ReferencingEntity ReferencingAttribute
    ReferencedEntityNavigationPropertyName ReferencingEntityNavigationPropertyName IsHierarchical
    CascadeConfiguration AssociatedMenuConfiguration Lookup
    """
)
_KEY = _names(
    """
    @odata.type MetadataId HasChanged SchemaName LogicalName DisplayName KeyAttributes EntityLogicalName
    EntityKeyIndexStatus AsyncJob IsCustomizable IsManaged IsExportKey IsSecondaryKey IsSynchronous
    IntroducedVersion SecondaryKeyGroupingName
    """
)
_OPTION_SET = _names(
    """
    @odata.type MetadataId HasChanged Name DisplayName Description OptionSetType IsGlobal IsCustomOptionSet
    IsCustomizable IsManaged ExternalTypeName IntroducedVersion ParentOptionSetName Options
    """
)
_OPTION = _names(
    """
    @odata.type Value Label Description Color IsManaged ExternalValue ParentValues Tag IsHidden MetadataId
    HasChanged
    """
)
_BOOLEAN_OPTION_SET = _names(
    """
    @odata.type MetadataId HasChanged Name OptionSetType IsGlobal TrueOption FalseOption
    """
)


# ----------------------------------------------------------------------------- what a parse yields


@dataclass(frozen=True)
class AttributeDefinition:
    """A column to add; ``options`` may hold None values the service assigns from the publisher's prefix."""

    column: Column
    primary_name: bool = False
    global_option_set: str | None = None  # the GlobalOptionSet@odata.bind URI
    options: tuple[tuple[int | None, str], ...] = ()


@dataclass(frozen=True)
class EntityDefinition:
    schema_name: str
    display_name: str
    display_collection_name: str
    ownership: Ownership
    has_activities: bool
    has_notes: bool
    entity_set_name: str | None
    attributes: tuple[AttributeDefinition, ...]


@dataclass(frozen=True)
class RelationshipDefinition:
    schema_name: str
    referenced_entity: str
    referenced_attribute: str | None
    referencing_entity: str
    lookup: Column
    referencing_nav: str | None
    referenced_nav: str | None


@dataclass(frozen=True)
class OptionSetDefinition:
    name: str
    display_name: str
    options: tuple[tuple[int | None, str], ...]


# ----------------------------------------------------------------------------- errors


def unknown_property(type_name: str, prop: str) -> DataverseError:
    return bad_request(
        f"The property '{prop}' does not exist on type '{NS}.{type_name}'. Make sure to only use property names "
        "that are defined by the type or mark the type as open type."
    )


def wrong_literal(value: Any, edm: str) -> DataverseError:
    literal = value if isinstance(value, str) else repr(value)
    return bad_request(f"Cannot convert the literal '{literal}' to the expected type '{edm}'.")


def required(prop: str, type_name: str) -> DataverseError:
    """The simulator's wording: the service's message for a missing required metadata property was not verified."""
    return bad_request(f"The property '{prop}' is required on '{NS}.{type_name}'.", CODE_INVALID_ARGUMENT)


def not_simulated(what: str) -> DataverseError:
    return bad_request(f"{what} is not supported by this simulator.", CODE_INVALID_ARGUMENT)


# ----------------------------------------------------------------------------- small readers


def check_properties(body: Record, allowed: frozenset[str], type_name: str) -> None:
    for key in body:
        name = key.partition("@")[0]  # "GlobalOptionSet@odata.bind" is the GlobalOptionSet property
        if name and name not in allowed and key not in allowed:
            raise unknown_property(type_name, name)


def odata_type(body: Record, default: str | None = None) -> str | None:
    """``@odata.type`` without the namespace (``#`` tolerated); an unknown namespace is the model's error."""
    raw = body.get("@odata.type", default)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.lstrip("#").startswith(f"{NS}."):
        raise bad_request(
            f"A type named '{raw}' could not be resolved by the model. When a model is available, each type name "
            "must resolve to a valid type."
        )
    return raw.lstrip("#").removeprefix(f"{NS}.")


def schema_name(body: Record, type_name: str, kind: str) -> str:
    """``SchemaName``: present, a string, and of the allowed characters (the prefix is ``customize.py``'s)."""
    value = body.get("SchemaName")
    if value is None or value == "":
        raise required("SchemaName", type_name)
    if not isinstance(value, str):
        raise wrong_literal(value, "Edm.String")
    if not NAME_RE.fullmatch(value):
        raise bad_request(
            f"Invalid name for {kind} {value}. Only characters within the ranges [A-Z], [a-z] or [0-9] or _ are "
            "allowed. The first character may only be in the ranges [A-Z], [a-z] or _.",
            CODE_INVALID_ARGUMENT,
        )
    return value


def label(value: Any, prop: str) -> str:
    """A ``Label``: the 1033 text of its ``LocalizedLabels`` (the first one when there is no 1033 entry).

    "you only need to set the LocalizedLabels property. The UserLocalizedLabel value returned is based
    on the user's language preference and is read-only" (create-update-entity-definitions-using-web-api.md)."""
    if value is None:
        return ""
    if not isinstance(value, dict):
        raise bad_request(f"The value of '{prop}' must be a {NS}.Label object.", CODE_PAYLOAD)
    check_properties(value, _LABEL, "Label")
    labels = value.get("LocalizedLabels", [])
    if not isinstance(labels, list):
        raise bad_request(f"'{prop}/LocalizedLabels' must be an array of {NS}.LocalizedLabel.", CODE_PAYLOAD)
    texts: dict[int, str] = {}
    for item in labels:
        if not isinstance(item, dict):
            raise bad_request(f"'{prop}/LocalizedLabels' must be an array of {NS}.LocalizedLabel.", CODE_PAYLOAD)
        check_properties(item, _LOCALIZED_LABEL, "LocalizedLabel")
        text, language = item.get("Label"), item.get("LanguageCode")
        if not isinstance(text, str):
            raise wrong_literal(text, "Edm.String")
        if not isinstance(language, int) or isinstance(language, bool):
            raise wrong_literal(language, "Edm.Int32")
        texts.setdefault(language, text)
    return texts.get(1033, next(iter(texts.values()), ""))


def _bool(body: Record, prop: str, default: bool) -> bool:
    value = body.get(prop, default)
    if not isinstance(value, bool):
        raise wrong_literal(value, "Edm.Boolean")
    return value


def _int(body: Record, prop: str, default: int | None, low: int, high: int, *, nullable: bool = False) -> int | None:
    value = body.get(prop, default)
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise wrong_literal(value, "Edm.Int32")
    if not low <= value <= high:
        raise bad_request(
            f"The value {value} of '{prop}' is outside the valid range {low} to {high}.", CODE_INVALID_ARGUMENT
        )
    return value


def _number(body: Record, prop: str, default: float, low: float, high: float) -> float:
    value = body.get(prop, default)
    if value is None:
        value = default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise wrong_literal(value, "Edm.Double")
    if not low <= value <= high:
        raise bad_request(
            f"The value {value} of '{prop}' is outside the valid range {low:g} to {high:g}.", CODE_INVALID_ARGUMENT
        )
    return value


def _enum_value(body: Record, prop: str, allowed: frozenset[str], default: str, *, complex_value: bool) -> str:
    """An enum given as ``"X"`` or, for the managed-property / type-name complex values, ``{"Value": "X"}``."""
    raw = body.get(prop)
    if raw is None:
        return default
    if complex_value:
        if not isinstance(raw, dict):
            raise bad_request(f"The value of '{prop}' must be an object with a 'Value'.", CODE_PAYLOAD)
        check_properties(raw, _MANAGED_PROPERTY, prop)
        raw = raw.get("Value")
    if not isinstance(raw, str) or raw not in allowed:
        raise bad_request(
            f"The value '{raw}' of '{prop}' is not valid here. Valid values: {', '.join(sorted(allowed))}.",
            CODE_INVALID_ARGUMENT,
        )
    return raw


def _required_level(body: Record) -> str:
    """``RequiredLevel.Value``: None, Recommended or ApplicationRequired (SystemRequired is the platform's own)."""
    return _enum_value(body, "RequiredLevel", _REQUIRED_LEVELS, "None", complex_value=True)


# ----------------------------------------------------------------------------- attributes


def parse_attribute(body: Any, *, in_entity: bool = False) -> AttributeDefinition:
    """One ``AttributeMetadata`` subtype body (POST …/Attributes, or an item of a table's ``Attributes``)."""
    if not isinstance(body, dict):
        raise bad_request("An attribute definition must be a JSON object.", CODE_PAYLOAD)
    type_name = odata_type(body)
    if type_name is None:
        raise bad_request(
            "The '@odata.type' of the attribute is required to tell which AttributeMetadata type it is "
            f"(for example '{NS}.StringAttributeMetadata').",
            CODE_INVALID_ARGUMENT,
        )
    if type_name in _UNSUPPORTED_ATTRIBUTE_TYPES:
        if type_name in ("LookupAttributeMetadata", "ComplexLookupAttributeMetadata"):
            raise not_simulated(
                f"Creating a {type_name} through Attributes (create the lookup with its relationship: POST "
                "RelationshipDefinitions with a OneToManyRelationshipMetadata and its Lookup)"
            )
        raise not_simulated(f"Creating a {type_name} column")
    if type_name not in ATTRIBUTE_TYPES:
        raise bad_request(
            f"The type '{NS}.{type_name}' is not an AttributeMetadata type; a column needs one of its derived types.",
            CODE_PAYLOAD,
        )
    kind, type_code, extra = ATTRIBUTE_TYPES[type_name]
    check_properties(body, _ATTRIBUTE | extra, type_name)
    name = schema_name(body, type_name, "attribute")
    if "AttributeType" in body and body["AttributeType"] != kind:
        raise bad_request(
            f"AttributeType '{body['AttributeType']}' does not match the type {NS}.{type_name} ({kind}).",
            CODE_INVALID_ARGUMENT,
        )
    _enum_value(body, "AttributeTypeName", frozenset({type_code}), type_code, complex_value=True)
    primary = _bool(body, "IsPrimaryName", False)
    if primary and not in_entity:
        raise bad_request(
            f"The new {name} attribute is set as the primary name attribute, but a table has its primary name "
            "attribute from its creation. An entity can only have one primary name attribute.",
            "0x8004701e",
        )
    facts: dict[str, Any] = {
        "custom": True,
        "display_name": label(body.get("DisplayName"), "DisplayName"),
        "required": _required_level(body),
    }
    global_bind: str | None = None
    options: tuple[tuple[int | None, str], ...] = ()
    if kind == "String":
        facts["max_length"] = _int(body, "MaxLength", 100, 1, 4000)
        fmt = _enum_value(body, "Format", _STRING_FORMATS, "Text", complex_value=False)
        facts["format"] = _enum_value(body, "FormatName", _STRING_FORMATS, fmt, complex_value=True)
        if primary and facts["format"] != "Text":
            raise bad_request("The primary name attribute must use Text format.", CODE_INVALID_ARGUMENT)
    elif primary:
        raise bad_request("Primary UI Attribute has to be of type String", "0x8004700e")
    elif kind == "Memo":
        facts["max_length"] = _int(body, "MaxLength", 2000, 1, 1048576)
        fmt = _enum_value(body, "Format", _MEMO_FORMATS, "TextArea", complex_value=False)
        facts["format"] = _enum_value(body, "FormatName", _MEMO_FORMATS, fmt, complex_value=True)
    elif kind == "Boolean":
        facts["default"] = _bool(body, "DefaultValue", False)
        options = _boolean_options(body.get("OptionSet"))
        facts["options"] = options
    elif kind == "Picklist":
        bound = body.get("GlobalOptionSet@odata.bind")
        local = body.get("OptionSet")
        if (bound is None) == (local is None):
            raise bad_request(
                "A choice column needs either a local 'OptionSet' or 'GlobalOptionSet@odata.bind' "
                "(not both, not neither).",
                CODE_INVALID_ARGUMENT,
            )
        if bound is not None:
            if not isinstance(bound, str):
                raise wrong_literal(bound, "Edm.String")
            global_bind = bound
        else:
            options = _picklist_options(local)
        _int(body, "DefaultFormValue", -1, -1, 2147483647, nullable=True)
    elif kind == "Money":
        facts["precision"] = _int(body, "Precision", 2, 0, 4)
        _int(body, "PrecisionSource", 2, 0, 2)
        facts["min_value"] = _number(body, "MinValue", -922337203685477, -922337203685477, 922337203685477)
        facts["max_value"] = _number(body, "MaxValue", 922337203685477, -922337203685477, 922337203685477)
    elif kind == "Integer":
        facts["min_value"] = _int(body, "MinValue", -2147483648, -2147483648, 2147483647)
        facts["max_value"] = _int(body, "MaxValue", 2147483647, -2147483648, 2147483647)
        _enum_value(body, "Format", frozenset({"None"}), "None", complex_value=False)
    elif kind == "Decimal":
        facts["precision"] = _int(body, "Precision", 2, 0, 10)
        facts["min_value"] = _number(body, "MinValue", -100000000000, -100000000000, 100000000000)
        facts["max_value"] = _number(body, "MaxValue", 100000000000, -100000000000, 100000000000)
    elif kind == "DateTime":
        fmt = _enum_value(body, "Format", frozenset({"DateOnly", "DateAndTime"}), "DateAndTime", complex_value=False)
        behavior = _enum_value(
            body,
            "DateTimeBehavior",
            frozenset({"UserLocal", "DateOnly", "TimeZoneIndependent"}),
            "UserLocal",
            complex_value=True,
        )
        if behavior == "TimeZoneIndependent":
            raise not_simulated("DateTimeBehavior TimeZoneIndependent")
        if behavior == "DateOnly" and fmt != "DateOnly":
            # InvalidDateTimeFormat (0x800608A2) in the service's error list.
            raise bad_request(
                'You can\'t change the format value of this attribute to "Date and Time" when the behavior is '
                '"Date Only."',
                "0x800608a2",
            )
        facts["format"] = fmt
        facts["date_only"] = behavior == "DateOnly"
    if facts.get("min_value") is not None and facts["min_value"] > facts["max_value"]:
        raise bad_request("MinValue must not be greater than MaxValue.", CODE_INVALID_ARGUMENT)
    column = Column(name, kind, **facts)
    return AttributeDefinition(column, primary, global_bind, options)


def _boolean_options(value: Any) -> tuple[tuple[int | None, str], ...]:
    """A two-option column's ``OptionSet``: ``TrueOption`` (Value 1) and ``FalseOption`` (Value 0), each labelled."""
    if value is None:
        raise required("OptionSet", "BooleanAttributeMetadata")
    if not isinstance(value, dict):
        raise bad_request("The value of 'OptionSet' must be a BooleanOptionSetMetadata object.", CODE_PAYLOAD)
    check_properties(value, _BOOLEAN_OPTION_SET, "BooleanOptionSetMetadata")
    if value.get("OptionSetType", "Boolean") != "Boolean":
        raise bad_request("A Boolean column's OptionSet has OptionSetType 'Boolean'.", CODE_INVALID_ARGUMENT)
    result: list[tuple[int | None, str]] = []
    for prop, expected in (("TrueOption", 1), ("FalseOption", 0)):
        option = value.get(prop)
        if not isinstance(option, dict):
            raise required(f"OptionSet/{prop}", "BooleanAttributeMetadata")
        check_properties(option, _OPTION, "OptionMetadata")
        if option.get("Value", expected) != expected:
            raise bad_request(f"The {prop} of a Boolean column has Value {expected}.", CODE_INVALID_ARGUMENT)
        result.append((expected, label(option.get("Label"), f"OptionSet/{prop}/Label")))
    return tuple(result)


def option_list(value: Any, type_name: str) -> tuple[tuple[int | None, str], ...]:
    """``Options``: labelled values, unique; a null Value is left for the service to assign."""
    if not isinstance(value, list) or not value:
        raise required("Options", type_name)
    seen: set[int] = set()
    result: list[tuple[int | None, str]] = []
    for option in value:
        if not isinstance(option, dict):
            raise bad_request("Each item of 'Options' must be an OptionMetadata object.", CODE_PAYLOAD)
        check_properties(option, _OPTION, "OptionMetadata")
        number = _int(option, "Value", None, -2147483648, 2147483647, nullable=True)
        if number is not None:
            if number in seen:
                # The simulator's wording; the service refuses duplicate option values.
                raise bad_request(f"The option value {number} appears more than once.", CODE_INVALID_ARGUMENT)
            seen.add(number)
        result.append((number, label(option.get("Label"), "Options/Label")))
    return tuple(result)


def _picklist_options(value: Any) -> tuple[tuple[int | None, str], ...]:
    if not isinstance(value, dict):
        raise bad_request("The value of 'OptionSet' must be an OptionSetMetadata object.", CODE_PAYLOAD)
    check_properties(value, _OPTION_SET, "OptionSetMetadata")
    if odata_type(value, f"{NS}.OptionSetMetadata") != "OptionSetMetadata":
        raise bad_request("A choice column's OptionSet is a Microsoft.Dynamics.CRM.OptionSetMetadata.", CODE_PAYLOAD)
    if value.get("IsGlobal", False) is not False:
        raise bad_request(
            "A local OptionSet has IsGlobal false; bind a global choice with 'GlobalOptionSet@odata.bind'.",
            CODE_INVALID_ARGUMENT,
        )
    if value.get("OptionSetType", "Picklist") != "Picklist":
        raise bad_request("A choice column's OptionSet has OptionSetType 'Picklist'.", CODE_INVALID_ARGUMENT)
    return option_list(value.get("Options"), "OptionSetMetadata")


# ----------------------------------------------------------------------------- tables


def parse_entity(body: Record) -> EntityDefinition:
    check_properties(body, _ENTITY, "EntityMetadata")
    if odata_type(body, f"{NS}.EntityMetadata") != "EntityMetadata":
        raise bad_request(f"A table definition is a {NS}.EntityMetadata.", CODE_PAYLOAD)
    name = schema_name(body, "EntityMetadata", "entity")
    for prop in ("DisplayName", "DisplayCollectionName", "OwnershipType", "HasActivities", "HasNotes"):
        if prop not in body:
            raise required(prop, "EntityMetadata")
    display_name = label(body["DisplayName"], "DisplayName")
    collection_name = label(body["DisplayCollectionName"], "DisplayCollectionName")
    if not display_name or not collection_name:
        raise bad_request("DisplayName and DisplayCollectionName need a LocalizedLabel.", "0x8004700c")
    ownership = body["OwnershipType"]
    if ownership not in ("UserOwned", "OrganizationOwned"):
        if ownership in ("BusinessOwned", "None", "TeamOwned", "BusinessParented"):
            raise bad_request("The specified ownership type mask is not valid for this operation", "0x8004700d")
        raise bad_request(f"The value '{ownership}' is not a valid OwnershipTypes value.", CODE_PAYLOAD)
    if _bool(body, "IsActivity", False):
        raise not_simulated("Creating an activity table (IsActivity true)")
    if body.get("TableType", "Standard") != "Standard":
        raise not_simulated(f"TableType '{body['TableType']}'")
    entity_set = body.get("EntitySetName")
    if entity_set is not None and (not isinstance(entity_set, str) or not NAME_RE.fullmatch(entity_set)):
        raise bad_request(f"'{entity_set}' is not a valid entity set name.", CODE_INVALID_ARGUMENT)
    items = body.get("Attributes")
    if not isinstance(items, list):
        raise required("Attributes", "EntityMetadata")
    attributes = tuple(parse_attribute(item, in_entity=True) for item in items)
    primaries = [a for a in attributes if a.primary_name]
    if not primaries:
        raise bad_request(f"PrimaryName attribute not found for Entity: {name}", "0x80044355")
    if len(primaries) > 1:
        first, second = primaries[0].column.schema_name, primaries[1].column.schema_name
        raise bad_request(
            f"The new {second} attribute is set as the primary name attribute for the {name.lower()} entity. The "
            f"{name.lower()} entity already has the {first} attribute set as the primary name attribute. An entity "
            "can only have one primary name attribute.",
            "0x8004701e",
        )
    return EntityDefinition(
        schema_name=name,
        display_name=display_name,
        display_collection_name=collection_name,
        ownership=ownership,
        has_activities=_bool(body, "HasActivities", False),
        has_notes=_bool(body, "HasNotes", False),
        entity_set_name=entity_set,
        attributes=attributes,
    )


def default_collection_name(logical: str) -> str:
    """The plural the simulator derives for ``LogicalCollectionName`` and so ``EntitySetName``.

    "By default it is the same as the LogicalCollectionName" (EntityMetadata.EntitySetName); the
    service derives that from the logical name with English plural rules: a consonant + ``y`` gives
    ``ies``, a trailing ``s``, ``x``, ``z``, ``ch`` or ``sh`` gives ``es``, anything else takes ``s``
    (``new_bankaccount`` -> ``new_bankaccounts``, ``cosell_solution`` -> ``cosell_solutions``). Send
    ``EntitySetName`` to choose another one."""
    if len(logical) > 1 and logical.endswith("y") and logical[-2] not in "aeiou":
        return logical[:-1] + "ies"
    if logical.endswith(("s", "x", "z", "ch", "sh")):
        return logical + "es"
    return logical + "s"


# ----------------------------------------------------------------------------- relationships


def parse_relationship(body: Record) -> RelationshipDefinition:
    type_name = odata_type(body)
    if type_name is None:
        raise bad_request(
            "You must include the @odata.type property value of Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata "
            "or Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata.",
            CODE_INVALID_ARGUMENT,
        )
    if type_name == "ManyToManyRelationshipMetadata":
        raise not_simulated("Creating a many-to-many relationship")
    if type_name != "OneToManyRelationshipMetadata":
        raise bad_request(f"'{NS}.{type_name}' is not a relationship type that can be created.", CODE_PAYLOAD)
    check_properties(body, _RELATIONSHIP, type_name)
    name = schema_name(body, type_name, "relationship")
    texts: dict[str, str | None] = {}
    for prop in (
        "ReferencedEntity",
        "ReferencingEntity",
        "ReferencedAttribute",
        "ReferencingEntityNavigationPropertyName",
        "ReferencedEntityNavigationPropertyName",
    ):
        value = body.get(prop)
        if value is not None and not isinstance(value, str):
            raise wrong_literal(value, "Edm.String")
        texts[prop] = value
    for prop in ("ReferencedEntity", "ReferencingEntity"):
        if not texts[prop]:
            raise required(prop, type_name)
    for prop in ("ReferencingEntityNavigationPropertyName", "ReferencedEntityNavigationPropertyName"):
        if texts[prop] is not None and not NAME_RE.fullmatch(texts[prop] or ""):
            raise bad_request(f"'{texts[prop]}' is not a valid navigation property name.", CODE_INVALID_ARGUMENT)
    if _bool(body, "IsHierarchical", False):
        raise not_simulated("A hierarchical relationship")
    _cascade(body.get("CascadeConfiguration"))
    menu = body.get("AssociatedMenuConfiguration")
    if menu is not None and not isinstance(menu, dict):
        raise bad_request("AssociatedMenuConfiguration must be an object.", CODE_PAYLOAD)
    lookup = body.get("Lookup")
    if lookup is None:
        raise required("Lookup", type_name)
    if not isinstance(lookup, dict):
        raise bad_request("The value of 'Lookup' must be a LookupAttributeMetadata object.", CODE_PAYLOAD)
    if odata_type(lookup, f"{NS}.LookupAttributeMetadata") != "LookupAttributeMetadata":
        raise bad_request(f"A relationship's Lookup is a {NS}.LookupAttributeMetadata.", CODE_PAYLOAD)
    check_properties(lookup, LOOKUP_PROPERTIES, "LookupAttributeMetadata")
    if lookup.get("AttributeType", "Lookup") != "Lookup":
        raise bad_request("The Lookup of a one-to-many relationship has AttributeType 'Lookup'.", CODE_INVALID_ARGUMENT)
    _enum_value(lookup, "AttributeTypeName", frozenset({"LookupType"}), "LookupType", complex_value=True)
    referenced = (texts["ReferencedEntity"] or "").lower()
    targets = lookup.get("Targets")
    if targets is not None and targets != [referenced]:
        raise bad_request(f"The Lookup's Targets must be ['{referenced}'].", CODE_INVALID_ARGUMENT)
    column = Column(
        schema_name(lookup, "LookupAttributeMetadata", "attribute"),
        "Lookup",
        targets=(referenced,),
        custom=True,
        display_name=label(lookup.get("DisplayName"), "Lookup/DisplayName"),
        required=_required_level(lookup),
    )
    return RelationshipDefinition(
        schema_name=name,
        referenced_entity=referenced,
        referenced_attribute=texts["ReferencedAttribute"],
        referencing_entity=(texts["ReferencingEntity"] or "").lower(),
        lookup=column,
        referencing_nav=texts["ReferencingEntityNavigationPropertyName"],
        referenced_nav=texts["ReferencedEntityNavigationPropertyName"],
    )


def _cascade(value: Any) -> None:
    """``CascadeConfiguration``: accepted and checked; the simulator does not cascade (deletes leave children)."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad_request("CascadeConfiguration must be an object.", CODE_PAYLOAD)
    for action, kind in value.items():
        if action.startswith("@"):
            continue
        if action not in CASCADE_ACTIONS:
            raise unknown_property("CascadeConfiguration", action)
        allowed = DELETE_CASCADE_TYPES if action == "Delete" else CASCADE_TYPES - {"RemoveLink", "Restrict"}
        if kind not in allowed:
            # InvalidCascadeLinkType (0x80048204) in the service's error list.
            raise bad_request("The cascade link type is not valid for the cascade action.", "0x80048204")


# ----------------------------------------------------------------------------- keys and choices


def parse_key(body: Record) -> AlternateKey:
    if odata_type(body, f"{NS}.EntityKeyMetadata") != "EntityKeyMetadata":
        raise bad_request(f"An alternate key is a {NS}.EntityKeyMetadata.", CODE_PAYLOAD)
    check_properties(body, _KEY, "EntityKeyMetadata")
    name = schema_name(body, "EntityKeyMetadata", "entity key")
    columns = body.get("KeyAttributes")
    if not isinstance(columns, list) or not columns:
        raise required("KeyAttributes", "EntityKeyMetadata")
    if not all(isinstance(c, str) and c for c in columns):
        raise bad_request("KeyAttributes are the logical names of the key's columns.", CODE_PAYLOAD)
    if len(columns) > MAX_KEY_COLUMNS:
        raise bad_request(
            f"Invalid EntityKey Operation performed : a key has at most {MAX_KEY_COLUMNS} columns.", "0x8006088f"
        )
    if len(set(columns)) != len(columns):
        raise bad_request(
            "Invalid EntityKey Operation performed : a column appears twice in KeyAttributes.", "0x8006088f"
        )
    return AlternateKey(name, tuple(columns), display_name=label(body.get("DisplayName"), "DisplayName"))


def parse_option_set(body: Record) -> OptionSetDefinition:
    check_properties(body, _OPTION_SET, "OptionSetMetadata")
    if odata_type(body, f"{NS}.OptionSetMetadata") != "OptionSetMetadata":
        raise not_simulated(f"Creating a global {body.get('@odata.type')}")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise required("Name", "OptionSetMetadata")
    if not NAME_RE.fullmatch(name):
        raise bad_request(f"Invalid name for option set {name}.", CODE_INVALID_ARGUMENT)
    if body.get("OptionSetType", "Picklist") != "Picklist":
        raise not_simulated(f"A global choice of OptionSetType '{body.get('OptionSetType')}'")
    if body.get("IsGlobal", True) is not True:
        raise bad_request("A choice created in GlobalOptionSetDefinitions is global.", CODE_INVALID_ARGUMENT)
    return OptionSetDefinition(
        name, label(body.get("DisplayName"), "DisplayName"), option_list(body.get("Options"), "OptionSetMetadata")
    )

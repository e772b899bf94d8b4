"""What the simulated org's tables look like, as data, and the Web API view derived from it.

``tables.py`` holds the standard tables (curated from Microsoft's generated entity reference) and
``cosell.py`` the schema an org provisioned for the sync adds. :func:`build_schema` combines them:
``"bare"`` is a fresh org with standard tables only, ``"provisioned"`` adds the ``cosell_*`` columns,
alternate key, choice and the ``cosell_solution`` table. The records, query and metadata endpoints
all read names, types, lengths and navigation properties from the resulting :class:`Schema`; the
metadata create endpoints (``customize.py``) grow it at run time with :meth:`Schema.load`, in place,
so every holder of the schema sees the new tables, columns, relationships and keys at once.

Vocabulary, as in Dataverse: a *column* (attribute) has a ``SchemaName`` and a lower-case
``LogicalName``; a lookup column ``x`` is read as ``_x_value`` and written through a single-valued
navigation property named by its relationship's ``ReferencingEntityNavigationPropertyName``; the
referenced table sees the same relationship as a collection-valued navigation property named by
``ReferencedEntityNavigationPropertyName``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

AttributeType = Literal[
    "BigInt",
    "Boolean",
    "Customer",
    "DateTime",
    "Decimal",
    "Double",
    "Integer",
    "Lookup",
    "Memo",
    "Money",
    "Owner",
    "Picklist",
    "State",
    "Status",
    "String",
    "Uniqueidentifier",
]
Ownership = Literal["UserOwned", "OrganizationOwned", "BusinessOwned", "None"]
SchemaKind = Literal["bare", "provisioned"]

LOOKUP_TYPES = frozenset({"Lookup", "Owner", "Customer"})
OWNER_ENTITY = "owner"  # ReferencedEntity of every ownerid relationship (owner_accounts, owner_leads, ...)
PRINCIPAL = "principal"  # the abstract type of the ownerid navigation property (systemuser or team)
_METADATA_NS = uuid.UUID("5d1b3c2e-7a56-4f0e-9a8b-2c7d0e6f4a11")


def metadata_id(*parts: str) -> str:
    """A stable ``MetadataId`` for a piece of schema (the same on every run, like a real org's)."""
    return str(uuid.uuid5(_METADATA_NS, "/".join(parts)))


@dataclass(frozen=True)
class Column:
    """One attribute; ``logical`` is the lower-cased ``schema_name``, as Dataverse derives it."""

    schema_name: str
    type: AttributeType
    max_length: int | None = None  # String / Memo
    min_value: float | None = None  # Integer / Money / Decimal / Double
    max_value: float | None = None
    precision: int | None = None  # Money / Decimal / Double
    date_only: bool = False  # DateTime with DateTimeBehavior DateOnly: the wire value is yyyy-MM-dd
    options: tuple[tuple[int, str], ...] = ()  # Picklist values and labels
    targets: tuple[str, ...] = ()  # Lookup / Customer / Owner: logical names of the referenced tables
    format: str | None = None  # Text, Email, Url, Phone, TextArea
    required: str = "None"  # RequiredLevel: None, Recommended, ApplicationRequired, SystemRequired
    writable: bool = True  # IsValidForCreate or IsValidForUpdate
    default: bool | None = None  # Boolean DefaultValue, applied on create
    custom: bool = False
    display_name: str = ""  # DisplayName (1033); empty where the curated tables leave it out
    option_set: str | None = None  # Picklist bound to a global choice: its Name (options are a copy)

    @property
    def logical(self) -> str:
        return self.schema_name.lower()

    @property
    def is_lookup(self) -> bool:
        return self.type in LOOKUP_TYPES

    @property
    def wire_name(self) -> str:
        """The property a GET returns: ``_x_value`` for lookups, the logical name otherwise."""
        return f"_{self.logical}_value" if self.is_lookup else self.logical


@dataclass(frozen=True)
class Relationship:
    """A one-to-many relationship, declared on its referencing (many) side.

    ``referenced_nav`` defaults to the SchemaName, which is what Dataverse uses for
    ``ReferencedEntityNavigationPropertyName`` of both system and maker-created relationships.
    """

    schema_name: str
    referencing_attribute: str
    referenced_entity: str
    referencing_nav: str
    referenced_nav: str | None = None
    custom: bool = False

    @property
    def collection_nav(self) -> str:
        return self.referenced_nav or self.schema_name


@dataclass(frozen=True)
class AlternateKey:
    schema_name: str
    attributes: tuple[str, ...]
    display_name: str = ""

    @property
    def logical(self) -> str:
        return self.schema_name.lower()


@dataclass(frozen=True)
class State:
    """A ``statecode`` value with its valid ``statuscode`` values; the first status is the default."""

    value: int
    invariant: str
    statuses: tuple[tuple[int, str], ...]

    @property
    def default_status(self) -> int:
        return self.statuses[0][0]


@dataclass(frozen=True)
class Table:
    """A table as data: enough of the entity reference for the Web API and the metadata endpoints."""

    schema_name: str
    set_name: str
    primary_id: str
    primary_name: str
    ownership: Ownership
    columns: tuple[Column, ...]
    relationships: tuple[Relationship, ...] = ()  # many-to-one: lookups on this table
    keys: tuple[AlternateKey, ...] = ()
    states: tuple[State, ...] = ()
    state_enum: str | None = None  # "OpportunityState": how the service names states in messages
    display_name: str = ""
    custom: bool = False
    abstract: bool = False  # principal: a navigation type only, no entity set
    source: str = ""  # the reference page the facts come from
    display_collection_name: str = ""
    has_activities: bool = False
    has_notes: bool = False
    customizable: bool = True  # False: the metadata API refuses new columns, keys and relationships on it

    @property
    def logical(self) -> str:
        return self.schema_name.lower()


@dataclass(frozen=True)
class Extension:
    """Schema an org adds to the standard tables (what a solution import or the maker portal creates)."""

    tables: tuple[Table, ...] = ()
    columns: dict[str, tuple[Column, ...]] = field(default_factory=dict)  # table logical name -> new columns
    relationships: dict[str, tuple[Relationship, ...]] = field(default_factory=dict)
    keys: dict[str, tuple[AlternateKey, ...]] = field(default_factory=dict)

    def apply(self, tables: dict[str, Table]) -> dict[str, Table]:
        result = dict(tables)
        for table in self.tables:
            result[table.logical] = table
        for logical, columns in self.columns.items():
            result[logical] = replace(result[logical], columns=(*result[logical].columns, *columns))
        for logical, relationships in self.relationships.items():
            table = result[logical]
            result[logical] = replace(table, relationships=(*table.relationships, *relationships))
        for logical, keys in self.keys.items():
            result[logical] = replace(result[logical], keys=(*result[logical].keys, *keys))
        return result


# ----------------------------------------------------------------------------- the Web API view


@dataclass(frozen=True)
class Nav:
    """A single-valued navigation property (the writable/expandable side of a lookup)."""

    name: str
    attribute: str  # the lookup column's logical name
    column: str  # the wire column, ``_<attribute>_value``
    targets: tuple[str, ...]  # logical names of the tables a bind may point at
    declared_type: str  # the navigation property's type: a table logical name, or ``principal``
    relationship: str
    writable: bool


@dataclass(frozen=True)
class CollectionNav:
    """A collection-valued navigation property: rows of ``target`` whose lookup ``column`` is this row."""

    name: str
    target: str
    column: str
    relationship: str


@dataclass(frozen=True)
class StoredRelationship:
    """A relationship together with the table it was declared on."""

    referencing_entity: str
    relationship: Relationship


class Entity:
    """A table as the Web API exposes it: wire properties, navigation properties, keys and states."""

    def __init__(self, table: Table, navs: dict[str, Nav], collections: dict[str, CollectionNav]) -> None:
        self.table = table
        self.logical = table.logical
        self.set_name = table.set_name
        self.pk = table.primary_id
        self.type_name = f"Microsoft.Dynamics.CRM.{table.logical}"
        self.columns: dict[str, Column] = {c.logical: c for c in table.columns}
        self.navs = navs
        self.collections = collections
        self.keys = table.keys
        self.states: dict[int, State] = {s.value: s for s in table.states}

    @cached_property
    def values(self) -> dict[str, Column]:
        """Columns a body may set by name (writable, not lookups, not the key)."""
        return {n: c for n, c in self.columns.items() if c.writable and not c.is_lookup and n != self.pk}

    @cached_property
    def read_only(self) -> frozenset[str]:
        """Columns the service ignores in a body (createdon, fullname, ...)."""
        return frozenset(n for n, c in self.columns.items() if not c.writable and not c.is_lookup)

    @cached_property
    def readable(self) -> tuple[str, ...]:
        """Every property a GET returns without ``$select`` (Dataverse returns unset ones as null)."""
        names = [self.pk]
        for column in self.table.columns:
            if column.wire_name not in names:
                names.append(column.wire_name)
        return tuple(names)

    @cached_property
    def readable_set(self) -> frozenset[str]:
        return frozenset(self.readable)

    @cached_property
    def lookup_columns(self) -> dict[str, Column]:
        """Wire name (``_x_value``) -> lookup column."""
        return {c.wire_name: c for c in self.table.columns if c.is_lookup}

    def navs_for(self, wire_column: str) -> list[Nav]:
        return [nav for nav in self.navs.values() if nav.column == wire_column]

    def state_name(self, value: int) -> str:
        state = self.states[value]
        return f"{self.table.state_enum}.{state.invariant}" if self.table.state_enum else state.invariant


class Schema:
    """All tables of one org and the navigation properties their relationships give them."""

    def __init__(self, tables: dict[str, Table]) -> None:
        self.load(tables)

    def load(self, tables: dict[str, Table]) -> None:
        """(Re)derive everything from ``tables``, assigning the results only at the end so a reader never
        sees half a schema; callers that change schema at run time also hold the store lock."""
        relationships: dict[str, StoredRelationship] = {}
        for table in tables.values():
            for rel in table.relationships:
                relationships[rel.schema_name] = StoredRelationship(table.logical, rel)
        navs: dict[str, dict[str, Nav]] = {name: {} for name in tables}
        collections: dict[str, dict[str, CollectionNav]] = {name: {} for name in tables}
        for stored in relationships.values():
            rel, referencing = stored.relationship, stored.referencing_entity
            column = next(c for c in tables[referencing].columns if c.logical == rel.referencing_attribute)
            if rel.referenced_entity == OWNER_ENTITY:
                targets, declared = tuple(t for t in column.targets if t in tables), PRINCIPAL
            else:
                targets, declared = (rel.referenced_entity,), rel.referenced_entity
            navs[referencing][rel.referencing_nav] = Nav(
                rel.referencing_nav,
                column.logical,
                column.wire_name,
                targets,
                declared,
                rel.schema_name,
                column.writable,
            )
            if rel.referenced_entity in tables:
                collections[rel.referenced_entity][rel.collection_nav] = CollectionNav(
                    rel.collection_nav, referencing, column.wire_name, rel.schema_name
                )
        entities = {name: Entity(table, navs[name], collections[name]) for name, table in tables.items()}
        self.tables = tables
        self.relationships = relationships
        self.entities = entities
        self.by_set = {e.set_name: e for e in entities.values() if not e.table.abstract}

    def entity(self, logical: str) -> Entity:
        return self.entities[logical]

    def entity_sets(self) -> list[str]:
        return list(self.by_set)


def build_tables(kind: SchemaKind = "provisioned") -> dict[str, Table]:
    """A fresh org's tables: standard tables only (``bare``) or with the sync's custom schema (``provisioned``)."""
    from sandbox.sims.dataverse import cosell, tables  # data modules import the types above

    standard = {t.logical: t for t in tables.STANDARD_TABLES}
    if kind == "bare":
        return standard
    if kind == "provisioned":
        return cosell.PROVISIONED.apply(standard)
    raise ValueError(f"schema must be 'bare' or 'provisioned', not {kind!r}")


def build_schema(kind: SchemaKind = "provisioned") -> Schema:
    return Schema(build_tables(kind))

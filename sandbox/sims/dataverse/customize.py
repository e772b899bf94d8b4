"""The metadata Web API's create side: new tables, columns, one-to-many relationships, alternate keys and
global choices, the publish actions, the caller's customizer privileges and asynchronous key indexes.

What is created goes into the org's :class:`Schema` (``Schema.load``, in place), so the read endpoints
(``metadata.py``) serve it and the records API enforces it exactly like the schema an org starts with.
Request shapes are checked in ``definitions.py``; this module adds the rules that need the org.

Rules and their sources (``MicrosoftDocs/powerapps-docs``, ``powerapps-docs/developer/data-platform/``):

- Success is ``204 No Content`` with ``OData-EntityId`` naming the new item:
  ``EntityDefinitions(<MetadataId>)`` for a table, ``EntityDefinitions(LogicalName='x')/Attributes(<MetadataId>)``
  for a column (the table as the request addressed it), ``RelationshipDefinitions(<MetadataId>)``,
  ``GlobalOptionSetDefinitions(<MetadataId>)`` (webapi/create-update-*.md); ``…/Keys(<MetadataId>)``
  for a key (the simulator's choice, by analogy with Attributes; Microsoft's Python SDK reads the id
  from that header).
- Custom names carry the customization prefix of a publisher: "Custom attribute names must start with
  a valid customization prefix. The prefix for a solution component should match the prefix that is
  specified for the publisher of the solution." (the service's ImportAttributeNameError, 0x80048062).
  With ``MSCRM.SolutionUniqueName`` (webapi/compose-http-requests-handle-errors.md: "create a solution
  component and have it associated with an unmanaged solution") the prefix must be that solution's
  publisher's; without it, any publisher's prefix in the org is accepted (the simulator's reading: the
  docs do not say which publisher a header-less create is checked against). A bare org has only the
  default publisher (prefix ``new``), so an app must create its publisher and solution first
  (``POST publishers``, ``POST solutions``: ordinary records).
- Duplicates (400, "Expect this status code when an argument is invalid"; 412 is only for
  ConcurrencyVersionMismatch / DuplicateRecord): a table name is InvalidSchemaName 0x8004700b, an
  entity set name InvalidEntitySetName 0x8006089b, a column DuplicateAttributeSchemaName 0x80047013
  (whose documented message is just ``{0}``: the text here is the simulator's), a relationship
  EntityRelationshipSchemaNameNotUnique 0x8004432b, a key name EntityKeyNameExists 0x80060893, a key
  over the same columns EntityKeyWithSelectedAttributesExists 0x80060894, a global choice
  InvalidOptionSetSchemaName 0x80044345 (reference/web-service-error-codes.md).
- Missing privilege: 403 with PrivilegeDenied 0x80040220 (the 403 list of
  webapi/compose-http-requests-handle-errors.md) and the service's "Principal user (Id=<id>, type=8)
  is missing prvCreateWebResource privilege (Id=<id>)" wording, with the privilege each write needs:
  prvCreateEntity, prvCreateAttribute, prvCreateRelationship, prvCreateEntityKey, prvCreateOptionSet,
  prvPublishCustomizations (the names a System Customizer holds). Reads and record calls never check.
- Alternate keys: "create the index in a background process ... EntityKeyIndexStatus ... Pending, In
  Progress, Active, Failed" (define-alternate-keys-entity.md). A new key is Pending for
  ``index_seconds``, then Active, or Failed when stored rows already share its values. Until Active it
  is not one of the table's keys, so a URL using it is refused like any column set that is not a key
  ("The key in the request URI is not valid …", use-alternate-key-reference-record.md); nothing makes
  a Failed key retry (ReactivateEntityKey is not simulated).
- Publishing: "Customizations are automatically published when new items are created"
  (model-driven-apps/publish-customizations.md), so creations are usable at once and ``PublishXml`` /
  ``PublishAllXml`` change nothing here; "you must publish" applies to updates (PUT), which the
  simulator does not offer. Both actions are accepted (204) with their documented parameters.
- Not simulated: updates (PUT) and deletes of definitions, many-to-many relationships, cascading
  (``CascadeConfiguration`` is checked, not applied), money base columns, activity tables.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from werkzeug.wrappers import Request, Response

from sandbox.sims.dataverse.definitions import (
    KEY_TYPES,
    AttributeDefinition,
    default_collection_name,
    not_simulated,
    parse_attribute,
    parse_entity,
    parse_key,
    parse_option_set,
    parse_relationship,
)
from sandbox.sims.dataverse.errors import (
    CODE_INVALID_ARGUMENT,
    CODE_NOT_FOUND,
    CODE_QUERY,
    DataverseError,
    bad_request,
)
from sandbox.sims.dataverse.metadata import find_entity, not_found_entity
from sandbox.sims.dataverse.schema import AlternateKey, Column, Entity, Relationship, Table, metadata_id
from sandbox.sims.dataverse.store import Store
from sandbox.sims.dataverse.tables import (
    ACTIVE_INACTIVE,
    OWNER,
    STATE,
    STATUS,
    SYSTEM,
    owner_relationships,
    primary_key,
)
from sandbox.sims.dataverse.wire import GUID_RE, Record, base_url, empty_response, parse_key_segment, read_body

CODE_PRIVILEGE_DENIED = "0x80040220"
CODE_BAD_PREFIX = "0x80048062"
SOLUTION_HEADER = "MSCRM.SolutionUniqueName"
MAX_KEYS = 10  # "A table in a Dataverse instance can have up to ten alternate key table definitions."
PRIVILEGES = (
    "prvCreateEntity",
    "prvCreateAttribute",
    "prvCreateRelationship",
    "prvCreateEntityKey",
    "prvCreateOptionSet",
    "prvPublishCustomizations",
)
_CHILD_PATH = re.compile(r"^\((?P<key>[^)]*)\)/(?P<nav>[A-Za-z]+)$")
_CHOICE_REF = re.compile(r"^(?:.*/)?GlobalOptionSetDefinitions\((?P<key>[^)]*)\)$")
_ENTITY_ELEMENT = re.compile(r"<entity>\s*([^<]*?)\s*</entity>")


@dataclass
class KeyJob:
    """An alternate key whose index is being built (Pending) or could not be (Failed)."""

    entity: str
    key: AlternateKey
    ready_at: float
    status: str = "Pending"


@dataclass(frozen=True)
class GlobalChoice:
    name: str
    display_name: str
    options: tuple[tuple[int, str], ...]

    @property
    def metadata_id(self) -> str:
        return metadata_id("globaloptionset", self.name)


@dataclass(frozen=True)
class Publishing:
    """Where a create lands: the solution and the prefixes (-> option value prefix) its names may use."""

    solution: str
    prefixes: dict[str, int] = field(default_factory=dict)


class Customizer:
    """The org's customization state; handlers run under the store lock (the route wrapper takes it)."""

    def __init__(
        self,
        store: Store,
        *,
        index_seconds: float,
        on_new_table: Callable[[Table], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.schema = store.schema
        self.index_seconds = index_seconds
        self.clock = clock  # tests may replace it to step the key index builds
        self._on_new_table = on_new_table
        self.customizer = True
        self.missing: set[str] = set()
        self.jobs: list[KeyJob] = []
        self.choices: dict[str, GlobalChoice] = {}

    def reset(self) -> None:
        """Back to a fresh org's state (the caller reloads the schema): full rights, no key builds, no choices."""
        self.customizer = True
        self.missing = set()
        self.jobs = []
        self.choices = {}

    # ----- privileges -----
    def privileges(self) -> Record:
        return {"customizer": self.customizer, "missing": sorted(self.missing)}

    def set_privileges(
        self, *, customizer: bool | None = None, missing: list[str] | tuple[str, ...] | None = None
    ) -> None:
        if missing is not None:
            unknown = set(missing) - set(PRIVILEGES)
            if unknown:
                raise ValueError(f"unknown privileges {sorted(unknown)}; known: {', '.join(PRIVILEGES)}")
            self.missing = set(missing)
        if customizer is not None:
            self.customizer = customizer

    def _require(self, privilege: str) -> None:
        if self.customizer and privilege not in self.missing:
            return
        raise DataverseError(
            403,
            CODE_PRIVILEGE_DENIED,
            f"Principal user (Id={self.store.user_id}, type=8) is missing {privilege} privilege "
            f"(Id={metadata_id('privilege', privilege)})",
        )

    # ----- key index builds -----
    def refresh(self) -> None:
        """Finish the index builds that are due (called before every API request, under the lock)."""
        now = self.clock()
        for job in list(self.jobs):
            if job.status == "Pending" and now >= job.ready_at:
                self._build(job)

    def complete_key_indexes(self) -> None:
        for job in list(self.jobs):
            if job.status == "Pending":
                self._build(job)

    def key_jobs(self) -> list[Record]:
        return [
            {
                "entity": j.entity,
                "key": j.key.logical,
                "status": j.status,
                "ready_in": max(0.0, j.ready_at - self.clock()),
            }
            for j in self.jobs
        ]

    def _build(self, job: KeyJob) -> None:
        if self.store.key_index(job.entity, job.key.attributes) is None:
            job.status = "Failed"  # two rows already share the key's values
            return
        table = self.schema.tables[job.entity]
        self._load({**self.schema.tables, job.entity: replace(table, keys=(*table.keys, job.key))})
        self.jobs.remove(job)

    def keys_of(self, ent: Entity) -> list[tuple[AlternateKey, str]]:
        """The table's keys with their EntityKeyIndexStatus: the usable (Active) ones, then those being built."""
        active = [(key, "Active") for key in ent.keys]
        return active + [(j.key, j.status) for j in self.jobs if j.entity == ent.logical]

    # ----- routing targets -----
    def create_entity(self, request: Request) -> Response:
        self._require("prvCreateEntity")
        definition = parse_entity(read_body(request))
        publishing = self._publishing(request)
        prefix = self._prefix(publishing, definition.schema_name, "entity")
        logical = definition.schema_name.lower()
        if logical in self.schema.tables:
            raise bad_request(
                "An entity with the specified name already exists. Please specify a unique name.", "0x8004700b"
            )
        set_name = definition.entity_set_name
        if set_name is not None and not _has_prefix(set_name, prefix):
            raise bad_request(
                f"The entity set name {set_name} must start with a valid customization prefix.", "0x8006089c"
            )
        set_name = set_name or default_collection_name(logical)
        if set_name in self.schema.by_set or set_name.lower() in _RESERVED_SETS:
            raise bad_request(
                f"An entity with the specified entity set name {set_name} already exists. Specify a unique name.",
                "0x8006089b",
            )
        key = primary_key(f"{definition.schema_name}Id")
        system = [STATE, STATUS, *SYSTEM, *(OWNER if definition.ownership == "UserOwned" else ())]
        taken = {key.logical} | {c.logical for c in system}
        primary = next(a for a in definition.attributes if a.primary_name)
        columns = [key]
        for attribute in [primary, *(a for a in definition.attributes if not a.primary_name)]:
            column = self._column(attribute, publishing)
            if column.logical in taken:
                raise _duplicate_attribute(column.schema_name, logical)
            taken.add(column.logical)
            columns.append(column)
        relationships = (
            owner_relationships(f"owner_{logical}", f"user_{logical}", f"team_{logical}")
            if definition.ownership == "UserOwned"
            else ()
        )
        table = Table(
            definition.schema_name,
            set_name,
            key.logical,
            primary.column.logical,
            definition.ownership,
            (*columns, *system),
            relationships,
            states=ACTIVE_INACTIVE,
            display_name=definition.display_name,
            display_collection_name=definition.display_collection_name,
            has_activities=definition.has_activities,
            has_notes=definition.has_notes,
            custom=True,
            source="created with POST EntityDefinitions",
        )
        self._load({**self.schema.tables, logical: table})
        self._on_new_table(table)
        return _created(f"{base_url(request)}/EntityDefinitions({metadata_id('entity', logical)})")

    def create_in_entity(self, request: Request, rest: str) -> Response:
        """``POST EntityDefinitions(<key>)/Attributes`` or ``…/Keys``."""
        match = _CHILD_PATH.match(rest)
        if not match:
            raise DataverseError(405, CODE_QUERY, f"POST is not supported on 'EntityDefinitions{rest}'.")
        nav = match.group("nav")
        if nav == "Attributes":
            return self._create_attribute(request, match.group("key"))
        if nav == "Keys":
            return self._create_key(request, match.group("key"))
        if nav in ("ManyToOneRelationships", "OneToManyRelationships", "ManyToManyRelationships"):
            raise DataverseError(
                405,
                CODE_QUERY,
                f"POST is not supported on '{nav}'; create relationships with POST RelationshipDefinitions.",
            )
        raise DataverseError(404, CODE_QUERY, f"Resource not found for the segment '{nav}'.")

    def create_relationship(self, request: Request) -> Response:
        self._require("prvCreateRelationship")
        definition = parse_relationship(read_body(request))
        publishing = self._publishing(request)
        self._prefix(publishing, definition.schema_name, "relationship")
        self._prefix(publishing, definition.lookup.schema_name, "attribute")
        if definition.schema_name.lower() in {name.lower() for name in self.schema.relationships}:
            raise bad_request(
                "A relationship with the specified name already exists. Please specify a unique name.", "0x8004432b"
            )
        referenced = self._entity(definition.referenced_entity)
        referencing = self._customizable(self._entity(definition.referencing_entity))
        if definition.referenced_attribute is not None and definition.referenced_attribute.lower() != referenced.pk:
            raise bad_request(
                f"ReferencedAttribute must be the primary key of {referenced.logical} ({referenced.pk}).",
                CODE_INVALID_ARGUMENT,
            )
        lookup = definition.lookup
        if lookup.logical in referencing.columns:
            raise _duplicate_attribute(lookup.schema_name, referencing.logical)
        single = definition.referencing_nav or lookup.schema_name
        collection = definition.referenced_nav or definition.schema_name
        if single in referencing.navs or single in referencing.collections or single in referencing.readable_set:
            raise _nav_taken(single, referencing)
        if (
            collection in referenced.collections
            or collection in referenced.navs
            or collection in referenced.readable_set
            or (referenced is referencing and collection == single)
        ):
            raise _nav_taken(collection, referenced)
        table = referencing.table
        relationship = Relationship(
            definition.schema_name,
            lookup.logical,
            referenced.logical,
            single,
            definition.referenced_nav,
            custom=True,
        )
        self._load(
            {
                **self.schema.tables,
                table.logical: replace(
                    table, columns=(*table.columns, lookup), relationships=(*table.relationships, relationship)
                ),
            }
        )
        return _created(
            f"{base_url(request)}/RelationshipDefinitions({metadata_id('relationship', relationship.schema_name)})"
        )

    def create_option_set(self, request: Request) -> Response:
        self._require("prvCreateOptionSet")
        definition = parse_option_set(read_body(request))
        publishing = self._publishing(request)
        prefix = self._prefix(publishing, definition.name, "option set")
        if definition.name.lower() in {name.lower() for name in self.choices}:
            raise bad_request(
                "An OptionSet with the specified name already exists. Please specify a unique name.", "0x80044345"
            )
        choice = GlobalChoice(
            definition.name, definition.display_name, _assign(definition.options, publishing.prefixes[prefix])
        )
        self.choices[choice.name] = choice
        return _created(f"{base_url(request)}/GlobalOptionSetDefinitions({choice.metadata_id})")

    def publish(self, request: Request, action: str) -> Response:
        """``PublishXml`` (``ParameterXml``: an ``<importexportxml>`` document) or ``PublishAllXml`` (no parameters)."""
        self._require("prvPublishCustomizations")
        data = request.get_data(cache=True)
        body = read_body(request) if data.strip() else {}
        if action == "PublishAllXml":
            for name in body:
                raise bad_request(f"The parameter '{name}' is not declared on the PublishAllXml action.")
            return empty_response(204)
        unknown = set(body) - {"ParameterXml"}
        if unknown:
            raise bad_request(f"The parameter '{sorted(unknown)[0]}' is not declared on the PublishXml action.")
        xml = body.get("ParameterXml")
        if not isinstance(xml, str) or not xml.strip():
            raise bad_request("The parameter 'ParameterXml' (Edm.String) of the PublishXml action is required.")
        text = xml.strip()
        if not (text.startswith("<importexportxml>") and text.endswith("</importexportxml>")):
            raise bad_request(
                "ParameterXml must be an <importexportxml> document (the Publish request schema).",
                CODE_INVALID_ARGUMENT,
            )
        for name in _ENTITY_ELEMENT.findall(text):
            if name not in self.schema.tables or self.schema.tables[name].abstract:
                raise not_found_entity(name)
        return empty_response(204)

    # ----- the two children of a table -----
    def _create_attribute(self, request: Request, raw_key: str) -> Response:
        self._require("prvCreateAttribute")
        ent = self._customizable(find_entity(self.schema, raw_key))
        definition = parse_attribute(read_body(request))
        column = self._column(definition, self._publishing(request))
        if column.logical in ent.columns:
            raise _duplicate_attribute(column.schema_name, ent.logical)
        self._load({**self.schema.tables, ent.logical: replace(ent.table, columns=(*ent.table.columns, column))})
        location = f"{base_url(request)}/EntityDefinitions({raw_key})/Attributes"
        return _created(f"{location}({metadata_id('attribute', ent.logical, column.logical)})")

    def _create_key(self, request: Request, raw_key: str) -> Response:
        self._require("prvCreateEntityKey")
        ent = self._customizable(find_entity(self.schema, raw_key))
        key = parse_key(read_body(request))
        self._prefix(self._publishing(request), key.schema_name, "entity key")
        existing = self.keys_of(ent)
        if any(other.logical == key.logical for other, _ in existing):
            raise bad_request(
                f"An entity key with the name {key.schema_name} already exists on entity {ent.logical}.", "0x80060893"
            )
        if any(set(other.attributes) == set(key.attributes) for other, _ in existing):
            raise bad_request("An entity key with the selected attributes already exists on entity.", "0x80060894")
        if len(existing) >= MAX_KEYS:
            raise bad_request(
                f"Invalid EntityKey Operation performed : {ent.logical} already has {MAX_KEYS} alternate keys.",
                "0x8006088f",
            )
        for name in key.attributes:
            column = ent.columns.get(name)
            if column is None:
                raise bad_request(f"Attribute {name} cannot be found for entity {ent.logical}.", "0x8005e009")
            if column.type == "Lookup":
                raise not_simulated(f"An alternate key on the lookup column {name}")
            if column.type not in KEY_TYPES:
                raise bad_request(
                    f"Invalid EntityKey Operation performed : attribute {name} of type {column.type} cannot be part "
                    "of an entity key.",
                    "0x8006088f",
                )
        self.jobs.append(KeyJob(ent.logical, key, self.clock() + self.index_seconds))
        location = f"{base_url(request)}/EntityDefinitions({raw_key})/Keys"
        return _created(f"{location}({metadata_id('key', ent.logical, key.logical)})")

    # ----- helpers -----
    def _column(self, definition: AttributeDefinition, publishing: Publishing) -> Column:
        """The column to store: prefix checked, option values assigned, a global choice's options copied."""
        column = definition.column
        prefix = self._prefix(publishing, column.schema_name, "attribute")
        if definition.global_option_set is not None:
            choice = self._choice(definition.global_option_set)
            return replace(column, options=choice.options, option_set=choice.name)
        if column.type == "Picklist":
            return replace(column, options=_assign(definition.options, publishing.prefixes[prefix]))
        return column

    def _choice(self, uri: str) -> GlobalChoice:
        match = _CHOICE_REF.match(uri.strip())
        if not match:
            raise bad_request(
                f"The URI '{uri}' in 'GlobalOptionSet@odata.bind' is not a reference to GlobalOptionSetDefinitions."
            )
        raw = match.group("key").strip()
        for choice in self.choices.values():
            if GUID_RE.fullmatch(raw) and raw.lower() == choice.metadata_id:
                return choice
            if not GUID_RE.fullmatch(raw) and _name_key(raw) == choice.name:
                return choice
        raise DataverseError(404, CODE_NOT_FOUND, f"The global option set '{raw}' does not exist.")

    def _publishing(self, request: Request) -> Publishing:
        """The solution a create lands in (``MSCRM.SolutionUniqueName``, else Default) and the prefixes it allows."""
        publishers = self.store.rows["publisher"]
        requested = request.headers.get(SOLUTION_HEADER)
        if requested:
            solution = next(
                (
                    r
                    for r in self.store.rows["solution"].values()
                    if (r.get("uniquename") or "").lower() == requested.lower()
                ),
                None,
            )
            if solution is None:
                # The simulator's wording for an unknown solution unique name.
                raise DataverseError(
                    404, CODE_NOT_FOUND, f"A solution with the unique name '{requested}' does not exist."
                )
            owner = publishers.get(solution.get("_publisherid_value") or "")
            rows = [owner] if owner else []
        else:
            rows = list(publishers.values())
        prefixes = {
            str(row["customizationprefix"]).lower(): int(row.get("customizationoptionvalueprefix") or 10000)
            for row in rows
            if row.get("customizationprefix")
        }
        return Publishing(requested or "Default", prefixes)

    @staticmethod
    def _prefix(publishing: Publishing, name: str, kind: str) -> str:
        for prefix in sorted(publishing.prefixes, key=len, reverse=True):
            if _has_prefix(name, prefix):
                return prefix
        raise bad_request(
            f"Invalid name for {kind} {name}. Custom {kind} names must start with a valid customization prefix. The "
            "prefix for a solution component should match the prefix that is specified for the publisher of the "
            f"solution ({publishing.solution}: {', '.join(p + '_' for p in sorted(publishing.prefixes)) or 'none'}).",
            CODE_BAD_PREFIX,
        )

    def _entity(self, logical: str) -> Entity:
        ent = self.schema.entities.get(logical)
        if ent is None or ent.table.abstract:
            raise not_found_entity(logical)
        return ent

    @staticmethod
    def _customizable(ent: Entity) -> Entity:
        if not ent.table.customizable:
            raise bad_request("The specified entity is not customizable", "0x80047008")
        return ent

    def _load(self, tables: dict[str, Table]) -> None:
        self.schema.load(tables)
        self.store.adopt_schema()


# Names of the service's own resources: an entity set cannot shadow them.
_RESERVED_SETS = frozenset(
    name.lower()
    for name in (
        "EntityDefinitions",
        "RelationshipDefinitions",
        "GlobalOptionSetDefinitions",
        "PublishXml",
        "PublishAllXml",
        "WhoAmI",
        "WinOpportunity",
        "LoseOpportunity",
    )
)


def _has_prefix(name: str, prefix: str) -> bool:
    return name.lower().startswith(prefix.lower() + "_") and len(name) > len(prefix) + 1


def _assign(options: tuple[tuple[int | None, str], ...], option_prefix: int) -> tuple[tuple[int, str], ...]:
    """Values for the options sent with a null Value: the publisher's option value prefix then a counter
    ("let the system assign the value by passing a null value", create-update-optionsets.md)."""
    used = {value for value, _ in options if value is not None}
    result: list[tuple[int, str]] = []
    candidate = option_prefix * 10000
    for value, text in options:
        if value is None:
            while candidate in used:
                candidate += 1
            value = candidate
            used.add(value)
        result.append((value, text))
    return tuple(result)


def _name_key(raw: str) -> str:
    try:
        pairs = parse_key_segment(raw)
    except ValueError:
        pairs = []
    if len(pairs) != 1 or pairs[0][0] != "Name" or not pairs[0][2]:
        raise bad_request("A global choice is addressed by its MetadataId or as (Name='<name>').", CODE_QUERY)
    return str(pairs[0][1])


def _duplicate_attribute(name: str, entity: str) -> DataverseError:
    return bad_request(f"An attribute with the name {name} already exists on entity {entity}.", "0x80047013")


def _nav_taken(name: str, ent: Entity) -> DataverseError:
    return bad_request(
        f"The navigation property name '{name}' is already used on {ent.type_name}; give another one in "
        "ReferencingEntityNavigationPropertyName / ReferencedEntityNavigationPropertyName.",
        CODE_INVALID_ARGUMENT,
    )


def _created(location: str) -> Response:
    return empty_response(204, {"OData-EntityId": location})

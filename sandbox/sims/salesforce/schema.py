"""What the simulated org's objects look like, as data: fields, picklists, references and child relationships.

``objects.py`` holds the standard objects (curated from the Object Reference and the Field Reference),
``setup.py`` the permission objects; :func:`build_schema` makes a fresh org of them. Custom objects and
fields are added at run time by the Tooling API (``tooling.py``), which is also how ``"provisioned"``
gets the referral fields and the ``Microsoft_Solution__c`` object (``cosell.py``). The query, write and
describe code read every name, type, length and relationship from a :class:`Schema`: the org's own, or a
user's view of it that leaves out what the user has no permission for (``access.py``).

Names are case-insensitive on the wire (SOQL and request bodies accept ``name`` for ``Name``); answers
always use the canonical spelling, so lookups go through :meth:`SObject.field` / :meth:`Schema.sobject`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

FieldType = Literal[
    "id",
    "string",
    "textarea",
    "email",
    "phone",
    "url",
    "picklist",
    "boolean",
    "date",
    "datetime",
    "currency",
    "double",
    "percent",
    "int",
    "reference",
]
SchemaKind = Literal["bare", "provisioned"]

TEXT_TYPES = frozenset({"id", "string", "textarea", "email", "phone", "url", "picklist", "reference"})
NUMBER_TYPES = frozenset({"currency", "double", "percent", "int"})
# describe's soapType per field type (Object Reference, "Field Types").
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "currency": "xsd:double",
    "double": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
}


@dataclass(frozen=True)
class PicklistValue:
    value: str
    label: str | None = None
    default: bool = False


@dataclass(frozen=True)
class Field:
    """One field as ``describe`` reports it; ``required`` = not nillable and not defaulted on create."""

    name: str
    type: FieldType
    label: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    required: bool = False
    unique: bool = False
    external_id: bool = False
    id_lookup: bool = False
    case_sensitive: bool = False
    picklist: tuple[PicklistValue, ...] = ()
    restricted: bool = False
    default: Any = None  # checkbox / picklist default applied on create
    defaulted_on_create: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    cascade_delete: bool = False  # master-detail: the child goes when the parent goes
    master_detail: bool = False
    precision: int = 0
    scale: int = 0
    custom: bool = False
    calculated: bool = False
    name_field: bool = False
    long_text: bool = False  # Long Text Area: cannot be filtered or sorted in SOQL

    @property
    def is_reference(self) -> bool:
        return self.type == "reference"

    @property
    def filterable(self) -> bool:
        return not self.long_text

    @property
    def picklist_values(self) -> tuple[str, ...]:
        return tuple(p.value for p in self.picklist)


@dataclass(frozen=True)
class ChildRelationship:
    """The parent's view of a reference: ``Opportunity.OpportunityContactRoles`` = OCR rows by OpportunityId."""

    child: str
    field: str
    name: str | None
    cascade_delete: bool


@dataclass
class SObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, Field]
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    source: str = ""  # the reference page the object's facts come from
    children: list[ChildRelationship] = field(default_factory=list)
    # In a user's view of the org (access.py): the org's own object, whose hidden fields still get
    # their defaults on create. None for the org's own objects.
    base: SObject | None = field(default=None, repr=False, compare=False)

    @property
    def full(self) -> SObject:
        """The org's object behind a user's view of it (itself when it is not a view)."""
        return self.base or self

    def refresh(self) -> None:
        """Forget the cached name lookups after ``fields`` changed."""
        for cached in ("_folded", "relationships"):
            self.__dict__.pop(cached, None)

    @cached_property
    def _folded(self) -> dict[str, Field]:
        return {name.lower(): f for name, f in self.fields.items()}

    def field(self, name: str) -> Field | None:
        return self._folded.get(name.lower())

    @cached_property
    def relationships(self) -> dict[str, Field]:
        """Reference fields by folded relationship name (``account`` -> AccountId, ``opportunity__r`` -> …)."""
        return {f.relationship_name.lower(): f for f in self.fields.values() if f.relationship_name}

    def relationship(self, name: str) -> Field | None:
        return self.relationships.get(name.lower())

    def child(self, name: str) -> ChildRelationship | None:
        folded = name.lower()
        return next((c for c in self.children if c.name and c.name.lower() == folded), None)

    @property
    def required_fields(self) -> list[Field]:
        return [f for f in self.fields.values() if f.required]

    @property
    def external_ids(self) -> list[Field]:
        return [f for f in self.fields.values() if f.external_id or f.id_lookup]


@dataclass
class Schema:
    objects: dict[str, SObject]
    # (child object, reference field) -> child relationship name, as the parent's describe publishes it.
    child_names: dict[tuple[str, str], str] = field(default_factory=dict)
    version: int = 0  # bumped whenever objects or fields change (access.settle), so views are rebuilt

    @cached_property
    def _folded(self) -> dict[str, SObject]:
        return {name.lower(): o for name, o in self.objects.items()}

    @cached_property
    def by_prefix(self) -> dict[str, SObject]:
        return {o.key_prefix: o for o in self.objects.values()}

    def sobject(self, name: str) -> SObject | None:
        return self._folded.get(name.lower())

    def refresh(self) -> None:
        """After objects or fields changed: forget cached lookups and derive the child relationships again."""
        for cached in ("_folded", "by_prefix"):
            self.__dict__.pop(cached, None)
        for obj in self.objects.values():
            obj.refresh()
        self.link_children()

    def load(self, other: Schema) -> None:
        """Become ``other`` in place (every module holds this object), e.g. back to the org as it started."""
        self.objects = other.objects
        self.child_names = other.child_names
        self.version += 1
        self.refresh()

    def link_children(self) -> None:
        """Derive every object's child relationships from the reference fields that point at it."""
        for obj in self.objects.values():
            obj.children.clear()
        for obj in self.objects.values():
            for f in obj.fields.values():
                if not f.is_reference:
                    continue
                for target in f.reference_to:
                    parent = self.objects.get(target)
                    if parent is not None:
                        name = self.child_names.get((obj.name, f.name))
                        parent.children.append(ChildRelationship(obj.name, f.name, name, f.cascade_delete))


# Child relationship names the standard objects publish (Object Reference, each object's relationships);
# a custom master-detail names its own (``Microsoft_Solutions__r``, cosell.CHILD_NAMES). Others have none.
STANDARD_CHILD_NAMES = {
    ("Account", "ParentId"): "ChildAccounts",
    ("Contact", "AccountId"): "Contacts",
    ("Opportunity", "AccountId"): "Opportunities",
    ("OpportunityContactRole", "OpportunityId"): "OpportunityContactRoles",
    ("OpportunityContactRole", "ContactId"): "OpportunityContactRoles",
}


def build_schema() -> Schema:
    """A fresh org: the standard objects (objects.py) and the setup objects (setup.py). What an org
    provisioned for the sync has on top is created at run time through the Tooling API (tooling.py with
    cosell.py's bodies), exactly as an app would create it."""
    from sandbox.sims.salesforce import access, objects, setup

    built = {name: factory() for name, factory in {**objects.STANDARD, **setup.SETUP}.items()}
    schema = Schema(built, {**STANDARD_CHILD_NAMES, **setup.CHILD_NAMES})
    access.settle(schema)
    return schema

"""What the simulated org's objects look like, as data: fields, picklists, references and child relationships.

``objects.py`` holds the standard objects (curated from the Object Reference and the Field Reference)
and ``cosell.py`` what an org provisioned for the sync adds. :func:`build_schema` combines them:
``"bare"`` is a fresh org with standard objects only, ``"provisioned"`` adds the referral fields and
the ``Microsoft_Solution__c`` object. The query, write and describe code read every name, type,
length and relationship from the resulting :class:`Schema`.

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

    @cached_property
    def _folded(self) -> dict[str, SObject]:
        return {name.lower(): o for name, o in self.objects.items()}

    @cached_property
    def by_prefix(self) -> dict[str, SObject]:
        return {o.key_prefix: o for o in self.objects.values()}

    def sobject(self, name: str) -> SObject | None:
        return self._folded.get(name.lower())

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


def build_schema(kind: SchemaKind) -> Schema:
    from sandbox.sims.salesforce import cosell, objects

    if kind not in ("bare", "provisioned"):
        raise ValueError(f"schema must be 'bare' or 'provisioned', not {kind!r}")
    built = {name: factory() for name, factory in objects.STANDARD.items()}
    child_names = dict(STANDARD_CHILD_NAMES)
    if kind == "provisioned":
        cosell.provision(built)
        child_names.update(cosell.CHILD_NAMES)
    schema = Schema(built, child_names)
    schema.link_children()
    return schema

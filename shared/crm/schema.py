"""What the sync needs in a CRM, and what the CRM has: neutral types for the schema check and setup.

Each adapter derives the required items from its active field map (so ``CRM_FIELD_MAP`` and the
``DEAL_*`` knobs are what gets checked), reads the CRM's metadata to say what is present, missing,
wrong or still pending, and creates only what is missing among the sync's own items (never a
standard column, never anything an admin made).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ItemKind = Literal["table", "column", "choice", "key", "relationship", "access", "publisher"]
Status = Literal["present", "missing", "wrong", "pending"]


@dataclass(frozen=True)
class SchemaItem:
    table: str  # the CRM's table / object the item belongs to
    name: str  # column, key, relationship or table name as the CRM knows it
    kind: ItemKind
    type: str = ""  # the CRM's type name ("String", "Picklist", "Checkbox"...)
    length: int | None = None  # at least this many characters
    options: tuple[str, ...] = ()  # choice / picklist values the sync writes
    own: bool = True  # the sync's own item (created when missing); False: a standard one, only checked
    purpose: str = ""  # why the sync needs it, for the admin

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"table": self.table, "name": self.name, "kind": self.kind}
        if self.type:
            body["type"] = self.type
        if self.length:
            body["length"] = self.length
        if self.options:
            body["options"] = list(self.options)
        return body


@dataclass(frozen=True)
class Finding:
    item: SchemaItem
    status: Status
    reason: str = ""  # a sentence an admin understands (empty when present)

    def to_json(self) -> dict[str, Any]:
        body = self.item.to_json()
        if self.reason:
            body["reason"] = self.reason
        return body


@dataclass
class SchemaReport:
    crm: str
    findings: list[Finding] = field(default_factory=list)

    def of(self, status: Status) -> list[Finding]:
        return [f for f in self.findings if f.status == status]

    @property
    def ready(self) -> bool:
        return all(f.status == "present" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "crm": self.crm,
            "ready": self.ready,
            "missing": [f.to_json() for f in self.of("missing")],
            "wrong": [f.to_json() for f in self.of("wrong")],
            "pending": [f.to_json() for f in self.of("pending")],
            "present": [f.to_json() for f in self.of("present")],
        }


@dataclass
class ApplyResult:
    created: list[SchemaItem]
    report: SchemaReport

    def to_json(self) -> dict[str, Any]:
        return {
            "crm": self.report.crm,
            "created": [item.to_json() for item in self.created],
            "ready": self.report.ready,
            "pending": [f.to_json() for f in self.report.of("pending")],
            "wrong": [f.to_json() for f in self.report.of("wrong")],
            "missing": [f.to_json() for f in self.report.of("missing")],
        }


class SchemaRefused(Exception):
    """The CRM refused to create schema (no customizer rights); says what was created before it stopped."""

    def __init__(self, reason: str, created: list[SchemaItem]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.created = created


class CrmSchema(Protocol):
    def required(self) -> list[SchemaItem]: ...

    def check(self) -> SchemaReport: ...

    def apply(self) -> ApplyResult: ...

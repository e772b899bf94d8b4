"""Moving over from Microsoft's Power Automate co-sell connector: what adopting its records asks of a CRM.

The connector's solution (Dynamics 365) or package (Salesforce) keeps a referral's id, link, sync flag,
visibility, help and Microsoft CRM id in columns of its own. The sync finds a referral's record by *its*
referral id column (the alternate key / External ID its idempotent upsert relies on), so a record the
connector made stays invisible to it, and the first backfill would create a second one. Adopting copies
the connector's values into the sync's columns, once.

Each adapter owns both sets of names and the wire format (``dynamics_adopt.py``, ``salesforce_adopt.py``)
and implements :class:`ConnectorLinks`; ``shared/sync/adopt.py`` decides, the same way for every CRM,
which record of a referral is adopted and what is copied.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.mapping.model import HELP_CODES, DealKind
from shared.mapping.text import audit_line, prepend_audit

_HELP_BY_KEY = {code.lower(): code for code in HELP_CODES}

# The neutral fields an adoption copies (the connector's "Products" text is obsolete: the docs say not to use it).
LINK_FIELDS = (
    "referral_id",
    "referral_link",
    "sync",
    "visible",
    "help_needed",
    "microsoft_crm_id",
    "referral_program",
    "audit",
)


def help_code(value: object) -> str | None:
    """The code a connector's help value or label stands for: "General or Other" is GeneralOrOther.

    The connector's option values are not documented; its labels are (the docs' screenshots), and they
    spell the codes with spaces and any case. Anything else is None: not guessed.
    """
    if not isinstance(value, str):
        return None
    return _HELP_BY_KEY.get(re.sub(r"[^a-z]", "", value.lower()))


@dataclass(frozen=True)
class Link:
    """A record's referral columns in neutral terms: the connector's or the sync's. None: empty."""

    referral_id: str | None = None
    referral_link: str | None = None
    sync: bool | None = None
    visible: bool | None = None
    help_needed: str | None = None  # an assistanceRequestCode
    microsoft_crm_id: str | None = None
    referral_program: str | None = None
    audit: str | None = None

    def filled(self) -> list[str]:
        """The fields that hold a value (False counts as empty: only True is ever copied)."""
        return [name for name in LINK_FIELDS if getattr(self, name) not in (None, "", False)]


def link_from_row(row: dict[str, Any], columns: dict[str, str], help_needed: str | None) -> Link:
    """A :class:`Link` from a record as the CRM answered, given neutral field -> column names."""

    def text(name: str) -> str | None:
        value = row.get(columns[name]) if name in columns else None
        return str(value) if value not in (None, "") else None

    def flag(name: str) -> bool | None:
        value = row.get(columns[name]) if name in columns else None
        return bool(value) if value is not None else None

    return Link(
        referral_id=text("referral_id"),
        referral_link=text("referral_link"),
        sync=flag("sync"),
        visible=flag("visible"),
        help_needed=help_needed,
        microsoft_crm_id=text("microsoft_crm_id"),
        referral_program=text("referral_program"),
        audit=text("audit"),
    )


@dataclass(frozen=True)
class ConnectorRecord:
    """A CRM record that carries the connector's referral id, as the adapter read it."""

    kind: DealKind
    crm_id: str
    created_on: str  # ISO time: orders duplicates
    open: bool  # not won, lost, disqualified or converted
    theirs: Link  # the connector's columns
    ours: Link  # the sync's columns
    locked: str = ""  # why the CRM refuses a write to the record as it is ("" when it takes one)
    reopenable: bool = False  # the lock goes when the record is reopened (a closed Dynamics 365 opportunity)
    unreadable: tuple[str, ...] = ()  # connector values that mean nothing to the sync (a help label no code matches)


def audit_after_copy(
    record: ConnectorRecord, message: str, left_out: list[str], when: dt.datetime, max_chars: int, *, noun: str
) -> str:
    """The record's audit once adopted, for every CRM: what was copied (and what was too long for the sync's
    ``noun``), above the trail the record had (the sync's, else the connector's)."""
    if left_out:
        message += f" Too long for the sync's {noun}, left out: {', '.join(left_out)}."
    existing = record.ours.audit or record.theirs.audit
    return prepend_audit(existing, audit_line(when, message), max_chars)


@dataclass
class ConnectorColumns:
    """Which of the connector's columns the org has, per record kind, in the CRM's own names."""

    found: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> neutral field -> column
    missing: dict[str, list[str]] = field(default_factory=dict)  # kind -> columns looked for, not there
    # kind -> neutral fields whose connector column IS the sync's own (nothing to copy for them)
    shared: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def adoptable(self, kind: str) -> bool:
        return "referral_id" in self.found.get(kind, {}) and "referral_id" not in self.shared.get(kind, [])

    def to_json(self) -> dict[str, object]:
        return {"found": self.found, "missing": self.missing, "shared": self.shared, "notes": self.notes}


class ConnectorNotFound(Exception):
    """The org has none of the connector's referral id columns: nothing can be adopted."""


class ConnectorLinks(Protocol):
    """The adapter side of an adoption: read the connector's records, write the sync's columns."""

    crm: str  # "dynamics" | "salesforce"

    def columns(self) -> ConnectorColumns:
        """Which connector columns exist (metadata only)."""
        ...

    def records(self, kind: DealKind, columns: ConnectorColumns) -> Iterator[ConnectorRecord]:
        """Every ``kind`` record whose connector referral id is set, all pages, oldest first."""
        ...

    def holder(self, kind: DealKind, referral_id: str) -> str | None:
        """The record whose *sync* referral id is ``referral_id`` (there is at most one), if any."""
        ...

    def copy(self, record: ConnectorRecord, values: Link, message: str, *, reopen: bool) -> None:
        """Write ``values`` (its filled fields only) into the sync's columns, with ``message`` on top of
        the audit field; ``reopen``: the record is locked until reopened, so reopen, write, close again."""
        ...

"""CRM-neutral records: what the sync means to write, before an adapter turns it into wire fields.

Both directions and both CRMs share these, so the business rules (classification, status map,
validation) live once in ``shared.mapping`` and the adapters only translate names and formats.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

PlanKind = Literal["opportunity", "lead", "skip"]
DealKind = Literal["opportunity", "lead"]
# Why a lost deal was lost: Partner Center's substatus (lost, declined, expired), or "" when open or won.
CloseReason = Literal["", "lost", "declined", "expired"]
# The values ``help_needed`` takes: Partner Center's assistanceRequestCode enum (Microsoft's connector
# definition, UpdateReferralDetails / InviteContext), less ``Unknown``, in DESIGN.md's order.
HELP_CODES = (
    "GeneralOrOther",
    "CustomerTechnicalArchitecture",
    "ProofOfConceptOrDemo",
    "QuotesOrLicensing",
    "PostSalesCustomerSuccess",
    "WorkloadSpecificValueProposition",
)


class DealStage(StrEnum):
    """Where a deal stands, in Partner Center's terms; each adapter maps it to its stages or codes."""

    PENDING = "pending"  # not accepted yet (a CRM's on-hold stage; an open lead)
    OPEN = "open"  # open, and the CRM cannot say whether it was accepted (Dynamics opportunities)
    ACCEPTED = "accepted"  # accepted / being worked on
    WON = "won"
    LOST = "lost"  # lost, declined or expired: see the close reason


@dataclass(frozen=True)
class AccountData:
    name: str
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class ContactData:
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None = None


@dataclass(frozen=True)
class SolutionData:
    id: str
    name: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class DealData:
    """The opportunity (or lead) fields, in neutral names the field maps translate."""

    referral_id: str
    name: str
    title: str
    deal_value: Decimal | None
    currency: str | None
    close_date: dt.date | None
    description: str | None
    stage: DealStage
    close_reason: CloseReason
    help_needed: str | None
    visible: bool
    microsoft_crm_id: str | None
    referral_program: str | None
    referral_link: str
    # Deal fields Partner Center sent in a form that could not be read: the CRM keeps its value.
    unreadable: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CrmPlan:
    kind: PlanKind
    referral_id: str
    pc_status: str
    reason: str = ""
    external_id: str | None = None  # externalReferenceId: the CRM record a referral was created from
    deal: DealData | None = None
    account: AccountData | None = None
    contacts: tuple[ContactData, ...] = field(default_factory=tuple)
    solutions: tuple[SolutionData, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = ()  # said in the audit line (e.g. team members left out)

    def part_hashes(self) -> dict[str, str]:
        """One hash per part, so an adapter touches only the parts that changed."""
        return {
            "deal": stable_hash(self.deal),
            "account": stable_hash(self.account),
            "contacts": stable_hash(self.contacts),
            "solutions": stable_hash(self.solutions),
        }

    def content_hash(self) -> str:
        return stable_hash({"kind": self.kind, **self.part_hashes()})


def stable_hash(value: Any) -> str:
    """SHA-256 of a canonical JSON rendering; equal content gives an equal hash across runs."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)  # str() of a set depends on the process's hash seed
    return str(value)


@dataclass(frozen=True)
class CrmDeal:
    """What the CRM says about a deal it shares with Partner Center, read from an opportunity or lead."""

    entity: str  # "opportunity" | "lead"
    crm_id: str
    modified_on: str
    referral_id: str | None
    title: str  # the name without the ✔/✖ mark
    deal_value: Decimal | None
    currency: str | None
    close_date: dt.date | None
    description: str | None
    # as the CRM holds it: a lead is pending until qualified (accepted) or disqualified (lost)
    stage: DealStage
    help_needed: str | None
    visible: bool
    account: AccountData | None = None
    contact: ContactData | None = None
    owner: ContactData | None = None
    solutions: tuple[SolutionData, ...] = field(default_factory=tuple)
    audit: str | None = None  # the audit text on the record now, to prepend to

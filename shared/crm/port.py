"""The CRM port: the neutral operations the sync engine asks of a CRM; ``dynamics`` and ``salesforce`` implement it.

The engine speaks referral-side concepts only (a deal, its customer account, contacts and
solutions, a stage: pending / open / accepted / won / lost, lead or opportunity, the sync flag, an
audit line). Each adapter owns its field map, stage or status codes, option values, entity names
and wire format, and keeps whatever it needs to remember about a record in an opaque memo the
engine stores for it. Where CRMs genuinely differ, the adapter declares it in :class:`Capabilities`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.mapping.model import CrmDeal, CrmPlan, DealKind


class CrmRejected(Exception):
    """The CRM (or our pre-check) refused the data: it will not heal by retrying."""


class SchemaNotReady(CrmRejected):
    """The CRM lacks a column, table or key the sync needs: the admin creates it (crm-schema), not a retry."""

    HINT = "Create what the sync needs: POST /api/manage/crm-schema, or python -m shared.cli crm-schema --apply."

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} {self.HINT}")


@dataclass(frozen=True)
class Capabilities:
    # An opportunity can say "not accepted yet" (Salesforce's on-hold stage); leaving it accepts the
    # referral. Dynamics 365 has no such stage: editing an opportunity never accepts by itself.
    pending_stage: bool
    # Closing is an action of its own (Dynamics WinOpportunity/LoseOpportunity), not a field write.
    closes_by_action: bool


@dataclass(frozen=True)
class KnownRecord:
    """What the engine remembers of the CRM record a referral maps to."""

    kind: DealKind
    crm_id: str
    memo: dict[str, Any] = field(default_factory=dict)  # the adapter's own, opaque to the engine
    part_hashes: dict[str, str] = field(default_factory=dict)  # deal / account / contacts / solutions
    failed_before: bool = False  # the last sync marked it ✖: a success must put ✔ back
    lead_id: str = ""  # the CRM lead this referral lived in before it was accepted


@dataclass
class InboundResult:
    kind: DealKind
    crm_id: str
    created: bool
    memo: dict[str, Any]
    lead_id: str = ""
    notes: list[str] = field(default_factory=list)


class CrmPort(Protocol):
    kind: str  # the CRM's name: "dynamics" | "salesforce" | "memory"
    capabilities: Capabilities

    def field_limits(self, kind: DealKind) -> dict[str, int]:
        """Longest value per neutral field (``"deal.name"``, ``"contact.email"``...) a ``kind`` plan may carry."""
        ...

    def apply_inbound(self, plan: CrmPlan, known: KnownRecord | None, audit_message: str) -> InboundResult:
        """Create or update the CRM record a referral maps to, writing only what changed."""
        ...

    def memo_for(self, plan: CrmPlan) -> dict[str, Any]:
        """The memo an inbound sync of ``plan`` would leave (kept to diff the next one)."""
        ...

    def mark_failed(self, kind: DealKind, crm_id: str, message: str) -> bool:
        """Put ✖ on the record's name and the failure in its audit field; False if it cannot."""
        ...

    def changed_deals(self, since: str | None) -> Iterator[CrmDeal]:
        """Deals shared with Partner Center modified at or after ``since``, oldest first."""
        ...

    def get_deal(self, crm_id: str, kind: DealKind | None = None) -> CrmDeal | None:
        """One deal by id (an opportunity or a lead when ``kind`` is not given); None if there is none."""
        ...

    def write_back(
        self, deal: CrmDeal, *, message: str, ok: bool, referral_id: str | None = None, link: str | None = None
    ) -> bool:
        """After sharing: referral id and link, ✔ or ✖, and an audit line on the record."""
        ...

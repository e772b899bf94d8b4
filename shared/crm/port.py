"""The small CRM port the sync engine talks to; ``dynamics`` and ``salesforce`` implement it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.mapping.model import CrmDeal, CrmPlan
from shared.store.state import SyncState


class CrmRejected(Exception):
    """The CRM (or our pre-check) refused the data: it will not heal by retrying."""


@dataclass
class InboundResult:
    entity: str  # "opportunity" | "lead"
    crm_id: str
    created: bool
    crm_fields: dict[str, Any]
    lead_id: str = ""
    notes: list[str] = field(default_factory=list)


class CrmPort(Protocol):
    kind: str

    def apply_inbound(self, plan: CrmPlan, previous: SyncState | None, audit_message: str) -> InboundResult:
        """Create or update the CRM record a referral maps to, writing only what changed."""
        ...

    def mark_failed(self, entity: str, crm_id: str, message: str) -> bool:
        """Put ✖ on the record's name and the failure in its audit field; False if it cannot."""
        ...

    def field_limits(self, kind: str) -> dict[str, int]:
        """Longest value per neutral field (``"deal.name"``, ``"contact.email"``...) a ``kind`` plan may carry."""
        ...

    def wire_fields(self, plan: CrmPlan) -> dict[str, Any]:
        """The CRM columns an inbound sync of ``plan`` writes."""
        ...

    def changed_deals(self, since: str | None) -> Iterator[CrmDeal]:
        """Deals shared with Partner Center modified at or after ``since``, oldest first."""
        ...

    def get_deal(self, entity: str, crm_id: str) -> CrmDeal | None: ...

    def write_back(
        self, deal: CrmDeal, *, message: str, ok: bool, referral_id: str | None = None, link: str | None = None
    ) -> bool:
        """After sharing: referral id and link, ✔ or ✖, and an audit line on the record."""
        ...

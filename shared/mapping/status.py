"""The status map, as data: Partner Center status/substatus ⇄ neutral deal state ⇄ CRM codes.

Microsoft documents the Partner Center side (§1.6) but not the connector's value-level mapping;
the choices below are ours and are stated in the README.
"""

from __future__ import annotations

from shared.mapping.model import DealState

# Partner Center substatus -> (neutral state, status reason key)
PC_TO_DEAL: dict[str, tuple[DealState, str]] = {
    "pending": (DealState.OPEN, "in_progress"),
    "received": (DealState.OPEN, "in_progress"),
    "accepted": (DealState.OPEN, "in_progress"),
    "won": (DealState.WON, "won"),
    "lost": (DealState.LOST, "lost"),
    "declined": (DealState.LOST, "declined"),
    "expired": (DealState.LOST, "expired"),
}

# Dynamics 365 opportunity: status reason key -> (statecode, statuscode).
# Open/In Progress = 0/1; Won = 1/3; Lost = 2/5 (Out-Sold) when the deal was lost,
# 2/4 (Canceled) when it was declined or expired.
DYNAMICS_OPPORTUNITY_CODES: dict[str, tuple[int, int]] = {
    "in_progress": (0, 1),
    "won": (1, 3),
    "lost": (2, 5),
    "declined": (2, 4),
    "expired": (2, 4),
}

# Dynamics 365 lead: open = 0/1 (New); disqualified = 2/4 (Lost) or 2/7 (Canceled);
# qualified (converted to an opportunity on acceptance) = 1/3.
DYNAMICS_LEAD_CODES: dict[str, tuple[int, int]] = {
    "in_progress": (0, 1),
    "lost": (2, 4),
    "declined": (2, 7),
    "expired": (2, 7),
    "qualified": (1, 3),
}


def deal_state(status: str | None, substatus: str | None) -> tuple[DealState, str]:
    """Neutral state for a referral; an unknown substatus falls back on the status."""
    key = (substatus or "").lower()
    if key in PC_TO_DEAL:
        return PC_TO_DEAL[key]
    if (status or "").lower() == "closed":
        return DealState.LOST, "lost"
    return DealState.OPEN, "in_progress"


def describe(status: str | None, substatus: str | None) -> str:
    return f"{status or 'None'}/{substatus or 'None'}"

"""The status map, as data: Partner Center status/substatus -> the neutral deal stage.

Microsoft documents the Partner Center side (§1.6); each CRM adapter maps the neutral stage to its
own stages or state/status codes (``shared/crm/*_status.py``), stated in the README.
"""

from __future__ import annotations

from shared.mapping.model import CloseReason, DealStage

# Partner Center substatus -> (neutral stage, close reason)
PC_TO_DEAL: dict[str, tuple[DealStage, CloseReason]] = {
    "pending": (DealStage.PENDING, ""),
    "received": (DealStage.PENDING, ""),
    "accepted": (DealStage.ACCEPTED, ""),
    "won": (DealStage.WON, ""),
    "lost": (DealStage.LOST, "lost"),
    "declined": (DealStage.LOST, "declined"),
    "expired": (DealStage.LOST, "expired"),
}


def deal_stage(status: str | None, substatus: str | None) -> tuple[DealStage, CloseReason]:
    """Neutral stage for a referral; an unknown substatus falls back on the status."""
    key = (substatus or "").lower()
    if key in PC_TO_DEAL:
        return PC_TO_DEAL[key]
    status_key = (status or "").lower()
    if status_key == "closed":
        return DealStage.LOST, "lost"
    if status_key == "active":
        return DealStage.ACCEPTED, ""
    return DealStage.PENDING, ""


def describe(status: str | None, substatus: str | None) -> str:
    return f"{status or 'None'}/{substatus or 'None'}"

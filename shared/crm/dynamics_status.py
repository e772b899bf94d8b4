"""Dynamics 365 state and status codes for the neutral deal stages.

Microsoft documents the Partner Center side (§1.6) but not the connector's value-level mapping;
the choices below are ours and are stated in the README.
"""

from __future__ import annotations

from shared.mapping.model import CloseReason, DealStage

# Opportunity: Open/In Progress = 0/1; Won = 1/3; Lost = 2/5 (Out-Sold) when the deal was lost,
# 2/4 (Canceled) when it was declined or expired. Dynamics has no "not accepted yet" state.
OPEN, WON, LOST = 0, 1, 2


def opportunity_codes(stage: DealStage, reason: CloseReason) -> tuple[int, int]:
    if stage == DealStage.WON:
        return WON, 3
    if stage == DealStage.LOST:
        return (LOST, 5) if reason in ("lost", "") else (LOST, 4)
    return OPEN, 1


# Lead: open = 0/1 (New); disqualified = 2/4 (Lost) or 2/7 (Canceled); qualified (converted to an
# opportunity on acceptance) = 1/3.
LEAD_QUALIFIED = (1, 3)


def lead_codes(stage: DealStage, reason: CloseReason) -> tuple[int, int]:
    if stage == DealStage.LOST:
        return (2, 4) if reason in ("lost", "") else (2, 7)
    if stage in (DealStage.WON, DealStage.ACCEPTED):
        return LEAD_QUALIFIED
    return 0, 1


def opportunity_stage(statecode: int) -> DealStage:
    return {WON: DealStage.WON, LOST: DealStage.LOST}.get(statecode, DealStage.OPEN)


def lead_stage(statecode: int) -> DealStage:
    # 1 = qualified: the lead was accepted (the acceptance reaches Partner Center); 2 = disqualified.
    return {1: DealStage.ACCEPTED, 2: DealStage.LOST}.get(statecode, DealStage.PENDING)

"""Stages and solutions: a referral's status and its solution list, as every CRM must hold them."""

from __future__ import annotations

import pytest

from shared.crm.port import CrmPort
from shared.mapping.model import DealStage
from tests.contract.referrals import MESSAGE, SHARED, WON, changed, known_after, plan_of, referral
from tests.contract.sellers import Seller


def open_stage(crm: CrmPort) -> DealStage:
    return DealStage.ACCEPTED if crm.capabilities.pending_stage else DealStage.OPEN


@pytest.mark.parametrize(
    ("status", "stage"),
    [
        pytest.param(("Closed", "Won"), DealStage.WON, id="won"),
        pytest.param(("Closed", "Lost"), DealStage.LOST, id="lost"),
        pytest.param(("Closed", "Declined"), DealStage.LOST, id="declined"),
        pytest.param(("Closed", "Expired"), DealStage.LOST, id="expired"),
    ],
)
def test_a_closed_referral_makes_a_closed_opportunity(
    crm: CrmPort, seller: Seller, status: tuple[str, str], stage: DealStage
) -> None:
    result = crm.apply_inbound(plan_of(crm, referral(SHARED, status=status)), None, MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.kind == "opportunity"
    assert view.stage == stage
    deal = crm.get_deal(result.crm_id)
    assert deal is not None
    assert deal.stage == stage


def test_the_won_sample_is_a_won_opportunity(crm: CrmPort, seller: Seller) -> None:
    result = crm.apply_inbound(plan_of(crm, referral(WON)), None, MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert (view.kind, view.stage) == ("opportunity", DealStage.WON)


@pytest.mark.parametrize("closed", [("Closed", "Won"), ("Closed", "Lost")], ids=["won", "lost"])
def test_an_open_opportunity_is_closed_when_its_referral_closes(
    crm: CrmPort, seller: Seller, closed: tuple[str, str]
) -> None:
    data = referral(SHARED)
    plan = plan_of(crm, data)
    result = crm.apply_inbound(plan, None, MESSAGE)

    crm.apply_inbound(plan_of(crm, changed(data, status=closed)), known_after(result, plan), MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.stage == (DealStage.WON if closed[1] == "Won" else DealStage.LOST)


@pytest.mark.parametrize("closed", [("Closed", "Won"), ("Closed", "Lost")], ids=["won", "lost"])
def test_a_closed_deal_is_reopened_when_its_referral_is_active_again(
    crm: CrmPort, seller: Seller, closed: tuple[str, str]
) -> None:
    data = referral(SHARED, status=closed)
    plan = plan_of(crm, data)
    result = crm.apply_inbound(plan, None, MESSAGE)

    reopened = plan_of(crm, changed(data, status=("Active", "Accepted"), deal_value=75000))
    crm.apply_inbound(reopened, known_after(result, plan), "Reopened.")

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.stage == open_stage(crm)
    assert str(view.deal_value) in ("75000", "75000.0"), "the reopening sync also carries the changed fields"
    assert view.audit_lines[0].endswith(" - Reopened.")


def test_a_pending_co_sell_opportunity_reads_as_open_without_a_pending_stage(crm: CrmPort, seller: Seller) -> None:
    plan = plan_of(crm, referral(SHARED, status=("New", "Pending")))
    assert plan.kind == "opportunity"

    result = crm.apply_inbound(plan, None, MESSAGE)

    expected = DealStage.PENDING if crm.capabilities.pending_stage else DealStage.OPEN
    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.stage == expected
    deal = crm.get_deal(result.crm_id)
    assert deal is not None
    assert deal.stage == expected


# ---------------------------------------------------------------------------- solutions
def test_solutions_removed_from_the_referral_are_removed(crm: CrmPort, seller: Seller) -> None:
    data = referral(SHARED, solutions=["SOL-1", "SOL-2", "SOL-3"])
    plan = plan_of(crm, data)
    result = crm.apply_inbound(plan, None, MESSAGE)

    crm.apply_inbound(plan_of(crm, changed(data, solutions=["SOL-2"])), known_after(result, plan), MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.solutions == {"SOL-2"}


def test_solutions_added_to_the_referral_are_added(crm: CrmPort, seller: Seller) -> None:
    data = referral(SHARED, solutions=["SOL-1"])
    plan = plan_of(crm, data)
    result = crm.apply_inbound(plan, None, MESSAGE)

    crm.apply_inbound(plan_of(crm, changed(data, solutions=["SOL-1", "SOL-9"])), known_after(result, plan), MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.solutions == {"SOL-1", "SOL-9"}


def test_all_solutions_removed_leaves_none(crm: CrmPort, seller: Seller) -> None:
    data = referral(SHARED, solutions=["SOL-1", "SOL-2"])
    plan = plan_of(crm, data)
    result = crm.apply_inbound(plan, None, MESSAGE)

    crm.apply_inbound(plan_of(crm, changed(data, solutions=[])), known_after(result, plan), MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.solutions == frozenset()

"""Lead-category referrals: a CRM lead until accepted, then an opportunity made from it."""

from __future__ import annotations

from shared.crm.port import CrmPort
from shared.mapping.model import DealStage
from tests.contract.referrals import LEAD, MESSAGE, changed, known_after, member, plan_of, referral
from tests.contract.sellers import DealView, Seller


def assert_converted(seller: Seller, lead: DealView, opportunity_id: str) -> None:
    """The lead of an accepted referral: converted where the CRM converts leads, else open and linked."""
    if seller.converts_leads:
        assert lead.stage == DealStage.ACCEPTED
    else:
        assert lead.stage != DealStage.LOST, "an accepted referral's lead must not read as declined"
        assert opportunity_id in lead.audit_lines[0], "the lead names the opportunity that carries the referral on"


def test_a_lead_referral_not_accepted_yet_makes_a_crm_lead(crm: CrmPort, seller: Seller) -> None:
    data = referral(LEAD)
    plan = plan_of(crm, data)
    assert plan.kind == "lead"

    result = crm.apply_inbound(plan, None, MESSAGE)

    assert (result.kind, result.created) == ("lead", True)
    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.kind == "lead"
    assert view.stage == DealStage.PENDING
    if "name" in seller.lead_fields:
        assert view.name == "✔ Fabrikam Customer Inc", "a referral without a name is named after its customer"
    assert view.company == "Fabrikam Customer Inc"
    assert view.referral_id == data["id"]
    if "deal_value" in seller.lead_fields:
        assert str(view.deal_value) in ("10000", "10000.0")
    assert len(view.audit_lines) == 1
    assert seller.deals("opportunity") == [], "no opportunity before the referral is accepted"
    assert seller.accounts() == {}, "a lead holds its company inline"


def test_an_accepted_lead_referral_makes_the_opportunity_from_the_lead(crm: CrmPort, seller: Seller) -> None:
    data = referral(LEAD)
    lead_plan = plan_of(crm, data)
    lead = crm.apply_inbound(lead_plan, None, MESSAGE)

    accepted = plan_of(crm, changed(data, status=("Active", "Accepted")))
    assert accepted.kind == "opportunity"
    result = crm.apply_inbound(accepted, known_after(lead, lead_plan), "Accepted.")

    assert (result.kind, result.created, result.lead_id) == ("opportunity", True, lead.crm_id)
    opportunity = seller.deal(result.crm_id)
    assert opportunity is not None
    assert opportunity.kind == "opportunity"
    assert opportunity.referral_id == data["id"]
    assert opportunity.name == "✔ Fabrikam Customer Inc"
    lead_view = seller.deal(lead.crm_id)
    assert lead_view is not None
    assert_converted(seller, lead_view, result.crm_id)
    assert len(lead_view.audit_lines) == 2, "the lead says it became an opportunity"
    assert [d.id for d in seller.deals("lead")] == [lead.crm_id]
    lead_deal = crm.get_deal(lead.crm_id)
    assert lead_deal is not None
    assert lead_deal.stage == lead_view.stage, "the adapter reads the lead as the seller sees it"


def test_the_conversion_retried_after_a_lost_answer_makes_one_opportunity(crm: CrmPort, seller: Seller) -> None:
    data = referral(LEAD)
    lead_plan = plan_of(crm, data)
    lead = crm.apply_inbound(lead_plan, None, MESSAGE)
    accepted = plan_of(crm, changed(data, status=("Active", "Accepted")))

    first = crm.apply_inbound(accepted, known_after(lead, lead_plan), MESSAGE)
    second = crm.apply_inbound(accepted, known_after(lead, lead_plan), MESSAGE)  # state not saved: same known

    assert second.crm_id == first.crm_id
    assert not second.created
    assert len(seller.deals("opportunity")) == 1


def test_a_declined_lead_referral_leaves_a_lost_lead(crm: CrmPort, seller: Seller) -> None:
    data = referral(LEAD)
    plan = plan_of(crm, data)
    lead = crm.apply_inbound(plan, None, MESSAGE)

    declined = plan_of(crm, changed(data, status=("Closed", "Declined")))
    result = crm.apply_inbound(declined, known_after(lead, plan), MESSAGE)

    assert (result.kind, result.crm_id) == ("lead", lead.crm_id)
    view = seller.deal(lead.crm_id)
    assert view is not None
    assert view.stage == DealStage.LOST
    assert seller.deals("opportunity") == []


def test_an_unchanged_lead_plan_writes_nothing(crm: CrmPort, seller: Seller) -> None:
    plan = plan_of(crm, referral(LEAD))
    result = crm.apply_inbound(plan, None, MESSAGE)
    before = seller.writes()

    crm.apply_inbound(plan, known_after(result, plan), MESSAGE)

    assert seller.writes() == before


def test_a_lead_follows_its_referrals_company_and_first_contact(crm: CrmPort, seller: Seller) -> None:
    data = referral(LEAD, team=[member("Ada", "Buyer", "ada@fabrikam.example")])
    plan = plan_of(crm, data)
    lead = crm.apply_inbound(plan, None, MESSAGE)

    moved = changed(data, customer="Fabrikam Holdings", team=[member("Bo", "Lead", "bo@fabrikam.example")])
    crm.apply_inbound(plan_of(crm, moved), known_after(lead, plan), MESSAGE)

    view = seller.deal(lead.crm_id)
    assert view is not None
    assert view.company == "Fabrikam Holdings"
    deal = crm.get_deal(lead.crm_id)
    assert deal is not None
    assert deal.account is not None
    assert deal.account.name == "Fabrikam Holdings"
    assert deal.contact is not None
    assert deal.contact.email == "bo@fabrikam.example"


def test_an_accepted_lead_that_was_won_at_once_makes_a_won_opportunity(crm: CrmPort, seller: Seller) -> None:
    data = referral(LEAD)
    lead_plan = plan_of(crm, data)
    lead = crm.apply_inbound(lead_plan, None, MESSAGE)

    won = plan_of(crm, changed(data, status=("Closed", "Won")))
    result = crm.apply_inbound(won, known_after(lead, lead_plan), MESSAGE)

    assert (result.kind, result.lead_id) == ("opportunity", lead.crm_id)
    opportunity = seller.deal(result.crm_id)
    assert opportunity is not None
    assert opportunity.stage == DealStage.WON
    lead_view = seller.deal(lead.crm_id)
    assert lead_view is not None
    assert_converted(seller, lead_view, result.crm_id)

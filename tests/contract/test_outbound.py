"""CRM → Partner Center: reading shared deals, and marking records after a share or a failure."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from shared.crm.port import CrmPort
from shared.mapping.model import DealStage, SolutionData
from tests.contract.referrals import LEAD, MESSAGE, SHARED, plan_of, referral
from tests.contract.sellers import Seller

LINK = "https://partner.microsoft.com/dashboard/referrals/v2/inbox?id={id}"


def typed_deal(seller: Seller, title: str = "Outbound deal", **fields: object) -> str:
    """An opportunity as a seller types it: account with a country, primary contact, a solution."""
    account = seller.create_account("Outbound Customer", "98052", country="US")
    contact = seller.create_contact("Ada", "Buyer", "ada@customer.example", account)
    values: dict[str, object] = {
        "deal_value": Decimal("50000"),
        "currency": "EUR",
        "close_date": dt.date(2026, 12, 31),
        "description": "Migrating the customer's CRM.",
        "help_needed": "CustomerTechnicalArchitecture",
        "visible": True,
        "solutions": (SolutionData("SOL-15974-MQF", "Contoso-Ale"),),
        **fields,
    }
    return seller.create_opportunity(title, account_id=account, contact_id=contact, **values)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- get_deal
def test_get_deal_reads_what_the_seller_typed(crm: CrmPort, seller: Seller) -> None:
    deal_id = typed_deal(seller)

    deal = crm.get_deal(deal_id)

    assert deal is not None
    assert (deal.entity, deal.crm_id, deal.referral_id) == ("opportunity", deal_id, None)
    assert deal.title == "Outbound deal"
    assert deal.deal_value == Decimal(50000)
    assert deal.currency == "EUR"
    assert deal.close_date == dt.date(2026, 12, 31)
    assert deal.description == "Migrating the customer's CRM."
    assert deal.stage == (DealStage.ACCEPTED if crm.capabilities.pending_stage else DealStage.OPEN)
    assert deal.help_needed == "CustomerTechnicalArchitecture"
    assert deal.visible is True
    assert deal.account is not None
    assert (deal.account.name, deal.account.postal_code, deal.account.country) == ("Outbound Customer", "98052", "US")
    assert deal.contact is not None
    assert deal.contact.email == "ada@customer.example"
    assert [s.id for s in deal.solutions] == ["SOL-15974-MQF"]
    assert deal.modified_on


def test_get_deal_finds_an_opportunity_or_a_lead_without_being_told_which(crm: CrmPort, seller: Seller) -> None:
    opportunity = typed_deal(seller)
    lead = crm.apply_inbound(plan_of(crm, referral(LEAD)), None, MESSAGE).crm_id

    found_opportunity, found_lead = crm.get_deal(opportunity), crm.get_deal(lead)

    assert found_opportunity is not None
    assert found_opportunity.entity == "opportunity"
    assert found_lead is not None
    assert found_lead.entity == "lead"
    assert found_lead.referral_id
    assert crm.get_deal(opportunity, "lead") is None
    assert crm.get_deal(lead, "opportunity") is None
    assert crm.get_deal(str(uuid.uuid4())) is None


def test_get_deal_of_an_id_that_is_no_record_id_is_none(crm: CrmPort) -> None:
    assert crm.get_deal("not an id') or (1 eq 1") is None


# ---------------------------------------------------------------------------- changed_deals
def test_changed_deals_are_the_shared_ones_modified_since_oldest_first(crm: CrmPort, seller: Seller) -> None:
    first = typed_deal(seller, "First")
    typed_deal(seller, "Not shared", sync=False)
    seller.create_lead("Lead without a referral", company="Walk-in Customer")
    lead = crm.apply_inbound(plan_of(crm, referral(LEAD)), None, MESSAGE).crm_id
    last = typed_deal(seller, "Last")

    everything = list(crm.changed_deals(None))

    assert [(d.entity, d.crm_id) for d in everything] == [("opportunity", first), ("lead", lead), ("opportunity", last)]
    modified = [d.modified_on for d in everything]
    assert modified == sorted(modified)

    since = everything[1].modified_on
    assert [d.crm_id for d in crm.changed_deals(since)] == [lead, last], "at or after since: the boundary is kept"

    seller.update("opportunity", first, description="Touched by the seller.")
    assert [d.crm_id for d in crm.changed_deals(since)] == [lead, last, first]
    touched = list(crm.changed_deals(since))[-1]
    assert touched.description == "Touched by the seller."


def test_a_deal_unmarked_for_sync_is_no_longer_changed(crm: CrmPort, seller: Seller) -> None:
    deal_id = typed_deal(seller)
    seller.update("opportunity", deal_id, sync=False)

    assert [d.crm_id for d in crm.changed_deals(None)] == []


def test_an_inbound_opportunity_is_a_shared_deal(crm: CrmPort) -> None:
    result = crm.apply_inbound(plan_of(crm, referral(SHARED)), None, MESSAGE)

    assert [d.crm_id for d in crm.changed_deals(None)] == [result.crm_id]


# ---------------------------------------------------------------------------- marks
def test_mark_failed_puts_the_cross_and_the_reason_in_the_audit(crm: CrmPort, seller: Seller) -> None:
    result = crm.apply_inbound(plan_of(crm, referral(SHARED)), None, MESSAGE)
    reason = "Sync from Partner Center failed: the currency is not set up."

    assert crm.mark_failed("opportunity", result.crm_id, reason) is True

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.name == "✖ Test Cosell Invite_20"
    assert view.audit_lines[0].endswith(f" - {reason}")
    assert len(view.audit_lines) == 2, "the earlier audit line is kept"


def test_mark_failed_on_a_lead(crm: CrmPort, seller: Seller) -> None:
    result = crm.apply_inbound(plan_of(crm, referral(LEAD)), None, MESSAGE)

    assert crm.mark_failed("lead", result.crm_id, "Failed.") is True

    view = seller.deal(result.crm_id)
    assert view is not None
    if "name" in seller.lead_fields:
        assert view.name == "✖ Fabrikam Customer Inc"
    assert view.audit_lines[0].endswith(" - Failed.")


def test_mark_failed_of_a_record_that_does_not_exist_is_false(crm: CrmPort, seller: Seller) -> None:
    """A record the seller deleted: its id is a well-formed id of this CRM that no record has any more."""
    deal_id = typed_deal(seller)
    seller.delete("opportunity", deal_id)

    assert crm.mark_failed("opportunity", deal_id, "Failed.") is False
    assert seller.writes() == 0


def test_write_back_after_sharing_sets_referral_link_check_and_audit(crm: CrmPort, seller: Seller) -> None:
    deal_id = typed_deal(seller)
    deal = crm.get_deal(deal_id)
    assert deal is not None
    referral_id = str(uuid.uuid4())
    message = f"Shared with Partner Center as referral {referral_id} (Active/Accepted)."

    ok = crm.write_back(deal, message=message, ok=True, referral_id=referral_id, link=LINK.format(id=referral_id))

    assert ok is True
    view = seller.deal(deal_id)
    assert view is not None
    assert (view.referral_id, view.referral_link) == (referral_id, LINK.format(id=referral_id))
    assert view.name == "✔ Outbound deal"
    assert view.audit_lines == [view.audit_lines[0]]
    assert view.audit_lines[0].endswith(f" - {message}")
    again = crm.get_deal(deal_id)
    assert again is not None
    assert (again.referral_id, again.title) == (referral_id, "Outbound deal")


def test_write_back_of_a_refusal_puts_the_cross_and_no_referral(crm: CrmPort, seller: Seller) -> None:
    deal_id = typed_deal(seller)
    deal = crm.get_deal(deal_id)
    assert deal is not None

    assert crm.write_back(deal, message="Not shared: the deal has no currency", ok=False) is True

    view = seller.deal(deal_id)
    assert view is not None
    assert view.name == "✖ Outbound deal"
    assert view.referral_id is None
    assert view.audit_lines[0].endswith(" - Not shared: the deal has no currency")


def test_write_back_keeps_the_audit_already_on_the_record(crm: CrmPort, seller: Seller) -> None:
    deal_id = typed_deal(seller)
    deal = crm.get_deal(deal_id)
    assert deal is not None
    crm.write_back(deal, message="First.", ok=False)

    second = crm.get_deal(deal_id)
    assert second is not None
    crm.write_back(second, message="Second.", ok=True)

    view = seller.deal(deal_id)
    assert view is not None
    assert [line.split(" - ", 1)[1] for line in view.audit_lines] == ["Second.", "First."]
    assert view.name == "✔ Outbound deal", "one mark, never doubled"


def test_write_back_on_a_title_as_long_as_the_name_column_lands_cut(crm: CrmPort, seller: Seller) -> None:
    """The mark must fit too: a title the seller typed to the column's size is cut, the write not refused."""
    limit = crm.field_limits("opportunity")["deal.name"]
    deal_id = typed_deal(seller, "T" * limit)
    deal = crm.get_deal(deal_id)
    assert deal is not None
    referral_id = str(uuid.uuid4())

    ok = crm.write_back(deal, message="Shared.", ok=True, referral_id=referral_id, link=LINK.format(id=referral_id))

    assert ok is True
    view = seller.deal(deal_id)
    assert view is not None
    assert view.referral_id == referral_id, "the referral id must land, or the deal is shared again"
    assert view.name.startswith("✔ TTT")
    assert len(view.name) <= limit


def test_mark_failed_on_a_title_as_long_as_the_name_column_lands_cut(crm: CrmPort, seller: Seller) -> None:
    limit = crm.field_limits("opportunity")["deal.name"]
    deal_id = typed_deal(seller, "T" * limit)

    assert crm.mark_failed("opportunity", deal_id, "Failed.") is True

    view = seller.deal(deal_id)
    assert view is not None
    assert view.name.startswith("✖ TTT")
    assert len(view.name) <= limit
    assert view.audit_lines[0].endswith(" - Failed.")

"""Partner Center → CRM: what one inbound sync leaves in the CRM, for every adapter."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from shared.crm.port import CrmPort, CrmRejected
from shared.mapping.model import DealStage
from shared.mapping.outbound import content_hash_of_deal, content_hash_of_plan
from tests.contract.referrals import LEAD, MESSAGE, SHARED, WON, changed, known_after, member, plan_of, referral
from tests.contract.sellers import Seller

AUDIT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d - ")


def open_stage(crm: CrmPort) -> DealStage:
    """An accepted co-sell opportunity reads as accepted where the CRM can say so, else just open."""
    return DealStage.ACCEPTED if crm.capabilities.pending_stage else DealStage.OPEN


def co_sell(**changes: object) -> dict:
    return referral(
        SHARED,
        closing="2026-12-31T00:00:00Z",
        help_needed="ProofOfConceptOrDemo",
        visible=True,
        **changes,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------- create
def test_create_writes_the_opportunity_with_its_values_mark_and_audit_line(crm: CrmPort, seller: Seller) -> None:
    data = co_sell()
    plan = plan_of(crm, data)

    result = crm.apply_inbound(plan, None, MESSAGE)

    assert (result.kind, result.created) == ("opportunity", True)
    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.kind == "opportunity"
    assert view.name == "✔ Test Cosell Invite_20"
    assert view.deal_value == Decimal(50000)
    assert view.currency == "USD"
    assert view.close_date == dt.date(2026, 12, 31)
    assert view.description == data["details"]["notes"]
    assert view.help_needed == "ProofOfConceptOrDemo"
    assert view.visible is True
    assert view.referral_id == data["id"]
    assert view.referral_link == f"https://partner.microsoft.com/dashboard/referrals/v2/inbox?id={data['id']}"
    assert view.sync is True, "a referral's opportunity is marked for sync with Partner Center"
    assert view.stage == open_stage(crm)
    assert len(view.audit_lines) == 1
    assert AUDIT_LINE.match(view.audit_lines[0])
    assert view.audit_lines[0].endswith(f" - {MESSAGE}")


def test_create_makes_the_account_and_the_contacts_the_first_member_primary(crm: CrmPort, seller: Seller) -> None:
    result = crm.apply_inbound(plan_of(crm, co_sell()), None, MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    accounts = seller.accounts()
    assert list(accounts) == [view.account_id]
    account = accounts[view.account_id]
    assert (account.name, account.postal_code, account.city, account.country) == (
        "Contoso Customer Inc",
        "98052",
        "Redmond",
        "US",
    )
    contacts = seller.contacts()
    assert sorted(c.contact.email or "" for c in contacts) == ["joe.hansen@contoso.com", "sue.smith@contoso.com"]
    assert {c.account_id for c in contacts} == {view.account_id}, "contacts are created under the account"
    primary = next(c for c in contacts if c.id == view.contact_id)
    assert (primary.contact.first_name, primary.contact.last_name) == ("Sue", "Smith")


def test_create_adds_the_solutions(crm: CrmPort, seller: Seller) -> None:
    result = crm.apply_inbound(plan_of(crm, co_sell(solutions=["SOL-1", "SOL-2"])), None, MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.solutions == {"SOL-1", "SOL-2"}


def test_a_currency_the_crm_lacks_is_refused_before_anything_is_written(crm: CrmPort, seller: Seller) -> None:
    plan = plan_of(crm, co_sell(currency="XTS"))  # ISO 4217's code reserved for testing

    with pytest.raises(CrmRejected):
        crm.apply_inbound(plan, None, MESSAGE)

    assert seller.writes() == 0
    assert seller.deals("opportunity") == []
    assert seller.accounts() == {}


def test_a_customer_state_the_crm_does_not_list_does_not_stop_the_sync(crm: CrmPort, seller: Seller) -> None:
    """Partner Center's state is text; a CRM that keeps a list of each country's states (Salesforce's State
    and Country/Territory Picklists) must still take the referral, not refuse its whole customer."""
    data = co_sell()
    data["customerProfile"]["address"]["state"] = "Washington State"  # listed: "WA" / "Washington"

    result = crm.apply_inbound(plan_of(crm, data), None, MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.account_id in seller.accounts()


# ---------------------------------------------------------------------------- idempotency
def test_a_create_retried_after_a_lost_answer_duplicates_nothing(crm: CrmPort, seller: Seller) -> None:
    plan = plan_of(crm, co_sell(solutions=["SOL-1", "SOL-2"]))

    first = crm.apply_inbound(plan, None, MESSAGE)
    second = crm.apply_inbound(plan, None, MESSAGE)  # the first answer was lost: nothing was remembered

    assert second.crm_id == first.crm_id
    assert not second.created
    assert len(seller.deals("opportunity")) == 1
    assert len(seller.accounts()) == 1
    emails = [(c.contact.email or "").lower() for c in seller.contacts()]
    assert sorted(emails) == ["joe.hansen@contoso.com", "sue.smith@contoso.com"], "one contact per email"
    view = seller.deal(first.crm_id)
    assert view is not None
    assert view.solutions == {"SOL-1", "SOL-2"}


def test_a_lead_create_retried_after_a_lost_answer_duplicates_nothing(crm: CrmPort, seller: Seller) -> None:
    plan = plan_of(crm, referral(LEAD))

    first = crm.apply_inbound(plan, None, MESSAGE)
    second = crm.apply_inbound(plan, None, MESSAGE)

    assert (first.kind, second.kind) == ("lead", "lead")
    assert second.crm_id == first.crm_id
    assert not second.created
    assert len(seller.deals("lead")) == 1


def test_a_referral_created_from_a_crm_deal_links_to_that_deal(crm: CrmPort, seller: Seller) -> None:
    """Partner Center's webhook for our own create may overtake our write-back: no second opportunity."""
    account = seller.create_account("Contoso Customer Inc", "98052", country="US")
    deal_id = seller.create_opportunity("Shared from the CRM", account_id=account, deal_value=Decimal(100))

    result = crm.apply_inbound(plan_of(crm, co_sell(external_id=deal_id)), None, MESSAGE)

    assert (result.crm_id, result.created) == (deal_id, False)
    assert [d.id for d in seller.deals("opportunity")] == [deal_id]
    view = seller.deal(deal_id)
    assert view is not None
    assert view.referral_id


def test_a_deal_the_seller_made_for_the_referral_keeps_its_account(crm: CrmPort, seller: Seller) -> None:
    """A record found for a referral (shared from the CRM, or adopted from Microsoft's co-sell connector)
    keeps the account its seller gave it, even when Partner Center names the customer otherwise."""
    account = seller.create_account("Contoso Holdings", "10001", country="US")
    deal_id = seller.create_opportunity("Made by the seller", account_id=account, deal_value=Decimal(100))

    result = crm.apply_inbound(plan_of(crm, co_sell(external_id=deal_id)), None, MESSAGE)

    assert result.crm_id == deal_id
    view = seller.deal(deal_id)
    assert view is not None
    assert view.account_id == account
    assert list(seller.accounts()) == [account], "no account is made for a deal that has one"


# ---------------------------------------------------------------------------- writing only what changed
def test_the_same_plan_again_writes_nothing(crm: CrmPort, seller: Seller) -> None:
    plan = plan_of(crm, co_sell())
    result = crm.apply_inbound(plan, None, MESSAGE)
    before = seller.writes()

    again = crm.apply_inbound(plan, known_after(result, plan), MESSAGE)

    assert seller.writes() == before, "an unchanged plan must not write"
    assert again.crm_id == result.crm_id
    assert not again.created
    view = seller.deal(result.crm_id)
    assert view is not None
    assert len(view.audit_lines) == 1


def test_the_memo_for_a_plan_is_the_memo_its_sync_leaves(crm: CrmPort, seller: Seller) -> None:
    """After sharing, the engine stores ``memo_for(plan)``: the webhook echo must then write nothing."""
    plan = plan_of(crm, co_sell())
    result = crm.apply_inbound(plan, None, MESSAGE)
    assert crm.memo_for(plan) == result.memo
    before = seller.writes()

    crm.apply_inbound(plan, known_after(result, plan), MESSAGE)

    assert seller.writes() == before


def test_one_changed_field_is_one_write(crm: CrmPort, seller: Seller) -> None:
    data = co_sell()
    plan = plan_of(crm, data)
    result = crm.apply_inbound(plan, None, MESSAGE)
    before = seller.writes()

    crm.apply_inbound(plan_of(crm, changed(data, deal_value=60000)), known_after(result, plan), "Value changed.")

    assert seller.writes() - before == 1
    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.deal_value == Decimal(60000)
    assert len(view.audit_lines) == 2
    assert view.audit_lines[0].endswith(" - Value changed."), "newest line first"


def test_a_success_after_a_failure_puts_the_check_mark_back(crm: CrmPort, seller: Seller) -> None:
    plan = plan_of(crm, co_sell())
    result = crm.apply_inbound(plan, None, MESSAGE)
    assert crm.mark_failed("opportunity", result.crm_id, "Sync from Partner Center failed: boom")

    crm.apply_inbound(plan, known_after(result, plan, failed_before=True), MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.name == "✔ Test Cosell Invite_20"


# ---------------------------------------------------------------------------- no echo
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda: referral(SHARED, closing="2026-12-31T00:00:00Z"), id="open"),
        pytest.param(
            lambda: referral(SHARED, closing="2026-12-31T00:00:00Z", help_needed="GeneralOrOther", visible=True),
            id="co-sell",
        ),
        pytest.param(lambda: referral(WON), id="won"),
        pytest.param(lambda: referral(SHARED, status=("New", "Pending")), id="pending"),
        pytest.param(lambda: referral(LEAD), id="lead"),
    ],
)
def test_what_an_inbound_sync_wrote_reads_back_as_the_same_shared_content(crm: CrmPort, data: object) -> None:
    """The no-ping-pong key: the CRM poll must read back exactly what the inbound sync agreed on."""
    plan = plan_of(crm, data())  # type: ignore[operator]
    result = crm.apply_inbound(plan, None, MESSAGE)

    deal = crm.get_deal(result.crm_id)

    assert deal is not None
    assert deal.entity == plan.kind
    assert deal.referral_id == plan.referral_id
    assert content_hash_of_deal(deal) == content_hash_of_plan(plan, pending_stage=crm.capabilities.pending_stage)


# ---------------------------------------------------------------------------- team
def test_team_members_without_an_email_are_not_made_contacts(crm: CrmPort, seller: Seller) -> None:
    team = [member("No", "Mail", None), member("Ada", "Buyer", "ada@customer.example")]

    result = crm.apply_inbound(plan_of(crm, co_sell(team=team)), None, MESSAGE)

    contacts = seller.contacts()
    assert [c.contact.email for c in contacts] == ["ada@customer.example"]
    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.contact_id == contacts[0].id


def test_a_new_first_team_member_becomes_the_primary_contact(crm: CrmPort, seller: Seller) -> None:
    data = co_sell(team=[member("Sue", "Smith", "sue@customer.example")])
    plan = plan_of(crm, data)
    result = crm.apply_inbound(plan, None, MESSAGE)

    team = [member("Joe", "Hansen", "joe@customer.example"), member("Sue", "Smith", "sue@customer.example")]
    crm.apply_inbound(plan_of(crm, changed(data, team=team)), known_after(result, plan), MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    primary = next(c for c in seller.contacts() if c.id == view.contact_id)
    assert primary.contact.email == "joe@customer.example"
    assert len(seller.contacts()) == 2


def test_a_value_partner_center_sent_unreadable_keeps_the_crm_value(crm: CrmPort, seller: Seller) -> None:
    data = co_sell()
    plan = plan_of(crm, data)
    result = crm.apply_inbound(plan, None, MESSAGE)

    unreadable = plan_of(crm, changed(data, deal_value="fifty thousand", notes="New notes."))
    assert unreadable.deal is not None
    assert unreadable.deal.unreadable == {"deal_value"}
    crm.apply_inbound(unreadable, known_after(result, plan), MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.deal_value == Decimal(50000), "the CRM keeps its value"
    assert view.description == "New notes.", "the readable fields still travel"


def test_a_record_the_seller_deleted_is_created_again(crm: CrmPort, seller: Seller) -> None:
    data = co_sell()
    plan = plan_of(crm, data)
    first = crm.apply_inbound(plan, None, MESSAGE)
    seller.delete("opportunity", first.crm_id)

    again = crm.apply_inbound(plan_of(crm, changed(data, deal_value=1)), known_after(first, plan), MESSAGE)

    assert again.created
    assert again.crm_id != first.crm_id
    view = seller.deal(again.crm_id)
    assert view is not None
    assert view.referral_id == data["id"]
    assert len(seller.deals("opportunity")) == 1
    assert len(seller.accounts()) == 1, "the customer's account is found again, not duplicated"

"""The matching rules of ``shared/crm/matching.py``, held against every adapter.

- A customer account is the same customer when its company name and postal code are equal once
  normalised (case, accents, punctuation, legal forms); an empty name matches nothing.
- A contact is the same person when the email is equal, case-insensitively.
"""

from __future__ import annotations

import pytest

from shared.crm.port import CrmPort
from tests.contract.referrals import MESSAGE, SHARED, member, plan_of, referral
from tests.contract.sellers import Seller


def sync_customer(crm: CrmPort, seller: Seller, name: str, postal_code: str | None, **changes: object) -> str:
    """Sync a new referral for this customer; the id of the account its opportunity got."""
    data = referral(SHARED, customer=name, postal_code=postal_code, **changes)  # type: ignore[arg-type]
    result = crm.apply_inbound(plan_of(crm, data), None, MESSAGE)
    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.account_id
    return view.account_id


# ---------------------------------------------------------------------------- accounts
def test_an_account_equal_once_normalised_is_reused(crm: CrmPort, seller: Seller) -> None:
    existing = seller.create_account("CONTOSO INC", "98052", country="US")

    assert sync_customer(crm, seller, "Contoso, Inc.", "98052") == existing
    assert list(seller.accounts()) == [existing]


def test_postal_codes_equal_once_normalised_are_the_same_customer(crm: CrmPort, seller: Seller) -> None:
    """``normalise_postal_code`` ignores spaces, hyphens and case: "SW1A 1AA" is "sw1a1aa"."""
    existing = seller.create_account("Fabrikam Ltd", "SW1A 1AA", country="GB")

    assert sync_customer(crm, seller, "Fabrikam", "sw1a1aa") == existing
    assert list(seller.accounts()) == [existing]


def test_the_same_name_with_another_postal_code_is_another_customer(crm: CrmPort, seller: Seller) -> None:
    existing = seller.create_account("Contoso Inc", "98052", country="US")

    created = sync_customer(crm, seller, "Contoso Inc", "10001")

    assert created != existing
    assert sorted(a.postal_code or "" for a in seller.accounts().values()) == ["10001", "98052"]


def test_a_customer_without_a_postal_code_is_not_one_with_a_postal_code(crm: CrmPort, seller: Seller) -> None:
    """The postal code is half of the customer key: "" is not "98052" (matching.customer_key)."""
    existing = seller.create_account("Contoso Inc", "98052", country="US")

    created = sync_customer(crm, seller, "Contoso Inc", None)

    assert created != existing, "an account at 98052 was taken for a customer whose postal code is unknown"
    assert len(seller.accounts()) == 2


@pytest.mark.parametrize("name", ["O'Brien & Sons) or (1 eq 1", "Bob\\'s Shop"])
def test_a_hostile_name_matches_its_own_account_and_no_other(crm: CrmPort, seller: Seller, name: str) -> None:
    decoy = seller.create_account("Decoy Traders", "12345", country="US")  # first in any listing
    existing = seller.create_account(name, "12345", country="US")

    assert sync_customer(crm, seller, name, "12345") == existing
    assert sorted(seller.accounts()) == sorted([decoy, existing]), "no account was created"


def test_a_hostile_name_seen_first_gets_one_account(crm: CrmPort, seller: Seller) -> None:
    name = "O'Brien & Sons) or (1 eq 1"
    first = sync_customer(crm, seller, name, "12345")

    assert sync_customer(crm, seller, name, "12345") == first
    assert sync_customer(crm, seller, "Other Customer", "12345") != first
    assert len(seller.accounts()) == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("שלום בע״מ", "תודה בע״מ", id="hebrew"),
        pytest.param("شركة الأمل", "شركة النور", id="arabic"),
        pytest.param("山田株式会社", "田中株式会社", id="cjk"),
        pytest.param("삼성전자", "엘지전자", id="korean"),
    ],
)
def test_non_latin_names_of_two_customers_at_one_postal_code_are_two_accounts(
    crm: CrmPort, seller: Seller, first: str, second: str
) -> None:
    one = sync_customer(crm, seller, first, "10001")
    two = sync_customer(crm, seller, second, "10001")

    assert one != two
    accounts = seller.accounts()
    assert {accounts[one].name, accounts[two].name} == {first, second}
    assert sync_customer(crm, seller, first, "10001") == one, "the same non-Latin name is the same customer"
    assert len(seller.accounts()) == 2


def test_names_that_are_only_a_legal_form_are_two_customers(crm: CrmPort, seller: Seller) -> None:
    ab = sync_customer(crm, seller, "AB", "11122")
    oy = sync_customer(crm, seller, "Oy", "11122")

    assert ab != oy
    assert sorted(a.name for a in seller.accounts().values()) == ["AB", "Oy"]


def test_accents_and_case_do_not_make_another_customer(crm: CrmPort, seller: Seller) -> None:
    existing = seller.create_account("Société Générale SA", "75009", country="FR")

    assert sync_customer(crm, seller, "societe generale", "75009") == existing
    assert len(seller.accounts()) == 1


# ---------------------------------------------------------------------------- contacts
def test_a_contact_is_matched_by_email_whatever_its_case(crm: CrmPort, seller: Seller) -> None:
    account = seller.create_account("Contoso Customer Inc", "98052", country="US")
    existing = seller.create_contact("Sue", "Smith", "Sue.Smith@Contoso.COM", account)

    result = crm.apply_inbound(plan_of(crm, referral(SHARED)), None, MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.contact_id == existing
    emails = sorted((c.contact.email or "").lower() for c in seller.contacts())
    assert emails == ["joe.hansen@contoso.com", "sue.smith@contoso.com"]


def test_a_contact_is_reused_across_referrals(crm: CrmPort, seller: Seller) -> None:
    ada = [member("Ada", "Buyer", "ada@customer.example")]
    first = crm.apply_inbound(plan_of(crm, referral(SHARED, customer="First Co", team=ada)), None, MESSAGE)
    second = crm.apply_inbound(plan_of(crm, referral(SHARED, customer="Second Co", team=ada)), None, MESSAGE)

    contacts = seller.contacts()
    assert len(contacts) == 1
    one, two = seller.deal(first.crm_id), seller.deal(second.crm_id)
    assert one is not None
    assert two is not None
    assert one.contact_id == two.contact_id == contacts[0].id
    assert one.account_id != two.account_id


def test_an_email_with_a_quote_matches_its_contact(crm: CrmPort, seller: Seller) -> None:
    account = seller.create_account("Contoso Customer Inc", "98052", country="US")
    existing = seller.create_contact("Pat", "O'Brien", "pat.o'brien@customer.example", account)
    team = [member("Pat", "O'Brien", "Pat.O'Brien@customer.example")]

    first = crm.apply_inbound(plan_of(crm, referral(SHARED, team=team)), None, MESSAGE)
    crm.apply_inbound(plan_of(crm, referral(SHARED, team=team)), None, MESSAGE)

    assert [c.id for c in seller.contacts()] == [existing]
    view = seller.deal(first.crm_id)
    assert view is not None
    assert view.contact_id == existing

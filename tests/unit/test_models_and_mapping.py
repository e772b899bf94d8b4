"""Referral parsing (verbatim Microsoft samples) and the pure inbound mapping."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from shared.mapping.inbound import InboundOptions, is_lead_category, plan_for
from shared.mapping.model import DealStage
from shared.mapping.text import audit_line, normalise_company, prepend_audit, strip_mark, with_mark
from shared.partner_center.models import MalformedReferral, Referral, WebhookEvent

FIXTURES = Path(__file__).resolve().parents[2] / "sandbox" / "fixtures"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fixture_a() -> Referral:
    return Referral.model_validate(load("fixture_a_list.json")["value"][0])


@pytest.fixture
def fixture_b() -> Referral:
    return Referral.model_validate(load("fixture_b_shared_accepted.json"))


@pytest.fixture
def fixture_c() -> Referral:
    return Referral.model_validate(load("fixture_c_closed_won.json"))


def test_verbatim_samples_parse(fixture_a: Referral, fixture_b: Referral, fixture_c: Referral) -> None:
    assert fixture_a.customer_profile.name == "Fabrikam Customer Inc"
    assert fixture_a.details.deal_value == Decimal(10000)
    assert fixture_a.details.requirements
    assert fixture_a.details.requirements.solutions[0].id == "SOL-Microsoft365"
    assert fixture_b.e_tag == '"00006d10-0000-0000-0000-5c70aa630000"'
    assert fixture_b.invite_context
    assert fixture_b.invite_context.invited_by
    assert fixture_b.invite_context.invited_by.organization_id == "msft"
    assert [m.email for m in fixture_b.customer_profile.team] == ["sue.smith@contoso.com", "joe.hansen@contoso.com"]
    assert fixture_b.consent.consent_to_to_share_info_with_others is True
    assert fixture_c.updated_date_time == dt.datetime(2018, 11, 6, 18, 43, 38, 994863, tzinfo=dt.UTC)
    assert fixture_c.is_terminal
    assert not fixture_b.is_terminal


def test_parsing_is_tolerant_of_case_types_and_unknown_fields() -> None:
    referral = Referral.model_validate(
        {
            "ID": "r-1",
            "Status": "New",
            "Substatus": "Received",
            "Details": {"DealValue": "10000.50", "Currency": "eur"},
            "customerProfile": {"ids": {}, "Team": None},
            "consent": {"ConsentToShareReferralWithMicrosoftSellers": True},
            "brandNewField2026": {"x": 1},
            "expirationDateTime": None,
        }
    )
    assert referral.id == "r-1"
    assert referral.substatus == "Received"
    assert referral.details.deal_value == Decimal("10000.50")
    assert referral.customer_profile.team == []
    assert referral.consent.consent_to_share_referral_with_microsoft_sellers is True
    assert referral.model_extra == {"brandNewField2026": {"x": 1}}


def test_webhook_event_referral_id_is_the_last_segment() -> None:
    event = WebhookEvent.model_validate(
        {
            "eventName": "referral-updated",
            "resourceUri": "https://api.partnercenter.microsoft.com/engagements/v1/referrals/"
            "4111FFFC-f9ee-4d53-bba6-569135228642/",
        }
    )
    assert event.referral_id == "4111FFFC-f9ee-4d53-bba6-569135228642"
    sample = WebhookEvent.model_validate(json.loads((FIXTURES / "event_referral-created.json").read_text()))
    assert sample.referral_id is None  # the doc sample's "{{ReferralID}}" placeholder is not an id


def test_classification_of_the_three_samples(fixture_a: Referral, fixture_b: Referral, fixture_c: Referral) -> None:
    options = InboundOptions()
    # A: Independent + Direct, no inviter, New/Pending -> a marketplace lead, not accepted -> CRM lead
    assert is_lead_category(fixture_a)
    assert plan_for(fixture_a, options).kind == "lead"
    # B: Shared co-sell invited by Microsoft, Active/Accepted -> opportunity, open
    plan_b = plan_for(fixture_b, options)
    assert (plan_b.kind, plan_b.deal and plan_b.deal.stage) == ("opportunity", DealStage.ACCEPTED)
    # C: Independent + SalesQualified by msft (a qualified lead) that was won -> opportunity, won
    assert is_lead_category(fixture_c)
    plan_c = plan_for(fixture_c, options)
    assert (plan_c.kind, plan_c.deal and plan_c.deal.stage) == ("opportunity", DealStage.WON)


def test_sync_cosell_only_skips_unaccepted_leads(fixture_a: Referral, fixture_b: Referral) -> None:
    options = InboundOptions(sync_cosell_only=True)
    assert plan_for(fixture_a, options).kind == "skip"
    assert plan_for(fixture_b, options).kind == "opportunity"


def test_plan_fields_from_sample_b(fixture_b: Referral) -> None:
    plan = plan_for(fixture_b, InboundOptions(referral_link_template="https://pc.example/r/{id}"))
    deal = plan.deal
    assert deal is not None
    assert deal.name == "✔ Test Cosell Invite_20"
    # No closing date in the sample: its creation date (2019-02-23) + 90 days, the same on every sync.
    assert (deal.deal_value, deal.currency, deal.close_date) == (Decimal(50000), "USD", dt.date(2019, 5, 24))
    assert deal.referral_link == "https://pc.example/r/4111fffc-f9ee-4d53-bba6-569135228642"
    assert plan.account
    assert (plan.account.name, plan.account.postal_code, plan.account.country) == (
        "Contoso Customer Inc",
        "98052",
        "US",
    )
    assert [c.email for c in plan.contacts] == ["sue.smith@contoso.com", "joe.hansen@contoso.com"]
    assert [s.id for s in plan.solutions] == ["Dynamics365forFieldService"]


def test_name_falls_back_to_the_customer_when_the_referral_has_none(fixture_a: Referral) -> None:
    deal = plan_for(fixture_a, InboundOptions(display_checkmark=False)).deal
    assert deal is not None
    assert deal.name == "Fabrikam Customer Inc"


def test_hash_changes_with_content_and_only_there(fixture_b: Referral) -> None:
    options = InboundOptions()
    first = plan_for(fixture_b, options)
    assert plan_for(Referral.model_validate(fixture_b.model_dump(by_alias=True)), options).content_hash() == (
        first.content_hash()
    )
    changed = fixture_b.model_copy(deep=True)
    changed.details.deal_value = Decimal(60000)
    second = plan_for(changed, options)
    assert second.content_hash() != first.content_hash()
    assert {k for k in first.part_hashes() if first.part_hashes()[k] != second.part_hashes()[k]} == {"deal"}


def test_checkmark_is_never_doubled_and_can_be_removed() -> None:
    assert with_mark("✔ Deal", "✔", True) == "✔ Deal"
    assert with_mark("✖ ✔ Deal", "✔", True) == "✔ Deal"
    assert with_mark("✓ Deal", "✖", True) == "✖ Deal"
    assert with_mark("✔ Deal", "✔", False) == "Deal"
    assert strip_mark("Deal ✔") == "Deal ✔"


def test_audit_lines_are_newest_first_and_trimmed_by_whole_lines() -> None:
    when = dt.datetime(2026, 11, 21, 14, 5, tzinfo=dt.UTC)
    line = audit_line(when, "Partner Center referral to CRM sync success.")
    assert line == "2026-11-21 14:05 - Partner Center referral to CRM sync success."
    text = prepend_audit("old one\nolder one", line, max_chars=len(line) + 8)
    assert text == f"{line}\nold one"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Contoso, Inc.", "CONTOSO INC"),
        ("Fabrikam & Sons Ltd", "fabrikam and sons"),
        ("Société Générale S.A.", "Societe Generale SA"),
    ],
)
def test_company_names_normalise_equal(a: str, b: str) -> None:
    assert normalise_company(a) == normalise_company(b)


def test_hostile_name_normalises_without_losing_its_words() -> None:
    assert normalise_company("O'Brien & Sons) or (1 eq 1") == "o brien and sons or 1 eq 1"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ('שלום בע"מ', 'שָׁלוֹם בע"מ'),  # Hebrew, with and without niqqud
        ("شركة النور", "شَرِكَة النور"),  # Arabic, with and without harakat
        ("Ｔｏｋｙｏ　Ｓｏｆｔ", "tokyo soft"),  # full-width forms (NFKC)
        ("ΑΘΗΝΑ Α.Ε.", "αθηνα αε"),
        ("Straße GmbH", "STRASSE"),  # casefold
    ],
)
def test_names_in_every_script_normalise_equal(a: str, b: str) -> None:
    assert normalise_company(a) == normalise_company(b)


@pytest.mark.parametrize(
    "names",
    [
        ("שלום", "תודה"),
        ("شركة النور", "شركة الأمل"),
        ("株式会社東京", "株式会社大阪"),
        ("Ромашка", "Василёк"),
        ("Αθηνα", "Σπαρτη"),
        ("कुल", "कल"),  # a Devanagari vowel sign is a letter's vowel, not an accent
        ("AB", "Oy"),
        ("🚀", "🌮"),
    ],
)
def test_different_customers_never_share_a_key_and_no_key_is_empty(names: tuple[str, str]) -> None:
    first, second = (normalise_company(n) for n in names)
    assert first
    assert second
    assert first != second


def test_only_an_empty_name_has_an_empty_key() -> None:
    assert normalise_company("") == normalise_company("   ") == normalise_company(None) == ""


def test_unreadable_values_cost_their_field_not_the_referral() -> None:
    referral = Referral.parse(
        {
            "id": "4111fffc-f9ee-4d53-bba6-569135228642",
            "name": "Deal",
            "updatedDateTime": "yesterday",
            "details": {"dealValue": "a lot", "closingDateTime": "soon", "currency": "usd ", "notes": {"x": 1}},
            "customerProfile": {"name": "Contoso", "team": {"email": "a@b.example"}},
            "consent": [],
        }
    )
    assert referral.unreadable == [
        "consent",
        "customerProfile.team",
        "details.closingDateTime",
        "details.dealValue",
        "details.notes",
        "updatedDateTime",
    ]
    assert (referral.details.deal_value, referral.customer_profile.name) == (None, "Contoso")
    plan = plan_for(referral, InboundOptions())
    assert plan.deal is not None
    assert plan.deal.currency == "USD"  # codes are trimmed
    assert plan.deal.unreadable == {"deal_value", "close_date", "description"}


@pytest.mark.parametrize("body", [{"name": "no id"}, {"id": {"nested": 1}}, {"id": None}, ["not", "an", "object"]])
def test_a_referral_without_a_readable_id_is_malformed(body: object) -> None:
    with pytest.raises(MalformedReferral):
        Referral.parse(body)


def test_content_hash_is_the_same_in_every_process() -> None:
    """Sets render in hash-seed order: the no-op check compares hashes made by different instances."""
    import os
    import subprocess
    import sys

    script = (
        "from shared.mapping.inbound import InboundOptions, plan_for\n"
        "from shared.partner_center.models import Referral\n"
        "r = Referral.parse({'id': 'x', 'details': {'dealValue': 'x', 'notes': [], 'closingDateTime': 'y',"
        " 'currency': 'USD'}})\n"
        "print(plan_for(r, InboundOptions()).content_hash())\n"
    )
    root = Path(__file__).resolve().parents[2]
    hashes = {
        subprocess.run(  # noqa: S603
            [sys.executable, "-c", script],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3, 4)
    }
    assert len(hashes) == 1


def test_values_longer_than_their_column_are_cut_with_a_note_and_emails_left_out(fixture_b: Referral) -> None:
    from shared.mapping.limits import fit

    long = fixture_b.model_copy(deep=True)
    long.name = "N" * 400
    long.details.notes = "x" * 2500
    long.customer_profile.name = "C" * 200
    long.customer_profile.team[0].first_name = "F" * 80
    long.customer_profile.team[0].email = ("e" * 120) + "@contoso.example"
    limits = {"deal.name": 300, "deal.description": 2000, "account.name": 160, "contact.first_name": 50}
    limits["contact.email"] = 100
    plan = fit(plan_for(long, InboundOptions()), limits)
    assert plan.deal is not None
    assert plan.deal.name == "✔ " + "N" * 298
    assert len(plan.deal.description or "") == 2000
    assert plan.account is not None
    assert len(plan.account.name) == 160
    assert plan.contacts[0].first_name == "F" * 50
    assert plan.contacts[0].email is None
    assert set(plan.notes) == {
        "name cut to 300 characters",
        "notes cut to 2000 characters",
        "company name cut to 160 characters",
        "a contact's first name cut to 50 characters",
        "a customer contact's email is longer than the CRM's 100 characters and was left out",
    }
    assert fit(plan_for(fixture_b, InboundOptions()), limits) == plan_for(fixture_b, InboundOptions())

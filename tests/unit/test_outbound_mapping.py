"""CRM deal -> Partner Center: validation, create body, minimal JSON Patch, the shared-content hash."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from shared.mapping.inbound import InboundOptions, plan_for
from shared.mapping.model import AccountData, ContactData, CrmDeal, DealStage, SolutionData
from shared.mapping.outbound import (
    HELP_NOT_PATCHABLE,
    content_hash_of_deal,
    content_hash_of_plan,
    new_referral,
    problems,
    referral_update,
    rejection_message,
    terminal_reason,
)
from shared.partner_center.models import Referral
from shared.partner_center.patch import PATCHABLE_PATHS, PatchOperation

FIXTURES = Path(__file__).resolve().parents[2] / "sandbox" / "fixtures"


def deal(**changes: object) -> CrmDeal:
    base = CrmDeal(
        entity="opportunity",
        crm_id="7f0c0c5e-0000-4000-8000-000000000001",
        modified_on="2026-11-21T10:00:00Z",
        referral_id=None,
        title="Contoso migration",
        deal_value=Decimal(50000),
        currency="USD",
        close_date=dt.date(2026, 12, 31),
        description="Move to Dynamics 365",
        stage=DealStage.OPEN,
        help_needed="ProofOfConceptOrDemo",
        visible=True,
        account=AccountData("Contoso Ltd", "1 Main St", None, "Redmond", "WA", "98052", "US"),
        contact=ContactData("Ada", "Buyer", "ada@contoso.example", "555"),
        owner=ContactData("Sam", "Seller", "sam@partner.example"),
        solutions=(SolutionData("SOL-1", "Contoso-Ale", "3P"),),
    )
    return dataclasses.replace(base, **changes)


def test_a_complete_deal_has_no_problems() -> None:
    assert problems(deal()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"account": AccountData("Contoso", country="United States")},
            'the account\'s country "United States" is not an ISO 3166 two-letter code',
        ),
        (
            {"account": AccountData("Contoso", country=None)},
            'the account has no country (an ISO 3166 two-letter code such as "US" is required)',
        ),
        ({"contact": None}, "a customer contact with an email is required when Microsoft's help is requested"),
        ({"solutions": ()}, "at least one Microsoft solution is required to share the deal with Microsoft"),
        ({"deal_value": Decimal(0)}, "the deal value must be greater than 0"),
        ({"currency": None}, "the deal has no currency"),
        ({"close_date": None}, "the deal has no estimated close date"),
        ({"account": None}, "the opportunity has no customer account"),
    ],
)
def test_each_validation_rule_has_a_readable_reason(changes: dict, expected: str) -> None:
    assert problems(deal(**changes)) == [expected]


def test_private_deal_needs_no_contact_or_solution() -> None:
    assert problems(deal(help_needed=None, visible=False, contact=None, solutions=())) == []


def test_rejection_message_matches_the_documented_audit_text() -> None:
    message = rejection_message(problems(deal(account=AccountData("Contoso", country="United States"))))
    assert message == 'Not shared: the account\'s country "United States" is not an ISO 3166 two-letter code'


def test_create_body_for_a_co_sell_deal() -> None:
    body = new_referral(deal()).to_wire()
    assert (body["type"], body["externalReferenceId"], body["name"]) == ("Shared", deal().crm_id, "Contoso migration")
    assert body["inviteContext"]["assistanceRequestCode"] == "ProofOfConceptOrDemo"
    assert body["consent"]["consentToShareReferralWithMicrosoftSellers"] is True
    assert body["customerProfile"]["address"]["country"] == "US"
    assert body["customerProfile"]["team"] == [
        {"firstName": "Ada", "lastName": "Buyer", "email": "ada@contoso.example", "phoneNumber": "555"}
    ]
    assert body["team"][0]["email"] == "sam@partner.example"
    assert body["details"] | {"requirements": None} == {
        "notes": "Move to Dynamics 365",
        "dealValue": 50000.0,
        "currency": "USD",
        "closingDateTime": "2026-12-31T00:00:00Z",
        "requirements": None,
    }
    assert body["details"]["requirements"]["solutions"] == [{"id": "SOL-1", "name": "Contoso-Ale", "type": "3P"}]


def test_create_body_for_a_private_deal() -> None:
    body = new_referral(deal(help_needed=None, visible=False)).to_wire()
    assert body["type"] == "Independent"
    assert "inviteContext" not in body
    assert body["consent"]["consentToShareReferralWithMicrosoftSellers"] is False


def referral_for(d: CrmDeal, **changes: object) -> Referral:
    referral = Referral.model_validate(
        {**new_referral(d).to_wire(), "id": "r-1", "status": "Active", "substatus": "Accepted"}
    )
    return referral.model_copy(update=changes)


def patch_ops(d: CrmDeal, referral: Referral) -> list[dict[str, object]]:
    return [op.to_wire() for op in referral_update(d, referral).changes.operations()]


def test_no_difference_no_patch() -> None:
    assert patch_ops(deal(), referral_for(deal())) == []


def test_only_what_changed_is_patched() -> None:
    current = referral_for(deal())
    ops = patch_ops(deal(deal_value=Decimal(75000), description="New scope"), current)
    assert ops == [
        {"op": "replace", "path": "/details/dealValue", "value": 75000.0},
        {"op": "replace", "path": "/details/notes", "value": "New scope"},
    ]


def test_won_and_lost_close_the_referral() -> None:
    current = referral_for(deal())
    assert patch_ops(deal(stage=DealStage.WON), current)[-2:] == [
        {"op": "replace", "path": "/status", "value": "Closed"},
        {"op": "replace", "path": "/substatus", "value": "Won"},
    ]
    assert patch_ops(deal(stage=DealStage.LOST), current)[-1] == {
        "op": "replace",
        "path": "/substatus",
        "value": "Lost",
    }


def test_visibility_only_goes_from_false_to_true_and_help_is_not_patched_but_explained() -> None:
    private = referral_for(deal(help_needed=None, visible=False))
    update = referral_update(deal(help_needed="QuotesOrLicensing", visible=True), private)
    # /inviteContext/... is not a patchable path: one such operation fails the whole PATCH.
    assert [op.to_wire() for op in update.changes.operations()] == [
        {"op": "replace", "path": "/consent/consentToShareReferralWithMicrosoftSellers", "value": True}
    ]
    assert update.notes == (HELP_NOT_PATCHABLE,)
    shared = referral_for(deal())
    assert patch_ops(deal(visible=False, help_needed=None), shared) == []  # never back to private


def test_a_rename_sends_nothing_because_the_name_is_not_patchable() -> None:
    current = referral_for(deal())
    assert referral_update(deal(title="Contoso migration, phase 2"), current) == referral_update(deal(), current)
    assert patch_ops(deal(title="Contoso migration, phase 2", deal_value=Decimal(1)), current) == [
        {"op": "replace", "path": "/details/dealValue", "value": 1.0}
    ]


@pytest.mark.parametrize("path", ["/name", "/inviteContext/assistanceRequestCode", "/details", "/customerProfile"])
def test_operations_outside_the_documented_paths_cannot_be_built(path: str) -> None:
    with pytest.raises(ValueError, match="not a patchable"):
        PatchOperation("replace", path, "x")
    with pytest.raises(ValueError, match="replace and add"):
        PatchOperation("remove", "/details/notes", None)  # type: ignore[arg-type]


def test_every_difference_maps_to_a_documented_path() -> None:
    """Change every shared field at once, from several starting points: all paths are patchable."""
    everything = deal(
        title="Renamed",
        deal_value=Decimal(99),
        currency="EUR",
        close_date=dt.date(2027, 1, 31),
        description="other",
        stage=DealStage.WON,
        help_needed="GeneralOrOther",
        visible=True,
        contact=ContactData("Bo", "New", "bo@contoso.example"),
        solutions=(SolutionData("SOL-2", "Other", "3P"),),
    )
    starts = [
        referral_for(deal(help_needed=None, visible=False)),
        referral_for(deal(), status="New", substatus="Pending"),
        referral_for(deal(solutions=())),
    ]
    for start in starts:
        for entity in ("opportunity", "lead"):
            update = referral_update(dataclasses.replace(everything, entity=entity), start)
            assert update.paths or entity == "lead"  # a lead moves only a pending referral
            assert set(update.paths) <= PATCHABLE_PATHS


def test_new_customer_contact_is_added_not_replaced() -> None:
    current = referral_for(deal())
    ops = patch_ops(deal(contact=ContactData("Bo", "New", "bo@contoso.example")), current)
    assert ops == [
        {
            "op": "add",
            "path": "/customerProfile/team/-",
            "value": {"firstName": "Bo", "lastName": "New", "email": "bo@contoso.example", "phoneNumber": ""},
        }
    ]


def test_a_lead_only_moves_its_referral_status() -> None:
    pending = referral_for(deal(), status="New", substatus="Pending")
    lead = deal(entity="lead", deal_value=Decimal(1))
    assert patch_ops(dataclasses.replace(lead, stage=DealStage.OPEN), pending) == []
    assert patch_ops(dataclasses.replace(lead, stage=DealStage.ACCEPTED), pending) == [
        {"op": "replace", "path": "/status", "value": "Active"},
        {"op": "replace", "path": "/substatus", "value": "Accepted"},
    ]
    assert patch_ops(dataclasses.replace(lead, stage=DealStage.LOST), pending)[-1]["value"] == "Declined"


def test_terminal_referrals_are_recognised() -> None:
    assert terminal_reason(referral_for(deal(), status="Closed", substatus="Won"))
    assert terminal_reason(referral_for(deal())) == ""


def test_content_hash_is_equal_from_either_side() -> None:
    """What the inbound sync writes to the CRM, read back by the poll, hashes the same: no echo."""
    referral = Referral.model_validate(json.loads((FIXTURES / "fixture_b_shared_accepted.json").read_text()))
    plan = plan_for(referral, InboundOptions())
    assert plan.deal is not None
    read_back = CrmDeal(
        entity="opportunity",
        crm_id="x",
        modified_on="",
        referral_id=referral.id,
        title=plan.deal.title,
        deal_value=Decimal("50000.0"),  # Dataverse money comes back as a float
        currency="USD",
        close_date=plan.deal.close_date,  # no closing date in Partner Center: creation + 90 days
        description=referral.details.notes,
        stage=DealStage.OPEN,
        help_needed=None,
        visible=False,
        account=plan.account,
        contact=ContactData("Sue", "Smith", "SUE.SMITH@contoso.com"),
        solutions=(SolutionData("Dynamics365forFieldService", "x"),),
    )
    assert content_hash_of_deal(read_back) == content_hash_of_plan(plan, pending_stage=False)
    assert content_hash_of_deal(dataclasses.replace(read_back, deal_value=Decimal(1))) != content_hash_of_plan(
        plan, pending_stage=False
    )


def test_lead_content_hash_ignores_what_a_crm_lead_cannot_hold() -> None:
    referral = Referral.model_validate(json.loads((FIXTURES / "fixture_a_list.json").read_text())["value"][0])
    plan = plan_for(referral, InboundOptions())
    assert plan.kind == "lead"
    assert plan.deal is not None
    read_back = CrmDeal(
        entity="lead",
        crm_id="l",
        modified_on="",
        referral_id=referral.id,
        title=plan.deal.title,
        deal_value=Decimal("10000.0"),
        currency="USD",
        close_date=plan.deal.close_date,
        description=referral.details.notes,
        stage=DealStage.PENDING,  # an open lead is a pending one
        help_needed=None,
        visible=False,
        contact=ContactData(None, None, None),
    )
    # Equal although the referral lists a solution: a CRM lead holds none.
    assert content_hash_of_deal(read_back) == content_hash_of_plan(plan, pending_stage=False)

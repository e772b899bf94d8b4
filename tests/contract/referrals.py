"""Referrals for the contract tests: Microsoft's verbatim samples (``sandbox/fixtures``) with a fresh id and
the changes a test names, turned into plans exactly as the engine does (``plan_for``, then ``fit``)."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from shared.crm.port import CrmPort, InboundResult, KnownRecord
from shared.mapping.inbound import InboundOptions, plan_for
from shared.mapping.limits import fit
from shared.mapping.model import CrmPlan
from shared.partner_center.models import Referral

FIXTURES = Path(__file__).resolve().parents[2] / "sandbox" / "fixtures"
SHARED = "fixture_b_shared_accepted.json"  # co-sell, Active/Accepted, two customer contacts, one solution
LEAD = "fixture_a_list.json"  # Independent + Direct, New/Pending: a lead
WON = "fixture_c_closed_won.json"  # Closed/Won
MESSAGE = "Partner Center referral to CRM sync success."
_UNSET: Any = object()


def sample(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return copy.deepcopy(data["value"][0] if "value" in data else data)


def member(first: str, last: str, email: str | None) -> dict[str, Any]:
    return {"firstName": first, "lastName": last, "email": email, "phoneNumber": "4255550100"}


def referral(name: str = SHARED, *, referral_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """A sample referral with a new id (the samples share ids) and the changes :func:`changed` takes."""
    data = sample(name)
    data.pop("links", None)
    data["id"] = referral_id or str(uuid.uuid4())
    return changed(data, **changes)


def changed(
    data: dict[str, Any],
    *,
    title: Any = _UNSET,
    customer: str | None = None,
    postal_code: Any = _UNSET,
    team: list[dict[str, Any]] | None = None,
    solutions: list[str] | None = None,
    status: tuple[str, str] | None = None,
    deal_value: Any = _UNSET,
    currency: str | None = None,
    notes: Any = _UNSET,
    closing: str | None = None,
    help_needed: str | None = None,
    visible: bool | None = None,
    external_id: str | None = None,
) -> dict[str, Any]:
    """A copy of the referral (same id) with the given changes."""
    data = copy.deepcopy(data)
    profile = data.setdefault("customerProfile", {})
    details = data.setdefault("details", {})
    if title is not _UNSET:
        data["name"] = title
    if customer is not None:
        profile["name"] = customer
    if postal_code is not _UNSET:
        profile.setdefault("address", {})["postalCode"] = postal_code
    if team is not None:
        profile["team"] = team
    if solutions is not None:
        details.setdefault("requirements", {})["solutions"] = [{"id": s, "name": f"Solution {s}"} for s in solutions]
    if status is not None:
        data["status"], data["substatus"] = status
    if deal_value is not _UNSET:
        details["dealValue"] = deal_value
    if currency is not None:
        details["currency"] = currency
    if notes is not _UNSET:
        details["notes"] = notes
    if closing is not None:
        details["closingDateTime"] = closing
    if help_needed is not None:
        data.setdefault("inviteContext", {})["assistanceRequestCode"] = help_needed
    if visible is not None:
        data.setdefault("consent", {})["consentToShareReferralWithMicrosoftSellers"] = visible
    if external_id is not None:
        data["externalReferenceId"] = external_id
    return data


def plan_of(crm: CrmPort, data: dict[str, Any], options: InboundOptions | None = None) -> CrmPlan:
    """The plan the inbound sync would hand this adapter: mapped, then fitted to its column sizes."""
    plan = plan_for(Referral.parse(data), options or InboundOptions())
    assert plan.kind != "skip", plan.reason
    return fit(plan, crm.field_limits(plan.kind))


def known_after(result: InboundResult, plan: CrmPlan, *, failed_before: bool = False) -> KnownRecord:
    """What the engine remembers after a sync: the memo as the state table returns it (JSON), the part hashes."""
    return KnownRecord(
        kind=result.kind,
        crm_id=result.crm_id,
        memo=json.loads(json.dumps(result.memo, sort_keys=True)),
        part_hashes=plan.part_hashes(),
        failed_before=failed_before,
        lead_id=result.lead_id,
    )

"""CRM deal -> Partner Center referral. Pure: validation, the create body, the JSON Patch of differences.

Also the *shared content* of a deal: the fields both directions sync. Its hash is stored whenever
either direction leaves the two sides equal, so a write that merely echoes what was just synced
(our own CRM write-back, or Partner Center's webhook for our own PATCH) is recognised and skipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.mapping.countries import ISO_3166_ALPHA2
from shared.mapping.model import CrmDeal, CrmPlan, DealState, stable_hash
from shared.partner_center.models import Referral
from shared.partner_center.patch import PatchOperation, add, replace


@dataclass(frozen=True)
class OutboundOptions:
    qualification: str = "SalesQualified"


# ----------------------------------------------------------------------------- shared content
# The fields both directions sync, compared to tell a real change from an echo.
_SHARED_FIELDS = ("title", "deal_value", "currency", "close_date", "description", "state", "help_needed", "visible")


def content_hash_of_deal(deal: CrmDeal) -> str:
    return _content_hash(
        lead=deal.entity == "lead",
        solutions=[s.id for s in deal.solutions],
        contact=deal.contact.email if deal.contact else None,
        **{name: getattr(deal, name) for name in _SHARED_FIELDS},
    )


def content_hash_of_plan(plan: CrmPlan) -> str:
    """The same hash, from what the inbound direction just wrote to the CRM."""
    if plan.deal is None:
        return ""
    return content_hash_of_deal(deal_written_by(plan))


def deal_written_by(plan: CrmPlan) -> CrmDeal:
    """The CRM deal an inbound sync of ``plan`` leaves behind, as the CRM poll will read it."""
    deal = plan.deal
    if deal is None:
        raise ValueError(f"plan for referral {plan.referral_id} has no deal")
    return CrmDeal(
        entity=plan.kind,
        crm_id="",
        modified_on="",
        referral_id=plan.referral_id,
        title=deal.title,
        deal_value=deal.deal_value,
        currency=deal.currency,
        close_date=deal.close_date,
        description=deal.description,
        state=deal.state,
        help_needed=deal.help_needed,
        visible=deal.visible,
        account=plan.account,
        contact=plan.contacts[0] if plan.contacts else None,
        solutions=plan.solutions,
    )


def _content_hash(*, lead: bool, **fields: Any) -> str:
    if lead:
        # A CRM lead carries no solutions, help or visibility, and its contact is inline: compare what it holds.
        for name in ("solutions", "help_needed", "visible", "contact"):
            fields[name] = None if name != "solutions" else []
    fields["solutions"] = sorted(fields["solutions"])
    fields["description"] = (fields["description"] or "").strip() or None
    fields["contact"] = (fields["contact"] or "").lower() or None
    value = fields["deal_value"]
    fields["deal_value"] = None if value is None else Decimal(str(value)).normalize()
    return stable_hash(fields)


# ----------------------------------------------------------------------------- validation
def problems(deal: CrmDeal) -> list[str]:
    """Why Partner Center would refuse (or a co-sell would be useless); empty when the deal can be shared."""
    found: list[str] = []
    if not deal.title.strip():
        found.append("the opportunity has no name")
    account = deal.account
    if account is None or not (account.name or "").strip():
        found.append("the opportunity has no customer account")
    else:
        country = (account.country or "").strip()
        if not country:
            found.append('the account has no country (an ISO 3166 two-letter code such as "US" is required)')
        elif country.upper() not in ISO_3166_ALPHA2:
            found.append(f'the account\'s country "{country}" is not an ISO 3166 two-letter code')
    if deal.help_needed and not (deal.contact and deal.contact.email):
        found.append("a customer contact with an email is required when Microsoft's help is requested")
    if (deal.help_needed or deal.visible) and not deal.solutions:
        found.append("at least one Microsoft solution is required to share the deal with Microsoft")
    if deal.deal_value is None or deal.deal_value <= 0:
        found.append("the deal value must be greater than 0")
    if not (deal.currency or "").strip():
        found.append("the deal has no currency")
    if deal.close_date is None:
        found.append("the deal has no estimated close date")
    return found


def rejection_message(found: list[str]) -> str:
    return "Not shared: " + "; ".join(found)


# ----------------------------------------------------------------------------- create
def create_body(deal: CrmDeal, options: OutboundOptions | None = None) -> dict[str, Any]:
    """A new referral from a CRM deal. Help requested = co-sell (Shared, visible); otherwise private or partner-led."""
    options = options or OutboundOptions()
    account = deal.account
    shared_with_microsoft = deal.visible or bool(deal.help_needed)
    body: dict[str, Any] = {
        "name": deal.title,
        "externalReferenceId": deal.crm_id,
        "type": "Shared" if deal.help_needed else "Independent",
        "qualification": options.qualification,
        "customerProfile": {
            "name": account.name if account else "",
            "address": {
                "addressLine1": account.address_line1 or "",
                "addressLine2": account.address_line2 or "",
                "city": account.city or "",
                "state": account.state or "",
                "postalCode": account.postal_code or "",
                "country": (account.country or "").strip().upper(),
            }
            if account
            else {},
            "team": [_member(deal.contact)] if deal.contact and deal.contact.email else [],
        },
        "consent": {
            "consentToShareReferralWithMicrosoftSellers": shared_with_microsoft,
            "consentToContact": True,
            "consentToToShareInfoWithOthers": shared_with_microsoft,
        },
        "details": {
            "notes": deal.description or "",
            "dealValue": float(deal.deal_value) if deal.deal_value is not None else None,
            "currency": (deal.currency or "").strip().upper() or None,
            "closingDateTime": _closing(deal.close_date),
            "requirements": {"solutions": [_solution(s) for s in deal.solutions]},
        },
        "team": [_member(deal.owner)] if deal.owner and deal.owner.email else [],
    }
    if deal.help_needed:
        body["inviteContext"] = {"assistanceRequestCode": deal.help_needed, "notes": deal.description or ""}
    return body


# ----------------------------------------------------------------------------- update
def terminal_reason(referral: Referral) -> str:
    if referral.is_terminal:
        return f"the referral is {referral.status}/{referral.substatus} in Partner Center, which accepts no changes"
    return ""


@dataclass(frozen=True)
class ReferralUpdate:
    """What one CRM deal changes on its referral: the patch, and what cannot be sent (said in the audit)."""

    ops: tuple[PatchOperation, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def paths(self) -> list[str]:
        return sorted({op.path for op in self.ops})


HELP_NOT_PATCHABLE = (
    "Microsoft's help can only be requested when a referral is created: the referral is now visible to "
    "Microsoft sellers; ask for help on it in Partner Center"
)


def referral_update(deal: CrmDeal, referral: Referral) -> ReferralUpdate:
    """One JSON Patch carrying only the mapped fields that differ, on documented paths only.

    For a lead only its status travels: qualifying accepts the referral, disqualifying declines it.
    The name is not among the patchable paths, so a referral keeps the name it was shared with.
    """
    if deal.entity == "lead":
        return ReferralUpdate(tuple(_status_ops(deal, referral)))
    ops: list[PatchOperation] = []
    notes: list[str] = []
    details = referral.details
    if deal.deal_value is not None and (details.deal_value is None or Decimal(details.deal_value) != deal.deal_value):
        ops.append(replace("/details/dealValue", float(deal.deal_value)))
    currency = (deal.currency or "").strip().upper()
    if currency and currency != (details.currency or "").strip().upper():
        ops.append(replace("/details/currency", currency))
    if deal.close_date and (details.closing_date_time is None or details.closing_date_time.date() != deal.close_date):
        ops.append(replace("/details/closingDateTime", _closing(deal.close_date)))
    if (deal.description or "").strip() != (details.notes or "").strip():
        ops.append(replace("/details/notes", deal.description or ""))
    ops.extend(_status_ops(deal, referral))
    invite = referral.invite_context
    if deal.help_needed and not (invite and invite.assistance_request_code):
        notes.append(HELP_NOT_PATCHABLE)
    # Visibility only ever goes false -> true.
    if (deal.visible or deal.help_needed) and not referral.consent.consent_to_share_referral_with_microsoft_sellers:
        ops.append(replace("/consent/consentToShareReferralWithMicrosoftSellers", True))
    current_solutions = {s.id for s in (details.requirements.solutions if details.requirements else [])}
    if deal.solutions and {s.id for s in deal.solutions} != current_solutions:
        ops.append(replace("/details/requirements/solutions", [_solution(s) for s in deal.solutions]))
    team_emails = {(m.email or "").lower() for m in referral.customer_profile.team}
    if deal.contact and deal.contact.email and deal.contact.email.lower() not in team_emails:
        ops.append(add("/customerProfile/team/-", _member(deal.contact)))
    return ReferralUpdate(tuple(ops), tuple(notes))


def _status_ops(deal: CrmDeal, referral: Referral) -> list[PatchOperation]:
    """Won/lost close the referral; a lead qualified in the CRM accepts it, disqualified declines it."""
    status = (referral.status or "").lower()
    target: tuple[str, str] | None = None
    if deal.entity == "opportunity":
        if deal.state == DealState.WON:
            target = ("Closed", "Won")
        elif deal.state == DealState.LOST:
            target = ("Closed", "Lost")
        # Dynamics has no on-hold stage: editing an opportunity never accepts a pending referral by itself.
    elif status == "new":
        if deal.state == DealState.WON:
            target = ("Active", "Accepted")
        elif deal.state == DealState.LOST:
            target = ("Closed", "Declined")
    if target is None or (status, (referral.substatus or "").lower()) == (target[0].lower(), target[1].lower()):
        return []
    return [replace("/status", target[0]), replace("/substatus", target[1])]


def _member(contact: Any) -> dict[str, Any]:
    return {
        "firstName": contact.first_name or "",
        "lastName": contact.last_name or "",
        "email": contact.email,
        "phoneNumber": contact.phone or "",
    }


def _solution(solution: Any) -> dict[str, Any]:
    item = {"id": solution.id, "name": solution.name or solution.id}
    if solution.type:
        item["type"] = solution.type
    return item


def _closing(value: dt.date | None) -> str | None:
    return f"{value.isoformat()}T00:00:00Z" if value else None

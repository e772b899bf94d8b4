"""CRM deal -> Partner Center referral. Pure: validation, the new referral, the changes that differ.

Also the *shared content* of a deal: the fields both directions sync. Its hash is stored whenever
either direction leaves the two sides equal, so a write that merely echoes what was just synced
(our own CRM write-back, or Partner Center's webhook for our own PATCH) is recognised and skipped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from shared.mapping.countries import ISO_3166_ALPHA2
from shared.mapping.model import CrmDeal, CrmPlan, DealStage, stable_hash
from shared.partner_center.models import Referral
from shared.partner_center.writes import ReferralChanges, ReferralDraft


@dataclass(frozen=True)
class OutboundOptions:
    qualification: str = "SalesQualified"
    # The CRM can say "not accepted yet" for an opportunity (an on-hold stage): leaving it accepts.
    pending_stage: bool = False


# ----------------------------------------------------------------------------- shared content
# The fields both directions sync, compared to tell a real change from an echo.
_SHARED_FIELDS = ("title", "deal_value", "currency", "close_date", "description", "stage", "help_needed", "visible")


def content_hash_of_deal(deal: CrmDeal) -> str:
    return _content_hash(
        lead=deal.entity == "lead",
        solutions=[s.id for s in deal.solutions],
        contact=deal.contact.email if deal.contact else None,
        **{name: getattr(deal, name) for name in _SHARED_FIELDS},
    )


def content_hash_of_plan(plan: CrmPlan, *, pending_stage: bool) -> str:
    """The same hash, from what the inbound direction just wrote to the CRM."""
    if plan.deal is None:
        return ""
    return content_hash_of_deal(deal_written_by(plan, pending_stage=pending_stage))


def deal_written_by(plan: CrmPlan, *, pending_stage: bool) -> CrmDeal:
    """The CRM deal an inbound sync of ``plan`` leaves behind, as the CRM poll will read it.

    A CRM without a pending stage for opportunities reads an open one back as just open.
    """
    deal = plan.deal
    if deal is None:
        raise ValueError(f"plan for referral {plan.referral_id} has no deal")
    stage = deal.stage
    if plan.kind == "opportunity" and not pending_stage and stage in (DealStage.PENDING, DealStage.ACCEPTED):
        stage = DealStage.OPEN
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
        stage=stage,
        help_needed=deal.help_needed,
        visible=deal.visible,
        account=plan.account,
        contact=plan.contacts[0] if plan.contacts else None,
        solutions=plan.solutions,
    )


def _content_hash(*, lead: bool, **fields: Any) -> str:
    if lead:
        # Only a lead's stage travels to Partner Center (qualify accepts, disqualify declines), and
        # CRMs hold different things on a lead (Salesforce has no name or value on one).
        return stable_hash({"lead": True, "stage": fields["stage"]})
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
def new_referral(deal: CrmDeal, options: OutboundOptions | None = None) -> ReferralDraft:
    """A new referral from a CRM deal. Help requested = co-sell (Shared, visible); otherwise private or partner-led."""
    options = options or OutboundOptions()
    return ReferralDraft(
        name=deal.title,
        external_reference_id=deal.crm_id,
        customer=deal.account,
        customer_contact=deal.contact,
        owner=deal.owner,
        notes=deal.description,
        deal_value=deal.deal_value,
        currency=(deal.currency or "").strip().upper() or None,
        closing_date=deal.close_date,
        solutions=deal.solutions,
        visible_to_microsoft=deal.visible or bool(deal.help_needed),
        help_needed=deal.help_needed,
        qualification=options.qualification,
    )


# ----------------------------------------------------------------------------- update
def terminal_reason(referral: Referral) -> str:
    if referral.is_terminal:
        return f"the referral is {referral.status}/{referral.substatus} in Partner Center, which accepts no changes"
    return ""


@dataclass(frozen=True)
class ReferralUpdate:
    """What one CRM deal changes on its referral, and what cannot be sent (said in the audit)."""

    changes: ReferralChanges = field(default_factory=ReferralChanges)
    notes: tuple[str, ...] = ()

    @property
    def paths(self) -> list[str]:
        return sorted({op.path for op in self.changes.operations()})


HELP_NOT_PATCHABLE = (
    "Microsoft's help can only be requested when a referral is created: the referral is now visible to "
    "Microsoft sellers; ask for help on it in Partner Center"
)


def referral_update(deal: CrmDeal, referral: Referral, options: OutboundOptions | None = None) -> ReferralUpdate:
    """Only the mapped fields that differ, and only fields Partner Center lets a partner change.

    For a lead only its status travels: qualifying accepts the referral, disqualifying declines it.
    The name is not among the patchable fields, so a referral keeps the name it was shared with.
    """
    options = options or OutboundOptions()
    status = _status_change(deal, referral, options)
    if deal.entity == "lead":
        return ReferralUpdate(ReferralChanges(status=status))
    details = referral.details
    changed: dict[str, Any] = {"status": status}
    if deal.deal_value is not None and (details.deal_value is None or Decimal(details.deal_value) != deal.deal_value):
        changed["deal_value"] = deal.deal_value
    currency = (deal.currency or "").strip().upper()
    if currency and currency != (details.currency or "").strip().upper():
        changed["currency"] = currency
    if deal.close_date and (details.closing_date_time is None or details.closing_date_time.date() != deal.close_date):
        changed["closing_date"] = deal.close_date
    if (deal.description or "").strip() != (details.notes or "").strip():
        changed["notes"] = deal.description or ""
    notes: list[str] = []
    invite = referral.invite_context
    if deal.help_needed and not (invite and invite.assistance_request_code):
        notes.append(HELP_NOT_PATCHABLE)
    # Visibility only ever goes false -> true.
    if (deal.visible or deal.help_needed) and not referral.consent.consent_to_share_referral_with_microsoft_sellers:
        changed["share_with_microsoft"] = True
    current_solutions = {s.id for s in (details.requirements.solutions if details.requirements else [])}
    if deal.solutions and {s.id for s in deal.solutions} != current_solutions:
        changed["solutions"] = deal.solutions
    team_emails = {(m.email or "").lower() for m in referral.customer_profile.team}
    if deal.contact and deal.contact.email and deal.contact.email.lower() not in team_emails:
        changed["new_customer_contact"] = deal.contact
    return ReferralUpdate(dataclasses.replace(ReferralChanges(), **changed), tuple(notes))


def _status_change(deal: CrmDeal, referral: Referral, options: OutboundOptions) -> tuple[str, str] | None:
    """Won/lost close the referral; accepting in the CRM accepts a pending one, dropping it declines it."""
    status = (referral.status or "").lower()
    target: tuple[str, str] | None = None
    pending = status == "new"
    accepts = deal.stage == DealStage.ACCEPTED and (deal.entity == "lead" or options.pending_stage)
    if deal.entity == "opportunity" and deal.stage == DealStage.WON:
        target = ("Closed", "Won")
    elif deal.entity == "opportunity" and deal.stage == DealStage.LOST:
        target = ("Closed", "Lost")
    elif pending and accepts:
        target = ("Active", "Accepted")
    elif pending and deal.entity == "lead" and deal.stage == DealStage.LOST:
        target = ("Closed", "Declined")
    if target is None or (status, (referral.substatus or "").lower()) == (target[0].lower(), target[1].lower()):
        return None
    return target

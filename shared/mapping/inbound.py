"""Partner Center referral -> CRM plan. Pure: a referral and options in, a plan out, no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.mapping.model import AccountData, ContactData, CrmPlan, DealData, SolutionData
from shared.mapping.status import deal_stage, describe
from shared.mapping.text import CHECK, with_mark
from shared.partner_center.models import Referral

_LEAD_QUALIFICATIONS = frozenset({"salesqualified", "marketingqualified"})
DEFAULT_CLOSE_DAYS = 90
# Customer contacts synced per referral: bounds the work (and the lease time) of one sync.
MAX_CONTACTS = 25
# Referral paths (as Referral.unreadable names them) -> the deal field they feed.
_DEAL_FIELD_OF_PATH = {
    "name": "title",
    "details.dealValue": "deal_value",
    "details.currency": "currency",
    "details.closingDateTime": "close_date",
    "details.notes": "description",
}


@dataclass(frozen=True)
class InboundOptions:
    display_checkmark: bool = True
    sync_cosell_only: bool = False
    referral_link_template: str = "https://partner.microsoft.com/dashboard/referrals/v2/inbox?id={id}"


def is_lead_category(referral: Referral) -> bool:
    """Reference §1.7: Independent + Direct (msft or no inviter) or + Sales/Marketing-qualified by msft."""
    if (referral.type or "").lower() != "independent":
        return False
    qualification = (referral.qualification or "").lower()
    inviter = referral.invite_context.invited_by.organization_id if referral.invite_context else None
    inviter = (inviter or "").lower() or None
    if qualification == "direct":
        return inviter in (None, "msft")
    return qualification in _LEAD_QUALIFICATIONS and inviter == "msft"


def is_accepted(referral: Referral) -> bool:
    """Accepted, or closed after acceptance (won/lost): the point where a lead becomes an opportunity."""
    status = (referral.status or "").lower()
    substatus = (referral.substatus or "").lower()
    return status == "active" or substatus in ("accepted", "won", "lost")


def plan_for(referral: Referral, options: InboundOptions) -> CrmPlan:
    pc_status = describe(referral.status, referral.substatus)
    if is_lead_category(referral) and not is_accepted(referral):
        if options.sync_cosell_only:
            return CrmPlan(
                kind="skip",
                referral_id=referral.id,
                pc_status=pc_status,
                reason="lead not accepted yet and SYNC_COSELL_ONLY is on",
            )
        kind = "lead"
    else:
        kind = "opportunity"
    contacts = _contacts(referral)
    return CrmPlan(
        kind=kind,
        referral_id=referral.id,
        pc_status=pc_status,
        reason=referral.status_reason or "",
        external_id=(referral.external_reference_id or "").strip() or None,
        deal=_deal(referral, options),
        account=_account(referral),
        contacts=contacts[:MAX_CONTACTS],
        solutions=_solutions(referral),
        notes=(f"{len(contacts) - MAX_CONTACTS} more customer contacts left out (first {MAX_CONTACTS} synced)",)
        if len(contacts) > MAX_CONTACTS
        else (),
    )


def _deal(referral: Referral, options: InboundOptions) -> DealData:
    stage, close_reason = deal_stage(referral.status, referral.substatus)
    title = (referral.name or "").strip() or (referral.customer_profile.name or "").strip() or f"Referral {referral.id}"
    invite = referral.invite_context
    help_code = invite.assistance_request_code if invite else None
    if help_code and help_code.lower() == "unknown":
        help_code = None
    details = referral.details
    return DealData(
        referral_id=referral.id,
        name=with_mark(title, CHECK, options.display_checkmark),
        title=title,
        deal_value=details.deal_value,
        currency=(details.currency or "").strip().upper() or None,
        close_date=_close_date(referral),
        description=details.notes,
        stage=stage,
        close_reason=close_reason,
        help_needed=help_code,
        visible=bool(referral.consent.consent_to_share_referral_with_microsoft_sellers),
        microsoft_crm_id=referral.microsoft_crm_id,
        referral_program=referral.referral_program,
        referral_link=options.referral_link_template.format(id=referral.id),
        unreadable=frozenset(_DEAL_FIELD_OF_PATH[p] for p in referral.unreadable if p in _DEAL_FIELD_OF_PATH),
    )


def _close_date(referral: Referral) -> dt.date | None:
    """Partner Center's closing date, else the referral's creation + 90 days.

    A CRM may require one (Salesforce does on its opportunities); deriving it from the creation date
    keeps it the same on every sync, so it never reads as a change.
    """
    closing = referral.details.closing_date_time
    if closing:
        return closing.date()
    created = referral.created_date_time
    return (created + dt.timedelta(days=DEFAULT_CLOSE_DAYS)).date() if created else None


def _account(referral: Referral) -> AccountData:
    profile = referral.customer_profile
    address = profile.address
    return AccountData(
        # A nameless customer is its referral's own, never merged with other nameless ones.
        name=(profile.name or "").strip() or f"Unknown customer (referral {referral.id})",
        address_line1=_blank_none(address.address_line1) if address else None,
        address_line2=_blank_none(address.address_line2) if address else None,
        city=_blank_none(address.city) if address else None,
        state=_blank_none(address.state) if address else None,
        postal_code=_blank_none(address.postal_code) if address else None,
        country=(_blank_none(address.country) or "").upper() or None if address else None,
    )


def _contacts(referral: Referral) -> tuple[ContactData, ...]:
    seen: set[str] = set()
    contacts: list[ContactData] = []
    for member in referral.customer_profile.team:
        email = (member.email or "").strip().lower() or None
        if email and email in seen:
            continue
        if email:
            seen.add(email)
        contacts.append(
            ContactData(
                first_name=_blank_none(member.first_name),
                last_name=_blank_none(member.last_name),
                email=email,
                phone=_blank_none(member.phone_number),
            )
        )
    return tuple(contacts)


def _solutions(referral: Referral) -> tuple[SolutionData, ...]:
    requirements = referral.details.requirements
    if not requirements:
        return ()
    return tuple(SolutionData(id=s.id, name=s.name, type=s.type) for s in requirements.solutions if s.id)


def _blank_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


__all__ = ["InboundOptions", "is_accepted", "is_lead_category", "plan_for"]

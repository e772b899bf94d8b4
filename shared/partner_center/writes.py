"""Typed writes to the Referrals API: a new referral, and the changes to an existing one.

The engine says *what* to write in these terms; the wire format (the create body's shape, the JSON
Patch paths) is produced here, so the paths Partner Center accepts are known in one place
(:mod:`shared.partner_center.patch`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.mapping.model import AccountData, ContactData, SolutionData
from shared.partner_center.patch import PatchOperation, add, replace


@dataclass(frozen=True)
class ReferralDraft:
    """A referral to create from a CRM deal (create-a-referral: type, customer, consent, details, team)."""

    name: str
    external_reference_id: str
    customer: AccountData | None
    customer_contact: ContactData | None
    owner: ContactData | None
    notes: str | None
    deal_value: Decimal | None
    currency: str | None
    closing_date: dt.date | None
    solutions: tuple[SolutionData, ...]
    visible_to_microsoft: bool
    help_needed: str | None  # an assistanceRequestCode: Microsoft's help asked for, making it a co-sell
    qualification: str = "SalesQualified"

    def to_wire(self) -> dict[str, Any]:
        account = self.customer
        body: dict[str, Any] = {
            "name": self.name,
            "externalReferenceId": self.external_reference_id,
            "type": "Shared" if self.help_needed else "Independent",
            "qualification": self.qualification,
            "customerProfile": {
                "name": account.name if account else "",
                "address": _address(account) if account else {},
                "team": [_member(self.customer_contact)] if _has_email(self.customer_contact) else [],
            },
            "consent": {
                "consentToShareReferralWithMicrosoftSellers": self.visible_to_microsoft,
                "consentToContact": True,
                "consentToToShareInfoWithOthers": self.visible_to_microsoft,
            },
            "details": {
                "notes": self.notes or "",
                "dealValue": float(self.deal_value) if self.deal_value is not None else None,
                "currency": self.currency,
                "closingDateTime": closing(self.closing_date),
                "requirements": {"solutions": [_solution(s) for s in self.solutions]},
            },
            "team": [_member(self.owner)] if _has_email(self.owner) else [],
        }
        if self.help_needed:
            body["inviteContext"] = {"assistanceRequestCode": self.help_needed, "notes": self.notes or ""}
        return body


@dataclass(frozen=True)
class ReferralChanges:
    """What differs on an existing referral; ``None`` means unchanged. Only patchable fields exist here."""

    deal_value: Decimal | None = None
    currency: str | None = None
    closing_date: dt.date | None = None
    notes: str | None = None
    status: tuple[str, str] | None = None  # (status, substatus)
    share_with_microsoft: bool = False  # visibility only ever goes false -> true
    solutions: tuple[SolutionData, ...] | None = None
    new_customer_contact: ContactData | None = None

    def operations(self) -> list[PatchOperation]:
        ops: list[PatchOperation] = []
        if self.deal_value is not None:
            ops.append(replace("/details/dealValue", float(self.deal_value)))
        if self.currency is not None:
            ops.append(replace("/details/currency", self.currency))
        if self.closing_date is not None:
            ops.append(replace("/details/closingDateTime", closing(self.closing_date)))
        if self.notes is not None:
            ops.append(replace("/details/notes", self.notes))
        if self.status is not None:
            ops += [replace("/status", self.status[0]), replace("/substatus", self.status[1])]
        if self.share_with_microsoft:
            ops.append(replace("/consent/consentToShareReferralWithMicrosoftSellers", True))
        if self.solutions is not None:
            ops.append(replace("/details/requirements/solutions", [_solution(s) for s in self.solutions]))
        if self.new_customer_contact is not None:
            ops.append(add("/customerProfile/team/-", _member(self.new_customer_contact)))
        return ops


def closing(value: dt.date | None) -> str | None:
    return f"{value.isoformat()}T00:00:00Z" if value else None


def _address(account: AccountData) -> dict[str, str]:
    return {
        "addressLine1": account.address_line1 or "",
        "addressLine2": account.address_line2 or "",
        "city": account.city or "",
        "state": account.state or "",
        "postalCode": account.postal_code or "",
        "country": (account.country or "").strip().upper(),
    }


def _has_email(contact: ContactData | None) -> bool:
    return bool(contact and contact.email)


def _member(contact: ContactData | None) -> dict[str, Any]:
    if contact is None:
        raise ValueError("a team member needs a contact")
    return {
        "firstName": contact.first_name or "",
        "lastName": contact.last_name or "",
        "email": contact.email,
        "phoneNumber": contact.phone or "",
    }


def _solution(solution: SolutionData) -> dict[str, Any]:
    item = {"id": solution.id, "name": solution.name or solution.id}
    if solution.type:
        item["type"] = solution.type
    return item

"""Fit a plan to the CRM's column sizes: a value longer than its column is cut, and the audit says so.

A CRM refuses a whole write when one string is longer than its column (Dataverse: "The length of
the 'name' attribute ... exceeded the maximum allowed length"), so a referral with 2,001 characters
of notes would never sync. The adapter says how long each neutral field may be; this module cuts
and notes, and stays pure. An email address is never cut (a cut address is a wrong address): a
contact whose email does not fit is synced without it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shared.mapping.model import ContactData, CrmPlan, DealData

# Neutral field -> limit key, per part of the plan.
_DEAL_FIELDS = ("description", "microsoft_crm_id", "referral_program", "referral_link")
_ACCOUNT_FIELDS = ("name", "address_line1", "address_line2", "city", "state", "postal_code", "country")
_CONTACT_FIELDS = ("first_name", "last_name", "phone")
_SOLUTION_FIELDS = ("id", "name", "type")


def fit(plan: CrmPlan, limits: dict[str, int]) -> CrmPlan:
    """``limits`` maps ``"deal.name"``, ``"account.name"``, ``"contact.email"``... to a length."""
    notes: list[str] = []
    deal = plan.deal
    if deal is not None:
        deal = _fit_deal(deal, limits, notes)
    account = _fit_part(plan.account, "account", _ACCOUNT_FIELDS, limits, notes) if plan.account else None
    contacts = tuple(_fit_contact(c, limits, notes) for c in plan.contacts)
    solutions = tuple(_fit_part(s, "solution", _SOLUTION_FIELDS, limits, notes) for s in plan.solutions)
    if not notes:
        return plan
    unique = tuple(dict.fromkeys(notes))
    return dataclasses.replace(
        plan, deal=deal, account=account, contacts=contacts, solutions=solutions, notes=(*plan.notes, *unique)
    )


def _fit_deal(deal: DealData, limits: dict[str, int], notes: list[str]) -> DealData:
    fitted = _fit_part(deal, "deal", _DEAL_FIELDS, limits, notes)
    limit = limits.get("deal.name")
    if limit is not None and len(deal.name) > limit:
        # The CRM name is the title behind the ✔/✖ mark: keep the mark, cut the title.
        prefix = deal.name[: len(deal.name) - len(deal.title)] if deal.name.endswith(deal.title) else ""
        title = deal.title[: max(0, limit - len(prefix))]
        fitted = dataclasses.replace(fitted, title=title, name=prefix + title)
        notes.append(f"name cut to {limit} characters")
    return fitted


def _fit_contact(contact: ContactData, limits: dict[str, int], notes: list[str]) -> ContactData:
    fitted = _fit_part(contact, "contact", _CONTACT_FIELDS, limits, notes)
    limit = limits.get("contact.email")
    if contact.email and limit is not None and len(contact.email) > limit:
        notes.append(f"a customer contact's email is longer than the CRM's {limit} characters and was left out")
        fitted = dataclasses.replace(fitted, email=None)
    return fitted


def _fit_part(part: Any, name: str, fields: tuple[str, ...], limits: dict[str, int], notes: list[str]) -> Any:
    changes: dict[str, str] = {}
    for field in fields:
        value = getattr(part, field)
        limit = limits.get(f"{name}.{field}")
        if isinstance(value, str) and limit is not None and len(value) > limit:
            changes[field] = value[:limit]
            notes.append(f"{_LABELS.get(f'{name}.{field}', f'{name} {field}')} cut to {limit} characters")
    return dataclasses.replace(part, **changes) if changes else part


_LABELS = {
    "deal.description": "notes",
    "account.name": "company name",
    "contact.first_name": "a contact's first name",
    "contact.last_name": "a contact's last name",
    "contact.phone": "a contact's phone number",
}

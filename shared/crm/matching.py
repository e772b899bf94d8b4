"""The matching rules every CRM adapter follows, written once.

- A customer account is the same customer when its company name and postal code are equal once
  normalised (case, accents, punctuation, legal forms: :func:`normalise_company`); an empty name
  matches nothing.
- A contact is the same person when the email is equal, case-insensitively.
- Creates are idempotent: the record a referral's customer, contact or solution row would create
  always gets the same deterministic key, so a retry after a lost answer finds what the first
  attempt created instead of adding a second one (Dataverse: the record id; Salesforce: an
  external id).
"""

from __future__ import annotations

import uuid

from shared.mapping.model import AccountData
from shared.mapping.text import normalise_company, normalise_postal_code

_NAMESPACE = uuid.UUID("6f1c3d4e-2b7a-5c8d-9e0f-a1b2c3d4e5f6")


def customer_key(account: AccountData) -> tuple[str, str]:
    """(normalised name, normalised postal code); the name part is empty only for a nameless customer."""
    return normalise_company(account.name), normalise_postal_code(account.postal_code)


def same_customer(name: str | None, postal_code: str | None, wanted: tuple[str, str]) -> bool:
    return bool(wanted[0]) and (normalise_company(name), normalise_postal_code(postal_code)) == wanted


def account_id(account: AccountData, referral_id: str) -> str:
    """The id a new account gets: one per customer, or one per referral for a nameless customer."""
    name, postal = customer_key(account)
    seed = f"account|{name}|{postal}" if name else f"account|referral|{referral_id}"
    return str(uuid.uuid5(_NAMESPACE, seed))


def contact_id(email: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"contact|{email.strip().lower()}"))


def solution_row_id(deal_id: str, solution_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"solution|{deal_id}|{solution_id}"))


def same_email(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.strip().lower() == b.strip().lower()  # type: ignore[union-attr]

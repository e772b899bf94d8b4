"""A referral's customer in Dynamics 365: the account and contacts to reuse, or the rows to create.

Split in two so a sync costs one look-up call and one write call: :meth:`DynamicsCustomers.reads`
are the queries (sent with the sync's other look-ups in one ``$batch``), :meth:`DynamicsCustomers.plan`
decides from their rows, with the rules of :mod:`shared.crm.matching`, and returns the upserts (by
deterministic id, so a change set sent twice creates nothing twice) for the sync's change set.

Account candidates are narrowed by a filter Dataverse evaluates; the matching rule stays
:func:`same_customer`, applied here to the few rows the filter returns. The filter asks for:

- the exact name (any postal code);
- names starting with the name's first word, when it has three characters or more ("Fabrikam Ltd"
  for "Fabrikam", "CONTOSO INC" for "Contoso, Inc.": string comparisons in Dataverse ignore case);
- at the postal code as typed, names starting with the same first character ("Société Générale SA"
  for "societe generale", "A.B.C. Corp" for "ABC Corp").

It used to ask for every account at the postal code, which in a busy city reads hundreds of rows
(500 a page) to keep one; a stored normalised-name key column was the alternative, but it needs a
new column in every org (``crm-schema --apply`` before the sync works again), a write on every
seller's account it matches, and the same fallback filter for accounts sellers create without it.
What the narrower filter misses, and the old one found: an account at the same postal code whose
name, once normalised, equals the customer's but starts with another character (an accented first
letter typed without its accent, "École" for "Ecole"). Such a customer gets a second account, as a
customer whose postal code was typed differently always has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.crm.dataverse_batch import BatchRequest
from shared.crm.dataverse_client import DataverseClient, bind, key_by_id
from shared.crm.fields import FieldMap
from shared.crm.matching import account_id, contact_id, customer_key, same_customer, same_email
from shared.mapping.model import AccountData, ContactData
from shared.odata import odata_string

ACCOUNTS = "accounts"
CONTACTS = "contacts"
ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "state", "postal_code", "country")
_FIRST_WORD = re.compile(r"[^\W_]+")


@dataclass
class CustomerPlan:
    """What a sync does about its customer: the account and contacts it links, the rows it writes."""

    account_id: str | None
    contact_ids: list[str]
    writes: list[BatchRequest]


class DynamicsCustomers:
    def __init__(self, client: DataverseClient, fields: FieldMap) -> None:
        self._dv = client
        self._fields = fields

    # ----- look-ups -----
    def account_read(self, account: AccountData) -> BatchRequest | None:
        """The candidate query for this customer (None for a nameless one, which matches nothing)."""
        if not customer_key(account)[0]:
            return None
        col = self._account_col
        name, postal = col("name"), col("postal_code")
        terms = [f"{name} eq {odata_string(account.name)}"]
        first = _FIRST_WORD.search(account.name)
        word = first.group(0) if first else account.name.strip()
        if len(word) >= 3:
            terms.append(f"startswith({name},{odata_string(word)})")
        if account.postal_code and word:
            terms.append(
                f"({postal} eq {odata_string(account.postal_code)} and startswith({name},{odata_string(word[0])}))"
            )
        return self._dv.get_request(ACCOUNTS, select=["accountid", name, postal], filter=" or ".join(terms))

    def contacts_read(self, contacts: tuple[ContactData, ...]) -> BatchRequest | None:
        """One query for every team member's email (None when nobody has one)."""
        email = self._fields.tables["contact"]["email"]
        emails = list(dict.fromkeys(c.email for c in contacts if c.email))
        if not emails:
            return None
        terms = " or ".join(f"{email} eq {odata_string(e)}" for e in emails)
        return self._dv.get_request(CONTACTS, select=["contactid", email], filter=terms)

    # ----- decisions -----
    def plan(
        self,
        account: AccountData | None,
        contacts: tuple[ContactData, ...],
        referral_id: str,
        *,
        account_rows: list[dict[str, Any]] | None,
        contact_rows: list[dict[str, Any]] | None,
        known_account: str | None = None,
    ) -> CustomerPlan:
        """Reuse the matching account (or ``known_account``, the one the opportunity already has) and
        contacts; upsert the others. Rows not looked up yet (``None``) are read here, in one call."""
        pending = {
            "accounts": self.account_read(account) if account and not known_account and account_rows is None else None,
            "contacts": self.contacts_read(contacts) if contact_rows is None else None,
        }
        asked = {k: r for k, r in pending.items() if r is not None}
        if asked:
            found = dict(zip(asked, self._dv.read_many(list(asked.values())), strict=True))
            account_rows = found.get("accounts", account_rows)
            contact_rows = found.get("contacts", contact_rows)
        writes: list[BatchRequest] = []
        chosen = known_account
        if chosen is None and account is not None:
            chosen = self._match_account(account, account_rows or [])
            if chosen is None:
                chosen = account_id(account, referral_id)
                col = self._account_col
                body = {col("name"): account.name, **address_columns(account, col)}
                writes.append(BatchRequest("PATCH", key_by_id(ACCOUNTS, chosen), body=drop_none(body)))
        ids, contact_writes = self._contacts(contacts, chosen, contact_rows or [])
        return CustomerPlan(chosen, ids, writes + contact_writes)

    def _match_account(self, account: AccountData, rows: list[dict[str, Any]]) -> str | None:
        wanted = customer_key(account)
        if not wanted[0]:
            return None
        name, postal = self._account_col("name"), self._account_col("postal_code")
        for row in rows:
            if same_customer(row.get(name), row.get(postal), wanted):
                return str(row["accountid"])
        return None

    def _contacts(
        self, contacts: tuple[ContactData, ...], account: str | None, rows: list[dict[str, Any]]
    ) -> tuple[list[str], list[BatchRequest]]:
        """Ids in team order (matched by email, case-insensitively), and the upserts of the new ones."""
        col = self._fields.tables["contact"]
        ids: list[str] = []
        writes: list[BatchRequest] = []
        planned: dict[str, str] = {}
        for contact in contacts:
            if not contact.email:
                continue  # without an email there is nothing safe to match on
            found = next((r for r in rows if same_email(r.get(col["email"]), contact.email)), None)
            if found is not None:
                ids.append(str(found["contactid"]))
                continue
            new_id = contact_id(contact.email)
            if new_id not in planned.values():
                body: dict[str, Any] = drop_none(
                    {
                        col["first_name"]: contact.first_name,
                        col["last_name"]: contact.last_name or contact.email,
                        col["email"]: contact.email,
                        col["phone"]: contact.phone,
                    }
                )
                if account:
                    body["parentcustomerid_account@odata.bind"] = bind(ACCOUNTS, account)
                writes.append(BatchRequest("PATCH", key_by_id(CONTACTS, new_id), body=body))
                planned[contact.email.lower()] = new_id
            ids.append(new_id)
        return ids, writes

    def _account_col(self, name: str) -> str:
        return self._fields.column("account", name)


def address_columns(account: AccountData, col: Any) -> dict[str, Any]:
    return {col(field): getattr(account, field) for field in ADDRESS_FIELDS}


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}

"""The rows every simulated org starts with (and gets back after ``clear()``): currencies and the caller."""

from __future__ import annotations

from sandbox.sims.dataverse.store import Store
from sandbox.sims.dataverse.writes import Writer

# (ISO code, name, symbol); USD is the base currency (store.DEFAULT_CURRENCY).
CURRENCIES: tuple[tuple[str, str, str], ...] = (
    ("USD", "US Dollar", "$"),
    ("EUR", "Euro", "€"),
    ("GBP", "Pound Sterling", "£"),
    ("JPY", "Yen", "¥"),
    ("CAD", "Canadian Dollar", "CA$"),
    ("AUD", "Australian Dollar", "A$"),
    ("INR", "Indian Rupee", "₹"),
)
# The org's one seeded user: the caller (WhoAmI) and the default owner of new rows.
USER: dict[str, str] = {
    "firstname": "Sandbox",
    "lastname": "Seller",
    "internalemailaddress": "seller@partner.example",
    "domainname": "seller@partner.example",
}


def seed(store: Store, writer: Writer) -> None:
    """Insert the seeded rows with ids that stay the same for the simulator's lifetime."""
    for iso, _, _ in CURRENCIES:
        store.currency_ids.setdefault(iso, store.new_id())
    for iso, name, symbol in CURRENCIES:
        writer.insert_raw(
            store.schema.entity("transactioncurrency"),
            {
                "transactioncurrencyid": store.currency_ids[iso],
                "isocurrencycode": iso,
                "currencyname": name,
                "currencysymbol": symbol,
                "currencyprecision": 2,
                "exchangerate": 1.0,
            },
        )
    writer.insert_raw(store.schema.entity("systemuser"), {"systemuserid": store.user_id, **USER})

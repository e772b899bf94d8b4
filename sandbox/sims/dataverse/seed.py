"""The rows every simulated org starts with (and gets back after ``clear()``): currencies, the caller,
the default publisher and solution (and, when provisioned, the sync's own publisher and solution)."""

from __future__ import annotations

from typing import Any

from sandbox.sims.dataverse import cosell
from sandbox.sims.dataverse.schema import metadata_id
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


# Every org has a default solution whose publisher's prefix is "new" ("Here the default value "new_" is
# used": create-update-entity-definitions-using-web-api.md); components created without an
# MSCRM.SolutionUniqueName header land in it.
DEFAULT_PUBLISHER: dict[str, Any] = {
    "uniquename": "DefaultPublisher",
    "friendlyname": "Default Publisher",
    "customizationprefix": "new",
    "customizationoptionvalueprefix": 10000,
}
DEFAULT_SOLUTION: dict[str, Any] = {"uniquename": "Default", "friendlyname": "Default Solution", "version": "1.0"}


def seed(store: Store, writer: Writer, *, provisioned: bool) -> None:
    """Insert the seeded rows with ids that stay the same for the simulator's lifetime.

    Publisher and solution ids are derived from their unique names, so seeding them draws nothing from
    the id generator and the ids of every other row stay what they were before these tables existed."""
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
    pairs = [(DEFAULT_PUBLISHER, DEFAULT_SOLUTION)]
    if provisioned:
        pairs.append((cosell.PUBLISHER, cosell.SOLUTION_RECORD))
    for publisher, solution in pairs:
        seed_publisher(store, writer, publisher, solution)


def seed_publisher(store: Store, writer: Writer, publisher: dict[str, Any], solution: dict[str, Any]) -> None:
    """A publisher and one solution of it, with ids derived from their unique names."""
    publisher_id = metadata_id("publisher", publisher["uniquename"])
    writer.insert_raw(store.schema.entity("publisher"), {"publisherid": publisher_id, **publisher})
    writer.insert_raw(
        store.schema.entity("solution"),
        {
            "solutionid": metadata_id("solution", solution["uniquename"]),
            **solution,
            "publisherid@odata.bind": f"/publishers({publisher_id})",
        },
    )

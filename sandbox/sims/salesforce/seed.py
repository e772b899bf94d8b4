"""The rows every simulated org starts with (and gets back after ``clear()``): its two users.

The integration user is the connected app's Run As user: every token acts as it, so rows the app
creates are created by and owned by it. The seller is the person working in the CRM: rows inserted
through the control API (``/_sim/seed``, ``insert``/``update``) are made "as a seller would", owned by
and last modified by the seller, so a test can tell the app's writes from a human's.
"""

from __future__ import annotations

from sandbox.sims.salesforce.store import Store
from sandbox.sims.salesforce.writes import Writer

INTEGRATION_USER = {
    "Username": "integration@partner.example.sandbox",
    "FirstName": "Integration",
    "LastName": "User",
    "Email": "integration@partner.example",
    "Alias": "integ",
    "Title": "Co-sell sync (Run As user)",
}
SELLER = {
    "Username": "seller@partner.example.sandbox",
    "FirstName": "Sandbox",
    "LastName": "Seller",
    "Email": "seller@partner.example",
    "Alias": "seller",
    "Title": "Account Executive",
}


class Users:
    """Stable ids for the seeded users (the same for the simulator's lifetime, across ``clear()``)."""

    def __init__(self, store: Store) -> None:
        user = store.schema.objects["User"]
        self.org_id = store.ids.new("00D")
        self.integration = store.new_id(user)
        self.seller = store.new_id(user)


def seed(store: Store, writer: Writer, users: Users) -> None:
    user = store.schema.objects["User"]
    for user_id, fields in ((users.integration, INTEGRATION_USER), (users.seller, SELLER)):
        row = writer.create(user, dict(fields), user_id=users.integration, raw=True)
        # Keep the stable id: re-key the freshly created row.
        del store.rows["User"][row["Id"]]
        row["Id"] = user_id
        store.put(user, row)

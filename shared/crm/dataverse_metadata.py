"""Navigation-property names, read from the org's relationship metadata instead of assumed.

Dataverse navigation properties are case sensitive and, for custom lookups made in the maker
portal, carry the SchemaName's case (``cosell_OpportunityId``), while the lookup column itself is
lower case (``cosell_opportunityid`` / ``_cosell_opportunityid_value``). ``@odata.bind`` and
``$expand`` need the navigation name, so it is read once per process from
``EntityDefinitions(LogicalName='…')/ManyToOneRelationships`` ("Query table definitions using the
Web API", Microsoft Learn) and cached. Standard lookups on standard tables have fixed, documented
lower-case names and cost no call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shared.crm.dataverse_client import DataverseClient
from shared.crm.port import SchemaNotReady
from shared.http import ApiError
from shared.odata import odata_string

# (table, lookup column) -> single-valued navigation property, from Microsoft's entity reference
# (powerapps-docs …/reference/entities/{account,contact}.md, dynamics-365-customer-engagement
# ce/developer/reference/entities/{opportunity,lead}.md, "Many-to-One relationships").
STANDARD_NAVIGATION: dict[tuple[str, str], str] = {
    ("opportunity", "transactioncurrencyid"): "transactioncurrencyid",
    ("opportunity", "parentaccountid"): "parentaccountid",
    ("opportunity", "parentcontactid"): "parentcontactid",
    ("opportunity", "originatingleadid"): "originatingleadid",
    ("lead", "transactioncurrencyid"): "transactioncurrencyid",
    ("lead", "parentaccountid"): "parentaccountid",
    ("lead", "parentcontactid"): "parentcontactid",
}

_RELATIONSHIP_COLUMNS = (
    "SchemaName",
    "ReferencingAttribute",
    "ReferencingEntityNavigationPropertyName",
    "ReferencedEntity",
    "ReferencedEntityNavigationPropertyName",
)


@dataclass(frozen=True)
class Lookup:
    """A many-to-one relationship as the Web API names it."""

    table: str  # the referencing table (holds the lookup column)
    column: str  # the lookup column's logical name
    target: str  # the referenced table
    navigation: str  # single-valued navigation on ``table`` (for ``@odata.bind`` and ``$expand``)
    collection: str  # collection-valued navigation on ``target`` (for ``$expand`` from the parent)


class DataverseNavigation:
    def __init__(self, client: DataverseClient) -> None:
        self._dv = client
        self._cache: dict[tuple[str, str], Lookup] = {}
        self._lock = threading.Lock()

    def single(self, table: str, column: str) -> str:
        """The navigation property to bind or expand ``table.column`` through."""
        standard = STANDARD_NAVIGATION.get((table, column))
        return standard if standard else self.lookup(table, column).navigation

    def lookup(self, table: str, column: str) -> Lookup:
        key = (table, column.lower())
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        found = self._read(table, column.lower())
        with self._lock:
            self._cache[key] = found
        return found

    def _read(self, table: str, column: str) -> Lookup:
        path = f"EntityDefinitions(LogicalName={odata_string(table)})/ManyToOneRelationships"
        try:
            rows = list(self._dv.query(path, select=list(_RELATIONSHIP_COLUMNS), page_size=None))
        except ApiError as exc:
            if exc.status == 404:
                raise SchemaNotReady(f"Dynamics 365 has no table {table}.") from exc
            raise
        for row in rows:
            if str(row.get("ReferencingAttribute", "")).lower() == column:
                return Lookup(
                    table=table,
                    column=column,
                    target=str(row["ReferencedEntity"]),
                    navigation=str(row["ReferencingEntityNavigationPropertyName"]),
                    collection=str(row["ReferencedEntityNavigationPropertyName"]),
                )
        raise SchemaNotReady(f"Dynamics 365 has no lookup column {column} on table {table}.")

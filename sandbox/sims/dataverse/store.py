"""The org's rows, alternate-key indexes, ids, version numbers and clock, behind one lock.

Every write of a row stamps its ``modifiedon`` (second precision, never backwards) and a new
``versionnumber``. Only the written row changes: creating, updating or deleting a child row (a
``cosell_solution`` bound to an opportunity) leaves the parent's ``modifiedon``/``versionnumber``
alone, as in Dataverse, so a ``modifiedon`` watermark on opportunities does not notice solution changes.
"""

from __future__ import annotations

import copy
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.sims.dataverse import schema
from sandbox.sims.dataverse.errors import CODE_DUPLICATE_ID, DataverseError, duplicate_key
from sandbox.sims.dataverse.schema import ENTITIES, EntityDef
from sandbox.sims.dataverse.wire import LOOKUP_NAV, LOOKUP_TARGET, Record, utc_now

Key = tuple[str, str]  # ("pk", guid) or ("alt", value)


@dataclass
class Changes:
    """A validated write: column values, lookup references and (seeding only) system stamps."""

    values: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, tuple[str, str, str] | None] = field(default_factory=dict)  # column -> (set, id, nav)
    pk: str | None = None
    system: dict[str, Any] = field(default_factory=dict)  # createdon/modifiedon, only for seeding


class Store:
    """In-memory tables; callers hold :attr:`lock` around anything that reads then writes."""

    def __init__(self, *, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.clock: Callable[[], str] = utc_now  # tests swap it to step the clock back
        self._ids = random.Random(seed)
        self._version = 1000
        self._last_stamp = ""
        self.rows: dict[str, dict[str, Record]] = {name: {} for name in ENTITIES}
        self.alt: dict[str, dict[str, str]] = {name: {} for name, e in ENTITIES.items() if e.alt_key}
        self.currency_ids = {iso: self.new_id() for iso, _, _ in schema.SEED_CURRENCIES}
        self.identity = {k: self.new_id() for k in ("UserId", "BusinessUnitId", "OrganizationId")}

    @property
    def user_id(self) -> str:
        return self.identity["UserId"]

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def next_version(self) -> int:
        self._version += 1
        return self._version

    def stamp(self) -> str:
        """Now, with the service's second precision, never earlier than the last stamp handed out.

        Writes in the same second share a ``modifiedon``, so ``modifiedon ge <an earlier write's value>``
        finds both; a wall clock stepping back cannot make a later write look older. Caller holds the lock.
        """
        now = self.clock()
        if now < self._last_stamp:
            now = self._last_stamp
        self._last_stamp = now
        return now

    def find(self, ent: EntityDef, key: Key) -> Record | None:
        kind, value = key
        table = self.rows[ent.set_name]
        if kind == "pk":
            return table.get(value)
        record_id = self.alt[ent.set_name].get(value.casefold())
        return table.get(record_id) if record_id else None

    def snapshot(self) -> tuple[Any, ...]:
        return (copy.deepcopy(self.rows), copy.deepcopy(self.alt), self._version)

    def restore(self, snapshot: tuple[Any, ...]) -> None:
        self.rows, self.alt, self._version = snapshot

    def wipe(self) -> None:
        for table in self.rows.values():
            table.clear()
        for index in self.alt.values():
            index.clear()

    def check_unique(self, ent: EntityDef, value: Any, own_id: str | None) -> None:
        if not ent.alt_key or value is None:
            return
        holder = self.alt[ent.set_name].get(str(value).casefold())
        if holder is not None and holder != own_id:
            raise duplicate_key()

    def new_row(self, ent: EntityDef, changes: Changes, record_id: str | None) -> Record:
        """A fresh row with the service's defaults: the caller owns it, the base currency is set."""
        record_id = record_id or changes.pk or self.new_id()
        if record_id in self.rows[ent.set_name]:
            raise DataverseError(412, CODE_DUPLICATE_ID, "Cannot insert duplicate key.")
        row: Record = {ent.pk: record_id}
        owner = ent.lookups.get("ownerid")
        if owner and owner.column not in changes.refs and self.user_id in self.rows["systemusers"]:
            changes.refs[owner.column] = ("systemusers", self.user_id, "ownerid")  # the caller owns what it creates
        currency = ent.lookups.get("transactioncurrencyid")
        if currency and currency.column not in changes.refs and schema.DEFAULT_CURRENCY in self.currency_ids:
            currency_id = self.currency_ids[schema.DEFAULT_CURRENCY]
            if currency_id in self.rows["transactioncurrencies"]:  # defaults to the org base currency
                changes.refs[currency.column] = ("transactioncurrencies", currency_id, "transactioncurrencyid")
        return row

    def write(self, ent: EntityDef, row: Record, changes: Changes, *, creating: bool) -> Record:
        """Apply validated changes to ``row`` (a fresh dict when creating), bump version, keep indexes."""
        table = self.rows[ent.set_name]
        old = table.get(row[ent.pk])
        if ent.alt_key and ent.alt_key in changes.values:
            self.check_unique(ent, changes.values[ent.alt_key], None if creating else row[ent.pk])
        row.update(changes.values)
        for column, ref in changes.refs.items():
            for suffix in (LOOKUP_TARGET, LOOKUP_NAV):
                row.pop(f"{column}@{suffix}", None)
            row[column] = None if ref is None else ref[1]
            if ref is not None:
                row[f"{column}@{LOOKUP_TARGET}"] = ENTITIES[ref[0]].logical
                row[f"{column}@{LOOKUP_NAV}"] = ref[2]
        if "fullname" in ent.computed:
            row["fullname"] = " ".join(p for p in (row.get("firstname"), row.get("lastname")) if p) or None
        now = self.stamp()
        if creating:
            row["createdon"] = changes.system.get("createdon", now)
        row["modifiedon"] = changes.system.get("modifiedon", now)
        row["versionnumber"] = self.next_version()
        if ent.alt_key:
            index = self.alt[ent.set_name]
            old_value = old.get(ent.alt_key) if old else None
            if old_value is not None and index.get(str(old_value).casefold()) == row[ent.pk]:
                del index[str(old_value).casefold()]
            if row.get(ent.alt_key) is not None:
                index[str(row[ent.alt_key]).casefold()] = row[ent.pk]
        table[row[ent.pk]] = row
        return row

    def delete(self, ent: EntityDef, row: Record) -> None:
        del self.rows[ent.set_name][row[ent.pk]]
        if ent.alt_key and row.get(ent.alt_key) is not None:
            self.alt[ent.set_name].pop(str(row[ent.alt_key]).casefold(), None)

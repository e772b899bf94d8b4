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
from typing import Any, Literal

from sandbox.sims.dataverse.errors import CODE_DUPLICATE_ID, DataverseError, duplicate_key
from sandbox.sims.dataverse.schema import AlternateKey, Entity, Schema
from sandbox.sims.dataverse.wire import LOOKUP_NAV, LOOKUP_TARGET, Record, utc_now

Ref = tuple[str, str, str]  # (target table logical name, id, navigation property it was bound through)
DEFAULT_CURRENCY = "USD"  # the org's base currency: the default transactioncurrencyid of new rows


@dataclass(frozen=True)
class RowKey:
    """How a URL addresses a row: ``(<guid>)`` or an alternate key ``(cosell_referralid='x')``."""

    kind: Literal["pk", "alt"]
    value: str = ""  # the primary key, lower case
    key: AlternateKey | None = None
    values: tuple[str, ...] = ()  # alternate key values, in key.attributes order


@dataclass
class Changes:
    """A validated write: column values, lookup references and (seeding only) system stamps."""

    values: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Ref | None] = field(default_factory=dict)  # wire column (_x_value) -> reference
    pk: str | None = None
    system: dict[str, Any] = field(default_factory=dict)  # createdon/modifiedon, only for seeding


def _fold(values: tuple[Any, ...]) -> tuple[str, ...]:
    """Alternate key values compare case-insensitively, like the service's default collation."""
    return tuple(str(v).casefold() for v in values)


class Store:
    """In-memory tables; callers hold :attr:`lock` around anything that reads then writes."""

    def __init__(self, schema: Schema, *, seed: int = 0) -> None:
        self.schema = schema
        self.lock = threading.RLock()
        self.clock: Callable[[], str] = utc_now  # tests swap it to step the clock back
        self._ids = random.Random(seed)
        self._version = 1000
        self._last_stamp = ""
        self.rows: dict[str, dict[str, Record]] = {name: {} for name in schema.entities}
        self.alt: dict[str, dict[str, dict[tuple[str, ...], str]]] = {
            name: {key.logical: {} for key in ent.keys} for name, ent in schema.entities.items()
        }
        self.currency_ids: dict[str, str] = {}
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

    def find(self, ent: Entity, key: RowKey) -> Record | None:
        table = self.rows[ent.logical]
        if key.kind == "pk":
            return table.get(key.value)
        assert key.key is not None
        record_id = self.alt[ent.logical][key.key.logical].get(_fold(key.values))
        return table.get(record_id) if record_id else None

    def snapshot(self) -> tuple[Any, ...]:
        return (copy.deepcopy(self.rows), copy.deepcopy(self.alt), self._version)

    def restore(self, snapshot: tuple[Any, ...]) -> None:
        self.rows, self.alt, self._version = snapshot

    def savepoint(self) -> tuple[Any, ...]:
        """Where a ``$batch`` change set can roll back to. Cheap: a write never changes a stored row in
        place (updates write a copy, see :meth:`write`), so copying the tables and indexes suffices.
        Version numbers and stamps handed out meanwhile are not reused (they only ever grow)."""
        rows = {name: dict(table) for name, table in self.rows.items()}
        alt = {name: {key: dict(index) for key, index in keys.items()} for name, keys in self.alt.items()}
        return (rows, alt)

    def rollback(self, savepoint: tuple[Any, ...]) -> None:
        self.rows, self.alt = savepoint

    def adopt_schema(self) -> None:
        """Make room for tables and alternate keys the schema gained at run time, drop what it lost.

        A key new to the schema gets its index built from the rows already stored; the caller
        (``customize.py``) has checked with :meth:`key_index` that they hold no duplicate values."""
        for name, ent in self.schema.entities.items():
            self.rows.setdefault(name, {})
            indexes = self.alt.setdefault(name, {})
            for key in ent.keys:
                if key.logical not in indexes:
                    built = self.key_index(name, key.attributes)
                    indexes[key.logical] = built if built is not None else {}
            for stale in set(indexes) - {key.logical for key in ent.keys}:
                del indexes[stale]
        for name in set(self.rows) - set(self.schema.entities):
            del self.rows[name]
            self.alt.pop(name, None)

    def key_index(self, table: str, attributes: tuple[str, ...]) -> dict[tuple[str, ...], str] | None:
        """The index an alternate key over ``attributes`` would have, or None when two rows share its values.

        Rows with a null in any key column are left out, as the service's filtered unique index does."""
        index: dict[tuple[str, ...], str] = {}
        for record_id, row in self.rows.get(table, {}).items():
            values = tuple(row.get(a) for a in attributes)
            if any(v is None for v in values):
                continue
            folded = _fold(values)
            if folded in index:
                return None
            index[folded] = record_id
        return index

    def wipe(self) -> None:
        for table in self.rows.values():
            table.clear()
        for indexes in self.alt.values():
            for index in indexes.values():
                index.clear()

    def new_row(self, ent: Entity, changes: Changes, record_id: str | None) -> Record:
        """A fresh row with the service's defaults: the caller owns it, the base currency, Boolean defaults."""
        record_id = record_id or changes.pk or self.new_id()
        if record_id in self.rows[ent.logical]:
            raise DataverseError(412, CODE_DUPLICATE_ID, "Cannot insert duplicate key.")
        owner = ent.navs.get("ownerid")
        if owner and owner.column not in changes.refs and self.user_id in self.rows["systemuser"]:
            changes.refs[owner.column] = ("systemuser", self.user_id, "ownerid")  # the caller owns what it creates
        currency = ent.navs.get("transactioncurrencyid")
        currency_id = self.currency_ids.get(DEFAULT_CURRENCY)
        if currency and currency.column not in changes.refs and currency_id in self.rows["transactioncurrency"]:
            changes.refs[currency.column] = ("transactioncurrency", currency_id, "transactioncurrencyid")
        for name, column in ent.values.items():
            if column.default is not None and name not in changes.values:
                changes.values[name] = column.default
        return {ent.pk: record_id}

    def write(self, ent: Entity, row: Record, changes: Changes, *, creating: bool) -> Record:
        """Apply validated changes to ``row`` (a fresh dict when creating), bump version, keep indexes."""
        table = self.rows[ent.logical]
        old = table.get(row[ent.pk])
        self._follow_owner(ent, changes)
        merged = {**row, **changes.values}
        for key in ent.keys:
            if any(a in changes.values for a in key.attributes):
                self._check_unique(ent, key, merged, None if creating else row[ent.pk])
        row.update(changes.values)
        for column, ref in changes.refs.items():
            for suffix in (LOOKUP_TARGET, LOOKUP_NAV):
                row.pop(f"{column}@{suffix}", None)
            row[column] = None if ref is None else ref[1]
            if ref is not None:
                row[f"{column}@{LOOKUP_TARGET}"] = ref[0]
                row[f"{column}@{LOOKUP_NAV}"] = ref[2]
        if "fullname" in ent.read_only:
            row["fullname"] = " ".join(p for p in (row.get("firstname"), row.get("lastname")) if p) or None
        now = self.stamp()
        if creating:
            row["createdon"] = changes.system.get("createdon", now)
        row["modifiedon"] = changes.system.get("modifiedon", now)
        row["versionnumber"] = self.next_version()
        self._reindex(ent, old, row)
        table[row[ent.pk]] = row
        return row

    def delete(self, ent: Entity, row: Record) -> None:
        del self.rows[ent.logical][row[ent.pk]]
        self._reindex(ent, row, None)

    @staticmethod
    def _follow_owner(ent: Entity, changes: Changes) -> None:
        """owninguser / owningteam follow ownerid: the one matching the owner's type is set, the other cleared."""
        if "_ownerid_value" not in changes.refs or "owninguser" not in ent.navs:
            return
        ref = changes.refs["_ownerid_value"]
        for nav, kind in (("owninguser", "systemuser"), ("owningteam", "team")):
            column = ent.navs[nav].column
            changes.refs[column] = (kind, ref[1], nav) if ref is not None and ref[0] == kind else None

    def _check_unique(self, ent: Entity, key: AlternateKey, row: Record, own_id: str | None) -> None:
        values = tuple(row.get(a) for a in key.attributes)
        if any(v is None for v in values):
            return
        holder = self.alt[ent.logical][key.logical].get(_fold(values))
        if holder is not None and holder != own_id:
            raise duplicate_key()

    def _reindex(self, ent: Entity, old: Record | None, new: Record | None) -> None:
        for key in ent.keys:
            index = self.alt[ent.logical][key.logical]
            if old is not None:
                values = tuple(old.get(a) for a in key.attributes)
                if all(v is not None for v in values) and index.get(_fold(values)) == old[ent.pk]:
                    del index[_fold(values)]
            if new is not None:
                values = tuple(new.get(a) for a in key.attributes)
                if all(v is not None for v in values):
                    index[_fold(values)] = new[ent.pk]

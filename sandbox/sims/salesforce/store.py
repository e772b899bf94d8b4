"""The org's rows, its recycle bin, ids and clock, behind one lock.

Rows hold Python values (``date``, ``datetime``, ``float``, ``bool``, ``str``) under canonical field names;
``wire``/``query`` format them on the way out. Every write of a row stamps ``LastModifiedDate`` and
``SystemModstamp`` (second precision, never going backwards) and ``CreatedDate`` on create. Only the
written row changes: a write to a child row (a contact role, a ``Microsoft_Solution__c``) leaves its
parent's ``SystemModstamp`` alone. ``SystemModstamp`` is "Date and time when a user or automated process
(such as a trigger) last modified this record" ("System Fields", Object Reference,
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/system_fields.htm): a child write modifies
the child. What would touch the parent is a roll-up summary field recalculating on it (or automation
an admin adds), and the sync's schema defines none. So a ``SystemModstamp`` watermark on opportunities
does not see solution or contact-role changes; the app must look at the children's own stamps. (This is
our reading of the system-fields definition; it is flagged as unverified against a live org in the
simulator's report.)

Deleting moves a row to the recycle bin (``IsDeleted`` true), where ``queryAll`` still finds it, and
cascades to master-detail children and to contacts / opportunities of a deleted account.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from sandbox.sims.salesforce.ids import IdFactory, normalise
from sandbox.sims.salesforce.schema import Schema, SObject
from sandbox.sims.salesforce.wire import Record, utc_now


class Store:
    """In-memory tables; callers hold :attr:`lock` around anything that reads then writes."""

    def __init__(self, schema: Schema, *, seed: int = 0) -> None:
        self.schema = schema
        self.lock = threading.RLock()
        self.clock: Callable[[], dt.datetime] = utc_now  # tests swap it to step the clock back
        self.ids = IdFactory(seed)
        self._last_stamp: dt.datetime | None = None
        self.rows: dict[str, dict[str, Record]] = {name: {} for name in schema.objects}
        self.bin: dict[str, dict[str, Record]] = {name: {} for name in schema.objects}

    # ----- time -----
    def stamp(self) -> dt.datetime:
        """Now at second precision, never earlier than the last stamp handed out (caller holds the lock).

        Writes in the same second share a stamp, so ``SystemModstamp >= <an earlier write's value>`` finds
        both; a wall clock stepping back cannot make a later write look older."""
        now = self.clock().astimezone(dt.UTC).replace(microsecond=0)
        if self._last_stamp is not None and now < self._last_stamp:
            now = self._last_stamp
        self._last_stamp = now
        return now

    # ----- reads -----
    def find(self, obj: SObject, record_id: str, *, deleted: bool = False) -> Record | None:
        canonical = normalise(record_id)
        if canonical is None:
            return None
        row = self.rows[obj.name].get(canonical)
        if row is None and deleted:
            row = self.bin[obj.name].get(canonical)
        return row

    def locate(self, record_id: str) -> tuple[SObject, Record | None, bool] | None:
        """Which object an id belongs to, the row (live or in the bin) and whether it is deleted."""
        canonical = normalise(record_id)
        if canonical is None:
            return None
        obj = self.schema.by_prefix.get(canonical[:3])
        if obj is None:
            return None
        live = self.rows[obj.name].get(canonical)
        if live is not None:
            return obj, live, False
        return obj, self.bin[obj.name].get(canonical), canonical in self.bin[obj.name]

    def all_rows(self, obj: SObject, *, deleted: bool = False) -> list[Record]:
        rows = list(self.rows[obj.name].values())
        if deleted:
            rows.extend(self.bin[obj.name].values())
        return rows

    def matching(self, obj: SObject, field: str, value: Any) -> list[Record]:
        """Live rows whose ``field`` equals ``value`` (text compared case-insensitively, as unique and
        external-id fields are by default)."""
        folded = value.casefold() if isinstance(value, str) else value
        found = []
        for row in self.rows[obj.name].values():
            current = row.get(field)
            if isinstance(current, str):
                current = current.casefold()
            if current is not None and current == folded:
                found.append(row)
        return found

    # ----- writes -----
    def new_id(self, obj: SObject) -> str:
        return self.ids.new(obj.key_prefix)

    def put(self, obj: SObject, row: Record) -> None:
        self.rows[obj.name][row["Id"]] = row

    def remove(self, obj: SObject, row: Record) -> list[tuple[SObject, Record]]:
        """Move ``row`` and its cascade-delete children to the recycle bin; returns everything deleted."""
        removed: list[tuple[SObject, Record]] = []
        self._remove(obj, row, removed)
        return removed

    def _remove(self, obj: SObject, row: Record, removed: list[tuple[SObject, Record]]) -> None:
        if row["Id"] not in self.rows[obj.name]:
            return
        del self.rows[obj.name][row["Id"]]
        now = self.stamp()
        row["IsDeleted"] = True
        row["SystemModstamp"] = now
        self.bin[obj.name][row["Id"]] = row
        removed.append((obj, row))
        for child in obj.children:
            if not child.cascade_delete:
                continue
            child_obj = self.schema.objects[child.child]
            for candidate in list(self.rows[child_obj.name].values()):
                if candidate.get(child.field) == row["Id"]:
                    self._remove(child_obj, candidate, removed)

    def adopt_schema(self) -> None:
        """A table for every object of the (changed) schema, none for objects it no longer has."""
        for table in (self.rows, self.bin):
            for name in [n for n in table if n not in self.schema.objects]:
                del table[name]
            for name in self.schema.objects:
                table.setdefault(name, {})

    def wipe(self) -> None:
        """Back to an empty org (the stamp floor too, so a test's clock starts afresh)."""
        for table in (*self.rows.values(), *self.bin.values()):
            table.clear()
        self._last_stamp = None

    def snapshot(self) -> tuple[Any, ...]:
        return copy.deepcopy(self.rows), copy.deepcopy(self.bin), self._last_stamp

    def restore(self, snapshot: tuple[Any, ...]) -> None:
        self.rows, self.bin, self._last_stamp = snapshot

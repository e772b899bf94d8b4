"""Adopt the records Microsoft's co-sell connector made: copy its referral columns into the sync's, once.

The same rules for every CRM (the adapter only reads and writes, ``shared/crm/adopt.py``):

- A record is adopted when the sync's referral id on it is empty: the connector's referral id, link,
  Microsoft CRM id and program are copied, its sync flag and visibility when they are Yes, its help
  when it names one of Partner Center's codes; an audit line says so, above the connector's own audit
  trail. Nothing else on the record changes.
- Idempotent: a record whose sync referral id is already the connector's is linked and gets nothing
  (so a second run copies nothing, and never overwrites what the sync wrote since).
- The connector is known to make two records for one referral. Exactly one is adopted, the same one on
  every run: an open one before a closed one, then the oldest, then the lowest id (the one a seller most
  likely works on and the one the connector made first). The others are reported as duplicates to merge.
  When the sync already holds the referral in another record, every connector record of it is reported
  as a duplicate of that one.
- A record whose sync referral id names another referral is a conflict: reported, never overwritten.
  A connector value that is not a Partner Center referral id (a GUID) is reported and not copied.
- One bad record does not stop the run: a write the CRM refuses is reported and the next record follows.
  What stops it: the sync's own columns are missing, or the CRM cannot be reached (run it again later;
  nothing is done twice).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from shared.auth import AuthError
from shared.crm.adopt import ConnectorColumns, ConnectorLinks, ConnectorNotFound, ConnectorRecord, Link
from shared.crm.port import CrmRejected, SchemaNotReady
from shared.http import ApiError, ApiUnavailable
from shared.mapping.model import DealKind
from shared.partner_center.ids import is_referral_id, shown
from shared.sync.inbound import readable

log = logging.getLogger("cosell.sync.adopt")

Outcome = Literal["adopted", "linked", "duplicate", "conflict", "invalid", "locked", "failed"]
ATTENTION: tuple[Outcome, ...] = ("duplicate", "conflict", "invalid", "locked", "failed")
KINDS: tuple[DealKind, ...] = ("opportunity", "lead")
_WORDS = {
    "referral_id": "referral id",
    "referral_link": "link",
    "sync": "sync flag",
    "visible": "visibility",
    "help_needed": "help",
    "microsoft_crm_id": "Microsoft CRM id",
    "referral_program": "program",
}


@dataclass
class AdoptItem:
    kind: DealKind
    crm_id: str
    referral_id: str
    outcome: Outcome
    reason: str = ""
    kept: str = ""  # for a duplicate: the record that carries the referral

    def to_json(self) -> dict[str, str]:
        body = {"kind": self.kind, "crmId": self.crm_id, "referralId": self.referral_id, "outcome": self.outcome}
        if self.reason:
            body["reason"] = self.reason
        if self.kept:
            body["kept"] = self.kept
        return body


@dataclass
class AdoptReport:
    crm: str
    applied: bool
    columns: ConnectorColumns = field(default_factory=ConnectorColumns)
    items: list[AdoptItem] = field(default_factory=list)
    stopped: str = ""  # why the run stopped before the end ("" when it did not)

    def counts(self) -> dict[str, int]:
        found = Counter(item.outcome for item in self.items)
        return {outcome: found[outcome] for outcome in ("adopted", "linked", *ATTENTION)}

    @property
    def needs_attention(self) -> bool:
        return bool(self.stopped) or any(item.outcome in ATTENTION for item in self.items)

    def to_json(self) -> dict[str, object]:
        return {
            "crm": self.crm,
            "applied": self.applied,
            "counts": self.counts(),
            "columns": self.columns.to_json(),
            # Linked records are only counted: after the first run they are all of them.
            "records": [item.to_json() for item in self.items if item.outcome != "linked"],
            "stopped": self.stopped,
        }


class Adopter:
    def __init__(self, links: ConnectorLinks) -> None:
        self._links = links

    def run(self, *, apply: bool, reopen_closed: bool = False) -> AdoptReport:
        """Dry run (``apply=False``) reads only and reports what a run would copy."""
        report = AdoptReport(self._links.crm, applied=apply)
        report.columns = columns = self._links.columns()
        if not any(columns.adoptable(kind) for kind in KINDS):
            if any("referral_id" in columns.shared.get(kind, []) for kind in KINDS):
                return report  # the connector's referral id column is the sync's own: linked by construction
            looked = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in columns.missing.items())
            notes = "".join(f"\n{note}" for note in columns.notes)
            raise ConnectorNotFound(f"None of the connector's referral id columns exists ({looked}).{notes}")
        try:
            for kind in KINDS:
                if columns.adoptable(kind):
                    self._adopt_kind(kind, columns, report, apply=apply, reopen_closed=reopen_closed)
        except (SchemaNotReady, AuthError, ApiUnavailable, ApiError) as exc:
            # Not one record's fault: every further record would fail the same way.
            report.stopped = readable(exc)
            log.error("adopt stopped: %s", report.stopped)
        counts = report.counts()
        log.info("adopt %s: %s", "applied" if apply else "dry run", ", ".join(f"{k}={v}" for k, v in counts.items()))
        return report

    def _adopt_kind(
        self, kind: DealKind, columns: ConnectorColumns, report: AdoptReport, *, apply: bool, reopen_closed: bool
    ) -> None:
        groups: dict[str, list[ConnectorRecord]] = {}
        for record in self._links.records(kind, columns):
            referral_id = _normalised(record.theirs.referral_id)
            if not is_referral_id(referral_id):
                reason = f"The connector's referral id {shown(record.theirs.referral_id)} is not a Partner Center id."
                report.items.append(AdoptItem(kind, record.crm_id, "", "invalid", reason))
                continue
            groups.setdefault(referral_id, []).append(record)
        for referral_id, records in groups.items():
            report.items.extend(self._adopt_referral(kind, referral_id, records, apply, reopen_closed))

    def _adopt_referral(
        self, kind: DealKind, referral_id: str, records: list[ConnectorRecord], apply: bool, reopen_closed: bool
    ) -> list[AdoptItem]:
        items: list[AdoptItem] = []
        free: list[ConnectorRecord] = []
        mine: list[ConnectorRecord] = []
        for record in records:
            ours = _normalised(record.ours.referral_id)
            if not ours:
                free.append(record)
            elif ours == referral_id:
                mine.append(record)
            else:
                reason = (
                    f"The sync's referral id on it is {shown(ours)}, the connector's {referral_id}: left as it is; "
                    "check which referral the record belongs to."
                )
                items.append(AdoptItem(kind, record.crm_id, referral_id, "conflict", reason))
        if mine:
            keeper = min(mine, key=_choice)
            items.append(AdoptItem(kind, keeper.crm_id, referral_id, "linked"))
            items.extend(_duplicates(kind, referral_id, [r for r in [*mine, *free] if r is not keeper], keeper.crm_id))
            return items
        if not free:
            return items
        holder = self._links.holder(kind, referral_id)
        if holder:
            return items + _duplicates(kind, referral_id, free, holder)
        keeper, *rest = sorted(free, key=_choice)
        items.extend(_duplicates(kind, referral_id, rest, keeper.crm_id))
        reopen = bool(keeper.locked)
        if keeper.locked and not (keeper.reopenable and reopen_closed):
            hint = " Run adopt with --reopen-closed to reopen, link and close it again." if keeper.reopenable else ""
            items.append(AdoptItem(kind, keeper.crm_id, referral_id, "locked", keeper.locked + hint))
            return items
        values = _to_copy(keeper, referral_id)
        copied = ", ".join(_WORDS[name] for name in values.filled() if name in _WORDS)
        message = f"Linked to the co-sell sync: copied the {copied} of Microsoft's co-sell connector."
        note = "" if not keeper.unreadable else f" Not copied: {', '.join(keeper.unreadable)}."
        if apply:
            try:
                self._links.copy(keeper, values, message + note, reopen=reopen)
            except (SchemaNotReady, AuthError):
                raise
            except (ApiError, CrmRejected) as exc:
                if isinstance(exc, ApiError) and (exc.transient or exc.status == 401):
                    raise
                log.warning("adopt: %s %s refused: %s", kind, keeper.crm_id, readable(exc))
                items.append(AdoptItem(kind, keeper.crm_id, referral_id, "failed", readable(exc)))
                return items
        items.append(AdoptItem(kind, keeper.crm_id, referral_id, "adopted", f"Copied: {copied}.{note}"))
        return items


def _to_copy(record: ConnectorRecord, referral_id: str) -> Link:
    """The connector's values for the sync's empty columns; flags only when Yes (visibility never goes back)."""
    theirs = record.theirs
    return Link(
        referral_id=referral_id,
        referral_link=theirs.referral_link or None,
        sync=True if theirs.sync else None,
        visible=True if theirs.visible else None,
        help_needed=theirs.help_needed or None,
        microsoft_crm_id=theirs.microsoft_crm_id or None,
        referral_program=theirs.referral_program or None,
    )


def _duplicates(kind: DealKind, referral_id: str, records: list[ConnectorRecord], kept: str) -> list[AdoptItem]:
    reason = f"Another record carries this referral ({kept}): merge this one into it, or close it."
    return [AdoptItem(kind, r.crm_id, referral_id, "duplicate", reason, kept) for r in sorted(records, key=_choice)]


def _choice(record: ConnectorRecord) -> tuple[bool, str, str]:
    return (not record.open, record.created_on, record.crm_id.lower())


def _normalised(value: str | None) -> str:
    """Partner Center's ids are lower-case GUIDs; a connector column may hold one in another case or padded."""
    return (value or "").strip().lower()

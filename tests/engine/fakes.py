"""In-memory stand-ins for the engine's outside world: Partner Center's Referrals API and the three stores.

Each fake has the public methods of the class it replaces (``tests/engine/test_fakes.py`` checks the
signatures), keeps what it stores as the real one would (copies, so a caller mutating an object
after saving it changes nothing, as with Table Storage), and runs on a :class:`FakeClock` instead
of the wall clock, so the engine tests take milliseconds and can let a lease lapse at will. Each is safe
to call from several threads (a poll hands its records to a pool): one lock per fake makes every call,
and so every conditional write, a single step, as the service's own would be.

The referral fake reuses the Partner Center simulator's pure rules (JSON Patch paths, the status
transitions, the first status of a created referral) without its HTTP server, and adds hooks a test
uses to stage what the real service does to a sync: a change between our GET and our PATCH, a
create whose answer is lost, a refusal.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from sandbox.sims.partner_center.errors import ApiError as SimError
from sandbox.sims.partner_center.fields import canonical_keys, deep_merge
from sandbox.sims.partner_center.patch import apply_patch, parse_patch
from sandbox.sims.partner_center.referrals import check_transition, initial_status, normalise_deal_values
from shared.http import ApiError, ApiUnavailable
from shared.messages import ReferralMessage
from shared.partner_center.client import ReferralsClient
from shared.partner_center.models import Referral
from shared.partner_center.writes import ReferralChanges, ReferralDraft
from shared.store.audit import AuditEntry
from shared.store.leases import LeaseUnavailable
from shared.store.state import CrmRecordState, StateConflict, StateRow, SyncState

SERVICE = "partner-center"

F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """One call at a time per fake (``self._lock``, reentrant): what a test reads is never half-written."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class FakeClock:
    """Time for the engine, the stores and Partner Center alike; it moves only when told (or waited on)."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
        self._lock = threading.RLock()

    def __call__(self) -> dt.datetime:
        return self.now

    @_locked
    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


# ============================================================================ Partner Center
class FakeReferrals:
    """``ReferralsClient`` over an in-memory tenant: ``get``, ``changed_since``, ``find_by_external_reference``,
    ``create`` and ``patch`` (``If-Match`` checked: a stale eTag is a 412)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.records: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()  # GET, LIST, POST, PATCH
        self.patches: list[dict[str, Any]] = []  # every PATCH sent: {"id", "ops", "etag", "status"}
        # Decides, per draft, a refusal answered before anything is stored (until set back to None).
        self.refuse_create: Callable[[ReferralDraft], ApiError | None] | None = None
        # The same for a PATCH, given the referral id and the operations.
        self.refuse_patch: Callable[[str, list[dict[str, Any]]], ApiError | None] | None = None
        # One-shot hooks, each consumed by the call it stages:
        self.before_next_patch: Callable[[str], None] | None = None  # runs before the eTag is checked
        self.lose_next_create_answer = False  # the referral is stored, then the answer never arrives
        self._last_stamp = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._etags = itertools.count(1)
        self._lock = threading.RLock()

    # ----- Microsoft's side (what a test stages) -----
    @_locked
    def seed(self, referral: dict[str, Any], **changes: Any) -> Referral:
        """A referral Microsoft (or another partner) created for us, stamped now unless it says when."""
        record = canonical_keys(copy.deepcopy({**referral, **changes}))
        record.pop("links", None)
        record.setdefault("id", str(uuid.uuid4()))
        record.setdefault("status", "New")
        record.setdefault("substatus", "Pending")
        record["updatedDateTime"] = changes.get("updatedDateTime") or self._stamp()
        record["eTag"] = self._etag()
        self.records[record["id"].lower()] = record
        return Referral.parse(copy.deepcopy(record))

    @_locked
    def update(self, referral_id: str, changes: dict[str, Any]) -> Referral:
        """A change made on Microsoft's side: deep-merged, new ``updatedDateTime`` (unless given) and eTag."""
        record = self.records[referral_id.lower()]
        changes = canonical_keys(copy.deepcopy(changes))
        deep_merge(record, changes)
        if "updatedDateTime" not in changes:
            record["updatedDateTime"] = self._stamp()
        record["eTag"] = self._etag()
        return Referral.parse(copy.deepcopy(record))

    @_locked
    def referral(self, referral_id: str) -> dict[str, Any]:
        return copy.deepcopy(self.records[referral_id.lower()])

    @_locked
    def by_external_id(self, external_id: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(r) for r in self.records.values() if r.get("externalReferenceId") == external_id]

    # ----- the ReferralsClient interface -----
    @_locked
    def get(self, referral_id: str) -> Referral:
        self.calls["GET"] += 1
        record = self.records.get(referral_id.lower())
        if record is None:
            raise ApiError(SERVICE, "GET", f"referrals/{referral_id}", 404, "itemNotFound", "Referral not found.")
        return Referral.parse(copy.deepcopy(record))

    @_locked
    def probe(self) -> int:
        """The doctor's reachability check: how many referrals a ``$top=1`` page holds."""
        self.calls["LIST"] += 1
        return min(len(self.records), 1)

    def changed_since(self, since: dt.datetime) -> Iterator[Referral]:
        with self._lock:  # the list is taken at once; the caller reads it at its own pace
            self.calls["LIST"] += 1
            rows = [copy.deepcopy(r) for r in self.records.values() if _time(r["updatedDateTime"]) >= since]
        for record in sorted(rows, key=lambda r: _time(r["updatedDateTime"])):
            yield Referral.parse(record)

    # The real client's own method (list by the documented filter, compare externalReferenceId exactly),
    # running over this fake's changed_since: the engine tests then hold the real rule, not a copy of it.
    find_by_external_reference = ReferralsClient.find_by_external_reference

    @_locked
    def create(self, draft: ReferralDraft) -> Referral:
        self.calls["POST"] += 1
        refusal = self.refuse_create(draft) if self.refuse_create else None
        if refusal is not None:
            raise refusal
        body = canonical_keys(draft.to_wire())
        status, substatus = initial_status(body.get("status"), body.get("substatus"))
        normalise_deal_values(body)
        record = {
            **body,
            "id": str(uuid.uuid4()),
            "status": status,
            "substatus": substatus,
            "direction": "Outgoing",
            "createdDateTime": self._stamp(),
        }
        record["updatedDateTime"] = record["createdDateTime"]
        record["eTag"] = self._etag()
        self.records[record["id"].lower()] = record
        if self.lose_next_create_answer:
            self.lose_next_create_answer = False
            raise ApiUnavailable(f"{SERVICE} POST /referrals failed: ReadTimeout")
        return Referral.parse(copy.deepcopy(record))

    @_locked
    def patch(self, referral_id: str, changes: ReferralChanges, *, etag: str | None = None) -> Referral | None:
        self.calls["PATCH"] += 1
        operations = [op.to_wire() for op in changes.operations()]
        sent = {"id": referral_id, "ops": operations, "etag": etag, "status": 200}
        self.patches.append(sent)
        hook, self.before_next_patch = self.before_next_patch, None
        if hook is not None:
            hook(referral_id)
        refusal = self.refuse_patch(referral_id, operations) if self.refuse_patch else None
        if refusal is not None:
            sent["status"] = refusal.status
            raise refusal
        path = f"referrals/{referral_id}"
        try:
            checked = parse_patch(operations)
            record = self.records.get(referral_id.lower())
            if record is None:
                raise SimError(404, "itemNotFound", f"Referral {referral_id} was not found.")
            if etag is not None and etag != record["eTag"]:
                raise SimError(412, "preconditionFailed", "The If-Match value does not match the current eTag.")
            if str(record.get("status", "")).lower() == "closed":
                raise SimError(400, "invalidRequest", "The referral is closed, a terminal state.")
            updated = copy.deepcopy(record)
            apply_patch(updated, checked)
            normalise_deal_values(updated)
            check_transition(record, updated)
        except SimError as exc:
            sent["status"] = exc.status
            raise ApiError(SERVICE, "PATCH", path, exc.status, exc.code, exc.message) from None
        updated["updatedDateTime"] = self._stamp()
        updated["eTag"] = self._etag()
        record.clear()
        record.update(updated)
        return Referral.parse(copy.deepcopy(record))

    # ----- stamps -----
    def _stamp(self) -> str:
        """The clock's time, strictly later than any earlier stamp (Partner Center never repeats one)."""
        now = max(self.clock(), self._last_stamp + dt.timedelta(microseconds=1))
        self._last_stamp = now
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _etag(self) -> str:
        return f'"{next(self._etags):08x}-0000-0000-0000-000000000000"'


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# ============================================================================ stores
class FakeStateStore:
    """``StateStore`` in memory: rows are copied in and out, as a table would (de)serialise them.

    Each referral row has an ETag that every write changes, and the conditional writes check it as
    the table does (409 for an insert over a row, 412 for a stale If-Match): the claims run on it.
    """

    def __init__(self) -> None:
        self.referrals: dict[str, SyncState] = {}
        self.claims: dict[str, tuple[str, str]] = {}  # referral id -> (lease_owner, lease_until)
        self.etags: dict[str, str] = {}  # referral id -> ETag, for every row that exists
        self.crm_rows: dict[tuple[str, str], CrmRecordState] = {}
        self.watermarks: dict[str, dict[str, Any]] = {}
        self._etags = itertools.count(1)
        self._lock = threading.RLock()

    @_locked
    def get(self, referral_id: str) -> SyncState | None:
        return self.read(referral_id).state

    @_locked
    def read(self, referral_id: str) -> StateRow:
        if referral_id not in self.etags:
            return StateRow(referral_id)
        state = self.referrals.get(referral_id)
        owner, until = self.claims.get(referral_id, ("", ""))
        return StateRow(referral_id, copy.deepcopy(state), self.etags[referral_id], owner, until)

    @_locked
    def save(self, state: SyncState) -> None:
        self.referrals[state.referral_id] = copy.deepcopy(state)
        self.claims.pop(state.referral_id, None)
        self._touch(state.referral_id)

    @_locked
    def insert_claim(self, referral_id: str, owner: str, until: str) -> str:
        if referral_id in self.etags:
            raise StateConflict(referral_id)
        self.claims[referral_id] = (owner, until)
        return self._touch(referral_id)

    @_locked
    def merge(self, referral_id: str, etag: str, **values: str) -> str:
        self._check(referral_id, etag)
        owner, until = self.claims.get(referral_id, ("", ""))
        owner, until = values.pop("lease_owner", owner), values.pop("lease_until", until)
        self.claims[referral_id] = (owner, until)
        state = self.referrals.get(referral_id)
        if values and state is None:
            raise AssertionError(f"merged {sorted(values)} into a row with no state")
        for name, value in values.items():
            setattr(state, name, value)
        return self._touch(referral_id)

    @_locked
    def commit(self, state: SyncState, etag: str) -> str:
        self._check(state.referral_id, etag)
        self.referrals[state.referral_id] = copy.deepcopy(state)
        self.claims.pop(state.referral_id, None)  # a REPLACE: the claim's columns are gone
        return self._touch(state.referral_id)

    @_locked
    def delete(self, referral_id: str, etag: str) -> None:
        self._check(referral_id, etag)
        for rows in (self.referrals, self.claims, self.etags):
            rows.pop(referral_id, None)

    def _check(self, referral_id: str, etag: str) -> None:
        if self.etags.get(referral_id) != etag:
            raise StateConflict(referral_id)

    def _touch(self, referral_id: str) -> str:
        self.etags[referral_id] = f'W/"{next(self._etags)}"'
        return self.etags[referral_id]

    @_locked
    def agree(self, entity: str, crm_id: str, referral_id: str, content_hash: str) -> None:
        # The real MERGE writes every column: no rejection or create intent of the old row survives.
        self.crm_rows[(entity, crm_id)] = CrmRecordState(entity, crm_id, referral_id, content_hash)

    @_locked
    def get_crm(self, entity: str, crm_id: str) -> CrmRecordState | None:
        row = self.crm_rows.get((entity, crm_id))
        return copy.deepcopy(row) if row is not None else None

    @_locked
    def save_crm(self, record: CrmRecordState) -> None:
        self.crm_rows[(record.entity, record.crm_id)] = copy.deepcopy(record)

    @_locked
    def watermark(self, name: str) -> str | None:
        row = self.watermarks.get(name)
        return (str(row["value"]) or None) if row else None

    @_locked
    def save_watermark(self, name: str, value: str | None, **last_run: object) -> None:
        # A MERGE, as the table's: a save of the watermark alone keeps the last run's figures.
        self.watermarks[name] = {**self.watermarks.get(name, {}), "value": value or "", **copy.deepcopy(last_run)}

    @_locked
    def last_run(self, name: str) -> dict[str, object]:
        return copy.deepcopy(self.watermarks.get(name, {}))


class FakeAuditLog:
    """``AuditLog`` in memory; :attr:`entries` in the order they were appended."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []
        self._lock = threading.RLock()

    @_locked
    def append(self, entry: AuditEntry, *, now: dt.datetime | None = None) -> AuditEntry:
        entry.time = (now or dt.datetime.now(dt.UTC)).isoformat()
        self.entries.append(copy.deepcopy(entry))
        return entry

    @_locked
    def history(self, referral_id: str, limit: int = 50) -> list[AuditEntry]:
        """Newest first, as the table's inverted-ticks RowKey returns them."""
        rows = [e for e in self.entries if (e.referral_id or f"crm_{e.crm_id}") == referral_id]
        return copy.deepcopy(rows[::-1][:limit])

    @_locked
    def outcomes(self, key: str) -> list[str]:
        """Oldest first: the outcomes recorded under a referral id (or ``crm_<id>``)."""
        return [e.outcome for e in self.history(key, limit=10_000)][::-1]


@dataclass
class _Lease:
    owner: str
    expires_at: dt.datetime
    etag: str


class FakeLeaseStore:
    """``LeaseStore`` on the fake clock: an expired lease can be taken over; waiting lets the clock run."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.leases: dict[str, _Lease] = {}
        self.taken_over: list[str] = []  # names acquired while another holder's lease had expired
        self._etags = itertools.count(1)
        self._lock = threading.RLock()

    @_locked
    def try_acquire(self, name: str, seconds: int) -> str | None:
        now = self.clock()
        current = self.leases.get(name)
        if current is not None and current.expires_at > now:
            return None
        if current is not None:
            self.taken_over.append(name)
        lease = _Lease(uuid.uuid4().hex, now + dt.timedelta(seconds=seconds), f'W/"{next(self._etags)}"')
        self.leases[name] = lease
        return lease.etag

    @_locked
    def renew(self, name: str, seconds: int, etag: str) -> str | None:
        current = self.leases.get(name)
        if current is None or current.etag != etag:
            return None
        current.expires_at = self.clock() + dt.timedelta(seconds=seconds)
        current.etag = f'W/"{next(self._etags)}"'
        return current.etag

    @_locked
    def release(self, name: str, etag: str) -> None:
        current = self.leases.get(name)
        if current is not None and current.etag == etag:
            del self.leases[name]

    @contextlib.contextmanager
    def hold(self, name: str, *, seconds: int, wait: float = 0.0, poll: float = 0.25) -> Iterator[None]:
        deadline = self.clock() + dt.timedelta(seconds=wait)
        while True:
            etag = self.try_acquire(name, seconds)
            if etag:
                break
            if self.clock() >= deadline:
                raise LeaseUnavailable(f"lease {name!r} is held by another worker")
            self.clock.advance(poll)  # waiting is time passing
        try:
            yield
        finally:
            self.release(name, etag)

    @_locked
    def held(self, name: str) -> bool:
        lease = self.leases.get(name)
        return lease is not None and lease.expires_at > self.clock()


class FakeQueue:
    """The ``referral-events`` queue as the reconciler's ``enqueue`` sees it."""

    def __init__(self) -> None:
        self.messages: list[ReferralMessage] = []

    def __call__(self, message: ReferralMessage) -> None:
        self.messages.append(message)

    def drain(self) -> list[ReferralMessage]:
        taken, self.messages = self.messages, []
        return taken

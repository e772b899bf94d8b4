"""The referral's state row, with its ETag, is the referral's lock: no separate lease row.

A worker reads the row (one GET: state and ETag), decides, and only when it must write does it
claim the row with a conditional write that sets ``lease_owner``/``lease_until``: an insert for a
referral with no row (a second worker's insert gets 409), else a MERGE If-Match the ETag it read
(a second worker's gets 412). The new state is committed If-Match the claim's ETag, in a REPLACE
that drops the claim in the same write. So of two workers that read the same row, one claims it
and the other reads again and decides again; a CRM write only ever happens under a claim.

A claim lapses after ``seconds`` (``LEASE_SECONDS``), so a worker that died frees its referral by
itself; a live holder renews it every third of that time. A worker that finds a live claim of
someone else waits up to ``wait`` seconds (``LEASE_WAIT_SECONDS``) for it, else raises
:class:`LeaseUnavailable` and the queue retries the message later.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

from shared.store.leases import LeaseUnavailable, Renewal
from shared.store.state import StateConflict, StateRow, StateStore, SyncState

log = logging.getLogger("cosell.store.claims")


class ClaimLost(LeaseUnavailable):
    """The claim lapsed and another worker took the row before this one committed: sync again."""


class Claim:
    """A held claim on one referral's row: :meth:`commit` the new state, or leaving releases it."""

    def __init__(
        self, store: StateStore, row: StateRow, etag: str, *, seconds: int, until: Callable[[], str], inserted: bool
    ) -> None:
        self.row = row  # as read before claiming: the state the decision was made on
        self._store, self._until, self._inserted = store, until, inserted
        self._done = False
        self._renewal = Renewal(f"claim on referral {row.referral_id}", seconds, etag, self._renew)
        self._renewal.start()

    @property
    def referral_id(self) -> str:
        return self.row.referral_id

    def _renew(self, etag: str) -> str | None:
        try:
            return self._store.merge(self.referral_id, etag, lease_until=self._until())
        except StateConflict:
            return None

    def commit(self, state: SyncState) -> None:
        """Write ``state`` If-Match the claim, which ends it; :class:`ClaimLost` if another worker took the row."""
        etag = self._stop()
        try:
            self._store.commit(state, etag)
        except StateConflict as exc:
            log.warning("referral %s: the claim lapsed and another worker took it; syncing again", self.referral_id)
            raise ClaimLost(f"the claim on referral {self.referral_id} was taken over") from exc

    def release(self) -> None:
        """Leave without committing: the next worker need not wait for the claim to lapse."""
        etag = self._stop()
        try:
            if self._inserted:
                self._store.delete(self.referral_id, etag)  # no state was ever written: no row either
            else:
                self._store.merge(self.referral_id, etag, lease_owner="", lease_until="")
        except StateConflict:
            pass  # taken over after it lapsed: not ours to release
        except Exception as exc:  # the claim lapses by itself
            log.warning("referral %s: could not release the claim (%s)", self.referral_id, type(exc).__name__)

    def _stop(self) -> str:
        if self._done:
            raise RuntimeError(f"the claim on referral {self.referral_id} has ended")
        self._done = True
        self._renewal.stop()
        return self._renewal.etag

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._done:
            self.release()


class ReferralClaims:
    """Reads, waits for and claims referral state rows (see the module's docstring)."""

    def __init__(
        self,
        store: StateStore,
        *,
        seconds: int,
        wait: float,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], None] = time.sleep,
        poll: float = 0.25,
    ) -> None:
        self._store, self._seconds, self._wait = store, seconds, wait
        self._clock, self._sleep, self._poll = clock, sleep, poll

    def settle(self, referral_id: str, *, deadline: dt.datetime | None = None) -> StateRow:
        """The row once no other worker's live claim is on it: waits up to ``wait`` s, else LeaseUnavailable."""
        deadline = deadline or self.deadline()
        while True:
            row = self._store.read(referral_id)
            if not row.claimed(self._clock()):
                return row
            if self._clock() >= deadline:
                raise LeaseUnavailable(f"referral {referral_id} is being synced by another worker")
            self._sleep(self._poll)

    def deadline(self) -> dt.datetime:
        return self._clock() + dt.timedelta(seconds=self._wait)

    def claim(self, row: StateRow) -> Claim:
        """Claim the row as read; :class:`StateConflict` if it changed since (read it again and decide again)."""
        # One owner per claim, not per process: the threads of one host claim against each other too.
        owner, until = uuid.uuid4().hex, self._until()
        if row.etag:
            etag = self._store.merge(row.referral_id, row.etag, lease_owner=owner, lease_until=until)
        else:
            etag = self._store.insert_claim(row.referral_id, owner, until)
        return Claim(self._store, row, etag, seconds=self._seconds, until=self._until, inserted=not row.etag)

    def _until(self) -> str:
        return (self._clock() + dt.timedelta(seconds=self._seconds)).isoformat()

    @contextmanager
    def hold(self, referral_id: str) -> Iterator[Claim]:
        """Wait for and claim the row, whatever it holds (for callers that write whatever they find)."""
        deadline = self.deadline()
        while True:
            row = self.settle(referral_id, deadline=deadline)
            try:
                claim = self.claim(row)
                break
            except StateConflict:
                if self._clock() >= deadline:
                    raise LeaseUnavailable(f"referral {referral_id} is being synced by another worker") from None
        with claim:
            yield claim

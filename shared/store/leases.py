"""Leases with an expiry in Table Storage, so one referral (or one poll) is worked on by one caller at a time.

Acquire = insert the lease row; if it exists and has expired, take it over with an ETag-conditional
update, so of two callers racing for an expired lease exactly one wins. A crashed holder's lease
simply expires. While held, a lease is renewed every third of its time (ETag-conditional again),
so a sync that outlives ``seconds`` never runs beside a second one. Release deletes the row only if
it is still ours (ETag match).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.store.keys import table_key

LEASE_PARTITION = "lease"

log = logging.getLogger("cosell.store.leases")


class LeaseUnavailable(Exception):
    """Someone else holds the lease; the caller should try again later."""


class LeaseStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def try_acquire(self, name: str, seconds: int) -> str | None:
        """Return the lease's ETag if acquired, else None."""
        name = table_key(name)
        now = dt.datetime.now(dt.UTC)
        entity = {
            "PartitionKey": LEASE_PARTITION,
            "RowKey": name,
            "owner": uuid.uuid4().hex,
            "expires_at": (now + dt.timedelta(seconds=seconds)).isoformat(),
        }
        try:
            return str(self._table.create_entity(entity)["etag"])
        except ResourceExistsError:
            pass
        try:
            current = self._table.get_entity(LEASE_PARTITION, name)
        except ResourceNotFoundError:
            return None  # released meanwhile; the caller's next try will insert
        if dt.datetime.fromisoformat(current["expires_at"]) > now:
            return None
        try:
            result = self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return str(result["etag"])

    def renew(self, name: str, seconds: int, etag: str) -> str | None:
        """Push the expiry ``seconds`` ahead if the lease is still ours; the new ETag, or None if lost."""
        entity = {
            "PartitionKey": LEASE_PARTITION,
            "RowKey": table_key(name),
            "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat(),
        }
        try:
            result = self._table.update_entity(
                entity, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return str(result["etag"])

    def release(self, name: str, etag: str) -> None:
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._table.delete_entity(
                LEASE_PARTITION, table_key(name), etag=etag, match_condition=MatchConditions.IfNotModified
            )

    @contextlib.contextmanager
    def hold(self, name: str, *, seconds: int, wait: float = 0.0, poll: float = 0.25) -> Iterator[None]:
        """Hold the lease for the block, waiting up to ``wait`` seconds for it; else LeaseUnavailable."""
        deadline = time.monotonic() + wait
        while True:
            etag = self.try_acquire(name, seconds)
            if etag:
                break
            if time.monotonic() >= deadline:
                raise LeaseUnavailable(f"lease {name!r} is held by another worker")
            time.sleep(poll)
        renewal = Renewal(f"lease {table_key(name)}", seconds, etag, lambda tag: self.renew(name, seconds, tag))
        renewal.start()
        try:
            yield
        finally:
            self.release(name, renewal.stop())


class Renewal(threading.Thread):
    """Keeps a held lease (or a claimed state row) alive until stopped, renewing every third of its time.

    ``renew`` takes the current ETag and returns the next, or None if someone else took it: then
    it gives up and says so.
    """

    def __init__(self, what: str, seconds: int, etag: str, renew: Callable[[str], str | None]) -> None:
        super().__init__(name=f"renew-{what}", daemon=True)
        self._what, self._seconds, self._renew = what, seconds, renew
        self.etag = etag
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._seconds / 3):
            try:
                renewed = self._renew(self.etag)
            except Exception as exc:  # storage unreachable: the next round tries again
                log.warning("Could not renew %s (%s)", self._what, type(exc).__name__)
                continue
            if renewed is None:
                log.warning("Lost the %s while holding it; another worker may now run beside this one", self._what)
                return
            self.etag = renewed

    def stop(self) -> str:
        self._stopped.set()
        self.join()
        return self.etag

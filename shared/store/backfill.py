"""Backfill jobs in Table Storage (table ``Operations``): the current job, its checkpoint, counters and markers.

- PartitionKey ``backfill``, RowKey ``current``: which job is the current one (one runs at a time).
- PartitionKey ``backfill-<job id>``, RowKey ``job``: the checkpoint (next page link, pages read, the
  pacing slot) and the listing's counters (listed, queued, already in sync).
- The same partition, RowKeys ``count-00`` to ``count-15``: synced and failed, split over 16 rows so
  workers finishing together rarely write the same one; a referral always counts in the same row.
- The same partition, RowKey ``r_<referral id>``: the referral's marker: the page that listed it and
  its outcome for this job (``""`` queued, ``synced``, ``failed``, ``up-to-date``).

A counter changes in the same entity-group transaction as the marker it counts, conditional on both
ETags, so a referral is counted once however often its message is delivered, replayed or raced.
Reading a job's progress is one point read and one query of at most 16 rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.store.keys import table_key

log = logging.getLogger("cosell.store.backfill")

POINTER_PARTITION = "backfill"
POINTER_ROW = "current"
JOB_ROW = "job"
MAX_TRANSACTION = 100  # entity-group transaction limit (Azure Table service)
_MAX_TRIES = 60
PARALLEL_CALLS = 16

T = TypeVar("T")
R = TypeVar("R")

Outcome = Literal["", "synced", "failed", "up-to-date"]
Finished = Literal["synced", "failed"]

Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class BackfillJob:
    job_id: str
    since: str = ""  # ISO date-time the list was filtered on (updatedDateTime ge), "" = every referral
    started_at: str = ""
    state: str = "running"  # running | stopped (listing gave up; resume) | superseded (a forced new job)
    per_minute: float = 0.0
    listing_done: bool = False
    pages: int = 0  # pages listed and checkpointed
    next_link: str = ""  # @odata.nextLink of the last page read: where listing resumes
    next_page_sent: int = 0  # the highest page whose message was sent
    next_slot: str = ""  # when the next queued referral may become visible (the pace)
    listed: int = 0
    queued: int = 0
    up_to_date: int = 0  # listed but already synced at that version: not queued, counted as synced
    unreadable: int = 0  # list items without a usable id
    last_error: str = ""
    updated_at: str = ""
    # From the counter rows, not the job row: synced includes up_to_date.
    synced: int = 0
    failed: int = 0
    counted_at: str = ""  # when the last referral was counted
    etag: str = field(default="", compare=False, repr=False)

    @property
    def finished_at(self) -> str:
        return max(self.counted_at, self.updated_at) if self.phase == "completed" else ""

    @property
    def remaining(self) -> int:
        return max(0, self.listed - self.synced - self.failed)

    @property
    def phase(self) -> str:
        """``listing``, ``syncing``, ``completed``, ``stopped`` or ``superseded``."""
        if self.state != "running":
            return self.state
        if not self.listing_done:
            return "listing"
        return "syncing" if self.remaining else "completed"

    @property
    def running(self) -> bool:
        return self.phase in ("listing", "syncing")

    @property
    def percent(self) -> float:
        """Of the referrals listed so far (all of them once listing is done)."""
        if not self.listed:
            return 100.0 if self.listing_done else 0.0
        return min(100.0, round(100 * (self.synced + self.failed) / self.listed, 1))

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "since": self.since or None,
            "startedAt": self.started_at,
            "state": self.phase,
            "listingDone": self.listing_done,
            "pagesListed": self.pages,
            "listed": self.listed,
            "queued": self.queued,
            "alreadyInSync": self.up_to_date,
            "synced": self.synced,
            "failed": self.failed,
            "remaining": self.remaining,
            "percent": self.percent,
            "unreadable": self.unreadable,
            "referralsPerMinute": self.per_minute,
            "lastQueuedVisibleAt": self.next_slot or None,
            "finishedAt": self.finished_at or None,
            "lastError": self.last_error or None,
            "updatedAt": self.updated_at or None,
        }


@dataclass
class Marker:
    referral_id: str
    page: int
    outcome: Outcome = ""
    etag: str = field(default="", compare=False, repr=False)


_NOT_IN_JOB_ROW = ("job_id", "etag", "synced", "failed", "counted_at")
_JOB_FIELDS = [f.name for f in dataclasses.fields(BackfillJob) if f.name not in _NOT_IN_JOB_ROW]
SHARDS = 16
_SHARD_PREFIX = "count-"


def partition(job_id: str) -> str:
    return table_key(f"backfill-{job_id}")


def _marker_key(referral_id: str) -> str:
    return table_key(f"r_{referral_id}")


class BackfillStore:
    def __init__(self, table: TableClient, *, clock: Clock = _now, sleep: Callable[[float], None] = time.sleep) -> None:
        self._table = table
        self._clock = clock
        self._sleep = sleep

    # ------------------------------------------------------------------ the current job
    def pointer(self) -> tuple[str | None, str | None]:
        """The current job's id and the pointer row's ETag (None, None before the first backfill)."""
        try:
            row = self._table.get_entity(POINTER_PARTITION, POINTER_ROW)
        except ResourceNotFoundError:
            return None, None
        return str(row.get("job_id") or "") or None, str(row.metadata["etag"])

    def point_to(self, job_id: str, *, etag: str | None) -> bool:
        """Make ``job_id`` current if the pointer is still as read (``etag``); False if another start won."""
        entity = {"PartitionKey": POINTER_PARTITION, "RowKey": POINTER_ROW, "job_id": job_id}
        try:
            if etag is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def current(self) -> BackfillJob | None:
        job_id, _ = self.pointer()
        return self.get(job_id) if job_id else None

    # ------------------------------------------------------------------ job rows
    def create(self, job: BackfillJob) -> None:
        job.updated_at = self._clock().isoformat()
        result = self._table.create_entity(self._job_entity(job))
        job.etag = str(result["etag"])

    def get(self, job_id: str) -> BackfillJob | None:
        """The job with its progress: the job row plus its counter rows."""
        try:
            row = self._table.get_entity(partition(job_id), JOB_ROW)
        except ResourceNotFoundError:
            return None
        values = {name: row[name] for name in _JOB_FIELDS if name in row}
        job = BackfillJob(job_id=job_id, etag=str(row.metadata["etag"]), **values)
        shards = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            parameters={"pk": partition(job_id), "low": _SHARD_PREFIX, "high": _SHARD_PREFIX[:-1] + "."},
        )
        job.synced = job.up_to_date
        for shard in shards:
            job.synced += int(shard.get("synced") or 0)
            job.failed += int(shard.get("failed") or 0)
            job.counted_at = max(job.counted_at, str(shard.get("counted_at") or ""))
        return job

    def update(self, job_id: str, change: Callable[[BackfillJob], bool]) -> BackfillJob | None:
        """Read, ``change`` (False: leave the row as it is), write if nobody wrote meanwhile; retried on a race.

        Returns the row as written, or as read when ``change`` declined; None if the job does not exist.
        """
        for attempt in range(_MAX_TRIES):
            job = self.get(job_id)
            if job is None or not change(job):
                return job
            job.updated_at = self._clock().isoformat()
            try:
                result = self._table.update_entity(
                    self._job_entity(job),
                    mode=UpdateMode.REPLACE,
                    etag=job.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                self._back_off(attempt)
                continue
            job.etag = str(result["etag"])
            return job
        raise RuntimeError(f"backfill job {job_id}: the row kept changing under {_MAX_TRIES} updates")

    # ------------------------------------------------------------------ markers
    def marker(self, job_id: str, referral_id: str) -> Marker | None:
        try:
            row = self._table.get_entity(partition(job_id), _marker_key(referral_id))
        except ResourceNotFoundError:
            return None
        return _marker(referral_id, row)

    def markers(self, job_id: str, referral_ids: Iterable[str]) -> dict[str, Marker]:
        """The markers that exist among ``referral_ids`` (point reads, side by side: a page is ~100)."""
        wanted = list(dict.fromkeys(referral_ids))
        found = parallel(lambda referral_id: self.marker(job_id, referral_id), wanted)
        return {marker.referral_id: marker for marker in found if marker is not None}

    def claim(self, job_id: str, page: int, candidates: list[Marker]) -> list[Marker]:
        """Create the markers of ``page``; of those that exist already, keep the ones this page made.

        A marker that exists with this page number was made by an earlier try of the same page (a
        crash, or the page's message delivered twice); one with another page belongs to that page.
        """
        claimed: list[Marker] = []
        for start in range(0, len(candidates), MAX_TRANSACTION):
            chunk = candidates[start : start + MAX_TRANSACTION]
            try:
                self._table.submit_transaction([("create", self._marker_entity(job_id, m)) for m in chunk])
                claimed.extend(chunk)
                continue
            except TableTransactionError as exc:
                if exc.status_code != 409:
                    raise
            for marker in chunk:  # one of them exists: go one by one
                try:
                    self._table.create_entity(self._marker_entity(job_id, marker))
                    claimed.append(marker)
                except ResourceExistsError:
                    found = self.marker(job_id, marker.referral_id)
                    if found is not None and found.page == page:
                        claimed.append(found)
        return claimed

    def finish(self, job_id: str, referral_id: str, outcome: Finished, *, known: Marker | None = None) -> bool:
        """Count the referral as ``outcome`` for the job, once; True if this call counted it.

        Synced is final; failed may still become synced (a replay from the poison queue that works).
        Marker and counter row change in one transaction, conditional on both ETags. ``known`` is the
        marker as the caller read it (saves a read; a stale one only costs a retry).
        """
        pk, shard = partition(job_id), _shard(referral_id)
        for attempt in range(_MAX_TRIES):
            marker = known if attempt == 0 and known is not None else self.marker(job_id, referral_id)
            if marker is None:
                log.warning("Backfill %s has no marker for referral %s; not counted", job_id, referral_id)
                return False
            if marker.outcome in ("synced", "up-to-date") or marker.outcome == outcome:
                return False
            try:
                row: Any = self._table.get_entity(pk, shard)
            except ResourceNotFoundError:
                row = None
            counts = {name: int((row or {}).get(name) or 0) for name in ("synced", "failed")}
            if marker.outcome == "failed":
                counts["failed"] -= 1
            counts[outcome] += 1
            entity = {"PartitionKey": pk, "RowKey": shard, **counts, "counted_at": self._clock().isoformat()}
            operations: list[Any] = [
                (
                    "update",
                    {"PartitionKey": pk, "RowKey": _marker_key(referral_id), "outcome": outcome},
                    {"mode": UpdateMode.MERGE, "etag": marker.etag, "match_condition": MatchConditions.IfNotModified},
                ),
                ("create", entity)
                if row is None
                else (
                    "update",
                    entity,
                    {
                        "mode": UpdateMode.REPLACE,
                        "etag": row.metadata["etag"],
                        "match_condition": MatchConditions.IfNotModified,
                    },
                ),
            ]
            try:
                self._table.submit_transaction(operations)
            except TableTransactionError as exc:
                if exc.status_code in (409, 412):
                    self._back_off(attempt)
                    continue
                raise
            return True
        raise RuntimeError(f"backfill job {job_id}: could not count referral {referral_id} in {_MAX_TRIES} tries")

    # ------------------------------------------------------------------ wire
    def _job_entity(self, job: BackfillJob) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": partition(job.job_id), "RowKey": JOB_ROW, "job_id": job.job_id}
        for name in _JOB_FIELDS:
            entity[name] = getattr(job, name)
        return entity

    @staticmethod
    def _marker_entity(job_id: str, marker: Marker) -> dict[str, Any]:
        return {
            "PartitionKey": partition(job_id),
            "RowKey": _marker_key(marker.referral_id),
            "referral_id": marker.referral_id,
            "page": marker.page,
            "outcome": marker.outcome,
        }

    def _back_off(self, attempt: int) -> None:
        # Workers finishing together race for the job row: spread the retries.
        self._sleep(random.uniform(0, min(0.5, 0.01 * (attempt + 1))))  # noqa: S311 - jitter, not security


def parallel(work: Callable[[T], R], items: list[T], *, workers: int = PARALLEL_CALLS) -> list[R]:
    """``work`` over ``items`` on a few threads, results in order: a page's point reads and sends are
    independent, and one after another they would cost a round trip each."""
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="backfill") as pool:
        return list(pool.map(work, items))


def _shard(referral_id: str) -> str:
    return f"{_SHARD_PREFIX}{zlib.crc32(referral_id.encode('utf-8')) % SHARDS:02d}"


def _marker(referral_id: str, row: Any) -> Marker:
    return Marker(
        referral_id=referral_id,
        page=int(row.get("page") or 0),
        outcome=row.get("outcome") or "",
        etag=str(row.metadata["etag"]),
    )

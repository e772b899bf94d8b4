"""Import the referrals a partner already has: list them page by page, queue each once, paced for the CRM.

The first reconcile looks back only a day, so referrals older than the app never arrive by
themselves. A backfill is a job in Table Storage plus a chain of ``backfill-pages`` messages: each
message lists one page of ``GET /referrals`` (oldest created first, so pages do not shift while new
referrals arrive), queues its referrals onto ``referral-events`` with visibility delays that keep
to ``BACKFILL_REFERRALS_PER_MINUTE``, checkpoints the next link and the counters, and sends the
message for the next page. Each function run stays short, and a crash or restart resumes from the
checkpoint: queue messages are delivered at least once and every step is safe to repeat.

A referral whose state already holds the listed version is not queued at all (it counts as
synced, "already in sync"): a second backfill costs one list call per page and no CRM call.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from shared.http import Throttled
from shared.messages import BackfillPageMessage, ReferralMessage
from shared.partner_center.client import ReferralsClient, odata_datetime
from shared.partner_center.ids import is_referral_id
from shared.partner_center.models import Referral
from shared.store.backfill import BackfillJob, BackfillStore, Marker, parallel
from shared.store.state import StateStore
from shared.sync.inbound import is_permanent, readable

log = logging.getLogger("cosell.sync.backfill")

# createdDateTime is a documented $orderby field (reference §1.3); oldest first keeps every page where
# it was while the list is read: a referral created meanwhile lands at the end, an updated one stays put.
ORDER = "createdDateTime asc"

Enqueue = Callable[..., None]
MAX_DEFERRALS = 20  # throttled page reads sent back to wait; then the host's retries take over


class BackfillBusy(Exception):
    """A backfill is running; only one runs at a time."""

    def __init__(self, job: BackfillJob) -> None:
        super().__init__(f"A backfill is already running: job {job.job_id} ({job.phase}, {job.percent}% done).")
        self.job = job


class NothingToResume(Exception):
    """There is no backfill whose listing could be resumed."""


@dataclass
class PageReport:
    job_id: str
    page: int
    action: str  # listed | skipped | deferred | stopped
    reason: str = ""
    listed: int = 0
    queued: int = 0
    up_to_date: int = 0


class Backfill:
    def __init__(
        self,
        *,
        referrals: ReferralsClient,
        state: StateStore,
        store: BackfillStore,
        enqueue_referral: Enqueue,
        enqueue_page: Enqueue,
        crm_kind: str,
        per_minute: float = 50.0,
        ahead: dt.timedelta = dt.timedelta(minutes=10),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._referrals = referrals
        self._state = state
        self._store = store
        self._enqueue_referral = enqueue_referral
        self._enqueue_page = enqueue_page
        self._crm_kind = crm_kind
        self._per_minute = per_minute
        self._ahead = ahead
        self._clock = clock

    # ------------------------------------------------------------------ starting
    def start(self, since: dt.datetime | None = None, *, force: bool = False) -> BackfillJob:
        """Create a job and send its first page; BackfillBusy while another runs (unless ``force``)."""
        current_id, pointer = self._store.pointer()
        current = self._store.get(current_id) if current_id else None
        if current is not None and current.running and not force:
            raise BackfillBusy(current)
        now = self._clock()
        job = BackfillJob(
            job_id=f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
            since=since.astimezone(dt.UTC).isoformat() if since else "",
            started_at=now.isoformat(),
            per_minute=self._per_minute,
            next_page_sent=1,
            next_slot=now.isoformat(),
        )
        self._store.create(job)
        # The message goes out before the job becomes current: a crash in between leaves a message
        # for a job nobody points at (it is dropped), never a current job without its message.
        self._enqueue_page(BackfillPageMessage(job_id=job.job_id, page=1))
        if not self._store.point_to(job.job_id, etag=pointer):
            self._store.update(job.job_id, lambda j: _set_state(j, "superseded"))
            winner = self._store.current()
            if winner is not None:
                raise BackfillBusy(winner)
            raise RuntimeError("another backfill started at the same moment")  # pragma: no cover - a race of three
        if current is not None and current.running:
            self._store.update(current.job_id, lambda j: _set_state(j, "superseded"))
            log.warning("Backfill %s superseded by %s (forced)", current.job_id, job.job_id)
        log.info("Backfill %s started (since %s)", job.job_id, job.since or "the first referral")
        return job

    def resume(self) -> BackfillJob:
        """Go on listing the current job from its checkpoint (after it stopped, or its page message was lost)."""
        job = self._store.current()
        if job is None:
            raise NothingToResume("No backfill has been started.")
        if job.listing_done:
            raise NothingToResume(
                f"Backfill {job.job_id} has listed every referral ({job.phase}); referrals that failed are in "
                "referral-events-poison: POST /api/manage/replay-poison sends them again."
            )
        page = job.pages + 1

        def running(j: BackfillJob) -> bool:
            j.state, j.last_error = "running", ""
            j.next_page_sent = max(j.next_page_sent, page)
            return True

        resumed = self._store.update(job.job_id, running) or job
        self._enqueue_page(BackfillPageMessage(job_id=job.job_id, page=page))
        log.info("Backfill %s resumed at page %d", job.job_id, page)
        return resumed

    def current(self) -> BackfillJob | None:
        return self._store.current()

    # ------------------------------------------------------------------ one page
    def run_page(self, message: BackfillPageMessage, *, final_attempt: bool = False) -> PageReport:
        """List page ``message.page`` of its job, queue its referrals, checkpoint, send the next page.

        Safe to run twice: markers say which referrals this page already listed, and the checkpoint
        only moves from page N-1 to N. A failure on the last attempt stops the job (``resume`` later).
        """
        job = self._store.get(message.job_id)
        if job is None:
            log.warning("Backfill page %d: job %s does not exist; dropped", message.page, message.job_id)
            return PageReport(message.job_id, message.page, "skipped", "unknown job")
        if self._store.pointer()[0] != job.job_id:
            if job.state == "running":
                self._store.update(job.job_id, lambda j: _set_state(j, "superseded"))
            return PageReport(job.job_id, message.page, "skipped", "not the current job")
        if job.state != "running":
            return PageReport(job.job_id, message.page, "skipped", f"job is {job.state}")
        if job.listing_done or message.page <= job.pages:
            if message.page == job.pages:
                self._send_next(job)  # the run that checkpointed this page may have died before sending on
            return PageReport(job.job_id, message.page, "skipped", "page already listed")
        if message.page > job.pages + 1:
            return PageReport(job.job_id, message.page, "skipped", f"page {job.pages + 1} comes first")
        try:
            return self._list(job, message.page)
        except Throttled as exc:
            if message.deferrals >= MAX_DEFERRALS:
                raise
            later = message.model_copy(update={"deferrals": message.deferrals + 1})
            self._enqueue_page(later, delay_seconds=exc.retry_after)
            log.warning("Backfill %s page %d: throttled; again in %.0f s", job.job_id, message.page, exc.retry_after)
            return PageReport(job.job_id, message.page, "deferred", readable(exc))
        except Exception as exc:
            if is_permanent(exc) or final_attempt:
                reason = f"Listing page {message.page} failed: {readable(exc)}"
                self._store.update(job.job_id, lambda j: _stop(j, reason))
                log.error("Backfill %s stopped: %s", job.job_id, reason)
                if is_permanent(exc):
                    return PageReport(job.job_id, message.page, "stopped", reason)
            raise

    def _list(self, job: BackfillJob, page_number: int) -> PageReport:
        since = dt.datetime.fromisoformat(job.since) if job.since else None
        page = self._referrals.page(
            job.next_link or None,
            filter=f"updatedDateTime ge {odata_datetime(since)}" if since else None,
            orderby=ORDER,
        )
        listing: dict[str, Referral] = {}
        unreadable = page.unreadable
        for referral in page.referrals:
            if is_referral_id(referral.id):
                listing.setdefault(referral.id, referral)
            else:
                unreadable += 1
        existing = self._store.markers(job.job_id, listing)
        fresh = [referral for referral_id, referral in listing.items() if referral_id not in existing]
        in_sync = {r.id: synced for r, synced in zip(fresh, parallel(self._in_sync, fresh), strict=True)}
        ours: dict[str, Marker] = {}
        new: list[Marker] = []
        for referral_id in listing:
            marker = existing.get(referral_id)
            if marker is None:
                new.append(Marker(referral_id, page_number, "up-to-date" if in_sync[referral_id] else ""))
            elif marker.page == page_number:
                ours[referral_id] = marker  # an earlier try of this page listed it
            # else: an earlier page listed it (the list moved under us); it is not counted twice
        for marker in self._store.claim(job.job_id, page_number, new):
            ours[marker.referral_id] = marker
        ordered = [ours[r] for r in listing if r in ours]

        now = self._clock()
        # The pace is the function app's setting at this page, not the starter's: changing
        # BACKFILL_REFERRALS_PER_MINUTE slows or speeds a running backfill from its next page on.
        interval = dt.timedelta(minutes=1) / self._per_minute
        first = max(_time(job.next_slot) or now, now)
        waiting = [m for m in ordered if m.outcome == ""]  # queued again if an earlier try died: harmless

        def send(slot: tuple[int, Marker]) -> None:
            n, marker = slot
            self._enqueue_referral(
                ReferralMessage(referral_id=marker.referral_id, source="backfill", backfill_job=job.job_id),
                delay_seconds=(first + n * interval - now).total_seconds(),
            )

        parallel(send, list(enumerate(waiting)))  # the delays, not the sending order, set the pace
        next_slot = first + len(waiting) * interval
        up_to_date = sum(1 for m in ordered if m.outcome == "up-to-date")
        listed, queued = len(ordered), len(ordered) - up_to_date

        applied = False

        def checkpoint(j: BackfillJob) -> bool:
            nonlocal applied
            if j.pages >= page_number:
                applied = False
                return False  # another run of this page checkpointed it
            j.pages = page_number
            j.next_link = page.next_link or ""
            j.listing_done = page.next_link is None
            j.listed += listed
            j.queued += queued
            j.up_to_date += up_to_date
            j.unreadable += unreadable
            j.per_minute = self._per_minute
            j.next_slot = max(next_slot, _time(j.next_slot) or next_slot).isoformat()
            applied = True
            return True

        saved = self._store.update(job.job_id, checkpoint)
        if saved is None or not applied:
            return PageReport(job.job_id, page_number, "skipped", "another run listed this page")
        log.info(
            "Backfill %s page %d: %d listed, %d queued, %d already in sync%s",
            job.job_id,
            page_number,
            listed,
            queued,
            up_to_date,
            "; listing done" if saved.listing_done else "",
        )
        self._send_next(saved)
        return PageReport(job.job_id, page_number, "listed", "", listed, queued, up_to_date)

    def _send_next(self, job: BackfillJob) -> None:
        """Send the next page's message, once, timed so listing stays ``ahead`` of the pace, not further."""
        if job.listing_done or job.next_page_sent > job.pages:
            return
        page = job.pages + 1
        due = (_time(job.next_slot) or self._clock()) - self._ahead
        self._enqueue_page(
            BackfillPageMessage(job_id=job.job_id, page=page),
            delay_seconds=max(0.0, (due - self._clock()).total_seconds()),
        )

        def sent(j: BackfillJob) -> bool:
            if j.next_page_sent >= page:
                return False
            j.next_page_sent = page
            return True

        self._store.update(job.job_id, sent)

    def _in_sync(self, referral: Referral) -> bool:
        """The CRM already holds this version: synced without error at the listed ``updatedDateTime``."""
        state = self._state.get(referral.id)
        if state is None or not state.crm_id or state.last_error:
            return False
        if state.crm_kind and state.crm_kind != self._crm_kind:
            return False  # synced into another CRM before CRM_KIND changed
        synced, listed = state.pc_updated_at, referral.updated_date_time
        return synced is not None and listed is not None and listed <= synced


def parse_since(value: object) -> tuple[dt.datetime | None, str]:
    """``since`` as an aware date-time (a date is its midnight UTC, no offset is UTC), or why it is not one."""
    if value is None:
        return None, ""
    reason = '"since" must be an ISO 8601 date or date-time in the past, such as 2024-01-01 or 2024-01-01T00:00:00Z.'
    if not isinstance(value, str) or not value.strip():
        return None, reason
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None, reason
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if parsed > dt.datetime.now(dt.UTC):
        return None, reason
    return parsed, ""


def _set_state(job: BackfillJob, state: str) -> bool:
    if job.state == state:
        return False
    job.state = state
    return True


def _stop(job: BackfillJob, reason: str) -> bool:
    job.state, job.last_error = "stopped", reason
    return True


def _time(value: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None

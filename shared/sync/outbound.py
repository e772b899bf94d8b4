"""CRM → Partner Center: share new deals, push changes, accept or decline from leads.

A poll holds a lease (one run at a time across instances), reads the deals changed since its
watermark, and handles each one; the watermark only moves past records that were handled
(shared, updated, unchanged or rejected with a reason), so a crash or a failing call loses
nothing. A deal whose shared content equals what both sides last agreed on costs no Partner
Center call: that is how our own write-backs and the other direction's writes stop echoing.

A poll handles up to ``concurrency`` records at once (CRM_POLL_CONCURRENCY): each record mostly waits
for Partner Center and its state row, so one after another a first share of thousands took many
minutes. The deals are read on the poll's thread (an adapter's paging is not shared between threads)
and handed to the pool as slots free up, never read ahead; each record runs in a copy of the poll's
context, so its calls count in the poll's figures. Records are reported in the CRM's order, and the
watermark only passes the longest run of records, in that order, that need no retry: a record handled
after a retry is seen again by the next poll and costs nothing there if it has not changed.

A poll is time-boxed: after ``max_seconds`` it takes no further record, lets the ones in hand finish,
saves its watermark and returns; the next tick goes on from there (a first share of thousands of deals
takes several polls and never meets the function timeout). Every CRM call waits for the CRM user's
limiter (shared/ratelimit.py), so a large share paces itself however many records are in hand; a
limiter wait too long to sleep through ends the poll like a 429 does.

Creating a referral is not idempotent, so an intent is recorded before the POST; if the answer
is lost, the next attempt first looks for a referral whose ``externalReferenceId`` is the CRM id.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from shared import telemetry
from shared.auth import AuthError
from shared.crm.port import CrmPort, CrmRejected
from shared.http import ApiError, ApiUnavailable, CallStats, Throttled, count_calls
from shared.mapping.inbound import InboundOptions, plan_for
from shared.mapping.limits import fit
from shared.mapping.model import CrmDeal, DealKind, stable_hash
from shared.mapping.outbound import (
    OutboundOptions,
    content_hash_of_deal,
    new_referral,
    problems,
    referral_update,
    rejection_message,
    terminal_reason,
)
from shared.partner_center.client import ReferralsClient
from shared.partner_center.ids import is_referral_id, shown
from shared.partner_center.models import MalformedReferral, Referral
from shared.store.audit import AuditEntry, AuditLog
from shared.store.claims import Claim, ReferralClaims
from shared.store.errors import is_storage_outage
from shared.store.leases import LeaseStore, LeaseUnavailable
from shared.store.state import CrmRecordState, StateStore, SyncState
from shared.sync.inbound import is_permanent, readable

log = logging.getLogger("cosell.sync.outbound")

DIRECTION = "crm-to-pc"
POLL_LEASE_SECONDS = 600  # as long as the function timeout: a crashed run's lease frees itself
WATERMARK_EVERY = 50  # records between watermark saves inside one poll
LOST_CREATE_CLOCK_SKEW = dt.timedelta(minutes=10)
TRANSIENT = (ApiError, ApiUnavailable, AuthError, LeaseUnavailable)


@dataclass
class RecordOutcome:
    entity: str
    crm_id: str
    referral_id: str
    outcome: str  # created | updated | unchanged | skipped | rejected | failed | retry | throttled
    message: str


@dataclass
class PollReport:
    ran: bool
    watermark_before: str | None = None
    watermark_after: str | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    api_calls: dict[str, int] = field(default_factory=dict)
    records: list[RecordOutcome] = field(default_factory=list)
    time_boxed: bool = False  # stopped at max_seconds with records left; the next poll goes on


class OutboundSync:
    def __init__(
        self,
        *,
        referrals: ReferralsClient,
        crm: CrmPort,
        state: StateStore,
        audit: AuditLog,
        leases: LeaseStore,
        inbound_options: InboundOptions,
        options: OutboundOptions | None = None,
        lease_seconds: int = 60,
        lease_wait: float = 20.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        max_seconds: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._concurrency = concurrency
        self._referrals = referrals
        self._max_seconds = max_seconds
        self._monotonic = monotonic
        self._crm = crm
        self._state = state
        self._audit = audit
        self._leases = leases
        self._inbound_options = inbound_options
        # The engine asks the adapter what its CRM can express (an opportunity's pending stage).
        self._options = dataclasses.replace(options or OutboundOptions(), pending_stage=crm.capabilities.pending_stage)
        self._lease_seconds = lease_seconds
        self._lease_wait = lease_wait
        # A referral's state row is its lock, for this direction as for the inbound sync.
        self._claims = ReferralClaims(state, seconds=lease_seconds, wait=lease_wait, clock=clock, sleep=sleep)
        self._clock = clock

    @property
    def _watermark_name(self) -> str:
        return f"crm-{self._crm.kind}"

    # ------------------------------------------------------------------ poll
    def poll(self) -> PollReport:
        try:
            with self._leases.hold(f"poll_{self._crm.kind}", seconds=POLL_LEASE_SECONDS, wait=0):
                return self._poll_held()
        except LeaseUnavailable:
            log.info("CRM poll skipped: another run holds the lease")
            return PollReport(ran=False)

    def _poll_held(self) -> PollReport:
        started = self._monotonic()
        before = self._state.watermark(self._watermark_name)
        report = PollReport(ran=True, watermark_before=before, watermark_after=before)
        with count_calls() as stats:
            self._handle_changed(report, started)
        report.api_calls = dict(stats.calls)
        self._state.save_watermark(
            self._watermark_name,
            report.watermark_after,
            last_run_at=self._clock().isoformat(),
            last_duration_ms=round((time.monotonic() - started) * 1000),
            last_outcomes=dict(report.outcomes),
            last_api_calls=report.api_calls,
            last_time_boxed=report.time_boxed,
        )
        log.info(
            "CRM poll: %s; watermark %s -> %s; calls %s%s",
            dict(report.outcomes) or "nothing changed",
            before or "-",
            report.watermark_after or "-",
            report.api_calls,
            f"; stopped after {self._max_seconds:.0f} s, the next poll goes on" if report.time_boxed else "",
        )
        if not (report.outcomes["retry"] or report.outcomes["throttled"]):
            # Everything the CRM had changed was handled, or as much as the time box allowed without a
            # failure (a large first share spans polls): the alert "no successful poll" counts these.
            telemetry.emit(
                "poll_succeeded",
                1,
                crm=self._crm.kind,
                records=len(report.records),
                duration_ms=round((self._monotonic() - started) * 1000),
            )
        return report

    def _handle_changed(self, report: PollReport, started: float) -> None:
        """Every deal changed since the watermark, ``concurrency`` at a time, reported in the CRM's order."""
        try:
            deals = iter(self._crm.changed_deals(report.watermark_before))
        except (*TRANSIENT, CrmRejected) as exc:
            _stopped_early(report, exc)
            return
        pool: Executor = _Inline() if self._concurrency == 1 else ThreadPoolExecutor(self._concurrency, "crm-poll")
        waiting: deque[tuple[CrmDeal, Future[RecordOutcome]]] = deque()  # handed out, CRM order, not yet reported
        running: set[Future[RecordOutcome]] = set()
        blocked = False  # a record before this point still needs work: the watermark stays before it
        saved = report.watermark_before
        more = True  # take further records
        try:
            while True:
                while more and len(running) < self._concurrency:
                    deal = self._next_deal(deals, report)
                    if deal is None:
                        more = False
                        break
                    # A copy per record: its count_calls() nests in the poll's, whichever thread it runs on.
                    future = pool.submit(contextvars.copy_context().run, self._handle, deal, source="poll")
                    waiting.append((deal, future))
                    running.add(future)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                running -= done
                if any(f.result().outcome == "throttled" for f in done):
                    more = False  # the remote asked us to wait: every further call would be refused too
                while waiting and waiting[0][1].done():
                    deal, future = waiting.popleft()
                    outcome = future.result()
                    report.records.append(outcome)
                    report.outcomes[outcome.outcome] += 1
                    if outcome.outcome in ("retry", "throttled"):
                        blocked = True  # the watermark must not pass a record that still needs work
                    elif not blocked:
                        report.watermark_after = deal.modified_on
                    if len(report.records) % WATERMARK_EVERY == 0 and report.watermark_after != saved:
                        # Progress survives a crash or the function timeout mid-poll.
                        self._state.save_watermark(self._watermark_name, report.watermark_after)
                        saved = report.watermark_after
                if more and self._max_seconds is not None and self._monotonic() - started >= self._max_seconds:
                    # Stop well before the function timeout: the records in hand finish (each is a few calls),
                    # and the watermark is where the next poll starts.
                    report.time_boxed = True
                    more = False
        finally:
            pool.shutdown(wait=True)
            close = getattr(deals, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _next_deal(deals: Iterator[CrmDeal], report: PollReport) -> CrmDeal | None:
        """The next changed deal, or None when there is none or the CRM could not give it."""
        try:
            return next(deals)
        except StopIteration:
            return None
        except (*TRANSIENT, CrmRejected) as exc:
            _stopped_early(report, exc)
            return None

    def sync_record(
        self, crm_id: str, *, entity: DealKind | None = None, source: str = "resync"
    ) -> RecordOutcome | None:
        """Re-sync one CRM record now, whatever its hashes say (the resync route); None if it does not exist.

        Without ``entity`` the id is looked up as an opportunity, then as a lead.
        """
        deal = self._crm.get_deal(crm_id, entity)
        return self._handle(deal, source=source, force=True) if deal is not None else None

    # ------------------------------------------------------------------ one record
    def _handle(self, deal: CrmDeal, *, source: str, force: bool = False) -> RecordOutcome:
        """One record, isolated: whatever it holds or raises, the poll goes on to the next one."""
        with count_calls() as stats:
            try:
                outcome = self._sync_deal(deal, force=force)
            except Throttled as exc:
                outcome = self._outcome(deal, "throttled", f"Will retry: {readable(exc)}")
            except (*TRANSIENT, CrmRejected, MalformedReferral) as exc:
                if not is_permanent(exc):
                    # Stops the watermark here, so the next poll tries this record again.
                    outcome = self._outcome(deal, "retry", f"Transient failure, will retry: {readable(exc)}")
                else:
                    # Recorded and passed, with ✖ and the reason on the record; a later change retries it.
                    outcome = self._fail(deal, f"Failed: {readable(exc)}")
            except Exception as exc:  # one record must never stop the poll
                if is_storage_outage(exc):  # not the record's fault: the watermark stops here, the next poll retries
                    outcome = self._outcome(deal, "retry", f"Will retry: storage unavailable ({type(exc).__name__})")
                else:
                    log.exception("%s %s: unexpected failure", deal.entity, deal.crm_id)
                    outcome = self._fail(deal, f"Failed: unexpected error ({type(exc).__name__}); see the app's log")
        if outcome.outcome != "unchanged":
            self._record(outcome, stats, source)
        return outcome

    @staticmethod
    def _outcome(deal: CrmDeal, kind: str, message: str) -> RecordOutcome:
        referral_id = deal.referral_id if is_referral_id(deal.referral_id) else ""
        return RecordOutcome(deal.entity, deal.crm_id, referral_id or "", kind, message)

    def _fail(self, deal: CrmDeal, message: str) -> RecordOutcome:
        """A failure that retrying will not heal: the seller sees ✖ and why on the record itself, once.

        Remembered like a refusal, so the mark (which changes the record) does not bring it back
        next poll; a change by the seller does.
        """
        try:
            self._crm.write_back(deal, message=message, ok=False)
            record = self._state.get_crm(deal.entity, deal.crm_id) or CrmRecordState(deal.entity, deal.crm_id)
            record.rejected_hash = _refusal_key(deal, content_hash_of_deal(deal))
            record.last_error = message
            self._state.save_crm(record)
        except Exception as exc:  # the audit row below still records the failure
            log.warning("%s %s: could not mark the record as failed (%s)", deal.entity, deal.crm_id, type(exc).__name__)
        return self._outcome(deal, "failed", message)

    def _sync_deal(self, deal: CrmDeal, *, force: bool) -> RecordOutcome:
        record = self._state.get_crm(deal.entity, deal.crm_id) or CrmRecordState(deal.entity, deal.crm_id)
        content = content_hash_of_deal(deal)
        if not force and record.rejected_hash == _refusal_key(deal, content):
            # Refused before (by a check of ours or by Partner Center) and not changed since: the ✖
            # and the reason are on the record already; sending it again would be refused again.
            return RecordOutcome(deal.entity, deal.crm_id, "", "unchanged", "Still refused; waiting for a change.")
        if deal.referral_id and not is_referral_id(deal.referral_id):
            message = (
                f'Not synced: the referral id "{shown(deal.referral_id, 60)}" is not a Partner Center referral id '
                "(a GUID). Correct it, or clear it to share the deal as a new referral."
            )
            return self._reject(deal, record, content, message)
        referral_id = deal.referral_id or record.referral_id
        if not force and record.content_hash == content and referral_id:
            return RecordOutcome(deal.entity, deal.crm_id, referral_id, "unchanged", "Nothing to send.")
        if not referral_id:
            if deal.entity == "lead":
                return RecordOutcome(
                    deal.entity, deal.crm_id, "", "skipped", "Leads are shared from Partner Center only."
                )
            # One sharer per record (a poll and a resync may meet here): re-read its state inside the lease.
            lease = f"crm_{deal.entity}_{deal.crm_id}"
            with self._leases.hold(lease, seconds=self._lease_seconds, wait=self._lease_wait):
                record = self._state.get_crm(deal.entity, deal.crm_id) or record
                if not record.referral_id:
                    return self._share(deal, record, content, force=force)
                referral_id = record.referral_id
                if record.content_hash == content and not force:
                    return RecordOutcome(deal.entity, deal.crm_id, referral_id, "unchanged", "Already shared.")
        with self._claims.hold(referral_id) as claim:
            return self._update(deal, record, content, referral_id, claim)

    def _share(self, deal: CrmDeal, record: CrmRecordState, content: str, *, force: bool) -> RecordOutcome:
        found = problems(deal)
        if found:
            return self._reject(deal, record, content, rejection_message(found))
        referral = self._find_lost_create(deal, record.create_intent) if record.create_intent else None
        if referral is None:
            record.create_intent = self._clock().isoformat()
            self._state.save_crm(record)
            try:
                referral = self._referrals.create(new_referral(deal, self._options))
            except ApiError as exc:
                if not is_permanent(exc):
                    raise
                return self._reject(deal, record, content, f"Not shared: Partner Center refused it: {readable(exc)}")
        link = self._inbound_options.referral_link_template.format(id=referral.id)
        self._crm.write_back(
            deal,
            message=f"Shared with Partner Center as referral {referral.id} ({referral.status}/{referral.substatus}).",
            ok=True,
            referral_id=referral.id,
            link=link,
        )
        self._remember(deal, content, referral)
        return RecordOutcome(
            deal.entity,
            deal.crm_id,
            referral.id,
            "created",
            f"Shared as referral {referral.id} ({referral.status}/{referral.substatus}).",
        )

    def _find_lost_create(self, deal: CrmDeal, intent: str) -> Referral | None:
        """A create was attempted at ``intent`` and its answer lost: did Partner Center commit it?"""
        # Clocks differ: look a little before our own record of the attempt.
        since = dt.datetime.fromisoformat(intent) - LOST_CREATE_CLOCK_SKEW
        referral = self._referrals.find_by_external_reference(deal.crm_id, updated_since=since)
        if referral is not None:
            log.warning(
                "Adopting referral %s created for %s %s by an interrupted attempt",
                referral.id,
                deal.entity,
                deal.crm_id,
            )
        return referral

    def _update(
        self, deal: CrmDeal, record: CrmRecordState, content: str, referral_id: str, claim: Claim
    ) -> RecordOutcome:
        referral = self._referrals.get(referral_id)
        terminal = terminal_reason(referral)
        if terminal:
            self._state.agree(deal.entity, deal.crm_id, referral_id, content)
            return RecordOutcome(deal.entity, deal.crm_id, referral_id, "skipped", f"Not sent: {terminal}.")
        update = referral_update(deal, referral, self._options)
        if not update.paths:
            if update.notes:
                message = "Nothing sent to Partner Center: " + "; ".join(update.notes) + "."
                self._crm.write_back(deal, message=message, ok=True)  # under the claim, as every write here
                self._remember(deal, content, referral, claim)
                return RecordOutcome(deal.entity, deal.crm_id, referral_id, "skipped", message)
            self._remember(deal, content, referral, claim)
            return RecordOutcome(deal.entity, deal.crm_id, referral_id, "unchanged", "Already equal in Partner Center.")
        try:
            updated = self._referrals.patch(referral_id, update.changes, etag=referral.e_tag)
        except ApiError as exc:
            if exc.status != 412:
                if is_permanent(exc):
                    return self._reject(
                        deal, record, content, f"Not updated: Partner Center refused it: {readable(exc)}"
                    )
                raise
            # Someone changed the referral since we read it: re-read, re-diff, try once more.
            referral = self._referrals.get(referral_id)
            if referral.is_terminal:
                return RecordOutcome(
                    deal.entity, deal.crm_id, referral_id, "skipped", f"Not sent: {terminal_reason(referral)}."
                )
            update = referral_update(deal, referral, self._options)
            updated = (
                self._referrals.patch(referral_id, update.changes, etag=referral.e_tag) if update.paths else referral
            )
        updated = updated or self._referrals.get(referral_id)
        message = f"Partner Center referral updated from the CRM: {', '.join(update.paths)}."
        if update.notes:
            message += " " + "; ".join(update.notes) + "."
        self._crm.write_back(deal, message=message, ok=True)
        self._remember(deal, content, updated, claim)
        return RecordOutcome(deal.entity, deal.crm_id, referral_id, "updated", message)

    def _reject(self, deal: CrmDeal, record: CrmRecordState, content: str, message: str) -> RecordOutcome:
        self._crm.write_back(deal, message=message, ok=False)
        record.rejected_hash, record.last_error = _refusal_key(deal, content), message
        self._state.save_crm(record)
        return RecordOutcome(deal.entity, deal.crm_id, record.referral_id, "rejected", message)

    def _remember(self, deal: CrmDeal, content: str, referral: Referral, claim: Claim | None = None) -> None:
        """Both sides now agree: store it, so neither our write-back nor the echoing webhook syncs again."""
        if claim is None:  # a referral just shared: its webhook may be syncing it already
            with self._claims.hold(referral.id) as held:
                self._remember(deal, content, referral, held)
            return
        self._state.agree(deal.entity, deal.crm_id, referral.id, content)
        state = claim.row.state or SyncState(referral_id=referral.id)
        plan = fit(plan_for(referral, self._inbound_options), self._crm.field_limits(deal.entity))
        state.crm_kind, state.crm_entity, state.crm_id = self._crm.kind, deal.entity, deal.crm_id
        state.pc_updated = referral.updated_date_time.isoformat() if referral.updated_date_time else state.pc_updated
        if plan.kind == deal.entity:
            # Same record kind: the webhook for this write has nothing new for the CRM. (A lead whose
            # referral we just accepted is left to the inbound sync, which makes its opportunity.)
            state.pc_hash = plan.content_hash()
            state.part_hashes = plan.part_hashes()
            state.crm_fields = self._crm.memo_for(plan)
        state.last_outcome, state.last_error = "shared", ""
        state.last_synced_at = self._clock().isoformat()
        claim.commit(state)

    def _record(self, outcome: RecordOutcome, stats: CallStats, source: str) -> None:
        self._audit.append(
            AuditEntry(
                direction=DIRECTION,
                referral_id=outcome.referral_id,
                crm_id=outcome.crm_id,
                outcome=outcome.outcome,
                message=outcome.message,
                api_calls=stats.total,
                api_calls_by_service=dict(stats.calls),
                writes_by_service=dict(stats.writes),
                source=source,
            ),
            now=self._clock(),
        )
        level = logging.WARNING if outcome.outcome in ("rejected", "retry", "throttled") else logging.INFO
        log.log(level, "%s %s: %s (%s)", outcome.entity, outcome.crm_id, outcome.outcome, outcome.message)
        if outcome.outcome in ("failed", "rejected"):
            # Recorded once per change of the record (a refusal is remembered), so each line is one failure.
            telemetry.emit(
                "sync_failed",
                1,
                direction=DIRECTION,
                outcome=outcome.outcome,
                entity=outcome.entity,
                crm_id=outcome.crm_id,
            )


def _stopped_early(report: PollReport, exc: Exception) -> None:
    """Reading the next page failed (or the CRM lacks the sync's schema): what was done is kept, and
    the next poll goes on from the watermark."""
    report.outcomes["retry"] += 1
    log.warning("CRM poll stopped early: %s", readable(exc))


class _Inline(Executor):
    """CRM_POLL_CONCURRENCY=1: each record runs on the poll's own thread, at once, as before the pool."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed over as a pool's future would, raised by result()
            future.set_exception(exc)
        return future


def _refusal_key(deal: CrmDeal, content: str) -> str:
    """What a refusal was about: the shared content and the referral id typed on the record."""
    return stable_hash([content, deal.referral_id or ""])

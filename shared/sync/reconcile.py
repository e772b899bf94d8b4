"""Heal missed webhooks: list referrals Partner Center changed since the last run, queue the ones we lack.

Partner Center gives up on a callback after 10 failed deliveries and the events carry no data,
so a referral can change without us hearing of it. This finds those by ``updatedDateTime`` and
hands them to the same queue the webhook uses; the worker then syncs them as usual. A run stops after
``max_seconds`` (before the function timeout) with its watermark at the newest referral it saw; the
listing is oldest first, so the next run goes on from there.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.http import count_calls
from shared.messages import ReferralMessage
from shared.partner_center.client import ReferralsClient
from shared.store.leases import LeaseStore, LeaseUnavailable
from shared.store.state import StateStore, SyncState

log = logging.getLogger("cosell.sync.reconcile")

WATERMARK = "reconcile-partner-center"


@dataclass
class ReconcileReport:
    ran: bool
    watermark_before: str | None = None
    watermark_after: str | None = None
    seen: int = 0
    queued: list[str] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)  # per service, for the status route
    time_boxed: bool = False


class Reconciler:
    def __init__(
        self,
        *,
        referrals: ReferralsClient,
        state: StateStore,
        leases: LeaseStore,
        enqueue: Callable[[ReferralMessage], None],
        first_run_lookback: dt.timedelta = dt.timedelta(hours=24),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        max_seconds: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_seconds = max_seconds
        self._monotonic = monotonic
        self._referrals = referrals
        self._state = state
        self._leases = leases
        self._enqueue = enqueue
        self._lookback = first_run_lookback
        self._clock = clock

    def run(self) -> ReconcileReport:
        try:
            with self._leases.hold("reconcile", seconds=600, wait=0):
                return self._run_held()
        except LeaseUnavailable:
            log.info("Reconcile skipped: another run holds the lease")
            return ReconcileReport(ran=False)

    def _run_held(self) -> ReconcileReport:
        started = time.monotonic()
        before = self._state.watermark(WATERMARK)
        since = dt.datetime.fromisoformat(before) if before else self._clock() - self._lookback
        report = ReconcileReport(ran=True, watermark_before=before)
        newest = since
        started = self._monotonic()
        with count_calls() as stats:
            # ge, not gt: the referral at the watermark is seen again and skipped, never missed.
            for referral in self._referrals.changed_since(since):
                report.seen += 1
                updated = referral.updated_date_time
                if updated is None:
                    continue
                state = self._state.get(referral.id)
                if _needs_sync(state, updated):
                    self._enqueue(
                        ReferralMessage(referral_id=referral.id, event_name="referral-updated", source="reconcile")
                    )
                    report.queued.append(referral.id)
                newest = max(newest, updated)
                if self._max_seconds is not None and self._monotonic() - started >= self._max_seconds:
                    report.time_boxed = True  # oldest first: the next run lists on from ``newest``
                    break
        report.api_calls = dict(stats.calls)
        report.watermark_after = newest.isoformat()
        self._state.save_watermark(
            WATERMARK,
            report.watermark_after,
            last_run_at=self._clock().isoformat(),
            last_duration_ms=round((time.monotonic() - started) * 1000),
            last_seen=report.seen,
            last_queued=len(report.queued),
            last_api_calls=report.api_calls,
        )
        log.info(
            "Reconcile: %d referral(s) changed since %s, %d queued", report.seen, since.isoformat(), len(report.queued)
        )
        return report


def _needs_sync(state: SyncState | None, updated: dt.datetime) -> bool:
    """Newer than what was synced, and not the very version that already failed for good (that one waits
    for an operator's resync or replay; queueing it each run would only fill the poison queue)."""
    if state is None:
        return True
    if state.failed_version and updated <= dt.datetime.fromisoformat(state.failed_version):
        return False
    return state.pc_updated_at is None or updated > state.pc_updated_at

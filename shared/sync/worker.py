"""What the ``referral-events`` worker does with one message, around the inbound sync itself.

- A remote that asks for a longer wait than an in-call retry may take (Dataverse service protection
  can ask for minutes) is not a failure: the message goes back on the queue, invisible for exactly
  that long, instead of burning the host's attempts and landing in poison.
- A message a backfill queued is counted for its job, once: synced when the sync ends (created,
  updated, unchanged or skipped by a rule), failed when its last attempt fails. A second copy of a
  message whose referral is already counted as synced does nothing at all.
- A last attempt that fails is written to the recent failures the status route shows, with the CRM
  record it is about; a later sync that heals the referral (or a replayed message that syncs) resolves it.

Failures are raised again, so the Functions host retries the message and then moves it to poison.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from shared.auth import AuthError
from shared.http import ApiError, ApiUnavailable, Throttled
from shared.messages import ReferralMessage
from shared.store.backfill import BackfillStore
from shared.store.failures import RecentFailures
from shared.store.leases import LeaseUnavailable
from shared.sync.inbound import PermanentSyncError, SyncOutcome, readable

log = logging.getLogger("cosell.sync.worker")

MAX_DEFERRALS = 20  # then the host's own retries (and the poison queue) take over

Handled = Literal["synced", "deferred", "duplicate"]


class ReferralWorker:
    def __init__(
        self,
        *,
        sync: Callable[[str, str], SyncOutcome],
        progress: BackfillStore,
        failures: RecentFailures,
        enqueue: Callable[..., None],
        max_deferrals: int = MAX_DEFERRALS,
        crm_kind: str = "",
    ) -> None:
        self._crm_kind = crm_kind
        self._sync = sync
        self._progress = progress
        self._failures = failures
        self._enqueue = enqueue
        self._max_deferrals = max_deferrals

    def handle(self, message: ReferralMessage, *, final_attempt: bool = False) -> Handled:
        job = message.backfill_job
        marker = self._progress.marker(job, message.referral_id) if job else None
        if marker is not None and marker.outcome in ("synced", "up-to-date"):
            log.info("Referral %s: already synced for backfill %s; duplicate dropped", message.referral_id, job)
            return "duplicate"
        try:
            outcome = self._sync(message.referral_id, message.source)
        except Throttled as exc:
            if message.deferrals < self._max_deferrals:
                later = message.model_copy(update={"deferrals": message.deferrals + 1})
                self._enqueue(later, delay_seconds=exc.retry_after)
                log.warning(
                    "Referral %s: %s throttled the sync; back on the queue in %.0f s",
                    message.referral_id,
                    exc.service,
                    exc.retry_after,
                )
                return "deferred"
            self._gave_up(message, exc, final_attempt)
            raise
        except Exception as exc:
            self._gave_up(message, exc, final_attempt)
            raise
        if job:
            self._progress.finish(job, message.referral_id, "synced", known=marker)
        if outcome.healed or message.source == "replay":
            # Only after a failure: a sync that never failed costs no extra storage call here.
            self._failures.resolve(message.referral_id)
        return "synced"

    def _gave_up(self, message: ReferralMessage, exc: Exception, final_attempt: bool) -> None:
        if not final_attempt:
            return
        # The sync logged the cause already; the host logs the move to the poison queue.
        self._failures.record(
            message.referral_id,
            _reason(exc),
            source=message.source,
            backfill_job=message.backfill_job or "",
            crm_kind=self._crm_kind,
            crm_entity=getattr(exc, "crm_entity", ""),
            crm_id=getattr(exc, "crm_id", ""),
        )
        if message.backfill_job:
            self._progress.finish(message.backfill_job, message.referral_id, "failed")


def _reason(exc: Exception) -> str:
    """A readable cause for operators; an error nobody foresaw is named by its type only (its text may hold data)."""
    if isinstance(exc, ApiError | ApiUnavailable | AuthError | LeaseUnavailable | PermanentSyncError):
        return readable(exc)
    return f"Unexpected error ({type(exc).__name__}); see the app's log."

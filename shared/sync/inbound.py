"""Partner Center → CRM: fetch a referral, decide, write the CRM, record state and audit.

Webhook delivery is at-least-once and unordered, so every run is idempotent: a referral older than
the last synced version is skipped, a referral whose mapped content is unchanged costs no CRM call
and no state write, and a CRM write only happens under a claim on the referral's state row (its
ETag is the lock, shared/store/claims.py), so two messages for one referral never write at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from shared import telemetry
from shared.auth import AuthError
from shared.crm.port import CrmPort, CrmRejected, InboundResult, KnownRecord
from shared.http import ApiError, ApiUnavailable, CallStats, count_calls
from shared.mapping.inbound import InboundOptions, plan_for
from shared.mapping.limits import fit
from shared.mapping.model import CrmPlan
from shared.mapping.outbound import content_hash_of_plan
from shared.partner_center.client import ReferralsClient
from shared.partner_center.models import MalformedReferral, Referral
from shared.store.audit import AuditEntry, AuditLog
from shared.store.claims import Claim, ReferralClaims
from shared.store.errors import is_storage_outage
from shared.store.leases import LeaseUnavailable
from shared.store.state import StateConflict, StateRow, StateStore, SyncState

log = logging.getLogger("cosell.sync.inbound")

DIRECTION = "pc-to-crm"
MAX_RACES = 10  # rows changed under this worker in a row before it gives the message back to the queue
_RETRYABLE_4XX = frozenset({408, 409, 412, 423, 429})


class PermanentSyncError(Exception):
    """A failure that retrying will not fix; the host's retries then move the message to poison.

    Names the CRM record it is about, when there is one, so the recent failures can link to it.
    """

    def __init__(self, reason: str, *, crm_entity: str = "", crm_id: str = "") -> None:
        super().__init__(reason)
        self.crm_entity = crm_entity
        self.crm_id = crm_id


@dataclass
class SyncOutcome:
    referral_id: str
    outcome: str
    message: str
    crm_entity: str = ""
    crm_id: str = ""
    api_calls: dict[str, int] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)
    healed: bool = False  # written after a failure of this referral: its recent failure is resolved


def is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, CrmRejected | MalformedReferral):
        return True
    if isinstance(exc, ApiError):
        return 400 <= exc.status < 500 and exc.status not in _RETRYABLE_4XX
    return False


def readable(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        detail = exc.message or exc.code or "no details"
        return f"{exc.service} answered HTTP {exc.status} to {exc.method} {exc.path}: {detail}"
    return str(exc)


class InboundSync:
    def __init__(
        self,
        *,
        referrals: ReferralsClient,
        crm: CrmPort,
        state: StateStore,
        audit: AuditLog,
        options: InboundOptions,
        lease_seconds: int = 60,
        lease_wait: float = 20.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._referrals = referrals
        self._crm = crm
        self._state = state
        self._audit = audit
        self._options = options
        self._claims = ReferralClaims(state, seconds=lease_seconds, wait=lease_wait, clock=clock, sleep=sleep)
        self._clock = clock

    def sync(self, referral_id: str, *, source: str = "webhook") -> SyncOutcome:
        with count_calls() as stats:
            try:
                outcome = self._sync(referral_id, source, stats)
            except (PermanentSyncError, LeaseUnavailable):
                raise  # recorded already / another worker is syncing it: the host retries later
            except (ApiError, ApiUnavailable, AuthError) as exc:
                self._record(referral_id, "", "retry", f"Transient failure, will retry: {readable(exc)}", stats, source)
                raise
            except Exception as exc:
                if is_storage_outage(exc):  # storage, not the referral: no ✖, no failure row; the host retries
                    log.warning("referral %s: storage unavailable (%s), host retries", referral_id, type(exc).__name__)
                    raise
                # Not a remote's answer: a bug, or data nothing foresaw. Say so where the operator looks
                # (audit row, ✖ on the record), then let the host's retries and the poison queue follow.
                log.exception("referral %s: unexpected failure", referral_id)
                reason = f"Sync failed on an unexpected error ({type(exc).__name__}); see the app's log."
                self._fail(referral_id, reason, stats, source)
        # A skipped or unchanged event says why in the log too: "nothing happened" is the question an
        # operator watching the log asks first. The reasons name settings and versions, never customer data.
        why = f" - {outcome.message}" if outcome.outcome in ("skipped", "unchanged") else ""
        log.info(
            "referral %s: %s (%s) crm=%s calls=%d writes=%d%s",
            referral_id,
            outcome.outcome,
            source,
            outcome.crm_id or "-",
            sum(outcome.api_calls.values()),
            sum(outcome.writes.values()),
            why,
        )
        return outcome

    def _sync(self, referral_id: str, source: str, stats: CallStats) -> SyncOutcome:
        deadline = self._claims.deadline()
        row = self._claims.settle(referral_id, deadline=deadline)
        try:
            referral = self._referrals.get(referral_id)
        except (ApiError, MalformedReferral) as exc:
            if is_permanent(exc):
                self._fail(referral_id, f"Could not read the referral: {readable(exc)}", stats, source)
            raise
        # Decided on the row as read; a row another worker changed meanwhile is read again and the same
        # referral decided again (it may now be stale, or unchanged).
        for _ in range(MAX_RACES):
            try:
                return self._decide(row, referral, source, stats)
            except StateConflict:
                row = self._claims.settle(referral_id, deadline=deadline)
        raise LeaseUnavailable(f"referral {referral_id} kept changing under this worker")

    def _decide(self, row: StateRow, referral: Referral, source: str, stats: CallStats) -> SyncOutcome:
        referral_id, previous = row.referral_id, _same_crm(row.state, self._crm.kind)
        stale = self._stale_reason(referral, previous)
        if stale:
            return self._record(referral_id, previous.crm_id if previous else "", "skipped", stale, stats, source)

        plan = plan_for(referral, self._options)
        if plan.kind == "skip":
            return self._record(referral_id, "", "skipped", f"Not synced: {plan.reason}.", stats, source)
        plan = fit(plan, self._crm.field_limits(plan.kind))

        content_hash = plan.content_hash()
        if previous and previous.crm_id and previous.pc_hash == content_hash and not previous.last_error:
            version = referral.updated_date_time
            if version and (previous.pc_updated_at is None or version > previous.pc_updated_at):
                # Nothing to write but the out-of-order floor: without it, a worker still holding an
                # older, different version of this referral would claim the unchanged row and apply it.
                self._state.merge(referral_id, row.etag, pc_updated=_iso(version), last_outcome="unchanged")
            return self._record(
                referral_id,
                previous.crm_id,
                "unchanged",
                "No mapped field changed; nothing written.",
                stats,
                source,
                entity=previous.crm_entity,
            )

        with self._claims.claim(row) as claim:
            return self._apply(claim, referral, plan, content_hash, stats, source)

    def _apply(
        self, claim: Claim, referral: Referral, plan: CrmPlan, content_hash: str, stats: CallStats, source: str
    ) -> SyncOutcome:
        referral_id, previous = claim.referral_id, _same_crm(claim.row.state, self._crm.kind)
        unreadable = _unreadable_note(referral)
        try:
            result = self._crm.apply_inbound(plan, _known(previous), _crm_audit_message(plan) + unreadable)
        except Exception as exc:
            if is_permanent(exc):
                reason = f"Sync from Partner Center failed: {readable(exc)}"
                version = _iso(referral.updated_date_time)
                self._fail(referral_id, reason, stats, source, claim=claim, version=version)
            raise

        claim.commit(self._next_state(previous, referral, plan, content_hash, result))
        # What the CRM now holds is what Partner Center has: the next CRM poll must not send it back.
        pending_stage = self._crm.capabilities.pending_stage
        self._state.agree(
            result.kind, result.crm_id, referral.id, content_hash_of_plan(plan, pending_stage=pending_stage)
        )
        outcome = "created" if result.created else "updated"
        what = f"{outcome} {result.kind} from referral ({plan.pc_status})"
        if result.notes:
            what += "; " + "; ".join(result.notes)
        what += unreadable
        synced = self._record(referral_id, result.crm_id, outcome, what, stats, source, entity=result.kind)
        synced.healed = bool(previous and previous.last_error)
        return synced

    def _stale_reason(self, referral: Referral, previous: SyncState | None) -> str:
        if not previous or not previous.pc_updated_at or not referral.updated_date_time:
            return ""
        if referral.updated_date_time < previous.pc_updated_at:
            return (
                f"Skipped an out-of-order event: referral version {_iso(referral.updated_date_time)} "
                f"is older than the synced {previous.pc_updated}."
            )
        return ""

    def _next_state(
        self, previous: SyncState | None, referral: Referral, plan: CrmPlan, content_hash: str, result: InboundResult
    ) -> SyncState:
        state = previous or SyncState(referral_id=referral.id)
        state.crm_kind = self._crm.kind
        state.crm_entity = result.kind
        state.crm_id = result.crm_id
        if result.lead_id:
            state.lead_id = result.lead_id
        state.pc_updated = _iso(referral.updated_date_time) or state.pc_updated
        state.pc_hash = content_hash
        state.part_hashes = plan.part_hashes()
        state.crm_fields = result.memo
        state.last_outcome = "created" if result.created else "updated"
        state.last_error = ""
        state.failed_version = ""
        state.last_synced_at = self._clock().isoformat()
        return state

    def _fail(
        self,
        referral_id: str,
        reason: str,
        stats: CallStats,
        source: str,
        *,
        claim: Claim | None = None,
        version: str = "",
    ) -> NoReturn:
        """Write ✖ and the reason on the CRM record (once per distinct reason), audit, then give up.

        ``version``: the referral version that failed, when it was read; the reconciliation does not queue
        that version again (each run would send it to the poison queue once more), a newer one it does.
        """
        if claim is None:
            with self._claims.hold(referral_id) as held:
                self._fail(referral_id, reason, stats, source, claim=held, version=version)
        assert claim is not None
        previous = _same_crm(claim.row.state, self._crm.kind)
        # The host retries a failed message up to maxDequeueCount times: count the failure once per cause.
        new_failure = previous is None or previous.last_error != reason
        if previous and previous.crm_id and previous.last_error != reason:
            try:
                self._crm.mark_failed(previous.crm_entity, previous.crm_id, reason)
            except (ApiError, ApiUnavailable, AuthError) as exc:
                log.warning("referral %s: could not mark the CRM record as failed: %s", referral_id, type(exc).__name__)
        state = previous or SyncState(referral_id=referral_id)
        state.last_error = reason
        state.last_outcome = "failed"
        state.failed_version = version
        claim.commit(state)
        self._record(
            referral_id, state.crm_id, "failed", reason, stats, source, entity=state.crm_entity, counted=new_failure
        )
        log.error("referral %s: %s", referral_id, reason)
        if new_failure:
            telemetry.emit("sync_failed", 1, direction=DIRECTION, outcome="failed", referral=referral_id)
        raise PermanentSyncError(reason, crm_entity=state.crm_entity, crm_id=state.crm_id)

    def _record(
        self,
        referral_id: str,
        crm_id: str,
        outcome: str,
        message: str,
        stats: CallStats,
        source: str,
        *,
        entity: str = "",
        counted: bool = True,
    ) -> SyncOutcome:
        calls, writes = dict(stats.calls), dict(stats.writes)
        self._audit.append(
            AuditEntry(
                direction=DIRECTION,
                referral_id=referral_id,
                crm_id=crm_id,
                outcome=outcome,
                message=message,
                api_calls=sum(calls.values()),
                api_calls_by_service=calls,
                writes_by_service=writes,
                source=source,
                counted=counted,
            ),
            now=self._clock(),
        )
        return SyncOutcome(referral_id, outcome, message, entity, crm_id, calls, writes)


def _same_crm(state: SyncState | None, crm_kind: str) -> SyncState | None:
    """The stored state as far as it holds for this CRM.

    After CRM_KIND changes, a record id, memo and hashes of the other CRM mean nothing here: the referral is
    new to this CRM (a backfill then fills it). Only the out-of-order floor is Partner Center's and stays.
    """
    if state is None or not state.crm_kind or state.crm_kind == crm_kind:
        return state
    return SyncState(referral_id=state.referral_id, pc_updated=state.pc_updated)


def _known(state: SyncState | None) -> KnownRecord | None:
    """What the adapter needs of the stored state: the record, its memo and part hashes, never the row."""
    if state is None or not state.crm_id or state.crm_entity not in ("opportunity", "lead"):
        return None
    return KnownRecord(
        kind="lead" if state.crm_entity == "lead" else "opportunity",
        crm_id=state.crm_id,
        memo=state.crm_fields,
        part_hashes=state.part_hashes,
        failed_before=bool(state.last_error),
        lead_id=state.lead_id,
    )


def _crm_audit_message(plan: CrmPlan) -> str:
    status = plan.pc_status
    if plan.deal and plan.deal.close_reason and plan.reason:
        status = f"{status}: {plan.reason}"
    notes = "".join(f" {note}." for note in plan.notes)
    return f"Partner Center referral to CRM sync success ({status}).{notes}"


def _unreadable_note(referral: Referral) -> str:
    if not referral.unreadable:
        return ""
    return f" Partner Center sent values that could not be read, left as they were: {', '.join(referral.unreadable)}."


def _iso(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat() if value else ""

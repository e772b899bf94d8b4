"""Partner Center → CRM: fetch a referral, decide, write the CRM, record state and audit.

Webhook delivery is at-least-once and unordered, so every run is idempotent: a per-referral lease
serialises concurrent messages, a referral older than the last synced version is skipped, and a
referral whose mapped content is unchanged costs no CRM call at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

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
from shared.store.leases import LeaseStore, LeaseUnavailable
from shared.store.state import StateStore, SyncState

log = logging.getLogger("cosell.sync.inbound")

DIRECTION = "pc-to-crm"
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
        leases: LeaseStore,
        options: InboundOptions,
        lease_seconds: int = 60,
        lease_wait: float = 20.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._referrals = referrals
        self._crm = crm
        self._state = state
        self._audit = audit
        self._leases = leases
        self._options = options
        self._lease_seconds = lease_seconds
        self._lease_wait = lease_wait
        self._clock = clock

    def sync(self, referral_id: str, *, source: str = "webhook") -> SyncOutcome:
        with count_calls() as stats:
            try:
                with self._leases.hold(f"referral_{referral_id}", seconds=self._lease_seconds, wait=self._lease_wait):
                    outcome = self._sync_held(referral_id, source, stats)
            except (PermanentSyncError, LeaseUnavailable):
                raise  # recorded already / another worker is syncing it: the host retries later
            except (ApiError, ApiUnavailable, AuthError) as exc:
                self._record(referral_id, "", "retry", f"Transient failure, will retry: {readable(exc)}", stats, source)
                raise
            except Exception as exc:
                # Not a remote's answer: a bug, or data nothing foresaw. Say so where the operator looks
                # (audit row, ✖ on the record), then let the host's retries and the poison queue follow.
                log.exception("referral %s: unexpected failure", referral_id)
                reason = f"Sync failed on an unexpected error ({type(exc).__name__}); see the app's log."
                self._fail(self._state.get(referral_id), referral_id, reason, stats, source)
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

    def _sync_held(self, referral_id: str, source: str, stats: CallStats) -> SyncOutcome:
        previous = self._state.get(referral_id)
        try:
            referral = self._referrals.get(referral_id)
        except (ApiError, MalformedReferral) as exc:
            if is_permanent(exc):
                self._fail(previous, referral_id, f"Could not read the referral: {readable(exc)}", stats, source)
            raise
        stale = self._stale_reason(referral, previous)
        if stale:
            return self._record(referral_id, previous.crm_id if previous else "", "skipped", stale, stats, source)

        plan = plan_for(referral, self._options)
        if plan.kind == "skip":
            return self._record(referral_id, "", "skipped", f"Not synced: {plan.reason}.", stats, source)
        plan = fit(plan, self._crm.field_limits(plan.kind))

        content_hash = plan.content_hash()
        if previous and previous.crm_id and previous.pc_hash == content_hash and not previous.last_error:
            previous.pc_updated = _iso(referral.updated_date_time) or previous.pc_updated
            previous.last_outcome = "unchanged"
            self._state.save(previous)
            return self._record(
                referral_id,
                previous.crm_id,
                "unchanged",
                "No mapped field changed; nothing written.",
                stats,
                source,
                entity=previous.crm_entity,
            )

        unreadable = _unreadable_note(referral)
        try:
            result = self._crm.apply_inbound(plan, _known(previous), _crm_audit_message(plan) + unreadable)
        except Exception as exc:
            if is_permanent(exc):
                self._fail(previous, referral_id, f"Sync from Partner Center failed: {readable(exc)}", stats, source)
            raise

        self._state.save(self._next_state(previous, referral, plan, content_hash, result))
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
        state.last_synced_at = self._clock().isoformat()
        return state

    def _fail(self, previous: SyncState | None, referral_id: str, reason: str, stats: CallStats, source: str) -> None:
        """Write ✖ and the reason on the CRM record (once per distinct reason), audit, then give up."""
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
        self._state.save(state)
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

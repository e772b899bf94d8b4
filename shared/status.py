"""The operator's view behind ``GET /api/manage/status`` and the dashboard: bounded reads, never a scan.

Each section is one function of :class:`StatusSources`; a new one is one more entry in
:data:`SECTIONS`. A section that cannot be read says so in its place and the others still answer,
so the route shows what it can while storage or a queue is failing. ``health`` is judged last, from
the sections themselves, so the JSON and the dashboard's header can never disagree.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared.crm.links import RecordLinks
from shared.messages import BACKFILL_QUEUE, REFERRAL_EVENTS_QUEUE
from shared.schedule import nth_run_after
from shared.store.backfill import BackfillStore
from shared.store.clients import POISON_SUFFIX
from shared.store.counters import Last24Hours
from shared.store.failures import RecentFailures
from shared.store.queues import QueueDepth
from shared.store.state import StateStore
from shared.sync.reconcile import WATERMARK as RECONCILE_WATERMARK

log = logging.getLogger("cosell.status")

QUEUES = (
    REFERRAL_EVENTS_QUEUE,
    REFERRAL_EVENTS_QUEUE + POISON_SUFFIX,
    BACKFILL_QUEUE,
    BACKFILL_QUEUE + POISON_SUFFIX,
)
LATE_AFTER_RUNS = 3  # a timer that missed this many of its scheduled runs needs attention
STUCK_QUEUE_SECONDS = 15 * 60  # a visible referral message older than this: the worker is not keeping up
RECENT = dt.timedelta(hours=24)


@dataclass
class StatusSources:
    state: StateStore
    backfill: BackfillStore
    failures: RecentFailures
    queue_depth: Callable[[str], QueueDepth]  # messages (invisible ones included) and the front one's age
    crm_kind: str
    syncs: Callable[[dt.datetime], Last24Hours] | None = None  # the 24-hour counters (shared/store/counters.py)
    links: RecordLinks = field(default_factory=RecordLinks)
    version: str = ""
    poll_schedule: str = ""
    reconcile_schedule: str = ""


Section = Callable[[StatusSources, dt.datetime], Any]


def version(sources: StatusSources, now: dt.datetime) -> str | None:
    return sources.version or None


def backfill(sources: StatusSources, now: dt.datetime) -> dict[str, Any] | None:
    job = sources.backfill.current()
    return job.to_json() if job else None


def crm_poll(sources: StatusSources, now: dt.datetime) -> dict[str, Any] | None:
    row = sources.state.last_run(f"crm-{sources.crm_kind}")
    return _last_run(row, outcomes=_json(row.get("last_outcomes"))) if row else None


def reconcile(sources: StatusSources, now: dt.datetime) -> dict[str, Any] | None:
    row = sources.state.last_run(RECONCILE_WATERMARK)
    return _last_run(row, seen=row.get("last_seen"), queued=row.get("last_queued")) if row else None


def _last_run(row: dict[str, Any], **counts: Any) -> dict[str, Any]:
    """A timer's last run as the status shows it, the same for every timer; ``counts`` are the timer's own."""
    return {
        "lastRunAt": row.get("last_run_at") or None,
        "durationMs": row.get("last_duration_ms"),
        "watermark": row.get("value") or None,
        **counts,
        "apiCalls": _json(row.get("last_api_calls")),
    }


def queues(sources: StatusSources, now: dt.datetime) -> dict[str, Any]:
    with ThreadPoolExecutor(len(QUEUES)) as pool:  # one or two calls per queue, side by side
        depths = dict(zip(QUEUES, pool.map(sources.queue_depth, QUEUES), strict=True))
    return {name: {"messages": d.messages, "oldestAgeSeconds": d.oldest_age_seconds} for name, d in depths.items()}


def syncs_24h(sources: StatusSources, now: dt.datetime) -> dict[str, Any] | None:
    return sources.syncs(now).to_json() if sources.syncs else None


def recent_failures(sources: StatusSources, now: dt.datetime) -> list[dict[str, Any]]:
    listed = []
    for failure in sources.failures.recent():
        row = failure.to_json()
        row["crmUrl"] = sources.links.crm_record(failure.crm_kind, failure.crm_entity, failure.crm_id)
        row["partnerCenterUrl"] = sources.links.referral(failure.referral_id)
        listed.append(row)
    return listed


SECTIONS: dict[str, Section] = {
    "version": version,
    "backfill": backfill,
    "crmPoll": crm_poll,
    "reconcile": reconcile,
    "queues": queues,
    "syncs24h": syncs_24h,
    "recentFailures": recent_failures,
}


def status(sources: StatusSources, *, now: dt.datetime | None = None) -> dict[str, Any]:
    moment = now or dt.datetime.now(dt.UTC)
    body: dict[str, Any] = {"generatedAt": moment.isoformat(), "crm": sources.crm_kind}
    # The sections read different rows and queues: side by side, the route takes as long as its slowest part.
    with ThreadPoolExecutor(len(SECTIONS)) as pool:
        pending = {name: pool.submit(section, sources, moment) for name, section in SECTIONS.items()}
    for name, future in pending.items():
        try:
            body[name] = future.result()
        except Exception as exc:  # one unreadable part must not hide the rest
            log.warning("Status: %s could not be read (%s)", name, type(exc).__name__)
            body[name] = {"error": f"could not be read ({type(exc).__name__}); see the app's log"}
    body["health"] = health(body, sources, moment)
    return body


def health(body: dict[str, Any], sources: StatusSources, now: dt.datetime) -> dict[str, Any]:
    """``attention`` with one sentence per reason, or ``healthy``. Only what an operator can act on counts:
    a failure that has since synced again is history (the chart keeps it), not a reason."""
    reasons = [f"The {name} part could not be read." for name in SECTIONS if _unreadable(body.get(name))]
    depths = body.get("queues")
    if isinstance(depths, dict) and not _unreadable(depths):
        for name, depth in depths.items():
            if name.endswith(POISON_SUFFIX) and depth["messages"]:
                reasons.append(
                    f"{depth['messages']} message(s) in {name}: fix the cause, then replay them (Replay poison)."
                )
        front = depths.get(REFERRAL_EVENTS_QUEUE, {}).get("oldestAgeSeconds") or 0
        if front > STUCK_QUEUE_SECONDS:
            reasons.append(
                f"The oldest message in {REFERRAL_EVENTS_QUEUE} has waited {front // 60} min: "
                "the worker is not keeping up, or not running."
            )
    failures = body.get("recentFailures")
    if isinstance(failures, list):
        fresh = [f for f in failures if _within(f.get("at"), now, RECENT)]
        if fresh:
            reasons.append(f"{len(fresh)} referral sync(s) failed in the last 24 h and have not synced since.")
    for part, setting, schedule in (
        ("crmPoll", "CRM_POLL_SCHEDULE", sources.poll_schedule),
        ("reconcile", "RECONCILE_SCHEDULE", sources.reconcile_schedule),
    ):
        late = _late(body.get(part), schedule, now)
        if late:
            label = "CRM poll" if part == "crmPoll" else "reconcile"
            reasons.append(
                f"The {label} last ran at {late}: it has missed {LATE_AFTER_RUNS} runs of {setting} ({schedule})."
            )
    job = body.get("backfill")
    if isinstance(job, dict) and not _unreadable(job):
        if job.get("state") == "stopped":
            reasons.append(f"The backfill stopped: {job.get('lastError') or 'see the app log'}. Resume it.")
        elif job.get("failed"):
            reasons.append(f"{job['failed']} referral(s) of the backfill failed.")
    return {"state": "attention" if reasons else "healthy", "reasons": reasons}


def _unreadable(part: object) -> bool:
    return isinstance(part, dict) and set(part) == {"error"}


def _late(run: object, schedule: str, now: dt.datetime) -> str | None:
    """The last run's time when the schedule promised ``LATE_AFTER_RUNS`` runs since and none came."""
    if not schedule or not isinstance(run, dict) or not run.get("lastRunAt"):
        return None
    last = parse_time(run["lastRunAt"])
    due = nth_run_after(schedule, last, LATE_AFTER_RUNS) if last else None
    return str(run["lastRunAt"]) if due is not None and now > due else None


def _within(at: object, now: dt.datetime, span: dt.timedelta) -> bool:
    moment = parse_time(at)
    return moment is not None and now - moment <= span


def parse_time(value: object) -> dt.datetime | None:
    """An ISO time from the status dict (``Z`` or an offset; none means UTC), or None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _json(value: object) -> Any:
    if not isinstance(value, str) or not value:
        return {}
    try:
        return json.loads(value)
    except ValueError:
        return {}

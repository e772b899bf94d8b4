"""The operator's view behind ``GET /api/manage/status``: point reads and one small partition, never a scan.

Each section is one function of :class:`StatusSources`; a new one (24-hour counters, a dashboard's
numbers) is one more entry in :data:`SECTIONS`. A section that cannot be read says so in its place
and the others still answer, so the route shows what it can while storage or a queue is failing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.messages import BACKFILL_QUEUE, REFERRAL_EVENTS_QUEUE
from shared.store.backfill import BackfillStore
from shared.store.clients import POISON_SUFFIX
from shared.store.failures import RecentFailures
from shared.store.state import StateStore
from shared.sync.reconcile import WATERMARK as RECONCILE_WATERMARK

log = logging.getLogger("cosell.status")

QUEUES = (
    REFERRAL_EVENTS_QUEUE,
    REFERRAL_EVENTS_QUEUE + POISON_SUFFIX,
    BACKFILL_QUEUE,
    BACKFILL_QUEUE + POISON_SUFFIX,
)


@dataclass
class StatusSources:
    state: StateStore
    backfill: BackfillStore
    failures: RecentFailures
    queue_depth: Callable[[str], int]  # approximate messages, invisible ones included; 0 for a missing queue
    crm_kind: str


def backfill(sources: StatusSources) -> dict[str, Any] | None:
    job = sources.backfill.current()
    return job.to_json() if job else None


def crm_poll(sources: StatusSources) -> dict[str, Any] | None:
    row = sources.state.last_run(f"crm-{sources.crm_kind}")
    if not row:
        return None
    return {
        "lastRunAt": row.get("last_run_at") or None,
        "watermark": row.get("value") or None,
        "outcomes": _json(row.get("last_outcomes")),
        "apiCalls": _json(row.get("last_api_calls")),
    }


def reconcile(sources: StatusSources) -> dict[str, Any] | None:
    row = sources.state.last_run(RECONCILE_WATERMARK)
    if not row:
        return None
    return {
        "lastRunAt": row.get("last_run_at") or None,
        "watermark": row.get("value") or None,
        "seen": row.get("last_seen"),
        "queued": row.get("last_queued"),
        "apiCalls": _json(row.get("last_api_calls")),
    }


def queues(sources: StatusSources) -> dict[str, Any]:
    return {name: {"messages": sources.queue_depth(name)} for name in QUEUES}


def recent_failures(sources: StatusSources) -> list[dict[str, Any]]:
    return [failure.to_json() for failure in sources.failures.recent()]


SECTIONS: dict[str, Callable[[StatusSources], Any]] = {
    "backfill": backfill,
    "crmPoll": crm_poll,
    "reconcile": reconcile,
    "queues": queues,
    "recentFailures": recent_failures,
}


def status(sources: StatusSources, *, now: dt.datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "generatedAt": (now or dt.datetime.now(dt.UTC)).isoformat(),
        "crm": sources.crm_kind,
    }
    for name, section in SECTIONS.items():
        try:
            body[name] = section(sources)
        except Exception as exc:  # one unreadable part must not hide the rest
            log.warning("Status: %s could not be read (%s)", name, type(exc).__name__)
            body[name] = {"error": f"could not be read ({type(exc).__name__}); see the app's log"}
    return body


def _json(value: object) -> Any:
    if not isinstance(value, str) or not value:
        return {}
    try:
        return json.loads(value)
    except ValueError:
        return {}

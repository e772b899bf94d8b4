"""The queue messages: ``referral-events`` (which referral to sync, and why) and ``backfill-pages``."""

from __future__ import annotations

import datetime as dt
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

REFERRAL_EVENTS_QUEUE = "referral-events"
# One message per page of a backfill's referral list (shared/sync/backfill.py); a queue of its own so
# listing never waits behind referral syncs, and its poison queue says which backfill stopped.
BACKFILL_QUEUE = "backfill-pages"

HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
_MAX_DEQUEUE_OVERRIDE = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
DEFAULT_MAX_DEQUEUE_COUNT = 5  # the Storage extension's default


class ReferralMessage(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    referral_id: str = Field(min_length=1, max_length=100)
    event_name: str = "referral-updated"
    source: str = "webhook"  # webhook | reconcile | resync | replay | backfill
    resource_change_utc_date: str | None = None
    received_at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    # How many times a throttled remote sent this message back to wait (see shared/sync/worker.py).
    deferrals: int = Field(0, ge=0)
    # The backfill job that queued it: the worker counts it as synced or failed for that job, once.
    # Kept when the message is deferred or replayed from the poison queue.
    backfill_job: str | None = Field(None, min_length=1, max_length=64)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


class BackfillPageMessage(BaseModel):
    """List page ``page`` (1-based) of backfill ``job_id``; the link to it is in the job's checkpoint."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    job_id: str = Field(min_length=1, max_length=64)
    page: int = Field(ge=1)
    deferrals: int = Field(0, ge=0)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


class BadMessage(ValueError):
    pass


def parse(body: bytes | str) -> ReferralMessage:
    try:
        data: Any = json.loads(body)
        return ReferralMessage.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise BadMessage(f"queue message is not a referral message: {exc}") from exc


def parse_page(body: bytes | str) -> BackfillPageMessage:
    try:
        return BackfillPageMessage.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise BadMessage(f"queue message is not a backfill page message: {exc}") from exc


def max_dequeue_count() -> int:
    """The attempts the Functions host gives a message before the poison queue, as the host resolves it.

    An app setting ``AzureFunctionsJobHost__extensions__queues__maxDequeueCount`` wins over host.json,
    which wins over the extension's default. The worker needs it to know an attempt is the last one.
    """
    override = os.environ.get(_MAX_DEQUEUE_OVERRIDE, "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override)
    return _host_json_max_dequeue_count()


@lru_cache(maxsize=1)
def _host_json_max_dequeue_count() -> int:
    try:
        document = json.loads(HOST_JSON.read_text(encoding="utf-8"))
        value = document["extensions"]["queues"]["maxDequeueCount"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_DEQUEUE_COUNT
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_DEQUEUE_COUNT

"""The message on queue ``referral-events``: which referral to sync, and why."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

REFERRAL_EVENTS_QUEUE = "referral-events"


class ReferralMessage(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    referral_id: str = Field(min_length=1, max_length=100)
    event_name: str = "referral-updated"
    source: str = "webhook"  # webhook | reconcile | resync | replay
    resource_change_utc_date: str | None = None
    received_at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    # How many times a throttled remote sent this message back to wait (see functions/referral_to_crm.py).
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

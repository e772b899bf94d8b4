"""When a timer is late: the n-th run a schedule promised after a moment, for the status route's health.

The schedules are the Functions host's (``CRM_POLL_SCHEDULE``, ``RECONCILE_SCHEDULE``): six-field
NCRONTAB with seconds first, day-of-month and day-of-week ANDed, in UTC, or a TimeSpan ``hh:mm:ss``.
croniter does the calendar arithmetic, as in the sandbox's host.
"""

from __future__ import annotations

import datetime as dt
import re

from croniter import croniter

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


def nth_run_after(schedule: str, moment: dt.datetime, n: int) -> dt.datetime | None:
    """The ``n``-th occurrence strictly after ``moment``; None for a schedule this cannot read."""
    text = " ".join(schedule.split())
    span = _TIMESPAN.match(text)
    if span:
        days, hours, minutes, seconds = (int(part or 0) for part in span.groups())
        step = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        return moment + step * n if step > dt.timedelta(0) else None
    if len(text.split(" ")) != 6 or not croniter.is_valid(text, second_at_beginning=True):
        return None
    runs = croniter(text, moment.astimezone(dt.UTC), second_at_beginning=True, day_or=False)
    found: dt.datetime | None = None
    for _ in range(n):
        found = runs.get_next(dt.datetime)
    return found

"""Timer schedules: 6-field NCRONTAB (``{second} {minute} {hour} {day} {month} {day-of-week}``) or a TimeSpan.

croniter does the calendar arithmetic. It is told the seconds field comes first, and that day-of-month
and day-of-week are ANDed (NCrontab's behaviour) rather than ORed as in Vixie cron. Times are UTC,
as on Linux plans where ``WEBSITE_TIME_ZONE`` is not honoured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from .settings import SettingsError, parse_timespan


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB expression with seconds."""

    expression: str

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (UTC)."""
        result: datetime = croniter(
            self.expression, moment.astimezone(UTC), second_at_beginning=True, day_or=False
        ).get_next(datetime)
        return result


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule (``hh:mm:ss``): every interval, counted from the previous occurrence."""

    seconds: float

    def next_after(self, moment: datetime) -> datetime:
        return moment.astimezone(UTC) + timedelta(seconds=self.seconds)


Schedule = CronSchedule | IntervalSchedule


def parse_schedule(expression: str) -> Schedule:
    """Parse a resolved schedule, failing with the Functions host's wording for bad ones."""
    text = " ".join(expression.split())
    fields = text.split(" ")
    if len(fields) == 6:
        if croniter.is_valid(text, second_at_beginning=True):
            return CronSchedule(text)
    elif len(fields) == 1 and ":" in text:
        try:
            seconds = parse_timespan(text, "schedule")
        except SettingsError:
            seconds = 0.0
        if seconds > 0:
            return IntervalSchedule(seconds)
    raise ValueError(
        f"The schedule expression '{expression}' was not recognized as a valid cron expression or timespan string "
        "(NCRONTAB needs 6 fields: {second} {minute} {hour} {day} {month} {day-of-week})"
    )

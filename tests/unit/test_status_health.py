"""Health, links and late timers in the status report: pure rules over stand-in sources (no storage)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.crm.links import RecordLinks
from shared.schedule import nth_run_after
from shared.status import StatusSources, status
from shared.store.counters import Last24Hours
from shared.store.failures import Failure
from shared.store.queues import QueueDepth

NOW = dt.datetime(2026, 11, 21, 10, 30, tzinfo=dt.UTC)


@dataclass
class Stand:
    """State, backfill and failures stores answering what a test put in them."""

    runs: dict[str, dict[str, object]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    job: Any = None

    def last_run(self, name: str) -> dict[str, object]:
        return self.runs.get(name, {})

    def current(self) -> Any:
        return self.job

    def recent(self) -> list[Failure]:
        return self.failures


def sources(stand: Stand, depths: dict[str, int] | None = None, **changes: Any) -> StatusSources:
    depths = depths or {}
    values: dict[str, Any] = {
        "state": stand,
        "backfill": stand,
        "failures": stand,
        "queue_depth": lambda name: QueueDepth(depths.get(name, 0), 30 if depths.get(name) else None),
        "crm_kind": "dynamics",
        "poll_schedule": "0 */1 * * * *",
        "reconcile_schedule": "0 */15 * * * *",
        "links": RecordLinks(
            dataverse_url="https://contoso.crm.dynamics.com",
            referral_template="https://partner.microsoft.com/dashboard/referrals/v2/inbox?id={id}",
        ),
    }
    values.update(changes)
    return StatusSources(**values)


def poll_at(moment: dt.datetime) -> dict[str, object]:
    return {"value": "w", "last_run_at": moment.isoformat(), "last_duration_ms": 812}


def test_a_quiet_app_that_polls_on_time_is_healthy() -> None:
    stand = Stand(runs={"crm-dynamics": poll_at(NOW - dt.timedelta(minutes=2))})
    body = status(sources(stand), now=NOW)
    assert body["health"] == {"state": "healthy", "reasons": []}
    assert body["crmPoll"]["durationMs"] == 812


def test_attention_names_each_cause() -> None:
    stand = Stand(
        runs={
            "crm-dynamics": poll_at(NOW - dt.timedelta(minutes=4)),  # three one-minute runs missed
            "reconcile-partner-center": poll_at(NOW - dt.timedelta(minutes=20)),  # fine for every 15 min
        },
        failures=[
            Failure("r-new", "Currency refused", (NOW - dt.timedelta(hours=1)).isoformat()),
            Failure("r-old", "Gone", (NOW - dt.timedelta(days=3)).isoformat()),  # older than 24 h: history
        ],
    )
    body = status(sources(stand, {"referral-events-poison": 2}), now=NOW)
    assert body["health"]["state"] == "attention"
    assert body["health"]["reasons"] == [
        "2 message(s) in referral-events-poison: fix the cause, then replay them (Replay poison).",
        "1 referral sync(s) failed in the last 24 h and have not synced since.",
        "The CRM poll last ran at 2026-11-21T10:26:00+00:00: it has missed 3 runs of CRM_POLL_SCHEDULE "
        "(0 */1 * * * *).",
    ]


def test_a_stuck_queue_and_a_stopped_backfill_need_attention() -> None:
    @dataclass
    class Job:
        def to_json(self) -> dict[str, Any]:
            return {"jobId": "j", "state": "stopped", "failed": 0, "lastError": "Partner Center answered 503"}

    stand = Stand(job=Job())
    body = status(
        sources(stand, queue_depth=lambda name: QueueDepth(5, 1800) if name == "referral-events" else QueueDepth(0)),
        now=NOW,
    )
    assert body["health"]["reasons"] == [
        "The oldest message in referral-events has waited 30 min: the worker is not keeping up, or not running.",
        "The backfill stopped: Partner Center answered 503. Resume it.",
    ]
    assert body["queues"]["referral-events"] == {"messages": 5, "oldestAgeSeconds": 1800}


def test_failures_link_to_the_crm_record_and_the_referral() -> None:
    stand = Stand(
        failures=[
            Failure(
                "0c5b8f3e-1111-4e8e-9d3a-6b2f0f6d2a11",
                "refused",
                NOW.isoformat(),
                crm_kind="dynamics",
                crm_entity="opportunity",
                crm_id="9f1c2d3e-0000-4a4a-8b8b-000000000001",
            ),
            Failure("r2", "refused", NOW.isoformat(), crm_kind="salesforce", crm_entity="lead", crm_id="00Q5e00000Abc"),
        ]
    )
    salesforce = RecordLinks(
        dataverse_url="https://contoso.crm.dynamics.com", salesforce_url="https://contoso.my.salesforce.com"
    )
    first, second = status(sources(stand, links=salesforce), now=NOW)["recentFailures"]
    assert first["crmUrl"] == (
        "https://contoso.crm.dynamics.com/main.aspx?pagetype=entityrecord&etn=opportunity"
        "&id=9f1c2d3e-0000-4a4a-8b8b-000000000001"
    )
    assert second["crmUrl"] == "https://contoso.my.salesforce.com/lightning/r/Lead/00Q5e00000Abc/view"
    assert first["partnerCenterUrl"] is None  # no template given here
    with_template = status(sources(stand), now=NOW)["recentFailures"][0]
    assert with_template["partnerCenterUrl"] == (
        "https://partner.microsoft.com/dashboard/referrals/v2/inbox?id=0c5b8f3e-1111-4e8e-9d3a-6b2f0f6d2a11"
    )


def test_links_escape_what_came_from_data_and_give_none_when_unknown() -> None:
    links = RecordLinks(dataverse_url="https://x.crm.dynamics.com", referral_template="https://pc/r?id={id}")
    assert links.crm_record("dynamics", "opportunity", "a&b=c#d") == (
        "https://x.crm.dynamics.com/main.aspx?pagetype=entityrecord&etn=opportunity&id=a%26b%3Dc%23d"
    )
    assert links.referral("x y/z") == "https://pc/r?id=x%20y%2Fz"
    assert links.crm_record("dynamics", "opportunity", "") is None
    assert links.crm_record("dynamics", "account", "1") is None  # only the records the sync writes
    assert links.crm_record("salesforce", "opportunity", "1") is None  # no Salesforce URL configured


def test_syncs_24h_is_reported_as_the_counters_give_it() -> None:
    counts = Last24Hours({"pc-to-crm": {"created": 3}}, [{"hour": "h", "synced": 3, "unchanged": 0, "failed": 0}])
    body = status(sources(Stand(), syncs=lambda now: counts, version="0.1.0+4f2c9e1"), now=NOW)
    assert body["syncs24h"] == {
        "byDirection": {"pc-to-crm": {"created": 3}},
        "hourly": [{"hour": "h", "synced": 3, "unchanged": 0, "failed": 0}],
    }
    assert body["version"] == "0.1.0+4f2c9e1"


@pytest.mark.parametrize(
    ("schedule", "n", "expected"),
    [
        ("0 */1 * * * *", 3, dt.datetime(2026, 11, 21, 10, 33, tzinfo=dt.UTC)),
        ("*/10 * * * * *", 1, dt.datetime(2026, 11, 21, 10, 30, 10, tzinfo=dt.UTC)),
        ("0 0 0 1 1 *", 1, dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
        ("00:05:00", 3, dt.datetime(2026, 11, 21, 10, 45, tzinfo=dt.UTC)),
        ("not a schedule", 3, None),
        ("0 */1 * * *", 3, None),  # five fields: not NCRONTAB
    ],
)
def test_nth_run_after_reads_ncrontab_and_timespans(schedule: str, n: int, expected: dt.datetime | None) -> None:
    assert nth_run_after(schedule, NOW, n) == expected

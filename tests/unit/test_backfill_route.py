"""POST /api/manage/backfill and GET /api/manage/status: what each body is answered, and the attempt count.

The backfill itself is a stand-in here (tests/integration/test_backfill.py runs the real one): these
tests are about the route's validation and answers.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ServiceRequestError

from functions.backfill import backfill
from functions.status import status
from shared import messages, services
from shared.store.backfill import BackfillJob
from shared.sync.backfill import BackfillBusy, NothingToResume, parse_since

URL = "http://localhost:7071/api/manage/backfill"


@dataclass
class Runner:
    calls: list[tuple[str, Any, bool]] = field(default_factory=list)
    busy: BackfillJob | None = None

    def start(self, since: dt.datetime | None, *, force: bool = False) -> BackfillJob:
        self.calls.append(("start", since, force))
        if self.busy is not None and not force:
            raise BackfillBusy(self.busy)
        return BackfillJob(job_id="job-1", since=since.isoformat() if since else "", started_at="2026-11-21T10:00:00")

    def resume(self) -> BackfillJob:
        self.calls.append(("resume", None, False))
        raise NothingToResume("No backfill has been started.")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> Runner:
    stub = Runner()
    monkeypatch.setattr(services, "backfill", lambda: stub)
    return stub


def post(body: bytes | str | dict[str, Any]) -> tuple[int, dict[str, Any], func.HttpResponse]:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body if isinstance(body, bytes) else body.encode()
    response = backfill(func.HttpRequest("POST", URL, headers={}, body=raw))
    return response.status_code, json.loads(response.get_body()), response


def test_an_empty_body_backfills_everything_and_answers_202_with_the_job(runner: Runner) -> None:
    code, body, response = post(b"")
    assert code == 202
    assert body == {
        "jobId": "job-1",
        "status": "listing",
        "since": None,
        "startedAt": "2026-11-21T10:00:00",
        "resumed": False,
        "progress": "http://localhost:7071/api/manage/status",
    }
    assert response.headers["Location"] == "http://localhost:7071/api/manage/status"
    assert runner.calls == [("start", None, False)]


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2024-01-01", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
        ("2024-01-01T08:30:00Z", dt.datetime(2024, 1, 1, 8, 30, tzinfo=dt.UTC)),
        ("2024-01-01T10:30:00+02:00", dt.datetime(2024, 1, 1, 8, 30, tzinfo=dt.UTC)),
        ("2024-01-01T08:30:00", dt.datetime(2024, 1, 1, 8, 30, tzinfo=dt.UTC)),  # no offset: UTC
    ],
)
def test_since_takes_a_date_or_a_date_time(runner: Runner, since: str, expected: dt.datetime) -> None:
    code, body, _ = post({"since": since})
    assert code == 202
    ((_, given, _),) = runner.calls
    assert given == expected
    assert dt.datetime.fromisoformat(body["since"]) == expected


@pytest.mark.parametrize(
    "since",
    ["yesterday", "2024-13-01", "", "   ", 20240101, True, ["2024-01-01"], "2999-01-01", "2024-01-01T25:00:00Z"],
)
def test_a_bad_since_is_a_400_naming_it_and_starts_nothing(runner: Runner, since: object) -> None:
    code, body, _ = post({"since": since})
    assert code == 400
    assert body["error"]["status"] == 400
    assert body["error"]["reason"].startswith('"since" must be an ISO 8601 date or date-time in the past')
    assert runner.calls == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[1, 2]", "Body must be a JSON object."),
        (b"{not json", "Body must be a JSON object."),
        ({"sinec": "2024-01-01"}, "Unknown field(s) sinec; the body takes since, resume, force."),
        ({"force": "yes"}, '"force" must be true or false.'),
        ({"resume": 1}, '"resume" must be true or false.'),
        (
            {"resume": True, "since": "2024-01-01"},
            '"resume" goes on with the current job as it was started: send it alone.',
        ),
    ],
)
def test_a_malformed_body_is_a_400_saying_why(runner: Runner, raw: bytes | dict[str, Any], reason: str) -> None:
    code, body, _ = post(raw)
    assert (code, body) == (400, {"error": {"status": 400, "reason": reason}})
    assert runner.calls == []


def test_a_second_backfill_while_one_runs_is_a_409_with_the_running_job(runner: Runner) -> None:
    runner.busy = BackfillJob(job_id="job-0", started_at="2026-11-21T09:00:00", listed=10, synced=4)
    code, body, _ = post({})
    assert code == 409
    error = body["error"]
    assert error["jobId"] == "job-0"
    assert error["reason"] == "A backfill is already running: job job-0 (listing, 40.0% done)."
    assert (error["backfill"]["listed"], error["backfill"]["synced"], error["backfill"]["state"]) == (10, 4, "listing")
    forced_code, forced, _ = post({"force": True})
    assert (forced_code, forced["jobId"]) == (202, "job-1")
    assert runner.calls[-1] == ("start", None, True)


def test_resume_without_a_job_is_a_409_saying_so(runner: Runner) -> None:
    code, body, _ = post({"resume": True})
    assert (code, body["error"]["reason"]) == (409, "No backfill has been started.")


def test_missing_partner_center_settings_are_a_503_naming_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's configuration is at fault, not the request: 503, as every admin route answers it."""

    def missing() -> None:
        raise services.ConfigurationError(
            "Missing app settings: PARTNER_CENTER_REFRESH_TOKEN", ["PARTNER_CENTER_REFRESH_TOKEN"]
        )

    monkeypatch.setattr(services, "backfill", missing)
    code, body, _ = post({})
    assert (code, body["error"]["reason"]) == (503, "Missing app settings: PARTNER_CENTER_REFRESH_TOKEN")
    assert body["error"]["settings"] == ["PARTNER_CENTER_REFRESH_TOKEN"]


def test_storage_down_is_a_503_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    class Down:
        def start(self, since: object, *, force: bool = False) -> None:
            raise ServiceRequestError("connection refused")

    monkeypatch.setattr(services, "backfill", Down)
    code, body, _ = post({})
    assert code == 503
    assert body["error"]["reason"].startswith("Storage failed:")
    monkeypatch.setattr(services, "status_sources", lambda: Down().start(None))
    response = status(func.HttpRequest("GET", "http://localhost/api/manage/status", headers={}, body=b""))
    assert (response.status_code, json.loads(response.get_body())["error"]["status"]) == (503, 503)


def test_parse_since_reads_the_past_only() -> None:
    assert parse_since(None) == (None, "")
    assert parse_since("2020-02-29")[0] == dt.datetime(2020, 2, 29, tzinfo=dt.UTC)
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    assert parse_since(tomorrow)[0] is None


def test_the_last_attempt_is_the_hosts_max_dequeue_count(monkeypatch: pytest.MonkeyPatch) -> None:
    host = json.loads(messages.HOST_JSON.read_text())
    monkeypatch.delenv("AzureFunctionsJobHost__extensions__queues__maxDequeueCount", raising=False)
    assert messages.max_dequeue_count() == host["extensions"]["queues"]["maxDequeueCount"] == 5
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__queues__maxDequeueCount", "3")
    assert messages.max_dequeue_count() == 3  # an app setting wins over host.json, as in the host

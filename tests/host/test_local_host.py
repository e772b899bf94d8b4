"""The local functions host (``python -m sandbox.host``): pure parts in-process; behaviour (marked ``e2e``) through a
real subprocess against a real Azurite (see conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import random
import re
import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import pytest

from sandbox.azurite import Azurite
from sandbox.hostproc import start_host
from sandbox.localhost.functions import FunctionSpec, RetryPolicy, TimerSpec, index_app
from sandbox.localhost.http_app import compile_route
from sandbox.localhost.invoker import Invoker, queue_bodies
from sandbox.localhost.queues import Backoff, QueueListener, QueueWatcher
from sandbox.localhost.schedule import CronSchedule, IntervalSchedule, parse_schedule
from sandbox.localhost.settings import (
    HostOptions,
    QueueOptions,
    Settings,
    SettingsError,
    load_settings,
    parse_host_json,
    parse_timespan,
)
from sandbox.localhost.storage import MessageDecodeError, QueueStorage, decode_message, encode_message
from sandbox.localhost.timers import TimerRunner
from sandbox.ports import port_open
from tests.host.conftest import FILE_ONLY, SampleHost, host_env

# -- pure parts (no processes) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:00", 0), ("00:00:01", 1), ("00:01:00", 60), ("01:00", 3600), ("1.02:00:00", 93600), ("00:00:00.25", 0.25)],
)
def test_parse_timespan(text: str, seconds: float) -> None:
    assert parse_timespan(text, "x") == pytest.approx(seconds)


def test_host_json_defaults_and_overrides() -> None:
    defaults = parse_host_json({"version": "2.0"})
    assert (defaults.queues.batch_size, defaults.queues.max_dequeue_count) == (16, 5)
    assert (defaults.queues.max_polling_interval, defaults.queues.visibility_timeout) == (60, 0)
    assert defaults.queues.message_encoding == "base64"
    assert defaults.route_prefix == "api"
    options = parse_host_json(
        {
            "functionTimeout": "00:10:00",
            "extensions": {"Queues": {"BatchSize": 2, "maxDequeueCount": 3, "messageEncoding": "None"}},
        }
    )
    assert options.queues.batch_size == 2
    assert (options.queues.max_dequeue_count, options.queues.message_encoding) == (3, "none")
    assert options.function_timeout == 600
    with pytest.raises(SettingsError, match="batchSize"):
        parse_host_json({"extensions": {"queues": {"batchSize": 64}}})
    # newBatchThreshold: (batchSize / 2) x processor count unless set (QueuesOptions.NewBatchThreshold).
    assert options.queues.new_batch_threshold == 1 * (os.cpu_count() or 1)
    assert parse_host_json({"extensions": {"queues": {"newBatchThreshold": 0}}}).queues.new_batch_threshold == 0
    with pytest.raises(SettingsError, match="visibilityTimeout"):
        parse_host_json({"extensions": {"queues": {"visibilityTimeout": 30}}})


class _Centre(random.Random):
    """Jitter factor 1.0: the back-off's middle path."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def test_idle_polling_backs_off_as_the_storage_extension_does_and_a_message_resets_it() -> None:
    backoff = Backoff(2.0, rng=_Centre())
    # RandomizedExponentialBackoffStrategy(min 100 ms, max, delta 100 ms): min + delta x 2^(n-1) x jitter.
    delays = [round(backoff.next_delay(found_messages=False), 3) for _ in range(8)]
    assert delays == [0.1, 0.2, 0.3, 0.5, 0.9, 1.7, 2.0, 2.0]
    assert backoff.next_delay(found_messages=True) == 0.1
    jittered = Backoff(60.0, rng=random.Random(7))
    steps = [jittered.next_delay(found_messages=False) for _ in range(4)]
    assert 0.1 + 0.8 * 0.4 <= steps[3] <= 0.1 + 1.2 * 0.4  # the fourth delay: 100 ms + 400 ms +-20 %


class _EmptyQueue:
    """A queue with nothing in it that counts the receive calls (no storage account needed)."""

    def __init__(self) -> None:
        self.receives = 0
        self.polled = threading.Condition()

    def receive_messages(self, **_: Any) -> list[Any]:
        with self.polled:
            self.receives += 1
            self.polled.notify_all()
        return []

    def wait_receives(self, count: int, timeout: float = 10.0) -> bool:
        with self.polled:
            return self.polled.wait_for(lambda: self.receives >= count, timeout=timeout)


class _OneQueueStorage:
    def __init__(self, queue: _EmptyQueue) -> None:
        self._queue = queue

    def queue(self, connection_string: str, queue_name: str, *, create: bool = True) -> _EmptyQueue:
        return self._queue


class _Asleep(Backoff):
    """An idle listener that would not poll again for an hour."""

    def next_delay(self, found_messages: bool) -> float:
        return 3600.0


def test_a_queue_output_of_the_same_host_wakes_the_idle_listener_at_once() -> None:
    """SharedQueueWatcher: the listener is in an hour's back-off, so a second poll can only come from the notice."""
    queue, watcher = _EmptyQueue(), QueueWatcher()
    settings = Settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    spec = index_app(_one_queue_app(), settings).functions["listen"]
    options = QueueOptions(batch_size=4, new_batch_threshold=2, max_polling_interval=3600.0)
    invoker = Invoker(QueueStorage(), HostOptions(), ".")
    storage: Any = _OneQueueStorage(queue)
    listener = QueueListener(spec, invoker, storage, options, watcher=watcher, backoff=_Asleep(3600.0))
    listener.start()
    try:
        assert queue.wait_receives(1)
        watcher.notify("UseDevelopmentStorage=true", "other-queue")  # a message for another queue: no poll
        assert not queue.wait_receives(2, timeout=0.5)
        watcher.notify("UseDevelopmentStorage=true", "events")
        assert queue.wait_receives(2)
    finally:
        listener.stop()
        listener.join(5)


def _one_queue_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="events", connection="AzureWebJobsStorage")
    def listen(msg: func.QueueMessage) -> None:
        return None

    return app


def test_local_settings_fill_only_unset_names(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"Values": {"A": "file", "B": "file", "FLAG": True, "N": 3}}), encoding="utf-8"
    )
    environ = {"B": "env"}
    settings, from_file = load_settings(tmp_path, environ)
    assert environ == {"B": "env", "A": "file", "FLAG": "true", "N": "3"}
    assert sorted(from_file) == ["A", "FLAG", "N"]
    assert settings.resolve("%A%-%B%") == "file-env"
    assert settings.resolve("%a%") == "file"  # .NET configuration is case-insensitive
    with pytest.raises(SettingsError, match="MISSING"):
        settings.resolve("%MISSING%")


def _route(template: str) -> Any:
    spec = FunctionSpec(name=template, trigger_type="httpTrigger", trigger_arg="req", user_function=lambda req: None)
    return compile_route(spec, template)


def test_route_templates() -> None:
    assert _route("items/{id}").match("items/42") == {"id": "42"}
    assert _route("items/{id}").match("ITEMS/a%20b") == {"id": "a b"}
    assert _route("items/{id}").match("items/1/more") is None
    assert _route("items/{id:int}").match("items/x") is None
    assert _route("items/{id?}").match("items") == {}
    assert _route("items/{id=7}").match("items") == {"id": "7"}
    assert _route("files/{*path}").match("files/a/b/c.txt") == {"path": "a/b/c.txt"}
    routes = sorted([_route("items/{id}"), _route("items/special"), _route("{*all}")], key=lambda r: r.precedence)
    assert [r.spec.name for r in routes] == ["items/special", "items/{id}", "{*all}"]


def test_schedules_are_ncrontab_with_seconds_first() -> None:
    start = datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert parse_schedule("*/1 * * * * *").next_after(start) == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert parse_schedule("0 */5 * * * *").next_after(start) == datetime(2024, 1, 1, 0, 5, tzinfo=UTC)
    # NCrontab ANDs day-of-month and day-of-week: the next Friday the 13th.
    assert parse_schedule("0 0 3 13 * Fri").next_after(start) == datetime(2024, 9, 13, 3, tzinfo=UTC)
    assert isinstance(parse_schedule("00:00:30"), IntervalSchedule)
    assert isinstance(parse_schedule(" 0  0 * * * * "), CronSchedule)
    with pytest.raises(ValueError, match="6 fields"):
        parse_schedule("*/5 * * * *")


def test_message_encoding_and_queue_output_values() -> None:
    assert encode_message(b"hi", "base64") == "aGk="
    assert decode_message("aGk=", "base64") == b"hi"
    assert encode_message(b"hi", "none") == "hi"
    with pytest.raises(MessageDecodeError):
        decode_message("not base64!", "base64")
    assert queue_bodies(None) == []
    assert queue_bodies(["a", b"b", func.QueueMessage(body=b"c")]) == [b"a", b"b", b"c"]
    with pytest.raises(TypeError):
        queue_bodies({"not": "allowed"})


def _timer_spec(function: Any, retry: RetryPolicy | None = None, *, run_on_startup: bool = True) -> FunctionSpec:
    expression = "0 0 3 1 1 *"  # never due while the test runs
    spec = FunctionSpec(
        name=function.__name__, trigger_type="timerTrigger", trigger_arg="timer", user_function=function, retry=retry
    )
    spec.wants_context = True
    spec.timer = TimerSpec(expression, parse_schedule(expression), run_on_startup)
    return spec


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_timer_runs_on_startup_and_retries_per_its_policy() -> None:
    invoker = Invoker(QueueStorage(), HostOptions(), ".")
    flaky_calls: list[tuple[bool, int]] = []
    broken_calls: list[int] = []

    def flaky(timer: func.TimerRequest, context: func.Context) -> None:
        flaky_calls.append((timer.past_due, context.retry_context.retry_count))
        if len(flaky_calls) < 3:
            raise RuntimeError("flaky")

    def broken(timer: func.TimerRequest, context: func.Context) -> None:
        broken_calls.append(context.retry_context.retry_count)
        raise RuntimeError("always")

    runners = [
        TimerRunner(_timer_spec(flaky, RetryPolicy("fixed_delay", max_retry_count=5)), invoker),
        TimerRunner(_timer_spec(broken, RetryPolicy("exponential_backoff", 2, 0, 0.01, 0.02)), invoker),
    ]
    for runner in runners:
        runner.start()
    try:
        _wait_for(lambda: len(flaky_calls) == 3 and len(broken_calls) == 3)
        time.sleep(0.1)
    finally:
        for runner in runners:
            runner.stop()
            runner.join(2)
    assert flaky_calls == [(False, 0), (False, 1), (False, 2)]
    assert broken_calls == [0, 1, 2]  # the first run plus max_retry_count retries


def test_invoker_awaits_async_functions_and_flushes_nothing_on_failure() -> None:
    invoker = Invoker(QueueStorage(), HostOptions(), ".")

    async def handler(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"async {req.route_params['id']}")

    spec = FunctionSpec(name="handler", trigger_type="httpTrigger", trigger_arg="req", user_function=handler)
    request = func.HttpRequest("GET", "http://x/api/h/1", route_params={"id": "1"}, body=b"")
    result = invoker.invoke(spec, request, "test")
    assert result.succeeded
    assert result.value.get_body() == b"async 1"
    assert invoker.active == 0


def test_indexing_skips_functions_the_local_host_cannot_run() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="good")
    def good(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    @app.route(route="tabled")
    @app.table_input(arg_name="row", connection="AzureWebJobsStorage", table_name="t")
    def tabled(req: func.HttpRequest, row: str) -> func.HttpResponse:
        return func.HttpResponse(row)

    @app.timer_trigger(arg_name="timer", schedule="*/5 * * * *")
    def five_fields(timer: func.TimerRequest) -> None:
        pass

    @app.queue_trigger(arg_name="msg", queue_name="Bad_Name", connection="AzureWebJobsStorage")
    def bad_queue(msg: func.QueueMessage) -> None:
        pass

    @app.route(route="extra")
    def extra(req: func.HttpRequest, unbound: str) -> func.HttpResponse:
        return func.HttpResponse(unbound)

    @app.route(route="admin/tools", methods=["POST"])
    def admin_tools(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    index = index_app(app, Settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}))
    assert list(index.functions) == ["good", "admin_tools"]
    assert list(index.warnings) == ["admin_tools"]  # served locally, but Azure would refuse the route
    assert "built in routes" in index.warnings["admin_tools"]
    assert "'table'" in index.errors["tabled"]
    assert "6 fields" in index.errors["five_fields"]
    assert "invalid queue name" in index.errors["bad_queue"]
    assert "unbound" in index.errors["extra"]


# -- the host as a subprocess --------------------------------------------------------------------


def token() -> str:
    return uuid.uuid4().hex[:12]


def b64(text: str) -> str:
    """How the host stores ``text`` with the default messageEncoding."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@pytest.mark.e2e
def test_status_lists_functions_and_reports_errored_ones(sample_host: SampleHost) -> None:
    status = httpx.get(sample_host.url("/admin/host/status")).json()
    assert status["state"] == "Running"
    assert {"echo", "enqueue", "worker", "tick", "yearly", "boom"} <= set(status["functions"])
    assert "orphan" not in status["functions"]
    assert "SAMPLE_UNSET_QUEUE" in status["errors"]["orphan"]
    listing = {f["name"]: f for f in httpx.get(sample_host.url("/admin/functions")).json()}
    assert listing["echo"]["trigger"] == "httpTrigger"
    assert listing["worker"] == {
        "name": "worker",
        "trigger": "queueTrigger",
        "queue": sample_host.queue,
        "connection": "AzureWebJobsStorage",
    }
    assert listing["tick"]["trigger"] == "timerTrigger"
    assert listing["tick"]["schedule"] == "*/1 * * * * *"


@pytest.mark.e2e
def test_http_route_params_method_and_query(sample_host: SampleHost) -> None:
    response = httpx.get(sample_host.url("/api/echo/42?a=1&b=x%20y&a=2"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-sample"] == "echo"
    echoed = response.json()
    assert (echoed["method"], echoed["id"], echoed["body"]) == ("GET", "42", "")
    assert echoed["params"] == {"a": "1,2", "b": "x y"}
    assert echoed["url"].endswith("/api/echo/42?a=1&b=x%20y&a=2")
    assert echoed["function_name"] == "echo"
    assert httpx.get(sample_host.url("/api/ECHO/7")).json()["id"] == "7"  # literal segments ignore case


@pytest.mark.e2e
def test_http_body_bytes_round_trip_exactly(sample_host: SampleHost) -> None:
    body = b'{"a": 1}\r\n\x00\xff\xfe raw \xc3\x28 bytes ' + bytes(range(256))
    response = httpx.put(
        sample_host.url("/api/echo/blob"), content=body, headers={"Content-Type": "application/octet-stream"}
    )
    echoed = response.json()
    assert (echoed["method"], echoed["length"]) == ("PUT", len(body))
    assert echoed["sha256"] == hashlib.sha256(body).hexdigest()
    form = b"a=1&b=%20two"  # a form body must reach the function unparsed
    echoed = httpx.post(
        sample_host.url("/api/echo/form"),
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).json()
    assert echoed["sha256"] == hashlib.sha256(form).hexdigest()


@pytest.mark.e2e
def test_http_wrong_method_is_405_and_unknown_route_404(sample_host: SampleHost) -> None:
    response = httpx.delete(sample_host.url("/api/echo/1"))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST, PUT"
    assert httpx.get(sample_host.url("/api/enqueue")).status_code == 405
    assert httpx.get(sample_host.url("/api/nothing-here")).status_code == 404
    assert httpx.get(sample_host.url("/api/echo")).status_code == 404
    assert httpx.get(sample_host.url("/echo/1")).status_code == 404  # outside the route prefix


@pytest.mark.e2e
def test_http_exception_is_500_and_host_keeps_serving(sample_host: SampleHost) -> None:
    response = httpx.get(sample_host.url("/api/boom"))
    assert response.status_code == 500
    assert "kaboom" not in response.text
    assert httpx.get(sample_host.url("/api/echo/after")).status_code == 200
    output = sample_host.process.wait_for_output("Executed 'Functions.boom' (Failed")
    assert "ValueError: kaboom" in output
    assert 'in boom\n    raise ValueError("kaboom")' in output


@pytest.mark.e2e
def test_logs_one_line_per_start_and_end_without_bodies_or_headers(sample_host: SampleHost) -> None:
    secret_header, secret_body = f"header-{token()}", f"body-{token()}"
    echoed = httpx.post(
        sample_host.url("/api/echo/log"), content=secret_body, headers={"Authorization": f"Bearer {secret_header}"}
    ).json()
    invocation = echoed["invocation_id"]
    output = sample_host.process.wait_for_output(f"Id={invocation}, Duration=")
    assert re.search(
        rf"^\[\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\] Executing 'Functions\.echo' "
        rf"\(Reason='[^']+', Id={invocation}\)$",
        output,
        re.MULTILINE,
    )
    assert re.search(rf"Executed 'Functions\.echo' \(Succeeded, Id={invocation}, Duration=\d+ms\)", output)
    assert re.search(r"^\[[^]]+Z\] echo handled id=log$", output, re.MULTILINE)  # user logging shows too
    assert secret_header not in output
    assert secret_body not in output


@pytest.mark.e2e
def test_queue_output_binding_feeds_the_queue_trigger(sample_host: SampleHost) -> None:
    first, second = f"one {token()}", f"two {token()}"
    assert httpx.post(sample_host.url("/api/enqueue"), json={"messages": [first]}).status_code == 202
    assert httpx.post(sample_host.url("/api/enqueue"), json={"messages": [second, second + "!"]}).status_code == 202
    records = sample_host.wait_records("worker", lambda r: r["body"] in (first, second, second + "!"), count=3)
    assert sorted(r["body"] for r in records) == sorted([first, second, second + "!"])
    assert {r["dequeue_count"] for r in records} == {1}
    assert {r["function_name"] for r in records} == {"worker"}
    assert len({r["invocation_id"] for r in records}) == 3


@pytest.mark.e2e
def test_queue_output_is_base64_on_the_wire(sample_host: SampleHost) -> None:
    text = f"parked {token()} ✔"
    assert httpx.post(sample_host.url("/api/park"), content=text.encode()).status_code == 202
    assert b64(text) in sample_host.peek(sample_host.park_queue, base64=False)


@pytest.mark.e2e
def test_queue_output_is_discarded_when_the_function_fails(sample_host: SampleHost) -> None:
    text = f"please fail {token()}"
    assert httpx.post(sample_host.url("/api/park"), content=text).status_code == 500
    assert httpx.post(sample_host.url("/api/park"), content="marker").status_code == 202
    parked = sample_host.peek(sample_host.park_queue)
    assert "marker" in parked
    assert text not in parked


@pytest.mark.e2e
def test_trigger_reads_messages_enqueued_with_the_base64_policy(sample_host: SampleHost) -> None:
    text = f"from the sdk {token()}"
    sample_host.queue_client(sample_host.queue).send_message(text)
    [record] = sample_host.wait_records("worker", lambda r: r["body"] == text)
    assert record["dequeue_count"] == 1


@pytest.mark.e2e
def test_message_that_is_not_base64_goes_straight_to_poison(sample_host: SampleHost) -> None:
    text = f"plain text {token()}!"
    sample_host.queue_client(sample_host.queue, base64=False).send_message(text)
    sample_host.wait_in_queue(f"{sample_host.queue}-poison", text, base64=False)
    assert sample_host.records("worker", lambda r: text in r["body"]) == []


@pytest.mark.e2e
def test_failing_message_is_poisoned_after_max_dequeue_count(sample_host: SampleHost) -> None:
    text = f"please fail {token()}"
    assert httpx.post(sample_host.url("/api/enqueue"), json={"messages": [text]}).status_code == 202
    # Raw peeks: the poison queue also holds the undecodable message from another test.
    sample_host.wait_in_queue(f"{sample_host.queue}-poison", b64(text), base64=False, timeout=15)
    time.sleep(1.5)  # longer than maxPollingInterval: a third attempt would show up now
    attempts = sample_host.records("worker", lambda r: r["body"] == text)
    assert [r["dequeue_count"] for r in attempts] == [1, 2]  # maxDequeueCount is 2 in the sample host.json
    assert b64(text) not in sample_host.peek(sample_host.queue, base64=False)
    output = sample_host.process.wait_for_output("Message has reached MaxDequeueCount of 2")
    assert f"Moving message to queue '{sample_host.queue}-poison'" in output


@pytest.mark.e2e
def test_batch_size_bounds_parallel_messages(sample_host: SampleHost) -> None:
    marker = token()
    bodies = [f"sleep:0.6:{marker}:{i}" for i in range(8)]
    assert httpx.post(sample_host.url("/api/enqueue"), json={"messages": bodies}).status_code == 202
    records = sample_host.wait_records("worker", lambda r: marker in r["body"], count=8, timeout=20)
    overlaps = [sum(1 for o in records if o["started"] <= r["started"] < o["ended"]) for r in records]
    # batchSize 4 and newBatchThreshold 2 in the sample host.json: a new batch once two are left in flight.
    assert 2 <= max(overlaps) <= 6


@pytest.mark.e2e
def test_admin_endpoint_fires_a_timer_function(sample_host: SampleHost) -> None:
    before = len(sample_host.records("yearly"))
    response = httpx.post(sample_host.url("/admin/functions/yearly"), json={"input": ""})
    assert response.status_code == 202
    records = sample_host.wait_records("yearly", count=before + 1)
    assert records[-1]["past_due"] is False


@pytest.mark.e2e
def test_admin_endpoint_fires_a_queue_function_with_the_input(sample_host: SampleHost) -> None:
    text = f"admin input {token()}"
    response = httpx.post(sample_host.url("/admin/functions/worker"), json={"input": text})
    assert response.status_code == 202
    [record] = sample_host.wait_records("worker", lambda r: r["body"] == text)
    assert record["dequeue_count"] == 1


@pytest.mark.e2e
def test_admin_endpoint_rejects_unknown_http_and_errored_functions(sample_host: SampleHost) -> None:
    assert httpx.post(sample_host.url("/admin/functions/nope"), json={"input": ""}).status_code == 404
    assert httpx.post(sample_host.url("/admin/functions/echo"), json={"input": ""}).status_code == 400
    errored = httpx.post(sample_host.url("/admin/functions/orphan"), json={"input": ""})
    assert errored.status_code == 404
    assert "SAMPLE_UNSET_QUEUE" in errored.text
    assert httpx.post(sample_host.url("/admin/functions/yearly"), content=b"{not json").status_code == 400


@pytest.mark.e2e
def test_timer_on_an_every_second_schedule_fires_repeatedly(sample_host: SampleHost) -> None:
    before = len(sample_host.records("tick"))
    ticks = sample_host.wait_records("tick", count=before + 3, timeout=8)[-3:]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(ticks)]
    assert all(0.5 < gap < 1.5 for gap in gaps), gaps
    assert not any(t["past_due"] for t in ticks)


@pytest.mark.e2e
def test_local_settings_fill_unset_settings_and_the_environment_wins(sample_host: SampleHost) -> None:
    values = httpx.get(sample_host.url("/api/settings")).json()
    assert values == {
        "SAMPLE_FROM_FILE": "from-file",
        "SAMPLE_OVERRIDDEN": "from-env",
        "SAMPLE_SCHEDULE": "*/1 * * * * *",
    }
    # AzureWebJobsStorage is UseDevelopmentStorage=true in the file; the queue tests only pass because the
    # environment's explicit Azurite string won.
    assert "Loaded 3 setting(s) from local.settings.json" in sample_host.process.output()


@pytest.mark.e2e
def test_sigterm_stops_gracefully_after_in_flight_work(azurite: Azurite, app_dir: Path, tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    process = start_host(app_dir, host_env(azurite, records, token()), log_path=tmp_path / "host.log", unset=FILE_ONLY)
    try:
        result: dict[str, httpx.Response] = {}
        request = threading.Thread(
            target=lambda: result.setdefault("slow", httpx.get(process.url("/api/slow?seconds=1.5"), timeout=10))
        )
        request.start()
        process.wait_for_output("Executing 'Functions.slow'")
        process.signal(signal.SIGTERM)
        request.join(10)
        assert process.process.wait(10) == 0
        assert (result["slow"].status_code, result["slow"].text) == (200, "done")
        output = process.output()
        assert output.index("Stopping host") < output.index("Executed 'Functions.slow' (Succeeded")
        assert "Host stopped" in output
        assert not port_open("127.0.0.1", process.port)
    finally:
        process.stop()


def test_app_settings_override_host_json_like_the_real_host() -> None:
    from sandbox.localhost.settings import apply_host_overrides, parse_host_json

    document = {"extensions": {"queues": {"visibilityTimeout": "00:00:10", "maxDequeueCount": 5}}}
    settings = {
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
        "azurefunctionsjobhost__Extensions__Queues__batchSize": "2",
        "UNRELATED": "x",
    }
    options = parse_host_json(apply_host_overrides(document, settings)).queues
    assert (options.visibility_timeout, options.batch_size, options.max_dequeue_count) == (0.0, 2, 5)

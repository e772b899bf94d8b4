"""A tiny function app for the local host's tests; every function leaves evidence the tests can read.

Queue and timer functions write one JSON file per invocation into ``SAMPLE_RECORD_DIR``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def record(kind: str, **fields: Any) -> None:
    """Write atomically so a test never reads half a file."""
    directory = Path(os.environ["SAMPLE_RECORD_DIR"])
    path = directory / f"{kind}-{uuid.uuid4().hex}.json"
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"kind": kind, "at": time.time(), **fields}), encoding="utf-8")
    scratch.rename(path)


@app.route(route="echo/{id}", methods=["GET", "POST", "PUT"])
def echo(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    body = req.get_body()
    logging.info("echo handled id=%s", req.route_params.get("id"))
    payload = {
        "method": req.method,
        "id": req.route_params.get("id"),
        "params": dict(req.params),
        "body": body.decode("utf-8", "replace"),
        "sha256": hashlib.sha256(body).hexdigest(),
        "length": len(body),
        "url": req.url,
        "function_name": context.function_name,
        "invocation_id": context.invocation_id,
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json", headers={"X-Sample": "echo"})


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="%SAMPLE_QUEUE%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[Any]) -> func.HttpResponse:
    """Body ``{"messages": [...]}``: one message is set as a str, several as a list."""
    messages = req.get_json()["messages"]
    out.set(messages[0] if len(messages) == 1 else messages)
    return func.HttpResponse(status_code=202)


@app.route(route="park", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="%SAMPLE_PARK_QUEUE%", connection="AzureWebJobsStorage")
def park(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    """Enqueue to a queue nothing consumes, so tests can look at the stored message; "fail" raises after set."""
    text = req.get_body().decode("utf-8")
    out.set(text)
    if "fail" in text:
        raise RuntimeError("failing after setting the output")
    return func.HttpResponse(status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="AzureWebJobsStorage")
def worker(msg: func.QueueMessage, context: func.Context) -> None:
    """Records every attempt; ``sleep:<seconds>`` sleeps, and a body containing "fail" raises."""
    body = msg.get_body().decode("utf-8")
    started = time.time()
    if body.startswith("sleep:"):
        time.sleep(float(body.split(":")[1]))
    record(
        "worker",
        body=body,
        id=msg.id,
        dequeue_count=msg.dequeue_count,
        invocation_id=context.invocation_id,
        function_name=context.function_name,
        started=started,
        ended=time.time(),
    )
    if "fail" in body:
        raise RuntimeError(f"asked to fail: {body}")


@app.timer_trigger(arg_name="timer", schedule="%SAMPLE_SCHEDULE%", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    record("tick", past_due=timer.past_due)


@app.timer_trigger(arg_name="timer", schedule="0 0 3 1 1 *")
def yearly(timer: func.TimerRequest) -> None:
    """Never due during a test run: only the admin endpoint fires it."""
    record("yearly", past_due=timer.past_due)


@app.queue_trigger(arg_name="msg", queue_name="%SAMPLE_UNSET_QUEUE%", connection="AzureWebJobsStorage")
def orphan(msg: func.QueueMessage) -> None:
    """Its queue setting is never set, so this function is in error while the others run."""


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("kaboom")


@app.route(route="settings", methods=["GET"])
def settings(req: func.HttpRequest) -> func.HttpResponse:
    names = ["SAMPLE_FROM_FILE", "SAMPLE_OVERRIDDEN", "SAMPLE_SCHEDULE"]
    return func.HttpResponse(json.dumps({n: os.environ.get(n) for n in names}), mimetype="application/json")


@app.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> str:
    time.sleep(float(req.params.get("seconds", "1")))
    return "done"

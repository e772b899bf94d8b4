"""Admin: import the referrals a partner already has (``POST /api/manage/backfill``), and the page worker.

The route only validates, records the job and queues its first page; the ``backfill_pages`` queue
function lists one page per message (shared/sync/backfill.py). Progress: ``GET /api/manage/status``.
Body: ``{"since": "<ISO date>"}`` (default every referral), ``{"resume": true}`` to go on listing a
stopped job from its checkpoint, ``"force": true`` to start over while one runs.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.failures import answers_failures
from functions.responses import json_body, json_response, problem
from functions.routes import admin_route
from shared import services
from shared.messages import BACKFILL_QUEUE, max_dequeue_count, parse_page
from shared.sync.backfill import BackfillBusy, NothingToResume, parse_since

log = logging.getLogger("cosell.functions.backfill")

bp = func.Blueprint()

_FIELDS = ("since", "resume", "force")


@bp.route(route=admin_route("backfill"), methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_failures  # settings, storage, a refused token: 503/502 naming the settings, one log line
def backfill(req: func.HttpRequest) -> func.HttpResponse:
    body = json_body(req)
    if body is None:
        return problem(400, "Body must be a JSON object.")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        return problem(400, f"Unknown field(s) {', '.join(unknown)}; the body takes {', '.join(_FIELDS)}.")
    for flag in ("resume", "force"):
        if not isinstance(body.get(flag, False), bool):
            return problem(400, f'"{flag}" must be true or false.')
    since, refusal = parse_since(body.get("since"))
    if refusal:
        return problem(400, refusal)
    if body.get("resume") and (since is not None or body.get("force")):
        return problem(400, '"resume" goes on with the current job as it was started: send it alone.')
    try:
        runner = services.backfill()
        job = runner.resume() if body.get("resume") else runner.start(since, force=bool(body.get("force")))
    except BackfillBusy as exc:
        return problem(409, str(exc), jobId=exc.job.job_id, backfill=exc.job.to_json())
    except NothingToResume as exc:
        return problem(409, str(exc))
    status_url = req.url.split("/api/", 1)[0] + "/api/" + admin_route("status")
    answer = {
        "jobId": job.job_id,
        "status": job.phase,
        "since": job.since or None,
        "startedAt": job.started_at,
        "resumed": bool(body.get("resume")),
        "progress": status_url,
    }
    response = json_response(answer, 202)
    response.headers["Location"] = status_url
    return response


@bp.queue_trigger(arg_name="msg", queue_name=BACKFILL_QUEUE, connection="AzureWebJobsStorage")
def backfill_pages(msg: func.QueueMessage) -> None:
    message = parse_page(msg.get_body())
    attempt = getattr(msg, "dequeue_count", None) or 1
    services.backfill().run_page(message, final_attempt=attempt >= max_dequeue_count())

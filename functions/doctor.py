"""Admin: what works and what does not, one line per integration, naming the settings to fix.

The checks live in ``shared.doctor`` (``python -m shared.cli doctor`` prints the same report); this
route only knows this app's own URL, which it tells the webhook-registration check. It answers 200
with the report whatever it found: the findings are the answer, ``"ok"`` says whether any failed.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.failures import answers_failures
from functions.responses import json_response
from functions.routes import admin_route
from functions.webhook_registration import events_url
from shared import doctor as checks
from shared.config import ConfigurationError

log = logging.getLogger("cosell.functions.doctor")

bp = func.Blueprint()


@bp.route(route=admin_route("doctor"), methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_failures
def doctor(req: func.HttpRequest) -> func.HttpResponse:
    try:
        url: str | None = events_url(req, {})
    except ConfigurationError:
        url = None  # invalid settings: the report's first line names them
    report = checks.run(events_url=url)
    failing = [check.name for check in report.checks if check.status == "fail"]
    if failing:
        log.warning("Doctor: failing: %s", ", ".join(failing))
    return json_response(report.to_json())

"""Admin: the operator's view as JSON (``GET /api/manage/status``): health, version, backfill progress, the last
CRM poll and reconcile runs, queue and poison depth with ages, syncs in the last 24 h, the failures not healed
yet. Bounded reads only (shared/status.py); the dashboard (functions/dashboard.py) draws the same report."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.failures import answers_failures
from functions.responses import json_response
from functions.routes import admin_route
from shared import services
from shared.status import status as build

log = logging.getLogger("cosell.functions.status")

bp = func.Blueprint()


@bp.route(route=admin_route("status"), methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_failures  # settings or storage at fault: 503 naming the settings, one log line
def status(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(build(services.status_sources()))

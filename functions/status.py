"""Admin: the operator's view as JSON (``GET /api/manage/status``): backfill progress, the last CRM poll and
reconcile runs, queue and poison depth, recent failures. Bounded reads only (shared/status.py)."""

from __future__ import annotations

import logging

import azure.functions as func
from azure.core.exceptions import AzureError

from functions.responses import json_response, problem
from functions.routes import admin_route
from shared import services
from shared.status import status as build

log = logging.getLogger("cosell.functions.status")

bp = func.Blueprint()


@bp.route(route=admin_route("status"), methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status(req: func.HttpRequest) -> func.HttpResponse:
    try:
        sources = services.status_sources()
    except AzureError as exc:
        log.error("Status: storage is unavailable (%s)", type(exc).__name__)
        return problem(503, "Storage is unavailable; try again.")
    return json_response(build(sources))

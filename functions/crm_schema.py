"""Admin: what the sync needs in the CRM (GET), and create what is missing (POST), idempotently.

GET reads the CRM's metadata only. POST creates only the sync's own missing items and never
changes or deletes what exists; a CRM that refuses (no customizer rights) answers 403 with its own
reason and what was created before it stopped.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.failures import answers_failures
from functions.responses import json_response, problem
from functions.routes import admin_route
from shared import services
from shared.crm.schema import SchemaRefused
from shared.http import ApiError

log = logging.getLogger("cosell.functions.crm_schema")

bp = func.Blueprint()


@bp.route(route=admin_route("crm-schema"), methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_failures
def crm_schema(req: func.HttpRequest) -> func.HttpResponse:
    try:
        schema = services.crm_schema()
        if req.method == "GET":
            return json_response(schema.check().to_json())
        result = schema.apply()
    except SchemaRefused as exc:
        log.warning("The CRM refused to create the schema: %s", exc.reason)
        created = [item.to_json() for item in exc.created]
        return problem(403, f"The CRM refused to create the schema: {exc.reason}", created=created)
    except ApiError as exc:
        log.error("CRM schema call failed: %s", exc)
        return problem(502, f"The CRM's metadata API failed: {exc}")
    log.info("CRM schema: created %d item(s); ready=%s", len(result.created), result.report.ready)
    return json_response(result.to_json())

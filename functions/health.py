"""Liveness: answers without touching any remote, and reveals only what is configured, never values."""

from __future__ import annotations

import azure.functions as func

from functions.responses import json_response
from shared.config import get_settings

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    settings = get_settings()
    configured = {
        "storage": bool(settings.storage_connection or settings.storage_account_name or settings.storage_table_uri),
        "partnerCenter": bool(settings.partner_center_client_id and settings.partner_center_refresh_token),
        "dynamics": bool(settings.dataverse_url and settings.dataverse_client_id),
        "salesforce": bool(settings.salesforce_login_url and settings.salesforce_client_id),
    }
    return json_response({"status": "ok", "crmKind": settings.crm_kind, "configured": configured})

"""Liveness: answers without touching any remote, and reveals only what is configured, never values.

A setting that is invalid or still a placeholder (``<...>`` from local.settings.example.json, an
example GUID, an unresolved Key Vault reference) makes it answer 503 ``{"status": "misconfigured",
"settings": [...]}``, naming them: the app starts either way (an exception while indexing would hide
every function, this one too), and each function refuses the settings it needs by name.
"""

from __future__ import annotations

import azure.functions as func

from functions.responses import json_response
from shared.config import ConfigurationError, get_settings, placeholder_message

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        return json_response({"status": "misconfigured", "settings": exc.settings, "reason": str(exc)}, 503)
    placeholders = settings.placeholders
    configured = {
        "storage": bool(settings.storage_connection or settings.storage_account_name or settings.storage_table_uri),
        "partnerCenter": bool(settings.partner_center_client_id and settings.partner_center_refresh_token),
        "dynamics": bool(settings.dataverse_url and settings.dataverse_client_id),
        "salesforce": bool(settings.salesforce_login_url and settings.salesforce_client_id),
    }
    body = {"status": "ok", "crmKind": settings.crm_kind, "configured": configured}
    if placeholders:
        names = sorted(placeholders)
        reason = placeholder_message(placeholders)
        return json_response({**body, "status": "misconfigured", "settings": names, "reason": reason}, 503)
    return json_response(body)

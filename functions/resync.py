"""Admin: re-sync one record now, both ways as needed, and say what happened.

``{"referralId": "..."}`` syncs the referral into the CRM, then pushes the CRM record's
differences back; ``{"crmId": "..."}`` starts from the CRM record (opportunity, else lead). A referral
that syncs leaves the recent failures (the dashboard's Resync button posts here).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import azure.functions as func

from functions.failures import answers_failures
from functions.responses import json_body, json_response, problem
from functions.routes import admin_route
from shared import services
from shared.http import ApiError, ApiUnavailable, Throttled
from shared.partner_center.ids import is_referral_id
from shared.sync.inbound import PermanentSyncError

log = logging.getLogger("cosell.functions.resync")

bp = func.Blueprint()


@bp.route(route=admin_route("resync"), methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_failures
def resync(req: func.HttpRequest) -> func.HttpResponse:
    body = json_body(req)
    if body is None:
        return problem(400, "Body must be a JSON object.")
    referral_id, crm_id = body.get("referralId"), body.get("crmId")
    if bool(referral_id) == bool(crm_id) or not isinstance(referral_id or crm_id, str):
        return problem(400, 'Send exactly one of "referralId" or "crmId" (a string).')
    if referral_id and not is_referral_id(referral_id):
        return problem(400, '"referralId" must be a Partner Center referral id (a GUID).')
    result: dict[str, Any] = {}
    try:
        if crm_id:
            shared = services.outbound_sync().sync_record(crm_id)
            if shared is None:
                return problem(404, f"No opportunity or lead {crm_id} in the CRM.")
            result["crmToPartnerCenter"] = asdict(shared)
            referral_id = shared.referral_id or None
        if referral_id:
            outcome = services.inbound_sync().sync(referral_id, source="resync")
            result["partnerCenterToCrm"] = asdict(outcome)
            # It synced: whatever failure the status route and the dashboard listed for it is resolved.
            services.recent_failures().resolve(referral_id)
            if not crm_id and outcome.crm_id:
                synced = services.outbound_sync().sync_record(outcome.crm_id, entity=outcome.crm_entity)
                if synced is not None:
                    result["crmToPartnerCenter"] = asdict(synced)
    except PermanentSyncError as exc:
        return problem(422, str(exc), partial=result)
    except Throttled as exc:
        wait = round(exc.retry_after)
        return problem(503, f"{exc.service} is throttling this app; try again in {wait} s.", retryAfter=wait)
    except (ApiError, ApiUnavailable) as exc:
        log.error("Resync failed: %s", exc)
        settings = exc.settings if isinstance(exc, ApiUnavailable) else []
        return problem(502, f"A remote call failed; try again: {exc}", partial=result, settings=settings)
    return json_response(result)

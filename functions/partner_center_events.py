"""Webhook intake: verify Partner Center's signature, enqueue the referral id, answer fast.

No Partner Center or CRM call happens here: the event is only a notification, and Partner Center
gives up on a callback after 10 failed deliveries, so the answer must not depend on them.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.failures import answers_failures
from functions.responses import json_response, problem
from shared import services
from shared.messages import REFERRAL_EVENTS_QUEUE, ReferralMessage
from shared.partner_center.ids import shown
from shared.partner_center.models import WebhookEvent
from shared.partner_center.signature import SignatureError
from shared.partner_center.webhooks import REFERRAL_EVENTS, TEST_EVENT

log = logging.getLogger("cosell.functions.events")

bp = func.Blueprint()

MAX_BODY_BYTES = 1024 * 1024


@bp.route(route="partner-center/events", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.queue_output(arg_name="out", queue_name=REFERRAL_EVENTS_QUEUE, connection="AzureWebJobsStorage")
@answers_failures
def partner_center_events(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    declared = req.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return problem(413, f"Body larger than {MAX_BODY_BYTES} bytes.")
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        return problem(413, f"Body larger than {MAX_BODY_BYTES} bytes.")
    if not body:
        return problem(400, "Empty body: expected a Partner Center event.")

    try:
        services.webhook_verifier().verify(dict(req.headers), body)
    except SignatureError as exc:
        log.warning("Webhook refused (%s): %s", exc.status, exc.reason)
        return problem(exc.status, exc.reason)

    try:
        event = WebhookEvent.model_validate(json.loads(body))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and ValidationError are ValueErrors
        # RecursionError: a deeply nested body; pydantic's message may quote the body: say neither.
        detail = "too deeply nested" if isinstance(exc, RecursionError) else _first_line(exc)
        return problem(400, f"Body is not a Partner Center event: {detail}")

    name = event.event_name.strip().lower()
    if name == TEST_EVENT:
        log.info("Partner Center validation event received")
        return json_response({"status": "ok", "event": TEST_EVENT})
    if name not in REFERRAL_EVENTS:
        log.info("Ignored webhook event %s", shown(name, 60))
        return json_response({"status": "ignored", "event": name[:60]})
    referral_id = event.referral_id
    if not referral_id:
        log.warning("Refused %s: ResourceUri %s does not end in a referral id", name, shown(event.resource_uri))
        return problem(400, "ResourceUri does not end in a referral id (a GUID).")

    message = ReferralMessage(
        referral_id=referral_id,
        event_name=name,
        source="webhook",
        resource_change_utc_date=event.resource_change_utc_date.isoformat() if event.resource_change_utc_date else None,
    )
    out.set(message.to_json())
    log.info("Queued %s for referral %s", name, referral_id)
    # 200, as Microsoft's webhook receiver samples answer; the body says it was queued.
    return json_response({"status": "queued", "referralId": referral_id, "event": name})


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]

"""Admin: show (GET) or register (PUT) this app's events URL with Partner Center."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.failures import answers_failures
from functions.responses import json_body, json_response, problem
from functions.routes import admin_route
from shared import services
from shared.config import get_settings
from shared.http import ApiError
from shared.partner_center.registration import ensure_registration, redact_url

log = logging.getLogger("cosell.functions.registration")

bp = func.Blueprint()

EVENTS_ROUTE = "partner-center/events"


def events_url(req: func.HttpRequest, body: dict[str, object]) -> str:
    """Body ``webhookUrl``, else WEBHOOK_CALLBACK_URL, else this host's events route (+ ``functionKey``)."""
    explicit = body.get("webhookUrl") or get_settings().webhook_callback_url
    if isinstance(explicit, str) and explicit:
        return explicit
    base = req.url.split("/api/", 1)[0]
    url = f"{base}/api/{EVENTS_ROUTE}"
    key = body.get("functionKey")
    return f"{url}?code={key}" if isinstance(key, str) and key else url


@bp.route(route=admin_route("webhook-registration"), methods=["GET", "PUT"], auth_level=func.AuthLevel.FUNCTION)
@answers_failures
def webhook_registration(req: func.HttpRequest) -> func.HttpResponse:
    body = json_body(req) if req.method == "PUT" else {}
    if body is None:
        return problem(400, "Body must be a JSON object.")
    overwrite = body.get("overwrite", False)
    if not isinstance(overwrite, bool):
        return problem(400, '"overwrite" must be true or false.')
    url = events_url(req, body)
    if not url.lower().startswith(("https://", "http://")):
        return problem(400, "webhookUrl must be an absolute http(s) URL.")
    client = services.webhook_registration_client()
    try:
        if req.method == "GET":
            current = client.get()
            return json_response(
                {
                    "registration": None
                    if current is None
                    else {**current.to_wire(), "WebhookUrl": redact_url(current.webhook_url)},
                    "expectedUrl": redact_url(url),
                    "registeredHere": current is not None and current.webhook_url.split("?")[0] == url.split("?")[0],
                }
            )
        result = ensure_registration(
            client, url, overwrite=overwrite, signature_in_ms_header=bool(body.get("signatureInMsHeader", True))
        )
    except ApiError as exc:
        log.error("Webhook registration call failed: %s", exc)
        return problem(502, f"Partner Center Webhooks API failed: {exc}")
    log.info("Webhook registration %s for %s", result.action, redact_url(url))
    return json_response(result.to_json(), 409 if result.action == "conflict" else 200)

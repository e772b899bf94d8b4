"""Admin: move messages that exhausted their retries back from the poison queue.

Use after fixing what made them fail (a setting, a CRM permission, a missing currency). Each
message goes back with ``source: "replay"`` so the audit trail shows it was replayed.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.failures import answers_failures
from functions.responses import json_body, json_response, problem
from functions.routes import admin_route
from shared.config import get_settings
from shared.messages import REFERRAL_EVENTS_QUEUE, BadMessage, parse
from shared.store.clients import POISON_SUFFIX, queue_client

log = logging.getLogger("cosell.functions.replay")

bp = func.Blueprint()


@bp.route(route=admin_route("replay-poison"), methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_failures
def replay_poison(req: func.HttpRequest) -> func.HttpResponse:
    body = json_body(req)
    if body is None:
        return problem(400, "Body must be a JSON object.")
    limit = body.get("max", 100)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        return problem(400, '"max" must be a whole number from 1 to 1000.')
    settings = get_settings()
    poison = queue_client(settings, REFERRAL_EVENTS_QUEUE + POISON_SUFFIX)
    target = queue_client(settings, REFERRAL_EVENTS_QUEUE)
    replayed: list[str] = []
    unreadable = 0
    if not _exists(poison):
        return json_response({"replayed": 0, "referralIds": [], "unreadable": 0})
    while len(replayed) + unreadable < limit:
        batch = list(
            poison.receive_messages(max_messages=min(32, limit - len(replayed) - unreadable), visibility_timeout=60)
        )
        if not batch:
            break
        for item in batch:
            try:
                message = parse(item.content)
            except BadMessage:
                unreadable += 1  # left in the poison queue for a person to look at
                continue
            message.source = "replay"
            target.send_message(message.to_json())
            poison.delete_message(item)
            replayed.append(message.referral_id)
    log.info("Replayed %d poison message(s); %d unreadable left in place", len(replayed), unreadable)
    return json_response({"replayed": len(replayed), "referralIds": replayed, "unreadable": unreadable})


def _exists(client: object) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.get_queue_properties()  # type: ignore[attr-defined]
    except ResourceNotFoundError:
        return False
    return True

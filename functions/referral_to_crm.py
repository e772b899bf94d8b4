"""Queue worker: sync one referral from Partner Center into the CRM.

Failures raise, so the Functions host retries the message (host.json ``maxDequeueCount``) and then
moves it to ``referral-events-poison``; ``POST /api/manage/replay-poison`` puts it back. What
happens around the sync (a throttled remote's wait, a backfill's counting, the recent failures the
status route shows) is shared/sync/worker.py.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import services
from shared.messages import REFERRAL_EVENTS_QUEUE, max_dequeue_count, parse

log = logging.getLogger("cosell.functions.referral_to_crm")

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=REFERRAL_EVENTS_QUEUE, connection="AzureWebJobsStorage")
def referral_to_crm(msg: func.QueueMessage) -> None:
    message = parse(msg.get_body())
    attempt = getattr(msg, "dequeue_count", None) or 1
    log.info("Syncing referral %s (%s, attempt %s)", message.referral_id, message.source, attempt)
    services.referral_worker().handle(message, final_attempt=attempt >= max_dequeue_count())

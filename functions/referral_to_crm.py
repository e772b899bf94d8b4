"""Queue worker: sync one referral from Partner Center into the CRM.

Failures raise, so the Functions host retries the message (host.json ``maxDequeueCount``) and then
moves it to ``referral-events-poison``; ``POST /api/manage/replay-poison`` puts it back. What
happens around the sync (a throttled remote's wait, a backfill's counting, the recent failures the
status route shows) is shared/sync/worker.py. A setting that is missing or still a placeholder is
not a failure either: one log line naming it, and the message back on the queue for a few minutes,
so that fixing the setting is all it takes.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import services
from shared.config import ConfigurationError
from shared.messages import REFERRAL_EVENTS_QUEUE, max_dequeue_count, parse
from shared.sync.worker import MAX_DEFERRALS

log = logging.getLogger("cosell.functions.referral_to_crm")

bp = func.Blueprint()

CONFIGURATION_RETRY_SECONDS = 300  # how long a message waits for a setting to be fixed


@bp.queue_trigger(arg_name="msg", queue_name=REFERRAL_EVENTS_QUEUE, connection="AzureWebJobsStorage")
def referral_to_crm(msg: func.QueueMessage) -> None:
    message = parse(msg.get_body())
    attempt = getattr(msg, "dequeue_count", None) or 1
    log.info("Syncing referral %s (%s, attempt %s)", message.referral_id, message.source, attempt)
    try:
        services.referral_worker().handle(message, final_attempt=attempt >= max_dequeue_count())
    except ConfigurationError as exc:
        if message.deferrals >= MAX_DEFERRALS:
            raise
        later = message.model_copy(update={"deferrals": message.deferrals + 1})
        services.enqueue(later, delay_seconds=CONFIGURATION_RETRY_SECONDS)
        log.error(
            "Referral %s not synced: %s; back on the queue in %d s",
            message.referral_id,
            exc,
            CONFIGURATION_RETRY_SECONDS,
        )

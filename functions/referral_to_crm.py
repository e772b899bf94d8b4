"""Queue worker: sync one referral from Partner Center into the CRM.

Failures raise, so the Functions host retries the message (host.json ``maxDequeueCount``) and then
moves it to ``referral-events-poison``; ``POST /api/manage/replay-poison`` puts it back.

A remote that asks for a longer wait than an in-call retry may take (Dataverse service protection
can ask for minutes) is not a failure: the message goes back on the queue, invisible for exactly
that long, instead of burning the host's attempts and landing in poison. A setting that is missing
or still a placeholder is treated the same way (one log line naming it, the message back on the
queue for a few minutes), so that fixing the setting is all it takes.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import services
from shared.config import ConfigurationError
from shared.http import Throttled
from shared.messages import REFERRAL_EVENTS_QUEUE, parse

log = logging.getLogger("cosell.functions.referral_to_crm")

bp = func.Blueprint()

MAX_DEFERRALS = 20  # then the host's own retries (and the poison queue) take over
CONFIGURATION_RETRY_SECONDS = 300  # how long a message waits for a setting to be fixed


@bp.queue_trigger(arg_name="msg", queue_name=REFERRAL_EVENTS_QUEUE, connection="AzureWebJobsStorage")
def referral_to_crm(msg: func.QueueMessage) -> None:
    message = parse(msg.get_body())
    attempt = getattr(msg, "dequeue_count", None) or 1
    log.info("Syncing referral %s (%s, attempt %s)", message.referral_id, message.source, attempt)
    try:
        services.inbound_sync().sync(message.referral_id, source=message.source)
    except Throttled as exc:
        if message.deferrals >= MAX_DEFERRALS:
            raise
        later = message.model_copy(update={"deferrals": message.deferrals + 1})
        services.enqueue(later, delay_seconds=exc.retry_after)
        log.warning(
            "Referral %s: %s throttled the sync; back on the queue in %.0f s",
            message.referral_id,
            exc.service,
            exc.retry_after,
        )
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

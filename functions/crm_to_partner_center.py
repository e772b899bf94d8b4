"""Timer: share CRM deals with Partner Center and push their changes (CRM_POLL_SCHEDULE, default every minute).

Each run also samples the poison queues for the poison-queue alert, whatever the poll did.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import services, telemetry
from shared.config import ConfigurationError

log = logging.getLogger("cosell.functions.crm_to_partner_center")

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%CRM_POLL_SCHEDULE%", run_on_startup=False, use_monitor=True)
def crm_to_partner_center(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("CRM poll is running late")
    try:
        services.outbound_sync().poll()
    except ConfigurationError as exc:
        # Nothing is lost: the watermark stays, and the next tick polls from it once the setting is fixed.
        log.error("CRM poll refused: %s", exc)
    finally:
        telemetry.report_poison_depths(services.poison_queues)

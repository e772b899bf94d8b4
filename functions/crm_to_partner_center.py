"""Timer: share CRM deals with Partner Center and push their changes (CRM_POLL_SCHEDULE, default every minute).

Each run also samples the poison queues for the poison-queue alert, whatever the poll did.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import services, telemetry

log = logging.getLogger("cosell.functions.crm_to_partner_center")

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%CRM_POLL_SCHEDULE%", run_on_startup=False, use_monitor=True)
def crm_to_partner_center(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("CRM poll is running late")
    try:
        services.outbound_sync().poll()
    finally:
        telemetry.report_poison_depths(services.poison_queues)

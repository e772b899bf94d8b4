"""Timer: queue referrals Partner Center changed without a webhook reaching us (RECONCILE_SCHEDULE)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import services

log = logging.getLogger("cosell.functions.referral_reconcile")

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True)
def referral_reconcile(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("Reconcile is running late")
    services.reconciler().run()

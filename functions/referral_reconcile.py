"""Timer: queue referrals Partner Center changed without a webhook reaching us (RECONCILE_SCHEDULE)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import services
from shared.config import ConfigurationError

log = logging.getLogger("cosell.functions.referral_reconcile")

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True)
def referral_reconcile(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("Reconcile is running late")
    try:
        services.reconciler().run()
    except ConfigurationError as exc:
        # Nothing is lost: the watermark stays, and the next run looks back from it.
        log.error("Reconcile refused: %s", exc)

"""Azure Functions entry point (v2 programming model): create the app, register the blueprints."""

import logging

import azure.functions as func

from functions import (
    backfill,
    crm_schema,
    crm_to_partner_center,
    dashboard,
    doctor,
    health,
    partner_center_events,
    referral_reconcile,
    referral_to_crm,
    replay_poison,
    resync,
    status,
    webhook_registration,
)

# Client libraries log full request URLs at INFO; ours can carry customer data in OData filters.
for noisy in ("httpx", "httpcore", "azure"):
    logging.getLogger(noisy).setLevel(logging.WARNING)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (
    partner_center_events,
    referral_to_crm,
    crm_to_partner_center,
    referral_reconcile,
    webhook_registration,
    resync,
    replay_poison,
    crm_schema,
    doctor,
    backfill,
    status,
    dashboard,
    health,
):
    app.register_functions(blueprint.bp)

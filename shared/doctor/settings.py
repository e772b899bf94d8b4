"""Checks that need no remote: the settings themselves, and the webhook certificate allow-list."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from shared.config import Settings, placeholder_list
from shared.doctor.report import Check, fail, ok, warn
from shared.store.clients import storage_settings

SETTINGS = "Settings"
CERTIFICATE = "Webhook certificate URL"

# Where Partner Center's signing certificate is served from, per Microsoft's webhook docs sample
# (`X-MS-Certificate-Url: https://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer`,
# partner-center-api.md §2.2): the allow-list must cover it or every real webhook is refused.
MICROSOFT_CERT_PREFIX = "https://3psostorageacct.blob.core.windows.net/cert/"
MICROSOFT_CERT_URL = MICROSOFT_CERT_PREFIX + "pcnotifications-dispatch.microsoft.com.cer"

# Timer schedules are read by the Functions host as %NAME%: a missing one keeps the timer from starting.
TIMER_SETTINGS = ("CRM_POLL_SCHEDULE", "RECONCILE_SCHEDULE")

_REQUIRED = {
    "partner_center_tenant_id": "PARTNER_CENTER_TENANT_ID",
    "partner_center_client_id": "PARTNER_CENTER_CLIENT_ID",
    "partner_center_client_secret": "PARTNER_CENTER_CLIENT_SECRET",
    "partner_center_refresh_token": "PARTNER_CENTER_REFRESH_TOKEN",
}
_REQUIRED_BY_CRM = {
    "dynamics": {
        "dataverse_url": "DATAVERSE_URL",
        "dataverse_tenant_id": "DATAVERSE_TENANT_ID",
        "dataverse_client_id": "DATAVERSE_CLIENT_ID",
        "dataverse_client_secret": "DATAVERSE_CLIENT_SECRET",
    },
    "salesforce": {
        "salesforce_login_url": "SALESFORCE_LOGIN_URL",
        "salesforce_client_id": "SALESFORCE_CLIENT_ID",
        "salesforce_client_secret": "SALESFORCE_CLIENT_SECRET",
    },
}


def missing_settings(settings: Settings) -> list[str]:
    required = {**_REQUIRED, **_REQUIRED_BY_CRM[settings.crm_kind]}
    missing = [alias for field, alias in required.items() if not getattr(settings, field)]
    if not (settings.storage_connection or settings.storage_account_name or settings.storage_table_uri):
        missing.insert(0, storage_settings(settings)[0])
    return missing


def settings_check(settings: Settings, environ: Mapping[str, str]) -> Check:
    placeholders = settings.placeholders
    missing = missing_settings(settings)
    timers = [name for name in TIMER_SETTINGS if not environ.get(name)]
    bundle = settings.webhook_ca_bundle
    bad_bundle = ["WEBHOOK_CA_BUNDLE"] if bundle and not Path(bundle).is_file() else []
    problems = []
    if placeholders:
        problems.append(f"still placeholders: {placeholder_list(placeholders)}")
    if missing:
        problems.append(f"not set: {', '.join(missing)}")
    if timers:
        problems.append(f"not set, so the timers cannot start: {', '.join(timers)}")
    if bad_bundle:
        problems.append("WEBHOOK_CA_BUNDLE names a file that does not exist")
    if problems:
        return fail(SETTINGS, "; ".join(problems), [*sorted(placeholders), *missing, *timers, *bad_bundle])
    return ok(SETTINGS, f"CRM_KIND={settings.crm_kind}; every setting the app needs is set, none is a placeholder")


def certificate_check(settings: Settings) -> Check:
    prefixes = settings.webhook_cert_url_prefixes
    if not prefixes:
        return fail(CERTIFICATE, "the allow-list is empty: every webhook is refused", ["WEBHOOK_CERT_URL_PREFIXES"])
    if any(MICROSOFT_CERT_URL.startswith(prefix) for prefix in prefixes):
        return ok(CERTIFICATE, f"the allow-list covers Microsoft's certificate host {MICROSOFT_CERT_PREFIX}")
    return warn(
        CERTIFICATE,
        f"the allow-list does not cover Microsoft's documented certificate host {MICROSOFT_CERT_PREFIX}: "
        "Partner Center's real webhooks will be refused (401)",
        ["WEBHOOK_CERT_URL_PREFIXES"],
    )

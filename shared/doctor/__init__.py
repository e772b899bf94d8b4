"""The doctor: for the settings in force, one line per integration saying what works and what does not,
naming the settings to fix.

``run()`` returns data (a :class:`Report`); ``python -m shared.cli doctor`` prints it and
``GET /api/manage/doctor`` answers it as JSON, and any other caller (a deep status check) can call
it the same way. It talks to every remote the way the app does (same clients, same settings), with
short timeouts and few retries, and never waits longer than ``timeout`` overall.

Side effects are the app's own: redeeming the refresh token rotates it, and the new one is saved in
the app's ``TokenCache`` table, where the app looks for it. Nothing else is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from shared.config import ConfigurationError, Settings, get_settings
from shared.doctor import crm, partner_center, storage
from shared.doctor.report import Check, Report, Status, fail
from shared.doctor.runner import Group, run_groups
from shared.doctor.settings import CERTIFICATE, SETTINGS, certificate_check, settings_check

__all__ = ["DEFAULT_TIMEOUT", "EVENTS_PATH", "NAMES", "Check", "Report", "Status", "events_url_for", "run"]

DEFAULT_TIMEOUT = 30.0
NAMES = (SETTINGS, storage.STORAGE, *partner_center.NAMES, CERTIFICATE, *crm.NAMES)
EVENTS_PATH = "/api/partner-center/events"


def _quick(settings: Settings) -> Settings:
    """The same settings with a short leash: one timeout of at most 5 s, two attempts, short waits."""
    return settings.model_copy(
        update={
            "http_timeout_seconds": min(settings.http_timeout_seconds, 5.0),
            "http_max_attempts": min(settings.http_max_attempts, 2),
            "http_max_backoff_seconds": min(settings.http_max_backoff_seconds, 2.0),
        }
    )


def events_url_for(settings: Settings, environ: Mapping[str, str], app_url: str | None = None) -> str | None:
    """This app's events URL: ``app_url`` (its base), else WEBHOOK_CALLBACK_URL, else the host name Azure
    sets (``WEBSITE_HOSTNAME``); None when none is known (a workstation without them)."""
    if app_url:
        return app_url.rstrip("/") + EVENTS_PATH
    if settings.webhook_callback_url:
        return settings.webhook_callback_url
    host = environ.get("WEBSITE_HOSTNAME")
    return f"https://{host}{EVENTS_PATH}" if host else None


def run(
    settings: Settings | None = None,
    *,
    events_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Check every integration. ``events_url`` is this app's webhook URL (the route knows it from
    the request); without it, it is derived from the settings (:func:`events_url_for`)."""
    env = os.environ if environ is None else environ
    if settings is None:
        try:
            settings = get_settings()
        except ConfigurationError as exc:
            return _unreadable(exc)
    quick = _quick(settings)
    url = events_url or events_url_for(settings, env)
    groups = [
        Group([storage.STORAGE], lambda g: storage.check_storage(quick, g)),
        Group(list(partner_center.NAMES), lambda g: partner_center.check_partner_center(quick, url, g)),
        Group(list(crm.NAMES), lambda g: crm.check_crm(quick, g)),
    ]
    found = {check.name: check for check in run_groups(groups, timeout)}
    found[SETTINGS] = settings_check(settings, env)
    found[CERTIFICATE] = certificate_check(settings)
    return Report([found[name] for name in NAMES])


def _unreadable(exc: ConfigurationError) -> Report:
    """Settings that do not even parse: say which, and that nothing else could be checked."""
    checks = [fail(SETTINGS, str(exc), exc.settings)]
    checks += [fail(name, "not checked: the settings are invalid (see above)", exc.settings) for name in NAMES[1:]]
    return Report(checks)

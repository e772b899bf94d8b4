"""Partner Center: the refresh token for both scopes, the Referrals API, and where the webhook points."""

from __future__ import annotations

import httpx
from azure.core.exceptions import AzureError

from shared import services
from shared.auth import AuthError, RefreshTokenGrant
from shared.config import ConfigurationError, Settings
from shared.doctor.explain import api_error_detail, auth_detail, origin, unreachable_detail
from shared.doctor.report import Check, fail, ok, warn
from shared.doctor.runner import Group
from shared.doctor.storage import token_store
from shared.http import ApiError, ApiUnavailable
from shared.partner_center.registration import WANTED_EVENTS, redact_url
from shared.store.clients import storage_problem

AUTH = "Partner Center token"
REFERRALS = "Referrals API"
REGISTRATION = "Webhook registration"
NAMES = (AUTH, REFERRALS, REGISTRATION)

# The two scopes the app redeems the refresh token for (shared/services.py), and what each serves.
SCOPES = (("partner_center_scope", "Referrals API"), ("partner_center_webhook_scope", "Webhooks API"))
CREDENTIALS = ["PARTNER_CENTER_TENANT_ID", "PARTNER_CENTER_CLIENT_ID", "PARTNER_CENTER_CLIENT_SECRET"]


def _same_url(a: str, b: str) -> bool:
    """Scheme, host, port and path compared; the query (``?code=``) and a trailing slash are not."""
    try:
        left, right = httpx.URL(a), httpx.URL(b)
    except (httpx.InvalidURL, TypeError):
        return False
    return (left.scheme, left.host, left.port, left.path.rstrip("/")) == (
        right.scheme,
        right.host,
        right.port,
        right.path.rstrip("/"),
    )


def check_partner_center(settings: Settings, events_url: str | None, group: Group) -> None:
    try:
        services.require(settings, *services.PARTNER_CENTER_CREDENTIALS)
    except ConfigurationError as exc:
        group.report(fail(AUTH, str(exc), exc.settings))
        group.skip_rest("no Partner Center token (see above)", exc.settings)
        return
    group.step("reading the refresh token store (table TokenCache)", ["AzureWebJobsStorage"])
    try:
        store = token_store(settings)
        store.load()
    except (AzureError, ConfigurationError, ValueError) as exc:
        why, names = storage_problem(settings, exc)
        group.report(
            fail(AUTH, f"not checked: the app keeps the rotated refresh token in Table Storage, and {why}", names)
        )
        group.skip_rest("no Partner Center token (see above)", names)
        return

    tokens: dict[str, RefreshTokenGrant] = {}
    problems: dict[str, tuple[str, list[str]]] = {}
    for field, api in SCOPES:
        group.step(f"redeeming the refresh token for the {api}", ["ENTRA_AUTHORITY_HOST"])
        try:
            grant = services.partner_center_token(settings, field, store)
            grant()
            tokens[field] = grant
        except ConfigurationError as exc:
            problems[api] = (str(exc), exc.settings)
        except AuthError as exc:
            problems[api] = (
                auth_detail(exc, "Entra ID"),
                exc.settings or [*CREDENTIALS, "PARTNER_CENTER_REFRESH_TOKEN"],
            )
        except AzureError as exc:  # saving the rotated token
            problems[api] = storage_problem(settings, exc)
    group.report(_token_line(problems))

    _check_referrals(settings, tokens.get("partner_center_scope"), problems.get("Referrals API"), group)
    _check_registration(
        settings, events_url, tokens.get("partner_center_webhook_scope"), problems.get("Webhooks API"), group
    )


def _token_line(problems: dict[str, tuple[str, list[str]]]) -> Check:
    if not problems:
        return ok(AUTH, "the refresh token was redeemed for both scopes (Referrals API and Webhooks API)")
    details = {detail for detail, _ in problems.values()}
    settings = [name for _, names in problems.values() for name in names]
    if len(problems) == len(SCOPES) and len(details) == 1:
        return fail(AUTH, f"{details.pop()} (both scopes)", settings)
    return fail(AUTH, "; ".join(f"{api} scope: {detail}" for api, (detail, _) in problems.items()), settings)


def _check_referrals(
    settings: Settings, token: RefreshTokenGrant | None, problem: tuple[str, list[str]] | None, group: Group
) -> None:
    if token is None:
        group.report(
            fail(REFERRALS, "not checked: no token for the Referrals API (see above)", problem[1] if problem else [])
        )
        return
    url = settings.partner_center_api_url
    group.step(f"calling the Referrals API at {origin(url)}", ["PARTNER_CENTER_API_URL"])
    try:
        services.build_referrals_client(settings, token).probe()
    except ApiUnavailable as exc:
        group.report(fail(REFERRALS, unreachable_detail(exc, url), ["PARTNER_CENTER_API_URL"]))
    except ApiError as exc:
        group.report(_api_failure(REFERRALS, exc, "PARTNER_CENTER_API_URL", "PARTNER_CENTER_SCOPE"))
    except AuthError as exc:
        group.report(fail(REFERRALS, auth_detail(exc, "Entra ID"), exc.settings))
    else:
        group.report(ok(REFERRALS, f"GET referrals?$top=1 answered at {origin(url)}"))


def _api_failure(name: str, exc: ApiError, url_setting: str, scope_setting: str) -> Check:
    said = api_error_detail(exc)
    if exc.status == 404:
        return fail(name, f"{said}: no such API at that URL", [url_setting])
    if exc.status == 401:
        return fail(name, f"{said}: the token is not for this API", [scope_setting])
    if exc.status == 403:
        return fail(
            name,
            f"{said}: the consenting user lacks the role (Referrals admin for referrals): redo the consent as one",
            ["PARTNER_CENTER_REFRESH_TOKEN"],
        )
    if exc.transient:
        return warn(name, f"{said}: a passing failure; run the doctor again")
    return fail(name, said, [url_setting])


def _check_registration(
    settings: Settings,
    events_url: str | None,
    token: RefreshTokenGrant | None,
    problem: tuple[str, list[str]] | None,
    group: Group,
) -> None:
    if token is None:
        names = problem[1] if problem else []
        group.report(fail(REGISTRATION, "not checked: no token for the Webhooks API (see above)", names))
        return
    url = settings.partner_center_webhook_api_url
    group.step(f"reading the webhook registration at {origin(url)}", ["PARTNER_CENTER_WEBHOOK_API_URL"])
    try:
        current = services.build_webhook_registration_client(settings, token).get()
    except ApiUnavailable as exc:
        group.report(fail(REGISTRATION, unreachable_detail(exc, url), ["PARTNER_CENTER_WEBHOOK_API_URL"]))
        return
    except ApiError as exc:
        group.report(_api_failure(REGISTRATION, exc, "PARTNER_CENTER_WEBHOOK_API_URL", "PARTNER_CENTER_WEBHOOK_SCOPE"))
        return
    except AuthError as exc:
        group.report(fail(REGISTRATION, auth_detail(exc, "Entra ID"), exc.settings))
        return
    put = "PUT /api/manage/webhook-registration"
    callback = ["WEBHOOK_CALLBACK_URL"] if settings.webhook_callback_url else []
    if current is None or not current.webhook_url:
        group.report(
            fail(REGISTRATION, f"no webhook is registered for this tenant: {put} registers this app", callback)
        )
        return
    shown = redact_url(current.webhook_url)
    if not events_url:
        group.report(
            warn(
                REGISTRATION,
                f"registered to {shown}; this app's own URL is unknown here, so set WEBHOOK_CALLBACK_URL "
                "(or pass --app-url) to compare",
                ["WEBHOOK_CALLBACK_URL"],
            )
        )
        return
    if not _same_url(current.webhook_url, events_url):
        group.report(
            fail(
                REGISTRATION,
                f"points to {shown}, not to this app ({redact_url(events_url)}): "
                f'{put} with {{"overwrite": true}} moves it here',
                callback,
            )
        )
        return
    wanted = {e.lower() for e in WANTED_EVENTS}
    missing = sorted(wanted - {e.lower() for e in current.events})
    if missing:
        group.report(warn(REGISTRATION, f"points here but without {', '.join(missing)}: {put} adds them"))
        return
    group.report(ok(REGISTRATION, f"points to this app ({shown}) for {len(current.events)} events"))

"""The CRM CRM_KIND names: a token for the app's CRM user, then the sync's schema (the crm-schema check)."""

from __future__ import annotations

from shared import services
from shared.auth import AuthError
from shared.config import ConfigurationError, Settings
from shared.crm.schema import Finding, SchemaReport
from shared.doctor.explain import api_error_detail, auth_detail, origin, unreachable_detail
from shared.doctor.report import Check, fail, ok, warn
from shared.doctor.runner import Group
from shared.http import ApiError, ApiUnavailable

AUTH = "CRM token"
SCHEMA = "CRM schema"
NAMES = (AUTH, SCHEMA)

APPLY = "python -m shared.cli crm-schema --apply (or POST /api/manage/crm-schema)"
_SHOWN = 4  # schema items named on the line; the rest are counted


def _crm(settings: Settings) -> tuple[str, str, list[str], list[str]]:
    """Label, URL, the settings that say where it is, and the credential settings."""
    if settings.crm_kind == "salesforce":
        return (
            "Salesforce",
            str(settings.salesforce_login_url or ""),
            ["SALESFORCE_LOGIN_URL"],
            ["SALESFORCE_LOGIN_URL", "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"],
        )
    return (
        "Dynamics 365",
        str(settings.dataverse_url or ""),
        ["DATAVERSE_URL"],
        ["DATAVERSE_TENANT_ID", "DATAVERSE_CLIENT_ID", "DATAVERSE_CLIENT_SECRET"],
    )


def check_crm(settings: Settings, group: Group) -> None:
    label, url, where, credentials = _crm(settings)
    salesforce = settings.crm_kind == "salesforce"
    provider = "Salesforce" if salesforce else "Entra ID"
    group.step(
        f"asking {provider} for a {label} token", ["SALESFORCE_LOGIN_URL" if salesforce else "ENTRA_AUTHORITY_HOST"]
    )
    try:
        token = services.salesforce_session(settings) if salesforce else services.dataverse_token(settings)
        token()
    except ConfigurationError as exc:
        group.report(fail(AUTH, f"{label}: {exc}", exc.settings))
        group.skip_rest(f"no {label} token (see above)", exc.settings)
        return
    except AuthError as exc:
        names = exc.settings or credentials
        group.report(fail(AUTH, f"{label}: {auth_detail(exc, provider)}", names))
        group.skip_rest(f"no {label} token (see above)", names)
        return
    group.report(ok(AUTH, f"{label}: {provider} issued a token for {origin(url)}"))

    group.step(f"reading {label}'s metadata at {origin(url)}", where)
    try:
        report = services.schema_of(services.build_crm(settings)).check()
    except ConfigurationError as exc:
        group.report(fail(SCHEMA, str(exc), exc.settings))
    except ApiUnavailable as exc:
        group.report(fail(SCHEMA, unreachable_detail(exc, url), where))
    except AuthError as exc:
        group.report(fail(SCHEMA, f"{label}: {auth_detail(exc, provider)}", exc.settings or credentials))
    except ApiError as exc:
        group.report(_refused(label, exc, where, salesforce))
    else:
        group.report(schema_line(label, report, settings))


def _refused(label: str, exc: ApiError, where: list[str], salesforce: bool) -> Check:
    said = f"{label}: {api_error_detail(exc)}"
    if exc.status in (401, 403):
        if salesforce:
            return fail(SCHEMA, f"{said}: give the connected app's Run As user API access", ["SALESFORCE_CLIENT_ID"])
        return fail(
            SCHEMA,
            f"{said}: add the app registration to the environment as an application user with a security role",
            ["DATAVERSE_CLIENT_ID"],
        )
    if exc.status == 404:
        return fail(SCHEMA, f"{said}: no {label} API at that URL", where)
    if exc.transient:
        return warn(SCHEMA, f"{said}: a passing failure; run the doctor again")
    return fail(SCHEMA, said, where)


def _named(findings: list[Finding]) -> str:
    shown = [f"{f.item.table}.{f.item.name}" for f in findings[:_SHOWN]]
    more = f" and {len(findings) - _SHOWN} more" if len(findings) > _SHOWN else ""
    return ", ".join(shown) + more


def schema_line(label: str, report: SchemaReport, settings: Settings) -> Check:
    missing, wrong, pending = report.of("missing"), report.of("wrong"), report.of("pending")
    if report.ready:
        return ok(SCHEMA, f"{label} has all {len(report.findings)} items the sync needs")
    # A column the field map names but the CRM lacks may be the map's mistake rather than the CRM's.
    field_map = ["CRM_FIELD_MAP"] if settings.crm_field_map else []
    parts = []
    if missing:
        parts.append(f"missing {_named(missing)}")
    if wrong:
        parts.append(f"of the wrong type {_named(wrong)} (fix by hand; see crm-schema --check)")
    if parts:
        return fail(SCHEMA, f"{label}: {'; '.join(parts)}: run {APPLY}", field_map)
    return warn(SCHEMA, f"{label}: still being built: {_named(pending)}; check again in a minute")

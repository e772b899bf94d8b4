"""Every app setting, typed, in one place.

Names are the app-setting names of DESIGN.md (upper snake case, plus the host's own
``AzureWebJobsStorage``). Values come from the environment; the local host also fills names the
environment does not set from ``local.settings.json``, as Core Tools does.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CrmKind = Literal["dynamics", "salesforce"]
ADMIN_ROUTE_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"


class ConfigurationError(RuntimeError):
    """Settings the requested operation needs are missing, invalid or placeholders; ``settings`` names them."""

    def __init__(self, message: str, settings: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.settings = list(settings)


# What local.settings.example.json (and docs in general) put where a real value belongs:
# ``<your partner tenant id>``, ``https://<org>.crm.dynamics.com``.
_ANGLE_PLACEHOLDER = re.compile(r"<[^<>]*>")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
# An unresolved Key Vault reference reaches the app as the literal reference text (App Service
# "Use Key Vault references": "If a reference isn't resolved properly, the reference string is used").
_KEY_VAULT_REFERENCE = "@microsoft.keyvault("


def _example_guid(value: str) -> bool:
    """The nil GUID and Microsoft Learn's sample GUIDs (``aaaabbbb-0000-cccc-1111-dddd2222eeee``,
    ``00001111-aaaa-2222-bbbb-3333cccc4444``): every pair of hex digits is one digit twice. A real
    (random) GUID has that shape once in 16^16."""
    if not _GUID.match(value):
        return False
    digits = value.replace("-", "").lower()
    return all(digits[i] == digits[i + 1] for i in range(0, 32, 2))


def placeholder_reason(value: str) -> str | None:
    """Why ``value`` cannot be a real setting value, or None when it may be one."""
    text = value.strip()
    if _ANGLE_PLACEHOLDER.search(text):
        return "a placeholder from local.settings.example.json"
    if _example_guid(text):
        return "an example GUID"
    if text.lower().startswith(_KEY_VAULT_REFERENCE):
        return "an unresolved Key Vault reference"
    return None


# The knobs of Microsoft's connector solution, with the defaults it documents per CRM.
_CRM_DEFAULTS: dict[str, dict[str, str]] = {
    "dynamics": {
        "deal_value_field": "estimatedvalue",
        "deal_currency_field": "transactioncurrencyid",
        "account_country_field": "address1_country",
    },
    "salesforce": {
        "deal_value_field": "Amount",
        "deal_currency_field": "CurrencyIsoCode",
        "account_country_field": "BillingCountryCode",
    },
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    # --- storage (queues + tables); a connection string locally, identity-based in Azure ---
    storage_connection: str | None = Field(None, validation_alias="AzureWebJobsStorage")
    storage_account_name: str | None = Field(None, validation_alias="AzureWebJobsStorage__accountName")
    storage_table_uri: str | None = Field(None, validation_alias="AzureWebJobsStorage__tableServiceUri")
    storage_queue_uri: str | None = Field(None, validation_alias="AzureWebJobsStorage__queueServiceUri")
    storage_client_id: str | None = Field(None, validation_alias="AzureWebJobsStorage__clientId")

    crm_kind: CrmKind = Field("dynamics", validation_alias="CRM_KIND")

    # --- Partner Center ---
    partner_center_api_url: str = Field(
        "https://api.partner.microsoft.com/v1.0/engagements", validation_alias="PARTNER_CENTER_API_URL"
    )
    partner_center_webhook_api_url: str = Field(
        "https://api.partnercenter.microsoft.com/webhooks/v1", validation_alias="PARTNER_CENTER_WEBHOOK_API_URL"
    )
    partner_center_scope: str = Field(
        "https://api.partner.microsoft.com/.default", validation_alias="PARTNER_CENTER_SCOPE"
    )
    partner_center_webhook_scope: str = Field(
        "https://api.partnercenter.microsoft.com/.default", validation_alias="PARTNER_CENTER_WEBHOOK_SCOPE"
    )
    entra_authority_host: str = Field("https://login.microsoftonline.com", validation_alias="ENTRA_AUTHORITY_HOST")
    partner_center_tenant_id: str | None = Field(None, validation_alias="PARTNER_CENTER_TENANT_ID")
    partner_center_client_id: str | None = Field(None, validation_alias="PARTNER_CENTER_CLIENT_ID")
    partner_center_client_secret: SecretStr | None = Field(None, validation_alias="PARTNER_CENTER_CLIENT_SECRET")
    partner_center_refresh_token: SecretStr | None = Field(None, validation_alias="PARTNER_CENTER_REFRESH_TOKEN")
    referral_link_template: str = Field(
        "https://partner.microsoft.com/dashboard/referrals/v2/inbox?id={id}",
        validation_alias="REFERRAL_LINK_TEMPLATE",
    )

    # --- webhook intake ---
    webhook_cert_url_prefixes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["https://3psostorageacct.blob.core.windows.net/cert/"],
        validation_alias="WEBHOOK_CERT_URL_PREFIXES",
    )
    webhook_cert_organization: str = Field("Microsoft Corporation", validation_alias="WEBHOOK_CERT_ORGANIZATION")
    webhook_ca_bundle: str | None = Field(None, validation_alias="WEBHOOK_CA_BUNDLE")
    webhook_callback_url: str | None = Field(None, validation_alias="WEBHOOK_CALLBACK_URL")
    # The Azure Functions host refuses HTTP routes that start with "admin" (azure-functions-host
    # #1781), so the admin routes live under /api/manage everywhere (DESIGN.md contract).
    admin_route_prefix: str = Field("manage", pattern=ADMIN_ROUTE_PATTERN, validation_alias="ADMIN_ROUTE_PREFIX")
    # Appended to the version the status route and the dashboard show (a commit id, a pipeline run):
    # App Service documents no build id of a deployed package for Flex Consumption, so a deployment says it.
    app_build: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9._-]*$", validation_alias="APP_BUILD")

    # --- Dynamics 365 / Dataverse ---
    dataverse_url: str | None = Field(None, validation_alias="DATAVERSE_URL")
    dataverse_tenant_id: str | None = Field(None, validation_alias="DATAVERSE_TENANT_ID")
    dataverse_client_id: str | None = Field(None, validation_alias="DATAVERSE_CLIENT_ID")
    dataverse_client_secret: SecretStr | None = Field(None, validation_alias="DATAVERSE_CLIENT_SECRET")

    # --- Salesforce ---
    salesforce_login_url: str | None = Field(None, validation_alias="SALESFORCE_LOGIN_URL")
    salesforce_client_id: str | None = Field(None, validation_alias="SALESFORCE_CLIENT_ID")
    salesforce_client_secret: SecretStr | None = Field(None, validation_alias="SALESFORCE_CLIENT_SECRET")
    salesforce_api_version: str = Field("v60.0", pattern=r"^v\d+\.\d$", validation_alias="SALESFORCE_API_VERSION")
    # Stages and lead status the Salesforce adapter writes (DESIGN.md): a referral not accepted yet
    # sits in the pending ("on-hold") stage; moving it on accepts the referral in Partner Center.
    salesforce_stage_pending: str = Field("Prospecting", min_length=1, validation_alias="SALESFORCE_STAGE_PENDING")
    salesforce_stage_accepted: str = Field("Qualification", min_length=1, validation_alias="SALESFORCE_STAGE_ACCEPTED")
    # Salesforce's 403 REQUEST_LIMIT_EXCEEDED carries no Retry-After: after the in-call retries,
    # work pauses this long (the daily allocation frees up as the rolling 24 hours move on).
    salesforce_limit_pause_seconds: float = Field(300.0, gt=0, validation_alias="SALESFORCE_LIMIT_PAUSE_SECONDS")
    salesforce_lead_status: str = Field("Open - Not Contacted", min_length=1, validation_alias="SALESFORCE_LEAD_STATUS")

    # --- sync behaviour (the connector solution's knobs) ---
    display_checkmark: bool = Field(True, validation_alias="DISPLAY_CHECKMARK")
    sync_cosell_only: bool = Field(False, validation_alias="SYNC_COSELL_ONLY")
    deal_value_field_override: str | None = Field(None, validation_alias="DEAL_VALUE_FIELD")
    deal_currency_field_override: str | None = Field(None, validation_alias="DEAL_CURRENCY_FIELD")
    account_country_field_override: str | None = Field(None, validation_alias="ACCOUNT_COUNTRY_FIELD")
    crm_field_map: str | None = Field(None, validation_alias="CRM_FIELD_MAP")
    # Microsoft's co-sell connector's column names, for `python -m shared.cli adopt` only (README,
    # "Moving over from Microsoft's co-sell connector"); the same JSON shape as CRM_FIELD_MAP.
    connector_field_map: str | None = Field(None, validation_alias="CONNECTOR_FIELD_MAP")
    audit_max_chars: int = Field(4000, ge=200, validation_alias="AUDIT_MAX_CHARS")

    # --- schedules (read by the trigger decorators as %NAME%; typed here for documentation) ---
    crm_poll_schedule: str = Field("0 */1 * * * *", validation_alias="CRM_POLL_SCHEDULE")
    reconcile_schedule: str = Field("0 */15 * * * *", validation_alias="RECONCILE_SCHEDULE")
    reconcile_first_run_hours: int = Field(24, ge=1, validation_alias="RECONCILE_FIRST_RUN_HOURS")

    # --- backfill (POST /api/manage/backfill): pacing, so importing old referrals never throttles the CRM ---
    # Dataverse allows 6,000 requests per 5 minutes per user (1,200 a minute); a new referral costs
    # about 12 Dataverse calls, so 50 a minute spends half of that budget and leaves half for the live sync.
    backfill_referrals_per_minute: float = Field(50.0, gt=0, le=6000, validation_alias="BACKFILL_REFERRALS_PER_MINUTE")
    # How far ahead of that pace referrals are listed and queued (invisible until their turn). Small keeps
    # the queue short (the Functions scale controller counts invisible messages too); 0 lists a page only
    # when the previous one is due.
    backfill_queue_ahead_minutes: float = Field(10.0, ge=0, le=1440, validation_alias="BACKFILL_QUEUE_AHEAD_MINUTES")

    # --- CRM request pacing (shared/ratelimit.py): one limiter per CRM user per process ---
    # Dataverse allows 6,000 requests per user in any 5 minutes (1,200 a minute); 600 a minute spends half
    # and leaves half to the other integrations and people working as the same user. Per instance: every
    # instance also reads the user's remaining budget from the CRM's answers and slows down as it runs low.
    crm_requests_per_minute: float = Field(600.0, gt=0, le=100_000, validation_alias="CRM_REQUESTS_PER_MINUTE")
    # Dataverse refuses a user's 53rd concurrent request (api-limits page); the suggested client cap is 8-16.
    crm_max_concurrent_requests: int = Field(16, ge=1, le=52, validation_alias="CRM_MAX_CONCURRENT_REQUESTS")
    # The share of the CRM user's budget (as the CRM's headers report it) the app leaves alone: below twice
    # this share left it slows down, at this share it stops until the budget recovers.
    crm_budget_reserve: float = Field(0.2, ge=0, lt=0.5, validation_alias="CRM_BUDGET_RESERVE")
    # Timer runs stop in time and save their watermark (host.json functionTimeout is 10 minutes): the
    # next run goes on from there. 480 s leaves two minutes for the record in hand and the last writes.
    crm_poll_max_seconds: float = Field(480.0, gt=0, le=570, validation_alias="CRM_POLL_MAX_SECONDS")
    # CRM records one poll handles at once (shared/sync/outbound.py): each waits mostly for Partner Center
    # and the state row, so a first share of thousands goes several times faster; every CRM call still
    # takes its turn from the limiter above. 1 handles them one after another.
    crm_poll_concurrency: int = Field(8, ge=1, le=32, validation_alias="CRM_POLL_CONCURRENCY")
    reconcile_max_seconds: float = Field(480.0, gt=0, le=570, validation_alias="RECONCILE_MAX_SECONDS")

    # --- outbound HTTP policy ---
    http_timeout_seconds: float = Field(15.0, gt=0, validation_alias="HTTP_TIMEOUT_SECONDS")
    http_max_attempts: int = Field(6, ge=1, le=20, validation_alias="HTTP_MAX_ATTEMPTS")
    http_max_backoff_seconds: float = Field(30.0, gt=0, validation_alias="HTTP_MAX_BACKOFF_SECONDS")

    # --- concurrency control ---
    lease_seconds: int = Field(60, ge=5, validation_alias="LEASE_SECONDS")
    lease_wait_seconds: float = Field(20.0, ge=0, validation_alias="LEASE_WAIT_SECONDS")

    @field_validator("webhook_cert_url_prefixes", mode="before")
    @classmethod
    def _split_prefixes(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    def _crm_default(self, name: str) -> str:
        return _CRM_DEFAULTS[self.crm_kind][name]

    @property
    def deal_value_field(self) -> str:
        return self.deal_value_field_override or self._crm_default("deal_value_field")

    @property
    def deal_currency_field(self) -> str:
        return self.deal_currency_field_override or self._crm_default("deal_currency_field")

    @property
    def account_country_field(self) -> str:
        return self.account_country_field_override or self._crm_default("account_country_field")

    def in_use(self, alias: str) -> bool:
        """The other CRM's settings are not used (and may hold anything, such as ``not-used``)."""
        unused = "SALESFORCE_" if self.crm_kind == "dynamics" else "DATAVERSE_"
        return not alias.startswith(unused)

    @property
    def placeholders(self) -> dict[str, str]:
        """Settings in use whose value is a placeholder, by name, with the reason.

        Settings validation detects them but does not raise: the app must still index, so that
        /api/health can answer 503 naming them; every use of a setting refuses it by name instead
        (:meth:`refuse_placeholders`, called by the composition root).
        """
        found: dict[str, str] = {}
        for name, info in type(self).model_fields.items():
            alias = str(info.validation_alias)
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            if not isinstance(value, str) or not self.in_use(alias):
                continue
            reason = placeholder_reason(value)
            if reason:
                found[alias] = reason
        return found

    def refuse_placeholders(self, *aliases: str) -> None:
        """Raise :class:`ConfigurationError` naming every setting (of ``aliases``, or all) that is a placeholder."""
        found = {a: r for a, r in self.placeholders.items() if not aliases or a in aliases}
        if found:
            raise ConfigurationError(placeholder_message(found), sorted(found))


def placeholder_list(found: dict[str, str]) -> str:
    """``A, B (a placeholder from local.settings.example.json); C (an example GUID)``: names grouped by reason."""
    by_reason: dict[str, list[str]] = {}
    for alias, reason in sorted(found.items()):
        by_reason.setdefault(reason, []).append(alias)
    return "; ".join(f"{', '.join(names)} ({reason})" for reason, names in by_reason.items())


def placeholder_message(found: dict[str, str]) -> str:
    return f"App settings that still hold placeholders: {placeholder_list(found)}. Set their real values."


def invalid_settings(exc: ValidationError) -> ConfigurationError:
    """A one-line error naming each invalid setting and pydantic's reason (never the value: it may be a secret)."""
    aliases: list[str] = []
    reasons: list[str] = []
    for error in exc.errors(include_input=False, include_url=False):
        alias = str(error["loc"][0]) if error.get("loc") else "?"
        aliases.append(alias)
        reasons.append(f"{alias} ({error['msg']})")
    return ConfigurationError(f"Invalid app settings: {'; '.join(reasons)}", aliases)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings are read once per process; tests call ``get_settings.cache_clear()`` after changing env.

    An invalid value raises :class:`ConfigurationError` naming the setting (a one-line reason,
    not pydantic's multi-line report), so every caller can refuse with that one line.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise invalid_settings(exc) from None

"""Composition root: builds the clients and use cases from settings, once per process.

Functions stay thin: they parse their input, ask for what they need here and respond. Everything
is built lazily, so the webhook intake never constructs a CRM client, and cached, so access
tokens, connection pools and the certificate cache survive across invocations.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from shared import __version__
from shared.auth import ClientCredentialsToken, CredentialNames, RefreshTokenGrant, RefreshTokenStore
from shared.config import ConfigurationError, Settings, get_settings
from shared.crm.adopt import ConnectorLinks
from shared.crm.dataverse_client import API_PATH, DataverseClient
from shared.crm.dynamics import DynamicsCrm
from shared.crm.dynamics_fields import dynamics_field_map
from shared.crm.links import RecordLinks
from shared.crm.port import CrmPort
from shared.crm.salesforce import SalesforceCrm
from shared.crm.salesforce_client import (
    ClientCredentialsSession,
    SalesforceClient,
    limit_exceeded,
    salesforce_error,
)
from shared.crm.salesforce_fields import salesforce_field_map
from shared.crm.schema import CrmSchema
from shared.http import ServiceClient
from shared.mapping.inbound import InboundOptions
from shared.messages import BACKFILL_QUEUE, REFERRAL_EVENTS_QUEUE, BackfillPageMessage, ReferralMessage
from shared.partner_center.client import ReferralsClient
from shared.partner_center.signature import WebhookVerifier
from shared.partner_center.webhooks import WebhookRegistrationClient
from shared.ratelimit import (
    BudgetReader,
    RateLimiter,
    dataverse_budget,
    forget_limiters,
    limiter_for,
    salesforce_budget,
)
from shared.status import QUEUES as STATUS_QUEUES
from shared.status import StatusSources
from shared.store.audit import AuditLog
from shared.store.backfill import BackfillStore
from shared.store.clients import (
    AUDIT_TABLE,
    LEASE_TABLE,
    OPERATIONS_TABLE,
    SYNC_STATE_TABLE,
    TOKEN_TABLE,
    queue_client,
    table_client,
)
from shared.store.counters import SyncCounters, last_24_hours
from shared.store.failures import RecentFailures
from shared.store.leases import LeaseStore
from shared.store.queues import POISON_QUEUES, QueueDepthReader
from shared.store.state import StateStore
from shared.store.tokens import TableRefreshTokenStore
from shared.sync.backfill import Backfill
from shared.sync.inbound import InboundSync
from shared.sync.outbound import OutboundSync
from shared.sync.reconcile import Reconciler
from shared.sync.worker import ReferralWorker

T = TypeVar("T")

MAX_VISIBILITY_DELAY = 7 * 24 * 3600  # Azure Queue Storage's longest visibility timeout


class Once(Generic[T]):
    """Build on first use, once per process even when several invocations start together.

    (``functools.lru_cache`` alone lets concurrent first callers each build their own client,
    which here meant several refresh-token redemptions at once.)
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.RLock()
        self._value: T | None = None
        self.__doc__ = factory.__doc__

    def __call__(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._factory()
            return self._value

    def cache_clear(self) -> None:
        with self._lock:
            self._value = None


__all__ = ["ConfigurationError"]  # re-exported: callers catch it from here


def alias(field: str) -> str:
    return str(Settings.model_fields[field].validation_alias)


def require(settings: Settings, *names: str) -> None:
    """Refuse, naming them, settings the operation needs that are missing or still placeholders."""
    missing = [alias(n) for n in names if not getattr(settings, n)]
    if missing:
        raise ConfigurationError(f"Missing app settings: {', '.join(missing)}", missing)
    settings.refuse_placeholders(*(alias(n) for n in names))


# The settings behind each part of a credential, so a refused token names what to fix.
def partner_center_names(scope_setting: str) -> CredentialNames:
    return {
        "tenant": ("PARTNER_CENTER_TENANT_ID",),
        # AADSTS700016: "the application wasn't found in the directory/tenant": the id, or the tenant.
        "client": ("PARTNER_CENTER_CLIENT_ID", "PARTNER_CENTER_TENANT_ID"),
        "secret": ("PARTNER_CENTER_CLIENT_SECRET",),
        "grant": ("PARTNER_CENTER_REFRESH_TOKEN",),
        "scope": (scope_setting,),
        "endpoint": ("ENTRA_AUTHORITY_HOST",),
    }


DATAVERSE_NAMES: CredentialNames = {
    "tenant": ("DATAVERSE_TENANT_ID",),
    "client": ("DATAVERSE_CLIENT_ID", "DATAVERSE_TENANT_ID"),
    "secret": ("DATAVERSE_CLIENT_SECRET",),
    "scope": ("DATAVERSE_URL",),  # the token's scope is the org URL
    "endpoint": ("ENTRA_AUTHORITY_HOST",),
}
SALESFORCE_NAMES: CredentialNames = {
    "client": ("SALESFORCE_CLIENT_ID",),
    "secret": ("SALESFORCE_CLIENT_SECRET",),
    # no Run As user on the connected app, or a login host that does not serve the flow
    "grant": ("SALESFORCE_CLIENT_ID", "SALESFORCE_LOGIN_URL"),
    "endpoint": ("SALESFORCE_LOGIN_URL",),
}


def _http(settings: Settings, service: str, base_url: str, auth: object, url_setting: str) -> ServiceClient:
    return ServiceClient(
        service,
        base_url,
        auth=auth,  # type: ignore[arg-type]
        timeout=settings.http_timeout_seconds,
        max_attempts=settings.http_max_attempts,
        max_backoff=settings.http_max_backoff_seconds,
        settings=(url_setting,),
    )


def crm_limiter(settings: Settings, identity: str, budget: BudgetReader) -> RateLimiter:
    """The process's one pace for a CRM user: every client of that user (adapter, doctor) shares it."""
    return limiter_for(
        identity,
        lambda: RateLimiter(
            per_minute=settings.crm_requests_per_minute,
            max_concurrent=settings.crm_max_concurrent_requests,
            reserve=settings.crm_budget_reserve,
            # Waiting longer than an in-call retry would is handed back as Throttled (the message returns later).
            max_wait=settings.http_max_backoff_seconds,
            budget=budget,
        ),
    )


def _token_attempts(settings: Settings) -> int:
    return min(4, settings.http_max_attempts)


@Once
def webhook_verifier() -> WebhookVerifier:
    settings = get_settings()
    return WebhookVerifier(
        allowed_url_prefixes=settings.webhook_cert_url_prefixes,
        organization=settings.webhook_cert_organization,
        ca_bundle=settings.webhook_ca_bundle,
    )


@Once
def _refresh_token_store() -> TableRefreshTokenStore:
    settings = get_settings()
    seed = settings.partner_center_refresh_token.get_secret_value() if settings.partner_center_refresh_token else None
    return TableRefreshTokenStore(table_client(settings, TOKEN_TABLE), seed=seed)


PARTNER_CENTER_CREDENTIALS = (
    "partner_center_tenant_id",
    "partner_center_client_id",
    "partner_center_client_secret",
    "partner_center_refresh_token",
)


def partner_center_token(settings: Settings, scope_field: str, store: RefreshTokenStore) -> RefreshTokenGrant:
    """App+user tokens for one Partner Center scope (``partner_center_scope`` or ``..._webhook_scope``)."""
    require(settings, *PARTNER_CENTER_CREDENTIALS, scope_field)
    secret = settings.partner_center_client_secret
    return RefreshTokenGrant(
        settings.entra_authority_host,
        str(settings.partner_center_tenant_id),
        str(settings.partner_center_client_id),
        secret.get_secret_value() if secret else "",
        getattr(settings, scope_field),
        store,
        timeout=settings.http_timeout_seconds,
        max_attempts=_token_attempts(settings),
        names=partner_center_names(alias(scope_field)),
    )


def _partner_center_token(scope_field: str) -> RefreshTokenGrant:
    settings = get_settings()
    require(settings, *PARTNER_CENTER_CREDENTIALS)
    return partner_center_token(settings, scope_field, _refresh_token_store())


def build_referrals_client(settings: Settings, token: RefreshTokenGrant) -> ReferralsClient:
    url = settings.partner_center_api_url
    return ReferralsClient(_http(settings, "partner-center", url, token, "PARTNER_CENTER_API_URL"))


def build_webhook_registration_client(settings: Settings, token: RefreshTokenGrant) -> WebhookRegistrationClient:
    url = settings.partner_center_webhook_api_url
    return WebhookRegistrationClient(
        _http(settings, "partner-center-webhooks", url, token, "PARTNER_CENTER_WEBHOOK_API_URL")
    )


@Once
def referrals_client() -> ReferralsClient:
    return build_referrals_client(get_settings(), _partner_center_token("partner_center_scope"))


@Once
def webhook_registration_client() -> WebhookRegistrationClient:
    return build_webhook_registration_client(get_settings(), _partner_center_token("partner_center_webhook_scope"))


@Once
def crm() -> CrmPort:
    """The CRM adapter CRM_KIND names: the one place an adapter is chosen."""
    return build_crm(get_settings())


def build_crm(settings: Settings) -> DynamicsCrm | SalesforceCrm:
    """A new adapter for ``settings`` (the doctor builds one with short timeouts)."""
    return _salesforce(settings) if settings.crm_kind == "salesforce" else _dynamics(settings)


def dataverse_token(settings: Settings) -> ClientCredentialsToken:
    require(settings, "dataverse_url", "dataverse_tenant_id", "dataverse_client_id", "dataverse_client_secret")
    org = str(settings.dataverse_url).rstrip("/")
    secret = settings.dataverse_client_secret
    return ClientCredentialsToken(
        settings.entra_authority_host,
        str(settings.dataverse_tenant_id),
        str(settings.dataverse_client_id),
        secret.get_secret_value() if secret else "",
        f"{org}/.default",
        timeout=settings.http_timeout_seconds,
        max_attempts=_token_attempts(settings),
        names=DATAVERSE_NAMES,
    )


def salesforce_session(settings: Settings) -> ClientCredentialsSession:
    require(settings, "salesforce_login_url", "salesforce_client_id", "salesforce_client_secret")
    secret = settings.salesforce_client_secret
    return ClientCredentialsSession(
        str(settings.salesforce_login_url).rstrip("/"),
        str(settings.salesforce_client_id),
        secret.get_secret_value() if secret else "",
        timeout=settings.http_timeout_seconds,
        max_attempts=_token_attempts(settings),
        names=SALESFORCE_NAMES,
    )


def _dynamics(settings: Settings) -> DynamicsCrm:
    token = dataverse_token(settings)
    org = str(settings.dataverse_url).rstrip("/")
    fields = dynamics_field_map(
        deal_value_field=settings.deal_value_field,
        deal_currency_field=settings.deal_currency_field,
        account_country_field=settings.account_country_field,
        overrides_json=settings.crm_field_map,
    )
    http = _http(settings, "dataverse", f"{org}/{API_PATH}", token, "DATAVERSE_URL")
    http.limiter = crm_limiter(settings, f"dataverse {org} {settings.dataverse_client_id}", dataverse_budget())
    client = DataverseClient(http)
    return DynamicsCrm(
        client, fields, display_checkmark=settings.display_checkmark, audit_max_chars=settings.audit_max_chars
    )


def _salesforce(settings: Settings) -> SalesforceCrm:
    session = salesforce_session(settings)
    origin = str(settings.salesforce_login_url).rstrip("/")
    fields = salesforce_field_map(
        deal_value_field=settings.deal_value_field,
        deal_currency_field=settings.deal_currency_field,
        account_country_field=settings.account_country_field,
        overrides_json=settings.crm_field_map,
    )
    http = ServiceClient(
        "salesforce",
        f"{origin}/services/data/{settings.salesforce_api_version}/",
        auth=session,
        timeout=settings.http_timeout_seconds,
        max_attempts=settings.http_max_attempts,
        max_backoff=settings.http_max_backoff_seconds,
        error_parser=salesforce_error,
        throttled=limit_exceeded,
        settings=("SALESFORCE_LOGIN_URL",),
        limiter=crm_limiter(
            settings,
            f"salesforce {origin} {settings.salesforce_client_id}",
            salesforce_budget(settings.salesforce_limit_pause_seconds),
        ),
    )
    return SalesforceCrm(
        SalesforceClient(http, origin=origin, limit_pause=settings.salesforce_limit_pause_seconds),
        fields,
        user=lambda: session.user_id,
        stage_pending=settings.salesforce_stage_pending,
        stage_accepted=settings.salesforce_stage_accepted,
        lead_status=settings.salesforce_lead_status,
        display_checkmark=settings.display_checkmark,
        audit_max_chars=settings.audit_max_chars,
    )


def crm_schema() -> CrmSchema:
    """The schema check / setup of the CRM CRM_KIND names."""
    return schema_of(crm())


def schema_of(adapter: CrmPort) -> CrmSchema:
    schema = getattr(adapter, "schema", None)
    if schema is None:
        raise ConfigurationError(f"CRM_KIND={get_settings().crm_kind} has no schema setup", ["CRM_KIND"])
    return schema  # type: ignore[no-any-return]


def connector_links() -> ConnectorLinks:
    """Linking the records of Microsoft's co-sell connector in the CRM CRM_KIND names (CONNECTOR_FIELD_MAP)."""
    adapter = crm()
    adoption = getattr(adapter, "adoption", None)
    if adoption is None:
        raise ConfigurationError(f"CRM_KIND={get_settings().crm_kind} has no connector to adopt from")
    return adoption(get_settings().connector_field_map)  # type: ignore[no-any-return]


@Once
def state_store() -> StateStore:
    return StateStore(table_client(get_settings(), SYNC_STATE_TABLE))


@Once
def operations_table() -> TableClient:
    return table_client(get_settings(), OPERATIONS_TABLE)


@Once
def sync_counters() -> SyncCounters:
    """This process's counts of the hour: one row of its own, so concurrent workers never contend."""
    return SyncCounters(operations_table())


@Once
def audit_log() -> AuditLog:
    return AuditLog(table_client(get_settings(), AUDIT_TABLE), counters=sync_counters())


@Once
def lease_store() -> LeaseStore:
    return LeaseStore(table_client(get_settings(), LEASE_TABLE))


def _inbound_options(settings: Settings) -> InboundOptions:
    return InboundOptions(
        display_checkmark=settings.display_checkmark,
        sync_cosell_only=settings.sync_cosell_only,
        referral_link_template=settings.referral_link_template,
    )


@Once
def inbound_sync() -> InboundSync:
    settings = get_settings()
    return InboundSync(
        referrals=referrals_client(),
        crm=crm(),
        state=state_store(),
        audit=audit_log(),
        options=_inbound_options(settings),
        lease_seconds=settings.lease_seconds,
        lease_wait=settings.lease_wait_seconds,
    )


@Once
def outbound_sync() -> OutboundSync:
    settings = get_settings()
    return OutboundSync(
        referrals=referrals_client(),
        crm=crm(),
        state=state_store(),
        audit=audit_log(),
        leases=lease_store(),
        inbound_options=_inbound_options(settings),
        lease_seconds=settings.lease_seconds,
        lease_wait=settings.lease_wait_seconds,
        max_seconds=settings.crm_poll_max_seconds,
        concurrency=settings.crm_poll_concurrency,
    )


@Once
def referral_queue() -> QueueClient:
    return queue_client(get_settings(), REFERRAL_EVENTS_QUEUE)


def enqueue(message: ReferralMessage, *, delay_seconds: float = 0) -> None:
    """Queue a referral for the worker; ``delay_seconds`` keeps it invisible that long (a throttled remote)."""
    delay = min(math.ceil(delay_seconds), MAX_VISIBILITY_DELAY) if delay_seconds > 0 else None
    referral_queue().send_message(message.to_json(), visibility_timeout=delay)


@Once
def poison_queues() -> QueueDepthReader:
    """Clients kept across polls: the queue-depth sample each minute reuses their connections and tokens."""
    settings = get_settings()
    return QueueDepthReader({name: queue_client(settings, name) for name in POISON_QUEUES})


@Once
def backfill_queue() -> QueueClient:
    return queue_client(get_settings(), BACKFILL_QUEUE)


def enqueue_page(message: BackfillPageMessage, *, delay_seconds: float = 0) -> None:
    """Queue one page of a backfill's listing; ``delay_seconds`` keeps the listing to its pace."""
    delay = min(math.ceil(delay_seconds), MAX_VISIBILITY_DELAY) if delay_seconds > 0 else None
    backfill_queue().send_message(message.to_json(), visibility_timeout=delay)


@Once
def backfill_store() -> BackfillStore:
    return BackfillStore(table_client(get_settings(), OPERATIONS_TABLE))


@Once
def recent_failures() -> RecentFailures:
    return RecentFailures(table_client(get_settings(), OPERATIONS_TABLE))


@Once
def backfill() -> Backfill:
    settings = get_settings()
    return Backfill(
        referrals=referrals_client(),
        state=state_store(),
        store=backfill_store(),
        enqueue_referral=enqueue,
        enqueue_page=enqueue_page,
        crm_kind=settings.crm_kind,
        per_minute=settings.backfill_referrals_per_minute,
        ahead=dt.timedelta(minutes=settings.backfill_queue_ahead_minutes),
    )


@Once
def referral_worker() -> ReferralWorker:
    # The sync is looked up per message, so a worker that only drops duplicates builds no CRM client.
    return ReferralWorker(
        sync=lambda referral_id, source: inbound_sync().sync(referral_id, source=source),
        progress=backfill_store(),
        failures=recent_failures(),
        enqueue=enqueue,
        crm_kind=get_settings().crm_kind,
    )


@Once
def status_queues() -> QueueDepthReader:
    """Every queue the status route shows, with its front message's age; clients kept across calls."""
    settings = get_settings()
    return QueueDepthReader({name: queue_client(settings, name) for name in STATUS_QUEUES})


def status_sources() -> StatusSources:
    settings = get_settings()
    operations = operations_table()
    return StatusSources(
        state=state_store(),
        backfill=backfill_store(),
        failures=recent_failures(),
        queue_depth=status_queues().read,
        crm_kind=settings.crm_kind,
        syncs=lambda now: last_24_hours(operations, now),
        links=RecordLinks.from_settings(settings),
        version=running_version(settings),
        poll_schedule=settings.crm_poll_schedule,
        reconcile_schedule=settings.reconcile_schedule,
    )


def running_version(settings: Settings) -> str:
    """The code's version, plus APP_BUILD (a commit or pipeline run your deployment sets) when there is one."""
    return f"{__version__}+{settings.app_build}" if settings.app_build else __version__


@Once
def reconciler() -> Reconciler:
    settings = get_settings()
    return Reconciler(
        referrals=referrals_client(),
        state=state_store(),
        leases=lease_store(),
        enqueue=enqueue,
        first_run_lookback=dt.timedelta(hours=settings.reconcile_first_run_hours),
        max_seconds=settings.reconcile_max_seconds,
    )


def reset() -> None:
    """Forget everything built (tests change settings between cases)."""
    get_settings.cache_clear()
    forget_limiters()
    for factory in (
        webhook_verifier,
        _refresh_token_store,
        referrals_client,
        webhook_registration_client,
        crm,
        state_store,
        operations_table,
        sync_counters,
        audit_log,
        lease_store,
        referral_queue,
        poison_queues,
        status_queues,
        inbound_sync,
        outbound_sync,
        reconciler,
        backfill_queue,
        backfill_store,
        recent_failures,
        backfill,
        referral_worker,
    ):
        factory.cache_clear()

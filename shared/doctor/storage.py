"""Storage (AzureWebJobsStorage): tables and queues reachable with the app's own settings."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared.config import ConfigurationError, Settings
from shared.doctor.explain import origin
from shared.doctor.report import fail, ok, warn
from shared.doctor.runner import Group
from shared.messages import REFERRAL_EVENTS_QUEUE
from shared.store.clients import (
    POISON_SUFFIX,
    TABLES,
    TOKEN_TABLE,
    queue_client,
    storage_problem,
    storage_settings,
    table_service,
)
from shared.store.tokens import TableRefreshTokenStore

STORAGE = "Storage"

# Short timeouts and no SDK retries: the doctor asks once and says what happened.
OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 10, "retry_total": 0}


def token_store(settings: Settings) -> TableRefreshTokenStore:
    """The app's own refresh-token store (table TokenCache): a token the doctor redeems is rotated,
    and the new one must be where the app looks for it."""
    service = table_service(settings, **OPTIONS)
    service.create_table_if_not_exists(TOKEN_TABLE)
    secret = settings.partner_center_refresh_token
    return TableRefreshTokenStore(
        service.get_table_client(TOKEN_TABLE), seed=secret.get_secret_value() if secret else None
    )


def check_storage(settings: Settings, group: Group) -> None:
    names = storage_settings(settings)
    group.step("listing the storage account's tables", names)
    service = None
    try:
        service = table_service(settings, **OPTIONS)
        tables = {table.name for table in service.list_tables(results_per_page=100)}
        group.step("reading the queues", names)
        depths = {}
        for queue in (REFERRAL_EVENTS_QUEUE, REFERRAL_EVENTS_QUEUE + POISON_SUFFIX):
            try:
                depths[queue] = (
                    queue_client(settings, queue, **OPTIONS).get_queue_properties().approximate_message_count
                )
            except ResourceNotFoundError:
                depths[queue] = None  # created with the first message
    except (AzureError, ConfigurationError, ValueError) as exc:
        detail, settings_named = storage_problem(settings, exc)
        where = f"{origin(service.url)}: " if service is not None else ""
        group.report(fail(STORAGE, where + detail, settings_named))
        return
    where = origin(service.url)
    present = sum(1 for table in TABLES if table in tables)
    queued = depths[REFERRAL_EVENTS_QUEUE] or 0
    poisoned = depths[REFERRAL_EVENTS_QUEUE + POISON_SUFFIX] or 0
    summary = (
        f"{where}: tables and queues reachable; {present} of {len(TABLES)} tables exist, {queued} message(s) queued"
    )
    if poisoned:
        group.report(
            warn(
                STORAGE,
                f"{summary}, {poisoned} in {REFERRAL_EVENTS_QUEUE}{POISON_SUFFIX}: fix their cause (see AuditLog), "
                "then POST /api/manage/replay-poison",
            )
        )
        return
    group.report(ok(STORAGE, summary))

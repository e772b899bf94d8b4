"""Storage clients from the host's own ``AzureWebJobsStorage`` settings.

Locally that is a connection string (Azurite); in Azure it is identity-based
(``AzureWebJobsStorage__accountName`` or ``__tableServiceUri``/``__queueServiceUri`` plus
``__clientId`` for a user-assigned identity), so the app needs no storage key at all.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.config import ConfigurationError, Settings
from shared.store.metering import record_queue_request, record_table_request
from shared.store.transport import with_transport

log = logging.getLogger("cosell.store")

SYNC_STATE_TABLE = "SyncState"
AUDIT_TABLE = "AuditLog"
LEASE_TABLE = "Leases"
TOKEN_TABLE = "TokenCache"  # noqa: S105 - a table name, not a secret
OPERATIONS_TABLE = "Operations"  # backfill jobs and recent failures: what GET /api/manage/status reads
TABLES = (SYNC_STATE_TABLE, AUDIT_TABLE, LEASE_TABLE, TOKEN_TABLE, OPERATIONS_TABLE)

POISON_SUFFIX = "-poison"

_created: set[tuple[str, str]] = set()
_created_lock = threading.Lock()


def _credential(settings: Settings) -> Any:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if settings.storage_client_id:
        return ManagedIdentityCredential(client_id=settings.storage_client_id)
    return DefaultAzureCredential()


STORAGE_SETTINGS = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__clientId",
)


def storage_settings(settings: Settings) -> list[str]:
    """The storage settings in force (what to check when storage fails)."""
    if settings.storage_connection:
        return ["AzureWebJobsStorage"]
    named = {
        "AzureWebJobsStorage__accountName": settings.storage_account_name,
        "AzureWebJobsStorage__tableServiceUri": settings.storage_table_uri,
        "AzureWebJobsStorage__queueServiceUri": settings.storage_queue_uri,
        "AzureWebJobsStorage__clientId": settings.storage_client_id,
    }
    return [name for name, value in named.items() if value] or ["AzureWebJobsStorage"]


def _service_uri(settings: Settings, kind: str) -> str:
    explicit = settings.storage_table_uri if kind == "table" else settings.storage_queue_uri
    if explicit:
        return explicit
    if settings.storage_account_name:
        return f"https://{settings.storage_account_name}.{kind}.core.windows.net"
    raise ConfigurationError(
        "No storage configured: set AzureWebJobsStorage (or AzureWebJobsStorage__accountName).",
        ["AzureWebJobsStorage"],
    )


def _refuse_placeholders(settings: Settings) -> None:
    settings.refuse_placeholders(*STORAGE_SETTINGS)


def table_service(settings: Settings, **options: Any) -> TableServiceClient:
    """``options`` go to the Azure SDK pipeline (the doctor passes short timeouts and no retries)."""
    _refuse_placeholders(settings)
    options.setdefault("raw_request_hook", record_table_request)
    options = with_transport(options, connection_timeout=300, read_timeout=300)  # azure-core's defaults
    if settings.storage_connection:
        try:
            return TableServiceClient.from_connection_string(settings.storage_connection, **options)
        except ValueError as exc:
            raise _malformed() from exc
    return TableServiceClient(endpoint=_service_uri(settings, "table"), credential=_credential(settings), **options)


def _malformed() -> ConfigurationError:
    # The SDK's own message may quote the connection string, key included: say only which setting.
    return ConfigurationError("AzureWebJobsStorage is not a valid connection string.", ["AzureWebJobsStorage"])


def table_client(settings: Settings, name: str) -> TableClient:
    """A client for ``name``, creating the table once per process (Bicep creates them in Azure)."""
    service = table_service(settings)
    key = (service.url, name)
    with _created_lock:
        if key not in _created:
            service.create_table_if_not_exists(name)
            _created.add(key)
    return service.get_table_client(name)


def queue_client(settings: Settings, name: str, **options: Any) -> QueueClient:
    """Base64 on the wire, as the Functions queue trigger expects (host.json messageEncoding)."""
    _refuse_placeholders(settings)
    options.setdefault("raw_request_hook", record_queue_request)
    options = with_transport(options, connection_timeout=20, read_timeout=60)  # azure-storage-queue's defaults
    policies = {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}
    if settings.storage_connection:
        try:
            client = QueueClient.from_connection_string(settings.storage_connection, name, **policies, **options)
        except ValueError as exc:
            raise _malformed() from exc
    else:
        client = QueueClient(
            _service_uri(settings, "queue"), name, credential=_credential(settings), **policies, **options
        )
    return client


def storage_problem(settings: Settings, exc: Exception) -> tuple[str, list[str]]:
    """One sentence for a storage failure (never the connection string), and the settings to look at."""
    names = storage_settings(settings)
    if isinstance(exc, ConfigurationError):
        return str(exc), exc.settings or names
    if isinstance(exc, ClientAuthenticationError):
        return f"storage refused the app's credentials ({_code(exc)})", names
    if isinstance(exc, ServiceRequestError):
        return f"cannot reach the storage account ({type(exc).__name__})", names
    if isinstance(exc, HttpResponseError):
        return f"storage answered {exc.status_code} {_code(exc)}", names
    if isinstance(exc, ValueError):  # the SDK's word for a malformed connection string
        return "AzureWebJobsStorage is not a valid connection string", names
    return f"storage failed: {type(exc).__name__}", names


def _code(exc: HttpResponseError) -> str:
    return str(getattr(exc, "error_code", None) or exc.reason or exc.status_code or "").strip()

"""Storage clients from the host's own ``AzureWebJobsStorage`` settings.

Locally that is a connection string (Azurite); in Azure it is identity-based
(``AzureWebJobsStorage__accountName`` or ``__tableServiceUri``/``__queueServiceUri`` plus
``__clientId`` for a user-assigned identity), so the app needs no storage key at all.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.config import Settings

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


def _service_uri(settings: Settings, kind: str) -> str:
    explicit = settings.storage_table_uri if kind == "table" else settings.storage_queue_uri
    if explicit:
        return explicit
    if settings.storage_account_name:
        return f"https://{settings.storage_account_name}.{kind}.core.windows.net"
    raise RuntimeError("No storage configured: set AzureWebJobsStorage (or AzureWebJobsStorage__accountName).")


def table_service(settings: Settings) -> TableServiceClient:
    if settings.storage_connection:
        return TableServiceClient.from_connection_string(settings.storage_connection)
    return TableServiceClient(endpoint=_service_uri(settings, "table"), credential=_credential(settings))


def table_client(settings: Settings, name: str) -> TableClient:
    """A client for ``name``, creating the table once per process (Bicep creates them in Azure)."""
    service = table_service(settings)
    key = (service.url, name)
    with _created_lock:
        if key not in _created:
            service.create_table_if_not_exists(name)
            _created.add(key)
    return service.get_table_client(name)


def queue_client(settings: Settings, name: str) -> QueueClient:
    """Base64 on the wire, as the Functions queue trigger expects (host.json messageEncoding)."""
    policies = {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}
    if settings.storage_connection:
        client = QueueClient.from_connection_string(settings.storage_connection, name, **policies)
    else:
        client = QueueClient(_service_uri(settings, "queue"), name, credential=_credential(settings), **policies)
    return client

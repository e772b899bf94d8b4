"""Storage Queue access shared by the queue listeners and the queue output binding.

Clients are created without encode/decode policies so the host applies ``messageEncoding`` itself:
messages cross the wire exactly as the real host writes and expects them (base64 by default).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, QueueServiceClient

# Fail fast on a dead storage endpoint so pollers and shutdown are not stuck in SDK retries.
_CLIENT_OPTIONS = {"retry_total": 2, "connection_timeout": 5, "read_timeout": 30}


class MessageDecodeError(ValueError):
    """A queue message is not valid for the configured ``messageEncoding``."""


def encode_message(body: bytes, encoding: str) -> str:
    """The text to store for ``body``: base64, or the UTF-8 text itself when encoding is ``none``."""
    if encoding == "base64":
        return base64.b64encode(body).decode("ascii")
    return body.decode("utf-8")


def decode_message(content: str | None, encoding: str) -> bytes:
    """The message body the function sees, from the stored text."""
    text = content or ""
    if encoding != "base64":
        return text.encode("utf-8")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MessageDecodeError(
            "The input is not a valid Base-64 string (host.json extensions.queues.messageEncoding is 'base64'; "
            "enqueue with TextBase64EncodePolicy)"
        ) from exc


class QueueStorage:
    """One service client per connection string, and a memo of queues already created."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[str, QueueServiceClient] = {}
        self._ensured: set[tuple[str, str]] = set()

    def _service(self, connection_string: str) -> QueueServiceClient:
        with self._lock:
            service = self._services.get(connection_string)
            if service is None:
                service = QueueServiceClient.from_connection_string(connection_string, **_CLIENT_OPTIONS)
                self._services[connection_string] = service
            return service

    def queue(self, connection_string: str, queue_name: str, *, create: bool = True) -> QueueClient:
        """A raw client for ``queue_name``; creates the queue the first time unless ``create`` is false."""
        client = self._service(connection_string).get_queue_client(queue_name)
        key = (connection_string, queue_name)
        if create and key not in self._ensured:
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            with self._lock:
                self._ensured.add(key)
        return client

    def forget(self, connection_string: str, queue_name: str) -> None:
        """Drop the memo so the next :meth:`queue` call creates the queue again (e.g. after a 404)."""
        with self._lock:
            self._ensured.discard((connection_string, queue_name))

    def close(self) -> None:
        with self._lock:
            for service in self._services.values():
                service.close()
            self._services.clear()

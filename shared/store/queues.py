"""How many messages wait in a queue, for the poison-queue alert: one properties call per queue.

The poison queues are the ones the Functions host fills (``<queue>-poison``) when a message failed
``maxDequeueCount`` times (host.json). Azure Storage Analytics has no per-queue message count, so
the app reads it itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from shared.messages import BACKFILL_QUEUE, REFERRAL_EVENTS_QUEUE
from shared.store.clients import POISON_SUFFIX

# Every queue a function triggers on has one; tests/infra checks this against the Bicep's queues.
POISON_QUEUES = (REFERRAL_EVENTS_QUEUE + POISON_SUFFIX, BACKFILL_QUEUE + POISON_SUFFIX)


@dataclass(frozen=True)
class QueueDepth:
    messages: int  # approximate, invisible messages included (Get Queue Metadata)
    oldest_age_seconds: int | None = None  # of the message at the front, when there is one


class QueueDepthReader:
    def __init__(
        self,
        clients: Mapping[str, QueueClient],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._clients = dict(clients)
        self._clock = clock

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._clients)

    def read(self, name: str) -> QueueDepth:
        client = self._clients[name]
        try:
            properties = client.get_queue_properties()
        except ResourceNotFoundError:
            return QueueDepth(0)  # not created yet (the host creates a poison queue on first use)
        count = int(properties.approximate_message_count or 0)
        if count == 0:
            return QueueDepth(0)
        # A second call only while the queue holds something: how long the front message has waited.
        # Queues are only roughly FIFO, and a message being replayed is invisible to a peek.
        try:
            front = next(iter(client.peek_messages(max_messages=1)), None)
        except Exception:  # the age is a nicety: a message the base64 policy cannot decode (the SDK then
            front = None  # fails building its DecodeError, an AttributeError) or a vanished queue leave it out
        inserted = getattr(front, "inserted_on", None)
        if inserted is None:
            return QueueDepth(count)
        age = int((self._clock() - inserted).total_seconds())
        return QueueDepth(count, max(age, 0))

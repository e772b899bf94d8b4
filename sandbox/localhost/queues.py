"""Queue triggers: one polling listener per function, with the Storage extension's retry and poison rules.

As the Storage queues extension's ``QueueListener`` does (Azure/azure-sdk-for-net,
sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Queues; Azure/azure-webjobs-sdk
``Queues/Listeners/QueueListener.cs``):

- a poll asks for ``batchSize`` messages; once a batch was found, the next poll comes as soon as the
  messages in flight fall to ``newBatchThreshold`` (so at most batchSize + newBatchThreshold run);
- an empty poll backs off with ``RandomizedExponentialBackoffStrategy``: 100 ms, then 100 ms plus
  100 ms x 2^(n-1) x a random factor in [0.8, 1.2], up to ``maxPollingInterval``; a found message
  resets it to 100 ms;
- a message a function of the same host enqueues through a queue output binding wakes that queue's
  listener at once (``SharedQueueWatcher.Notify`` from ``QueueAsyncCollector.AddAsync``): the
  "queue output can directly trigger a queue input" optimisation of ``QueuesExtensionConfigProvider``;
- a failed message becomes visible again after ``visibilityTimeout``; once its dequeue count
  reaches ``maxDequeueCount`` it is copied to ``<queue>-poison`` (created if missing) and deleted;
- a message the configured ``messageEncoding`` cannot decode goes straight to the poison queue.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StoredMessage

from .functions import FunctionSpec
from .invoker import ADMIN_REASON, Invoker
from .settings import QueueOptions
from .storage import MessageDecodeError, QueueStorage, decode_message

log = logging.getLogger("localhost.queues")

MIN_POLLING_INTERVAL = 0.1  # QueuePollingIntervals.Minimum
RANDOMIZATION_FACTOR = 0.2
MAX_MESSAGES_PER_RECEIVE = 32  # service limit
DEFAULT_LEASE_SECONDS = 600  # the host keeps a message invisible 10 minutes while it runs
POISON_SUFFIX = "-poison"


class Backoff:
    """The extension's ``RandomizedExponentialBackoffStrategy`` with delta = minimum = 100 ms."""

    def __init__(self, maximum: float, *, rng: random.Random | None = None) -> None:
        self._maximum = max(maximum, MIN_POLLING_INTERVAL)
        self._rng = rng or random.Random()  # jitter, not security
        self._current = MIN_POLLING_INTERVAL
        self._exponent = 0

    def next_delay(self, found_messages: bool) -> float:
        if found_messages:
            self._current, self._exponent = MIN_POLLING_INTERVAL, 1
        elif self._current != self._maximum:
            interval = MIN_POLLING_INTERVAL
            if self._exponent > 0:
                factor = self._rng.uniform(1 - RANDOMIZATION_FACTOR, 1 + RANDOMIZATION_FACTOR)
                interval += factor * 2 ** (self._exponent - 1) * MIN_POLLING_INTERVAL
            if interval < self._maximum:
                self._current = interval
                self._exponent += 1
            else:
                self._current = self._maximum
        return self._current


class QueueWatcher:
    """``SharedQueueWatcher``: a queue output binding tells the same host's listeners of that queue to poll now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[tuple[str, str], list[QueueListener]] = {}

    def register(self, connection_string: str, queue_name: str, listener: QueueListener) -> None:
        with self._lock:
            self._listeners.setdefault((connection_string, queue_name), []).append(listener)

    def notify(self, connection_string: str, queue_name: str) -> None:
        with self._lock:
            listeners = list(self._listeners.get((connection_string, queue_name), ()))
        for listener in listeners:
            listener.notify()


class QueueListener:
    """Polls one queue for one function until :meth:`stop`."""

    def __init__(
        self,
        spec: FunctionSpec,
        invoker: Invoker,
        storage: QueueStorage,
        options: QueueOptions,
        *,
        function_timeout: float | None = None,
        watcher: QueueWatcher | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        assert spec.queue is not None
        self.spec = spec
        self._target = spec.queue
        self._invoker = invoker
        self._storage = storage
        self._options = options
        self._lease = DEFAULT_LEASE_SECONDS if function_timeout is None else math.ceil(function_timeout) + 60
        self._batch = min(options.batch_size, MAX_MESSAGES_PER_RECEIVE)
        self._in_flight = 0
        self._settled = threading.Condition()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._backoff = backoff or Backoff(options.max_polling_interval)
        self.polls = 0  # receive requests made: what an idle queue costs in storage transactions
        workers = self._batch + options.new_batch_threshold
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"queue-{spec.name}")
        self._thread = threading.Thread(target=self._run, name=f"poll-{spec.name}", daemon=True)
        if watcher is not None:
            watcher.register(self._target.connection_string, self._target.queue_name, self)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop receiving; messages already running finish on their own threads."""
        self._stop.set()
        self._wake.set()
        with self._settled:
            self._settled.notify_all()
        self._executor.shutdown(wait=False)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def notify(self) -> None:
        """A message was just added to this queue by this host: end the back-off wait now."""
        self._wake.set()

    # -- polling -------------------------------------------------------------------------------

    def _run(self) -> None:
        client: QueueClient | None = None
        failing = False
        found_since_delay = False
        while not self._stop.is_set():
            received: list[StoredMessage] = []
            try:
                if client is None:
                    client = self._storage.queue(self._target.connection_string, self._target.queue_name)
                self.polls += 1
                received = list(client.receive_messages(max_messages=self._batch, visibility_timeout=self._lease))
                if failing:
                    log.info("Queue '%s' is reachable again", self._target.queue_name)
                    failing = False
            except Exception as exc:
                if isinstance(exc, ResourceNotFoundError):  # deleted under us: create it again next round
                    self._storage.forget(self._target.connection_string, self._target.queue_name)
                    client = None
                if not failing:
                    log.warning(
                        "Polling queue '%s' for Functions.%s failed: %s", self._target.queue_name, self.spec.name, exc
                    )
                    failing = True
            if received:
                assert client is not None
                found_since_delay = True
                with self._settled:
                    self._in_flight += len(received)
                for message in received:
                    self._dispatch(client, message)
                self._wait_for_new_batch_threshold()
                continue
            delay = self._backoff.next_delay(found_since_delay)
            found_since_delay = False
            self._wake.wait(delay)
            self._wake.clear()

    def _wait_for_new_batch_threshold(self) -> None:
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight <= self._options.new_batch_threshold or self._stop.is_set())

    def _dispatch(self, client: QueueClient, message: StoredMessage) -> None:
        try:
            self._executor.submit(self._process, client, message)
        except RuntimeError:  # stopping: hand the message back instead of letting its lease run out
            self._settle()
            try:
                client.update_message(message.id, pop_receipt=message.pop_receipt, visibility_timeout=0)
            except Exception as exc:
                log.warning("Queue '%s': could not release message %s: %s", self._target.queue_name, message.id, exc)

    def _settle(self) -> None:
        with self._settled:
            self._in_flight -= 1
            self._settled.notify_all()

    # -- processing ----------------------------------------------------------------------------

    def _process(self, client: QueueClient, message: StoredMessage) -> None:
        try:
            # In flight until the message is settled (deleted, released or poisoned), not just invoked.
            with self._invoker.tracked():
                self._handle(client, message)
        except Exception:
            log.exception("Queue '%s': handling message %s failed", self._target.queue_name, message.id)
        finally:
            self._settle()

    def _handle(self, client: QueueClient, message: StoredMessage) -> None:
        max_count = self._options.max_dequeue_count
        if message.dequeue_count is not None and message.dequeue_count > max_count:
            self._poison(client, message)  # e.g. the host died mid-run too often
            return
        try:
            body = decode_message(message.content, self._options.message_encoding)
        except MessageDecodeError as exc:
            log.error("Queue '%s': message %s: %s", self._target.queue_name, message.id, exc)
            self._poison(client, message)
            return
        trigger = QueueMessage(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        result = self._invoker.invoke(self.spec, trigger, f"New queue message detected on '{self._target.queue_name}'.")
        if result.succeeded:
            client.delete_message(message.id, message.pop_receipt)
        elif (message.dequeue_count or 0) >= max_count:
            self._poison(client, message)
        else:
            client.update_message(
                message.id, pop_receipt=message.pop_receipt, visibility_timeout=round(self._options.visibility_timeout)
            )

    def _poison(self, client: QueueClient, message: StoredMessage) -> None:
        poison_name = f"{self._target.queue_name}{POISON_SUFFIX}"
        if self._target.queue_name.endswith(POISON_SUFFIX) or len(poison_name) > 63:
            log.error(
                "Queue '%s': message %s exhausted its retries and has no valid poison queue; leaving it",
                self._target.queue_name,
                message.id,
            )
            return
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self._options.max_dequeue_count,
            poison_name,
        )
        poison = self._storage.queue(self._target.connection_string, poison_name)
        poison.send_message(message.content or "")
        client.delete_message(message.id, message.pop_receipt)

    # -- admin ---------------------------------------------------------------------------------

    def invoke_admin(self, body: bytes) -> None:
        """``POST /admin/functions/<name>``: run once with ``body``; no storage message, so no retries."""
        now = datetime.now(UTC)
        trigger = QueueMessage(
            id=str(uuid.uuid4()), body=body, dequeue_count=1, insertion_time=now, time_next_visible=now
        )
        self._invoker.invoke(self.spec, trigger, ADMIN_REASON)

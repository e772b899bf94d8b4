"""Queue triggers: one polling listener per function, with the Storage extension's retry and poison rules.

- up to ``batchSize`` messages are processed in parallel per function;
- an idle queue is polled with exponential back-off from 100 ms up to ``maxPollingInterval``;
- a failed message becomes visible again after ``visibilityTimeout``; once its dequeue count
  reaches ``maxDequeueCount`` it is copied to ``<queue>-poison`` (created if missing) and deleted;
- a message the configured ``messageEncoding`` cannot decode goes straight to the poison queue.
"""

from __future__ import annotations

import logging
import math
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

MIN_POLLING_INTERVAL = 0.1
MAX_MESSAGES_PER_RECEIVE = 32  # service limit
DEFAULT_LEASE_SECONDS = 600  # the host keeps a message invisible 10 minutes while it runs
POISON_SUFFIX = "-poison"


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
    ) -> None:
        assert spec.queue is not None
        self.spec = spec
        self._target = spec.queue
        self._invoker = invoker
        self._storage = storage
        self._options = options
        self._lease = DEFAULT_LEASE_SECONDS if function_timeout is None else math.ceil(function_timeout) + 60
        self._slots = threading.Semaphore(options.batch_size)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=options.batch_size, thread_name_prefix=f"queue-{spec.name}")
        self._thread = threading.Thread(target=self._run, name=f"poll-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop receiving; messages already running finish on their own threads."""
        self._stop.set()
        self._wake.set()
        self._executor.shutdown(wait=False)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # -- polling -------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = MIN_POLLING_INTERVAL
        client: QueueClient | None = None
        failing = False
        while not self._stop.is_set():
            slots = self._acquire_slots()
            if not slots:
                break
            received: list[StoredMessage] = []
            try:
                if client is None:
                    client = self._storage.queue(self._target.connection_string, self._target.queue_name)
                received = list(client.receive_messages(max_messages=slots, visibility_timeout=self._lease))
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
            self._release(slots - len(received))
            if received:
                delay = MIN_POLLING_INTERVAL
                assert client is not None
                for message in received:
                    self._dispatch(client, message)
                continue
            self._wake.wait(delay)
            if self._wake.is_set():
                self._wake.clear()
                delay = MIN_POLLING_INTERVAL
            else:
                delay = min(delay * 2, self._options.max_polling_interval)

    def _dispatch(self, client: QueueClient, message: StoredMessage) -> None:
        try:
            self._executor.submit(self._process, client, message)
        except RuntimeError:  # stopping: hand the message back instead of letting its lease run out
            self._release(1)
            try:
                client.update_message(message.id, pop_receipt=message.pop_receipt, visibility_timeout=0)
            except Exception as exc:
                log.warning("Queue '%s': could not release message %s: %s", self._target.queue_name, message.id, exc)

    def _acquire_slots(self) -> int:
        """Block until at least one processing slot is free; then take as many as are free."""
        while not self._slots.acquire(timeout=0.25):
            if self._stop.is_set():
                return 0
        if self._stop.is_set():
            self._slots.release()
            return 0
        taken = 1
        while taken < min(self._options.batch_size, MAX_MESSAGES_PER_RECEIVE) and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    # -- processing ----------------------------------------------------------------------------

    def _process(self, client: QueueClient, message: StoredMessage) -> None:
        try:
            # In flight until the message is settled (deleted, released or poisoned), not just invoked.
            with self._invoker.tracked():
                self._handle(client, message)
        except Exception:
            log.exception("Queue '%s': handling message %s failed", self._target.queue_name, message.id)
        finally:
            self._release(1)
            self._wake.set()  # a retried message is visible again: poll soon

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

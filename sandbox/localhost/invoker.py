"""Invoking a user function: keyword arguments by binding name, output bindings, context and the log lines.

Every trigger goes through :meth:`Invoker.invoke`, so all of them log the same
``Executing``/``Executed`` pair Core Tools prints, flush queue outputs only on success, and count as
in-flight work that a graceful stop waits for.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from .functions import RETURN, FunctionSpec, OutputBinding
from .settings import HostOptions
from .storage import QueueStorage, encode_message

log = logging.getLogger("localhost.host")

ADMIN_REASON = "This function was programmatically called via the host APIs."


class OutValue(func.Out[Any]):
    """The object passed for an output binding; the value is read after the function returns."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


@dataclass(frozen=True)
class TraceContext:
    trace_parent: str
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryContext:
    retry_count: int = 0
    max_retry_count: int = 0
    exception: Any = None


class InvocationContext(func.Context):
    """What the worker passes as ``context``."""

    _thread_local = threading.local()

    def __init__(self, invocation_id: str, function_name: str, function_directory: str, retry: RetryContext) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace = TraceContext(trace_parent=f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01")
        self._retry = retry

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return self._trace

    @property
    def retry_context(self) -> Any:
        return self._retry


@dataclass
class InvocationResult:
    invocation_id: str
    succeeded: bool
    value: Any = None
    error: BaseException | None = None


def queue_bodies(value: Any) -> list[bytes]:
    """Message bodies from a queue output value: str, bytes, QueueMessage, or an iterable of those."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, list | tuple):
        bodies: list[bytes] = []
        for item in value:
            if not isinstance(item, str | bytes | bytearray | func.QueueMessage):
                raise TypeError(f"invalid data type in output queue message list: {type(item).__name__}")
            bodies.extend(queue_bodies(item))
        return bodies
    raise TypeError(f"a queue output takes str, bytes, QueueMessage or a list of them, not {type(value).__name__}")


def _without_host_frames(error: BaseException) -> BaseException:
    """Drop this module's frames from the traceback so the log shows the user's stack, as Core Tools does."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return error.with_traceback(tb) if tb is not None else error


class Invoker:
    """Runs functions and tracks in-flight invocations."""

    def __init__(
        self,
        storage: QueueStorage,
        options: HostOptions,
        function_directory: str,
        *,
        on_enqueued: Callable[[str, str], None] | None = None,
    ) -> None:
        self._storage = storage
        self._options = options
        self._directory = function_directory
        self._on_enqueued = on_enqueued  # (connection string, queue): the host's SharedQueueWatcher.Notify
        self._active = 0
        self._idle = threading.Condition()

    @property
    def active(self) -> int:
        return self._active

    def hold(self) -> None:
        """Count one more unit of in-flight work; pair with :meth:`release` (even across threads)."""
        with self._idle:
            self._active += 1

    def release(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    @contextmanager
    def tracked(self) -> Iterator[None]:
        """Count a unit of work (an invocation or an HTTP exchange) until it finishes."""
        self.hold()
        try:
            yield
        finally:
            self.release()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no work is in flight; False when ``timeout`` ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout=timeout)

    def invoke(
        self, spec: FunctionSpec, trigger_value: Any, reason: str, *, retry: RetryContext | None = None
    ) -> InvocationResult:
        """Call the function with its bindings; never raises for the function's own errors."""
        invocation_id = str(uuid.uuid4())
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.monotonic()
        with self.tracked():
            try:
                outs = {o.name: OutValue() for o in spec.outputs if o.name != RETURN}
                kwargs: dict[str, Any] = {spec.trigger_arg: trigger_value, **outs}
                if spec.wants_context:
                    kwargs["context"] = InvocationContext(
                        invocation_id, spec.name, self._directory, retry or RetryContext()
                    )
                value = self._call(spec, kwargs)
                for output in spec.outputs:
                    self._flush(output, value if output.name == RETURN else outs[output.name].get())
            except Exception as exc:
                self._finish(spec, invocation_id, started, succeeded=False, error=exc)
                return InvocationResult(invocation_id, succeeded=False, error=exc)
        self._finish(spec, invocation_id, started, succeeded=True)
        return InvocationResult(invocation_id, succeeded=True, value=value)

    @staticmethod
    def _call(spec: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        value = spec.user_function(**kwargs)
        if inspect.isawaitable(value):
            # async def functions: the worker awaits them on its event loop; one loop per call is enough here.
            async def wait() -> Any:
                return await value

            value = asyncio.run(wait())
        return value

    def _flush(self, output: OutputBinding, value: Any) -> None:
        bodies = queue_bodies(value)
        if not bodies:
            return
        target = output.target
        client = self._storage.queue(target.connection_string, target.queue_name)
        encoding = self._options.queues.message_encoding
        for body in bodies:
            client.send_message(encode_message(body, encoding))
            if self._on_enqueued is not None:
                self._on_enqueued(target.connection_string, target.queue_name)

    def _finish(
        self, spec: FunctionSpec, invocation_id: str, started: float, *, succeeded: bool, error: Exception | None = None
    ) -> None:
        elapsed = time.monotonic() - started
        duration = round(elapsed * 1000)
        if succeeded:
            log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", spec.name, invocation_id, duration)
        else:
            log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", spec.name, invocation_id, duration)
            log.error(
                "Exception while executing function: Functions.%s. Result: Failure",
                spec.name,
                exc_info=_without_host_frames(error) if error else None,
            )
        limit = self._options.function_timeout
        if limit is not None and elapsed > limit:
            log.warning(
                "Functions.%s ran %.1fs, past functionTimeout (%.0fs); the real host would have stopped it",
                spec.name,
                elapsed,
                limit,
            )

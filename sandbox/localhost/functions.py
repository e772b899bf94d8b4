"""Indexing: load the ``FunctionApp`` and turn each function into a resolved, validated :class:`FunctionSpec`.

Binding expressions (``%NAME%``), connection settings and schedules are resolved once, at startup,
as the real host does when it indexes. A function that fails to index is reported and skipped while
the others run, which is how the host treats a function-level error.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from .schedule import Schedule, parse_schedule
from .settings import Settings, SettingsError, parse_timespan

HTTP_TRIGGER = "httpTrigger"
QUEUE_TRIGGER = "queueTrigger"
TIMER_TRIGGER = "timerTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER)
RETURN = "$return"

_QUEUE_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class IndexingError(ValueError):
    """Why one function cannot run locally."""


@dataclass(frozen=True)
class QueueTarget:
    """A resolved queue: its name plus the connection it lives in."""

    queue_name: str
    connection_name: str
    connection_string: str


@dataclass(frozen=True)
class OutputBinding:
    """A queue output binding (the only output besides the HTTP response the local host supports)."""

    name: str
    target: QueueTarget


@dataclass(frozen=True)
class HttpRoute:
    template: str
    methods: frozenset[str] | None  # None: every method


@dataclass(frozen=True)
class RetryPolicy:
    """``@app.retry``: honoured for timer triggers, as in the real host."""

    strategy: str
    max_retry_count: int  # -1: forever
    delay_interval: float = 0.0
    minimum_interval: float = 0.0
    maximum_interval: float = 0.0

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        if self.strategy == "fixed_delay":
            return self.delay_interval
        return min(self.minimum_interval * 2 ** (retry_number - 1), self.maximum_interval or float("inf"))


@dataclass(frozen=True)
class TimerSpec:
    expression: str
    schedule: Schedule
    run_on_startup: bool


@dataclass
class FunctionSpec:
    """Everything needed to invoke one function."""

    name: str
    trigger_type: str
    trigger_arg: str
    user_function: Callable[..., Any]
    wants_context: bool = False
    outputs: list[OutputBinding] = field(default_factory=list)
    http: HttpRoute | None = None
    queue: QueueTarget | None = None
    timer: TimerSpec | None = None
    retry: RetryPolicy | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary for ``GET /admin/functions``."""
        info: dict[str, Any] = {"name": self.name, "trigger": self.trigger_type}
        if self.http:
            info["route"] = self.http.template
            info["methods"] = sorted(self.http.methods) if self.http.methods else None
        if self.queue:
            info["queue"] = self.queue.queue_name
            info["connection"] = self.queue.connection_name
        if self.timer:
            info["schedule"] = self.timer.expression
            info["run_on_startup"] = self.timer.run_on_startup
        if self.outputs:
            info["outputs"] = [{"name": o.name, "type": "queue", "queue": o.target.queue_name} for o in self.outputs]
        return info


@dataclass
class AppIndex:
    functions: dict[str, FunctionSpec]
    errors: dict[str, str]
    warnings: dict[str, str] = field(default_factory=dict)


RESERVED_ROUTE_PREFIXES = ("admin", "runtime")


def reserved_route_warning(template: str) -> str | None:
    """Azure refuses HTTP routes that start with its own ``admin``/``runtime`` segments, even under ``/api``.

    The deployed host reports such a function as in error ("The specified route conflicts with one or
    more built in routes", Azure/azure-functions-host#1781); locally it is served but flagged.
    """
    first = template.strip("/").split("/")[0].lower()
    if first in RESERVED_ROUTE_PREFIXES:
        return (
            f"route '{template}' starts with '{first}': the Azure Functions host rejects it (\"The specified route "
            'conflicts with one or more built in routes"), so this function would not load when deployed'
        )
    return None


def load_app(reference: str) -> func.FunctionApp:
    """Import ``module:attribute``; a bare Blueprint is wrapped in a fresh FunctionApp."""
    module_name, _, attribute = reference.partition(":")
    module = importlib.import_module(module_name)
    target = getattr(module, attribute or "app")
    if isinstance(target, func.FunctionApp):
        return target
    if isinstance(target, func.Blueprint):
        app = func.FunctionApp()
        app.register_functions(target)
        return app
    raise TypeError(f"{reference} is a {type(target).__name__}, not an azure.functions.FunctionApp")


def _method_name(method: Any) -> str:
    return str(getattr(method, "value", method)).upper()


def _queue_target(settings: Settings, queue_name: str, connection: str | None) -> QueueTarget:
    name = settings.resolve(queue_name)
    if not _QUEUE_NAME.match(name):
        raise IndexingError(
            f"invalid queue name {name!r}: 3-63 lowercase letters, digits and single dashes, starting and "
            "ending with a letter or digit"
        )
    setting, value = settings.connection_string(connection)
    return QueueTarget(queue_name=name, connection_name=setting, connection_string=value)


def _retry_policy(function: Any) -> RetryPolicy | None:
    raw = function.get_settings_dict("retry_policy")
    if not raw:
        return None
    strategy = str(raw.get("strategy", "")).lower()
    if strategy not in ("fixed_delay", "exponential_backoff"):
        raise IndexingError(f"unknown retry strategy {raw.get('strategy')!r}")

    def span(key: str) -> float:
        value = raw.get(key)
        return parse_timespan(value, f"retry {key}") if value else 0.0

    return RetryPolicy(
        strategy=strategy,
        max_retry_count=int(raw.get("max_retry_count", 0)),
        delay_interval=span("delay_interval"),
        minimum_interval=span("minimum_interval"),
        maximum_interval=span("maximum_interval"),
    )


def _check_signature(spec: FunctionSpec, bindings: Iterable[str]) -> None:
    """Mirror the worker's load-time check that Python parameters and bindings line up."""
    parameters = inspect.signature(spec.user_function).parameters
    names = set(bindings) - {RETURN}
    missing = sorted(n for n in names if n not in parameters)
    if missing:
        raise IndexingError(f"bindings {missing} have no parameter of that name in the function signature")
    spec.wants_context = "context" in parameters and "context" not in names
    extra = sorted(
        name
        for name, p in parameters.items()
        if name not in names
        and name != "context"
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    )
    if extra:
        raise IndexingError(f"parameters {extra} are declared in Python but have no binding")


def build_spec(function: Any, settings: Settings) -> FunctionSpec:
    """Resolve one decorated function; raises :class:`IndexingError` or ``SettingsError`` with the reason."""
    trigger = function.get_trigger()
    if trigger is None:
        raise IndexingError("no trigger")
    kind = trigger.get_binding_name()
    if kind not in SUPPORTED_TRIGGERS:
        raise IndexingError(f"trigger type {kind!r} is not supported by the local host")
    spec = FunctionSpec(
        name=function.get_function_name(),
        trigger_type=kind,
        trigger_arg=trigger.name,
        user_function=function.get_user_function(),
    )
    binding_names = [trigger.name]
    for binding in function.get_bindings():
        if binding is trigger or binding.get_binding_name() == kind:
            continue
        binding_type = binding.get_binding_name()
        if binding_type == "http" and kind == HTTP_TRIGGER:
            continue
        if binding_type == "queue":
            target = _queue_target(settings, binding.queue_name, binding.connection)
            spec.outputs.append(OutputBinding(name=binding.name, target=target))
            binding_names.append(binding.name)
            continue
        raise IndexingError(f"binding type {binding_type!r} ({binding.name}) is not supported by the local host")
    if kind == HTTP_TRIGGER:
        methods = frozenset(_method_name(m) for m in trigger.methods) if trigger.methods else None
        spec.http = HttpRoute(template=(trigger.route or spec.name).strip("/"), methods=methods)
    elif kind == QUEUE_TRIGGER:
        spec.queue = _queue_target(settings, trigger.queue_name, trigger.connection)
    else:
        expression = settings.resolve(trigger.schedule)
        spec.timer = TimerSpec(expression, parse_schedule(expression), bool(trigger.run_on_startup))
        spec.retry = _retry_policy(function)
    _check_signature(spec, binding_names)
    return spec


def index_app(app: func.FunctionApp, settings: Settings) -> AppIndex:
    """Index every function once (``get_functions()`` may only be called once per app)."""
    index = AppIndex(functions={}, errors={})
    for function in app.get_functions():
        name = function.get_function_name()
        try:
            spec = build_spec(function, settings)
        except (IndexingError, SettingsError, ValueError) as exc:
            index.errors[name] = str(exc)
            continue
        index.functions[name] = spec
        if spec.http is not None and (warning := reserved_route_warning(spec.http.template)):
            index.warnings[name] = warning
    return index

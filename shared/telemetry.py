"""The signals Azure Monitor alerts on: one log line per signal, ``cosell_metric <name>=<value> key=value ...``.

Why log lines and not custom metrics: the Python worker already hands every log record to the
Functions host, which writes it to Application Insights ``traces``, with no SDK in the app. That
path keeps the message text only (``extra=`` fields are dropped), so each signal is a line the
alert queries in ``infra/app/alerts/*.kql`` match by its prefix and read with a regex. Custom
metrics would need the OpenTelemetry distro in the worker. README, "Alerts", has the full reasoning.

Names and dimension keys are fixed here; values are counts, queue names, code words and record ids,
never customer data or secrets. Emitting never raises: a signal must not break the sync it reports on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from shared.store.queues import QueueDepth

LOGGER = "cosell.metrics"
PREFIX = "cosell_metric"

# poll_succeeded  1 per CRM poll that handled everything the CRM had changed (infra: alert "no-poll")
# sync_failed     1 per record or referral whose sync failed for good, once per cause (alert "failures")
# poison_depth    messages in one poison queue, sampled every CRM poll (alert "poison")
Metric = Literal["poll_succeeded", "sync_failed", "poison_depth"]

log = logging.getLogger(LOGGER)
_warn = logging.getLogger("cosell.telemetry")  # our own trouble, kept off the signal logger

_KEY = re.compile(r"[a-z][a-z0-9_]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")  # what a dimension value may hold: no spaces, no '=' or quotes
MAX_VALUE_CHARS = 64


def line(name: Metric, value: int, **dims: str | int) -> str:
    """The exact text of one signal; dimensions keep the order they are given in."""
    parts = [f"{PREFIX} {name}={int(value)}"]
    for key, raw in dims.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"dimension key {key!r} must be lower snake case")
        parts.append(f"{key}={_UNSAFE.sub('_', str(raw))[:MAX_VALUE_CHARS] or '-'}")
    return " ".join(parts)


def emit(name: Metric, value: int, **dims: str | int) -> None:
    try:
        log.info(line(name, value, **dims))
    except Exception as exc:  # a bad dimension is our bug; the sync it reports on goes on
        _warn.warning("signal %s not emitted (%s)", name, type(exc).__name__)


class QueueDepths(Protocol):
    @property
    def names(self) -> Iterable[str]: ...

    def read(self, name: str) -> QueueDepth: ...


def report_poison_depths(queues: Callable[[], QueueDepths]) -> None:
    """One ``poison_depth`` line per poison queue; a queue that cannot be read is left out, with one warning.

    ``queues`` builds the reader here, so a storage misconfiguration is reported, not raised over
    whatever the caller was doing.
    """
    unreadable: list[str] = []
    try:
        reader = queues()
        names = list(reader.names)
    except Exception as exc:
        _warn.warning("Poison queue depth not read: %s", type(exc).__name__)
        return
    for name in names:
        try:
            depth = reader.read(name)
        except Exception as exc:  # storage down or misconfigured
            unreadable.append(f"{name} ({type(exc).__name__})")
            continue
        dims: dict[str, str | int] = {"queue": name}
        if depth.oldest_age_seconds is not None:
            dims["oldest_age_s"] = depth.oldest_age_seconds
        emit("poison_depth", depth.messages, **dims)
    if unreadable:
        _warn.warning("Poison queue depth not read: %s", ", ".join(unreadable))

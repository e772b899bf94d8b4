"""App settings (environment + ``local.settings.json``) and the host.json options the local host honours.

Core Tools loads ``local.settings.json`` ``Values`` into the worker's environment for names the
environment does not already set, so user code reading ``os.environ`` sees the same merged view that
binding expressions (``%NAME%``) resolve against.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_SETTINGS_FILE = "local.settings.json"
HOST_JSON_FILE = "host.json"

_EXPRESSION = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})(?::(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?)?$")


class SettingsError(ValueError):
    """A setting or host.json option is missing or malformed; the message says which."""


class Settings(Mapping[str, str]):
    """Read-only app settings. Lookups fall back to a case-insensitive match, like .NET configuration."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self._folded = {k.lower(): v for k, v in self._values.items()}

    def __getitem__(self, key: str) -> str:
        if key in self._values:
            return self._values[key]
        return self._folded[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._values or key.lower() in self._folded)

    def resolve(self, expression: str) -> str:
        """Replace every ``%NAME%`` with its setting; a missing one is an error, as in the real host."""

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self:
                raise SettingsError(f"'%{name}%' does not resolve to a value (app setting {name!r} is not set)")
            return self[name]

        return _EXPRESSION.sub(substitute, expression)

    def connection_string(self, connection: str | None) -> tuple[str, str]:
        """Resolve a binding's ``connection`` to ``(setting name, connection string)``.

        The WebJobs SDK tries the name as given, then with an ``AzureWebJobs`` prefix; an empty name
        means ``AzureWebJobsStorage``.
        """
        name = self.resolve(connection) if connection else "AzureWebJobsStorage"
        for candidate in (name, f"AzureWebJobs{name}"):
            value = self.get(candidate)
            if value:
                return candidate, value
        raise SettingsError(
            f"storage connection {name!r} is not configured: set the app setting {name!r} to a connection "
            "string (e.g. 'UseDevelopmentStorage=true' or an explicit Azurite string with QueueEndpoint=...)"
        )


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def read_local_settings(script_root: Path) -> dict[str, Any]:
    """The parsed ``local.settings.json`` (empty when absent)."""
    path = script_root / LOCAL_SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{path} must hold a JSON object")
    if document.get("IsEncrypted") is True:
        raise SettingsError(f"{path} is encrypted (IsEncrypted=true); the local host cannot decrypt it")
    return document


def load_settings(script_root: Path, environ: MutableMapping[str, str] | None = None) -> tuple[Settings, list[str]]:
    """Merge ``local.settings.json`` ``Values`` under the environment and export the added names.

    Returns the merged settings and the names that came from the file. The environment wins.
    """
    env = os.environ if environ is None else environ
    values = read_local_settings(script_root).get("Values") or {}
    if not isinstance(values, dict):
        raise SettingsError(f"{LOCAL_SETTINGS_FILE}: 'Values' must be an object")
    from_file: list[str] = []
    for name, raw in values.items():
        if name not in env:
            env[name] = _stringify(raw)
            from_file.append(name)
    return Settings(dict(env)), from_file


def local_http_port(script_root: Path) -> int | None:
    """``Host.LocalHttpPort`` from ``local.settings.json``, which Core Tools uses when no port is given."""
    host = read_local_settings(script_root).get("Host") or {}
    port = host.get("LocalHttpPort") if isinstance(host, dict) else None
    return int(port) if port else None


def parse_timespan(value: Any, what: str) -> float:
    """Seconds in a .NET TimeSpan string (``[d.]hh:mm[:ss[.fffffff]]``), as host.json writes durations."""
    if not isinstance(value, str) or not (match := _TIMESPAN.match(value.strip())):
        raise SettingsError(f"host.json: {what} must be a TimeSpan like '00:00:30', got {value!r}")
    fraction = match.group("f") or "0"
    return (
        int(match.group("days") or 0) * 86400
        + int(match.group("h")) * 3600
        + int(match.group("m")) * 60
        + int(match.group("s") or 0)
        + int(fraction) / 10 ** len(fraction)
    )


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` with the Storage extension's defaults."""

    batch_size: int = 16
    # A new batch is fetched once in-flight messages fall to this: at most batchSize + newBatchThreshold
    # run at once. Default (batchSize / 2) x processor count, as the Storage extension's QueuesOptions.
    new_batch_threshold: int = 8 * (os.cpu_count() or 1)
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostOptions:
    """The subset of host.json the local host uses."""

    queues: QueueOptions = field(default_factory=QueueOptions)
    function_timeout: float | None = None
    route_prefix: str = "api"


def _section(document: Mapping[str, Any], *path: str) -> dict[str, Any]:
    """Walk nested objects with case-insensitive keys (host.json is read by .NET configuration)."""
    current: Any = document
    for key in path:
        if not isinstance(current, Mapping):
            return {}
        current = next((v for k, v in current.items() if k.lower() == key.lower()), {})
    return {k.lower(): v for k, v in current.items()} if isinstance(current, Mapping) else {}


def _int(section: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    raw = section.get(key.lower(), default)
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).strip().lstrip("-").isdigit():
        raise SettingsError(f"host.json: extensions.queues.{key} must be an integer, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise SettingsError(f"host.json: extensions.queues.{key} must be between {low} and {high}, got {value}")
    return value


def parse_host_json(document: Mapping[str, Any]) -> HostOptions:
    """Validate and default the host.json options; malformed values fail fast with the key's name."""
    queues = _section(document, "extensions", "queues")
    batch_size = _int(queues, "batchSize", 16, 1, 32)
    encoding = str(queues.get("messageencoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise SettingsError(
            f"host.json: extensions.queues.messageEncoding must be 'base64' or 'none', got {encoding!r}"
        )
    polling = queues.get("maxpollinginterval")
    max_polling = 60.0 if polling is None else parse_timespan(polling, "extensions.queues.maxPollingInterval")
    if max_polling < 0.1:
        raise SettingsError("host.json: extensions.queues.maxPollingInterval must be at least 00:00:00.100")
    visibility = queues.get("visibilitytimeout")
    threshold_default = (batch_size // 2) * (os.cpu_count() or 1)
    options = QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=_int(queues, "newBatchThreshold", threshold_default, 0, 10_000),
        max_polling_interval=max_polling,
        visibility_timeout=0.0
        if visibility is None
        else parse_timespan(visibility, "extensions.queues.visibilityTimeout"),
        max_dequeue_count=_int(queues, "maxDequeueCount", 5, 1, 10_000),
        message_encoding=encoding,
    )
    timeout_raw = next((v for k, v in document.items() if k.lower() == "functiontimeout"), None)
    timeout = None
    if timeout_raw not in (None, "-1", -1):
        timeout = parse_timespan(timeout_raw, "functionTimeout")
    prefix = _section(document, "extensions", "http").get("routeprefix", "api")
    return HostOptions(queues=options, function_timeout=timeout, route_prefix=str(prefix).strip("/"))


HOST_OVERRIDE_PREFIX = "AzureFunctionsJobHost__"


def apply_host_overrides(document: dict[str, Any], settings: Mapping[str, str]) -> dict[str, Any]:
    """App settings ``AzureFunctionsJobHost__a__b`` override host.json's ``a.b``, as on the real host."""
    for name, value in settings.items():
        if not name.lower().startswith(HOST_OVERRIDE_PREFIX.lower()):
            continue
        *parents, leaf = name[len(HOST_OVERRIDE_PREFIX) :].split("__")
        node = document
        for part in parents:
            key = next((k for k in node if k.lower() == part.lower()), part)
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        leaf_key = next((k for k in node if k.lower() == leaf.lower()), leaf)
        node[leaf_key] = value
    return document


def load_host_options(script_root: Path, settings: Mapping[str, str] | None = None) -> HostOptions:
    """Read ``host.json`` from the script root (defaults without one), then apply app-setting overrides."""
    path = script_root / HOST_JSON_FILE
    document: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path} must hold a JSON object")
        document = loaded
    if settings:
        document = apply_host_overrides(document, settings)
    return parse_host_json(document) if document else HostOptions()

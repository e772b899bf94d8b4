"""Where the admin HTTP functions live: ``/api/<ADMIN_ROUTE_PREFIX>/...``.

Routes are fixed when the app is indexed, so the prefix is read from the settings then. The
default, ``manage``, is the documented contract: the Azure Functions host reserves routes that
start with ``admin`` (azure-functions-host #1781), so what runs locally is what deploys.
"""

from __future__ import annotations

import os
import re

from shared.config import ADMIN_ROUTE_PATTERN, ConfigurationError, get_settings

DEFAULT_PREFIX = "manage"


def admin_route(path: str) -> str:
    try:
        prefix = get_settings().admin_route_prefix
    except ConfigurationError:
        # Some setting is invalid. Indexing must not fail on it (the whole app, /api/health too, would
        # vanish behind an import error): the routes exist and refuse, naming the setting.
        raw = os.environ.get("ADMIN_ROUTE_PREFIX", "")
        prefix = raw if re.fullmatch(ADMIN_ROUTE_PATTERN, raw) else DEFAULT_PREFIX
    return f"{prefix}/{path}"

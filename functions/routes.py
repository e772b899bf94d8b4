"""Where the admin HTTP functions live: ``/api/<ADMIN_ROUTE_PREFIX>/...``.

Routes are fixed when the app is indexed, so the prefix is read from the settings then. The
default, ``manage``, is the documented contract: the Azure Functions host reserves routes that
start with ``admin`` (azure-functions-host #1781), so what runs locally is what deploys.
"""

from __future__ import annotations

from shared.config import get_settings


def admin_route(path: str) -> str:
    return f"{get_settings().admin_route_prefix}/{path}"

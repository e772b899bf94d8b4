"""Expected failures of the HTTP functions: one log line naming the cause, a JSON answer naming the settings.

A setting that is missing, invalid or still a placeholder, a token Entra ID or Salesforce refuses, a
host that cannot be reached, a storage account that fails: none of these is a bug, so none should
reach the Functions host as an exception (a 500 and a traceback that names no setting). Each is
answered ``{"error": {"status", "reason", "settings"}}``: 503 when this app's own configuration or
storage is at fault, 502 when a remote refused or did not answer.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from functions.responses import problem
from shared.auth import AuthError
from shared.config import ConfigurationError, get_settings
from shared.http import ApiUnavailable
from shared.store.clients import storage_problem

log = logging.getLogger("cosell.functions")

Handler = Callable[..., func.HttpResponse]


def storage_failure(exc: Exception) -> tuple[str, list[str]]:
    try:
        return storage_problem(get_settings(), exc)
    except ConfigurationError as invalid:
        return str(invalid), invalid.settings


Expected = ConfigurationError | AuthError | ApiUnavailable | AzureError
EXPECTED = (ConfigurationError, AuthError, ApiUnavailable, AzureError)


def refusal(name: str, exc: Expected) -> func.HttpResponse:
    """The answer (and the one log line) for an expected failure of function ``name``."""
    if isinstance(exc, ConfigurationError):
        log.error("%s refused: %s", name, exc)
        return problem(503, str(exc), settings=exc.settings)
    if isinstance(exc, AuthError):
        log.error("%s failed: %s", name, exc)
        return problem(502, str(exc), settings=exc.settings)
    if isinstance(exc, ApiUnavailable):
        log.error("%s failed: %s", name, exc)
        return problem(502, f"A remote could not be reached: {exc}", settings=exc.settings)
    reason, settings = storage_failure(exc)
    log.error("%s failed: %s", name, reason)
    return problem(503, f"Storage failed: {reason}", settings=settings)


def answers_failures(handler: Handler) -> Handler:
    """Wrap an HTTP function so its expected failures become :func:`refusal` answers.

    ``functools.wraps`` keeps the signature and annotations the Functions host reads its bindings from.
    """

    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            return handler(*args, **kwargs)
        except EXPECTED as exc:
            return refusal(handler.__name__, exc)

    return guarded

"""Which storage failures are outages rather than bugs.

A connection Azure Storage (or Azurite) dropped, a timeout or a 5xx from it says nothing about the
referral being synced: the sync must hand the message back for the host's retry, without ✖ on the
record or a "failed" audit line. azure-core does not retry a dropped POST (an insert) by itself,
since it cannot know whether the insert happened; the sync's own steps are safe to repeat.
"""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

_OUTAGE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_storage_outage(exc: BaseException) -> bool:
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in _OUTAGE_STATUSES

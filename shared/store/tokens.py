"""Keep the newest Partner Center refresh token across restarts and instances.

Entra issues a new refresh token on every redemption; an unused one expires after 90 days of
inactivity. The configured token (a Key Vault reference) is only the seed: rotated tokens are
stored in Table Storage (reachable only with the app's managed identity) together with a hash of
the seed they descend from, so putting a freshly consented token in Key Vault wins again.
"""

from __future__ import annotations

import hashlib
import threading

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

_PARTITION = "refresh-token"


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class TableRefreshTokenStore:
    def __init__(self, table: TableClient, *, seed: str | None, name: str = "partner-center") -> None:
        self._table = table
        self._seed = seed
        self._name = name
        self._memory: str | None = None
        self.lock = threading.Lock()

    def load(self) -> str | None:
        if not self._seed:
            return None
        try:
            row = self._table.get_entity(_PARTITION, self._name)
        except ResourceNotFoundError:
            row = None
        if row and row.get("seed_fingerprint") == _fingerprint(self._seed) and row.get("token"):
            self._memory = str(row["token"])
        return self._memory or self._seed

    def save(self, token: str) -> None:
        self._memory = token
        if not self._seed:
            return
        self._table.upsert_entity(
            {
                "PartitionKey": _PARTITION,
                "RowKey": self._name,
                "token": token,
                "seed_fingerprint": _fingerprint(self._seed),
            },
            mode=UpdateMode.REPLACE,
        )

"""Per-referral sync state: which CRM record it is, what was last synced, and content hashes.

One row per referral (PartitionKey ``referral``, RowKey = referral id), plus an index row per
CRM record (PartitionKey ``crm``, RowKey ``<entity>_<id>``) so the CRM → Partner Center direction
can find the referral of a CRM record.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

REFERRAL_PARTITION = "referral"
CRM_INDEX_PARTITION = "crm"


@dataclass
class SyncState:
    referral_id: str
    crm_kind: str = ""
    crm_entity: str = ""  # "opportunity" | "lead"
    crm_id: str = ""
    lead_id: str = ""  # the CRM lead a referral started as, once it became an opportunity
    pc_updated: str = ""  # updatedDateTime of the last referral version synced (ISO, UTC)
    pc_hash: str = ""  # hash of the last inbound plan applied
    part_hashes: dict[str, str] = field(default_factory=dict)
    crm_fields: dict[str, Any] = field(default_factory=dict)  # wire fields last written to the CRM
    crm_hash: str = ""  # outbound: hash of the CRM content last pushed to Partner Center
    last_outcome: str = ""
    last_error: str = ""
    last_synced_at: str = ""

    @property
    def pc_updated_at(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.pc_updated) if self.pc_updated else None


_JSON_FIELDS = ("part_hashes", "crm_fields")


class StateStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, referral_id: str) -> SyncState | None:
        try:
            entity = self._table.get_entity(REFERRAL_PARTITION, referral_id)
        except ResourceNotFoundError:
            return None
        values: dict[str, Any] = {}
        for name in SyncState.__dataclass_fields__:
            if name == "referral_id" or name not in entity:
                continue
            raw = entity[name]
            values[name] = json.loads(raw) if name in _JSON_FIELDS and raw else raw
        return SyncState(referral_id=referral_id, **values)

    def save(self, state: SyncState) -> None:
        entity: dict[str, Any] = {"PartitionKey": REFERRAL_PARTITION, "RowKey": state.referral_id}
        for name, value in asdict(state).items():
            if name == "referral_id":
                continue
            entity[name] = json.dumps(value, sort_keys=True) if name in _JSON_FIELDS else value
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        if state.crm_id:
            self._table.upsert_entity(
                {
                    "PartitionKey": CRM_INDEX_PARTITION,
                    "RowKey": f"{state.crm_entity}_{state.crm_id}",
                    "referral_id": state.referral_id,
                },
                mode=UpdateMode.REPLACE,
            )

    def referral_for_crm(self, entity: str, crm_id: str) -> str | None:
        try:
            row = self._table.get_entity(CRM_INDEX_PARTITION, f"{entity}_{crm_id}")
        except ResourceNotFoundError:
            return None
        return str(row["referral_id"])

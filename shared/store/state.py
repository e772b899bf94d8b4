"""Sync state in Table Storage: per referral, per CRM record, and the poll watermarks.

- PartitionKey ``referral``, RowKey = referral id: which CRM record it is, the last referral
  version synced, and hashes of what was written. Its ETag is also the referral's lock: a worker
  claims the row with a conditional write (``lease_owner``/``lease_until``) before it writes the
  CRM, and commits the new state If-Match that claim (shared/store/claims.py).
- PartitionKey ``crm``, RowKey ``<entity>_<id>``: the CRM record's referral, the hash of the
  content both sides last agreed on (the no-ping-pong key), its last rejection, and a create
  intent recorded before POSTing a new referral.
- PartitionKey ``watermark``: how far each poll has read.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.store.keys import table_key

REFERRAL_PARTITION = "referral"
CRM_INDEX_PARTITION = "crm"
WATERMARK_PARTITION = "watermark"


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
    last_outcome: str = ""
    last_error: str = ""
    last_synced_at: str = ""
    failed_version: str = ""  # updatedDateTime of the version that failed for good: reconcile leaves it be

    @property
    def pc_updated_at(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.pc_updated) if self.pc_updated else None


@dataclass
class CrmRecordState:
    entity: str
    crm_id: str
    referral_id: str = ""
    content_hash: str = ""  # the shared content both sides last agreed on
    rejected_hash: str = ""  # what was last refused (by validation or Partner Center): not re-sent until it changes
    last_error: str = ""
    create_intent: str = ""  # ISO time a create was attempted and not yet confirmed


@dataclass
class StateRow:
    """A referral's state row as read: the state it holds, its ETag (``""``: no row) and any claim on it."""

    referral_id: str
    state: SyncState | None = None  # None: no row, or a claim that has not committed a state yet
    etag: str = ""
    lease_owner: str = ""
    lease_until: str = ""  # ISO time the claim lapses

    def claimed(self, now: dt.datetime) -> bool:
        """A worker's claim is on the row and has not lapsed (a dead worker's claim lapses by itself)."""
        if not self.lease_owner or not self.lease_until:
            return False
        return dt.datetime.fromisoformat(self.lease_until) > now


class StateConflict(Exception):
    """The row changed since it was read (412), or another worker inserted it first (409): read it again."""


_JSON_FIELDS = ("part_hashes", "crm_fields")


class StateStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, referral_id: str) -> SyncState | None:
        return self.read(referral_id).state

    def read(self, referral_id: str) -> StateRow:
        """The row with its ETag: one GET, the only storage read a message needs."""
        try:
            entity = self._table.get_entity(REFERRAL_PARTITION, table_key(referral_id))
        except ResourceNotFoundError:
            return StateRow(referral_id)
        values: dict[str, Any] = {}
        for name in SyncState.__dataclass_fields__:
            if name == "referral_id" or name not in entity:
                continue
            raw = entity[name]
            values[name] = json.loads(raw) if name in _JSON_FIELDS and raw else raw
        # A row holding a claim only (its first sync is running, or died) holds no state yet.
        state = SyncState(referral_id=referral_id, **values) if values else None
        return StateRow(
            referral_id,
            state,
            etag=str(entity.metadata["etag"]),
            lease_owner=str(entity.get("lease_owner") or ""),
            lease_until=str(entity.get("lease_until") or ""),
        )

    def save(self, state: SyncState) -> None:
        """Unconditional replace, for tools and tests; the sync itself commits through a claim."""
        self._table.upsert_entity(_state_entity(state), mode=UpdateMode.REPLACE)

    def insert_claim(self, referral_id: str, owner: str, until: str) -> str:
        """Claim a referral that has no row yet; its ETag. A 409 (another worker inserted first) is a conflict."""
        entity = {
            "PartitionKey": REFERRAL_PARTITION,
            "RowKey": table_key(referral_id),
            "lease_owner": owner,
            "lease_until": until,
        }
        try:
            return str(self._table.create_entity(entity)["etag"])
        except ResourceExistsError as exc:
            raise StateConflict(referral_id) from exc

    def merge(self, referral_id: str, etag: str, **values: str) -> str:
        """Set some columns If-Match ``etag`` (a claim, its renewal or release, the out-of-order floor); new ETag."""
        entity = {"PartitionKey": REFERRAL_PARTITION, "RowKey": table_key(referral_id), **values}
        try:
            result = self._table.update_entity(
                entity, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StateConflict(referral_id) from exc
        return str(result["etag"])

    def commit(self, state: SyncState, etag: str) -> str:
        """Replace the row If-Match the claim's ETag: the new state, and the claim gone in the same write."""
        try:
            result = self._table.update_entity(
                _state_entity(state), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StateConflict(state.referral_id) from exc
        return str(result["etag"])

    def delete(self, referral_id: str, etag: str) -> None:
        """Drop a row If-Match ``etag`` (a first claim that committed nothing); a changed row is left alone."""
        try:
            self._table.delete_entity(
                REFERRAL_PARTITION, table_key(referral_id), etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StateConflict(referral_id) from exc

    def agree(self, entity: str, crm_id: str, referral_id: str, content_hash: str) -> None:
        """Both sides now hold the same content: link the CRM record to its referral, in one MERGE.

        The hash is what the next poll compares against; a rejection or create intent no longer applies.
        """
        self._table.upsert_entity(
            {
                "PartitionKey": CRM_INDEX_PARTITION,
                "RowKey": _crm_key(entity, crm_id),
                "entity": entity,
                "crm_id": crm_id,
                "referral_id": referral_id,
                "content_hash": content_hash,
                "rejected_hash": "",
                "last_error": "",
                "create_intent": "",
            },
            mode=UpdateMode.MERGE,
        )

    def get_crm(self, entity: str, crm_id: str) -> CrmRecordState | None:
        try:
            row = self._table.get_entity(CRM_INDEX_PARTITION, _crm_key(entity, crm_id))
        except ResourceNotFoundError:
            return None
        fields = CrmRecordState.__dataclass_fields__
        return CrmRecordState(
            **{k: row[k] for k in fields if k in row and k not in ("entity", "crm_id")}, entity=entity, crm_id=crm_id
        )

    def save_crm(self, record: CrmRecordState) -> None:
        self._table.upsert_entity(
            {"PartitionKey": CRM_INDEX_PARTITION, "RowKey": _crm_key(record.entity, record.crm_id), **asdict(record)},
            mode=UpdateMode.REPLACE,
        )

    def watermark(self, name: str) -> str | None:
        try:
            return str(self._table.get_entity(WATERMARK_PARTITION, name)["value"]) or None
        except ResourceNotFoundError:
            return None

    def save_watermark(self, name: str, value: str | None, **last_run: object) -> None:
        """The watermark, plus what the last run did (for operators: when, outcomes, API calls).

        A MERGE: a save mid-run (the watermark alone) keeps the last finished run's figures readable.
        """
        entity: dict[str, object] = {"PartitionKey": WATERMARK_PARTITION, "RowKey": name, "value": value or ""}
        entity.update({k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in last_run.items()})
        self._table.upsert_entity(entity, mode=UpdateMode.MERGE)

    def last_run(self, name: str) -> dict[str, object]:
        try:
            row = self._table.get_entity(WATERMARK_PARTITION, name)
        except ResourceNotFoundError:
            return {}
        return {k: v for k, v in row.items() if k not in ("PartitionKey", "RowKey")}


def _state_entity(state: SyncState) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": REFERRAL_PARTITION, "RowKey": table_key(state.referral_id)}
    for name, value in asdict(state).items():
        if name == "referral_id":
            continue
        entity[name] = json.dumps(value, sort_keys=True) if name in _JSON_FIELDS else value
    return entity


def _crm_key(entity: str, crm_id: str) -> str:
    return table_key(f"{entity}_{crm_id}")

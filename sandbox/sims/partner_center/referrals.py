"""Referral state: the stored referrals, what create/seed fill in, and the §1.6 status transitions.

Every write takes the simulator's lock, stamps ``updatedDateTime`` and a new ``eTag``, and reports the
change (``referral-created``/``referral-updated``) while still holding the lock, so events are queued in
the order the writes happened.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from sandbox.sims.partner_center.errors import ApiError, invalid
from sandbox.sims.partner_center.fields import canonical_keys, deep_merge
from sandbox.sims.partner_center.patch import Operation, apply_patch
from sandbox.sims.partner_center.stamps import Stamps

Record = dict[str, Any]
ChangeListener = Callable[[str, Record], None]

REFERRALS_PATH = "/v1.0/engagements/referrals"  # reference §1.1

# Status -> (statuses it may move to, substatuses allowed with it): reference §1.6.
TRANSITIONS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "New": (frozenset({"New", "Active", "Closed"}), ("Pending", "Received")),
    "Active": (frozenset({"Active", "Closed"}), ("Accepted",)),
    "Closed": (frozenset({"Closed"}), ("Won", "Lost", "Declined", "Expired")),
}
SUBSTATUS_STATUS: dict[str, str] = {sub: status for status, (_, subs) in TRANSITIONS.items() for sub in subs}
REFERRAL_TYPES: tuple[str, ...] = ("Shared", "Independent")  # reference §1.8 ReferralType
REQUIRED_ON_CREATE: tuple[str, ...] = ("type", "customerProfile", "consent", "details")  # reference §1.5
# Server-owned properties: whatever a create sends for them is ignored.
SERVER_OWNED: tuple[str, ...] = (
    "id",
    "eTag",
    "links",
    "@odata.context",
    "createdDateTime",
    "updatedDateTime",
    "acceptedDateTime",
    "organizationId",
    "organizationName",
    "direction",
)


class ReferralStore:
    """The referrals of one partner tenant, keyed by lower-cased id. Methods return copies."""

    def __init__(
        self,
        *,
        lock: threading.RLock,
        stamps: Stamps,
        organization_id: str,
        organization_name: str,
        on_change: ChangeListener,
    ) -> None:
        self.lock = lock
        self.stamps = stamps
        self.organization_id = organization_id
        self.organization_name = organization_name
        self._on_change = on_change
        self._records: dict[str, Record] = {}

    # ------------------------------------------------------------------ reads
    def find(self, referral_id: str) -> Record | None:
        """The stored record itself (not a copy); the caller holds :attr:`lock`."""
        return self._records.get(str(referral_id).lower())

    def get(self, referral_id: str) -> Record | None:
        with self.lock:
            record = self.find(referral_id)
            return copy.deepcopy(record) if record is not None else None

    def all(self) -> list[Record]:
        with self.lock:
            return copy.deepcopy(list(self._records.values()))

    def matching(self, predicate: Callable[[Record], bool]) -> list[Record]:
        with self.lock:
            return copy.deepcopy([r for r in self._records.values() if predicate(r)])

    def clear(self) -> None:
        with self.lock:
            self._records.clear()

    # ------------------------------------------------------------------ writes on Microsoft's side
    def seed(self, referral: Record, *, fire: bool = True) -> Record:
        """Store a referral as Microsoft (or another partner) would have created it for us: direction Incoming.

        Given fields are kept verbatim; an existing id is replaced and fires ``referral-updated`` instead.
        """
        record = canonical_keys(copy.deepcopy(referral))
        with self.lock:
            record.setdefault("id", self.stamps.new_id())
            record["id"] = str(record["id"])
            record.setdefault("engagementId", self.stamps.new_id())
            record.setdefault("organizationId", self.organization_id)
            record.setdefault("organizationName", self.organization_name)
            record.setdefault("direction", "Incoming")
            record.setdefault("status", "New")
            record.setdefault("substatus", "Pending")
            record.setdefault("externalReferenceId", None)
            if "updatedDateTime" not in record:
                record["updatedDateTime"] = record.get("createdDateTime") or self.stamps.now()
            record.setdefault("createdDateTime", record["updatedDateTime"])
            record.setdefault("eTag", self.stamps.new_etag())
            existed = record["id"].lower() in self._records
            self._records[record["id"].lower()] = record
            if fire:
                self._on_change("referral-updated" if existed else "referral-created", record)
            return copy.deepcopy(record)

    def update(self, referral_id: str, changes: Record, *, fire: bool = True) -> Record:
        """A change made on Microsoft's side (no transition rules): deep-merge, bump updatedDateTime and eTag.

        ``updatedDateTime``/``eTag`` given in ``changes`` win, so tests can stage out-of-order updates.
        """
        with self.lock:
            record = self.find(referral_id)
            if record is None:
                raise KeyError(referral_id)
            changes = canonical_keys(copy.deepcopy(changes))
            deep_merge(record, changes)
            if "updatedDateTime" not in changes:
                record["updatedDateTime"] = self.stamps.now()
            if "eTag" not in changes:
                record["eTag"] = self.stamps.new_etag()
            if fire:
                self._on_change("referral-updated", record)
            return copy.deepcopy(record)

    # ------------------------------------------------------------------ writes through the API
    def create(self, payload: Any) -> Record:
        """``POST /referrals``: our own (Outgoing) referral; server-owned fields are ours to set (reference §1.5)."""
        if not isinstance(payload, dict):
            raise invalid("The request body must be a JSON referral object.")
        record = canonical_keys(copy.deepcopy(payload))
        missing = [name for name in REQUIRED_ON_CREATE if record.get(name) in (None, "", {}, [])]
        if missing:
            raise invalid(f"Required properties are missing: {', '.join(missing)}.")
        record["type"] = enum_value(record["type"], REFERRAL_TYPES, "type")
        status, substatus = initial_status(record.get("status"), record.get("substatus"))
        normalise_deal_values(record)
        for name in SERVER_OWNED:
            record.pop(name, None)
        with self.lock:
            now = self.stamps.now()
            created = {
                "id": self.stamps.new_id(),
                "engagementId": str(record.pop("engagementId", None) or self.stamps.new_id()),
                "organizationId": self.organization_id,
                "organizationName": self.organization_name,
                "name": record.pop("name", None),
                "externalReferenceId": record.pop("externalReferenceId", None),
                "createdDateTime": now,
                "updatedDateTime": now,
                "acceptedDateTime": now,
                "expirationDateTime": record.pop("expirationDateTime", None),
                "status": status,
                "substatus": substatus,
                **record,
                "direction": "Outgoing",
                "eTag": self.stamps.new_etag(),
            }
            created["status"], created["substatus"] = status, substatus
            self._records[created["id"].lower()] = created
            self._on_change("referral-created", created)
            return copy.deepcopy(created)

    def patch(self, referral_id: str, operations: list[Operation], *, if_match: str | None) -> Record:
        """``PATCH /referrals/{id}`` with checked operations: all of them apply, or none do (reference §1.6)."""
        with self.lock:
            record = self.find(referral_id)
            if record is None:
                raise not_found(referral_id)
            # "If the If-Match header is passed, it will be used for concurrency control."
            if if_match is not None and if_match.strip() != "*" and if_match != record.get("eTag"):
                raise ApiError(
                    412,
                    "preconditionFailed",
                    "The referral has been modified since it was read: the If-Match "
                    "value does not match the current eTag.",
                )
            # "Expired, declined, won, and lost are terminal states" (reference §1.6, UI semantics).
            if str(record.get("status", "")).lower() == "closed":
                raise invalid(
                    f"The referral is closed ({record.get('status')}/"
                    f"{record.get('substatus')}), a terminal state; it can no longer be modified."
                )
            updated = copy.deepcopy(record)
            apply_patch(updated, operations)
            normalise_deal_values(updated)
            check_transition(record, updated)
            updated["updatedDateTime"] = self.stamps.now()
            updated["eTag"] = self.stamps.new_etag()
            record.clear()
            record.update(updated)
            self._on_change("referral-updated", record)
            return copy.deepcopy(record)


# ====================================================================== rendering
def render(record: Record, base: str | None) -> Record:
    """A copy for the wire; links are computed from the public address unless the referral brought its own."""
    rendered = copy.deepcopy(record)
    if "links" not in rendered and base is not None:
        engagement = rendered.get("engagementId")
        rendered["links"] = {
            "relatedReferrals": {
                "uri": f"{base}{REFERRALS_PATH}?$filter=engagementId eq '{engagement}'",
                "method": "GET",
            },
            "self": {"uri": f"{base}{REFERRALS_PATH}/{rendered['id']}", "method": "GET"},
        }
    return rendered


def not_found(referral_id: str) -> ApiError:
    return ApiError(404, "itemNotFound", f"Referral {referral_id} was not found.")


# ====================================================================== status and values (pure)
def enum_value(value: Any, allowed: tuple[str, ...], name: str) -> str:
    """The allowed spelling of ``value`` (enums match case-insensitively), or a 400 naming the choices."""
    for candidate in allowed:
        if isinstance(value, str) and value.lower() == candidate.lower():
            return candidate
    raise invalid(f"Invalid value {value!r} for {name}; expected one of {', '.join(allowed)}.")


def initial_status(status: Any, substatus: Any) -> tuple[str, str]:
    """Outgoing referrals start Active/Accepted unless the caller asks for another valid combination."""
    if status in (None, "") and substatus in (None, ""):
        return "Active", "Accepted"
    if status in (None, ""):
        sub = enum_value(substatus, tuple(SUBSTATUS_STATUS), "substatus")
        return SUBSTATUS_STATUS[sub], sub
    canonical = enum_value(status, tuple(TRANSITIONS), "status")
    allowed = TRANSITIONS[canonical][1]
    if substatus in (None, ""):
        if canonical == "Closed":
            raise invalid("A closed referral needs a substatus (Won, Lost, Declined, Expired).")
        return canonical, allowed[0]
    sub = enum_value(substatus, tuple(SUBSTATUS_STATUS), "substatus")
    if sub not in allowed:
        raise invalid(f"Substatus {sub} is not allowed with status {canonical}; allowed: {', '.join(allowed)}.")
    return canonical, sub


def check_transition(before: Record, after: Record) -> None:
    """Enforce §1.6 when a patch touches status or substatus; other edits leave seeded oddities alone."""
    if (before.get("status"), before.get("substatus")) == (after.get("status"), after.get("substatus")):
        return
    new = enum_value(after.get("status"), tuple(TRANSITIONS), "status")
    sub = enum_value(after.get("substatus"), tuple(SUBSTATUS_STATUS), "substatus")
    old_text = str(before.get("status") or "New")
    old = next((s for s in TRANSITIONS if s.lower() == old_text.lower()), None)
    allowed_statuses = TRANSITIONS[old][0] if old else frozenset(TRANSITIONS)
    allowed_subs = TRANSITIONS[new][1]
    if new not in allowed_statuses:
        raise invalid(
            f"Status transition {old} -> {new} is not allowed; from {old} the status can "
            f"become {', '.join(sorted(allowed_statuses))}."
        )
    if sub not in allowed_subs:
        raise invalid(f"Substatus {sub} is not allowed with status {new}; allowed: {', '.join(allowed_subs)}.")
    after["status"], after["substatus"] = new, sub


def normalise_deal_values(record: Any) -> None:
    """``dealValue`` is decimal on the resource, though Microsoft's own PATCH sample sends ``"10000"`` (§1.6)."""
    if isinstance(record, list):
        for item in record:
            normalise_deal_values(item)
        return
    if not isinstance(record, dict):
        return
    for key, value in list(record.items()):
        if key == "dealValue" and isinstance(value, str):
            record[key] = _number(value)
        else:
            normalise_deal_values(value)


def _number(text: str) -> int | float:
    try:
        number = float(text.strip())
    except ValueError:
        raise invalid(f"dealValue {text!r} is not a number.") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise invalid(f"dealValue {text!r} is not a number.")
    return int(number) if number.is_integer() else number

"""Partner Center simulator: the Referrals API, the Webhooks registration API and signed event delivery.

It speaks the wire formats of ``reference/partner-center-api.md``: OData list paging with an absolute
``@odata.nextLink``, JSON Patch with ``If-Match`` and the status transition table, the
``{"error": {...}}`` body, PascalCase webhook registrations, and events POSTed to the registered URL
signed with the sandbox PKI exactly like Partner Center signs them, so the app's real signature
check runs. Delivery is asynchronous and retried like the real service (10 attempts, then given up).

Control API (besides the base one), used by tests, ``make run`` and ``make demo``:

- ``POST  /_sim/referrals``        body = referral; seeds it as Microsoft would (fires ``referral-created``);
  ``?fire=false`` seeds silently
- ``GET   /_sim/referrals``        every stored referral
- ``GET   /_sim/referrals/<id>``   one referral (404 when unknown)
- ``PATCH /_sim/referrals/<id>``   deep-merges the body (fires ``referral-updated``); ``?fire=false``
- ``PUT   /_sim/delivery``         ``{"enabled": bool}`` turns event delivery on/off (off = events are lost)
- ``GET   /_sim/delivery``         ``{"enabled": bool}``
- ``GET   /_sim/deliveries``       finished deliveries; ``?count=N&timeout=S`` waits for N first
- ``POST  /_sim/deliver``          ``{"referralId", "eventName", "times"}`` re-sends an event
- ``GET   /_sim/registration``     the webhook registration (or null), without auth
- ``POST  /_sim/clear``            forgets referrals, registration, validation events and deliveries
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import queue
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from werkzeug.wrappers import Request, Response

from sandbox.pki import Pki
from sandbox.sims.base import Simulator, json_response
from sandbox.sims.odata import FilterError, compile_filter, sort_records

TokenValidator = Callable[[str], bool]

DEFAULT_ORGANIZATION_ID = "4f2a8c1e-7b3d-4e95-a6c0-2d81f5b9e347"
DEFAULT_ORGANIZATION_NAME = "Co-sell Sandbox Partner"

REFERRALS_PATH = "/v1.0/engagements/referrals"
EVENT_RESOURCE_PATH = "/engagements/v1/referrals"
WEBHOOKS_PATH = "/webhooks/v1"
CERT_PATH = "/cert/pcnotifications-dispatch.cer"

PAGE_SIZE = 100
REFERRAL_EVENTS = ("referral-created", "referral-updated", "related-referral-created", "related-referral-updated")
SUPPORTED_EVENTS = (
    *REFERRAL_EVENTS,
    "test-created",
    "subscription-updated",
    "usagerecords-thresholdExceeded",
    "invoice-ready",
    "dap-admin-relationship-approved",
    "dap-admin-relationship-terminated",
    "granular-admin-relationship-approved",
)

# Status -> (statuses it may move to, substatuses allowed with it): reference §1.6.
TRANSITIONS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "New": (frozenset({"New", "Active", "Closed"}), ("Pending", "Received")),
    "Active": (frozenset({"Active", "Closed"}), ("Accepted",)),
    "Closed": (frozenset({"Closed"}), ("Won", "Lost", "Declined", "Expired")),
}
_SUBSTATUS_STATUS = {sub: status for status, (_, subs) in TRANSITIONS.items() for sub in subs}
_REFERRAL_TYPES = ("Shared", "Independent")
_REQUIRED_ON_CREATE = ("type", "customerProfile", "consent", "details")
_READ_ONLY = frozenset(
    {
        "id",
        "engagementid",
        "organizationid",
        "organizationname",
        "createddatetime",
        "updateddatetime",
        "etag",
        "direction",
        "links",
        "@odata.context",
    }
)
# Wire names, so PascalCase input (as in some Microsoft samples) is stored the way the API returns it.
_KNOWN_FIELD_NAMES = """
    id engagementId organizationId organizationName name externalReferenceId createdDateTime updatedDateTime
    expirationDateTime acceptedDateTime status substatus statusReason type qualification referralSource
    callToAction customerProfile consent details customerMarketplaceIntent team inviteContext eTag target
    direction links salesStage campaignId partnerRole solutionArea solutionPlay notes dealValue currency
    closingDateTime requirements address size ids email firstName lastName phoneNumber contactPreference
    invitedBy assistanceRequestCode consentToContact consentToToShareInfoWithOthers
    consentToMicrosoftToContactSpecificPartners consentToShareReferralWithMicrosoftSellers
"""
_KNOWN_FIELDS = _KNOWN_FIELD_NAMES.split()
_CANONICAL = {name.lower(): name for name in _KNOWN_FIELDS} | {"referraltype": "type"}
_DATE_FIELDS = ("createdDateTime", "updatedDateTime", "expirationDateTime", "acceptedDateTime", "closingDateTime")
_QUOTED_DATE = re.compile(r"\b(" + "|".join(_DATE_FIELDS) + r")\s+(eq|ne|gt|ge|lt|le)\s+'", re.IGNORECASE)
_FAULT_CODES = {
    429: "tooManyRequests",
    500: "generalException",
    502: "badGateway",
    503: "serviceNotAvailable",
    504: "gatewayTimeout",
}
_ROUTING_CODES = {"NotFound": "itemNotFound", "MethodNotAllowed": "methodNotAllowed", "BadRequest": "invalidRequest"}


class ApiError(Exception):
    """A Partner Center error response raised from deep inside a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Job:
    event: str
    referral_id: str | None
    url: str
    body: bytes
    header: str
    correlation_id: str | None = None


@dataclass
class _ValidationEvent:
    correlation_id: str
    callback_url: str
    status: str = "pending"
    results: list[dict[str, Any]] = field(default_factory=list)


class PartnerCenterSimulator(Simulator):
    """Referrals API under ``/v1.0/engagements/referrals``, Webhooks API under ``/webhooks/v1``."""

    name = "partner-center"

    def __init__(
        self,
        *,
        pki: Pki,
        seed: int = 0,
        referrals_token_validator: TokenValidator | None = None,
        webhooks_token_validator: TokenValidator | None = None,
        organization_id: str = DEFAULT_ORGANIZATION_ID,
        organization_name: str = DEFAULT_ORGANIZATION_NAME,
        delivery_attempts: int = 10,
        delivery_backoff: float = 0.2,
        validation_events_per_minute: int | None = 2,
    ) -> None:
        super().__init__(seed=seed)
        self.pki = pki
        self.referrals_token_validator = referrals_token_validator
        self.webhooks_token_validator = webhooks_token_validator
        self.organization_id = organization_id
        self.organization_name = organization_name
        self.delivery_attempts = delivery_attempts
        self.delivery_backoff = delivery_backoff
        self.delivery_timeout = 10.0
        self.validation_events_per_minute = validation_events_per_minute
        self.delivery_enabled = True
        # Public address of this simulator: set it after ServerThread starts (sim.base_url = server.url).
        self.base_url: str | None = None
        self.cert_downloads = 0
        self.deliveries: list[dict[str, Any]] = []
        self._ids = random.Random(seed)
        self._referrals: dict[str, dict[str, Any]] = {}
        self._registration: dict[str, Any] | None = None
        self._subscriber_id = self._new_id()
        self._validation: dict[str, _ValidationEvent] = {}
        self._validation_posts: list[float] = []
        self._last_tick = 0
        self._etag_counter = 0
        self._seen_base: str | None = None
        self._delivered = threading.Condition(self._lock)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()

        self.add_route(REFERRALS_PATH, ["GET"], self._list)
        self.add_route(REFERRALS_PATH, ["POST"], self._create)
        self.add_route(f"{REFERRALS_PATH}/<referral_id>", ["GET"], self._get)
        self.add_route(f"{REFERRALS_PATH}/<referral_id>", ["PATCH"], self._patch)
        # Events carry this URI; the 2019 official flow GETs it as delivered, so it answers too.
        self.add_route(f"{EVENT_RESOURCE_PATH}/<referral_id>", ["GET"], self._get)
        self.add_route(f"{WEBHOOKS_PATH}/registration/events", ["GET"], self._events)
        self.add_route(f"{WEBHOOKS_PATH}/registration", ["GET"], self._get_registration)
        self.add_route(f"{WEBHOOKS_PATH}/registration", ["POST"], self._create_registration)
        self.add_route(f"{WEBHOOKS_PATH}/registration", ["PUT"], self._update_registration)
        self.add_route(f"{WEBHOOKS_PATH}/registration/validationEvents", ["POST"], self._create_validation)
        self.add_route(f"{WEBHOOKS_PATH}/registration/validationEvents/<correlation_id>", ["GET"], self._get_validation)

    # ================================================================== in-process data helpers
    def seed_referral(self, referral: dict[str, Any], *, fire: bool = True) -> dict[str, Any]:
        """Store a referral as Microsoft (or another partner) would have created it for us: direction Incoming.

        Given fields are kept verbatim; an existing id is replaced and fires ``referral-updated`` instead.
        """
        record = _canonical_keys(copy.deepcopy(referral))
        with self._lock:
            record.setdefault("id", self._new_id())
            record["id"] = str(record["id"])
            record.setdefault("engagementId", self._new_id())
            record.setdefault("organizationId", self.organization_id)
            record.setdefault("organizationName", self.organization_name)
            record.setdefault("direction", "Incoming")
            record.setdefault("status", "New")
            record.setdefault("substatus", "Pending")
            record.setdefault("externalReferenceId", None)
            if "updatedDateTime" not in record:
                record["updatedDateTime"] = record.get("createdDateTime") or self._now()
            record.setdefault("createdDateTime", record["updatedDateTime"])
            record.setdefault("eTag", self._new_etag())
            existed = record["id"].lower() in self._referrals
            self._referrals[record["id"].lower()] = record
            if fire:
                self._fire("referral-updated" if existed else "referral-created", record)
            return self._render(record)

    def update_referral(self, referral_id: str, changes: dict[str, Any], *, fire: bool = True) -> dict[str, Any]:
        """A change made on Microsoft's side (no transition rules): deep-merge, bump updatedDateTime and eTag.

        ``updatedDateTime``/``eTag`` given in ``changes`` win, so tests can stage out-of-order updates.
        """
        with self._lock:
            record = self._referrals.get(str(referral_id).lower())
            if record is None:
                raise KeyError(referral_id)
            changes = _canonical_keys(copy.deepcopy(changes))
            _deep_merge(record, changes)
            if "updatedDateTime" not in changes:
                record["updatedDateTime"] = self._now()
            if "eTag" not in changes:
                record["eTag"] = self._new_etag()
            if fire:
                self._fire("referral-updated", record)
            return self._render(record)

    def get_referral(self, referral_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._referrals.get(str(referral_id).lower())
            return self._render(record) if record else None

    def referrals(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render(r) for r in self._referrals.values()]

    @property
    def registration(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._registration) if self._registration else None

    def clear(self) -> None:
        with self._lock:
            self._referrals.clear()
            self._registration = None
            self._validation.clear()
            self._validation_posts.clear()
            self.deliveries.clear()
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    # ================================================================== delivery
    def sign_event(self, body: bytes, *, header: str = "authorization") -> dict[str, str]:
        """The headers Partner Center sends with ``body``; ``header="x-ms-signature"`` for that registration mode."""
        signature = f"Signature {self.pki.sign(body)}"
        headers = {
            "Content-Type": "application/json",
            "X-MS-Certificate-Url": self.cert_url,
            "X-MS-Signature-Algorithm": "rsa-sha256",
        }
        if header.lower() == "x-ms-signature":
            headers["x-ms-signature"] = signature
        else:
            headers["Authorization"] = signature
        return headers

    @property
    def cert_url(self) -> str:
        return f"{self._base()}{CERT_PATH}"

    def event_body(self, event_name: str, referral_id: str) -> bytes:
        """The exact bytes of an event for a stored referral (deterministic, so re-sends are byte-identical)."""
        with self._lock:
            record = self._referrals.get(str(referral_id).lower())
            if record is None:
                raise KeyError(referral_id)
            return self._referral_event_body(event_name, record)

    def deliver(self, referral_id: str, event_name: str = "referral-updated", times: int = 1) -> int:
        """Re-send an event (duplicates, replays). Needs a registration; ignores its event list and the toggle."""
        with self._lock:
            record = self._referrals.get(str(referral_id).lower())
            if record is None:
                raise KeyError(referral_id)
            if self._registration is None:
                raise LookupError("no webhook registration")
            body = self._referral_event_body(event_name, record)
            for _ in range(times):
                self._enqueue(_Job(event_name, record["id"], self._registration["WebhookUrl"], body, self._header()))
            return times

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``count`` deliveries finished (delivered or given up); returns the log even if short."""
        deadline = time.monotonic() + timeout
        with self._delivered:
            while len(self.deliveries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._delivered.wait(remaining)
            return copy.deepcopy(self.deliveries)

    def close(self) -> None:
        """Stop the delivery worker; pending deliveries are dropped."""
        self._stop.set()
        self._queue.put(None)
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=self.delivery_timeout + 5)
        self._worker = None

    def _fire(self, event_name: str, record: dict[str, Any]) -> None:
        """Queue an event for a change, if someone registered for it. Caller holds the lock (keeps order)."""
        registration = self._registration
        if not self.delivery_enabled or registration is None or event_name not in registration["WebhookEvents"]:
            return
        try:
            body = self._referral_event_body(event_name, record)
        except RuntimeError as exc:  # no public address known yet: the event is lost, visibly
            job = _Job(event_name, record["id"], registration["WebhookUrl"], b"", self._header())
            self._finish(job, [{"attempt": 0, "status": None, "error": str(exc), "time": _utc_iso()}])
            return
        self._enqueue(_Job(event_name, record["id"], registration["WebhookUrl"], body, self._header()))

    def _header(self) -> str:
        registration = self._registration or {}
        return "x-ms-signature" if registration.get("SignatureTokenToMsSignatureHeader") else "authorization"

    def _referral_event_body(self, event_name: str, record: dict[str, Any]) -> bytes:
        changed = str(record.get("updatedDateTime") or self._now())
        payload = {
            "EventName": event_name,
            "ResourceUri": f"{self._base()}{EVENT_RESOURCE_PATH}/{record['id']}",
            "ResourceName": "referral",
            "AuditUri": None,
            "ResourceChangeUtcDate": _offset_form(changed),
        }
        return json.dumps(payload, indent=4).encode("utf-8")

    def _enqueue(self, job: _Job) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._stop.clear()
            self._worker = threading.Thread(target=self._work, name=f"{self.name}-delivery", daemon=True)
            self._worker.start()
        self._queue.put(job)

    def _work(self) -> None:
        with httpx.Client(timeout=self.delivery_timeout) as client:
            while not self._stop.is_set():
                job = self._queue.get()
                if job is None:
                    continue
                self._send(client, job)

    def _send(self, client: httpx.Client, job: _Job) -> None:
        try:
            headers = self.sign_event(job.body, header=job.header)
        except RuntimeError as exc:  # no base URL: nothing can be delivered
            self._finish(job, [{"attempt": 0, "status": None, "error": str(exc), "time": _utc_iso()}])
            return
        history: list[dict[str, Any]] = []
        for attempt in range(1, max(1, self.delivery_attempts) + 1):
            if self._stop.is_set():
                return
            entry: dict[str, Any] = {"attempt": attempt, "status": None, "error": None, "time": _utc_iso()}
            try:
                response = client.post(job.url, content=job.body, headers=headers)
                entry["status"] = response.status_code
            except httpx.HTTPError as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            history.append(entry)
            self._record_validation_attempt(job, entry)
            if entry["status"] is not None and 200 <= entry["status"] < 300:
                break
            if attempt < self.delivery_attempts and self._stop.wait(self.delivery_backoff):
                return
        self._finish(job, history)

    def _finish(self, job: _Job, history: list[dict[str, Any]]) -> None:
        last = history[-1] if history else {"attempt": 0, "status": None, "error": "not attempted", "time": _utc_iso()}
        ok = last["status"] is not None and 200 <= last["status"] < 300
        with self._delivered:
            self.deliveries.append(
                {
                    "event": job.event,
                    "referralId": job.referral_id,
                    "correlationId": job.correlation_id,
                    "url": job.url,
                    "attempt": last["attempt"],
                    "status": last["status"],
                    "error": last["error"],
                    "ok": ok,
                    "time": last["time"],
                    "attempts": history,
                    "body": job.body.decode("utf-8"),
                }
            )
            if job.correlation_id and job.correlation_id in self._validation:
                self._validation[job.correlation_id].status = "completed"
            self._delivered.notify_all()

    def _record_validation_attempt(self, job: _Job, entry: dict[str, Any]) -> None:
        if not job.correlation_id:
            return
        status = entry["status"]
        result = {
            "responseCode": _status_name(status) if status is not None else "",
            "responseMessage": "" if status is not None else str(entry["error"]),
            "systemError": status is None,
            "dateTimeUtc": _utc_iso(offset=False),
        }
        with self._lock:
            event = self._validation.get(job.correlation_id)
            if event is not None:
                event.results.append(result)

    # ================================================================== Referrals API
    def _list(self, request: Request) -> Response:
        if denied := self._authorize(request, self.referrals_token_validator):
            return denied
        args = {k.lower(): v for k, v in request.args.items()}
        try:
            predicate = self._compile(args.get("$filter"))
            orderby = _check_orderby(args.get("$orderby"))
            page_size = _int_arg(args, "$top", PAGE_SIZE, minimum=1)
            page_size = min(page_size, PAGE_SIZE)
            offset = _int_arg(args, "$skip", 0, minimum=0)
            if "$skiptoken" in args:
                offset = _decode_skiptoken(args["$skiptoken"])
        except ApiError as exc:
            return self._api_error(exc)
        with self._lock:
            matching = [r for r in self._referrals.values() if predicate(r)]
            ordered = sort_records(matching, orderby) if orderby else matching
            page = [self._render(r, request) for r in ordered[offset : offset + page_size]]
        select = args.get("$select")
        if select:
            page = [_project(r, select) for r in page]
        base = self._base(request)
        body: dict[str, Any] = {"@odata.context": f"{base}/v1.0/$metadata#Referrals"}
        if args.get("$count", "").lower() == "true":
            body["@odata.count"] = len(ordered)
        body["value"] = page
        if offset + page_size < len(ordered):
            keep = [(k, v) for k, v in request.args.items() if k.lower() not in ("$skiptoken", "$skip")]
            keep.append(("$skiptoken", _encode_skiptoken(offset + page_size)))
            body["@odata.nextLink"] = f"{base}{REFERRALS_PATH}?{urlencode(keep, quote_via=quote, safe='$')}"
        return json_response(body)

    def _compile(self, expression: str | None) -> Callable[[dict[str, Any]], bool]:
        if expression and _QUOTED_DATE.search(expression):
            raise ApiError(
                400,
                "invalidRequest",
                "Date-time values in $filter are DateTimeOffset literals and must not be "
                "quoted, e.g. updatedDateTime gt 2024-01-01T00:00:00Z.",
            )
        try:
            return compile_filter(expression)
        except FilterError as exc:
            raise ApiError(400, "invalidRequest", f"Invalid $filter: {exc}") from exc

    def _get(self, request: Request, referral_id: str) -> Response:
        if denied := self._authorize(request, self.referrals_token_validator):
            return denied
        with self._lock:
            record = self._referrals.get(referral_id.lower())
            if record is None:
                return self._not_found(referral_id)
            body = self._entity(record, request)
        return json_response(body, headers={"ETag": body["eTag"]})

    def _create(self, request: Request) -> Response:
        if denied := self._authorize(request, self.referrals_token_validator):
            return denied
        payload = request.get_json(force=True, silent=True)
        if not isinstance(payload, dict):
            return self.error_response(400, "invalidRequest", "The request body must be a JSON referral object.")
        record = _canonical_keys(copy.deepcopy(payload))
        missing = [name for name in _REQUIRED_ON_CREATE if record.get(name) in (None, "", {}, [])]
        if missing:
            return self.error_response(400, "invalidRequest", f"Required properties are missing: {', '.join(missing)}.")
        try:
            record["type"] = _enum(record["type"], _REFERRAL_TYPES, "type")
            status, substatus = _initial_status(record.get("status"), record.get("substatus"))
            _normalise_deal_values(record)
        except ApiError as exc:
            return self._api_error(exc)
        # Server-owned properties: whatever the caller sent for them is ignored.
        for name in (
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
        ):
            record.pop(name, None)
        with self._lock:
            now = self._now()
            created = {
                "id": self._new_id(),
                "engagementId": str(record.pop("engagementId", None) or self._new_id()),
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
                "eTag": self._new_etag(),
            }
            created["status"], created["substatus"] = status, substatus
            self._referrals[created["id"].lower()] = created
            self._fire("referral-created", created)
            body = self._entity(created, request)
        return json_response(body, headers={"ETag": body["eTag"]})

    def _patch(self, request: Request, referral_id: str) -> Response:
        if denied := self._authorize(request, self.referrals_token_validator):
            return denied
        operations = request.get_json(force=True, silent=True)
        if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
            return self.error_response(
                400, "invalidRequest", "The request body must be a JSON Patch document (an array of operations)."
            )
        with self._lock:
            record = self._referrals.get(referral_id.lower())
            if record is None:
                return self._not_found(referral_id)
            if_match = request.headers.get("If-Match")
            if if_match is not None and if_match.strip() != "*" and if_match != record.get("eTag"):
                return self.error_response(
                    412,
                    "preconditionFailed",
                    "The referral has been modified since it was read: the If-Match "
                    "value does not match the current eTag.",
                )
            if str(record.get("status", "")).lower() == "closed":
                return self.error_response(
                    400,
                    "invalidRequest",
                    f"The referral is closed ({record.get('status')}/"
                    f"{record.get('substatus')}), a terminal state; it can no longer be modified.",
                )
            updated = copy.deepcopy(record)
            try:
                for operation in operations:
                    _apply_operation(updated, operation)
                _normalise_deal_values(updated)
                _check_transition(record, updated)
            except ApiError as exc:
                return self._api_error(exc)
            updated["updatedDateTime"] = self._now()
            updated["eTag"] = self._new_etag()
            record.clear()
            record.update(updated)
            self._fire("referral-updated", record)
            body = self._entity(record, request)
        if "return=representation" in request.headers.get("Prefer", "").lower():
            return json_response(body, headers={"ETag": body["eTag"]})
        return Response(status=204, headers={"ETag": body["eTag"]})

    # ================================================================== Webhooks API
    def _events(self, request: Request) -> Response:
        if denied := self._authorize(request, self.webhooks_token_validator):
            return denied
        return json_response(list(SUPPORTED_EVENTS))

    def _get_registration(self, request: Request) -> Response:
        if denied := self._authorize(request, self.webhooks_token_validator):
            return denied
        with self._lock:
            registration = self.registration
        if registration is None:
            return self.error_response(404, "itemNotFound", "No webhook registration exists for this partner.")
        return json_response(registration)

    def _create_registration(self, request: Request) -> Response:
        if denied := self._authorize(request, self.webhooks_token_validator):
            return denied
        with self._lock:
            if self._registration is not None:
                return self.error_response(
                    409, "conflict", "Registration already exists, use the PUT method to update a registration."
                )
            return self._store_registration(request)

    def _update_registration(self, request: Request) -> Response:
        if denied := self._authorize(request, self.webhooks_token_validator):
            return denied
        with self._lock:
            if self._registration is None:
                return self.error_response(
                    404, "itemNotFound", "No webhook registration exists, use the POST method to create one."
                )
            return self._store_registration(request)

    def _store_registration(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True)
        if not isinstance(payload, dict):
            return self.error_response(400, "invalidRequest", "The request body must be a JSON registration object.")
        body = {k.lower(): v for k, v in payload.items()}
        url, events = body.get("webhookurl"), body.get("webhookevents")
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            return self.error_response(400, "invalidRequest", "WebhookUrl is required and must be an absolute URL.")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            return self.error_response(400, "invalidRequest", "WebhookEvents must be a non-empty array of names.")
        unknown = [e for e in events if e not in SUPPORTED_EVENTS]
        if unknown:
            return self.error_response(400, "invalidRequest", f"Unsupported webhook events: {', '.join(unknown)}.")
        self._registration = {
            "SubscriberId": self._subscriber_id,
            "WebhookUrl": url,
            "WebhookEvents": list(dict.fromkeys(events)),
            "SignatureTokenToMsSignatureHeader": bool(body.get("signaturetokentomssignatureheader", False)),
        }
        return json_response(dict(self._registration))

    def _create_validation(self, request: Request) -> Response:
        if denied := self._authorize(request, self.webhooks_token_validator):
            return denied
        with self._lock:
            registration = self._registration
            if registration is None or "test-created" not in registration["WebhookEvents"]:
                return self.error_response(
                    400,
                    "invalidRequest",
                    "You must be registered for the test-created event before sending a validation event.",
                )
            now = time.monotonic()
            self._validation_posts = [t for t in self._validation_posts if now - t < 60]
            limit = self.validation_events_per_minute
            if limit is not None and len(self._validation_posts) >= limit:
                wait = max(1, int(60 - (now - self._validation_posts[0])) + 1)
                return self.error_response(
                    429,
                    "tooManyRequests",
                    f"Rate limit is exceeded. Try again in {wait} seconds.",
                    {"Retry-After": str(wait)},
                )
            self._validation_posts.append(now)
            correlation_id = self._new_id()
            self._validation[correlation_id] = _ValidationEvent(correlation_id, registration["WebhookUrl"])
            payload = {
                "EventName": "test-created",
                "ResourceUri": f"{self._base(request)}{WEBHOOKS_PATH}/registration/validationEvents/{correlation_id}",
                "ResourceName": "test",
                "AuditUri": None,
                "ResourceChangeUtcDate": _offset_form(self._now()),
            }
            body = json.dumps(payload, indent=4).encode("utf-8")
            self._enqueue(_Job("test-created", None, registration["WebhookUrl"], body, self._header(), correlation_id))
        return json_response({"correlationId": correlation_id})

    def _get_validation(self, request: Request, correlation_id: str) -> Response:
        if denied := self._authorize(request, self.webhooks_token_validator):
            return denied
        with self._lock:
            event = self._validation.get(correlation_id.lower())
            if event is None:
                return self.error_response(404, "itemNotFound", f"No validation event {correlation_id}.")
            body = {
                "correlationId": event.correlation_id,
                "partnerId": self.organization_id,
                "status": event.status,
                "callbackUrl": event.callback_url,
                "results": [dict(r) for r in event.results],
            }
        return json_response(body)

    # ================================================================== plumbing
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The certificate is served before routing so fault injection and auth never touch it."""
        request = Request(environ)
        if self._seen_base is None:
            self._seen_base = request.host_url.rstrip("/")
        if request.path == CERT_PATH and request.method in ("GET", "HEAD"):
            with self._lock:
                self.cert_downloads += 1
            response = Response(self.pki.cert_der, content_type="application/pkix-cert")
            return response(environ, start_response)
        return super().__call__(environ, start_response)

    def _authorize(self, request: Request, validator: TokenValidator | None) -> Response | None:
        if validator is None:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip() and validator(token.strip()):
            return None
        return self.error_response(
            401,
            "unauthenticated",
            "Authentication failed: the bearer token is missing, expired or not issued for this API.",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    def error_response(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        """Partner Center's error body; injected faults get the service's codes (and keep Retry-After)."""
        if code.startswith("Injected"):
            code = _FAULT_CODES.get(status, "generalException")
        code = _ROUTING_CODES.get(code, code)
        return json_response({"error": {"code": code, "message": message, "target": "referral"}}, status, headers)

    def _api_error(self, exc: ApiError) -> Response:
        return self.error_response(exc.status, exc.code, exc.message)

    def _not_found(self, referral_id: str) -> Response:
        return self.error_response(404, "itemNotFound", f"Referral {referral_id} was not found.")

    def control(self, request: Request, action: str) -> Response:
        method = request.method
        body = request.get_json(force=True, silent=True)
        fire = request.args.get("fire", "true").lower() != "false"
        if action == "referrals" and method == "POST":
            if not isinstance(body, dict):
                return json_response({"error": "body must be a referral object"}, 400)
            return json_response(self.seed_referral(body, fire=fire))
        if action == "referrals" and method == "GET":
            return json_response(self.referrals())
        if action.startswith("referrals/"):
            referral_id = action.split("/", 1)[1]
            if method == "GET":
                found = self.get_referral(referral_id)
                return json_response(found) if found else json_response({"error": "not found"}, 404)
            if method == "PATCH":
                if not isinstance(body, dict):
                    return json_response({"error": "body must be an object of changes"}, 400)
                try:
                    return json_response(self.update_referral(referral_id, body, fire=fire))
                except KeyError:
                    return json_response({"error": f"unknown referral {referral_id}"}, 404)
        if action == "delivery" and method in ("PUT", "POST"):
            if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
                return json_response({"error": 'body must be {"enabled": true|false}'}, 400)
            self.delivery_enabled = body["enabled"]
            return json_response({"enabled": self.delivery_enabled})
        if action == "delivery" and method == "GET":
            return json_response({"enabled": self.delivery_enabled})
        if action == "deliveries" and method == "GET":
            try:
                count, timeout = int(request.args.get("count", 0)), float(request.args.get("timeout", 0))
            except ValueError:
                return json_response({"error": "count and timeout must be numbers"}, 400)
            return json_response(self.wait_for_deliveries(count, min(timeout, 120.0)))
        if action == "deliver" and method == "POST":
            body = body if isinstance(body, dict) else {}
            try:
                queued = self.deliver(
                    str(body.get("referralId")),
                    str(body.get("eventName") or "referral-updated"),
                    int(body.get("times") or 1),
                )
            except KeyError:
                return json_response({"error": f"unknown referral {body.get('referralId')}"}, 404)
            except LookupError as exc:
                return json_response({"error": str(exc)}, 409)
            except ValueError:
                return json_response({"error": "times must be an integer"}, 400)
            return json_response({"queued": queued})
        if action == "registration" and method == "GET":
            return json_response(self.registration)
        if action == "clear" and method == "POST":
            self.clear()
            return json_response({"ok": True})
        return super().control(request, action)

    def _base(self, request: Request | None = None) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if request is not None:
            return request.host_url.rstrip("/")
        if self._seen_base:
            return self._seen_base
        raise RuntimeError("PartnerCenterSimulator.base_url is not set (set it to the ServerThread url)")

    def _render(self, record: dict[str, Any], request: Request | None = None) -> dict[str, Any]:
        """A copy for the wire; links are computed from the public address unless the referral brought its own."""
        rendered = copy.deepcopy(record)
        if "links" not in rendered:
            try:
                base = self._base(request)
            except RuntimeError:
                return rendered
            engagement = rendered.get("engagementId")
            rendered["links"] = {
                "relatedReferrals": {
                    "uri": f"{base}{REFERRALS_PATH}?$filter=engagementId eq '{engagement}'",
                    "method": "GET",
                },
                "self": {"uri": f"{base}{REFERRALS_PATH}/{rendered['id']}", "method": "GET"},
            }
        return rendered

    def _entity(self, record: dict[str, Any], request: Request) -> dict[str, Any]:
        base = self._base(request)
        return {
            "@odata.context": f"{base}{REFERRALS_PATH}/$metadata#Referrals/$entity",
            **self._render(record, request),
        }

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _now(self) -> str:
        """Strictly increasing UTC time with 7 fractional digits.

        Microseconds are unique per write, so the 6-digit truncation of OData date comparisons can never
        tie two different writes; the 7th digit is decoration, as on the real service.
        """
        with self._lock:
            ns = time.time_ns()
            micros = max(ns // 1000, self._last_tick + 1)
            self._last_tick = micros
        stamp = dt.datetime.fromtimestamp(micros // 1_000_000, dt.UTC)
        return f"{stamp:%Y-%m-%dT%H:%M:%S}.{micros % 1_000_000:06d}{(ns // 100) % 10}Z"

    def _new_etag(self) -> str:
        with self._lock:
            self._etag_counter = (self._etag_counter + 1) % 0x10000
            return f'"0000{self._etag_counter:04x}-0000-0000-0000-{int(time.time()) & 0xFFFFFFFF:08x}0000"'


# ====================================================================== helpers (pure)
def _canonical_keys(value: Any) -> Any:
    """Known property names in any case (``Substatus``, ``ConsentToContact``) become their wire spelling."""
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = _CANONICAL.get(key.lower(), key) if isinstance(key, str) else key
            result[name] = _canonical_keys(item)
        return result
    if isinstance(value, list):
        return [_canonical_keys(item) for item in value]
    return value


def _deep_merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


def _enum(value: Any, allowed: tuple[str, ...], name: str) -> str:
    for candidate in allowed:
        if isinstance(value, str) and value.lower() == candidate.lower():
            return candidate
    raise ApiError(400, "invalidRequest", f"Invalid value {value!r} for {name}; expected one of {', '.join(allowed)}.")


def _initial_status(status: Any, substatus: Any) -> tuple[str, str]:
    """Outgoing referrals start Active/Accepted unless the caller asks for another valid combination."""
    if status in (None, "") and substatus in (None, ""):
        return "Active", "Accepted"
    if status in (None, ""):
        sub = _enum(substatus, tuple(_SUBSTATUS_STATUS), "substatus")
        return _SUBSTATUS_STATUS[sub], sub
    canonical = _enum(status, tuple(TRANSITIONS), "status")
    allowed = TRANSITIONS[canonical][1]
    if substatus in (None, ""):
        if canonical == "Closed":
            raise ApiError(400, "invalidRequest", "A closed referral needs a substatus (Won, Lost, Declined, Expired).")
        return canonical, allowed[0]
    sub = _enum(substatus, tuple(_SUBSTATUS_STATUS), "substatus")
    if sub not in allowed:
        raise ApiError(
            400,
            "invalidRequest",
            f"Substatus {sub} is not allowed with status {canonical}; allowed: {', '.join(allowed)}.",
        )
    return canonical, sub


def _check_transition(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Enforce §1.6 when a patch touches status or substatus; other edits leave seeded oddities alone."""
    if (before.get("status"), before.get("substatus")) == (after.get("status"), after.get("substatus")):
        return
    new = _enum(after.get("status"), tuple(TRANSITIONS), "status")
    sub = _enum(after.get("substatus"), tuple(_SUBSTATUS_STATUS), "substatus")
    old = str(before.get("status") or "New")
    old = next((s for s in TRANSITIONS if s.lower() == old.lower()), None)
    allowed_statuses = TRANSITIONS[old][0] if old else frozenset(TRANSITIONS)
    allowed_subs = TRANSITIONS[new][1]
    if new not in allowed_statuses:
        raise ApiError(
            400,
            "invalidRequest",
            f"Status transition {old} -> {new} is not allowed; from {old} the status can "
            f"become {', '.join(sorted(allowed_statuses))}.",
        )
    if sub not in allowed_subs:
        raise ApiError(
            400,
            "invalidRequest",
            f"Substatus {sub} is not allowed with status {new}; allowed: {', '.join(allowed_subs)}.",
        )
    after["status"], after["substatus"] = new, sub


def _normalise_deal_values(record: Any) -> None:
    """``dealValue`` is decimal on the resource, though Microsoft's own PATCH sample sends ``"10000"``."""
    if isinstance(record, list):
        for item in record:
            _normalise_deal_values(item)
        return
    if not isinstance(record, dict):
        return
    for key, value in list(record.items()):
        if key == "dealValue" and isinstance(value, str):
            record[key] = _number(value)
        else:
            _normalise_deal_values(value)


def _number(text: str) -> int | float:
    try:
        number = float(text.strip())
    except ValueError:
        raise ApiError(400, "invalidRequest", f"dealValue {text!r} is not a number.") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ApiError(400, "invalidRequest", f"dealValue {text!r} is not a number.")
    return int(number) if number.is_integer() else number


def _apply_operation(document: dict[str, Any], operation: dict[str, Any]) -> None:
    """RFC 6902 ``replace``/``add`` with case-insensitive member names, as the service deserialises them."""
    op = {k.lower(): v for k, v in operation.items()}
    kind, path = str(op.get("op", "")).lower(), op.get("path")
    if kind not in ("replace", "add"):
        raise ApiError(
            400, "invalidRequest", f"JSON Patch operation {op.get('op')!r} is not supported; only 'replace' and 'add'."
        )
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise ApiError(400, "invalidRequest", f"Invalid JSON Patch path {path!r}.")
    if "value" not in op:
        raise ApiError(400, "invalidRequest", f"JSON Patch operation on {path} has no value.")
    segments = [s.replace("~1", "/").replace("~0", "~") for s in path[1:].split("/")]
    if segments[0].lower() in _READ_ONLY:
        raise ApiError(400, "invalidRequest", f"Property {segments[0]} is read-only.")
    value = _canonical_keys(copy.deepcopy(op["value"]))
    parent: Any = document
    for index, segment in enumerate(segments[:-1]):
        key = _member(parent, segment, path)
        child = parent[key] if isinstance(parent, list) else parent.get(key)
        if child is None:
            following = segments[index + 1]
            # Typed resources have every member (null when unset), so a path may go through an unset one.
            child = [] if kind == "add" and (following == "-" or following.isdigit()) else {}
            parent[key] = child
        if not isinstance(child, (dict, list)):
            raise ApiError(400, "invalidRequest", f"JSON Patch path {path} goes through a non-object value.")
        parent = child
    last = segments[-1]
    if isinstance(parent, list):
        if last == "-" and kind == "add":
            parent.append(value)
            return
        position = _list_index(parent, last, path, allow_end=kind == "add")
        if kind == "add":
            parent.insert(position, value)
        else:
            parent[position] = value
        return
    parent[_member(parent, last, path)] = value


def _member(container: Any, segment: str, path: str) -> Any:
    if isinstance(container, list):
        return _list_index(container, segment, path, allow_end=False)
    for key in container:
        if isinstance(key, str) and key.lower() == segment.lower():
            return key
    return _CANONICAL.get(segment.lower(), segment[:1].lower() + segment[1:])


def _list_index(items: list[Any], segment: str, path: str, *, allow_end: bool) -> int:
    if not segment.isdigit():
        raise ApiError(400, "invalidRequest", f"JSON Patch path {path}: {segment!r} is not an array index.")
    position = int(segment)
    if position > len(items) or (position == len(items) and not allow_end):
        raise ApiError(400, "invalidRequest", f"JSON Patch path {path}: index {position} is out of range.")
    return position


def _check_orderby(orderby: str | None) -> str | None:
    if not orderby:
        return None
    clauses = []
    for clause in orderby.split(","):
        parts = clause.split()
        if not parts or len(parts) > 2:
            raise ApiError(400, "invalidRequest", f"Invalid $orderby clause {clause!r}.")
        field_name = parts[0].lower()
        if field_name not in ("createddatetime", "updateddatetime"):
            raise ApiError(
                400,
                "invalidRequest",
                f"$orderby on {parts[0]} is not supported; use createdDateTime or updatedDateTime.",
            )
        direction = parts[1].lower() if len(parts) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise ApiError(400, "invalidRequest", f"Invalid $orderby direction {parts[1]!r}.")
        clauses.append(f"{_CANONICAL[field_name]} {direction}")
    return ",".join(clauses)


def _int_arg(args: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    if name not in args:
        return default
    try:
        value = int(args[name])
    except ValueError:
        raise ApiError(400, "invalidRequest", f"{name} must be an integer.") from None
    if value < minimum:
        raise ApiError(400, "invalidRequest", f"{name} must be at least {minimum}.")
    return value


def _encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_skiptoken(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["o"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "invalidRequest", "Invalid $skiptoken.") from None
    if not isinstance(offset, int) or offset < 0:
        raise ApiError(400, "invalidRequest", "Invalid $skiptoken.")
    return offset


def _project(record: dict[str, Any], select: str) -> dict[str, Any]:
    wanted = {s.strip().lower() for s in select.split(",") if s.strip()}
    return {k: v for k, v in record.items() if k.lower() in wanted}


def _offset_form(timestamp: str) -> str:
    """Events write UTC as ``+00:00`` (``2018-02-17T00:05:39.5485487+00:00``); the REST resource uses ``Z``."""
    return timestamp[:-1] + "+00:00" if timestamp.endswith("Z") else timestamp


def _utc_iso(*, offset: bool = True) -> str:
    now = dt.datetime.now(dt.UTC)
    text = f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond:06d}0"
    return f"{text}Z" if offset else text


def _status_name(status: int) -> str:
    """.NET ``HttpStatusCode`` names, as the validation-event results report them (``OK``, ``NotFound``)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return str(status)
    return "OK" if status == 200 else "".join(word[:1].upper() + word[1:] for word in phrase.replace("-", " ").split())

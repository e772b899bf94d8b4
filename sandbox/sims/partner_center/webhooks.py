"""The Webhooks API's state: the tenant's one registration, validation events, and which events to send.

Reference §4.1 and §5: one registration per partner tenant (``POST`` when one exists is a 409, ``PUT``
when none exists a 404), PascalCase bodies, and validation events throttled to 2 per minute whose
delivery attempts are reported back. Delivery itself is :mod:`sandbox.sims.partner_center.delivery`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from sandbox.pki import Pki
from sandbox.sims.partner_center.delivery import AUTHORIZATION, MS_SIGNATURE, Attempt, Dispatcher, Job
from sandbox.sims.partner_center.errors import ApiError, invalid
from sandbox.sims.partner_center.stamps import Stamps, offset_form, utc_iso

WEBHOOKS_PATH = "/webhooks/v1"  # reference §4.1
EVENT_RESOURCE_PATH = "/engagements/v1/referrals"  # the ResourceUri of referral events (reference §4.3)
REFERRAL_EVENTS: tuple[str, ...] = (
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
)  # reference §4.2
SUPPORTED_EVENTS: tuple[str, ...] = (
    *REFERRAL_EVENTS,
    "test-created",
    "subscription-updated",
    "usagerecords-thresholdExceeded",
    "invoice-ready",
    "dap-admin-relationship-approved",
    "dap-admin-relationship-terminated",
    "granular-admin-relationship-approved",
)  # a subset of the current list, reference §4.2


@dataclass
class Registration:
    """The stored registration; the signature-header flag is kept even where the wire shape omits it."""

    subscriber_id: str
    webhook_url: str
    webhook_events: list[str]
    signature_in_ms_header: bool = False

    @property
    def signature_header(self) -> str:
        return MS_SIGNATURE if self.signature_in_ms_header else AUTHORIZATION

    def as_get(self) -> dict[str, Any]:
        """What ``GET /registration`` answers: URL and events only; flag and subscriber id are not read back."""
        # Reference §4.1, "GET registration response body": {"WebhookUrl": ..., "WebhookEvents": [...]}.
        return {"WebhookUrl": self.webhook_url, "WebhookEvents": list(self.webhook_events)}

    def as_written(self) -> dict[str, Any]:
        """What ``POST``/``PUT /registration`` answer: the documented POST response, with the subscriber id."""
        # Reference §4.1: POST response {"SubscriberId", "WebhookUrl", "WebhookEvents"}; subscriberId
        # "Returned by POST/PUT". The documented response has no SignatureTokenToMsSignatureHeader.
        return {"SubscriberId": self.subscriber_id, **self.as_get()}

    def stored(self) -> dict[str, Any]:
        """Everything kept, PascalCase: what the control API and in-process callers see."""
        return {
            "SubscriberId": self.subscriber_id,
            "WebhookUrl": self.webhook_url,
            "WebhookEvents": list(self.webhook_events),
            "SignatureTokenToMsSignatureHeader": self.signature_in_ms_header,
        }


@dataclass
class ValidationEvent:
    correlation_id: str
    callback_url: str
    status: str = "pending"
    results: list[dict[str, Any]] = field(default_factory=list)


class Webhooks:
    """Registration, validation events and event firing for one tenant; delivery goes through a Dispatcher."""

    def __init__(
        self,
        *,
        pki: Pki,
        lock: threading.RLock,
        stamps: Stamps,
        base: Callable[[], str],
        cert_url: Callable[[], str],
        delivery_attempts: int,
        delivery_backoff: float,
        validation_events_per_minute: int | None,
        thread_name: str,
    ) -> None:
        self.lock = lock
        self.stamps = stamps
        self.validation_events_per_minute = validation_events_per_minute
        self.registration: Registration | None = None
        self.delivery = Dispatcher(
            pki=pki,
            lock=lock,
            cert_url=cert_url,
            attempts=delivery_attempts,
            backoff=delivery_backoff,
            thread_name=thread_name,
            on_attempt=self._record_validation_attempt,
            on_finish=self._validation_finished,
        )
        self._base = base
        self._subscriber_id = stamps.new_id()
        self._validation: dict[str, ValidationEvent] = {}
        self._validation_posts: list[float] = []

    # ------------------------------------------------------------------ registration
    def register(self, payload: Any, *, create: bool) -> Registration:
        """``POST`` (``create=True``) or ``PUT`` the registration: both replace URL, events and the header flag."""
        with self.lock:
            if create and self.registration is not None:
                raise ApiError(
                    409, "conflict", "Registration already exists, use the PUT method to update a registration."
                )
            if not create and self.registration is None:
                raise ApiError(
                    404, "itemNotFound", "No webhook registration exists, use the POST method to create one."
                )
            if not isinstance(payload, dict):
                raise invalid("The request body must be a JSON registration object.")
            body = {k.lower(): v for k, v in payload.items()}
            url, events = body.get("webhookurl"), body.get("webhookevents")
            if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
                raise invalid("WebhookUrl is required and must be an absolute URL.")
            if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
                raise invalid("WebhookEvents must be a non-empty array of names.")
            unknown = [e for e in events if e not in SUPPORTED_EVENTS]
            if unknown:
                raise invalid(f"Unsupported webhook events: {', '.join(unknown)}.")
            self.registration = Registration(
                subscriber_id=self._subscriber_id,
                webhook_url=url,
                webhook_events=list(dict.fromkeys(events)),
                signature_in_ms_header=bool(body.get("signaturetokentomssignatureheader", False)),
            )
            return self.registration

    def current(self) -> Registration:
        with self.lock:
            if self.registration is None:
                raise ApiError(404, "itemNotFound", "No webhook registration exists for this partner.")
            return self.registration

    def clear(self) -> None:
        with self.lock:
            self.registration = None
            self._validation.clear()
            self._validation_posts.clear()
            self.delivery.clear()

    # ------------------------------------------------------------------ referral events
    def fire(self, event_name: str, record: dict[str, Any]) -> None:
        """Queue an event for a change, if someone registered for it. Caller holds the lock (keeps order)."""
        registration = self.registration
        if not self.delivery.enabled or registration is None or event_name not in registration.webhook_events:
            return
        url, header = registration.webhook_url, registration.signature_header
        try:
            body = self.referral_event_body(event_name, record)
        except RuntimeError as exc:  # no public address known yet: the event is lost, visibly
            self.delivery.lose(Job(event_name, record["id"], url, b"", header), str(exc))
            return
        self.delivery.enqueue(Job(event_name, record["id"], url, body, header))

    def redeliver(self, event_name: str, record: dict[str, Any], times: int) -> int:
        """Re-send an event (duplicates, replays). Needs a registration; ignores its event list and the toggle."""
        with self.lock:
            registration = self.registration
            if registration is None:
                raise LookupError("no webhook registration")
            body = self.referral_event_body(event_name, record)
            for _ in range(times):
                job = Job(event_name, record["id"], registration.webhook_url, body, registration.signature_header)
                self.delivery.enqueue(job)
            return times

    def referral_event_body(self, event_name: str, record: dict[str, Any]) -> bytes:
        """The exact bytes of an event (deterministic, so re-sends are byte-identical); shape of reference §4.3."""
        changed = str(record.get("updatedDateTime") or self.stamps.now())
        payload = {
            "EventName": event_name,
            "ResourceUri": f"{self._base()}{EVENT_RESOURCE_PATH}/{record['id']}",
            "ResourceName": "referral",
            "AuditUri": None,
            "ResourceChangeUtcDate": offset_form(changed),
        }
        return json.dumps(payload, indent=4).encode("utf-8")

    # ------------------------------------------------------------------ validation events
    def send_validation_event(self, base: str) -> str:
        """Queue a ``test-created`` event; needs that event registered, at most N per minute (reference §4.1)."""
        with self.lock:
            registration = self.registration
            if registration is None or "test-created" not in registration.webhook_events:
                raise invalid("You must be registered for the test-created event before sending a validation event.")
            now = time.monotonic()
            self._validation_posts = [t for t in self._validation_posts if now - t < 60]
            limit = self.validation_events_per_minute
            if limit is not None and len(self._validation_posts) >= limit:
                wait = max(1, int(60 - (now - self._validation_posts[0])) + 1)
                raise RateLimited(wait)
            self._validation_posts.append(now)
            correlation_id = self.stamps.new_id()
            self._validation[correlation_id] = ValidationEvent(correlation_id, registration.webhook_url)
            payload = {
                "EventName": "test-created",
                "ResourceUri": f"{base}{WEBHOOKS_PATH}/registration/validationEvents/{correlation_id}",
                "ResourceName": "test",
                "AuditUri": None,
                "ResourceChangeUtcDate": offset_form(self.stamps.now()),
            }
            body = json.dumps(payload, indent=4).encode("utf-8")
            job = Job(
                "test-created", None, registration.webhook_url, body, registration.signature_header, correlation_id
            )
            self.delivery.enqueue(job)
            return correlation_id

    def validation_status(self, correlation_id: str, partner_id: str) -> dict[str, Any]:
        """The validation event's report: one result per delivery attempt (reference §4.1)."""
        with self.lock:
            event = self._validation.get(correlation_id.lower())
            if event is None:
                raise ApiError(404, "itemNotFound", f"No validation event {correlation_id}.")
            return {
                "correlationId": event.correlation_id,
                "partnerId": partner_id,
                "status": event.status,
                "callbackUrl": event.callback_url,
                "results": [dict(r) for r in event.results],
            }

    def _record_validation_attempt(self, job: Job, entry: Attempt) -> None:
        if not job.correlation_id:
            return
        status = entry["status"]
        result = {
            "responseCode": _status_name(status) if status is not None else "",
            "responseMessage": "" if status is not None else str(entry["error"]),
            "systemError": status is None,
            "dateTimeUtc": utc_iso(offset=False),
        }
        with self.lock:
            event = self._validation.get(job.correlation_id)
            if event is not None:
                event.results.append(result)

    def _validation_finished(self, job: Job) -> None:
        """Called by the dispatcher, under the lock."""
        if job.correlation_id and job.correlation_id in self._validation:
            self._validation[job.correlation_id].status = "completed"


class RateLimited(ApiError):
    """429 with the wait the service asks for (validation events are limited to 2 a minute, reference §4.1)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "tooManyRequests", f"Rate limit is exceeded. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


def _status_name(status: int) -> str:
    """.NET ``HttpStatusCode`` names, as the validation-event results report them (``OK``, ``NotFound``)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return str(status)
    return "OK" if status == 200 else "".join(word[:1].upper() + word[1:] for word in phrase.replace("-", " ").split())

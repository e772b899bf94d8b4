"""The Partner Center simulator as a WSGI app: routes, bearer-token checks, the certificate, the control API.

The HTTP handlers only translate between the wire and the state modules (:mod:`.referrals`,
:mod:`.listing`, :mod:`.patch`, :mod:`.webhooks`, :mod:`.delivery`); every rule lives there. The public
methods and attributes below are what ``sandbox/``, ``bench/`` and the tests use in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.pki import Pki
from sandbox.sims.base import Simulator, json_response
from sandbox.sims.partner_center.delivery import AUTHORIZATION, CERT_PATH
from sandbox.sims.partner_center.errors import ApiError, error_body
from sandbox.sims.partner_center.listing import ListQuery
from sandbox.sims.partner_center.patch import parse_patch
from sandbox.sims.partner_center.referrals import REFERRALS_PATH, Record, ReferralStore, not_found, render
from sandbox.sims.partner_center.stamps import Stamps
from sandbox.sims.partner_center.webhooks import (
    EVENT_RESOURCE_PATH,
    SUPPORTED_EVENTS,
    WEBHOOKS_PATH,
    RateLimited,
    Webhooks,
)

TokenValidator = Callable[[str], bool]

DEFAULT_ORGANIZATION_ID = "4f2a8c1e-7b3d-4e95-a6c0-2d81f5b9e347"
DEFAULT_ORGANIZATION_NAME = "Co-sell Sandbox Partner"


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
        # Public address of this simulator: set it after ServerThread starts (sim.base_url = server.url).
        self.base_url: str | None = None
        self.cert_downloads = 0
        self._seen_base: str | None = None
        self._stamps = Stamps(seed)
        self.webhooks = Webhooks(
            pki=pki,
            lock=self._lock,
            stamps=self._stamps,
            base=self._base,
            cert_url=lambda: self.cert_url,
            delivery_attempts=delivery_attempts,
            delivery_backoff=delivery_backoff,
            validation_events_per_minute=validation_events_per_minute,
            thread_name=f"{self.name}-delivery",
        )
        self.store = ReferralStore(
            lock=self._lock,
            stamps=self._stamps,
            organization_id=organization_id,
            organization_name=organization_name,
            on_change=self.webhooks.fire,
        )

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

    # ================================================================== settings kept as plain attributes
    @property
    def organization_id(self) -> str:
        return self.store.organization_id

    @property
    def organization_name(self) -> str:
        return self.store.organization_name

    @property
    def delivery_enabled(self) -> bool:
        """Off = events are lost, as when Partner Center drops them."""
        return self.webhooks.delivery.enabled

    @delivery_enabled.setter
    def delivery_enabled(self, value: bool) -> None:
        self.webhooks.delivery.enabled = value

    @property
    def delivery_attempts(self) -> int:
        return self.webhooks.delivery.attempts

    @delivery_attempts.setter
    def delivery_attempts(self, value: int) -> None:
        self.webhooks.delivery.attempts = value

    @property
    def delivery_backoff(self) -> float:
        return self.webhooks.delivery.backoff

    @delivery_backoff.setter
    def delivery_backoff(self, value: float) -> None:
        self.webhooks.delivery.backoff = value

    @property
    def delivery_timeout(self) -> float:
        return self.webhooks.delivery.timeout

    @delivery_timeout.setter
    def delivery_timeout(self, value: float) -> None:
        self.webhooks.delivery.timeout = value

    @property
    def validation_events_per_minute(self) -> int | None:
        return self.webhooks.validation_events_per_minute

    @validation_events_per_minute.setter
    def validation_events_per_minute(self, value: int | None) -> None:
        self.webhooks.validation_events_per_minute = value

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """Finished deliveries, oldest first (the live list)."""
        return self.webhooks.delivery.deliveries

    # ================================================================== in-process data helpers
    def seed_referral(self, referral: Record, *, fire: bool = True) -> Record:
        """Store a referral as Microsoft (or another partner) would have created it for us: direction Incoming.

        Given fields are kept verbatim; an existing id is replaced and fires ``referral-updated`` instead.
        """
        return self._render(self.store.seed(referral, fire=fire))

    def update_referral(self, referral_id: str, changes: Record, *, fire: bool = True) -> Record:
        """A change made on Microsoft's side (no transition rules): deep-merge, bump updatedDateTime and eTag.

        ``updatedDateTime``/``eTag`` given in ``changes`` win, so tests can stage out-of-order updates.
        """
        return self._render(self.store.update(referral_id, changes, fire=fire))

    def get_referral(self, referral_id: str) -> Record | None:
        record = self.store.get(referral_id)
        return self._render(record) if record is not None else None

    def referrals(self) -> list[Record]:
        return [self._render(r) for r in self.store.all()]

    @property
    def registration(self) -> dict[str, Any] | None:
        """The stored registration, signature-header flag included (the control API's view)."""
        with self._lock:
            registration = self.webhooks.registration
            return registration.stored() if registration is not None else None

    def clear(self) -> None:
        """Forget referrals, the registration, validation events and deliveries."""
        with self._lock:
            self.store.clear()
            self.webhooks.clear()

    # ================================================================== delivery
    def sign_event(self, body: bytes, *, header: str = AUTHORIZATION) -> dict[str, str]:
        """The headers Partner Center sends with ``body``; ``header="x-ms-signature"`` for that registration mode."""
        return self.webhooks.delivery.sign(body, header=header)

    @property
    def cert_url(self) -> str:
        return f"{self._base()}{CERT_PATH}"

    def event_body(self, event_name: str, referral_id: str) -> bytes:
        """The exact bytes of an event for a stored referral (deterministic, so re-sends are byte-identical)."""
        with self._lock:
            record = self.store.find(referral_id)
            if record is None:
                raise KeyError(referral_id)
            return self.webhooks.referral_event_body(event_name, record)

    def deliver(self, referral_id: str, event_name: str = "referral-updated", times: int = 1) -> int:
        """Re-send an event (duplicates, replays). Needs a registration; ignores its event list and the toggle."""
        with self._lock:
            record = self.store.find(referral_id)
            if record is None:
                raise KeyError(referral_id)
            return self.webhooks.redeliver(event_name, record, times)

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``count`` deliveries finished (delivered or given up); returns the log even if short."""
        return self.webhooks.delivery.wait(count, timeout)

    def close(self) -> None:
        """Stop the delivery worker; pending deliveries are dropped."""
        self.webhooks.delivery.close()

    # ================================================================== Referrals API
    def _list(self, request: Request) -> Response:
        if denied := self._authorize(request, self.referrals_token_validator):
            return denied
        try:
            query = ListQuery.from_args(request.args)
        except ApiError as exc:
            return self._api_error(exc)
        matching = self.store.matching(query.predicate)
        base = self._base(request)
        body = query.page(
            matching,
            base=base,
            render=lambda record: render(record, base),
            request_args=list(request.args.items()),
        )
        return json_response(body)

    def _get(self, request: Request, referral_id: str) -> Response:
        if denied := self._authorize(request, self.referrals_token_validator):
            return denied
        record = self.store.get(referral_id)
        if record is None:
            return self._api_error(not_found(referral_id))
        body = self._entity(record, request)
        return json_response(body, headers={"ETag": body["eTag"]})

    def _create(self, request: Request) -> Response:
        if denied := self._authorize(request, self.referrals_token_validator):
            return denied
        try:
            created = self.store.create(request.get_json(force=True, silent=True))
        except ApiError as exc:
            return self._api_error(exc)
        body = self._entity(created, request)
        return json_response(body, headers={"ETag": body["eTag"]})

    def _patch(self, request: Request, referral_id: str) -> Response:
        if denied := self._authorize(request, self.referrals_token_validator):
            return denied
        try:
            # Checked whole before the lookup: a refused document never reaches the referral (patch.py).
            operations = parse_patch(request.get_json(force=True, silent=True))
            updated = self.store.patch(referral_id, operations, if_match=request.headers.get("If-Match"))
        except ApiError as exc:
            return self._api_error(exc)
        body = self._entity(updated, request)
        # "Add Prefer: return=representation to the header to get the updated lead or opportunity" (§1.6).
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
        try:
            registration = self.webhooks.current()
        except ApiError as exc:
            return self._api_error(exc)
        return json_response(registration.as_get())

    def _create_registration(self, request: Request) -> Response:
        return self._write_registration(request, create=True)

    def _update_registration(self, request: Request) -> Response:
        return self._write_registration(request, create=False)

    def _write_registration(self, request: Request, *, create: bool) -> Response:
        if denied := self._authorize(request, self.webhooks_token_validator):
            return denied
        try:
            registration = self.webhooks.register(request.get_json(force=True, silent=True), create=create)
        except ApiError as exc:
            return self._api_error(exc)
        return json_response(registration.as_written())

    def _create_validation(self, request: Request) -> Response:
        if denied := self._authorize(request, self.webhooks_token_validator):
            return denied
        try:
            correlation_id = self.webhooks.send_validation_event(self._base(request))
        except RateLimited as exc:
            return self.error_response(exc.status, exc.code, exc.message, {"Retry-After": str(exc.retry_after)})
        except ApiError as exc:
            return self._api_error(exc)
        return json_response({"correlationId": correlation_id})

    def _get_validation(self, request: Request, correlation_id: str) -> Response:
        if denied := self._authorize(request, self.webhooks_token_validator):
            return denied
        try:
            return json_response(self.webhooks.validation_status(correlation_id, self.organization_id))
        except ApiError as exc:
            return self._api_error(exc)

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
        return json_response(error_body(status, code, message), status, headers)

    def _api_error(self, exc: ApiError) -> Response:
        return self.error_response(exc.status, exc.code, exc.message)

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
        """This simulator's public address: ``base_url``, else the one the request (or first request) used."""
        if self.base_url:
            return self.base_url.rstrip("/")
        if request is not None:
            return request.host_url.rstrip("/")
        if self._seen_base:
            return self._seen_base
        raise RuntimeError("PartnerCenterSimulator.base_url is not set (set it to the ServerThread url)")

    def _render(self, record: Record, request: Request | None = None) -> Record:
        try:
            base: str | None = self._base(request)
        except RuntimeError:
            base = None
        return render(record, base)

    def _entity(self, record: Record, request: Request) -> Record:
        return {
            "@odata.context": f"{self._base(request)}{REFERRALS_PATH}/$metadata#Referrals/$entity",
            **self._render(record, request),
        }

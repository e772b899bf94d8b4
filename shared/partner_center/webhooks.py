"""Partner Center Webhooks API (``/webhooks/v1/registration``): one callback URL per tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from shared.http import ServiceClient

REFERRAL_EVENTS: tuple[str, ...] = (
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
)
TEST_EVENT = "test-created"


@dataclass
class Registration:
    webhook_url: str
    events: list[str] = field(default_factory=list)
    signature_in_ms_header: bool = False
    subscriber_id: str | None = None

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Registration:
        lowered = {k.lower(): v for k, v in body.items()}
        return cls(
            webhook_url=str(lowered.get("webhookurl") or ""),
            events=list(lowered.get("webhookevents") or []),
            signature_in_ms_header=bool(lowered.get("signaturetokentomssignatureheader") or False),
            subscriber_id=lowered.get("subscriberid"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "WebhookUrl": self.webhook_url,
            "WebhookEvents": list(self.events),
            "SignatureTokenToMsSignatureHeader": self.signature_in_ms_header,
        }


class WebhookRegistrationClient:
    def __init__(self, http: ServiceClient) -> None:
        self._http = http

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"Accept": "application/json", "MS-CorrelationId": str(uuid.uuid4()), "MS-RequestId": str(uuid.uuid4())}

    def get(self) -> Registration | None:
        response = self._http.request("GET", "registration", headers=self._headers(), expected=(404,))
        if response.status_code == 404 or not response.content:
            return None
        return Registration.from_wire(response.json())

    def create(self, registration: Registration) -> Registration:
        response = self._http.request("POST", "registration", json=registration.to_wire(), headers=self._headers())
        return Registration.from_wire(response.json())

    def replace(self, registration: Registration) -> Registration:
        response = self._http.request("PUT", "registration", json=registration.to_wire(), headers=self._headers())
        return Registration.from_wire(response.json())

    def supported_events(self) -> list[str]:
        response = self._http.request("GET", "registration/events", headers=self._headers())
        return list(response.json())

    def send_validation_event(self) -> str:
        response = self._http.request("POST", "registration/validationEvents", headers=self._headers())
        return str(response.json().get("correlationId", ""))

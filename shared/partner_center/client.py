"""Partner Center Referrals API (``/v1.0/engagements/referrals``): the wire format lives here."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from shared.http import ServiceClient
from shared.partner_center.models import Referral

JsonPatch = list[dict[str, Any]]


class ReferralsClient:
    def __init__(self, http: ServiceClient) -> None:
        self._http = http

    @staticmethod
    def _headers(**extra: str) -> dict[str, str]:
        # client-request-id: "a unique identifier for the call ... reset for every call" (headers doc).
        return {"Accept": "application/json", "client-request-id": str(uuid.uuid4()), **extra}

    def get(self, referral_id: str) -> Referral:
        response = self._http.request("GET", f"referrals/{_segment(referral_id)}", headers=self._headers())
        referral = Referral.model_validate(response.json())
        if not referral.e_tag and response.headers.get("ETag"):
            referral.e_tag = response.headers["ETag"]
        return referral

    def list(
        self,
        *,
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
    ) -> Iterator[Referral]:
        """Yield every referral the query matches, following ``@odata.nextLink`` verbatim."""
        params: dict[str, str] = {}
        if filter:
            params["$filter"] = filter
        if orderby:
            params["$orderby"] = orderby
        if top:
            params["$top"] = str(top)
        url: str | None = "referrals"
        while url:
            response = self._http.request("GET", url, params=params or None, headers=self._headers())
            body = response.json()
            for item in body.get("value", []):
                yield Referral.model_validate(item)
            url = body.get("@odata.nextLink")
            params = {}

    def create(self, body: dict[str, Any]) -> Referral:
        # A create whose answer is lost may have been carried out: never blindly retry it.
        response = self._http.request("POST", "referrals", json=body, headers=self._headers(), retry_on_timeout=False)
        return Referral.model_validate(response.json())

    def patch(self, referral_id: str, operations: JsonPatch, *, etag: str | None = None) -> Referral | None:
        """Apply a JSON Patch (``replace``/``add`` only, per the API) and return the updated referral."""
        headers = self._headers(Prefer="return=representation")
        headers["Content-Type"] = "application/json"
        if etag:
            headers["If-Match"] = etag
        response = self._http.request("PATCH", f"referrals/{_segment(referral_id)}", json=operations, headers=headers)
        if response.status_code == 204 or not response.content:
            return None
        return Referral.model_validate(response.json())


def _segment(value: str) -> str:
    """Referral ids are GUIDs; refuse anything that could change the path."""
    if not value or any(ch in value for ch in "/?#%\\") or value in (".", ".."):
        raise ValueError(f"invalid referral id {value!r}")
    return value

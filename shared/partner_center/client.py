"""Partner Center Referrals API (``/v1.0/engagements/referrals``): the wire format lives here."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator

from shared.http import ServiceClient
from shared.partner_center.models import MalformedReferral, Referral
from shared.partner_center.writes import ReferralChanges, ReferralDraft

log = logging.getLogger("cosell.partner_center")


class ReferralsClient:
    def __init__(self, http: ServiceClient) -> None:
        self._http = http

    @staticmethod
    def _headers(**extra: str) -> dict[str, str]:
        # client-request-id: "a unique identifier for the call ... reset for every call" (headers doc).
        return {"Accept": "application/json", "client-request-id": str(uuid.uuid4()), **extra}

    def get(self, referral_id: str) -> Referral:
        response = self._http.request("GET", f"referrals/{_segment(referral_id)}", headers=self._headers())
        referral = Referral.parse(response.json())
        if referral.id.lower() != referral_id.lower():
            # Its id becomes the CRM's key: a body naming another (or no) referral is not this one.
            raise MalformedReferral(f"Partner Center answered for referral {referral_id} with another id")
        if not referral.e_tag and response.headers.get("ETag"):
            referral.e_tag = response.headers["ETag"]
        return referral

    def probe(self) -> int:
        """One cheap authenticated GET (``$top=1``): how many referrals its page holds (0 or 1)."""
        response = self._http.request("GET", "referrals", params={"$top": "1"}, headers=self._headers())
        body = response.json()
        return len(body.get("value", [])) if isinstance(body, dict) else 0

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
                try:
                    yield Referral.parse(item)
                except MalformedReferral as exc:
                    log.warning("Skipped an unreadable referral in a list: %s", exc)
            url = body.get("@odata.nextLink")
            params = {}

    def changed_since(self, since: dt.datetime) -> Iterator[Referral]:
        """Referrals updated at or after ``since``, oldest first (``updatedDateTime`` is a documented filter)."""
        return self.list(filter=f"updatedDateTime ge {odata_datetime(since)}", orderby="updatedDateTime asc")

    def find_by_external_reference(self, external_id: str, *, updated_since: dt.datetime) -> Referral | None:
        """The referral created for ``external_id`` at or after ``updated_since``, if Partner Center has one.

        ``externalReferenceId`` is not among the documented list filters, and a service may ignore an
        undocumented filter and return everything: so the list is narrowed by a documented filter
        (updated since the create was attempted) and the id is compared here, exactly.
        """
        for referral in self.changed_since(updated_since):
            if referral.external_reference_id == external_id:
                return referral
        return None

    def create(self, draft: ReferralDraft) -> Referral:
        # A create whose answer is lost (or a 5xx) may have been carried out: never blindly retry it.
        body = draft.to_wire()
        response = self._http.request("POST", "referrals", json=body, headers=self._headers(), idempotent=False)
        return Referral.parse(response.json())

    def patch(self, referral_id: str, changes: ReferralChanges, *, etag: str | None = None) -> Referral | None:
        """One JSON Patch (documented paths, ``replace``/``add``); the updated referral, or None on a 204."""
        operations = changes.operations()
        headers = self._headers(Prefer="return=representation")
        headers["Content-Type"] = "application/json"
        if etag:
            headers["If-Match"] = etag
        response = self._http.request(
            "PATCH", f"referrals/{_segment(referral_id)}", json=[op.to_wire() for op in operations], headers=headers
        )
        if response.status_code == 204 or not response.content:
            return None
        return Referral.parse(response.json())


def odata_datetime(value: dt.datetime) -> str:
    """An unquoted OData DateTimeOffset literal in UTC, as the Referrals API's filter samples write it."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _segment(value: str) -> str:
    """Referral ids are GUIDs; refuse anything that could change the path."""
    if not value or any(ch in value for ch in "/?#%\\") or value in (".", ".."):
        raise ValueError(f"invalid referral id {value!r}")
    return value

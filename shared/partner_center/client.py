"""Partner Center Referrals API (``/v1.0/engagements/referrals``): the wire format lives here."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from shared.http import ServiceClient
from shared.partner_center.models import MalformedReferral, Referral
from shared.partner_center.writes import ReferralChanges, ReferralDraft

log = logging.getLogger("cosell.partner_center")


@dataclass
class ReferralPage:
    referrals: list[Referral]
    next_link: str | None
    unreadable: int = 0  # items without a readable id: skipped, and counted so a caller can say so


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
        page = self.page(None, filter=filter, orderby=orderby, top=top)
        while True:
            yield from page.referrals
            if not page.next_link:
                return
            page = self.page(page.next_link)

    def page(
        self,
        link: str | None,
        *,
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
    ) -> ReferralPage:
        """One page: the first of a query (``link`` None), or the one an earlier page's ``@odata.nextLink`` names.

        A link carries the whole query (reference §1.3), so it is followed verbatim; the query options
        apply to the first page only.
        """
        params: dict[str, str] = {}
        if link is None:
            if filter:
                params["$filter"] = filter
            if orderby:
                params["$orderby"] = orderby
            if top:
                params["$top"] = str(top)
        response = self._http.request("GET", link or "referrals", params=params or None, headers=self._headers())
        body = response.json()
        referrals: list[Referral] = []
        unreadable = 0
        for item in body.get("value", []):
            try:
                referrals.append(Referral.parse(item))
            except MalformedReferral as exc:
                unreadable += 1
                log.warning("Skipped an unreadable referral in a list: %s", exc)
        next_link = body.get("@odata.nextLink")
        return ReferralPage(referrals, next_link if isinstance(next_link, str) and next_link else None, unreadable)

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

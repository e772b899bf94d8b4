"""Partner Center simulator: the Referrals API, the Webhooks registration API and signed event delivery.

It speaks the wire formats of ``reference/partner-center-api.md``: OData list paging with an absolute
``@odata.nextLink``, JSON Patch with ``If-Match`` and the status transition table, the
``{"error": {...}}`` body, PascalCase webhook registrations, and events POSTed to the registered URL
signed with the sandbox PKI exactly like Partner Center signs them, so the app's real signature
check runs. Delivery is asynchronous and retried like the real service (10 attempts, then given up).

One module per concern:

- :mod:`.app`        the WSGI app: routes, bearer tokens, the certificate, the control API
- :mod:`.referrals`  stored referrals, create/seed defaults, status transitions (§1.5, §1.6)
- :mod:`.patch`      JSON Patch on a referral (§1.6)
- :mod:`.listing`    ``$filter``/``$orderby``/``$select`` and paging (§1.3)
- :mod:`.webhooks`   the registration, validation events, which events fire (§4.1, §4.2)
- :mod:`.delivery`   signing and the retrying delivery worker (§4.4, §4.5)
- :mod:`.fields`, :mod:`.stamps`, :mod:`.errors`  wire names, ids/times/eTags, the error body

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
- ``GET   /_sim/registration``     the stored registration with SubscriberId and the signature-header flag
  (or null), without auth
- ``POST  /_sim/clear``            forgets referrals, registration, validation events and deliveries
"""

from __future__ import annotations

from sandbox.sims.partner_center.app import (
    DEFAULT_ORGANIZATION_ID,
    DEFAULT_ORGANIZATION_NAME,
    PartnerCenterSimulator,
    TokenValidator,
)
from sandbox.sims.partner_center.delivery import CERT_PATH
from sandbox.sims.partner_center.errors import ApiError
from sandbox.sims.partner_center.listing import PAGE_SIZE
from sandbox.sims.partner_center.referrals import REFERRALS_PATH, TRANSITIONS
from sandbox.sims.partner_center.webhooks import (
    EVENT_RESOURCE_PATH,
    REFERRAL_EVENTS,
    SUPPORTED_EVENTS,
    WEBHOOKS_PATH,
)

__all__ = [
    "CERT_PATH",
    "DEFAULT_ORGANIZATION_ID",
    "DEFAULT_ORGANIZATION_NAME",
    "EVENT_RESOURCE_PATH",
    "PAGE_SIZE",
    "REFERRALS_PATH",
    "REFERRAL_EVENTS",
    "SUPPORTED_EVENTS",
    "TRANSITIONS",
    "WEBHOOKS_PATH",
    "ApiError",
    "PartnerCenterSimulator",
    "TokenValidator",
]

"""Register this app's events URL with Partner Center without silently taking over someone else's.

The Webhooks API holds one registration (one URL) per tenant. If another URL is registered (for
example the Power Automate connector's flow), we only replace it when asked, and report what was
replaced so the operator can tell the owner of that URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.partner_center.webhooks import REFERRAL_EVENTS, TEST_EVENT, Registration, WebhookRegistrationClient

WANTED_EVENTS = [*REFERRAL_EVENTS, TEST_EVENT]


@dataclass
class RegistrationResult:
    action: str  # created | updated | unchanged | conflict
    registration: Registration | None
    replaced: Registration | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self, redact: bool = True) -> dict[str, Any]:
        def show(reg: Registration | None) -> dict[str, Any] | None:
            if reg is None:
                return None
            wire = reg.to_wire()
            if redact:
                wire["WebhookUrl"] = redact_url(reg.webhook_url)
            return wire

        return {
            "action": self.action,
            "registration": show(self.registration),
            "replaced": show(self.replaced),
            "notes": self.notes,
        }


def redact_url(url: str) -> str:
    """Function keys travel as ``?code=``: never echo or log them."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    parts = [p if not p.lower().startswith("code=") else "code=***" for p in query.split("&")]
    return f"{base}?{'&'.join(parts)}"


def ensure_registration(
    client: WebhookRegistrationClient, url: str, *, overwrite: bool, signature_in_ms_header: bool = True
) -> RegistrationResult:
    desired = Registration(webhook_url=url, events=list(WANTED_EVENTS), signature_in_ms_header=signature_in_ms_header)
    current = client.get()
    if current is None:
        return RegistrationResult("created", client.create(desired))
    same_url = current.webhook_url == url
    has_events = {e.lower() for e in WANTED_EVENTS} <= {e.lower() for e in current.events}
    # GET answers only WebhookUrl and WebhookEvents (Webhooks API reference), so those are all we can
    # compare: the signature-header choice is not readable back, and re-sending it changes nothing.
    if same_url and has_events:
        return RegistrationResult("unchanged", current)
    if not same_url and not overwrite:
        return RegistrationResult(
            "conflict",
            current,
            notes=[
                "Another URL is registered for this tenant and Partner Center allows only one. "
                'Send {"overwrite": true} to replace it; the replaced URL will stop receiving events.'
            ],
        )
    notes = []
    dropped = sorted({e for e in current.events if e.lower() not in {w.lower() for w in WANTED_EVENTS}})
    if dropped and not same_url:
        notes.append(f"These events were registered to the replaced URL and are no longer delivered: {dropped}")
    if same_url:
        desired.events = sorted({*current.events, *WANTED_EVENTS})
    updated = client.replace(desired)
    return RegistrationResult("updated", updated, replaced=None if same_url else current, notes=notes)

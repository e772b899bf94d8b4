"""API calls per sync, both directions, from the audit rows (every HTTP attempt, counted per service).

The minimum per Partner Center → CRM sync is what no design can go below: a new referral needs the
Partner Center GET, one request that looks up what the CRM already has, and one that writes it; a
changed referral the GET and one write; an unchanged one the GET alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from azure.data.tables import TableClient

from bench.common import audit_rows, calls_of, new_referral
from sandbox.sellers import Seller
from sandbox.stack import Stack

MINIMUM = {"new": 3, "changed": 2, "unchanged": 1}


@dataclass
class Calls:
    label: str
    calls: int
    writes: int
    by_service: dict[str, int]
    minimum: int | None = None

    @property
    def ratio(self) -> float | None:
        return self.calls / self.minimum if self.minimum else None

    def line(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.by_service.items()))
        text = f"{self.calls:>3} calls ({parts}); {self.writes} write(s)"
        if self.ratio is not None:
            text += f"; minimum {self.minimum}, ratio {self.ratio:.2f}"
        return text


def _row(label: str, row: dict[str, Any], minimum: int | None = None) -> Calls:
    calls, writes, by_service = calls_of(row)
    return Calls(label, calls, writes, by_service, minimum)


def inbound(stack: Stack) -> list[Calls]:
    pc = stack.sandbox.partner_center
    first = pc.seed_referral(new_referral("Cold Instance Customer"))
    cold = audit_rows(stack, first["id"], 1)[0]
    warm_referral = pc.seed_referral(new_referral("Warm Instance Customer"))
    warm = audit_rows(stack, warm_referral["id"], 1)[0]
    pc.deliver(warm_referral["id"], "referral-updated")
    unchanged = audit_rows(stack, warm_referral["id"], 2)[0]
    pc.update_referral(warm_referral["id"], {"details": {"dealValue": 75000}})
    changed = audit_rows(stack, warm_referral["id"], 3)[0]
    return [
        _row("new referral, cold instance (tokens fetched)", cold),
        _row("new referral, warm instance", warm, MINIMUM["new"]),
        _row("same referral delivered again (unchanged)", unchanged, MINIMUM["unchanged"]),
        _row("deal value changed", changed, MINIMUM["changed"]),
    ]


def _poll(stack: Stack, seller: Seller) -> dict[str, int]:
    stack.host.fire("crm_to_partner_center", timeout=600)
    table = TableClient.from_connection_string(stack.azurite.connection_string, "SyncState")
    return json.loads(table.get_entity("watermark", seller.poll_watermark())["last_api_calls"])


def outbound(stack: Stack, seller: Seller) -> tuple[list[Calls], list[tuple[str, dict[str, int]]]]:
    polls: list[tuple[str, dict[str, int]]] = []
    first = seller.opportunity(name="Bench create")
    polls.append(("1 new opportunity", _poll(stack, seller)))
    view = seller.deal(first)
    if view is None or not view.referral_id:
        raise RuntimeError("the bench's deal was not shared")
    create = next(r for r in audit_rows(stack, view.referral_id, 1) if r["direction"] == "crm-to-pc")
    seller.set_value(first, 61000)
    polls.append(("1 changed opportunity", _poll(stack, seller)))
    update = next(
        r for r in audit_rows(stack, view.referral_id, 2) if r["direction"] == "crm-to-pc" and r["outcome"] == "updated"
    )
    polls.append(("nothing changed", _poll(stack, seller)))
    many = [seller.opportunity(name=f"Bench {n}") for n in range(40)]
    polls.append(("40 new opportunities", _poll(stack, seller)))
    for opportunity in many[:10]:
        seller.set_description(opportunity, "changed")
    polls.append(("10 changed of 41", _poll(stack, seller)))
    for opportunity in many:
        seller.touch(opportunity)  # a field the sync does not share
    polls.append(("40 touched, shared content unchanged", _poll(stack, seller)))
    records = [
        _row("create a referral (validate, POST, write back)", create),
        _row("update (GET, one JSON Patch, audit line)", update),
    ]
    return records, polls

"""``make demo``: a scripted scenario against the sandbox; prints a report, exits 0 only if all converged."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from sandbox.run import sample_referrals
from sandbox.sellers import Seller, seller_for
from sandbox.stack import Stack

TIMEOUT = 30.0
POLL = "crm_to_partner_center"
# The demo fires the timers itself, so each step's effect is attributable.
ON_DEMAND = {"CRM_POLL_SCHEDULE": "0 0 0 1 1 *", "RECONCILE_SCHEDULE": "0 0 0 1 1 *"}


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float


def _wait(condition: Callable[[], Any], timeout: float = TIMEOUT) -> tuple[Any, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = condition()
        if value:
            return value, time.monotonic() - started
        time.sleep(0.1)
    return None, time.monotonic() - started


def _audited(stack: Stack, referral_id: str) -> bool:
    """The inbound sync of ``referral_id`` has finished (its audit row is written last)."""
    table = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    with contextlib.suppress(ResourceNotFoundError):
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": referral_id}, select=["outcome"])
        return any(r["outcome"] in ("created", "updated") for r in rows)
    return False


def _last_poll_calls(stack: Stack, seller: Seller) -> dict[str, int]:
    table = TableClient.from_connection_string(stack.azurite.connection_string, "SyncState")
    return dict(json.loads(table.get_entity("watermark", seller.poll_watermark())["last_api_calls"]))


def scenario(stack: Stack, seller: Seller) -> list[Step]:
    pc = stack.sandbox.partner_center
    steps: list[Step] = []
    registration = stack.register_webhook()
    steps.append(
        Step(
            "Register the webhook with Partner Center",
            registration.get("action") == "created",
            f"action={registration.get('action')}",
            0.0,
        )
    )

    lead, shared, won = sample_referrals()
    expectations: list[tuple[dict[str, Any], Callable[[str], list[str]], str]] = [
        (lead, seller.leads_for, "marketplace lead -> CRM lead"),
        (shared, lambda r: [d.name for d in seller.deals_for(r) if d.stage == "open"], "co-sell -> open opportunity"),
        (won, lambda r: [d.name for d in seller.deals_for(r) if d.stage == "won"], "won referral -> won opportunity"),
    ]
    for referral, found_by, label in expectations:
        pc.seed_referral(referral)
        found, seconds = _wait(lambda r=referral, f=found_by: f(r["id"]))
        _wait(lambda r=referral: _audited(stack, r["id"]))  # all of its writes are done, not just the first
        detail = f"{label}: '{found[0]}'" if found else f"{label}: not found"
        steps.append(Step(f"Partner Center creates referral {referral['id'][:8]}", bool(found), detail, seconds))

    before_writes = seller.writes()
    pc.update_referral(shared["id"], {"details": {"dealValue": 75000}})
    found, seconds = _wait(lambda: [d for d in seller.deals_for(shared["id"]) if d.value == 75000])
    patches = seller.writes() - before_writes
    steps.append(
        Step(
            "Partner Center changes the deal value to 75,000",
            bool(found) and patches == 1,
            f"{patches} CRM write(s) (expected exactly 1)",
            seconds,
        )
    )

    before_writes = seller.writes()
    pc.deliver(shared["id"], "referral-updated", times=3)
    pc.wait_for_deliveries(len(pc.deliveries) + 3, timeout=TIMEOUT)
    time.sleep(1.5)  # let the worker drain the three messages
    deals = seller.deals_for(shared["id"])
    written = seller.writes() - before_writes
    ok = len(deals) == 1 and written == 0
    steps.append(
        Step(
            "The same event is delivered three more times", ok, f"{len(deals)} opportunity, {written} CRM write(s)", 0.0
        )
    )
    steps += crm_to_partner_center(stack, seller)
    steps += missed_webhook(stack, seller)
    return steps


def crm_to_partner_center(stack: Stack, seller: Seller) -> list[Step]:
    pc, host = stack.sandbox.partner_center, stack.host
    steps: list[Step] = []
    opportunity_id = seller.opportunity(name=f"Demo co-sell from {seller.crm_name}")
    started = time.monotonic()
    host.fire(POLL)
    shared = [r for r in pc.referrals() if r.get("externalReferenceId") == opportunity_id]
    record = seller.deal(opportunity_id)
    ok = len(shared) == 1 and record is not None and record.referral_id == shared[0]["id"]
    ok = ok and record is not None and record.name.startswith("✔")
    referral = shared[0]["id"][:8] if shared else "-"
    detail = f"referral {referral}; CRM name '{record.name if record else '-'}'"
    steps.append(Step(f"A seller shares an opportunity from {seller.crm_name}", ok, detail, time.monotonic() - started))

    patches = len(pc.recorded("PATCH"))
    seller.set_value(opportunity_id, 88000)
    started = time.monotonic()
    host.fire(POLL)
    value = pc.get_referral(shared[0]["id"])["details"]["dealValue"] if shared else None
    sent = [r.body for r in pc.recorded("PATCH")[patches:]]
    ok = value == 88000 and len(sent) == 1
    detail = f"{len(sent)} PATCH: {sent[0] if sent else '-'}"
    steps.append(Step("The seller changes the deal value to 88,000", ok, detail, time.monotonic() - started))

    host.fire(POLL)
    # The poll's own count (on its watermark row): Partner Center's webhook for our PATCH may be
    # read by the inbound worker meanwhile, and that GET is not the poll's.
    made = _last_poll_calls(stack, seller).get("partner-center", 0)
    steps.append(Step("The next poll, with nothing changed", made == 0, f"{made} Partner Center call(s)", 0.0))

    bad = seller.opportunity(value=0, name="Demo deal with no value")
    posts = len(pc.recorded("POST"))
    host.fire(POLL)
    rejected = seller.deal(bad)
    audit = (rejected.audit if rejected else "-").splitlines()[0] if rejected and rejected.audit else "-"
    ok = rejected is not None and rejected.name.startswith("✖") and len(pc.recorded("POST")) == posts
    steps.append(Step("A deal whose value is 0", ok, audit, 0.0))

    seller.win(opportunity_id, 88000)
    host.fire(POLL)
    closed = pc.get_referral(shared[0]["id"]) if shared else {}
    state = (closed.get("status"), closed.get("substatus"))
    steps.append(
        Step(
            "The seller closes the opportunity as won",
            state == ("Closed", "Won"),
            f"referral {state[0]}/{state[1]}",
            0.0,
        )
    )
    return steps


def missed_webhook(stack: Stack, seller: Seller) -> list[Step]:
    pc = stack.sandbox.partner_center
    referral = sample_referrals()[1]
    referral["name"] = "Demo missed webhook"
    pc.seed_referral(referral)
    _wait(lambda: seller.deals_for(referral["id"]))
    pc.delivery_enabled = False
    pc.update_referral(referral["id"], {"details": {"dealValue": 64000}})
    pc.delivery_enabled = True
    stack.host.fire("referral_reconcile")
    found, seconds = _wait(lambda: [d for d in seller.deals_for(referral["id"]) if d.value == 64000])
    detail = f"healed: deal value 64,000 in {seller.crm_name}" if found else "not healed"
    return [Step("Partner Center changes a referral while webhooks are down", bool(found), detail, seconds)]


def report(steps: list[Step]) -> bool:
    width = max(len(s.name) for s in steps)
    print("\nCo-sell sync demo")
    print("=" * (width + 40))
    for step in steps:
        mark = "✔" if step.ok else "✖"
        timing = f"{step.seconds:5.2f}s" if step.seconds else "      "
        print(f"{mark} {step.name.ljust(width)}  {timing}  {step.detail}")
    converged = all(s.ok for s in steps)
    print("=" * (width + 40))
    print("Everything converged." if converged else "NOT converged: see the ✖ lines above.")
    return converged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="keep logs and data in this directory")
    parser.add_argument("--crm", choices=("dynamics", "salesforce"), default="dynamics")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cosell-demo-") as tmp:
        data_dir = args.keep or Path(tmp)
        with Stack(data_dir, seed=42, crm=args.crm, extra_settings=ON_DEMAND) as stack:
            steps = scenario(stack, seller_for(stack.sandbox, args.crm))
        ok = report(steps)
        if not ok:
            print(f"\nHost log:\n{(data_dir / 'host.log').read_text(errors='replace')[-4000:]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

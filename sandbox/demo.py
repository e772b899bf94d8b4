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

from sandbox.crm_user import CrmUser
from sandbox.run import sample_referrals
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


def _records(stack: Stack, entity_set: str, referral_id: str) -> list[dict[str, Any]]:
    return [r for r in stack.sandbox.dataverse.records(entity_set) if r.get("cosell_referralid") == referral_id]


def _audited(stack: Stack, referral_id: str) -> bool:
    """The inbound sync of ``referral_id`` has finished (its audit row is written last)."""
    table = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    with contextlib.suppress(ResourceNotFoundError):
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": referral_id}, select=["outcome"])
        return any(r["outcome"] in ("created", "updated") for r in rows)
    return False


def _last_poll_calls(stack: Stack) -> dict[str, int]:
    table = TableClient.from_connection_string(stack.azurite.connection_string, "SyncState")
    return dict(json.loads(table.get_entity("watermark", "crm-dynamics")["last_api_calls"]))


def _crm_writes(stack: Stack) -> int:
    return sum(1 for r in stack.sandbox.dataverse.recorded() if r.method in ("POST", "PATCH", "DELETE"))


def scenario(stack: Stack) -> list[Step]:
    pc, dv = stack.sandbox.partner_center, stack.sandbox.dataverse
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
    expectations = [
        (lead, "leads", lambda r: r["statecode"] == 0, "marketplace lead -> CRM lead"),
        (shared, "opportunities", lambda r: (r["statecode"], r["statuscode"]) == (0, 1), "co-sell -> open opportunity"),
        (
            won,
            "opportunities",
            lambda r: (r["statecode"], r["statuscode"]) == (1, 3),
            "won referral -> won opportunity",
        ),
    ]
    for referral, entity_set, check, label in expectations:
        pc.seed_referral(referral)
        found, seconds = _wait(
            lambda r=referral, s=entity_set, c=check: [x for x in _records(stack, s, r["id"]) if c(x)]
        )
        _wait(lambda r=referral: _audited(stack, r["id"]))  # all of its writes are done, not just the first
        detail = f"{label}: '{found[0].get('name') or found[0].get('subject')}'" if found else f"{label}: not found"
        steps.append(Step(f"Partner Center creates referral {referral['id'][:8]}", bool(found), detail, seconds))

    before_writes = _crm_writes(stack)
    pc.update_referral(shared["id"], {"details": {"dealValue": 75000}})
    found, seconds = _wait(
        lambda: [r for r in _records(stack, "opportunities", shared["id"]) if r.get("estimatedvalue") == 75000]
    )
    patches = _crm_writes(stack) - before_writes
    steps.append(
        Step(
            "Partner Center changes the deal value to 75,000",
            bool(found) and patches == 1,
            f"{patches} CRM write(s) (expected exactly 1 PATCH)",
            seconds,
        )
    )

    before_writes = _crm_writes(stack)
    before_calls = len(dv.recorded())
    pc.deliver(shared["id"], "referral-updated", times=3)
    pc.wait_for_deliveries(len(pc.deliveries) + 3, timeout=TIMEOUT)
    time.sleep(1.5)  # let the worker drain the three messages
    opportunities = _records(stack, "opportunities", shared["id"])
    ok = len(opportunities) == 1 and _crm_writes(stack) == before_writes
    steps.append(
        Step(
            "The same event is delivered three more times",
            ok,
            f"{len(opportunities)} opportunity, {len(dv.recorded()) - before_calls} CRM call(s)",
            0.0,
        )
    )
    steps += crm_to_partner_center(stack)
    steps += missed_webhook(stack)
    return steps


def crm_to_partner_center(stack: Stack) -> list[Step]:
    pc, host, crm = stack.sandbox.partner_center, stack.host, CrmUser(stack.sandbox)
    steps: list[Step] = []
    opportunity_id = crm.opportunity(name="Demo co-sell from Dynamics")
    started = time.monotonic()
    host.fire(POLL)
    shared = [r for r in pc.referrals() if r.get("externalReferenceId") == opportunity_id]
    record = stack.sandbox.dataverse.get("opportunities", opportunity_id) or {}
    ok = len(shared) == 1 and record.get("cosell_referralid") == shared[0]["id"] and record["name"].startswith("✔")
    referral = shared[0]["id"][:8] if shared else "-"
    detail = f"referral {referral}; CRM name '{record.get('name')}'"
    steps.append(Step("A seller shares an opportunity from Dynamics 365", ok, detail, time.monotonic() - started))

    patches = len(pc.recorded("PATCH"))
    crm.update("opportunities", opportunity_id, {"estimatedvalue": 88000})
    started = time.monotonic()
    host.fire(POLL)
    value = pc.get_referral(shared[0]["id"])["details"]["dealValue"] if shared else None
    sent = [r.body for r in pc.recorded("PATCH")[patches:]]
    ok = value == 88000 and len(sent) == 1
    detail = f"{len(sent)} PATCH: {sent[0] if sent else '-'}"
    steps.append(Step("The seller changes the estimated value to 88,000", ok, detail, time.monotonic() - started))

    host.fire(POLL)
    # The poll's own count (on its watermark row): Partner Center's webhook for our PATCH may be
    # read by the inbound worker meanwhile, and that GET is not the poll's.
    made = _last_poll_calls(stack).get("partner-center", 0)
    steps.append(Step("The next poll, with nothing changed", made == 0, f"{made} Partner Center call(s)", 0.0))

    bad = crm.opportunity(country="United States", name="Demo deal with a bad country")
    posts = len(pc.recorded("POST"))
    host.fire(POLL)
    record = stack.sandbox.dataverse.get("opportunities", bad) or {}
    audit = (record.get("cosell_audit") or "-").splitlines()[0]
    ok = record.get("name", "").startswith("✖") and len(pc.recorded("POST")) == posts
    steps.append(Step("A deal whose account country is 'United States'", ok, audit, 0.0))

    crm.win(opportunity_id, 88000)
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


def missed_webhook(stack: Stack) -> list[Step]:
    pc = stack.sandbox.partner_center
    referral = sample_referrals()[1]
    referral["name"] = "Demo missed webhook"
    pc.seed_referral(referral)
    _wait(lambda: _records(stack, "opportunities", referral["id"]))
    pc.delivery_enabled = False
    pc.update_referral(referral["id"], {"details": {"dealValue": 64000}})
    pc.delivery_enabled = True
    stack.host.fire("referral_reconcile")
    found, seconds = _wait(
        lambda: [r for r in _records(stack, "opportunities", referral["id"]) if r.get("estimatedvalue") == 64000]
    )
    detail = "healed: deal value 64,000 in Dynamics 365" if found else "not healed"
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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cosell-demo-") as tmp:
        data_dir = args.keep or Path(tmp)
        with Stack(data_dir, seed=42, extra_settings=ON_DEMAND) as stack:
            steps = scenario(stack)
        ok = report(steps)
        if not ok:
            print(f"\nHost log:\n{(data_dir / 'host.log').read_text(errors='replace')[-4000:]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

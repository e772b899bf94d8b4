"""``make demo``: a scripted scenario against the sandbox; prints a report, exits 0 only if all converged."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.run import sample_referrals
from sandbox.stack import Stack

TIMEOUT = 30.0


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
    return steps


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
        with Stack(data_dir, seed=42) as stack:
            steps = scenario(stack)
        ok = report(steps)
        if not ok:
            print(f"\nHost log:\n{(data_dir / 'host.log').read_text(errors='replace')[-4000:]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

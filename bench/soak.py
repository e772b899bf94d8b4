"""``make soak``: 300 referrals for 20 customers under ~30 % injected faults on every remote.

Every remote the app calls (Entra ID, Partner Center, Dataverse) fails about 30 % of its API calls:
429/503 with ``Retry-After``, timeouts, and commit-then-timeout (the write happens, the answer is
lost). ``--crash`` also ``kill -9``s the host once a third of the referrals are in, and restarts it on
the same storage. The soak then waits until every referral is in Dynamics 365 and the queue is empty
(the dead host's messages come back after functionTimeout + 60 s), and prints: how many converged
with the right value, duplicates, the poison queue, API calls per referral (from the AuditLog rows;
a sync cut by the kill wrote no row, so its calls are not counted) and the wall time. Exit 0 only
if all converged with no duplicate and nothing poisoned.

Soak settings (not production values): a 30 s function timeout, so a dead host's messages return in
90 s rather than 11 minutes; 2 s call timeouts and in-call waits; Partner Center retrying a webhook
10 times 1 s apart, so events survive the restart; access tokens that live 125 s (the app renews them
120 s early, so it goes back to Entra ID every few seconds and meets its faults). Entra ID gets no
commit-then-timeout: the simulator invalidates a refresh token the moment it rotates it (stricter
than Entra, which tolerates reuse), so a lost answer would strand the app on a dead token in a way
Entra does not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from sandbox.demo import ON_DEMAND
from sandbox.run import sample_referrals
from sandbox.stack import Stack

EVENTS_QUEUE = "referral-events"
POISON_QUEUE = "referral-events-poison"

SOAK_SETTINGS = {
    **ON_DEMAND,  # the soak measures Partner Center -> CRM; timers run only when fired
    "HTTP_TIMEOUT_SECONDS": "2",
    "HTTP_MAX_BACKOFF_SECONDS": "2",
    "AzureFunctionsJobHost__functionTimeout": "00:00:30",
    "LEASE_SECONDS": "15",
}


def queue_depth(stack: Stack, queue: str) -> int:
    """Messages in a queue, invisible ones (being worked on, or waiting for a retry) included."""
    client = QueueClient.from_connection_string(stack.azurite.connection_string, queue)
    try:
        return int(client.get_queue_properties().approximate_message_count or 0)
    except ResourceNotFoundError:
        return 0


def faults(rate: float, seed: int, *, commit_timeouts: bool = True) -> dict[str, Any]:
    """About ``rate`` of all calls faulted: a sixth timeouts, a sixth commit-then-timeout, the rest 429/503."""
    timeout = rate / 6
    commit = rate / 6 if commit_timeouts else 0.0
    status = 1 - (1 - rate) / ((1 - timeout) * (1 - commit))  # the kinds are drawn one after another
    return {
        "rate": status,
        "statuses": [429, 503],
        "retry_after": 1,
        "timeout_rate": timeout,
        "commit_timeout_rate": commit,
        "timeout_seconds": 3,  # longer than the app's 2 s call timeout
        "seed": seed,
    }


def build_referrals(count: int, customers: int) -> list[dict[str, Any]]:
    """Microsoft's shared-and-accepted sample, ``count`` times, spread over ``customers`` customers."""
    tag = uuid.uuid4().hex[:6]
    referrals = []
    for n in range(count):
        customer = n % customers
        referral = sample_referrals()[1]
        referral["name"] = f"Soak deal {n}"
        referral["details"]["dealValue"] = 1000 + n
        referral["customerProfile"]["name"] = f"Soak Customer {tag} {customer}"
        referral["customerProfile"]["address"]["postalCode"] = f"8{customer:04d}"
        for member in referral["customerProfile"]["team"]:
            member["email"] = member["email"].replace("@", f".soak{tag}{customer}@")
        referrals.append(referral)
    return referrals


@dataclass
class Report:
    converged: int
    duplicate_opportunities: int
    duplicate_accounts: int
    duplicate_contacts: int
    poisoned: int
    calls: int
    calls_by_service: Counter[str]
    audit_rows: int
    wall: float
    crash: str

    @property
    def ok(self) -> bool:
        duplicates = self.duplicate_opportunities + self.duplicate_accounts + self.duplicate_contacts
        return duplicates == 0 and self.poisoned == 0


def converged(stack: Stack, referrals: list[dict[str, Any]]) -> int:
    """Referrals whose opportunity exists with the deal value Partner Center holds."""
    values: dict[str, list[Any]] = {}
    for opportunity in stack.sandbox.dataverse.records("opportunities"):
        values.setdefault(opportunity.get("cosell_referralid"), []).append(opportunity.get("estimatedvalue"))
    return sum(1 for r in referrals if r["details"]["dealValue"] in values.get(r["id"], []))


def measure(stack: Stack, referrals: list[dict[str, Any]], wall: float, crash: str) -> Report:
    dv = stack.sandbox.dataverse
    ids = {r["id"] for r in referrals}
    customers = {r["customerProfile"]["name"] for r in referrals}
    emails = {m["email"] for r in referrals for m in r["customerProfile"]["team"]}
    per_referral = Counter(o.get("cosell_referralid") for o in dv.records("opportunities"))
    per_customer = Counter(a["name"] for a in dv.records("accounts") if a["name"] in customers)
    per_email = Counter(c.get("emailaddress1") for c in dv.records("contacts") if c.get("emailaddress1") in emails)
    table = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    rows = [row for row in table.list_entities() if row["PartitionKey"] in ids]
    by_service: Counter[str] = Counter()
    for row in rows:
        by_service.update(json.loads(row.get("api_calls_by_service") or "{}"))
    return Report(
        converged=converged(stack, referrals),
        duplicate_opportunities=sum(1 for i in ids if per_referral[i] > 1),
        duplicate_accounts=sum(1 for n in per_customer.values() if n > 1),
        duplicate_contacts=sum(1 for n in per_email.values() if n > 1),
        poisoned=queue_depth(stack, POISON_QUEUE),
        calls=sum(int(row.get("api_calls") or 0) for row in rows),
        calls_by_service=by_service,
        audit_rows=len(rows),
        wall=wall,
        crash=crash,
    )


def print_report(report: Report, stack: Stack, total: int, customers: int, rate: float) -> None:
    sims = {"entra": stack.sandbox.entra, "partner-center": stack.sandbox.partner_center}
    sims["dataverse"] = stack.sandbox.dataverse
    injected = []
    for name, sim in sims.items():
        requests = [r for r in sim.recorded() if not r.route.startswith("$batch ")]  # HTTP requests only
        faulted = sum(1 for r in requests if r.fault)
        share = 100 * faulted / len(requests) if requests else 0.0
        injected.append(f"{name} {faulted}/{len(requests)} ({share:.0f} %)")
    per_service = ", ".join(f"{k} {v / total:.1f}" for k, v in sorted(report.calls_by_service.items()))
    print(f"Soak: {total} referrals for {customers} customers, ~{rate:.0%} injected faults on every remote")
    print(f"  crash                : {report.crash}")
    print(f"  faulted calls        : {'; '.join(injected)}")
    print(f"  converged            : {report.converged}/{total} with the right deal value")
    print(
        f"  duplicates           : opportunities per referral > 1: {report.duplicate_opportunities}; "
        f"accounts per customer > 1: {report.duplicate_accounts}; contacts per email > 1: {report.duplicate_contacts}"
    )
    print(f"  poisoned             : {report.poisoned} (referral-events-poison depth)")
    print(
        f"  API calls / referral : {report.calls / total:.1f} ({per_service}); "
        f"{report.calls} calls in {report.audit_rows} AuditLog rows"
    )
    print(f"  wall time            : {report.wall:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=300)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--crash", action="store_true", help="kill -9 the host once mid-run and restart it")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the data folder (host logs, Azurite) for reading")
    args = parser.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="cosell-soak-"))
    with Stack(data_dir, seed=args.seed, extra_settings=SOAK_SETTINGS) as stack:
        stack.register_webhook()
        report = run(stack, args)
        print_report(report, stack, args.referrals, args.customers, args.fault_rate)
    ok = report.ok and report.converged == args.referrals
    print(f"  result               : {'OK' if ok else 'FAILED'}")
    if ok and not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        print(f"  data (host logs)     : {data_dir}")
    return 0 if ok else 1


def run(stack: Stack, args: argparse.Namespace) -> Report:
    """Seed the burst under faults (crash the host once if asked), wait for the end, measure."""
    sandbox = stack.sandbox
    pc = sandbox.partner_center
    pc.delivery_backoff = 1.0
    # The app renews a token 120 s before it expires: 125 s tokens send it back to Entra ID every ~5 s.
    sandbox.entra.token_lifetime = 125
    referrals = build_referrals(args.referrals, args.customers)
    sandbox.entra.set_faults(faults(args.fault_rate, args.seed, commit_timeouts=False))
    pc.set_faults(faults(args.fault_rate, args.seed + 1))
    sandbox.dataverse.set_faults(faults(args.fault_rate, args.seed + 2))
    crash = "no"
    started = time.monotonic()
    deadline = started + args.timeout
    try:
        for referral in referrals:
            pc.seed_referral(referral)
        if args.crash:
            while converged(stack, referrals) < len(referrals) // 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            done = converged(stack, referrals)
            stack.kill_host()
            restart = time.monotonic()
            stack.restart_host()
            crash = f"kill -9 at {done}/{len(referrals)} converged; new host up in {time.monotonic() - restart:.1f} s"
        while time.monotonic() < deadline and not (
            converged(stack, referrals) == len(referrals) and queue_depth(stack, EVENTS_QUEUE) == 0
        ):
            time.sleep(1.0)
        wall = time.monotonic() - started
    finally:
        for sim in (sandbox.entra, pc, sandbox.dataverse):
            sim.set_faults(None)
    return measure(stack, referrals, wall, crash)


if __name__ == "__main__":
    sys.exit(main())

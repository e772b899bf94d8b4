"""``make bench``: API calls per sync, Partner Center → CRM latency, and the status route over 100,000 audit
rows (bench/status.py), measured on the local stack.

Counts come from the audit rows the app writes (every HTTP attempt, per service) and from the
simulators' request logs; latency is from the moment Partner Center commits a change until the
CRM record shows it. These are numbers to watch over time, not pass/fail thresholds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient

from bench import status as status_route
from sandbox.demo import ON_DEMAND
from sandbox.run import sample_referrals
from sandbox.sellers import Seller, seller_for
from sandbox.stack import Stack


def _audit(stack: Stack, referral_id: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    table = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = [dict(r) for r in table.query_entities("PartitionKey eq @pk", parameters={"pk": referral_id})]
        except Exception:
            rows = []
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    raise TimeoutError(f"no audit row for {referral_id}")


def _calls(row: dict[str, Any]) -> str:
    import json

    by_service = json.loads(row.get("api_calls_by_service") or "{}")
    writes = json.loads(row.get("writes_by_service") or "{}")
    parts = ", ".join(f"{k} {v}" for k, v in sorted(by_service.items()))
    return f"{row['api_calls']:>3} calls ({parts}); {sum(writes.values())} write(s)"


def _wait_for(condition: Any, timeout: float = 30) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if condition():
            return time.perf_counter() - started
        time.sleep(0.005)
    raise TimeoutError


def _poll(stack: Stack, seller: Seller) -> dict[str, int]:
    import json

    stack.host.fire("crm_to_partner_center")
    table = TableClient.from_connection_string(stack.azurite.connection_string, "SyncState")
    return json.loads(table.get_entity("watermark", seller.poll_watermark())["last_api_calls"])


def measure_outbound(stack: Stack, seller: Seller) -> dict[str, list[tuple[str, Any]]]:
    polls: list[tuple[str, Any]] = []
    records: list[tuple[str, Any]] = []
    first = seller.opportunity(name="Bench create")
    polls.append(("1 new opportunity", _poll(stack, seller)))
    view = seller.deal(first)
    if view is None or not view.referral_id:
        raise RuntimeError("the bench's deal was not shared")
    referral_id = view.referral_id
    create = next(r for r in _audit(stack, referral_id, 1) if r["direction"] == "crm-to-pc")
    records.append(("create a referral (validate, POST, write back)", create))
    seller.set_value(first, 61000)
    polls.append(("1 changed opportunity", _poll(stack, seller)))
    update = next(
        r for r in _audit(stack, referral_id, 2) if r["direction"] == "crm-to-pc" and r["outcome"] == "updated"
    )
    records.append(("update (GET, one JSON Patch, audit line)", update))
    polls.append(("nothing changed", _poll(stack, seller)))
    many = [seller.opportunity(name=f"Bench {n}") for n in range(40)]
    polls.append(("40 new opportunities", _poll(stack, seller)))
    for opportunity in many[:10]:
        seller.set_description(opportunity, "changed")
    polls.append(("10 changed of 41", _poll(stack, seller)))
    for opportunity in many:
        seller.touch(opportunity)  # a field the sync does not share
    polls.append(("40 touched, shared content unchanged", _poll(stack, seller)))
    return {"records": records, "polls": polls}


def measure_backfill(stack: Stack, crm: str, count: int) -> dict[str, Any]:
    """A backfill of ``count`` new referrals at an unlimited pace: how fast the app can feed the CRM."""
    import httpx

    pc = stack.sandbox.partner_center
    simulator = stack.sandbox.salesforce if crm == "salesforce" else stack.sandbox.dataverse
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    for n in range(count):
        referral = sample_referrals()[1]
        for stamped in ("createdDateTime", "updatedDateTime", "eTag"):
            referral.pop(stamped, None)
        referral["customerProfile"]["name"] = f"Backfill Customer {n % 20}"
        pc.seed_referral(referral, fire=False)

    def run() -> tuple[float, int]:
        simulator.reset_stats()
        started = time.perf_counter()
        answer = httpx.post(stack.host.url("/api/manage/backfill"), json={"since": since}, timeout=30)
        answer.raise_for_status()
        while True:
            backfill = httpx.get(stack.host.url("/api/manage/status"), timeout=30).json()["backfill"]
            if backfill["state"] not in ("listing", "syncing"):
                return time.perf_counter() - started, simulator.stats_snapshot()["total"]
            time.sleep(0.2)

    seconds, requests = run()
    pc.reset_stats()
    _again_seconds, again_requests = run()
    return {
        "seconds": seconds,
        "referrals_per_second": count / seconds,
        "crm_requests": requests,
        "crm_requests_per_second": requests / seconds,
        "again_crm_requests": again_requests,
        "again_partner_center_calls": pc.stats_snapshot()["total"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--crm", choices=("dynamics", "salesforce"), default="dynamics")
    parser.add_argument("--backfill", type=int, default=200, help="referrals in the backfill measurement")
    args = parser.parse_args(argv)
    # The backfill is measured unpaced: how fast the app could go, not how fast it is allowed to.
    settings = {**ON_DEMAND, "BACKFILL_REFERRALS_PER_MINUTE": "6000"}
    with (
        tempfile.TemporaryDirectory(prefix="cosell-bench-") as tmp,
        Stack(Path(tmp), seed=3, crm=args.crm, extra_settings=settings) as stack,
    ):
        seller = seller_for(stack.sandbox, args.crm)
        stack.register_webhook()
        pc = stack.sandbox.partner_center
        _lead, shared, _won = sample_referrals()

        pc.seed_referral(shared)
        cold = _audit(stack, shared["id"], 1)[0]
        pc.deliver(shared["id"], "referral-updated")
        unchanged = _audit(stack, shared["id"], 2)[0]
        pc.update_referral(shared["id"], {"details": {"dealValue": 75000}})
        changed = _audit(stack, shared["id"], 3)[0]

        warm_referral = sample_referrals()[1]
        warm_referral["customerProfile"]["name"] = "Warm Instance Customer"
        pc.seed_referral(warm_referral)
        warm = _audit(stack, warm_referral["id"], 1)[0]

        latencies = []
        for n in range(args.latency_samples):
            referral = sample_referrals()[1]
            referral["customerProfile"]["name"] = f"Latency Customer {n}"
            pc.seed_referral(referral)
            latencies.append(_wait_for(lambda r=referral: bool(seller.deals_for(r["id"]))))
        latencies.sort()

        outbound = measure_outbound(stack, seller)
        backfill = measure_backfill(stack, args.crm, args.backfill)
        status = status_route.measure(stack, 100_000)  # last: its rows must not slow the others

    crm = seller.crm_name
    print(f"API calls per Partner Center → {crm} sync (co-sell referral, 2 contacts, 1 solution)")
    print(f"  new referral, cold instance (tokens fetched) : {_calls(cold)}")
    print(f"  new referral, warm instance                  : {_calls(warm)}")
    print(f"  same referral delivered again (unchanged)    : {_calls(unchanged)}")
    print(f"  deal value changed                           : {_calls(changed)}")
    median, p95, worst = (
        statistics.median(latencies) * 1000,
        latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000,
        latencies[-1] * 1000,
    )
    print(f"API calls, {crm} → Partner Center (per record, from the audit rows)")
    for label, row in outbound["records"]:
        print(f"  {label:<45}: {_calls(row)}")
    print("CRM poll cost (all calls of one poll run, by service)")
    for label, calls in outbound["polls"]:
        print(f"  {label:<45}: {calls}")
    print(f"Latency, Partner Center change → opportunity in {crm} ({len(latencies)} referrals):")
    print(f"  median {median:.0f} ms, p95 {p95:.0f} ms, max {worst:.0f} ms")
    print(f"Backfill of {args.backfill} new referrals ({args.backfill // 20} per customer), unpaced:")
    print(
        f"  {backfill['seconds']:.0f} s, {backfill['referrals_per_second']:.1f} referrals/s; "
        f"{backfill['crm_requests']:.0f} {crm} requests ({backfill['crm_requests'] / args.backfill:.1f} a referral), "
        f"{backfill['crm_requests_per_second']:.0f} requests/s"
    )
    print(
        f"  the same backfill again: {backfill['again_crm_requests']:.0f} {crm} requests, "
        f"{backfill['again_partner_center_calls']:.0f} Partner Center calls (the list pages)"
    )
    status_route.report(status)
    return 0


if __name__ == "__main__":
    sys.exit(main())

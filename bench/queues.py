"""The referral queue on the local stack: an isolated referral's latency after idle, and a burst's throughput.

``python -m bench.queues latency``: one referral at a time, each after the queue has been idle long
enough for the poll to back off to ``maxPollingInterval``; the time from Partner Center committing it
to its opportunity in the CRM. The webhook intake enqueues through a queue output binding, so on a
host that runs both functions the queue listener is woken at once (the real host's SharedQueueWatcher,
mirrored by sandbox/localhost/queues.py); ``--sdk`` enqueues with the SDK instead, as a Flex
Consumption app whose queue function scales on its own instances sees it: then the back-off counts.

``python -m bench.queues throughput --batch 8 16 32``: a burst of new referrals (webhooks) with
``--latency-ms`` injected on every simulator request; referrals per second until the last one is in
the CRM, per ``batchSize`` (``newBatchThreshold`` is batchSize / 2).

Numbers to compare, not pass/fail thresholds; the machine's other load moves them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import new_referral
from sandbox.demo import ON_DEMAND
from sandbox.sellers import Seller, seller_for
from sandbox.sims.base import FaultConfig
from sandbox.stack import Stack
from shared.messages import ReferralMessage
from shared.store.clients import queue_client

HOST_QUEUES = "AzureFunctionsJobHost__extensions__queues__"


def _wait_for_deals(seller: Seller, referral_ids: list[str], timeout: float) -> float:
    started, pending = time.perf_counter(), set(referral_ids)
    while pending and time.perf_counter() - started < timeout:
        pending = {r for r in pending if not seller.deals_for(r)}
        if pending:
            time.sleep(0.005 if len(pending) == 1 else 0.1)
    if pending:
        raise TimeoutError(f"{len(pending)} referral(s) not in the CRM after {timeout:.0f} s")
    return time.perf_counter() - started


def latency(crm: str, samples: int, idle: float, sdk: bool) -> list[float]:
    with (
        tempfile.TemporaryDirectory(prefix="cosell-bench-queues-") as tmp,
        Stack(Path(tmp), seed=5, crm=crm, extra_settings=ON_DEMAND) as stack,
    ):
        seller = seller_for(stack.sandbox, crm)
        stack.register_webhook()
        pc = stack.sandbox.partner_center
        queue = queue_client(_settings(stack), "referral-events")
        first = pc.seednew_referral(new_referral("Warm-up Customer"))  # tokens and metadata, as on a warm instance
        _wait_for_deals(seller, [first["id"]], 60)
        results = []
        for n in range(samples):
            time.sleep(idle)  # the queue poll backs off to maxPollingInterval meanwhile
            referral = new_referral(f"Isolated Customer {n}")
            if sdk:
                pc.seednew_referral(referral, fire=False)
                queue.send_message(ReferralMessage(referral_id=referral["id"], source="reconcile").to_json())
            else:
                pc.seednew_referral(referral)
            results.append(_wait_for_deals(seller, [referral["id"]], 60))
        return results


def throughput(crm: str, batch: int, count: int, latency_ms: int) -> float:
    settings = {
        **ON_DEMAND,
        f"{HOST_QUEUES}batchSize": str(batch),
        f"{HOST_QUEUES}newBatchThreshold": str(batch // 2),
    }
    with (
        tempfile.TemporaryDirectory(prefix="cosell-bench-queues-") as tmp,
        Stack(Path(tmp), seed=6, crm=crm, extra_settings=settings) as stack,
    ):
        seller = seller_for(stack.sandbox, crm)
        stack.register_webhook()
        pc = stack.sandbox.partner_center
        first = pc.seednew_referral(new_referral("Warm-up Customer"))
        _wait_for_deals(seller, [first["id"]], 60)
        faults = FaultConfig(latency_ms=latency_ms)
        for sim in (stack.sandbox.partner_center, stack.sandbox.dataverse, stack.sandbox.salesforce):
            sim.set_faults(faults)
        started = time.perf_counter()
        ids = [pc.seednew_referral(new_referral(f"Burst Customer {n % 20}"))["id"] for n in range(count)]
        _wait_for_deals(seller, ids, 600)
        return count / (time.perf_counter() - started)


def _settings(stack: Stack) -> Any:
    from shared.config import Settings

    return Settings(AzureWebJobsStorage=stack.azurite.connection_string)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crm", choices=("dynamics", "salesforce"), default="dynamics")
    sub = parser.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--samples", type=int, default=10)
    lat.add_argument("--idle", type=float, default=5.0, help="seconds idle before each referral")
    lat.add_argument("--sdk", action="store_true", help="enqueue with the SDK: no output-binding wake-up")
    thr = sub.add_parser("throughput")
    thr.add_argument("--batch", type=int, nargs="+", default=[8, 16, 32])
    thr.add_argument("--count", type=int, default=200)
    thr.add_argument("--latency-ms", type=int, default=50)
    args = parser.parse_args(argv)
    if args.what == "latency":
        results = sorted(latency(args.crm, args.samples, args.idle, args.sdk))
        how = "SDK enqueue (no wake-up)" if args.sdk else "webhook, output binding"
        print(f"Isolated referral after {args.idle:.0f} s idle → opportunity in {args.crm} ({how}):")
        print(
            f"  {len(results)} samples: median {statistics.median(results) * 1000:.0f} ms, "
            f"min {results[0] * 1000:.0f} ms, max {results[-1] * 1000:.0f} ms"
        )
        return 0
    print(f"Burst of {args.count} new referrals, {args.latency_ms} ms on every simulator request ({args.crm}):")
    for batch in args.batch:
        rate = throughput(args.crm, batch, args.count, args.latency_ms)
        print(f"  batchSize {batch:>2} (newBatchThreshold {batch // 2:>2}): {rate:.1f} referrals/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The first share of a large CRM: N opportunities marked for sync before the app ever polled.

Each poll is fired through the host's admin endpoint, one after the other, until every opportunity
carries its referral id. The local host logs a run that went past host.json's functionTimeout (the
real host would have killed it), so the report says whether any poll would have been cut off.

``python -m bench.polls --records 1000 --concurrency 1 8 16``: the same first share on a fresh stack
per CRM_POLL_CONCURRENCY, under the bench's CRM budget (bench.common.BUDGET): records a second, and
the busiest minute of CRM and of Partner Center requests. ``--latency-ms 50`` adds that much to every
simulated remote's answers, nearer what a poll waits for in Azure than the local simulators' few ms.
Numbers to compare, not pass/fail thresholds; the machine's other load moves them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.common import BUDGET, BUDGET_PER_MINUTE, RateSampler, apply_budget, crm_simulator, latency, refused
from sandbox.demo import ON_DEMAND
from sandbox.sellers import Seller, seller_for
from sandbox.stack import Stack

TIMEOUT_MARK = "past functionTimeout"


@dataclass
class FirstShare:
    records: int
    seconds: float
    polls: int
    longest_poll: float
    past_timeout: int
    crm_requests_per_minute: float
    refused: int
    partner_center_requests_per_minute: float = 0.0
    partner_center_refused: int = 0  # 429s Partner Center's simulator answered

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


def seed(seller: Seller, count: int) -> list[str]:
    """``count`` opportunities ready to share (country, value; no help asked, not shown to Microsoft)."""

    def one(n: int) -> str:
        return seller.opportunity(name=f"First share {n}", contact=False, solution=False, help_needed=None)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(count)))


def first_share(
    stack: Stack, crm: str, seller: Seller, count: int, max_polls: int = 50, latency_ms: int = 0
) -> FirstShare:
    """``latency_ms``: every simulated remote answers that much later while the polls run (not while seeding)."""
    ids = seed(seller, count)
    host = stack.host
    timeouts_before = host.output().count(TIMEOUT_MARK)
    simulator = crm_simulator(stack, crm)
    partner_center = stack.sandbox.partner_center
    pc_refused_before = sum(1 for r in partner_center.recorded() if r.status == 429)
    polls, longest, started = 0, 0.0, time.perf_counter()
    with (
        latency(stack, latency_ms),
        RateSampler(lambda: int(simulator.stats_snapshot()["total"])) as sampler,
        RateSampler(lambda: int(partner_center.stats_snapshot()["total"])) as pc_sampler,
    ):
        pending = set(ids)
        while pending and polls < max_polls:
            poll_started = time.perf_counter()
            host.fire("crm_to_partner_center", timeout=1800)
            longest = max(longest, time.perf_counter() - poll_started)
            polls += 1
            pending = {i for i in pending if not ((view := seller.deal(i)) and view.referral_id)}
    if pending:
        raise RuntimeError(f"{len(pending)} of {count} opportunities were not shared after {polls} polls")
    return FirstShare(
        records=count,
        seconds=time.perf_counter() - started,
        polls=polls,
        longest_poll=longest,
        past_timeout=host.output().count(TIMEOUT_MARK) - timeouts_before,
        crm_requests_per_minute=sampler.peak_per_minute(),
        refused=refused(stack, crm),
        partner_center_requests_per_minute=pc_sampler.peak_per_minute(),
        partner_center_refused=sum(1 for r in partner_center.recorded() if r.status == 429) - pc_refused_before,
    )


def with_concurrency(crm: str, records: int, concurrency: int, latency_ms: int = 0) -> FirstShare:
    """A first share of ``records`` on a fresh stack whose poll handles ``concurrency`` records at once."""
    settings = {**ON_DEMAND, **BUDGET, "CRM_POLL_CONCURRENCY": str(concurrency)}
    with (
        tempfile.TemporaryDirectory(prefix="cosell-bench-polls-") as tmp,
        Stack(Path(tmp), seed=3, crm=crm, extra_settings=settings) as stack,
    ):
        apply_budget(stack)
        return first_share(stack, crm, seller_for(stack.sandbox, crm), records, latency_ms=latency_ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crm", choices=("dynamics", "salesforce"), default="dynamics")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every simulated remote's answers")
    args = parser.parse_args(argv)
    print(
        f"First share of {args.records:,} {args.crm} opportunities (CRM budget {BUDGET_PER_MINUTE}/min, "
        f"{args.latency_ms} ms added per remote call):"
    )
    for concurrency in args.concurrency:
        result = with_concurrency(args.crm, args.records, concurrency, args.latency_ms)
        print(
            f"  CRM_POLL_CONCURRENCY {concurrency:>2}: {result.seconds:.0f} s, {result.per_second:.1f} records/s, "
            f"{result.polls} poll(s), longest {result.longest_poll:.0f} s, {result.past_timeout} past functionTimeout; "
            f"peak {result.crm_requests_per_minute:.0f} CRM requests/min ({result.refused} refused), "
            f"{result.partner_center_requests_per_minute:.0f} Partner Center requests/min "
            f"({result.partner_center_refused} refused)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

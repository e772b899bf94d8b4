"""The first share of a large CRM: N opportunities marked for sync before the app ever polled.

Each poll is fired through the host's admin endpoint, one after the other, until every opportunity
carries its referral id. The local host logs a run that went past host.json's functionTimeout (the
real host would have killed it), so the report says whether any poll would have been cut off.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.common import RateSampler, crm_simulator, refused
from sandbox.sellers import Seller
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

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


def seed(seller: Seller, count: int) -> list[str]:
    """``count`` opportunities ready to share (country, value; no help asked, not shown to Microsoft)."""

    def one(n: int) -> str:
        return seller.opportunity(name=f"First share {n}", contact=False, solution=False, help_needed=None)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(count)))


def first_share(stack: Stack, crm: str, seller: Seller, count: int, max_polls: int = 50) -> FirstShare:
    ids = seed(seller, count)
    host = stack.host
    timeouts_before = host.output().count(TIMEOUT_MARK)
    simulator = crm_simulator(stack, crm)
    polls, longest, started = 0, 0.0, time.perf_counter()
    with RateSampler(lambda: int(simulator.stats_snapshot()["total"])) as sampler:
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
    )

"""A backfill of existing referrals: how fast it feeds the CRM, and how hard it pushes the CRM's budget.

Run with the backfill's own pace lifted (``BACKFILL_REFERRALS_PER_MINUTE`` far above its default), so
what shows is the app's speed and whatever else keeps it under the CRM's limits. A second backfill of
the same referrals shows the cost of one that finds everything in step.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import httpx

from bench.common import RateSampler, crm_simulator, new_referral, refused
from sandbox.stack import Stack

UNPACED = {"BACKFILL_REFERRALS_PER_MINUTE": "6000"}  # the most the setting allows


@dataclass
class Backfill:
    referrals: int
    seconds: float
    crm_requests: int
    peak_crm_requests_per_minute: float
    again_seconds: float
    again_crm_requests: int
    again_partner_center_calls: int
    refused: int

    @property
    def per_second(self) -> float:
        return self.referrals / self.seconds


def _run(stack: Stack, since: str, simulator: object) -> tuple[float, int, float]:
    simulator.reset_stats()  # type: ignore[attr-defined]
    with RateSampler(lambda: int(simulator.stats_snapshot()["total"])) as sampler:  # type: ignore[attr-defined]
        started = time.perf_counter()
        answer = httpx.post(stack.host.url("/api/manage/backfill"), json={"since": since}, timeout=30)
        answer.raise_for_status()
        while True:
            progress = httpx.get(stack.host.url("/api/manage/status"), timeout=30).json()["backfill"]
            if progress["state"] not in ("listing", "syncing"):
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started
    return seconds, int(simulator.stats_snapshot()["total"]), sampler.peak_per_minute()  # type: ignore[attr-defined]


def measure(stack: Stack, crm: str, count: int) -> Backfill:
    pc = stack.sandbox.partner_center
    simulator = crm_simulator(stack, crm)
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    for n in range(count):
        pc.seed_referral(new_referral(f"Backfill Customer {n % 20}"), fire=False)
    seconds, requests, peak = _run(stack, since, simulator)
    refused_count = refused(stack, crm)  # since _run cleared the simulator's log
    pc.reset_stats()
    again_seconds, again_requests, _ = _run(stack, since, simulator)
    return Backfill(
        referrals=count,
        seconds=seconds,
        crm_requests=requests,
        peak_crm_requests_per_minute=peak,
        again_seconds=again_seconds,
        again_crm_requests=again_requests,
        again_partner_center_calls=int(pc.stats_snapshot()["total"]),
        refused=refused_count,
    )

"""How fast a referral lands in the CRM: alone after the app was idle, and in a burst.

Latency is from Partner Center's commit (the referral stored, its webhook queued for delivery) until
the opportunity is in the CRM; the webhook's delivery, the queue hop and the sync are all inside it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from bench.common import Arrivals, CpuMeter, RateSampler, crm_simulator, latency, new_referral, percentiles, refused
from sandbox.stack import Stack


@dataclass
class Burst:
    referrals: int
    injected_ms: int
    seconds: float
    p50: float
    p95: float
    peak_crm_requests_per_minute: float
    refused: int
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # by part of the stack, during the burst

    @property
    def per_second(self) -> float:
        return self.referrals / self.seconds

    def cpu_per_referral(self) -> str:
        """ "app host 76 ms, simulators 36 ms, Azurite 37 ms" of CPU per referral."""
        return ", ".join(
            f"{name} {seconds / self.referrals * 1000:.0f} ms" for name, seconds in self.cpu_seconds.items()
        )


def isolated(stack: Stack, crm: str, samples: int, idle_seconds: float) -> tuple[float, float]:
    """(p50, p95) seconds for one referral at a time, each after ``idle_seconds`` with nothing to do."""
    pc = stack.sandbox.partner_center
    values: list[float] = []
    for _ in range(samples):
        time.sleep(idle_seconds)  # long enough for the queue poll to back off to its longest interval
        referral = new_referral(f"Isolated Customer {uuid.uuid4().hex[:6]}")
        with Arrivals(stack, crm) as arrivals:
            arrivals.commit(referral["id"])
            pc.seed_referral(referral)
            arrivals.wait(timeout=60)
        values.extend(arrivals.latencies())
    return percentiles(values)


def burst(stack: Stack, crm: str, count: int, injected_ms: int) -> Burst:
    """``count`` new referrals of distinct new customers committed at once."""
    pc = stack.sandbox.partner_center
    tag = uuid.uuid4().hex[:6]
    referrals = [new_referral(f"Burst {tag} Customer {n}") for n in range(count)]
    simulator = crm_simulator(stack, crm)
    refused_before = refused(stack, crm)
    with (
        latency(stack, injected_ms),
        RateSampler(lambda: int(simulator.stats_snapshot()["total"])) as sampler,
        CpuMeter(stack) as cpu,
        Arrivals(stack, crm) as arrivals,
    ):
        for referral in referrals:
            arrivals.commit(referral["id"])
            pc.seed_referral(referral)
        arrivals.wait(timeout=900)
    p50, p95 = percentiles(arrivals.latencies())
    return Burst(
        count,
        injected_ms,
        arrivals.span(),
        p50,
        p95,
        sampler.peak_per_minute(),
        refused(stack, crm) - refused_before,
        cpu.seconds,
    )

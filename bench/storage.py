"""Storage operations per message: every Table and Queue REST call the app makes, through a counting proxy.

The host is restarted with its storage endpoints pointing at :class:`~bench.storage_proxy.CountingProxy`
instances in front of the same Azurite. Timers are off (``ON_DEMAND``), so between messages the only
calls are the queue listeners' receive polls, reported apart as the idle cost.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass

from bench.common import Arrivals, audit_rows, new_referral
from bench.storage_proxy import CountingProxy, proxied_connection_string
from sandbox.stack import Stack


@dataclass
class StorageCost:
    label: str
    messages: int
    operations: Counter[str]  # per message, receive polls left out

    @property
    def total(self) -> float:
        return sum(self.operations.values())

    def line(self) -> str:
        parts = ", ".join(f"{name} {count:g}" for name, count in sorted(self.operations.items()))
        return f"{self.total:.1f} per message ({parts})"


def _per_message(before: Counter[str], after: Counter[str], messages: int) -> Counter[str]:
    spent = after - before
    return Counter(
        {k: round(v / messages, 2) for k, v in spent.items() if not k.startswith(("queue receive", "queue peek"))}
    )


def measure(stack: Stack, crm: str, messages: int = 20, idle_seconds: float = 10.0) -> tuple[list[StorageCost], float]:
    """Per-message storage operations for new and for unchanged referrals; idle receive polls per second."""
    azurite = stack.azurite
    proxies = {
        "queue": CountingProxy("queue", azurite.queue_endpoint).start(),
        "table": CountingProxy("table", azurite.table_endpoint).start(),
        "blob": CountingProxy("blob", azurite.blob_endpoint).start(),
    }
    try:
        stack.restart_host({"AzureWebJobsStorage": proxied_connection_string(azurite.connection_string, proxies)})

        def counts() -> Counter[str]:
            total: Counter[str] = Counter()
            for proxy in proxies.values():
                total += proxy.snapshot()
            return total

        pc = stack.sandbox.partner_center
        warm = new_referral(f"Storage Warm-up {uuid.uuid4().hex[:6]}")
        pc.seed_referral(warm)  # tokens, tables and queues exist before counting starts
        audit_rows(stack, warm["id"], 1)
        time.sleep(2)

        idle_before, started = counts(), time.monotonic()
        time.sleep(idle_seconds)
        idle = counts() - idle_before
        polls_per_second = sum(v for k, v in idle.items() if k.startswith("queue receive")) / (
            time.monotonic() - started
        )

        referrals = [new_referral(f"Storage Customer {uuid.uuid4().hex[:6]}") for _ in range(messages)]
        before = counts()
        for referral in referrals:  # one at a time, so each message's operations are its own
            with Arrivals(stack, crm) as arrivals:
                arrivals.commit(referral["id"])
                pc.seed_referral(referral)
                arrivals.wait(timeout=60)
            audit_rows(stack, referral["id"], 1)
        time.sleep(1.5)  # the last message's delete and release
        new = StorageCost("new referral", messages, _per_message(before, counts(), messages))

        before = counts()
        for referral in referrals:
            pc.deliver(referral["id"], "referral-updated")
            audit_rows(stack, referral["id"], 2)
        time.sleep(1.5)
        unchanged = StorageCost("same referral again (unchanged)", messages, _per_message(before, counts(), messages))
        return [new, unchanged], polls_per_second
    finally:
        stack.restart_host({"AzureWebJobsStorage": azurite.connection_string})
        for proxy in proxies.values():
            proxy.stop()

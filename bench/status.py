"""The status route's latency over a large audit log: ``make bench`` runs it; ``python -m bench.status`` alone.

The route must answer from bounded reads (shared/status.py), so its latency with 100,000 audit rows
should be what it is with none. The rows are seeded fast, in batch transactions of 100 (one partition
each) spread over 5,000 referrals, with 24 hours of counter rows from four processes and a full list
of recent failures; one full read of the audit log is timed beside it, as what counting from it costs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient

from bench.common import percentiles
from sandbox.demo import ON_DEMAND
from sandbox.stack import Stack
from shared.store.clients import OPERATIONS_TABLE
from shared.store.counters import DIRECTIONS, SyncCounters, hour_of
from shared.store.failures import RecentFailures


def seed_history(stack: Stack, rows: int, *, partitions: int = 5000, writers: int = 4) -> float:
    """``rows`` audit rows over ``partitions`` referrals, in batch transactions (100 rows, one partition each),
    plus 24 hours of counter rows from ``writers`` processes and a full list of recent failures."""
    connection = stack.azurite.connection_string
    now = dt.datetime.now(dt.UTC)
    partitions = max(1, min(partitions, rows // 20))  # at least 20 rows a referral: fewer, fuller batches
    per_partition = max(rows // partitions, 1)

    def partition(n: int) -> None:
        table = TableClient.from_connection_string(connection, "AuditLog")
        referral = str(uuid.UUID(int=n + 1))
        entities = [
            {
                "PartitionKey": referral,
                "RowKey": f"{10**19 - n * 1000 - i:019d}_{i:08x}",
                "time": (now - dt.timedelta(seconds=n + i)).isoformat(),
                "direction": DIRECTIONS[i % 2],
                "referral_id": referral,
                "crm_id": str(uuid.UUID(int=n + 10**9)),
                "outcome": ("created", "updated", "unchanged")[i % 3],
                "message": "Partner Center referral to CRM sync success (Active/Accepted).",
                "api_calls": 9,
                "api_calls_by_service": '{"dataverse": 8, "partner-center": 1}',
                "writes_by_service": '{"dataverse": 3}',
                "source": "webhook",
            }
            for i in range(per_partition)
        ]
        for start in range(0, len(entities), 100):
            table.submit_transaction([("create", e) for e in entities[start : start + 100]])

    started = time.perf_counter()
    for name in ("AuditLog", OPERATIONS_TABLE):
        with contextlib.suppress(ResourceExistsError):  # the app creates its tables on first use
            TableClient.from_connection_string(connection, name).create_table()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(partition, range(partitions)))
    operations = TableClient.from_connection_string(connection, OPERATIONS_TABLE)
    for _ in range(writers):  # 24 hours of counts from each of several processes, as in a busy day
        counters = SyncCounters(operations)
        for hours_ago in range(24):
            for direction in DIRECTIONS:
                for outcome in ("created", "updated", "unchanged", "failed"):
                    counters.add(direction, outcome, hour_of(now) - dt.timedelta(hours=hours_ago))
    failures = RecentFailures(operations)
    for n in range(25):
        failures.record(str(uuid.UUID(int=n + 1)), 'Currency "XYZ" is not set up in Dynamics 365', source="webhook")
    return time.perf_counter() - started


def measure(stack: Stack, rows: int, samples: int = 20) -> dict[str, Any]:
    """GET /api/manage/status and the dashboard with ``rows`` audit rows: their latency must not grow with them."""

    seeding = seed_history(stack, rows)
    seeded = sum(
        1
        for _ in TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog").list_entities(
            select=["RowKey"]
        )
    )
    timings: dict[str, list[float]] = {"status": [], "dashboard": []}
    for route, key in (("/api/manage/status", "status"), ("/api/manage/dashboard", "dashboard")):
        httpx.get(stack.host.url(route), timeout=60).raise_for_status()  # warm: clients, tables, connections
        for _ in range(samples):
            started = time.perf_counter()
            httpx.get(stack.host.url(route), timeout=60).raise_for_status()
            timings[key].append(time.perf_counter() - started)
    # What a route counting syncs from the audit log would cost instead: one full read of the table.
    started = time.perf_counter()
    table = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    scanned = sum(1 for _ in table.query_entities("time ge @t", parameters={"t": "0"}, select=["outcome"]))
    scan = time.perf_counter() - started
    return {"rows": seeded, "seeding": seeding, "timings": timings, "scan": scan, "scanned": scanned}


def report(result: dict[str, Any]) -> None:
    print(f"Status route with {result['rows']:,} audit rows (seeded in {result['seeding']:.0f} s), 20 calls each:")
    for key, route in (("status", "GET /api/manage/status   "), ("dashboard", "GET /api/manage/dashboard")):
        median, p95 = percentiles(result["timings"][key])
        print(f"  {route}: median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    print(f"  (reading the audit log instead: one scan of {result['scanned']:,} rows took {result['scan']:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="audit rows to seed (default 100,000)")
    parser.add_argument("--crm", choices=("dynamics", "salesforce"), default="dynamics")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="cosell-bench-") as tmp,
        Stack(Path(tmp), seed=3, crm=args.crm, extra_settings=ON_DEMAND) as stack,
    ):
        report(measure(stack, args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

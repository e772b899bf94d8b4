"""What every bench measurement shares: the stack, audit rows, referrals to send, and arrival tracking."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from azure.data.tables import TableClient

from sandbox.run import sample_referrals
from sandbox.stack import Stack

# The CRM budget the bench runs under: the app's pace setting and, to match, the simulated Dataverse's service
# protection (an org of several web servers: 30,000 requests per 5 minutes for the user) and Salesforce's
# allocation. Measured rates are read against it; the simulators answer 429 / 403 past it, as the services do.
BUDGET_PER_MINUTE = 6000
BUDGET = {"CRM_REQUESTS_PER_MINUTE": str(BUDGET_PER_MINUTE)}


def apply_budget(stack: Stack) -> None:
    protection = getattr(stack.sandbox.dataverse, "protection", None)  # absent before issue 14's limiter
    if protection is not None:
        protection.configure(requests=BUDGET_PER_MINUTE * 5, window_seconds=300)


def refused(stack: Stack, crm: str) -> int:
    """Requests the CRM simulator refused for its budget (429 / REQUEST_LIMIT_EXCEEDED) since its last reset."""
    simulator = crm_simulator(stack, crm)
    return sum(1 for r in simulator.recorded() if r.status == 429 or (r.status == 403 and crm == "salesforce"))


def new_referral(customer: str) -> dict[str, Any]:
    """Microsoft's accepted co-sell sample (2 contacts, 1 solution), a fresh id, for a customer of this name."""
    referral = sample_referrals()[1]
    for stamped in ("createdDateTime", "updatedDateTime", "eTag"):
        referral.pop(stamped, None)
    referral["customerProfile"]["name"] = customer
    return referral


def audit_rows(stack: Stack, referral_id: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The referral's audit rows, newest first, once there are at least ``count``."""
    table = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = [dict(r) for r in table.query_entities("PartitionKey eq @pk", parameters={"pk": referral_id})]
        except Exception:
            rows = []
        if len(rows) >= count:
            return rows
        time.sleep(0.02)
    raise TimeoutError(f"no audit row for {referral_id}")


def calls_of(row: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    """(calls, writes, calls by service) of one audit row."""
    by_service = json.loads(row.get("api_calls_by_service") or "{}")
    writes = json.loads(row.get("writes_by_service") or "{}")
    return int(row["api_calls"]), sum(writes.values()), by_service


def crm_simulator(stack: Stack, crm: str) -> Any:
    return stack.sandbox.salesforce if crm == "salesforce" else stack.sandbox.dataverse


def referral_ids_in_crm(stack: Stack, crm: str) -> set[str]:
    """Referral ids the CRM's opportunities carry now (read in-process from the simulator, rows not copied:
    the arrival clock calls this every 5 ms and must not steal the CPU or the lock the sync needs)."""
    if crm == "salesforce":
        values = stack.sandbox.salesforce.column_values("Opportunity", "Referral_Identifier__c")
    else:
        values = stack.sandbox.dataverse.column_values("opportunities", "cosell_referralid")
    return {str(value) for value in values}


class Arrivals:
    """When each committed referral first shows up as an opportunity in the CRM.

    A background loop scans the simulator every 5 ms from the moment the block starts, so a referral
    that lands while others are still being committed is timed when it lands.
    """

    def __init__(self, stack: Stack, crm: str) -> None:
        self._stack, self._crm = stack, crm
        self.committed: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._scan, daemon=True)

    def __enter__(self) -> Arrivals:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def commit(self, referral_id: str) -> None:
        with self._lock:
            self.committed[referral_id] = time.perf_counter()

    def _pending(self) -> set[str]:
        with self._lock:
            return set(self.committed) - set(self.arrived)

    def _scan(self) -> None:
        while not self._stop.is_set():
            pending = self._pending()
            if pending:
                now = time.perf_counter()
                landed = pending & referral_ids_in_crm(self._stack, self._crm)
                with self._lock:
                    for referral_id in landed:
                        self.arrived[referral_id] = now
            self._stop.wait(0.005)

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self._pending():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._pending())} referral(s) never reached the CRM")
            time.sleep(0.01)

    def latencies(self) -> list[float]:
        return sorted(self.arrived[r] - self.committed[r] for r in self.arrived)

    def span(self) -> float:
        return max(self.arrived.values()) - min(self.committed.values())


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p95) of ``values``."""
    ordered = sorted(values)
    p95 = ordered[max(0, round(len(ordered) * 0.95) - 1)]
    return statistics.median(ordered), p95


@contextmanager
def latency(stack: Stack, milliseconds: int) -> Iterator[None]:
    """Every simulated remote (Entra ID, Partner Center, both CRMs) answers ``milliseconds`` later."""
    sims = [stack.sandbox.entra, stack.sandbox.partner_center, stack.sandbox.dataverse, stack.sandbox.salesforce]
    for sim in sims:
        sim.set_faults({"latency_ms": milliseconds})
    try:
        yield
    finally:
        for sim in sims:
            sim.set_faults(None)


class RateSampler:
    """Samples a simulator's request total every second; the busiest 60 s window afterwards."""

    def __init__(self, total: Callable[[], int]) -> None:
        self._total = total
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RateSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self._total()))
            self._stop.wait(1.0)
        self.samples.append((time.monotonic(), self._total()))

    def peak_per_minute(self) -> float:
        """The most requests in any 60 s (or, for a shorter run, the whole run scaled to a minute)."""
        if len(self.samples) < 2:
            return 0.0
        start, end = self.samples[0][0], self.samples[-1][0]
        if end - start < 60:
            return (self.samples[-1][1] - self.samples[0][1]) / max(end - start, 1e-9) * 60
        best, j = 0, 0
        for t_i, n_i in self.samples:
            while self.samples[j][0] < t_i - 60:
                j += 1
            best = max(best, n_i - self.samples[j][1])
        return float(best)


class CpuMeter:
    """CPU seconds each part of the stack spends inside the block: the app's host, the simulated services
    (they run in the bench's own process) and the storage emulator. On a small machine they share the cores,
    so this says what bounds a run and what the app itself costs. Linux only (reads /proc); elsewhere empty."""

    def __init__(self, stack: Stack) -> None:
        # The host and Azurite are this process's children: their trees count, and this process alone.
        self._parts = {
            "app host": (stack.host.process.pid, True),
            "simulators": (os.getpid(), False),
            "Azurite": (stack.azurite.process.pid, True),
        }
        self._before: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._before = self._read()
        return self

    def __exit__(self, *_: object) -> None:
        after = self._read()
        self.seconds = {name: after[name] - self._before[name] for name in after if name in self._before}

    def _read(self) -> dict[str, float]:
        try:
            tick = os.sysconf("SC_CLK_TCK")
            children = _children()
            return {
                name: sum(_cpu_ticks(pid) for pid in (_tree(root, children) if tree else [root])) / tick
                for name, (root, tree) in self._parts.items()
            }
        except (OSError, AttributeError, ValueError):  # no /proc, no sysconf: not Linux
            return {}


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process (fields 14 and 15 of /proc/<pid>/stat; children are counted on their own)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _children() -> dict[int, list[int]]:
    """Every process's children, from each /proc/<pid>/stat's parent field, read once per measurement."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # a process that ended while we looked
            children.setdefault(parent, []).append(int(entry))
    return children


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    """``root`` and its descendants (Azurite runs under a launcher)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found

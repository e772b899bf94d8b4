"""``make bench``: what a sync costs and how fast it goes, per CRM, measured on the local stack.

Calls come from the app's own audit rows (every HTTP attempt, counted per service) and from the
simulators' request counters; storage operations from a counting proxy in front of Azurite; times
from Partner Center's commit until the record is in the CRM. Numbers to watch over time and to put
in the README, never pass/fail thresholds. ``--quick`` runs every measurement at a smaller size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import backfill, calls, polls, speed, storage
from bench.common import BUDGET, BUDGET_PER_MINUTE, apply_budget
from sandbox.demo import ON_DEMAND
from sandbox.sellers import seller_for
from sandbox.stack import Stack

SECTIONS = ("calls", "latency", "throughput", "storage", "polls", "backfill", "status")
CRM_NAMES = {"dynamics": "Dynamics 365", "salesforce": "Salesforce"}


class Report:
    """Lines per CRM, printed as they come and kept for the side-by-side summary."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, str]] = {}

    def section(self, title: str) -> None:
        print(f"\n{title}", flush=True)

    def line(self, crm: str, label: str, text: str, *, summary: str | None = None) -> None:
        print(f"  {label:<48}: {text}", flush=True)
        self.rows.setdefault(label, {})[crm] = summary if summary is not None else text

    def summary(self, crms: list[str]) -> None:
        if len(crms) < 2:
            return
        print("\nSummary")
        header = " | ".join(CRM_NAMES[c] for c in crms)
        print(f"| measure | {header} |")
        print("|---" * (len(crms) + 1) + "|")
        for label, values in self.rows.items():
            print(f"| {label} | " + " | ".join(values.get(c, "—") for c in crms) + " |")


class _Stack(Stack):
    """The bench's stack: timers on demand, the CRM budget set on both sides."""

    def start(self) -> _Stack:
        super().start()
        apply_budget(self)
        return self


def _stack(tmp: Path, crm: str, name: str, settings: dict[str, str] | None = None) -> Stack:
    extra = {**ON_DEMAND, **BUDGET, **(settings or {})}
    return _Stack(tmp / f"{crm}-{name}", seed=3, crm=crm, extra_settings=extra)


def measure_crm(crm: str, sections: set[str], sizes: dict[str, int], report: Report, tmp: Path) -> None:
    name = CRM_NAMES[crm]
    with _stack(tmp, crm, "main") as stack:
        stack.register_webhook()
        seller = seller_for(stack.sandbox, crm)
        if "calls" in sections:
            report.section(f"[{name}] API calls per Partner Center → {name} sync (co-sell, 2 contacts, 1 solution)")
            for row in calls.inbound(stack):
                summary = f"{row.calls} calls / {row.writes} writes" + (f" ({row.ratio:.2f}×)" if row.ratio else "")
                report.line(crm, row.label, row.line(), summary=summary)
            records, poll_costs = calls.outbound(stack, seller)
            report.section(f"[{name}] API calls, {name} → Partner Center (per record, from the audit rows)")
            for row in records:
                report.line(crm, row.label, row.line(), summary=f"{row.calls} calls / {row.writes} writes")
            report.section(f"[{name}] CRM poll cost (all calls of one poll run, by service)")
            for label, cost in poll_costs:
                report.line(crm, f"poll: {label}", str(cost), summary=f"{sum(cost.values())} calls")
        if "latency" in sections:
            report.section(f"[{name}] Latency of one referral after the app was idle (commit → CRM)")
            p50, p95 = speed.isolated(stack, crm, samples=sizes["isolated"], idle_seconds=5.0)
            timing = f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
            report.line(crm, f"isolated referral ({sizes['isolated']} samples)", timing)
        if "throughput" in sections:
            report.section(f"[{name}] A burst of {sizes['burst']} new referrals (distinct new customers)")
            # 0 and 50 ms: bound by this machine's CPU (see the CPU line); 200 ms: by waiting on remote calls.
            for injected in (0, 50, 200):
                result = speed.burst(stack, crm, sizes["burst"], injected)
                report.line(
                    crm,
                    f"burst, {injected} ms per remote call",
                    f"{result.per_second:.1f} referrals/s ({result.seconds:.1f} s); commit → CRM "
                    f"p50 {result.p50 * 1000:.0f} ms, p95 {result.p95 * 1000:.0f} ms; peak "
                    f"{result.peak_crm_requests_per_minute:.0f} {name} requests/min of {BUDGET_PER_MINUTE}, "
                    f"{result.refused} refused",
                    summary=f"{result.per_second:.1f}/s, p50 {result.p50:.2f} s, p95 {result.p95:.2f} s",
                )
                if result.cpu_seconds:
                    report.line(
                        crm,
                        f"CPU per referral at {injected} ms",
                        result.cpu_per_referral(),
                        summary=result.cpu_per_referral().replace(" ms", ""),
                    )
        if "storage" in sections:
            report.section(f"[{name}] Storage operations per message (Table + Queue REST calls, receive polls apart)")
            costs, polls_per_second = storage.measure(stack, crm, messages=sizes["storage"])
            for cost in costs:
                report.line(crm, f"storage: {cost.label}", cost.line(), summary=f"{cost.total:.1f}")
            report.line(crm, "idle queue receive polls", f"{polls_per_second:.2f} per second (all queues, one host)")
    if "polls" in sections:
        report.section(f"[{name}] First share of a large CRM (opportunities marked for sync before the first poll)")
        for count in (sizes["share_small"], sizes["share_large"]):
            with _stack(tmp, crm, f"share{count}") as stack:
                result = polls.first_share(stack, crm, seller_for(stack.sandbox, crm), count)
            report.line(
                crm,
                f"first share of {count:,} records",
                f"{result.seconds:.0f} s ({result.per_second:.0f}/s) in {result.polls} poll(s), longest "
                f"{result.longest_poll:.0f} s, {result.past_timeout} past functionTimeout; peak "
                f"{result.crm_requests_per_minute:.0f} {name} requests/min of {BUDGET_PER_MINUTE}, "
                f"{result.refused} refused; {result.partner_center_requests_per_minute:.0f} Partner Center "
                f"requests/min, {result.partner_center_refused} refused",
                summary=f"{result.seconds:.0f} s, {result.polls} poll(s), {result.past_timeout} timeouts",
            )
    if "backfill" in sections:
        count = sizes["backfill"]
        report.section(f"[{name}] Backfill of {count:,} new referrals ({count // 20} per customer), pace lifted")
        with _stack(tmp, crm, "backfill", backfill.UNPACED) as stack:
            result = backfill.measure(stack, crm, count)
        budget = f" of the {BUDGET_PER_MINUTE}/min budget, {result.refused} refused"
        report.line(
            crm,
            f"backfill of {count:,}",
            f"{result.seconds:.0f} s, {result.per_second:.1f} referrals/s; {result.crm_requests} {name} requests "
            f"({result.crm_requests / count:.1f} a referral), "
            f"peak {result.peak_crm_requests_per_minute:.0f}/min{budget}",
            summary=f"{result.per_second:.1f}/s, peak {result.peak_crm_requests_per_minute:.0f} req/min",
        )
        report.line(
            crm,
            "the same backfill again",
            f"{result.again_seconds:.0f} s; {result.again_crm_requests} {name} requests, "
            f"{result.again_partner_center_calls} Partner Center calls (the list pages)",
            summary=f"{result.again_crm_requests} CRM requests",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crm", choices=("dynamics", "salesforce", "both"), default="both")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="every measurement at a smaller size")
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    sizes = (
        {"isolated": 5, "burst": 50, "storage": 5, "share_small": 100, "share_large": 500, "backfill": 100}
        | {"audit_rows": 5000}
        if args.quick
        else {"isolated": 15, "burst": 200, "storage": 20, "share_small": 1000, "share_large": 5000, "backfill": 1000}
        | {"audit_rows": 100_000}
    )
    crms = ["dynamics", "salesforce"] if args.crm == "both" else [args.crm]
    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cosell-bench-") as tmp:
        for crm in crms:
            measure_crm(crm, sections, sizes, report, Path(tmp))
        if "status" in sections:  # the CRM plays no part: once, against the first
            from bench import status as status_route  # seeds 100,000 rows: loaded only when asked for

            print(f"\nStatus route and dashboard over a large audit log ({sizes['audit_rows']:,} rows)", flush=True)
            with _stack(Path(tmp), crms[0], "status") as stack:
                status_route.report(status_route.measure(stack, sizes["audit_rows"]))
    report.summary(crms)
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

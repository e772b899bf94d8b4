"""Admin commands an operator runs from a workstation, with the app's settings.

    python -m shared.cli crm-schema --check     # what the sync needs in the CRM, and what is missing
    python -m shared.cli crm-schema --apply     # create what is missing (needs customizer rights)
    python -m shared.cli backfill [--since DATE] [--wait]   # import the referrals Partner Center has

Settings come from the environment and, for names it does not set, from ``local.settings.json`` in
the current folder (as Core Tools does), so an admin whose CRM user holds customizer rights can set
up the schema while the app's own CRM user keeps only data rights. ``backfill`` records the job and
its first page in the app's storage, as ``POST /api/manage/backfill`` does; the function app (in
Azure, or ``make run``) lists and syncs it, and ``--wait`` follows its progress until it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError

from shared import services
from shared.crm.schema import SchemaRefused
from shared.http import ApiError, ApiUnavailable
from shared.services import ConfigurationError
from shared.store.backfill import BackfillJob
from shared.sync.backfill import BackfillBusy, NothingToResume, parse_since


def load_local_settings(folder: Path, environ: dict[str, str] | Any = os.environ) -> list[str]:
    """Fill names the environment lacks from ``local.settings.json`` ``Values``; the names filled."""
    path = folder / "local.settings.json"
    if not path.is_file():
        return []
    values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    filled = []
    for name, value in values.items():
        if name not in environ and value not in (None, ""):
            environ[name] = str(value)
            filled.append(name)
    return filled


def _print_report(body: dict[str, Any], out: Any) -> None:
    for status in ("missing", "wrong", "pending"):
        for item in body.get(status, []):
            out.write(f"  {status:<8} {item['table']}.{item['name']}: {item.get('reason', '')}\n")
    for item in body.get("created", []):
        out.write(f"  created  {item['table']}.{item['name']} ({item['kind']})\n")
    out.write(f"{body['crm']}: {'ready' if body['ready'] else 'NOT ready'}\n")


def crm_schema(apply: bool, as_json: bool, out: Any = sys.stdout) -> int:
    try:
        schema = services.crm_schema()
        body = schema.apply().to_json() if apply else schema.check().to_json()
    except SchemaRefused as exc:
        created = ", ".join(f"{i.table}.{i.name}" for i in exc.created) or "nothing"
        out.write(f"The CRM refused to create the schema: {exc.reason}\nCreated before it stopped: {created}\n")
        return 2
    except (ConfigurationError, ApiError, ApiUnavailable) as exc:
        out.write(f"{type(exc).__name__}: {exc}\n")
        return 2
    if as_json:
        out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_report(body, out)
    return 0 if body["ready"] else 1


def _progress_line(job: BackfillJob) -> str:
    return (
        f"{job.phase}: {job.listed} listed ({job.up_to_date} already in sync), {job.synced} synced, "
        f"{job.failed} failed, {job.remaining} remaining ({job.percent}%)"
    )


def backfill(
    since: str | None,
    *,
    resume: bool = False,
    force: bool = False,
    wait: bool = False,
    interval: float = 10.0,
    out: Any = sys.stdout,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Start (or resume) a backfill; with ``wait``, print its progress until it ends.

    Exit 0 when started (or, waiting, completed without failures); 1 when it ended with failures or
    stopped; 2 when nothing was started (one is running, bad ``since``, settings or storage missing).
    """
    when, refusal = parse_since(since)
    if refusal:
        out.write(refusal + "\n")
        return 2
    try:
        runner = services.backfill()
        job = runner.resume() if resume else runner.start(when, force=force)
    except BackfillBusy as exc:
        out.write(f"{exc}\n{_progress_line(exc.job)}\nWatch it with GET /api/manage/status; --force starts over.\n")
        return 2
    except (NothingToResume, ConfigurationError) as exc:
        out.write(f"{exc}\n")
        return 2
    except AzureError as exc:
        out.write(f"Storage is unavailable ({type(exc).__name__}); nothing was started.\n")
        return 2
    verb = "resumed" if resume else "started"
    out.write(f"Backfill {job.job_id} {verb} (since {job.since or 'the first referral'}).\n")
    if not wait:
        out.write("The function app lists and syncs it; progress: GET /api/manage/status.\n")
        return 0
    store, last = services.backfill_store(), ""
    while True:
        current = store.get(job.job_id) or job
        line = _progress_line(current)
        if line != last:
            out.write(line + "\n")
            last = line
        if not current.running:
            if current.last_error:
                out.write(f"{current.last_error}\n")
            return 0 if current.phase == "completed" and not current.failed else 1
        sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser("crm-schema", help="check or create the schema the sync needs in the CRM")
    action = schema.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="read the CRM's metadata only")
    action.add_argument("--apply", action="store_true", help="create what is missing, idempotently")
    schema.add_argument("--json", action="store_true", help="print the full report as JSON")
    fill = commands.add_parser("backfill", help="import the referrals Partner Center already has, paced")
    fill.add_argument("--since", help="only referrals updated since this ISO date or date-time (default: all)")
    fill.add_argument("--resume", action="store_true", help="go on listing the current job from its checkpoint")
    fill.add_argument("--force", action="store_true", help="start a new job even though one is running")
    fill.add_argument("--wait", action="store_true", help="print the progress until the backfill ends")
    fill.add_argument("--interval", type=float, default=10.0, help="seconds between progress reads with --wait")
    args = parser.parse_args(argv)
    load_local_settings(Path.cwd())
    services.reset()
    if args.command == "backfill":
        if args.resume and (args.since or args.force):
            parser.error("--resume goes on with the current job as it was started: give it alone")
        return backfill(args.since, resume=args.resume, force=args.force, wait=args.wait, interval=args.interval)
    return crm_schema(apply=args.apply, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())

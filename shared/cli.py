"""Admin commands an operator runs from a workstation, with the app's settings.

    python -m shared.cli crm-schema --check     # what the sync needs in the CRM, and what is missing
    python -m shared.cli crm-schema --apply     # create what is missing (needs customizer rights)
    python -m shared.cli consent --vault <name> # Partner Center refresh token: sign in, check, store
    python -m shared.cli adopt [--apply]        # link the records Microsoft's co-sell connector made
    python -m shared.cli doctor [--json]        # what works and what does not, naming the settings to fix
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
from typing import Any, TextIO

from azure.core.exceptions import AzureError
from pydantic import ValidationError

from shared import consent, services
from shared import doctor as checks
from shared.auth import AuthError
from shared.config import Settings
from shared.crm.adopt import ConnectorNotFound
from shared.crm.schema import SchemaRefused
from shared.http import ApiError, ApiUnavailable
from shared.services import ConfigurationError
from shared.store.backfill import BackfillJob
from shared.sync.adopt import Adopter, AdoptReport
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
    except (ConfigurationError, AuthError, ApiError, ApiUnavailable) as exc:
        out.write(f"{type(exc).__name__}: {exc}\n")
        return 2
    if as_json:
        out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_report(body, out)
    return 0 if body["ready"] else 1


def adopt(apply: bool, reopen_closed: bool, as_json: bool, out: Any = None) -> int:
    """Copy the connector's referral columns into the sync's: 0 done, 1 records need you, 2 could not run."""
    out = out or sys.stdout  # looked up now, so a caller's redirect of stdout is honoured
    try:
        schema = services.crm_schema().check()
        # Access granted some other way than the sync's own permission set is access all the same: a
        # field the integration user cannot see is reported missing by the column checks themselves.
        if any(f.status != "present" and f.item.kind != "access" for f in schema.findings):
            out.write("The sync's own columns are not ready in the CRM; create them first (crm-schema --apply):\n")
            _print_report(schema.to_json(), out)
            return 2
        report = Adopter(services.connector_links()).run(apply=apply, reopen_closed=reopen_closed)
    except ConnectorNotFound as exc:
        out.write(f"{exc}\nNothing to adopt: is the connector installed here, and are its columns named as "
                  "CONNECTOR_FIELD_MAP says?\n")  # fmt: skip
        return 2
    except (ConfigurationError, ApiError, ApiUnavailable, AuthError, ValueError) as exc:
        out.write(f"{type(exc).__name__}: {exc}\n")
        return 2
    if as_json:
        out.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        _print_adoption(report, out)
    if report.stopped:
        return 2
    return 1 if report.needs_attention else 0


def _print_adoption(report: AdoptReport, out: Any) -> None:
    for kind, columns in report.columns.found.items():
        out.write(f"  {kind}: the connector's {', '.join(f'{k} = {v}' for k, v in columns.items())}\n")
    for kind, names in report.columns.missing.items():
        out.write(f"  {kind}: not found {', '.join(names)}\n")
    for note in report.columns.notes:
        out.write(f"  note: {note}\n")
    for item in report.items:
        if item.outcome != "linked":
            what = f"{item.kind} {item.crm_id}" + (f" (referral {item.referral_id})" if item.referral_id else "")
            out.write(f"  {item.outcome:<9} {what}: {item.reason}\n")
    counts = ", ".join(f"{n} {outcome}" for outcome, n in report.counts().items() if n)
    verb = "applied" if report.applied else "dry run, nothing written"
    out.write(f"{report.crm} ({verb}): {counts or 'no connector records'}\n")
    if report.stopped:
        out.write(f"Stopped early: {report.stopped}\nRun it again: what was adopted stays, nothing is done twice.\n")
    elif not report.applied and report.counts()["adopted"]:
        out.write("Run again with --apply to copy.\n")


def doctor(as_json: bool, app_url: str | None = None, out: Any = sys.stdout) -> int:
    """Exit 0 when nothing fails (warnings allowed), 1 when something does."""
    report = checks.run(events_url=app_url.rstrip("/") + checks.EVENTS_PATH if app_url else None)
    if as_json:
        out.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
        return 0 if report.ok else 1
    ascii_only = not _can_print(out, "✔✖")
    for line in report.lines(ascii_only=ascii_only):
        out.write(line + "\n")
    failing = [check.name for check in report.checks if check.status == "fail"]
    out.write(f"{len(failing)} check(s) fail: {', '.join(failing)}\n" if failing else "Nothing fails.\n")
    return 0 if report.ok else 1


def _can_print(out: Any, text: str) -> bool:
    try:
        text.encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


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


def main(
    argv: list[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    parser = argparse.ArgumentParser(prog="python -m shared.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser("crm-schema", help="check or create the schema the sync needs in the CRM")
    action = schema.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="read the CRM's metadata only")
    action.add_argument("--apply", action="store_true", help="create what is missing, idempotently")
    schema.add_argument("--json", action="store_true", help="print the full report as JSON")
    consent_parser = commands.add_parser(
        "consent",
        help="obtain, check and store the Partner Center refresh token (Secure Application Model)",
        description=(
            "Sign in as the Partner Center integration user (Referrals admin) through the app registration's "
            "authorization-code flow, check the refresh token for both Partner Center scopes as the app redeems "
            "it, and store it in Key Vault as partner-center-refresh-token (or print it). Settings: "
            "PARTNER_CENTER_TENANT_ID, PARTNER_CENTER_CLIENT_ID, PARTNER_CENTER_CLIENT_SECRET, "
            "ENTRA_AUTHORITY_HOST, PARTNER_CENTER_SCOPE, PARTNER_CENTER_WEBHOOK_SCOPE, from the environment or "
            "local.settings.json in the current folder."
        ),
        epilog=(
            "exit status: 0 stored or printed; 1 the sign-in or the check failed (the scope and Entra's error "
            "code are named); 2 settings, arguments or Key Vault access are wrong. The token is written to "
            "standard output with --print only; everything else goes to standard error."
        ),
    )
    consent.add_arguments(consent_parser)
    adoption = commands.add_parser(
        "adopt", help="link the records Microsoft's co-sell connector made (dry run unless --apply)"
    )
    adoption.add_argument("--apply", action="store_true", help="copy into the sync's columns (default: report only)")
    adoption.add_argument(
        "--reopen-closed",
        action="store_true",
        help="Dynamics 365: reopen a closed opportunity to link it, then close it again as it was",
    )
    adoption.add_argument("--json", action="store_true", help="print the full report as JSON")
    doctor_command = commands.add_parser("doctor", help="check every integration, naming the settings to fix")
    doctor_command.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor_command.add_argument(
        "--app-url", help="the app's base URL (https://<host>), to check the webhook points there"
    )
    fill = commands.add_parser("backfill", help="import the referrals Partner Center already has, paced")
    fill.add_argument("--since", help="only referrals updated since this ISO date or date-time (default: all)")
    fill.add_argument("--resume", action="store_true", help="go on listing the current job from its checkpoint")
    fill.add_argument("--force", action="store_true", help="start a new job even though one is running")
    fill.add_argument("--wait", action="store_true", help="print the progress until the backfill ends")
    fill.add_argument("--interval", type=float, default=10.0, help="seconds between progress reads with --wait")
    args = parser.parse_args(argv)
    load_local_settings(Path.cwd())
    services.reset()
    if args.command == "consent":
        try:
            settings = Settings()
        except ValidationError as exc:
            err.write(f"Invalid app settings: {exc}\n")
            return consent.EXIT_USAGE
        return consent.run(settings, consent.options_from(args), out=out, err=err, stdin=stdin)
    if args.command == "doctor":
        return doctor(as_json=args.json, app_url=args.app_url, out=out)
    if args.command == "adopt":
        return adopt(apply=args.apply, reopen_closed=args.reopen_closed, as_json=args.json, out=out)
    if args.command == "backfill":
        if args.resume and (args.since or args.force):
            parser.error("--resume goes on with the current job as it was started: give it alone")
        return backfill(
            args.since, resume=args.resume, force=args.force, wait=args.wait, interval=args.interval, out=out
        )
    return crm_schema(apply=args.apply, as_json=args.json, out=out)


if __name__ == "__main__":
    sys.exit(main())

"""Admin commands an operator runs from a workstation, with the app's settings.

    python -m shared.cli crm-schema --check     # what the sync needs in the CRM, and what is missing
    python -m shared.cli crm-schema --apply     # create what is missing (needs customizer rights)
    python -m shared.cli doctor [--json]        # what works and what does not, naming the settings to fix

Settings come from the environment and, for names it does not set, from ``local.settings.json`` in
the current folder (as Core Tools does), so an admin whose CRM user holds customizer rights can set
up the schema while the app's own CRM user keeps only data rights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from shared import doctor as checks
from shared import services
from shared.auth import AuthError
from shared.crm.schema import SchemaRefused
from shared.http import ApiError, ApiUnavailable
from shared.services import ConfigurationError


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser("crm-schema", help="check or create the schema the sync needs in the CRM")
    action = schema.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="read the CRM's metadata only")
    action.add_argument("--apply", action="store_true", help="create what is missing, idempotently")
    schema.add_argument("--json", action="store_true", help="print the full report as JSON")
    doctor_command = commands.add_parser("doctor", help="check every integration, naming the settings to fix")
    doctor_command.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor_command.add_argument(
        "--app-url", help="the app's base URL (https://<host>), to check the webhook points there"
    )
    args = parser.parse_args(argv)
    load_local_settings(Path.cwd())
    services.reset()
    if args.command == "doctor":
        return doctor(as_json=args.json, app_url=args.app_url)
    return crm_schema(apply=args.apply, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())

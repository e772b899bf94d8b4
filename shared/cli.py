"""Admin commands an operator runs from a workstation, with the app's settings.

    python -m shared.cli crm-schema --check     # what the sync needs in the CRM, and what is missing
    python -m shared.cli crm-schema --apply     # create what is missing (needs customizer rights)
    python -m shared.cli consent --vault <name> # Partner Center refresh token: sign in, check, store

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
from typing import Any, TextIO

from pydantic import ValidationError

from shared import consent, services
from shared.config import Settings
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
    except (ConfigurationError, ApiError, ApiUnavailable) as exc:
        out.write(f"{type(exc).__name__}: {exc}\n")
        return 2
    if as_json:
        out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_report(body, out)
    return 0 if body["ready"] else 1


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
    return crm_schema(apply=args.apply, as_json=args.json, out=out)


if __name__ == "__main__":
    sys.exit(main())

"""``make run``: the function app under the local host, against the sandbox or real systems.

Without ``local.settings.json`` it starts Azurite, the simulated Entra ID, Partner Center and
Dynamics 365, and the host on http://127.0.0.1:7071; registers the webhook; seeds the Microsoft
sample referrals; then streams the host's log until Ctrl-C. With a ``local.settings.json`` (copied
from ``local.settings.example.json`` and filled in), the same host talks to the systems it names.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from sandbox.act import RUNNING_FILE, RunningSandbox
from sandbox.azurite import AzuriteError, start_azurite
from sandbox.environment import SandboxPorts
from sandbox.hostproc import HostStartError, start_host
from sandbox.ports import port_open
from sandbox.stack import REPO_ROOT, Stack

DEFAULT_HOST_PORT = 7071
SIM_PORTS = SandboxPorts(entra=7081, partner_center=7082, dataverse=7083, salesforce=7084)
AZURITE_PORTS = (10000, 10001, 10002)
FIXTURES = REPO_ROOT / "sandbox" / "fixtures"
DEFAULT_DATA_DIR = REPO_ROOT / ".sandbox"


def _default_or_free(port: int, what: str, *, defaults: bool = True) -> int:
    """The default port, or 0 (a free one) when something already listens there, saying so."""
    if not defaults:
        return 0
    if not port_open("127.0.0.1", port):
        return port
    print(f"Port {port} ({what}) is busy: another program listens there. Using a free port instead.", flush=True)
    return 0


def _stop_on_sigterm() -> None:
    """SIGTERM (kill, docker stop, a CI runner) unwinds like Ctrl-C, so everything started is stopped."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _follow(path: Path, stop: threading.Event) -> None:
    """Print the host log as it grows (like ``tail -f``)."""
    while not path.exists() and not stop.is_set():
        time.sleep(0.1)
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        while not stop.is_set():
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)


def sample_referrals() -> list[dict[str, Any]]:
    """The verbatim Microsoft samples, each with a fresh id (two of them share one)."""
    referrals = []
    for name in ("fixture_a_list.json", "fixture_b_shared_accepted.json", "fixture_c_closed_won.json"):
        data = json.loads((FIXTURES / name).read_text())
        referral = data["value"][0] if "value" in data else data
        referral.pop("links", None)
        referral["id"] = str(uuid.uuid4())
        referrals.append(referral)
    return referrals


def show_missed_webhook_heal(stack: Stack, referral: dict[str, Any]) -> None:
    """Partner Center changes a referral while webhook delivery is down; one reconcile run heals it."""
    time.sleep(4)  # let the first syncs finish, so the log reads in order
    pc = stack.sandbox.partner_center
    print(f"\n>>> Webhooks OFF; Partner Center changes referral {referral['id']} (deal value 64,000)", flush=True)
    pc.delivery_enabled = False
    pc.update_referral(referral["id"], {"details": {"dealValue": 64000}})
    pc.delivery_enabled = True
    print(">>> Webhooks back ON (that change's event was lost); running referral_reconcile now\n", flush=True)
    stack.host.fire("referral_reconcile")


REFUSED_CURRENCY = "XYZ"  # an ISO-shaped code neither simulated CRM has set up
FIXED_CURRENCY = json.dumps({"details": {"currency": "USD"}})


def refused_referral() -> dict[str, Any]:
    """A fourth sample for the dashboard to show: it syncs, then Partner Center gives it a currency the CRM lacks."""
    referral = sample_referrals()[1]
    referral["name"] = "Northwind: a currency the CRM does not have"
    return referral


def _synced(stack: Stack, referral_id: str) -> bool:
    table = TableClient.from_connection_string(stack.azurite.connection_string, "AuditLog")
    with contextlib.suppress(ResourceNotFoundError):
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": referral_id}, select=["outcome"])
        return any(row["outcome"] == "created" for row in rows)
    return False


def show_a_failure(stack: Stack, referral: dict[str, Any], timeout: float = 60) -> None:
    """Leave one failure on the dashboard: a change the CRM refuses, retried by the host, then poisoned."""
    deadline = time.monotonic() + timeout
    while not _synced(stack, referral["id"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(6)  # after the missed-webhook demo, so the log reads in order
    print(
        f"\n>>> Partner Center changes referral {referral['id']}'s currency to {REFUSED_CURRENCY}, which the CRM "
        "does not have: the sync fails, the host retries it, and in about a minute it is on the dashboard\n",
        flush=True,
    )
    stack.sandbox.partner_center.update_referral(referral["id"], {"details": {"currency": REFUSED_CURRENCY}})
    url = f"{stack.sandbox.partner_center_url}/_sim/referrals/{referral['id']}?fire=false"
    print(
        f"\n>>> Dashboard: {stack.host.base_url}/api/manage/dashboard . To heal the failure there, put the currency "
        "back without a webhook (so nothing heals it by itself), then press Resync on its row:\n"
        f"  curl -s -X PATCH '{url}' -H 'Content-Type: application/json' -d '{FIXED_CURRENCY}'\n",
        flush=True,
    )


def _wait_for_ctrl_c() -> None:
    """Until Ctrl-C or SIGTERM (both raise KeyboardInterrupt, which the caller's ``with``/``finally`` sees)."""
    while True:
        time.sleep(0.5)


def run_sandbox(data_dir: Path, port: int, crm: str = "dynamics", *, default_ports: bool = True) -> int:
    """``default_ports=False`` (``--ports free``): the simulators and Azurite on free ports (tests, a second run)."""
    azurite_busy = [p for p in AZURITE_PORTS if default_ports and port_open("127.0.0.1", p)]
    if azurite_busy:
        print(
            f"Port(s) {', '.join(map(str, azurite_busy))} (Azurite) busy: another storage emulator? "
            "Starting the sandbox's own Azurite on free ports instead.",
            flush=True,
        )
    stack = Stack(
        data_dir,
        host_port=_default_or_free(port, "function app") or None,
        crm=crm,
        crm_schema="bare",
        sandbox_ports=SandboxPorts(
            _default_or_free(SIM_PORTS.entra, "simulated Entra ID", defaults=default_ports),
            _default_or_free(SIM_PORTS.partner_center, "simulated Partner Center", defaults=default_ports),
            _default_or_free(SIM_PORTS.dataverse, "simulated Dynamics 365", defaults=default_ports),
            _default_or_free(SIM_PORTS.salesforce, "simulated Salesforce", defaults=default_ports),
        ),
        azurite_ports=AZURITE_PORTS if default_ports and not azurite_busy else None,
        log_path=data_dir / "host.log",
    )
    (data_dir / "host.log").unlink(missing_ok=True)
    stop = threading.Event()
    running = data_dir / RUNNING_FILE
    try:
        with stack:
            threading.Thread(target=_follow, args=(data_dir / "host.log", stop), daemon=True).start()
            # A new org lacks the sync's schema: the real first step, through the app's own route.
            crm_label = "Salesforce" if crm == "salesforce" else "Dynamics 365"
            print(f"\n>>> The simulated {crm_label} starts bare: POST /api/manage/crm-schema sets it up", flush=True)
            schema = stack.provision_crm()
            created = ", ".join(f"{i['table']}.{i['name']}" for i in schema.get("created", []))  # type: ignore[union-attr]
            print(f">>> Created: {created}\n>>> Ready: {schema.get('ready')}\n", flush=True)
            registration = stack.register_webhook()
            samples = sample_referrals()
            refused = refused_referral()
            for referral in [*samples, refused]:
                stack.sandbox.partner_center.seed_referral(referral)
            threading.Thread(target=show_missed_webhook_heal, args=(stack, samples[1]), daemon=True).start()
            threading.Thread(target=show_a_failure, args=(stack, refused), daemon=True).start()
            _running_sandbox(stack, crm).write(data_dir)
            print(_banner(stack, crm, registration, data_dir), flush=True)
            _wait_for_ctrl_c()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        running.unlink(missing_ok=True)
    print("Stopped: the function app, the simulators and Azurite have exited.", flush=True)
    return 0


def _running_sandbox(stack: Stack, crm: str) -> RunningSandbox:
    sandbox = stack.sandbox
    return RunningSandbox(
        crm=crm,
        host_url=stack.host.base_url,
        entra_url=sandbox.entra_url,
        partner_center_url=sandbox.partner_center_url,
        dataverse_url=sandbox.dataverse_url,
        salesforce_url=sandbox.salesforce_url,
        dv_client_secret=sandbox.dv_client_secret,
        sf_client_secret=sandbox.sf_client_secret,
    )


def _banner(stack: Stack, crm: str, registration: dict[str, object], data_dir: Path) -> str:
    pc = stack.sandbox.partner_center_url
    if crm == "salesforce":
        sf = stack.sandbox.salesforce_url
        crm_line = f"   Simulated Salesforce     {sf}   (opportunities: {sf}/_sim/records/Opportunity)"
    else:
        dv = stack.sandbox.dataverse_url
        crm_line = f"   Simulated Dynamics 365   {dv}   (opportunities: {dv}/_sim/records/opportunities)"
    act = f"{_python()} -m sandbox.act"
    if data_dir.resolve() != DEFAULT_DATA_DIR:
        act += f" --data-dir {shlex.quote(str(data_dir))}"
    return f"""
================================================================================
 Co-sell sync is running against the sandbox  (Ctrl-C to stop)
   Function app            {stack.host.base_url}/api/health
   Dashboard               {stack.host.base_url}/api/manage/dashboard
   Webhook registration    {registration.get("action")} -> {stack.host.base_url}/api/partner-center/events
   Simulated Partner Center {pc}   (referrals: {pc}/_sim/referrals)
{crm_line}
   Azurite (queues, tables) {stack.azurite.queue_endpoint} / {stack.azurite.table_endpoint}

 Microsoft's three sample referrals and a fourth were just created in Partner Center; watch them sync below.
 In a few seconds one of them changes while webhook delivery is off, and a reconcile run heals it.
 Then the fourth gets a currency the CRM does not have: in about a minute the dashboard shows the
 failure and its reason (the log then prints how to fix it and press Resync).
 Every 10 s the CRM poll shares opportunities marked "Sync with Partner Center" (see the README).

 Try both directions from another terminal (each waits for the sync and says where it landed):
   Partner Center -> CRM:   {act} new-referral --company "Fabrikam Ltd"
   CRM -> Partner Center:   {act} share-opportunity --name "Fabrikam expansion"

 Import every referral Partner Center holds (a backfill; those already in sync cost no CRM call), and watch:
   curl -s -X POST {stack.host.base_url}/api/manage/backfill -d '{{}}'
   curl -s {stack.host.base_url}/api/manage/status
================================================================================
"""


def _python() -> str:
    """The interpreter to show in commands: the repo's venv when make run uses it (a path relative to the repo)."""
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(REPO_ROOT))
    except ValueError:
        return "python"


def run_real(data_dir: Path, port: int, settings_path: Path) -> int:
    values = json.loads(settings_path.read_text()).get("Values", {})
    azurite = None
    if str(values.get("AzureWebJobsStorage", "")).strip().lower() == "usedevelopmentstorage=true":
        if any(port_open("127.0.0.1", p) for p in AZURITE_PORTS):
            print("Using the storage emulator already listening on 10000-10002.")
        else:
            azurite = start_azurite(data_dir / "azurite", ports=AZURITE_PORTS, in_memory=False)
    stop = threading.Event()
    host = None
    try:
        try:
            host = start_host(REPO_ROOT, env={}, port=port, log_path=data_dir / "host.log", timeout=60)
        except HostStartError as exc:
            # The host said why in its last line (a setting it refuses, say): show that, not our traceback.
            last = [line for line in str(exc).splitlines() if line.strip()][-1:]
            print(f"The function app did not start: {last[0] if last else exc}", file=sys.stderr)
            return 1
        threading.Thread(target=_follow, args=(data_dir / "host.log", stop), daemon=True).start()
        print(f"Function app on {host.base_url} with the settings in {settings_path.name} (Ctrl-C to stop)", flush=True)
        _wait_for_ctrl_c()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if host:
            host.stop()
        if azurite:
            azurite.stop()
    print("Stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_HOST_PORT)
    parser.add_argument("--mode", choices=("auto", "sandbox", "real"), default="auto")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--ports",
        choices=("default", "free"),
        default="default",
        help="default: simulators on 7081-7084 and Azurite on 10000-10002 when free; free: any free ports",
    )
    parser.add_argument("--crm", choices=("dynamics", "salesforce"), default="dynamics", help="the sandbox's CRM")
    args = parser.parse_args(argv)
    settings_path = REPO_ROOT / "local.settings.json"
    mode = args.mode
    if mode == "auto":
        mode = "real" if settings_path.exists() else "sandbox"
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if mode == "real" and not settings_path.exists():
        parser.error("--mode real needs local.settings.json (copy local.settings.example.json)")
    _stop_on_sigterm()
    try:
        if mode == "real":
            return run_real(args.data_dir, args.port, settings_path)
        return run_sandbox(args.data_dir, args.port, args.crm, default_ports=args.ports == "default")
    except (HostStartError, AzuriteError, OSError, httpx.HTTPError) as exc:
        # Whatever had started is stopped already (Stack.start and the finally blocks above).
        print(f"make run could not start: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())

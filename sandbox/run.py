"""``make run``: the function app under the local host, against the sandbox or real systems.

Without ``local.settings.json`` it starts Azurite, the simulated Entra ID, Partner Center and
Dynamics 365, and the host on http://127.0.0.1:7071; registers the webhook; seeds the Microsoft
sample referrals; then streams the host's log until Ctrl-C. With a ``local.settings.json`` (copied
from ``local.settings.example.json`` and filled in), the same host talks to the systems it names.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sandbox.azurite import start_azurite
from sandbox.environment import SandboxPorts
from sandbox.hostproc import start_host
from sandbox.ports import port_open
from sandbox.stack import REPO_ROOT, Stack

DEFAULT_HOST_PORT = 7071
SIM_PORTS = SandboxPorts(entra=7081, partner_center=7082, dataverse=7083, salesforce=7084)
AZURITE_PORTS = (10000, 10001, 10002)
FIXTURES = REPO_ROOT / "sandbox" / "fixtures"


def _free_or_zero(port: int) -> int:
    return 0 if port_open("127.0.0.1", port) else port


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


def _wait_for_ctrl_c() -> None:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.is_set():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def run_sandbox(data_dir: Path, port: int, crm: str = "dynamics") -> int:
    stack = Stack(
        data_dir,
        host_port=_free_or_zero(port) or None,
        crm=crm,
        crm_schema="bare",
        sandbox_ports=SandboxPorts(
            _free_or_zero(SIM_PORTS.entra),
            _free_or_zero(SIM_PORTS.partner_center),
            _free_or_zero(SIM_PORTS.dataverse),
            _free_or_zero(SIM_PORTS.salesforce),
        ),
        azurite_ports=None if any(port_open("127.0.0.1", p) for p in AZURITE_PORTS) else AZURITE_PORTS,
        log_path=data_dir / "host.log",
    )
    (data_dir / "host.log").unlink(missing_ok=True)
    stop = threading.Event()
    with stack:
        follower = threading.Thread(target=_follow, args=(data_dir / "host.log", stop), daemon=True)
        follower.start()
        # A new org lacks the sync's schema: the real first step, through the app's own route.
        crm_label = "Salesforce" if crm == "salesforce" else "Dynamics 365"
        print(f"\n>>> The simulated {crm_label} starts bare: POST /api/manage/crm-schema sets it up", flush=True)
        schema = stack.provision_crm()
        created = ", ".join(f"{i['table']}.{i['name']}" for i in schema.get("created", []))  # type: ignore[union-attr]
        print(f">>> Created: {created}\n>>> Ready: {schema.get('ready')}\n", flush=True)
        registration = stack.register_webhook()
        samples = sample_referrals()
        for referral in samples:
            stack.sandbox.partner_center.seed_referral(referral)
        threading.Thread(target=show_missed_webhook_heal, args=(stack, samples[1]), daemon=True).start()
        pc = stack.sandbox.partner_center_url
        if crm == "salesforce":
            sf = stack.sandbox.salesforce_url
            crm_lines = f"   Simulated Salesforce     {sf}   (opportunities: {sf}/_sim/records/Opportunity)"
            crm_name = "Salesforce"
        else:
            dv = stack.sandbox.dataverse_url
            crm_lines = f"   Simulated Dynamics 365   {dv}   (opportunities: {dv}/_sim/records/opportunities)"
            crm_name = "Dynamics 365"
        print(
            f"""
================================================================================
 Co-sell sync is running against the sandbox  (Ctrl-C to stop)
   Function app            {stack.host.base_url}/api/health
   Webhook registration    {registration.get("action")} -> {stack.host.base_url}/api/partner-center/events
   Simulated Partner Center {pc}   (referrals: {pc}/_sim/referrals)
{crm_lines}
   Azurite (queues, tables) {stack.azurite.queue_endpoint} / {stack.azurite.table_endpoint}

 Three Microsoft sample referrals were just created in Partner Center; watch them sync below.
 In a few seconds one of them changes while webhook delivery is off, and a reconcile run heals it.
 Every 10 s the CRM poll shares opportunities marked "Sync with Partner Center" (see the README).
 Create another one:
   curl -s -X POST {pc}/_sim/referrals -H 'Content-Type: application/json' \\
        -d @sandbox/fixtures/fixture_b_shared_accepted.json
 Change its deal value (one write reaches {crm_name}):
   curl -s -X PATCH {pc}/_sim/referrals/<id> -H 'Content-Type: application/json' \\
        -d '{{"details": {{"dealValue": 75000}}}}'
 Import every referral Partner Center holds (a backfill; those in sync cost no {crm_name} call), and watch:
   curl -s -X POST {stack.host.base_url}/api/manage/backfill -d '{{}}'
   curl -s {stack.host.base_url}/api/manage/status
================================================================================
""",
            flush=True,
        )
        _wait_for_ctrl_c()
        stop.set()
    print("Stopped.")
    return 0


def run_real(data_dir: Path, port: int, settings_path: Path) -> int:
    values = json.loads(settings_path.read_text()).get("Values", {})
    azurite = None
    if str(values.get("AzureWebJobsStorage", "")).strip().lower() == "usedevelopmentstorage=true":
        if any(port_open("127.0.0.1", p) for p in AZURITE_PORTS):
            print("Using the storage emulator already listening on 10000-10002.")
        else:
            azurite = start_azurite(data_dir / "azurite", ports=AZURITE_PORTS, in_memory=False)
    stop = threading.Event()
    host = start_host(REPO_ROOT, env={}, port=port, log_path=data_dir / "host.log", timeout=60)
    threading.Thread(target=_follow, args=(data_dir / "host.log", stop), daemon=True).start()
    print(f"Function app on {host.base_url} with the settings in {settings_path.name} (Ctrl-C to stop)", flush=True)
    try:
        _wait_for_ctrl_c()
    finally:
        stop.set()
        host.stop()
        if azurite:
            azurite.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_HOST_PORT)
    parser.add_argument("--mode", choices=("auto", "sandbox", "real"), default="auto")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".sandbox")
    parser.add_argument("--crm", choices=("dynamics", "salesforce"), default="dynamics", help="the sandbox's CRM")
    args = parser.parse_args(argv)
    settings_path = REPO_ROOT / "local.settings.json"
    mode = args.mode
    if mode == "auto":
        mode = "real" if settings_path.exists() else "sandbox"
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if mode == "real":
        if not settings_path.exists():
            parser.error("--mode real needs local.settings.json (copy local.settings.example.json)")
        return run_real(args.data_dir, args.port, settings_path)
    return run_sandbox(args.data_dir, args.port, args.crm)


if __name__ == "__main__":
    sys.exit(main())

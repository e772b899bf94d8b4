"""Act on the sandbox ``make run`` started, from another terminal: one command per direction.

    python -m sandbox.act new-referral [--company NAME]     Microsoft shares a new referral with you
    python -m sandbox.act share-opportunity [--name NAME]   a seller marks an opportunity for sync

Each makes the change the way its real counterpart would (a referral created in Partner Center,
which fires a signed webhook; an opportunity created through the CRM's API with "Sync with Partner
Center" set), then waits until the sync has carried it across and says where it landed, or says
that it did not within ``--wait`` seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from sandbox.crm_user import CrmUser
from sandbox.sellers import SalesforceUser

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNNING_FILE = "running.json"
FIXTURE = REPO_ROOT / "sandbox" / "fixtures" / "fixture_b_shared_accepted.json"


@dataclass(frozen=True)
class RunningSandbox:
    """What ``make run`` writes to ``.sandbox/running.json`` while it runs (sandbox-only credentials)."""

    crm: str
    host_url: str
    entra_url: str
    partner_center_url: str
    dataverse_url: str
    salesforce_url: str
    dv_client_secret: str
    sf_client_secret: str

    def write(self, data_dir: Path) -> Path:
        path = data_dir / RUNNING_FILE
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        return path

    @classmethod
    def read(cls, data_dir: Path) -> RunningSandbox | None:
        try:
            return cls(**json.loads((data_dir / RUNNING_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    @property
    def crm_name(self) -> str:
        return "Salesforce" if self.crm == "salesforce" else "Dynamics 365"


class Desk(Protocol):
    """A seller's view of the CRM, enough to share a deal and to see what the sync did."""

    def opportunity(self, *, name: str = "") -> str: ...

    def referral_of(self, opportunity_id: str) -> tuple[str, str | None]: ...

    def deal_for(self, referral_id: str) -> tuple[str, str] | None: ...


def _desk(running: RunningSandbox) -> Desk:
    return SalesforceUser(running) if running.crm == "salesforce" else CrmUser(running)


def fresh_referral(company: str | None) -> dict[str, Any]:
    """Microsoft's sample of an accepted co-sell referral, as new: its own id and today's timestamps."""
    referral: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    referral.update(id=str(uuid.uuid4()), engagementId=str(uuid.uuid4()), createdDateTime=now, updatedDateTime=now)
    referral.pop("eTag", None)
    referral.pop("links", None)
    if company:
        referral["customerProfile"]["name"] = company
        referral["name"] = f"{company} - co-sell"
    return referral


def _until(wait: float, probe: Any) -> tuple[Any, float]:
    started = time.monotonic()
    while True:
        found = probe()
        elapsed = time.monotonic() - started
        if found or elapsed >= wait:
            return found, elapsed
        time.sleep(0.25)


def new_referral(running: RunningSandbox, company: str | None, wait: float, out: Any) -> int:
    referral = fresh_referral(company)
    pc = running.partner_center_url
    response = httpx.post(f"{pc}/_sim/referrals", json=referral, timeout=10)
    response.raise_for_status()
    referral_id = referral["id"]
    print(f"Partner Center shared referral {referral_id} ({referral['customerProfile']['name']}).", file=out)
    deal, elapsed = _until(wait, lambda: _desk(running).deal_for(referral_id))
    if not deal:
        print(f"✖ Not in {running.crm_name} after {wait:.0f} s: see the make run log for this referral id.", file=out)
        return 1
    print(f"✔ In {running.crm_name} after {elapsed:.1f} s: opportunity {deal[0]} '{deal[1]}'.", file=out)
    print(
        "Change it on Microsoft's side (one write reaches the CRM):\n"
        f"  curl -s -X PATCH {pc}/_sim/referrals/{referral_id} -H 'Content-Type: application/json' \\\n"
        """       -d '{"details": {"dealValue": 75000}}'""",
        file=out,
    )
    return 0


def share_opportunity(running: RunningSandbox, name: str | None, wait: float, out: Any) -> int:
    desk = _desk(running)
    tag = uuid.uuid4().hex[:6]
    opportunity_id = desk.opportunity(name=name or f"Shared from the CRM {tag}")
    print(
        f"A seller created opportunity {opportunity_id} in {running.crm_name} with 'Sync with Partner Center' on "
        "(account, contact, solution, deal value and country filled in, as a co-sell share needs).",
        file=out,
    )
    found, elapsed = _until(wait, lambda: desk.referral_of(opportunity_id)[1])
    if not found:
        print(f"✖ No referral after {wait:.0f} s: the record's Audit field and the make run log say why.", file=out)
        return 1
    print(f"✔ Shared after {elapsed:.1f} s: Partner Center referral {found}", file=out)
    print(f"  See it: curl -s {running.partner_center_url}/_sim/referrals/{found}", file=out)
    return 0


def main(argv: list[str] | None = None, out: Any = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".sandbox", help="make run's data directory")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the sync (default 30)")
    commands = parser.add_subparsers(dest="command", required=True)
    referral = commands.add_parser("new-referral", help="Partner Center shares a new referral with you")
    referral.add_argument("--company", help="the customer's name (default: the sample's)")
    share = commands.add_parser("share-opportunity", help="a seller marks a new opportunity for sync")
    share.add_argument("--name", help="the opportunity's name")
    args = parser.parse_args(argv)
    running = RunningSandbox.read(args.data_dir)
    if running is None:
        print("No sandbox is running: start one with 'make run' in another terminal, then try again.", file=out)
        return 2
    try:
        if args.command == "new-referral":
            return new_referral(running, args.company, args.wait, out)
        return share_opportunity(running, args.name, args.wait, out)
    except httpx.TransportError as exc:
        print(f"The sandbox does not answer ({type(exc).__name__}): is make run still running?", file=out)
        return 2


if __name__ == "__main__":
    sys.exit(main())

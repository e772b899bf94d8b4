"""What the adoption tests share: an org with the connector, the admin command, the referrals, the backfill."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.sims.partner_center import PartnerCenterSimulator
from shared import cli, services

FIXTURES = Path(__file__).resolve().parents[2] / "sandbox" / "fixtures"


def connector_org(crm: Literal["dynamics", "salesforce"], seed: int) -> tuple[Any, Any]:
    """A test module's fixtures ``org`` (a sandbox of its own) and ``world``: that org as a partner who ran
    the connector has it (the sync's schema plus the connector's), with the app's settings pointed at it."""

    @pytest.fixture(scope="module")
    def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
        env = Sandbox(Path(tmp_path_factory.mktemp(f"adopt-{crm}")), seed=seed).start()
        yield env
        env.stop()

    @pytest.fixture
    def world(org: Sandbox, azurite: Azurite, app_settings: Callable[..., None]) -> Sandbox:
        crm_sim = org.salesforce if crm == "salesforce" else org.dataverse
        crm_sim.clear()
        crm_sim.set_faults(None)
        crm_sim.install_connector()
        app_settings(org, azurite.connection_string, crm=crm)
        return org

    return org, world


def referral(name: str, referral_id: str, **changes: Any) -> dict[str, Any]:
    """One of Microsoft's sample referrals, under the id a connector record carries."""
    data = json.loads((FIXTURES / name).read_text())
    body = copy.deepcopy(data["value"][0] if "value" in data else data)
    body.pop("links", None)
    body["id"] = referral_id
    body.update(changes)
    return body


def run_adopt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """``python -m shared.cli adopt <args> --json``, in process: (exit code, report)."""
    capsys.readouterr()
    code = cli.main(["adopt", *args, "--json"])
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except ValueError as exc:
        raise AssertionError(f"adopt exited {code} without a JSON report: {out}") from exc


def by_outcome(report: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for item in report["records"]:
        found.setdefault(item["outcome"], set()).add(item["crmId"])
    return found


def first_backfill(pc: PartnerCenterSimulator, referrals: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Partner Center holds the referrals (sample file -> ids) and the engine's inbound sync brings them in,
    as the first backfill would: the outcome per referral id."""
    for name, ids in referrals.items():
        for referral_id in ids:
            pc.seed_referral(referral(name, referral_id), fire=False)
    inbound = services.inbound_sync()
    return {r: inbound.sync(r, source="backfill").outcome for ids in referrals.values() for r in ids}


def patches(crm_sim: Any) -> int:
    """PATCH requests the CRM simulator has served: the writes an adoption makes."""
    return len(crm_sim.recorded("PATCH"))

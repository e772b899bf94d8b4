"""What the adoption tests share: the app's settings pointed at a sandbox, the admin command, the referrals."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from shared import cli

FIXTURES = Path(__file__).resolve().parents[2] / "sandbox" / "fixtures"


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

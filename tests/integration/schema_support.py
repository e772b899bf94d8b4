"""What the two CRM schema tests share: the rules every adapter's crm-schema must keep, asserted once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.crm.dynamics import DynamicsCrm
from shared.crm.port import SchemaNotReady
from shared.crm.salesforce import SalesforceCrm
from shared.mapping.inbound import InboundOptions, plan_for
from shared.partner_center.models import Referral

FIXTURES = Path(__file__).resolve().parents[2] / "sandbox" / "fixtures"


def names(findings: list[dict[str, Any]]) -> set[str]:
    return {f"{f['table']}.{f['name']}" for f in findings}


def shared_referral() -> Referral:
    """Microsoft's sample of a shared, accepted referral (one solution: Dynamics365forFieldService)."""
    return Referral.parse(json.loads((FIXTURES / "fixture_b_shared_accepted.json").read_text()))


def assert_the_renamed_name_is_checked_and_created(
    crm: DynamicsCrm | SalesforceCrm, renamed: str, default: str
) -> None:
    """``crm`` was built with a field map override renaming ``default`` (``table.name``) to ``renamed``."""
    missing = names(crm.schema.check().to_json()["missing"])
    assert renamed in missing
    assert default not in missing
    crm.schema.apply()
    assert renamed in names(crm.schema.check().to_json()["present"])


def assert_a_sync_asks_for_the_schema(crm: DynamicsCrm | SalesforceCrm, product: str) -> None:
    """A sync into an org without the sync's schema stops with the admin's next step, not a retry."""
    with pytest.raises(SchemaNotReady) as info:
        crm.apply_inbound(plan_for(shared_referral(), InboundOptions()), None, "Into a bare org.")
    assert f"{product} refused a name the sync needs" in str(info.value)
    assert "POST /api/manage/crm-schema" in str(info.value)

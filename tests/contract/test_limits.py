"""Column sizes: every adapter says how long each field may be, and a longer value lands cut, not refused."""

from __future__ import annotations

import pytest

from shared.crm.port import CrmPort
from shared.mapping.model import DealKind
from tests.contract.referrals import LEAD, MESSAGE, SHARED, member, plan_of, referral
from tests.contract.sellers import Seller


def test_field_limits_name_at_least_the_deal_name(crm: CrmPort, seller: Seller) -> None:
    for kind in ("opportunity", "lead"):
        limits = crm.field_limits(kind)
        if kind == "opportunity" or "name" in seller.lead_fields:
            assert limits.get("deal.name", 0) > 0, kind
        assert all(isinstance(v, int) and v > 0 for v in limits.values()), limits
        assert all(key.split(".", 1)[0] in ("deal", "account", "contact", "solution") for key in limits), limits


def test_a_name_and_notes_longer_than_their_columns_land_cut(crm: CrmPort, seller: Seller) -> None:
    limits = crm.field_limits("opportunity")
    name_limit = limits["deal.name"]
    notes_limit = limits.get("deal.description")
    data = referral(SHARED, title="N" * (name_limit + 50), notes="x" * ((notes_limit or 5000) + 50))
    plan = plan_of(crm, data)

    result = crm.apply_inbound(plan, None, MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.name.startswith("✔ NNN"), "the mark is kept"
    assert len(view.name) == name_limit, "the title is cut"
    if notes_limit is not None:
        assert view.description == "x" * notes_limit
    assert any("cut to" in note for note in plan.notes), "the audit says what was cut"


def _everything_too_long(name: str) -> dict:
    long = "L" * 400
    data = referral(
        name,
        title=long,
        customer=long,
        notes=long * 10,
        team=[member(long, long, "ada@customer.example") | {"phoneNumber": "4" * 400}],
    )
    address = data["customerProfile"].setdefault("address", {})
    for key in ("addressLine1", "addressLine2", "city", "state", "postalCode"):
        address[key] = long
    data["details"].setdefault("requirements", {})["solutions"] = [{"id": "S" * 400, "name": long, "type": long}]
    data["referralProgram"] = long
    data["trackingInfo"] = {"microsoftMsxId": long}
    return data


@pytest.mark.parametrize(("sample", "kind"), [(SHARED, "opportunity"), (LEAD, "lead")])
def test_every_declared_limit_is_one_the_crm_accepts(crm: CrmPort, seller: Seller, sample: str, kind: DealKind) -> None:
    """Everything too long at once: the adapter's declared sizes must be enough for its CRM to take the record."""
    plan = plan_of(crm, _everything_too_long(sample))
    assert plan.kind == kind

    result = crm.apply_inbound(plan, None, MESSAGE)

    view = seller.deal(result.crm_id)
    assert view is not None
    assert view.kind == kind
    if kind == "opportunity" or "name" in seller.lead_fields:
        assert len(view.name) == crm.field_limits(kind)["deal.name"]
    if kind == "opportunity" and "account.name" in crm.field_limits(kind):
        [account] = seller.accounts().values()
        assert len(account.name) == crm.field_limits(kind)["account.name"]

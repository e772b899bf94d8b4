"""State rules and the WinOpportunity / LoseOpportunity actions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import (
    GUID_A,
    error_of,
    make_opportunity,
)


def test_opportunity_cannot_be_closed_by_patch_or_created_closed(client: httpx.Client, sim: DataverseSimulator):
    opportunity_id = make_opportunity(client)

    won = client.patch(f"/opportunities({opportunity_id})", json={"statecode": 1, "statuscode": 3})
    created_closed = client.post("/opportunities", json={"name": "x", "statecode": 1, "statuscode": 3})

    assert won.status_code == 400
    assert "WinOpportunity" in error_of(won)["message"]
    assert created_closed.status_code == 400
    assert sim.get("opportunities", opportunity_id)["statecode"] == 0  # type: ignore[index]
    assert len(sim.records("opportunities")) == 1


def test_invalid_state_status_pair_is_rejected(client: httpx.Client):
    opportunity_id = make_opportunity(client)

    response = client.patch(f"/opportunities({opportunity_id})", json={"statuscode": 3})
    on_hold = client.patch(f"/opportunities({opportunity_id})", json={"statuscode": 2})

    assert response.status_code == 400
    assert "not a valid status code" in error_of(response)["message"]
    assert on_hold.status_code == 204


def test_win_opportunity_closes_and_records_opportunityclose(client: httpx.Client, sim: DataverseSimulator):
    opportunity_id = make_opportunity(client, estimatedvalue=900)
    before = sim.get("opportunities", opportunity_id)

    response = client.post(
        "/WinOpportunity",
        json={
            "Status": 3,
            "OpportunityClose": {
                "@odata.type": "Microsoft.Dynamics.CRM.opportunityclose",
                "subject": "Won in Partner Center",
                "opportunityid@odata.bind": f"/opportunities({opportunity_id})",
                "actualrevenue": 1200,
                "actualend": "2026-07-12",
                "description": "closed by sync",
            },
        },
    )

    assert response.status_code == 204
    after = sim.get("opportunities", opportunity_id)
    assert after is not None
    assert before is not None
    assert (after["statecode"], after["statuscode"]) == (1, 3)
    assert after["actualvalue"] == 1200
    assert after["actualclosedate"] == "2026-07-12"
    assert after["versionnumber"] > before["versionnumber"]
    closes = sim.records("opportunitycloses")
    assert len(closes) == 1
    assert closes[0]["_opportunityid_value"] == opportunity_id
    assert closes[0]["subject"] == "Won in Partner Center"
    assert closes[0]["actualrevenue"] == 1200
    assert closes[0]["actualend"] == "2026-07-12"
    assert closes[0]["description"] == "closed by sync"
    assert closes[0]["activityid"]

    again = client.post(
        "/LoseOpportunity",
        json={"Status": 4, "OpportunityClose": {"opportunityid@odata.bind": f"/opportunities({opportunity_id})"}},
    )
    assert again.status_code == 400
    error_of(again)
    assert len(sim.records("opportunitycloses")) == 1


@pytest.mark.parametrize(
    ("action", "status", "target", "expected"),
    [
        ("WinOpportunity", 4, "self", 400),  # a Lost status on Win
        ("LoseOpportunity", 3, "self", 400),  # a Won status on Lose
        ("LoseOpportunity", 5, None, 400),  # no opportunityid@odata.bind
        ("LoseOpportunity", 5, GUID_A, 404),  # no such opportunity
    ],
)
def test_close_actions_validate_input(
    client: httpx.Client, sim: DataverseSimulator, action: str, status: int, target: str | None, expected: int
):
    opportunity_id = make_opportunity(client)
    close: dict[str, Any] = {"subject": "closing"}
    if target is not None:
        close["opportunityid@odata.bind"] = f"/opportunities({opportunity_id if target == 'self' else target})"

    response = client.post(f"/{action}", json={"Status": status, "OpportunityClose": close})

    assert response.status_code == expected
    error_of(response)
    assert sim.get("opportunities", opportunity_id)["statecode"] == 0  # type: ignore[index]
    assert sim.records("opportunitycloses") == []


def test_lose_then_patch_is_rejected_but_reopen_is_allowed(client: httpx.Client, sim: DataverseSimulator):
    opportunity_id = make_opportunity(client)
    lost = client.post(
        "/LoseOpportunity",
        json={"Status": 5, "OpportunityClose": {"opportunityid@odata.bind": f"/opportunities({opportunity_id})"}},
    )
    assert lost.status_code == 204
    assert sim.get("opportunities", opportunity_id)["statuscode"] == 5  # type: ignore[index]

    edit = client.patch(f"/opportunities({opportunity_id})", json={"name": "edited"})
    assert edit.status_code == 400
    error_of(edit)

    reopen = client.patch(
        f"/opportunities({opportunity_id})",
        json={"statecode": 0, "statuscode": 2, "name": "reopened"},
        headers={"If-Match": "*"},
    )
    assert reopen.status_code == 204
    row = sim.get("opportunities", opportunity_id)
    assert row is not None
    assert (row["statecode"], row["statuscode"], row["name"]) == (0, 2, "reopened")


def test_lead_can_be_patched_to_any_valid_state(client: httpx.Client, sim: DataverseSimulator):
    lead_id = sim.insert("leads", {"subject": "L"})

    disqualified = client.patch(f"/leads({lead_id})", json={"statecode": 2, "statuscode": 6})
    invalid = client.patch(f"/leads({lead_id})", json={"statecode": 1, "statuscode": 4})
    default_status = client.patch(f"/leads({lead_id})", json={"statecode": 1})

    assert disqualified.status_code == 204
    assert invalid.status_code == 400
    error_of(invalid)
    assert default_status.status_code == 204
    row = sim.get("leads", lead_id)
    assert row is not None
    assert (row["statecode"], row["statuscode"]) == (1, 3)

"""Round trips per inbound sync on Dynamics 365, counted by the Dataverse simulator and the app.

A new referral costs one ``$batch`` of look-ups and one change set of writes (plus Partner Center's
GET, outside this test); a changed one a GET and a PATCH. The simulator counts a batch as one request
(service protection) and logs its operations; the app counts it as one call and its inner writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from shared.crm.dataverse_client import API_PATH, DataverseClient
from shared.crm.dynamics import DynamicsCrm
from shared.crm.dynamics_fields import dynamics_field_map
from shared.http import ApiError, CallStats, ServiceClient, count_calls
from tests.contract.referrals import MESSAGE, SHARED, known_after, member, plan_of, referral

BATCH = "POST /api/data/v9.2/$batch"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[DataverseSimulator, str]]:
    sim = DataverseSimulator(seed=11)
    server = ServerThread(sim).start()
    yield sim, server.url
    server.stop()


@pytest.fixture
def sim(served: tuple[DataverseSimulator, str]) -> DataverseSimulator:
    served[0].set_faults(None)
    served[0].clear()
    served[0].reset_stats()
    return served[0]


@pytest.fixture
def crm(sim: DataverseSimulator, served: tuple[DataverseSimulator, str]) -> Iterator[DynamicsCrm]:
    http = ServiceClient("dataverse", f"{served[1]}/{API_PATH}", max_attempts=1, timeout=10)
    fields = dynamics_field_map(
        deal_value_field="estimatedvalue",
        deal_currency_field="transactioncurrencyid",
        account_country_field="address1_country",
    )
    yield DynamicsCrm(DataverseClient(http), fields)
    http.close()


def sync(crm: DynamicsCrm, data: dict[str, Any], previous: Any = None) -> tuple[Any, CallStats, Any]:
    plan = plan_of(crm, data)
    with count_calls() as stats:
        result = crm.apply_inbound(plan, previous, MESSAGE)
    return result, stats, plan


def test_a_new_referral_is_one_batch_of_look_ups_and_one_change_set(crm: DynamicsCrm, sim: DataverseSimulator) -> None:
    sync(crm, referral(SHARED, customer="Warm Up Co"))  # the instance learns the currency and navigation names
    sim.reset_stats()

    team = [member("Ann", "One", "ann@second.example"), member("Bob", "Two", "bob@second.example")]
    result, stats, _ = sync(crm, referral(SHARED, customer="Second Customer Ltd", team=team))

    assert result.created
    assert stats.calls["dataverse"] == 2
    assert stats.writes["dataverse"] == 5  # account, two contacts, opportunity, one solution
    assert sim.stats_snapshot()["routes"] == {BATCH: 2}
    inner = [
        (r.method, r.path.split("(")[0].rsplit("/", 1)[-1]) for r in sim.recorded() if r.route.startswith("$batch")
    ]
    assert sorted(inner[:3]) == [("GET", "accounts"), ("GET", "contacts"), ("GET", "opportunities")]
    assert sorted(inner[3:]) == [
        ("PATCH", "accounts"),
        ("PATCH", "contacts"),
        ("PATCH", "contacts"),
        ("PATCH", "cosell_solutions"),
        ("PATCH", "opportunities"),
    ]
    row = sim.get("opportunities", result.crm_id)
    assert row is not None
    account = sim.get("accounts", row["_parentaccountid_value"])
    assert account is not None
    assert account["name"] == "Second Customer Ltd"
    [solution] = [s for s in sim.records("cosell_solutions") if s["_cosell_opportunityid_value"] == result.crm_id]
    assert solution["cosell_solutionidentifier"]


def test_a_cold_instance_adds_only_the_navigation_read(crm: DynamicsCrm, sim: DataverseSimulator) -> None:
    _, stats, _ = sync(crm, referral(SHARED))

    assert stats.calls["dataverse"] == 3  # look-ups (currency included), relationship metadata, writes
    assert sim.stats_snapshot()["total"] == 3


def test_a_changed_referral_is_one_read_and_one_write(crm: DynamicsCrm, sim: DataverseSimulator) -> None:
    data = referral(SHARED)
    first, _, plan = sync(crm, data)
    previous = known_after(first, plan)
    sim.reset_stats()

    data["details"]["dealValue"] = 123456
    result, stats, _ = sync(crm, data, previous)

    assert (stats.calls["dataverse"], stats.writes["dataverse"]) == (2, 1)
    assert [r.method for r in sim.recorded()] == ["GET", "PATCH"]
    assert sim.get("opportunities", result.crm_id)["estimatedvalue"] == 123456


def test_a_new_contact_on_a_known_referral_costs_one_read_more_and_still_one_write(
    crm: DynamicsCrm, sim: DataverseSimulator
) -> None:
    data = referral(SHARED)
    first, _, plan = sync(crm, data)
    sim.reset_stats()

    data["customerProfile"]["team"] = [member("New", "Buyer", "new.buyer@customer.example")]
    result, stats, _ = sync(crm, data, known_after(first, plan))

    assert (stats.calls["dataverse"], stats.writes["dataverse"]) == (3, 2)  # GET, contacts query, one change set
    [contact] = [c for c in sim.records("contacts") if c["emailaddress1"] == "new.buyer@customer.example"]
    assert sim.get("opportunities", result.crm_id)["_parentcontactid_value"] == contact["contactid"]


def test_a_write_the_service_refuses_rolls_back_the_whole_create_and_names_the_column(
    crm: DynamicsCrm, sim: DataverseSimulator
) -> None:
    sync(crm, referral(SHARED, customer="Warm Up Co"))
    accounts, opportunities = len(sim.records("accounts")), len(sim.records("opportunities"))
    crm._fields.tables["solution"]["type"] = "cosell_nosuchcolumn"  # a field map naming a missing column

    with pytest.raises(ApiError, match="The property 'cosell_nosuchcolumn' does not exist") as raised:
        sync(crm, referral(SHARED, customer="Rolled Back Co"))

    assert raised.value.status == 400
    assert len(sim.records("accounts")) == accounts
    assert len(sim.records("opportunities")) == opportunities
    assert not [c for c in sim.records("contacts") if "Rolled" in str(c)]


def test_account_candidates_are_a_few_rows_not_the_whole_postal_code(crm: DynamicsCrm, sim: DataverseSimulator) -> None:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for number in range(520):
        sim.insert("accounts", {"name": f"{letters[number % 26]}{number} Trading", "address1_postalcode": "98052"})
    existing = sim.insert("accounts", {"name": "CONTOSO INC", "address1_postalcode": "98052"})
    sim.reset_stats()

    result, _, _ = sync(crm, referral(SHARED, customer="Contoso, Inc.", postal_code="98052"))

    assert sim.get("opportunities", result.crm_id)["_parentaccountid_value"] == existing
    [query] = [r.query for r in sim.recorded("GET", "/api/data/v9.2/accounts")]
    candidates = sim.records("accounts")
    matched = _rows_matching(crm, sim, parse_qs(query)["$filter"][0])
    assert existing in matched
    assert len(matched) <= 25, f"{len(matched)} of {len(candidates)} accounts read"


def _rows_matching(crm: DynamicsCrm, sim: DataverseSimulator, odata_filter: str) -> list[str]:
    """The ids the adapter's candidate filter selects, asked of the simulator again (all pages)."""
    client: DataverseClient = crm._dv
    return [str(r["accountid"]) for r in client.query("accounts", select=["accountid"], filter=odata_filter)]

"""Change detection: modifiedon / versionnumber on every write, watermark queries, lost answers."""

from __future__ import annotations

import httpx
import pytest
from werkzeug.test import Client

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import (
    API,
    follow_pages,
)


def test_modifiedon_watermark_query_with_sync_flag_pages_in_order(client: httpx.Client, sim: DataverseSimulator):
    seeded = [
        ("before", "2026-11-21T09:59:59Z", True),
        ("tie-1", "2026-11-21T10:00:00Z", True),
        ("tie-2", "2026-11-21T10:00:00.900Z", True),  # second precision: stored as 10:00:00Z
        ("not synced", "2026-11-21T10:00:00Z", False),
        ("offset", "2026-11-21T11:00:01+01:00", True),  # 10:00:01Z
        ("later", "2026-11-22T08:00:00Z", True),
        ("unset flag", "2026-11-22T08:00:00Z", None),
    ]
    ids = {}
    for name, modified, sync in seeded:
        ids[name] = sim.insert(
            "opportunities", {"name": name, "modifiedon": modified, "cosell_syncwithpartnercenter": sync}
        )
    assert sim.get("opportunities", ids["tie-2"])["modifiedon"] == "2026-11-21T10:00:00Z"  # type: ignore[index]
    assert sim.get("opportunities", ids["offset"])["modifiedon"] == "2026-11-21T10:00:01Z"  # type: ignore[index]
    params = {
        "$select": "name,modifiedon",
        "$filter": "modifiedon ge 2026-11-21T10:00:00Z and cosell_syncwithpartnercenter eq true",
        "$orderby": "modifiedon asc,opportunityid asc",
    }

    pages = follow_pages(client, "/opportunities", params, 2)

    got = [(r["modifiedon"], r["opportunityid"]) for page in pages for r in page]
    expected = sorted(
        (sim.get("opportunities", ids[n])["modifiedon"], ids[n])  # type: ignore[index]
        for n in ("tie-1", "tie-2", "offset", "later")
    )
    assert got == expected
    assert [len(p) for p in pages] == [2, 2]


def test_every_write_bumps_modifiedon_and_versionnumber_but_child_rows_leave_the_parent_alone(
    client: httpx.Client, sim: DataverseSimulator
):
    old = "2020-01-01T00:00:00Z"
    names = ("patched", "upserted", "won", "parent")
    ids = {n: sim.insert("opportunities", {"name": n, "cosell_referralid": f"R-{n}", "modifiedon": old}) for n in names}
    before = {n: sim.get("opportunities", i) for n, i in ids.items()}

    assert (
        client.patch(f"/opportunities({ids['patched']})", json={"name": "p2"}, headers={"If-Match": "*"}).status_code
        == 204
    )
    assert client.patch("/opportunities(cosell_referralid='R-upserted')", json={"name": "u2"}).status_code == 204
    won = client.post(
        "/WinOpportunity",
        json={"Status": 3, "OpportunityClose": {"opportunityid@odata.bind": f"/opportunities({ids['won']})"}},
    )
    assert won.status_code == 204
    # Child rows: create, update and delete a solution of "parent".
    solution = (
        client.post(
            "/cosell_solutions",
            json={"cosell_name": "S", "cosell_OpportunityId@odata.bind": f"/opportunities({ids['parent']})"},
        )
        .headers["OData-EntityId"]
        .rsplit("(", 1)[1]
        .rstrip(")")
    )
    assert client.patch(f"/cosell_solutions({solution})", json={"cosell_name": "S2"}).status_code == 204
    assert client.delete(f"/cosell_solutions({solution})").status_code == 204

    after = {n: sim.get("opportunities", i) for n, i in ids.items()}
    for name in ("patched", "upserted", "won"):
        assert after[name]["modifiedon"] > old, name  # type: ignore[index]
        assert after[name]["versionnumber"] > before[name]["versionnumber"], name  # type: ignore[index]
        assert after[name]["createdon"] == before[name]["createdon"], name  # type: ignore[index]
    assert after["parent"] == before["parent"]

    since = client.get(
        "/opportunities",
        params={"$select": "name", "$filter": "modifiedon ge 2020-01-01T00:00:01Z", "$orderby": "modifiedon asc"},
    ).json()
    assert {r["opportunityid"] for r in since["value"]} == {ids["patched"], ids["upserted"], ids["won"]}


def test_two_writes_in_one_second_are_both_found_by_ge_the_earlier_value(client: httpx.Client, sim: DataverseSimulator):
    first_id, second_id = sim.insert("accounts", {"name": "one"}), sim.insert("accounts", {"name": "two"})
    client.patch(f"/accounts({first_id})", json={"name": "one!"})
    client.patch(f"/accounts({second_id})", json={"name": "two!"})
    first = sim.get("accounts", first_id)["modifiedon"]  # type: ignore[index]
    second = sim.get("accounts", second_id)["modifiedon"]  # type: ignore[index]

    found = client.get("/accounts", params={"$filter": f"modifiedon ge {first}", "$select": "name"}).json()

    assert second >= first
    assert {r["accountid"] for r in found["value"]} == {first_id, second_id}


def test_modifiedon_does_not_go_backwards_when_the_clock_does():
    sim = DataverseSimulator()  # its own clock state, so the shared simulator is not affected
    app = Client(sim)
    clock = iter(["2099-01-01T10:00:05Z", "2099-01-01T10:00:03Z", "2099-01-01T10:00:04Z", "2099-01-01T10:00:07Z"])
    sim.clock = lambda: next(clock)

    first = sim.insert("accounts", {"name": "first"})  # 10:00:05
    second = sim.insert("accounts", {"name": "second"})  # the clock steps back to 10:00:03
    patched = app.patch(f"{API}/accounts({first})", json={"name": "first!"})  # 10:00:04
    third = sim.insert("accounts", {"name": "third"})  # 10:00:07

    assert patched.status_code == 204
    stamps = [sim.get("accounts", i)["modifiedon"] for i in (second, first, third)]  # type: ignore[index]
    assert stamps == ["2099-01-01T10:00:05Z", "2099-01-01T10:00:05Z", "2099-01-01T10:00:07Z"]
    listed = app.get(f"{API}/accounts", query_string={"$filter": "modifiedon ge 2099-01-01T10:00:05Z"}).get_json()
    assert len(listed["value"]) == 3


def test_commit_timeout_then_retried_upsert_leaves_one_record(server: ServerThread, sim: DataverseSimulator):
    sim.set_faults({"commit_timeout_rate": 1.0, "timeout_seconds": 1, "max_faults": 1, "routes": ["PATCH"]})
    url = f"{server.url}{API}/opportunities(cosell_referralid='LOST')"

    with pytest.raises(httpx.ReadTimeout):
        httpx.patch(url, json={"name": "first try"}, timeout=0.3)
    retry = httpx.patch(url, json={"name": "retry"}, headers={"Prefer": "return=representation"}, timeout=10)

    assert retry.status_code == 200  # an update: the first attempt had been committed
    rows = sim.records("opportunities")
    assert [(r["cosell_referralid"], r["name"]) for r in rows] == [("LOST", "retry")]

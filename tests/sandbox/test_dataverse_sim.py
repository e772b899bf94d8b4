"""The Dataverse simulator over real HTTP: wire format, write semantics and the service's rules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from werkzeug.test import Client

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator

API = "/api/data/v9.2"
GUID_A = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def _served() -> Iterator[tuple[DataverseSimulator, ServerThread]]:
    """One server per module (stopping one costs half a second); each test gets it wiped below."""
    simulator = DataverseSimulator(seed=7)
    thread = ServerThread(simulator).start()
    yield simulator, thread
    thread.stop()


@pytest.fixture
def sim(_served: tuple[DataverseSimulator, ServerThread]) -> DataverseSimulator:
    simulator = _served[0]
    simulator.set_faults(None)
    simulator.clear()
    simulator.reset_stats()
    return simulator


@pytest.fixture
def server(sim: DataverseSimulator, _served: tuple[DataverseSimulator, ServerThread]) -> ServerThread:
    return _served[1]


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    headers = {"Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0"}
    with httpx.Client(base_url=server.url + API, headers=headers, timeout=10) as c:
        yield c


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"].startswith("0x")
    return body["error"]


def make_opportunity(client: httpx.Client, **fields: Any) -> str:
    response = client.post(
        "/opportunities",
        json={"name": "Deal", **fields},
        headers={"Prefer": "return=representation"},
        params={"$select": "opportunityid"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["opportunityid"])


# ----------------------------------------------------------------------------- create


def test_create_returns_204_and_odata_entity_id(client: httpx.Client, sim: DataverseSimulator, server: ServerThread):
    response = client.post("/accounts", json={"name": "Contoso", "address1_country": "US"})

    assert response.status_code == 204
    assert response.content == b""
    entity_id = response.headers["OData-EntityId"]
    assert entity_id.startswith(f"{server.url}{API}/accounts(")
    record_id = entity_id.rsplit("(", 1)[1].rstrip(")")
    stored = sim.get("accounts", record_id)
    assert stored is not None
    assert stored["name"] == "Contoso"
    assert (stored["statecode"], stored["statuscode"]) == (0, 1)
    assert stored["createdon"].endswith("Z")
    assert len(stored["createdon"]) == len("2026-01-01T00:00:00Z")


def test_create_with_representation_returns_201_honouring_select(client: httpx.Client):
    response = client.post(
        "/opportunities",
        json={"opportunityid": GUID_A, "name": "Big deal", "estimatedvalue": 1000, "estimatedclosedate": "2026-07-01"},
        headers={"Prefer": "return=representation"},
        params={"$select": "name,estimatedvalue"},
    )

    assert response.status_code == 201
    assert "OData-EntityId" not in response.headers
    body = response.json()
    assert body["opportunityid"] == GUID_A  # the key from the body is used
    assert body["name"] == "Big deal"
    assert body["estimatedvalue"] == 1000
    assert "estimatedclosedate" not in body  # not selected
    assert body["@odata.etag"].startswith('W/"')
    assert response.headers["ETag"] == body["@odata.etag"]
    assert body["@odata.context"].endswith("$metadata#opportunities(name,estimatedvalue)/$entity")


def test_get_without_select_returns_all_columns_with_nulls_and_default_currency(
    client: httpx.Client, sim: DataverseSimulator
):
    opportunity_id = make_opportunity(client)

    body = client.get(f"/opportunities({opportunity_id})").json()

    assert body["description"] is None
    assert body["_parentaccountid_value"] is None
    assert body["_transactioncurrencyid_value"] == sim.currency_id("USD")
    assert (body["statecode"], body["statuscode"]) == (0, 1)
    assert isinstance(body["versionnumber"], int)


def test_unknown_property_is_rejected(client: httpx.Client, sim: DataverseSimulator):
    response = client.post("/opportunities", json={"name": "x", "foo": 1})

    assert response.status_code == 400
    assert (
        "The property 'foo' does not exist on type 'Microsoft.Dynamics.CRM.opportunity'"
        in error_of(response)["message"]
    )
    assert sim.records("opportunities") == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"estimatedclosedate": "07/01/2026"}, "Edm.Date"),
        ({"estimatedclosedate": "2026-07-01T00:00:00Z"}, "Edm.Date"),
        ({"estimatedvalue": "1000"}, "Edm.Decimal"),
        ({"cosell_visible": "yes"}, "Edm.Boolean"),
        ({"cosell_referralid": "x" * 101}, "maximum allowed length of '100'"),
        ({"closeprobability": 101}, "outside the valid range"),
        ({"_parentaccountid_value": GUID_A}, "Use Navigation properties instead"),
    ],
)
def test_bad_values_are_rejected(client: httpx.Client, body: dict[str, Any], fragment: str):
    response = client.post("/opportunities", json={"name": "x", **body})

    assert response.status_code == 400
    assert fragment in error_of(response)["message"]


# ----------------------------------------------------------------------------- lookups


def test_odata_bind_stores_lookup_value_and_expand_returns_related_record(client: httpx.Client):
    account_id = client.post("/accounts", json={"name": "Fabrikam", "address1_country": "DE"}).headers["OData-EntityId"]
    account_guid = account_id.rsplit("(", 1)[1].rstrip(")")
    contact = client.post(
        "/contacts",
        json={
            "firstname": "Ada",
            "lastname": "Lovelace",
            "parentcustomerid_account@odata.bind": f"accounts({account_guid})",
        },
        headers={"Prefer": "return=representation"},
    ).json()
    assert contact["fullname"] == "Ada Lovelace"
    assert contact["_parentcustomerid_value"] == account_guid

    opportunity_id = make_opportunity(
        client,
        **{
            "parentaccountid@odata.bind": f"/accounts({account_guid.upper()})",
            "customerid_account@odata.bind": f"/accounts({account_guid})",
            "parentcontactid@odata.bind": f"/contacts({contact['contactid']})",
            "transactioncurrencyid@odata.bind": "/transactioncurrencies(" + _currency(client, "EUR") + ")",
        },
    )

    body = client.get(
        f"/opportunities({opportunity_id})",
        params={
            "$select": "name,_parentaccountid_value,_customerid_value",
            "$expand": "parentaccountid($select=name,address1_country),customerid_contact,originatingleadid",
        },
        headers={"Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'},
    ).json()
    assert body["_parentaccountid_value"] == account_guid  # stored lowercase
    assert body["_customerid_value"] == account_guid
    assert body["_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert body["parentaccountid"]["name"] == "Fabrikam"
    assert body["parentaccountid"]["address1_country"] == "DE"
    assert body["parentaccountid"]["accountid"] == account_guid
    assert "telephone1" not in body["parentaccountid"]
    assert body["customerid_contact"] is None  # customer is an account, not a contact
    assert body["originatingleadid"] is None


def _currency(client: httpx.Client, iso: str) -> str:
    rows = client.get("/transactioncurrencies", params={"$filter": f"isocurrencycode eq '{iso}'"}).json()["value"]
    assert len(rows) == 1
    return str(rows[0]["transactioncurrencyid"])


def test_bind_by_alternate_key(client: httpx.Client):
    opportunity_id = make_opportunity(client, cosell_referralid="REF-1")

    response = client.post(
        "/cosell_solutions",
        json={"cosell_name": "Azure", "cosell_OpportunityId@odata.bind": "/opportunities(cosell_referralid='REF-1')"},
        headers={"Prefer": "return=representation"},
    )

    assert response.status_code == 201
    assert response.json()["_cosell_opportunityid_value"] == opportunity_id


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"ParentAccountId@odata.bind": "/accounts(GUID)"}, 400),  # nav props are case-sensitive
        ({"parentaccount@odata.bind": "/accounts(GUID)"}, 400),
        ({"parentaccountid@odata.bind": "/contacts(GUID)"}, 400),  # wrong target table
        ({"parentaccountid@odata.bind": "accounts"}, 400),
        ({"parentaccountid@odata.bind": f"/accounts({GUID_A})"}, 404),  # no such account
    ],
)
def test_bad_bind_is_rejected(client: httpx.Client, sim: DataverseSimulator, body: dict[str, str], status: int):
    account_guid = sim.insert("accounts", {"name": "A"})
    payload = {k: v.replace("GUID", account_guid) for k, v in body.items()}

    response = client.post("/opportunities", json={"name": "x", **payload})

    assert response.status_code == status
    error_of(response)
    assert sim.records("opportunities") == []


# ----------------------------------------------------------------------------- users and owners


def test_whoami_user_is_the_seeded_systemuser(client: httpx.Client, sim: DataverseSimulator):
    who = client.get("/WhoAmI").json()
    assert who["UserId"] == sim.user_id

    response = client.get(
        f"/systemusers({who['UserId']})",
        params={"$select": "fullname,firstname,lastname,internalemailaddress,domainname"},
    )

    assert response.status_code == 200
    user = response.json()
    assert user["fullname"] == "Sandbox Seller"
    assert (user["firstname"], user["lastname"]) == ("Sandbox", "Seller")
    assert user["internalemailaddress"] == "seller@partner.example"
    assert user["domainname"] == "seller@partner.example"
    assert user["systemuserid"] == user["ownerid"] == sim.user_id  # principal inheritance: both keys
    assert [u["systemuserid"] for u in sim.records("systemusers")] == [sim.user_id]  # back after clear()


@pytest.mark.parametrize(
    ("entity_set", "body"),
    [
        ("accounts", {"name": "A"}),
        ("contacts", {"lastname": "C"}),
        ("opportunities", {"name": "O"}),
        ("leads", {"subject": "L"}),
    ],
)
def test_new_rows_are_owned_by_the_caller(
    client: httpx.Client, sim: DataverseSimulator, entity_set: str, body: dict[str, Any]
):
    response = client.post(
        f"/{entity_set}",
        json=body,
        headers={"Prefer": 'return=representation,odata.include-annotations="Microsoft.Dynamics.CRM.*"'},
    )

    assert response.status_code == 201
    row = response.json()
    assert row["_ownerid_value"] == sim.user_id
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "systemuser"
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "ownerid"
    seeded = sim.get(entity_set, sim.insert(entity_set, body))
    assert seeded is not None
    assert seeded["_ownerid_value"] == sim.user_id  # direct inserts too


def test_ownerid_bind_assigns_another_user_and_expands(client: httpx.Client, sim: DataverseSimulator):
    created = client.post(
        "/systemusers",
        json={"firstname": "Other", "lastname": "Seller", "internalemailaddress": "other@partner.example"},
    )
    assert created.status_code == 204
    other = created.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    opportunity_id = make_opportunity(client, **{"ownerid@odata.bind": f"/systemusers({other})"})
    mine = make_opportunity(client)

    expanded = client.get(
        f"/opportunities({opportunity_id})",
        params={
            "$select": "name,_ownerid_value,_owninguser_value",
            "$expand": "owninguser($select=fullname,internalemailaddress)",
        },
    ).json()
    assert expanded["_ownerid_value"] == expanded["_owninguser_value"] == other
    assert expanded["owninguser"]["fullname"] == "Other Seller"
    assert expanded["owninguser"]["internalemailaddress"] == "other@partner.example"
    assert expanded["owninguser"]["systemuserid"] == other

    by_owner = client.get("/opportunities", params={"$filter": f"_ownerid_value eq {other}", "$select": "name"})
    assert [r["opportunityid"] for r in by_owner.json()["value"]] == [opportunity_id]
    by_name = client.get("/opportunities", params={"$filter": "owninguser/fullname eq 'Sandbox Seller'"}).json()
    assert [r["opportunityid"] for r in by_name["value"]] == [mine]

    reassigned = client.patch(
        f"/opportunities({opportunity_id})", json={"ownerid@odata.bind": f"/systemusers({sim.user_id})"}
    )
    assert reassigned.status_code == 204
    reassigned_row = sim.get("opportunities", opportunity_id)
    assert reassigned_row is not None
    assert reassigned_row["_ownerid_value"] == reassigned_row["_owninguser_value"] == sim.user_id


@pytest.mark.parametrize(
    ("entity_set", "body", "status"),
    [
        ("opportunities", {"name": "x", "ownerid@odata.bind": "/accounts(ACCOUNT)"}, 400),  # not a user
        ("opportunities", {"name": "x", "ownerid@odata.bind": f"/systemusers({GUID_A})"}, 404),
        ("opportunities", {"name": "x", "ownerid@odata.bind": None}, 400),  # an owner is required
        ("opportunities", {"name": "x", "OwnerId@odata.bind": "/systemusers(USER)"}, 400),  # case-sensitive
        ("opportunities", {"name": "x", "_ownerid_value": "USER"}, 400),  # lookups are set by bind
        ("cosell_solutions", {"cosell_name": "x", "ownerid@odata.bind": "/systemusers(USER)"}, 400),
    ],
)
def test_bad_owner_is_rejected(
    client: httpx.Client, sim: DataverseSimulator, entity_set: str, body: dict[str, Any], status: int
):
    account = sim.insert("accounts", {"name": "A"})
    payload = {
        k: v.replace("ACCOUNT", account).replace("USER", sim.user_id) if isinstance(v, str) else v
        for k, v in body.items()
    }

    response = client.post(f"/{entity_set}", json=payload)

    assert response.status_code == status
    error_of(response)
    assert sim.records(entity_set) == []


# ----------------------------------------------------------------------------- collection-valued $expand

SOLUTIONS = "cosell_opportunity_cosell_solution_OpportunityId"  # the relationship SchemaName


def _solution(sim: DataverseSimulator, opportunity_id: str, identifier: str, name: str) -> str:
    return sim.insert(
        "cosell_solutions",
        {
            "cosell_solutionidentifier": identifier,
            "cosell_name": name,
            "cosell_OpportunityId@odata.bind": f"/opportunities({opportunity_id})",
        },
    )


def test_collection_valued_expand_returns_each_opportunitys_solutions(
    client: httpx.Client, sim: DataverseSimulator, server: ServerThread
):
    first = sim.insert("opportunities", {"name": "A first"})
    second = sim.insert("opportunities", {"name": "B second"})
    elsewhere = sim.insert("opportunities", {"name": "C elsewhere"})
    solution_ids = {_solution(sim, first, "SOL-1", "Azure Migrate"), _solution(sim, first, "SOL-2", "Defender")}
    _solution(sim, elsewhere, "SOL-3", "Other")

    response = client.get(
        "/opportunities",
        params={
            "$select": "name",
            "$filter": "name ne 'C elsewhere'",
            "$orderby": "name asc",
            "$expand": f"{SOLUTIONS}($select=cosell_solutionidentifier,cosell_name)",
        },
    )

    assert response.status_code == 200, response.text
    rows = response.json()["value"]
    assert [r["name"] for r in rows] == ["A first", "B second"]
    solutions = rows[0][SOLUTIONS]
    assert {s["cosell_solutionid"] for s in solutions} == solution_ids
    assert [s["cosell_solutionid"] for s in solutions] == sorted(solution_ids)  # by key when no $orderby
    assert {s["cosell_solutionidentifier"]: s["cosell_name"] for s in solutions} == {
        "SOL-1": "Azure Migrate",
        "SOL-2": "Defender",
    }
    assert all(
        set(s)
        == {
            "@odata.etag",
            "cosell_solutionidentifier",
            "cosell_name",
            "_cosell_opportunityid_value",
            "cosell_solutionid",
        }
        for s in solutions
    )
    assert all(s["_cosell_opportunityid_value"] == first for s in solutions)  # the back-reference comes unasked
    assert rows[1][SOLUTIONS] == []

    link = rows[0][f"{SOLUTIONS}@odata.nextLink"]
    assert link.startswith(f"{server.url}{API}/opportunities({first})/{SOLUTIONS}?$select=")
    followed = client.get(link)
    assert followed.status_code == 200
    assert [s["cosell_solutionid"] for s in followed.json()["value"]] == [s["cosell_solutionid"] for s in solutions]
    assert rows[1][f"{SOLUTIONS}@odata.nextLink"].endswith(
        f"/opportunities({second})/{SOLUTIONS}?$select=cosell_solutionidentifier,cosell_name"
    )


def test_combined_single_and_collection_valued_expand(client: httpx.Client, sim: DataverseSimulator):
    account = sim.insert("accounts", {"name": "Fabrikam", "address1_country": "DE"})
    contact = sim.insert("contacts", {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@x.example"})
    opportunity = make_opportunity(
        client,
        **{
            "parentaccountid@odata.bind": f"/accounts({account})",
            "parentcontactid@odata.bind": f"/contacts({contact})",
            "cosell_syncwithpartnercenter": True,
        },
    )
    _solution(sim, opportunity, "SOL-9", "Sentinel")
    expand = (
        "parentaccountid($select=name,address1_country),parentcontactid($select=emailaddress1),"
        f"owninguser($select=fullname,internalemailaddress),{SOLUTIONS}($select=cosell_solutionidentifier,cosell_name)"
    )

    listed = client.get("/opportunities", params={"$select": "name", "$expand": expand})
    single = client.get(f"/opportunities({opportunity})", params={"$select": "name", "$expand": expand})

    assert listed.status_code == 200, listed.text
    assert single.status_code == 200, single.text
    for row in (listed.json()["value"][0], single.json()):
        assert row["parentaccountid"] == {
            "@odata.etag": row["parentaccountid"]["@odata.etag"],
            "name": "Fabrikam",
            "address1_country": "DE",
            "accountid": account,
        }
        assert row["parentcontactid"]["emailaddress1"] == "ada@x.example"
        assert row["owninguser"]["fullname"] == "Sandbox Seller"
        assert row["owninguser"]["internalemailaddress"] == "seller@partner.example"
        assert [(s["cosell_solutionidentifier"], s["cosell_name"]) for s in row[SOLUTIONS]] == [("SOL-9", "Sentinel")]


def test_collection_valued_expand_options_filter_orderby_top(client: httpx.Client, sim: DataverseSimulator):
    opportunity = sim.insert("opportunities", {"name": "Deal"})
    for identifier, name in [("S1", "b, with comma"), ("S2", "a"), ("S3", "c"), ("S4", "skip me")]:
        _solution(sim, opportunity, identifier, name)

    response = client.get(
        f"/opportunities({opportunity})",
        params={
            "$select": "name",
            "$expand": (
                f"{SOLUTIONS}($select=cosell_name;$filter=cosell_name ne 'skip me';$orderby=cosell_name desc;$top=2)"
            ),
        },
    )

    assert response.status_code == 200, response.text
    assert [s["cosell_name"] for s in response.json()[SOLUTIONS]] == ["c", "b, with comma"]
    link = response.json()[f"{SOLUTIONS}@odata.nextLink"]
    assert "$filter=cosell_name%20ne%20'skip%20me'" in link
    followed = client.get(link)  # the same options, so the same rows
    assert followed.status_code == 200, followed.text
    assert [s["cosell_name"] for s in followed.json()["value"]] == ["c", "b, with comma"]
    assert client.get(f"/opportunities({GUID_A})/{SOLUTIONS}").status_code == 404


@pytest.mark.parametrize(
    "expand",
    [
        "cosell_solutions",  # the entity set is not a navigation property
        "cosell_opportunity_cosell_solution_opportunityid",  # case-sensitive
        f"{SOLUTIONS}($select=nosuchcolumn)",
        f"{SOLUTIONS}($filter=nosuchcolumn eq 1)",
        f"{SOLUTIONS}($expand=cosell_OpportunityId)",  # nested $expand is not simulated
        "parentaccountid($orderby=name)",  # $orderby/$top only on collection-valued
        "parentaccountid($top=1)",
        f"parentaccountid($select=name),{SOLUTIONS}($select=cosell_name",  # unbalanced
    ],
)
def test_bad_expand_is_400(client: httpx.Client, sim: DataverseSimulator, expand: str):
    sim.insert("opportunities", {"name": "x"})

    response = client.get("/opportunities", params={"$expand": expand})

    assert response.status_code == 400
    assert error_of(response)["code"] == "0x80060888"


def test_collection_expand_is_only_on_opportunities(client: httpx.Client):
    response = client.get("/accounts", params={"$expand": SOLUTIONS})

    assert response.status_code == 400
    assert "Could not find a property named" in error_of(response)["message"]


# ----------------------------------------------------------------------------- modifiedon watermarks


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

    pages = _follow_pages(client, "/opportunities", params, 2)

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


# ----------------------------------------------------------------------------- queries


def test_select_filter_orderby_top_and_count(client: httpx.Client, sim: DataverseSimulator):
    for name, value, state in [("Alpha", 10, 0), ("bravo", 30, 0), ("Charlie", 20, 0), ("Delta", 40, 1)]:
        sim.insert("opportunities", {"name": name, "estimatedvalue": value, "statecode": state})

    response = client.get(
        "/opportunities",
        params={
            "$select": "name,estimatedvalue",
            "$filter": "statecode eq 0 and estimatedvalue ge 15",
            "$orderby": "estimatedvalue desc",
            "$count": "true",
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("/api/data/v9.2/$metadata#opportunities(name,estimatedvalue)")
    assert body["@odata.count"] == 2
    assert [r["name"] for r in body["value"]] == ["bravo", "Charlie"]
    assert set(body["value"][0]) == {"@odata.etag", "name", "estimatedvalue", "opportunityid"}

    top = client.get("/opportunities", params={"$orderby": "name asc", "$top": "2", "$select": "name"}).json()
    assert [r["name"] for r in top["value"]] == ["Alpha", "bravo"]  # case-insensitive collation
    assert "@odata.nextLink" not in top

    insensitive = client.get("/opportunities", params={"$filter": "name eq 'ALPHA'"}).json()
    assert [r["name"] for r in insensitive["value"]] == ["Alpha"]


def test_filter_with_hostile_company_name(client: httpx.Client, sim: DataverseSimulator):
    hostile = "O'Brien & Sons) or (1 eq 1"
    sim.insert("accounts", {"name": hostile})
    sim.insert("accounts", {"name": "Other"})
    sim.insert("accounts", {"name": "O'Brien"})

    escaped = hostile.replace("'", "''")
    good = client.get("/accounts", params={"$filter": f"name eq '{escaped}'", "$select": "name"})
    assert good.status_code == 200
    assert [r["name"] for r in good.json()["value"]] == [hostile]

    wrong = client.get("/accounts", params={"$filter": f"name eq '{hostile}'"})
    assert wrong.status_code == 400
    assert error_of(wrong)["message"].startswith("Syntax error")


def test_query_string_decoding_plus_is_space_and_2b_is_plus(client: httpx.Client, sim: DataverseSimulator):
    sim.insert("accounts", {"name": "A+B"})
    sim.insert("accounts", {"name": "A B"})

    base = str(client.base_url).rstrip("/")
    encoded_plus = client.get(f"{base}/accounts?$filter=name+eq+'A%2BB'").json()
    bare_plus = client.get(f"{base}/accounts?$filter=name%20eq%20'A+B'").json()

    assert [r["name"] for r in encoded_plus["value"]] == ["A+B"]
    assert [r["name"] for r in bare_plus["value"]] == ["A B"]


@pytest.mark.parametrize(
    "params",
    [
        {"$filter": "nosuchcolumn eq 1"},
        {"$filter": "Microsoft.Dynamics.CRM.LastXDays(PropertyName='modifiedon',PropertyValue=1)"},
        {"$select": "name,nosuchcolumn"},
        {"$orderby": "nosuchcolumn"},
        {"$expand": "nosuchnav"},
        {"$skip": "1"},
        {"$top": "0"},
    ],
)
def test_bad_query_options_are_400(client: httpx.Client, params: dict[str, str]):
    response = client.get("/accounts", params=params)

    assert response.status_code == 400
    error_of(response)


def test_filter_through_lookup_navigation(client: httpx.Client, sim: DataverseSimulator):
    contoso = sim.insert("accounts", {"name": "Contoso"})
    other = sim.insert("accounts", {"name": "Other"})
    sim.insert("opportunities", {"name": "one", "parentaccountid@odata.bind": f"/accounts({contoso})"})
    sim.insert("opportunities", {"name": "two", "parentaccountid@odata.bind": f"/accounts({other})"})
    sim.insert("opportunities", {"name": "three"})

    by_name = client.get("/opportunities", params={"$filter": "parentaccountid/name eq 'contoso'"}).json()
    by_id = client.get("/opportunities", params={"$filter": f"_parentaccountid_value eq {other}"}).json()

    assert [r["name"] for r in by_name["value"]] == ["one"]
    assert [r["name"] for r in by_id["value"]] == ["two"]


def _follow_pages(client: httpx.Client, url: str, params: dict[str, str] | None, page_size: int) -> list[list[dict]]:
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    pages: list[list[dict]] = []
    response = client.get(url, params=params, headers=headers)  # (httpx drops the URL's query if params={})
    while True:
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == f"odata.maxpagesize={page_size}"
        body = response.json()
        pages.append(body["value"])
        next_link = body.get("@odata.nextLink")
        if not next_link:
            return pages
        assert len(pages) < 20, "paging does not terminate"
        response = client.get(next_link, headers=headers)  # used verbatim


def test_paging_with_maxpagesize_returns_every_row_once(
    client: httpx.Client, sim: DataverseSimulator, server: ServerThread
):
    ids = {sim.insert("accounts", {"name": f"Account {i}"}) for i in range(5)}

    first = client.get("/accounts", params={"$select": "name", "$top": "1"}, headers={"Prefer": "odata.maxpagesize=2"})
    next_link = first.json()["@odata.nextLink"]
    assert next_link.startswith(f"{server.url}{API}/accounts?")
    assert "$skiptoken=" in next_link
    assert len(first.json()["value"]) == 2  # $top is ignored with maxpagesize

    pages = _follow_pages(client, "/accounts", {"$select": "name"}, 2)

    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [r["accountid"] for page in pages for r in page]
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == ids
    assert all(set(r) == {"@odata.etag", "name", "accountid"} for page in pages for r in page)


def test_paging_with_orderby_nulls_and_desc_and_a_write_between_pages(client: httpx.Client, sim: DataverseSimulator):
    names = ["b", None, "a", "c", None, "b", "d"]
    for i, name in enumerate(names):
        sim.insert("accounts", {"name": name, "accountnumber": f"N{i}"})
    params = {"$orderby": "name desc,accountnumber asc", "$select": "name,accountnumber"}
    expected = [r["accountnumber"] for r in client.get("/accounts", params=params).json()["value"]]
    assert expected == ["N6", "N3", "N0", "N5", "N2", "N1", "N4"]

    headers = {"Prefer": "odata.maxpagesize=3"}
    first = client.get("/accounts", params=params, headers=headers).json()
    # A row inserted before the cursor must not shift or duplicate later pages.
    sim.insert("accounts", {"name": "z", "accountnumber": "NEW"})
    rest = _follow_pages(client, first["@odata.nextLink"], None, 3)

    got = [r["accountnumber"] for r in first["value"]] + [r["accountnumber"] for page in rest for r in page]
    assert got == expected


def test_bad_skiptoken_is_400(client: httpx.Client):
    response = client.get("/accounts", params={"$skiptoken": "garbage!"})

    assert response.status_code == 400
    error_of(response)


# ----------------------------------------------------------------------------- single records and alternate keys


def test_get_by_alternate_key_with_doubled_quote(client: httpx.Client, sim: DataverseSimulator):
    record_id = sim.insert("leads", {"subject": "Lead", "cosell_referralid": "O'Brien"})

    response = client.get("/leads(cosell_referralid='O''Brien')", params={"$select": "subject"})

    assert response.status_code == 200
    body = response.json()
    assert body["leadid"] == record_id
    assert body["subject"] == "Lead"
    assert response.headers["ETag"] == body["@odata.etag"]


def test_get_missing_is_404_with_error_body(client: httpx.Client):
    by_id = client.get(f"/accounts({GUID_A})")
    by_key = client.get("/opportunities(cosell_referralid='missing')")
    bad_key = client.get("/accounts(name='x')")

    assert by_id.status_code == 404
    assert GUID_A in error_of(by_id)["message"]
    assert by_key.status_code == 404
    error_of(by_key)
    assert bad_key.status_code == 400
    assert "key in the request URI is not valid" in error_of(bad_key)["message"]


def test_conditional_get_returns_304_for_current_etag(client: httpx.Client, sim: DataverseSimulator):
    record_id = sim.insert("accounts", {"name": "A"})
    etag = client.get(f"/accounts({record_id})").headers["ETag"]

    response = client.get(f"/accounts({record_id})", headers={"If-None-Match": etag})

    assert response.status_code == 304


def test_upsert_by_alternate_key_creates_then_updates(client: httpx.Client, sim: DataverseSimulator):
    url = "/opportunities(cosell_referralid='REF-42')"
    prefer = {"Prefer": "return=representation"}

    created = client.patch(url, json={"name": "Referral 42"}, headers=prefer, params={"$select": "opportunityid"})
    assert created.status_code == 201
    record_id = created.json()["opportunityid"]

    updated = client.patch(url, json={"estimatedvalue": 500, "cosell_referralid": "IGNORED"}, headers=prefer)
    assert updated.status_code == 200
    assert updated.json()["opportunityid"] == record_id
    assert updated.json()["estimatedvalue"] == 500
    assert updated.json()["cosell_referralid"] == "REF-42"  # body key values are discarded on update

    plain = client.patch(url, json={"name": "Renamed"})
    assert plain.status_code == 204
    assert plain.headers["OData-EntityId"].endswith(f"/opportunities({record_id})")

    rows = sim.records("opportunities")
    assert len(rows) == 1
    assert rows[0]["name"] == "Renamed"
    assert rows[0]["cosell_referralid"] == "REF-42"


def test_upsert_by_guid_creates_with_that_id(client: httpx.Client, sim: DataverseSimulator):
    response = client.patch(f"/accounts({GUID_A})", json={"name": "Upserted"})

    assert response.status_code == 204
    assert sim.get("accounts", GUID_A) is not None


def test_versionnumber_and_etag_change_on_every_write(client: httpx.Client, sim: DataverseSimulator):
    record_id = sim.insert("accounts", {"name": "A"})
    first = client.get(f"/accounts({record_id})").json()

    assert client.patch(f"/accounts({record_id})", json={"name": "B"}, headers={"If-Match": "*"}).status_code == 204
    second = client.get(f"/accounts({record_id})").json()

    assert second["versionnumber"] > first["versionnumber"]
    assert second["@odata.etag"] == f'W/"{second["versionnumber"]}"'
    assert second["modifiedon"] >= first["modifiedon"]


def test_if_match_etag_mismatch_is_412(client: httpx.Client, sim: DataverseSimulator):
    record_id = sim.insert("accounts", {"name": "A"})
    etag = client.get(f"/accounts({record_id})").json()["@odata.etag"]
    assert client.patch(f"/accounts({record_id})", json={"name": "B"}, headers={"If-Match": etag}).status_code == 204

    stale = client.patch(f"/accounts({record_id})", json={"name": "C"}, headers={"If-Match": etag})

    assert stale.status_code == 412
    error = error_of(stale)
    assert error["code"] == "0x80060882"
    assert error["message"] == "The version of the existing record doesn't match the RowVersion property provided."
    assert sim.get("accounts", record_id)["name"] == "B"  # type: ignore[index]


def test_if_match_star_does_not_create(client: httpx.Client, sim: DataverseSimulator):
    response = client.patch(f"/accounts({GUID_A})", json={"name": "x"}, headers={"If-Match": "*"})

    assert response.status_code == 404
    error_of(response)
    assert sim.records("accounts") == []


def test_if_none_match_star_is_create_only(client: httpx.Client, sim: DataverseSimulator):
    url = "/leads(cosell_referralid='L-1')"
    assert client.patch(url, json={"subject": "first"}, headers={"If-None-Match": "*"}).status_code == 204

    again = client.patch(url, json={"subject": "second"}, headers={"If-None-Match": "*"})

    assert again.status_code == 412
    assert error_of(again)["message"] == "A record with matching key values already exists."
    assert [r["subject"] for r in sim.records("leads")] == ["first"]


def test_duplicate_alternate_key_on_create_is_412(client: httpx.Client, sim: DataverseSimulator):
    make_opportunity(client, cosell_referralid="DUP")

    response = client.post("/opportunities", json={"name": "again", "cosell_referralid": "DUP"})

    assert response.status_code == 412
    error = error_of(response)
    assert error["code"] == "0x80060892"
    assert error["message"] == "A record with matching key values already exists."
    assert len(sim.records("opportunities")) == 1


def test_concurrent_upserts_of_one_alternate_key_leave_one_record(
    server: ServerThread, sim: DataverseSimulator
) -> None:
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    lock = threading.Lock()

    def upsert(i: int) -> None:
        with httpx.Client(base_url=server.url + API, timeout=10) as c:
            barrier.wait()
            response = c.patch(
                "/opportunities(cosell_referralid='RACE')",
                json={"name": f"writer {i}"},
                headers={"Prefer": "return=representation"},
            )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=upsert, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    rows = sim.records("opportunities")
    assert len(rows) == 1
    assert rows[0]["cosell_referralid"] == "RACE"
    assert sorted(statuses) == [200] * 19 + [201]


def test_delete(client: httpx.Client, sim: DataverseSimulator):
    record_id = sim.insert("leads", {"subject": "x", "cosell_referralid": "DEL"})

    assert client.delete(f"/leads({record_id})").status_code == 204
    assert sim.get("leads", record_id) is None
    assert client.delete(f"/leads({record_id})").status_code == 404
    # the alternate key is free again
    assert client.post("/leads", json={"subject": "y", "cosell_referralid": "DEL"}).status_code == 204


# ----------------------------------------------------------------------------- state rules and close actions


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


# ----------------------------------------------------------------------------- faults, stats, auth, control


def test_injected_429_uses_dataverse_error_body_and_control_routes_are_not_faulted(
    client: httpx.Client, sim: DataverseSimulator, server: ServerThread
):
    sim.set_faults({"rate": 1.0, "statuses": [429], "retry_after": 2})

    response = client.get("/accounts")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert error_of(response)["code"] == "0x80072322"
    control = httpx.get(f"{server.url}/_sim/stats", timeout=10)
    assert control.status_code == 200
    assert httpx.get(f"{server.url}/_sim/records/accounts", timeout=10).status_code == 200

    sim.set_faults({"rate": 1.0, "statuses": [503]})
    unavailable = client.post("/accounts", json={"name": "x"})
    assert unavailable.status_code == 503
    error_of(unavailable)
    assert sim.records("accounts") == []


def test_stats_count_requests_per_route(client: httpx.Client, sim: DataverseSimulator, server: ServerThread):
    record_id = sim.insert("accounts", {"name": "A"})
    client.get("/accounts")
    client.get("/accounts")
    client.get(f"/accounts({record_id})")
    client.patch(f"/accounts({record_id})", json={"name": "B"})

    stats = httpx.get(f"{server.url}/_sim/stats", timeout=10).json()

    assert stats["total"] == 4
    assert stats["routes"][f"GET {API}/accounts"] == 2
    assert stats["routes"][f"GET {API}/accounts(<path:key>)"] == 1
    assert stats["routes"][f"PATCH {API}/accounts(<path:key>)"] == 1
    assert sim.count("PATCH", f"{API}/accounts") == 1


def test_unknown_route_is_404_with_dataverse_body(client: httpx.Client):
    response = client.get("/nosuchset")

    assert response.status_code == 404
    assert error_of(response)["code"] == "0x80060888"


def test_token_validator_rejects_missing_and_invalid_bearer() -> None:
    sim = DataverseSimulator(token_validator=lambda token: token == "good-token")
    server = ServerThread(sim).start()
    try:
        base = server.url + API
        missing = httpx.get(f"{base}/accounts", timeout=10)
        invalid = httpx.get(f"{base}/accounts", headers={"Authorization": "Bearer nope"}, timeout=10)
        wrong_scheme = httpx.get(f"{base}/accounts", headers={"Authorization": "Basic good-token"}, timeout=10)
        write = httpx.post(f"{base}/accounts", json={"name": "x"}, timeout=10)
        ok = httpx.get(f"{base}/accounts", headers={"Authorization": "Bearer good-token"}, timeout=10)
        control = httpx.get(f"{server.url}/_sim/stats", timeout=10)
    finally:
        server.stop()

    for response in (missing, invalid, wrong_scheme, write):
        assert response.status_code == 401
        error_of(response)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert ok.status_code == 200
    assert control.status_code == 200
    assert sim.records("accounts") == []


def test_control_seed_records_and_clear(sim: DataverseSimulator, server: ServerThread, client: httpx.Client):
    seeded = httpx.post(
        f"{server.url}/_sim/seed",
        json={
            "accounts": [{"name": "Seeded", "address1_country": "FR"}],
            "opportunities": [{"name": "Closed deal", "cosell_referralid": "S-1", "statecode": 1, "statuscode": 3}],
        },
        timeout=10,
    )
    assert seeded.status_code == 200
    ids = seeded.json()
    assert len(ids["accounts"]) == 1
    assert len(ids["opportunities"]) == 1
    assert sim.stats_snapshot()["total"] == 0  # control calls are not counted

    rows = httpx.get(f"{server.url}/_sim/records/opportunities", timeout=10).json()
    assert [(r["opportunityid"], r["statecode"]) for r in rows] == [(ids["opportunities"][0], 1)]

    rejected = httpx.post(
        f"{server.url}/_sim/seed",
        json={"accounts": [{"name": "ok"}], "opportunities": [{"name": "dup", "cosell_referralid": "S-1"}]},
        timeout=10,
    )
    assert rejected.status_code == 400
    assert len(sim.records("accounts")) == 1  # all or nothing

    currencies = sim.records("transactioncurrencies")
    assert httpx.post(f"{server.url}/_sim/clear", timeout=10).status_code == 200
    assert sim.records("accounts") == []
    assert sim.records("opportunities") == []
    assert sorted(r["isocurrencycode"] for r in sim.records("transactioncurrencies")) == sorted(
        ["USD", "EUR", "GBP", "JPY", "CAD", "AUD", "INR"]
    )
    assert {r["transactioncurrencyid"] for r in sim.records("transactioncurrencies")} == {
        r["transactioncurrencyid"] for r in currencies
    }


def test_in_process_helpers_return_copies_and_validate(sim: DataverseSimulator):
    record_id = sim.insert("contacts", {"firstname": "Grace", "lastname": "Hopper"})

    copy = sim.get("contacts", record_id)
    assert copy is not None
    copy["firstname"] = "changed"
    sim.records("contacts")[0]["lastname"] = "changed"

    stored = sim.get("contacts", record_id.upper())
    assert stored is not None
    assert (stored["firstname"], stored["lastname"], stored["fullname"]) == ("Grace", "Hopper", "Grace Hopper")
    with pytest.raises(ValueError, match="does not exist"):
        sim.insert("contacts", {"nosuchcolumn": "x"})
    with pytest.raises(ValueError, match="unknown entity set"):
        sim.records("nosuchset")
    sim.clear()
    assert sim.records("contacts") == []
    assert len(sim.records("transactioncurrencies")) == 7

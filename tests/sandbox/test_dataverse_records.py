"""Records over real HTTP: create, lookups, single-record reads, alternate keys, upsert, delete."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import (
    API,
    GUID_A,
    currency_of,
    error_of,
    make_opportunity,
)

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
            "transactioncurrencyid@odata.bind": "/transactioncurrencies(" + currency_of(client, "EUR") + ")",
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

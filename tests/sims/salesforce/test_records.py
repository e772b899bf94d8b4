"""sObject rows: create / read / update / delete, ids, validation errors, derived fields, timestamps."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from sandbox.sims.salesforce import SalesforceSimulator
from sandbox.sims.salesforce.ids import checksum
from tests.sims.salesforce.support import create, error_of, opportunity


def test_create_read_update_delete(api: httpx.Client, sim: SalesforceSimulator) -> None:
    created = api.post("/sobjects/Account", json={"Name": "Contoso", "BillingCity": "Redmond"})
    assert created.status_code == 201
    account = created.json()["id"]
    assert created.json() == {"id": account, "success": True, "errors": []}

    read = api.get(f"/sobjects/Account/{account}", params={"fields": "Name,BillingCity"})
    assert read.json() == {
        "attributes": {"type": "Account", "url": f"/services/data/v60.0/sobjects/Account/{account}"},
        "Name": "Contoso",
        "BillingCity": "Redmond",
    }
    updated = api.patch(f"/sobjects/Account/{account}", json={"BillingCity": "Seattle"})
    assert (updated.status_code, updated.content) == (204, b"")
    assert api.get(f"/sobjects/Account/{account[:15]}").json()["BillingCity"] == "Seattle"  # 15-char id works

    assert api.delete(f"/sobjects/Account/{account}").status_code == 204
    gone = api.get(f"/sobjects/Account/{account}")
    assert (gone.status_code, error_of(gone)["errorCode"]) == (404, "NOT_FOUND")
    again = api.patch(f"/sobjects/Account/{account}", json={"Name": "x"})
    assert (again.status_code, error_of(again)["errorCode"]) == (404, "ENTITY_IS_DELETED")
    assert sim.get("Account", account) is None


@pytest.mark.parametrize(
    ("sobject", "prefix", "fields"),
    [
        ("Account", "001", {"Name": "A"}),
        ("Contact", "003", {"LastName": "L"}),
        ("Opportunity", "006", {"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01"}),
        ("Lead", "00Q", {"LastName": "L", "Company": "C"}),
        ("Microsoft_Solution__c", "a0S", {"Name": "Azure"}),
    ],
)
def test_ids_are_18_character_case_safe_with_the_object_key_prefix(
    api: httpx.Client, sobject: str, prefix: str, fields: dict
) -> None:
    if sobject == "Microsoft_Solution__c":
        fields = {**fields, "Opportunity__c": opportunity(api)}
    record_id = create(api, sobject, **fields)

    assert len(record_id) == 18
    assert record_id.startswith(prefix)
    assert record_id[15:] == checksum(record_id[:15])


def test_contact_role_and_user_ids(api: httpx.Client, sim: SalesforceSimulator) -> None:
    contact = create(api, "Contact", LastName="Lee")
    role = create(api, "OpportunityContactRole", OpportunityId=opportunity(api), ContactId=contact)

    assert role.startswith("00K")
    assert sim.integration_user_id.startswith("005")
    assert sim.seller_user_id.startswith("005")
    assert api.get(f"/sobjects/User/{sim.seller_user_id}").json()["Name"] == "Sandbox Seller"


@pytest.mark.parametrize(
    "bad_id",
    ["abc", "0068d00000000000", "006AAAAAAAAAAAAAAAAAAA", "0068d00000AbCdEAAA", "0018d0000000001AAA"],
)
def test_malformed_ids_in_urls(api: httpx.Client, bad_id: str) -> None:
    response = api.get(f"/sobjects/Opportunity/{bad_id}")

    assert response.status_code == 400
    assert error_of(response)["errorCode"] == "MALFORMED_ID"


@pytest.mark.parametrize(
    ("sobject", "body", "missing"),
    [
        ("Opportunity", {"Amount": 5}, ["Name", "StageName", "CloseDate"]),
        ("Opportunity", {"Name": "", "StageName": "Prospecting", "CloseDate": "2026-01-01"}, ["Name"]),
        ("Lead", {"FirstName": "Ana"}, ["LastName", "Company"]),
        ("Account", {"Phone": "1"}, ["Name"]),
        ("Contact", {"FirstName": "Ana"}, ["LastName"]),
        ("OpportunityContactRole", {"Role": "Other"}, ["OpportunityId", "ContactId"]),
    ],
)
def test_required_fields(api: httpx.Client, sobject: str, body: dict, missing: list[str]) -> None:
    response = api.post(f"/sobjects/{sobject}", json=body)

    assert response.status_code == 400
    assert error_of(response) == {
        "message": f"Required fields are missing: [{', '.join(missing)}]",
        "errorCode": "REQUIRED_FIELD_MISSING",
        "fields": missing,
    }


def test_clearing_a_required_field_on_update_is_refused(api: httpx.Client) -> None:
    opp = opportunity(api)

    response = api.patch(f"/sobjects/Opportunity/{opp}", json={"StageName": None})

    assert error_of(response)["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_unknown_and_read_only_fields(api: httpx.Client, bare: httpx.Client) -> None:
    unknown = api.post("/sobjects/Account", json={"Name": "A", "Nmae": "typo"})
    read_only = api.post("/sobjects/Opportunity", json={"Name": "O", "IsWon": True, "SystemModstamp": "2026-01-01"})
    not_provisioned = bare.post("/sobjects/Opportunity", json={"Referral_Identifier__c": "r"})

    assert error_of(unknown) == {
        "message": "No such column 'Nmae' on sobject of type Account",
        "errorCode": "INVALID_FIELD",
        "fields": [],
    }
    assert error_of(read_only)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert error_of(read_only)["fields"] == ["IsWon", "SystemModstamp"]
    assert error_of(not_provisioned)["errorCode"] == "INVALID_FIELD"


def test_string_too_long(api: httpx.Client) -> None:
    ok = api.post(
        "/sobjects/Opportunity", json={"Name": "x" * 120, "StageName": "Prospecting", "CloseDate": "2026-01-01"}
    )
    long = api.post(
        "/sobjects/Opportunity", json={"Name": "x" * 121, "StageName": "Prospecting", "CloseDate": "2026-01-01"}
    )
    city = api.post("/sobjects/Account", json={"Name": "A", "BillingCity": "c" * 41})

    assert ok.status_code == 201
    assert error_of(long) == {
        "message": f"Name: data value too large: {'x' * 121} (max length=120)",
        "errorCode": "STRING_TOO_LONG",
        "fields": ["Name"],
    }
    assert error_of(city)["message"].startswith("Billing City: data value too large")


@pytest.mark.parametrize(
    ("sobject", "body", "field", "label"),
    [
        ("Opportunity", {"StageName": "Won"}, "StageName", "Stage"),
        ("Opportunity", {"How_can_Microsoft_help__c": "Other"}, "How_can_Microsoft_help__c", "How can Microsoft help"),
        ("Lead", {"Status": "Open"}, "Status", "Status"),
        ("Opportunity", {"CurrencyIsoCode": "XXX"}, "CurrencyIsoCode", "Opportunity Currency"),
    ],
)
def test_restricted_picklists(api: httpx.Client, sobject: str, body: dict, field: str, label: str) -> None:
    base = {
        "Opportunity": {"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01"},
        "Lead": {"LastName": "L", "Company": "C"},
    }

    response = api.post(f"/sobjects/{sobject}", json={**base[sobject], **body})

    assert error_of(response) == {
        "message": f"{label}: bad value for restricted picklist field: {body[field]}",
        "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "fields": [field],
    }


def test_country_and_state_codes(api: httpx.Client, sim: SalesforceSimulator) -> None:
    good = create(api, "Account", Name="A", BillingCountryCode="US", BillingStateCode="WA")
    named = create(api, "Lead", LastName="L", Company="C", Country="Germany")
    bad_code = api.post("/sobjects/Account", json={"Name": "B", "BillingCountryCode": "XX"})
    bad_name = api.post("/sobjects/Contact", json={"LastName": "L", "MailingCountry": "Atlantis"})
    bad_state = api.post("/sobjects/Account", json={"Name": "C", "BillingCountryCode": "CA", "BillingStateCode": "WA"})

    assert (sim.get("Account", good)["BillingCountry"], sim.get("Account", good)["BillingState"]) == (
        "United States",
        "Washington",
    )
    assert sim.get("Lead", named)["CountryCode"] == "DE"
    assert error_of(bad_code) == {
        "message": "There's a problem with this country, even though it may appear correct. Please select a "
        "country/territory from the list of valid countries.: BillingCountryCode",
        "errorCode": "FIELD_INTEGRITY_EXCEPTION",
        "fields": ["BillingCountryCode"],
    }
    assert error_of(bad_name)["fields"] == ["MailingCountry"]
    assert error_of(bad_state)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_references_must_point_at_live_records_of_the_right_object(api: httpx.Client) -> None:
    contact = create(api, "Contact", LastName="Lee")
    account = create(api, "Account", Name="A")
    api.delete(f"/sobjects/Account/{account}")

    def error(account_id: str) -> dict:
        return error_of(
            api.post(
                "/sobjects/Opportunity",
                json={"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01", "AccountId": account_id},
            )
        )

    assert error("nope")["errorCode"] == "MALFORMED_ID"
    assert error(contact)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert error(account)["errorCode"] == "ENTITY_IS_DELETED"
    assert error("001000000000001AAA")["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_stage_drives_is_closed_is_won_and_probability(api: httpx.Client, sim: SalesforceSimulator) -> None:
    opp = opportunity(api, StageName="Qualification")
    assert (sim.get("Opportunity", opp)["IsClosed"], sim.get("Opportunity", opp)["IsWon"]) == (False, False)

    api.patch(f"/sobjects/Opportunity/{opp}", json={"StageName": "Closed Won"})
    row = sim.get("Opportunity", opp)
    assert (row["IsClosed"], row["IsWon"], row["Probability"], row["ForecastCategoryName"]) == (
        True,
        True,
        100.0,
        "Closed",
    )

    api.patch(f"/sobjects/Opportunity/{opp}", json={"StageName": "Closed Lost"})
    assert (sim.get("Opportunity", opp)["IsClosed"], sim.get("Opportunity", opp)["IsWon"]) == (True, False)


def test_duplicate_unique_external_id_is_refused(api: httpx.Client) -> None:
    first = opportunity(api, Referral_Identifier__c="REF-1")

    response = api.post(
        "/sobjects/Opportunity",
        json={"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01", "Referral_Identifier__c": "ref-1"},
    )

    assert error_of(response) == {
        "message": f"duplicate value found: Referral_Identifier__c duplicates value on record with id: {first}",
        "errorCode": "DUPLICATE_VALUE",
        "fields": [],
    }


def test_stamps_have_second_precision_and_never_go_backwards(api: httpx.Client, sim: SalesforceSimulator) -> None:
    opp = opportunity(api)
    created = sim.get("Opportunity", opp)
    assert created["CreatedDate"] == created["LastModifiedDate"] == created["SystemModstamp"]
    assert created["SystemModstamp"].endswith(".000+0000")

    sim.clock = lambda: dt.datetime(2001, 1, 1, tzinfo=dt.UTC)  # the wall clock steps back
    api.patch(f"/sobjects/Opportunity/{opp}", json={"Amount": 1})
    updated = sim.get("Opportunity", opp)
    assert updated["SystemModstamp"] >= created["SystemModstamp"]
    assert updated["CreatedDate"] == created["CreatedDate"]

    sim.clock = lambda: dt.datetime(2099, 1, 1, 12, 0, 0, 500000, tzinfo=dt.UTC)
    api.patch(f"/sobjects/Opportunity/{opp}", json={"Amount": 2})
    assert sim.get("Opportunity", opp)["SystemModstamp"] == "2099-01-01T12:00:00.000+0000"
    assert sim.get("Opportunity", opp)["LastModifiedById"] == sim.integration_user_id


def test_writes_to_children_leave_the_parent_stamp_alone(api: httpx.Client, sim: SalesforceSimulator) -> None:
    sim.clock = lambda: dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    opp = opportunity(api)
    contact = create(api, "Contact", LastName="Lee")
    before = sim.get("Opportunity", opp)["SystemModstamp"]

    sim.clock = lambda: dt.datetime(2100, 1, 2, tzinfo=dt.UTC)
    solution = create(api, "Microsoft_Solution__c", Name="Azure", Opportunity__c=opp)
    create(api, "OpportunityContactRole", OpportunityId=opp, ContactId=contact, IsPrimary=True)
    api.patch(f"/sobjects/Microsoft_Solution__c/{solution}", json={"Solution_Type__c": "Azure"})

    assert sim.get("Opportunity", opp)["SystemModstamp"] == before
    assert sim.get("Microsoft_Solution__c", solution)["SystemModstamp"] == "2100-01-02T00:00:00.000+0000"


def test_only_one_primary_contact_role_per_opportunity(api: httpx.Client, sim: SalesforceSimulator) -> None:
    opp = opportunity(api)
    first = create(
        api, "OpportunityContactRole", OpportunityId=opp, ContactId=create(api, "Contact", LastName="A"), IsPrimary=True
    )
    second = create(
        api, "OpportunityContactRole", OpportunityId=opp, ContactId=create(api, "Contact", LastName="B"), IsPrimary=True
    )

    assert sim.get("OpportunityContactRole", first)["IsPrimary"] is False
    assert sim.get("OpportunityContactRole", second)["IsPrimary"] is True
    moved = api.patch(f"/sobjects/OpportunityContactRole/{second}", json={"OpportunityId": opportunity(api)})
    assert error_of(moved)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_converted_leads_are_read_only_and_users_are_not_writable(api: httpx.Client, sim: SalesforceSimulator) -> None:
    opp = opportunity(api)
    lead = sim.insert(
        "Lead",
        {
            "LastName": "L",
            "Company": "C",
            "Status": "Closed - Converted",
            "IsConverted": True,
            "ConvertedOpportunityId": opp,
        },
    )

    refused = api.patch(f"/sobjects/Lead/{lead}", json={"Title": "CTO"})
    user = api.post("/sobjects/User", json={"LastName": "New"})

    assert error_of(refused)["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert sim.get("Lead", lead)["ConvertedOpportunityId"] == opp
    assert user.status_code == 400


def test_json_errors(api: httpx.Client) -> None:
    not_json = api.post("/sobjects/Account", content=b"{nope", headers={"Content-Type": "application/json"})
    bad_date = api.post(
        "/sobjects/Opportunity", json={"Name": "O", "StageName": "Prospecting", "CloseDate": "31/12/2026"}
    )
    bad_bool = api.post("/sobjects/Opportunity", json={"Referral_Visible__c": "yes"})

    for response in (not_json, bad_date, bad_bool):
        assert (response.status_code, error_of(response)["errorCode"]) == (400, "JSON_PARSER_ERROR")

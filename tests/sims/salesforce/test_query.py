"""SOQL over ``/query``: relationship fields, child subqueries, filters, escaping, ordering, errors."""

from __future__ import annotations

import httpx
import pytest

from sandbox.sims.salesforce import SalesforceSimulator
from tests.sims.salesforce.support import create, error_of, opportunity, query, records


@pytest.fixture
def deal(api: httpx.Client) -> dict[str, str]:
    """An account, a contact, an opportunity with a primary contact role and two solutions."""
    account = create(api, "Account", Name="Contoso", BillingPostalCode="98052")
    contact = create(api, "Contact", LastName="Lee", FirstName="Ana", Email="ana@contoso.example", AccountId=account)
    opp = opportunity(api, Name="Contoso deal", AccountId=account, Referral_Identifier__c="ref-1", Amount=5000)
    create(api, "OpportunityContactRole", OpportunityId=opp, ContactId=contact, IsPrimary=True, Role="Decision Maker")
    create(api, "Microsoft_Solution__c", Name="Azure", Solution_Identifier__c="sol-1", Opportunity__c=opp)
    create(api, "Microsoft_Solution__c", Name="Dynamics", Solution_Identifier__c="sol-2", Opportunity__c=opp)
    return {"account": account, "contact": contact, "opportunity": opp}


def test_relationship_fields_and_child_subqueries(api: httpx.Client, sim: SalesforceSimulator, deal: dict) -> None:
    rows = records(
        api,
        "SELECT Id, Name, Amount, Account.Name, Account.BillingPostalCode, Owner.Email, "
        "(SELECT ContactId, IsPrimary, Contact.Email FROM OpportunityContactRoles), "
        "(SELECT Id, Name, Solution_Identifier__c FROM Microsoft_Solutions__r ORDER BY Name DESC) "
        "FROM Opportunity WHERE Referral_Identifier__c = 'ref-1'",
    )

    assert len(rows) == 1
    row = rows[0]
    assert row["attributes"] == {
        "type": "Opportunity",
        "url": f"/services/data/v60.0/sobjects/Opportunity/{deal['opportunity']}",
    }
    assert row["Amount"] == 5000.0
    assert row["Account"] == {
        "attributes": {"type": "Account", "url": f"/services/data/v60.0/sobjects/Account/{deal['account']}"},
        "Name": "Contoso",
        "BillingPostalCode": "98052",
    }
    assert row["Owner"]["Email"] == "integration@partner.example"
    roles = row["OpportunityContactRoles"]
    assert (roles["totalSize"], roles["done"]) == (1, True)
    assert roles["records"][0]["ContactId"] == deal["contact"]
    assert roles["records"][0]["IsPrimary"] is True
    assert roles["records"][0]["Contact"]["Email"] == "ana@contoso.example"
    assert [s["Name"] for s in row["Microsoft_Solutions__r"]["records"]] == ["Dynamics", "Azure"]


def test_empty_references_and_children_are_null(api: httpx.Client) -> None:
    opportunity(api, Name="Lonely")

    row = records(api, "SELECT Name, Account.Name, (SELECT Id FROM Microsoft_Solutions__r) FROM Opportunity")[0]

    assert row["Account"] is None
    assert row["Microsoft_Solutions__r"] is None


@pytest.mark.parametrize(
    ("name", "literal"),
    [
        ("O'Brien & Sons) or (1 eq 1", "'O\\'Brien & Sons) or (1 eq 1'"),
        ("Bob's Shop", "'Bob\\'s Shop'"),
        ('Say "hi" \\ bye', "'Say \\\"hi\\\" \\\\ bye'"),
        ("Tab\there", "'Tab\\there'"),
        ("Ünïcode", "'\\u00dcnïcode'"),
    ],
)
def test_escaped_literals_match_exactly_one_record(api: httpx.Client, name: str, literal: str) -> None:
    wanted = create(api, "Account", Name=name)
    create(api, "Account", Name="O")
    create(api, "Account", Name="Bob")

    rows = records(api, f"SELECT Id, Name FROM Account WHERE Name = {literal}")  # noqa: S608 (SOQL built on purpose)

    assert [(r["Id"], r["Name"]) for r in rows] == [(wanted, name)]


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("'O'Brien & Sons) or (1 eq 1'", "unexpected token: Brien"),
        ("'Bob's Shop'", "unexpected token: s"),
        ("'Bob\\xs'", "Illegal character sequence '\\x' in string literal"),
        ('"Bob"', "no viable alternative at character '\"'"),
        ("'Ter\\%'", "only valid in a LIKE pattern"),
    ],
)
def test_unescaped_or_badly_escaped_literals_are_malformed(api: httpx.Client, literal: str, reason: str) -> None:
    create(api, "Account", Name="O")
    soql = f"SELECT Id FROM Account WHERE Name = {literal}"  # noqa: S608 (SOQL built on purpose)

    response = query(api, soql)

    assert response.status_code == 400
    error = error_of(response)
    assert error["errorCode"] == "MALFORMED_QUERY"
    assert error["message"].startswith(f"\n{soql}\n")
    assert "ERROR at Row:1:Column:" in error["message"]
    assert reason in error["message"]


def test_like_wildcards_and_escaped_wildcards(api: httpx.Client) -> None:
    for name in ("Ter", "Terra", "Ter%", "Ter%x", "Ter_", "terMINAL"):
        create(api, "Account", Name=name)

    def names(pattern: str) -> list[str]:
        return sorted(r["Name"] for r in records(api, f"SELECT Name FROM Account WHERE Name LIKE {pattern}"))  # noqa: S608 (SOQL built on purpose)

    assert names("'Ter%'") == ["Ter", "Ter%", "Ter%x", "Ter_", "Terra", "terMINAL"]  # case-insensitive
    assert names("'Ter\\%'") == ["Ter%"]
    assert names("'Ter\\%%'") == ["Ter%", "Ter%x"]
    assert names("'Ter_'") == ["Ter%", "Ter_"]
    assert names("'Ter\\_'") == ["Ter_"]


def test_where_operators_nulls_booleans_and_dates(api: httpx.Client, sim: SalesforceSimulator) -> None:
    a = opportunity(api, Name="A", Amount=100, CloseDate="2026-01-15", StageName="Closed Won")
    b = opportunity(api, Name="B", Amount=200, CloseDate="2026-02-15", Sync_with_Partner_Center__c=True)
    c = opportunity(api, Name="C", CloseDate="2026-03-15", StageName="Qualification")

    def ids(where: str) -> set[str]:
        return {r["Id"] for r in records(api, f"SELECT Id FROM Opportunity WHERE {where}")}  # noqa: S608 (SOQL built on purpose)

    assert ids("Amount = null") == {c}
    assert ids("Amount != null") == {a, b}
    assert ids("Amount >= 150") == {b}
    assert ids("Amount != 100") == {b, c}  # != matches nulls too
    assert ids("IsWon = true") == {a}
    assert ids("Sync_with_Partner_Center__c = false") == {a, c}
    assert ids("CloseDate < 2026-02-01") == {a}
    assert ids("StageName IN ('Prospecting', 'Qualification')") == {b, c}
    assert ids("StageName NOT IN ('Prospecting')") == {a, c}
    assert ids("NOT (Name = 'A')") == {b, c}
    assert ids("(Name = 'A' OR Name = 'B') AND Amount > 150") == {b}
    assert ids(f"Id = '{a[:15]}'") == {a}  # the 15-character form matches too
    assert ids(f"Id IN ('{a}', '{c}')") == {a, c}
    stamp = sim.get("Opportunity", b)["SystemModstamp"].replace(".000+0000", "Z")
    assert ids(f"SystemModstamp >= {stamp}") == {a, b, c}
    assert ids(f"SystemModstamp > {stamp[:-1]}+01:00") == {a, b, c}


@pytest.mark.parametrize(
    ("where", "code", "reason"),
    [
        ("SystemModstamp > '2026-01-01T00:00:00Z'", "INVALID_QUERY_FILTER_OPERATOR", "must be of type dateTime"),
        ("CloseDate = 2026-01-01T00:00:00Z", "INVALID_QUERY_FILTER_OPERATOR", "must be of type date"),
        ("Amount = '5'", "INVALID_QUERY_FILTER_OPERATOR", "must be of type double"),
        ("Name = 5", "INVALID_QUERY_FILTER_OPERATOR", "must be of type string and should be enclosed in quotes"),
        ("Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc"),
        ("SystemModstamp > 2026-01-01T00:00:00", "MALFORMED_QUERY", "no viable alternative"),
        ("Name = 'a' AND Name = 'b' OR Name = 'c'", "MALFORMED_QUERY", "unexpected token: OR"),
        ("Audit__c = 'x'", "INVALID_FIELD", "can not be filtered"),
        ("Nme = 'x'", "INVALID_FIELD", "No such column 'Nme' on entity 'Opportunity'"),
        ("Acount.Name = 'x'", "INVALID_FIELD", "Didn't understand relationship 'Acount'"),
    ],
)
def test_filter_errors(api: httpx.Client, where: str, code: str, reason: str) -> None:
    response = query(api, f"SELECT Id FROM Opportunity WHERE {where}")  # noqa: S608 (SOQL built on purpose)

    assert response.status_code == 400
    error = error_of(response)
    assert error["errorCode"] == code
    assert reason in error["message"]


def test_unknown_field_object_and_relationship_name_the_culprit(api: httpx.Client) -> None:
    field = error_of(query(api, "SELECT Id, Referal_Identifier__c FROM Opportunity"))
    sobject = error_of(query(api, "SELECT Id FROM Opportunities"))
    child = error_of(query(api, "SELECT Id, (SELECT Id FROM Solutions) FROM Opportunity"))
    missing = api.get("/query")

    assert field["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Referal_Identifier__c' on entity 'Opportunity'" in field["message"]
    assert field["message"].split("\n")[2] == " " * 11 + "^"  # the caret sits under the field
    assert sobject["errorCode"] == "INVALID_TYPE"
    assert "sObject type 'Opportunities' is not supported" in sobject["message"]
    assert child["errorCode"] == "INVALID_TYPE"
    assert "Didn't understand relationship 'Solutions' in FROM part of query call" in child["message"]
    assert (missing.status_code, error_of(missing)["errorCode"]) == (400, "MALFORMED_QUERY")


def test_names_are_case_insensitive_and_answers_use_the_api_names(api: httpx.Client) -> None:
    create(api, "Account", Name="Fabrikam")

    row = records(api, "select id, NAME, owner.email from account where name = 'FABRIKAM'")[0]

    assert set(row) == {"attributes", "Id", "Name", "Owner"}
    assert row["Owner"]["Email"] == "integration@partner.example"


def test_order_by_several_fields_with_nulls_limit_offset_and_count(api: httpx.Client) -> None:
    for name, amount in (("b", 10), ("a", 10), ("c", None), ("d", 30)):
        opportunity(api, Name=name, Amount=amount)

    def names(tail: str) -> list[str]:
        return [r["Name"] for r in records(api, f"SELECT Name FROM Opportunity {tail}")]  # noqa: S608 (SOQL built on purpose)

    assert names("ORDER BY Amount, Name") == ["c", "a", "b", "d"]  # nulls first by default
    assert names("ORDER BY Id") == ["b", "a", "c", "d"]  # ids grow with creation, as the service's do
    assert names("ORDER BY Amount DESC NULLS LAST, Name DESC") == ["d", "b", "a", "c"]
    assert names("ORDER BY Amount ASC NULLS LAST, Name LIMIT 2 OFFSET 1") == ["b", "d"]
    counted = query(api, "SELECT COUNT() FROM Opportunity WHERE Amount = 10").json()
    assert counted == {"totalSize": 2, "done": True, "records": []}
    too_far = query(api, "SELECT Id FROM Opportunity OFFSET 2001")
    assert error_of(too_far)["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"


def test_query_all_sees_deleted_rows_and_query_does_not(api: httpx.Client) -> None:
    kept = opportunity(api, Name="kept")
    gone = opportunity(api, Name="gone")
    solution = create(api, "Microsoft_Solution__c", Name="Azure", Opportunity__c=gone)
    assert api.delete(f"/sobjects/Opportunity/{gone}").status_code == 204

    live = records(api, "SELECT Id FROM Opportunity")
    everything = api.get("/queryAll", params={"q": "SELECT Id, IsDeleted FROM Opportunity ORDER BY Name"}).json()
    children = api.get("/queryAll", params={"q": "SELECT Id, IsDeleted FROM Microsoft_Solution__c"}).json()

    assert [r["Id"] for r in live] == [kept]
    assert [(r["Id"], r["IsDeleted"]) for r in everything["records"]] == [(gone, True), (kept, False)]
    assert [(r["Id"], r["IsDeleted"]) for r in children["records"]] == [(solution, True)]  # cascaded

"""The Salesforce adapter against the simulated org: what one sync costs in requests, and two workers
creating the same new customer at once.

The race: two referrals of one new customer reach two workers together. Both look the customer up
before either has created anything (a gate in the transport holds each worker after its look-up until
the other has made its own), so both decide "create". The account and contact keys (External ID,
unique, shared.crm.matching) make the second create an update of the first row: one Account, one
Contact per email. Without the keys the same run leaves two of each.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.salesforce import SalesforceSimulator
from shared.crm.port import CrmPort, InboundResult
from shared.crm.salesforce import SalesforceCrm
from shared.crm.salesforce_client import ClientCredentialsSession, SalesforceClient, limit_exceeded, salesforce_error
from shared.crm.salesforce_fields import salesforce_field_map
from shared.http import CallStats, ServiceClient, count_calls
from tests.contract.referrals import MESSAGE, changed, known_after, member, plan_of, referral

CLIENT, SECRET = "requests-test-client", "requests-test-secret"
TEAM = [member("Ada", "Lovelace", "ada@race.example"), member("Alan", "Turing", "alan@race.example")]


@pytest.fixture(scope="module")
def org() -> Iterator[tuple[SalesforceSimulator, str]]:
    sim = SalesforceSimulator(seed=8, clients={CLIENT: SECRET})
    server = ServerThread(sim).start()
    try:
        yield sim, server.url
    finally:
        server.stop()


@pytest.fixture
def sim(org: tuple[SalesforceSimulator, str]) -> SalesforceSimulator:
    org[0].set_faults(None)
    org[0].clear()
    org[0].reset_stats()
    return org[0]


def adapter(url: str, transport: httpx.BaseTransport | None = None) -> SalesforceCrm:
    session = ClientCredentialsSession(url, CLIENT, SECRET, timeout=10)
    http = ServiceClient(
        "salesforce",
        f"{url}/services/data/v60.0/",
        auth=session,
        transport=transport,
        timeout=10,
        max_attempts=1,
        error_parser=salesforce_error,
        throttled=limit_exceeded,
    )
    fields = salesforce_field_map(
        deal_value_field="Amount", deal_currency_field="CurrencyIsoCode", account_country_field="BillingCountryCode"
    )
    return SalesforceCrm(SalesforceClient(http, origin=url), fields)


class LookupGate(httpx.HTTPTransport):
    """Holds each worker after its first look-up of accounts (and of contacts) until every worker made its own."""

    def __init__(self, workers: int) -> None:
        super().__init__()
        self._gates = {name: threading.Barrier(workers, timeout=20) for name in ("FROM Account", "FROM Contact")}
        self._passed = threading.local()
        self.held = 0  # how many times a worker waited at a gate: the test checks the race was really run

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        text = _request_text(request)
        passed: set[str] = self._passed.__dict__.setdefault("gates", set())
        for name, barrier in self._gates.items():
            if name in text and name not in passed:
                passed.add(name)
                barrier.wait()
                self.held += 1
        return response


def _request_text(request: httpx.Request) -> str:
    """The SOQL a request carries, in the URL (``query?q=``) or in a composite body."""
    query = request.url.params.get("q", "")
    body = unquote_plus(request.content.decode("utf-8", "replace")) if request.method == "POST" else ""
    return query + body


def _sync_together(crms: list[CrmPort], plans: list[Any]) -> list[InboundResult]:
    results: list[Any] = [None] * len(crms)

    def run(n: int) -> None:
        try:
            results[n] = crms[n].apply_inbound(plans[n], None, MESSAGE)
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(crms))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@pytest.mark.parametrize("attempt", range(12))
def test_two_workers_creating_one_new_customer_at_once_make_one_account_and_one_contact_per_email(
    org: tuple[SalesforceSimulator, str], sim: SalesforceSimulator, attempt: int
) -> None:
    url = org[1]
    gate = LookupGate(2)
    crms: list[CrmPort] = [adapter(url, gate), adapter(url, gate)]
    customer = f"Race Customer {attempt} GmbH"
    plans = [plan_of(crms[0], referral(customer=customer, postal_code="10115", team=TEAM)) for _ in crms]

    results = _sync_together(crms, plans)

    assert gate.held == 4, "each worker waited after its account and its contact look-up"

    accounts = [a for a in sim.records("Account") if a["Name"] == customer]
    assert len(accounts) == 1, f"{len(accounts)} accounts for one customer"
    emails = Counter(c["Email"] for c in sim.records("Contact"))
    assert emails == {"ada@race.example": 1, "alan@race.example": 1}
    for result in results:
        opportunity = sim.get("Opportunity", result.crm_id)
        assert opportunity is not None
        assert opportunity["AccountId"] == accounts[0]["Id"]
    contacts = {c["Id"] for c in sim.records("Contact")}
    roles = [r for r in sim.records("OpportunityContactRole") if r["IsPrimary"]]
    assert len(roles) == 2
    assert {r["ContactId"] for r in roles} <= contacts
    assert all(c["AccountId"] == accounts[0]["Id"] for c in sim.records("Contact"))


def test_a_sellers_account_and_contact_without_keys_are_found_and_given_the_keys(
    org: tuple[SalesforceSimulator, str], sim: SalesforceSimulator
) -> None:
    account = sim.insert("Account", {"Name": "Keyless Traders Ltd.", "BillingPostalCode": "SW1A 1AA"})
    contact = sim.insert("Contact", {"LastName": "Lovelace", "Email": "ADA@race.example", "AccountId": account})
    crm = adapter(org[1])
    plan = plan_of(crm, referral(customer="keyless traders", postal_code="sw1a1aa", team=TEAM[:1]))

    result = crm.apply_inbound(plan, None, MESSAGE)

    opportunity = sim.get("Opportunity", result.crm_id)
    assert opportunity is not None
    assert opportunity["AccountId"] == account
    assert [a["Id"] for a in sim.records("Account")] == [account]
    assert [c["Id"] for c in sim.records("Contact")] == [contact]
    keyed_account, keyed_contact = sim.get("Account", account), sim.get("Contact", contact)
    assert keyed_account is not None
    assert keyed_contact is not None
    assert keyed_account["Cosell_Account_Key__c"]
    assert keyed_contact["Cosell_Contact_Key__c"]
    # A second referral of the customer finds both by their keys and writes nothing on them.
    sim.reset_stats()
    again = plan_of(crm, referral(customer="Keyless Traders", postal_code="SW1A 1AA", team=TEAM[:1]))
    crm.apply_inbound(again, None, MESSAGE)
    touched = [r.path for r in sim.recorded() if r.method == "PATCH" and "/sobjects/Account/" in r.path]
    assert touched == []
    assert len(sim.records("Account")) == 1
    assert len(sim.records("Contact")) == 1


def _calls(stats: CallStats) -> tuple[int, int]:
    return stats.calls["salesforce"], stats.writes["salesforce"]


def _sent(sim: SalesforceSimulator) -> list[tuple[str, str, list[str]]]:
    """Each API request as (method, resource, the methods and objects of its subrequests)."""
    sent = []
    for r in sim.recorded(path="/services/data/"):
        subs = r.body.get("compositeRequest", []) if isinstance(r.body, dict) else []
        inner = [f"{s['method']} {_resource(s['url'])}" for s in subs]
        sent.append((r.method, r.path.split("/", 4)[4].split("/")[0], inner))
    return sent


def _resource(url: str) -> str:
    """``query`` or the object a ``sobjects/<Object>/…`` subrequest writes."""
    rest = url.split("/", 4)[4]
    return rest.split("/")[1] if rest.startswith("sobjects/") else rest.split("?")[0]


def test_a_new_referral_is_one_look_up_call_and_one_atomic_write_call(
    org: tuple[SalesforceSimulator, str], sim: SalesforceSimulator
) -> None:
    crm = adapter(org[1])
    crm.apply_inbound(plan_of(crm, referral(customer="Warm Up Inc")), None, MESSAGE)  # describe is read once
    plan = plan_of(crm, referral(customer="Counted Customer Inc", postal_code="98052", team=TEAM))
    sim.reset_stats()

    with count_calls() as new:
        result = crm.apply_inbound(plan, None, MESSAGE)

    # Before: 10 calls (4 queries for the deal, account, each contact; 6 single writes and their look-ups).
    assert _calls(new) == (2, 6)  # account, 2 contacts, opportunity, contact role, solution
    assert _sent(sim) == [
        ("POST", "composite", ["GET query", "GET query", "GET query"]),
        ("POST", "composite", ["PATCH Account", "PATCH Contact", "PATCH Contact", "PATCH Opportunity",
                               "POST OpportunityContactRole", "POST Microsoft_Solution__c"]),
    ]  # fmt: skip
    [write] = [r for r in sim.recorded(method="POST") if "composite" in r.path][1:]
    assert write.body["allOrNone"] is True
    opportunity = sim.get("Opportunity", result.crm_id)
    assert opportunity is not None
    assert result.created
    account = sim.get("Account", opportunity["AccountId"])
    assert account is not None
    assert account["Name"] == "Counted Customer Inc"
    assert {c["AccountId"] for c in sim.records("Contact") if c["Email"].endswith("@race.example")} == {account["Id"]}
    [role] = [r for r in sim.records("OpportunityContactRole") if r["OpportunityId"] == result.crm_id]
    assert sim.get("Contact", role["ContactId"])["Email"] == "ada@race.example"  # type: ignore[index]
    assert len([s for s in sim.records("Microsoft_Solution__c") if s["Opportunity__c"] == result.crm_id]) == 1


def test_a_changed_referral_is_one_read_and_one_write_and_an_unchanged_one_writes_nothing(
    org: tuple[SalesforceSimulator, str], sim: SalesforceSimulator
) -> None:
    crm = adapter(org[1])
    data = referral(customer="Changed Customer Inc", postal_code="98052", team=TEAM)
    plan = plan_of(crm, data)
    result = crm.apply_inbound(plan, None, MESSAGE)
    known = known_after(result, plan)
    sim.reset_stats()

    with count_calls() as unchanged:
        crm.apply_inbound(plan, known, MESSAGE)
    changed_plan = plan_of(crm, changed(data, deal_value=123))
    with count_calls() as value_changed:
        crm.apply_inbound(changed_plan, known, MESSAGE)
    known = known_after(result, changed_plan)
    with count_calls() as customer_changed:
        crm.apply_inbound(plan_of(crm, changed(data, deal_value=123, team=TEAM[1:])), known, MESSAGE)

    assert _calls(unchanged) == (1, 0)  # the engine skips even this read when nothing changed (state hashes)
    assert _calls(value_changed) == (2, 1)
    assert _calls(customer_changed) == (2, 2)  # the look-up (deal + account + contacts), then role + audit
    assert sim.get("Opportunity", result.crm_id)["Amount"] == 123  # type: ignore[index]
    roles = [r for r in sim.records("OpportunityContactRole") if r["OpportunityId"] == result.crm_id]
    primary = [sim.get("Contact", r["ContactId"])["Email"] for r in roles if r["IsPrimary"]]  # type: ignore[index]
    assert primary == ["alan@race.example"]


def test_more_writes_than_one_composite_holds_go_in_order_with_the_new_ids_carried_over(
    org: tuple[SalesforceSimulator, str], sim: SalesforceSimulator
) -> None:
    """30 solutions + account + 2 contacts + opportunity + role = 35 subrequests: two calls, the second naming
    the opportunity the first one created by its id."""
    crm = adapter(org[1])
    crm.apply_inbound(plan_of(crm, referral(customer="Warm Up Inc")), None, MESSAGE)  # describe is read once
    solutions = [f"Solution{n:02d}" for n in range(30)]
    plan = plan_of(crm, referral(customer="Many Solutions Ltd", team=TEAM, solutions=solutions))
    sim.reset_stats()

    with count_calls() as stats:
        result = crm.apply_inbound(plan, None, MESSAGE)

    assert _calls(stats) == (3, 35)
    writes = [r.body["compositeRequest"] for r in sim.recorded(method="POST") if r.path.endswith("/composite")][1:]
    assert [len(w) for w in writes] == [25, 10]
    assert all(s["body"]["Opportunity__c"] == result.crm_id for s in writes[1])
    rows = [s for s in sim.records("Microsoft_Solution__c") if s["Opportunity__c"] == result.crm_id]
    assert sorted(r["Solution_Identifier__c"] for r in rows) == solutions


class AfterFirstLookup(httpx.HTTPTransport):
    """Runs ``then`` once, right after the first look-up call is answered: another worker's write lands there."""

    def __init__(self, then: Any) -> None:
        super().__init__()
        self._then = then

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if self._then is not None and "FROM Account" in _request_text(request):
            then, self._then = self._then, None
            then()
        return response


def test_a_key_taken_between_look_up_and_write_rolls_the_write_back_and_the_sync_finds_the_keyed_account(
    org: tuple[SalesforceSimulator, str], sim: SalesforceSimulator
) -> None:
    """A seller's keyless account matches; before our write gives it the key, another worker creates the customer
    with the key: Salesforce refuses the second holder (DUPLICATE_VALUE), nothing of ours is written, and the
    sync looks again and joins the keyed account."""
    from shared.crm.matching import account_id
    from shared.mapping.model import AccountData

    sellers = sim.insert("Account", {"Name": "Taken Key Ltd", "BillingPostalCode": "75001"})
    key = account_id(AccountData(name="Taken Key Ltd", postal_code="75001"), "unused")
    theirs: list[str] = []
    transport = AfterFirstLookup(
        lambda: theirs.append(sim.insert("Account", {"Name": "Taken Key", "Cosell_Account_Key__c": key}))
    )
    crm = adapter(org[1], transport)
    plan = plan_of(crm, referral(customer="Taken Key Ltd", postal_code="75001", team=TEAM))

    result = crm.apply_inbound(plan, None, MESSAGE)

    opportunity = sim.get("Opportunity", result.crm_id)
    assert opportunity is not None
    assert opportunity["AccountId"] == theirs[0]
    assert sim.get("Account", sellers)["Cosell_Account_Key__c"] is None  # type: ignore[index]
    assert len([o for o in sim.records("Opportunity")]) == 1
    assert Counter(c["Email"] for c in sim.records("Contact")) == {"ada@race.example": 1, "alan@race.example": 1}


def test_a_retry_that_lost_the_first_answer_finds_the_opportunity_by_referral_id_and_adds_no_second_role(
    org: tuple[SalesforceSimulator, str], sim: SalesforceSimulator
) -> None:
    """The engine holds no record of the first sync (its answer was lost): the look-up finds the opportunity by
    its referral id and the retry writes nothing new beside it."""
    crm = adapter(org[1])
    plan = plan_of(crm, referral(customer="Lost Answer Ltd", team=TEAM))
    first = crm.apply_inbound(plan, None, MESSAGE)

    again = crm.apply_inbound(plan, None, MESSAGE)

    assert (again.crm_id, again.created) == (first.crm_id, False)
    assert len([r for r in sim.records("OpportunityContactRole") if r["OpportunityId"] == first.crm_id]) == 1
    assert len([s for s in sim.records("Microsoft_Solution__c") if s["Opportunity__c"] == first.crm_id]) == 1
    assert len(sim.records("Opportunity")) == 1

"""Hostile Partner Center data: every referral either syncs (values cut to their column, the audit line
saying what was cut or left out) or fails readably (✖ on the record when there is one, a readable
``AuditLog`` row); no message lands in ``referral-events-poison`` without an ``AuditLog`` row.

All referrals are seeded at once (module fixture) and synced by the host in parallel, as a burst of
webhooks would be; each test then reads the outcome of its own referral.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from azure.data.tables import TableClient

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.hostproc import HostProcess
from tests.e2e.conftest import fresh, sample
from tests.resilience.support import audit_rows, notify, poisoned

pytestmark = pytest.mark.e2e

Referral = dict[str, Any]
SETTLED = frozenset({"created", "updated", "unchanged", "skipped"})
HEBREW_POSTAL_CODE = "6100001"
LEGAL_FORM_POSTAL_CODE = "20100"


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _base(name: str) -> Referral:
    """The shared-and-accepted sample with a fresh id and customer contacts nobody else has."""
    referral = fresh(sample("fixture_b_shared_accepted.json"), name=name)
    tag = _tag()
    for member in referral["customerProfile"]["team"]:
        member["email"] = member["email"].replace("@", f".{tag}@")
    return referral


def _details(title: str, /, **values: Any) -> Referral:
    referral = _base(title)
    referral["details"].update(values)
    return referral


def _profile(title: str, /, **values: Any) -> Referral:
    referral = _base(title)
    referral["customerProfile"].update(values)
    return referral


def _member(title: str, /, **values: Any) -> Referral:
    referral = _base(title)
    referral["customerProfile"]["team"][0].update(values)
    return referral


def _company(name: str, company: str, postal_code: str | None) -> Referral:
    referral = _base(name)
    profile = referral["customerProfile"]
    profile["name"] = company
    profile["team"] = []
    if postal_code is None:
        profile["address"].pop("postalCode", None)
    else:
        profile["address"]["postalCode"] = postal_code
    return referral


def _nulls(name: str) -> Referral:
    referral = _base(name)
    return {key: None for key in referral} | {"id": referral["id"]}


def _no_profile(name: str) -> Referral:
    referral = _base(name)
    del referral["customerProfile"]
    return referral


def _bad_stamps(name: str) -> Referral:
    referral = _base(name)
    referral.update(updatedDateTime="garbage", createdDateTime="31/02/2026", expirationDateTime="never")
    return referral


def _big_team(name: str) -> Referral:
    referral = _base(name)
    tag = _tag()
    referral["customerProfile"]["team"] = [
        {"firstName": f"Member{n}", "lastName": "Team", "email": f"member{n}.{tag}@big-team.example"}
        for n in range(500)
    ]
    return referral


@dataclass(frozen=True)
class Hostile:
    build: Callable[[str], Referral]
    # A referral whose stored data would spoil the simulator's own event (its ResourceChangeUtcDate
    # comes from updatedDateTime) is seeded silently and announced by a well-formed signed event.
    announce_ourselves: bool = False
    # Served by GET with this value as its "id" (the simulator stores the referral under its real id).
    served_id: Any = None
    serve_other_id: bool = False  # served with a well-formed id that is not the one asked for


NO_ID = object()  # marker: serve the referral with ``"id": null``

CASES: dict[str, Hostile] = {
    "dealValue is a word": Hostile(lambda n: _details(n, dealValue="lots")),
    "dealValue is an object": Hostile(lambda n: _details(n, dealValue={"amount": 5})),
    "dealValue is NaN": Hostile(lambda n: _details(n, dealValue="NaN")),
    "dealValue 1e400 overflows a float": Hostile(lambda n: _details(n, dealValue="1e400")),
    "dealValue beyond Dataverse's money range": Hostile(lambda n: _details(n, dealValue="1" + "0" * 30)),
    "closingDateTime is a word": Hostile(lambda n: _details(n, closingDateTime="next tuesday")),
    "timestamps are garbage": Hostile(_bad_stamps, announce_ourselves=True),
    "customerProfile.team is an object": Hostile(
        lambda n: _profile(n, team={"firstName": "Solo", "email": f"solo.{_tag()}@team.example"})
    ),
    "no customerProfile": Hostile(_no_profile),
    "null everything": Hostile(_nulls),
    "2,500-character notes": Hostile(lambda n: _details(n, notes=("Long notes. " * 210)[:2500])),
    "400-character name": Hostile(lambda n: _base("N" * 400)),
    "200-character company": Hostile(lambda n: _profile(n, name="Company " + "C" * 192)),
    "120-character email": Hostile(lambda n: _member(n, email="e" * 100 + f".{_tag()}@example.com")),
    "80-character first name": Hostile(lambda n: _member(n, firstName="F" * 80)),
    "currency with a trailing space": Hostile(lambda n: _details(n, currency="usd ")),
    "Hebrew company": Hostile(lambda n: _company(n, 'חברת אור בע"מ', HEBREW_POSTAL_CODE)),
    "another Hebrew company, same postal code": Hostile(lambda n: _company(n, "שלום טכנולוגיות", HEBREW_POSTAL_CODE)),
    "Arabic company, no postal code": Hostile(lambda n: _company(n, "شركة النور للتجارة", None)),
    "another Arabic company, no postal code": Hostile(lambda n: _company(n, "مؤسسة الأمل", None)),
    "CJK company": Hostile(lambda n: _company(n, "株式会社テスト商事", "100-0001")),
    "Greek company": Hostile(lambda n: _company(n, "Ελληνική Εταιρεία Α.Ε.", "10431")),
    "Cyrillic company": Hostile(lambda n: _company(n, "ООО «Ромашка»", "101000")),
    "emoji company": Hostile(lambda n: _company(n, "🚀🌟", "94105")),
    "company named only AB": Hostile(lambda n: _company(n, "AB", LEGAL_FORM_POSTAL_CODE)),
    "company named only Oy": Hostile(lambda n: _company(n, "Oy", LEGAL_FORM_POSTAL_CODE)),
    "OData injection in the company name": Hostile(
        lambda n: _company(n, "O'Brien & Sons) or (1 eq 1", f"3{_tag()[:4]}")
    ),
    "500-member customer team": Hostile(_big_team),
    'served with "id": null': Hostile(_base, announce_ourselves=True, served_id=NO_ID),
    "served with a number as id": Hostile(_base, announce_ourselves=True, served_id=12345),
    "served with an empty id": Hostile(_base, announce_ourselves=True, served_id=""),
    'served with "../x" as id': Hostile(_base, announce_ourselves=True, served_id="../x"),
    "served with an id other than the one asked for": Hostile(_base, announce_ourselves=True, serve_other_id=True),
}
BOGUS_ID_CASES = [name for name, case in CASES.items() if case.served_id is not None or case.serve_other_id]


@dataclass
class Outcome:
    referral: Referral
    served_id: Any  # the "id" Partner Center's GET answered with
    rows: list[dict[str, Any]]  # AuditLog, newest first, without "retry" rows
    poisoned: bool
    opportunities: list[dict[str, Any]]  # opportunities carrying this referral's id
    accounts: dict[str, dict[str, Any]]  # by id

    @property
    def id(self) -> str:
        return str(self.referral["id"])

    @property
    def synced(self) -> bool:
        return any(r["outcome"] in SETTLED for r in self.rows)

    def record(self) -> dict[str, Any]:
        found = len(self.opportunities)
        assert found == 1, f"{found} CRM opportunities carry referral id {self.id} (expected 1); audit: {self.rows}"
        return self.opportunities[0]

    def account(self) -> dict[str, Any]:
        return self.accounts[self.record()["_customerid_value"]]

    def newest_audit_line(self) -> str:
        return str(self.record().get("cosell_audit") or "").splitlines()[0]


@pytest.fixture(scope="module")
def outcomes(host: HostProcess, sandbox: Sandbox, azurite: Azurite) -> dict[str, Outcome]:
    pc, dv = sandbox.partner_center, sandbox.dataverse
    audit = TableClient.from_connection_string(azurite.connection_string, "AuditLog")
    seeded: dict[str, tuple[Referral, Any]] = {}
    for name, case in CASES.items():
        referral = case.build(f"Hostile: {name}")
        served: Any = referral["id"]
        if case.announce_ourselves:
            pc.seed_referral(referral, fire=False)
            if case.served_id is not None or case.serve_other_id:
                served = None if case.served_id is NO_ID else case.served_id
                if case.serve_other_id:
                    served = str(uuid.uuid4())
                pc.update_referral(referral["id"], {"id": served}, fire=False)
            notify(host, sandbox, referral["id"])
        else:
            pc.seed_referral(referral)
        seeded[name] = (referral, served)

    def settled(referral_id: str, poison: set[str]) -> bool:
        rows = audit_rows(audit, referral_id)
        return referral_id in poison or any(r["outcome"] in SETTLED for r in rows)

    pending = {referral["id"] for referral, _ in seeded.values()}
    deadline = time.monotonic() + 150
    while pending and time.monotonic() < deadline:
        poison = set(poisoned(azurite))
        pending = {rid for rid in pending if not settled(rid, poison)}
        time.sleep(0.5)
    poison = set(poisoned(azurite))
    opportunities = dv.records("opportunities")
    accounts = {a["accountid"]: a for a in dv.records("accounts")}
    results: dict[str, Outcome] = {}
    for name, (referral, served) in seeded.items():
        rows = [r for r in audit_rows(audit, referral["id"]) if r["outcome"] != "retry"]
        mine = [o for o in opportunities if o.get("cosell_referralid") == referral["id"]]
        results[name] = Outcome(referral, served, rows, referral["id"] in poison, mine, accounts)
    return results


def _cut_note(outcome: Outcome, note: str) -> None:
    assert outcome.synced, outcome.rows
    line = outcome.newest_audit_line()
    assert "sync success" in line
    assert note in line, f"the audit line must say what was cut or left out: {line!r}"


# ---------------------------------------------------------------------------------------------- the rule
@pytest.mark.parametrize("name", list(CASES))
def test_each_hostile_referral_syncs_or_fails_readably(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    assert outcome.rows, f"no AuditLog row at all for {name} (poisoned: {outcome.poisoned})"
    assert len(outcome.opportunities) <= 1
    if outcome.synced:
        assert outcome.record()["name"].startswith("✔ ")
        assert "Partner Center referral to CRM sync success" in outcome.newest_audit_line()
        return
    failed = [r for r in outcome.rows if r["outcome"] == "failed"]
    assert failed, f"neither synced nor failed: {outcome.rows}"
    message = failed[0]["message"]
    assert message.isprintable()
    assert len(message) > 20, message
    if outcome.opportunities:
        record = outcome.record()
        assert record["name"].startswith("✖ ")
        newest = str(record.get("cosell_audit") or "").splitlines()[0]
        assert " ".join(message.split())[-60:] in newest, f"the record's audit line must say why: {newest!r}"


def test_nothing_is_poisoned_without_an_audit_row(outcomes: dict[str, Outcome]) -> None:
    silent = [name for name, outcome in outcomes.items() if outcome.poisoned and not outcome.rows]
    assert not silent, f"in referral-events-poison with no AuditLog row: {silent}"


# ---------------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("name", ["dealValue is a word", "dealValue is an object", "dealValue is NaN"])
def test_an_unreadable_deal_value_is_left_out_and_said(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    _cut_note(outcome, "could not be read, left as they were: details.dealValue")
    assert outcome.record().get("estimatedvalue") is None


def test_a_deal_value_beyond_any_money_column_is_left_out_and_said(outcomes: dict[str, Outcome]) -> None:
    """1e30 fits no CRM's money column (Dataverse's ends at 922,337,203,685,477): the field, not the referral."""
    outcome = outcomes["dealValue beyond Dataverse's money range"]
    _cut_note(outcome, "details.dealValue")
    assert outcome.record().get("estimatedvalue") is None


def test_an_unreadable_close_date_is_left_out_and_said(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["closingDateTime is a word"]
    _cut_note(outcome, "details.closingDateTime")
    assert outcome.record().get("estimatedclosedate") is None
    assert outcome.record()["estimatedvalue"] == 50000


def test_garbage_timestamps_cost_only_themselves(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["timestamps are garbage"]
    _cut_note(outcome, "updatedDateTime")
    assert outcome.record()["estimatedvalue"] == 50000


def test_a_team_object_instead_of_a_list_costs_the_contacts_only(
    outcomes: dict[str, Outcome], sandbox: Sandbox
) -> None:
    outcome = outcomes["customerProfile.team is an object"]
    _cut_note(outcome, "customerProfile.team")
    assert outcome.record().get("_parentcontactid_value") is None
    solo = outcome.referral["customerProfile"]["team"]["email"]
    assert not [c for c in sandbox.dataverse.records("contacts") if c.get("emailaddress1") == solo]
    assert outcome.account()["name"] == "Contoso Customer Inc"


def test_a_referral_without_a_customer_gets_its_own_account(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["no customerProfile"]
    assert outcome.synced
    assert outcome.account()["name"] == f"Unknown customer (referral {outcome.id})"


def test_a_referral_of_nulls_still_becomes_a_named_record(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["null everything"]
    assert outcome.synced
    assert outcome.record()["name"] == f"✔ Referral {outcome.id}"
    assert outcome.account()["name"] == f"Unknown customer (referral {outcome.id})"


def test_long_notes_are_cut_to_the_column(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["2,500-character notes"]
    notes = outcome.referral["details"]["notes"]
    assert len(notes) >= 2500
    _cut_note(outcome, "notes cut to 2000 characters")
    assert outcome.record()["description"] == notes[:2000]


def test_a_long_name_is_cut_behind_its_mark(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["400-character name"]
    _cut_note(outcome, "name cut to 300 characters")
    assert outcome.record()["name"] == "✔ " + "N" * 298


def test_a_long_company_name_is_cut_to_the_account_column(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["200-character company"]
    _cut_note(outcome, "company name cut to 160 characters")
    assert outcome.account()["name"] == outcome.referral["customerProfile"]["name"][:160]


def test_an_email_longer_than_its_column_is_left_out_not_cut(outcomes: dict[str, Outcome], sandbox: Sandbox) -> None:
    outcome = outcomes["120-character email"]
    email = outcome.referral["customerProfile"]["team"][0]["email"]
    assert len(email) >= 120
    _cut_note(outcome, "a customer contact's email is longer than the CRM's 100 characters and was left out")
    emails = {c.get("emailaddress1") for c in sandbox.dataverse.records("contacts")}
    assert email not in emails
    assert email[:100] not in emails  # a cut address is a wrong address
    second = outcome.referral["customerProfile"]["team"][1]["email"]
    assert second in emails  # the other member still syncs


def test_a_long_first_name_is_cut_to_the_contact_column(outcomes: dict[str, Outcome], sandbox: Sandbox) -> None:
    outcome = outcomes["80-character first name"]
    _cut_note(outcome, "a contact's first name cut to 50 characters")
    email = outcome.referral["customerProfile"]["team"][0]["email"]
    [contact] = [c for c in sandbox.dataverse.records("contacts") if c.get("emailaddress1") == email]
    assert contact["firstname"] == "F" * 50
    assert outcome.record()["_parentcontactid_value"] == contact["contactid"]


def test_a_currency_code_with_a_trailing_space_is_still_that_currency(
    outcomes: dict[str, Outcome], sandbox: Sandbox
) -> None:
    outcome = outcomes["currency with a trailing space"]
    assert outcome.synced
    assert outcome.record()["_transactioncurrencyid_value"] == sandbox.dataverse.currency_id("USD")


# ---------------------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "name",
    [
        "Hebrew company",
        "another Hebrew company, same postal code",
        "Arabic company, no postal code",
        "another Arabic company, no postal code",
        "CJK company",
        "Greek company",
        "Cyrillic company",
        "emoji company",
        "company named only AB",
        "company named only Oy",
        "OData injection in the company name",
    ],
)
def test_a_company_name_in_any_script_is_kept_exactly(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    assert outcome.synced, outcome.rows
    assert outcome.account()["name"] == outcome.referral["customerProfile"]["name"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Hebrew company", "another Hebrew company, same postal code"),
        ("Arabic company, no postal code", "another Arabic company, no postal code"),
        ("company named only AB", "company named only Oy"),
    ],
    ids=["Hebrew, same postal code", "Arabic, no postal code", "legal forms only, same postal code"],
)
def test_two_different_customers_get_two_accounts(outcomes: dict[str, Outcome], first: str, second: str) -> None:
    assert outcomes[first].account()["accountid"] != outcomes[second].account()["accountid"]


def test_the_odata_injection_name_created_exactly_one_account(outcomes: dict[str, Outcome], sandbox: Sandbox) -> None:
    outcome = outcomes["OData injection in the company name"]
    postal_code = outcome.referral["customerProfile"]["address"]["postalCode"]
    accounts = [a for a in sandbox.dataverse.records("accounts") if a.get("address1_postalcode") == postal_code]
    assert [a["name"] for a in accounts] == ["O'Brien & Sons) or (1 eq 1"]


def test_a_500_member_team_syncs_its_first_25_and_says_so(outcomes: dict[str, Outcome], sandbox: Sandbox) -> None:
    outcome = outcomes["500-member customer team"]
    _cut_note(outcome, "475 more customer contacts left out (first 25 synced)")
    team = [m["email"] for m in outcome.referral["customerProfile"]["team"]]
    stored = {c["emailaddress1"]: c for c in sandbox.dataverse.records("contacts") if c.get("emailaddress1") in team}
    assert set(stored) == set(team[:25])
    assert all(c["_parentcustomerid_value"] == outcome.account()["accountid"] for c in stored.values())
    assert outcome.record()["_parentcontactid_value"] == stored[team[0]]["contactid"]


# ---------------------------------------------------------------------------------------------- ids
@pytest.mark.parametrize("name", BOGUS_ID_CASES)
def test_a_referral_served_without_its_own_id_is_not_written_under_another(
    outcomes: dict[str, Outcome], sandbox: Sandbox, name: str
) -> None:
    """GET /referrals/{id} answered a body whose "id" is unreadable, or not the id asked for.

    Nothing may reach the CRM under the served value: not a bogus referral-id column (an empty one
    is an alternate key every such referral would share), not a record keyed by an id other than
    the one the webhook named. The referral is unreadable: a failed row says so and, after the
    host's retries, its message is in the poison queue.
    """
    outcome = outcomes[name]
    served = outcome.served_id
    name = str(outcome.referral.get("name") or "")
    carrying = [  # written from this referral (a seller may type the same bogus id on a record of theirs)
        o["opportunityid"]
        for o in sandbox.dataverse.records("opportunities")
        if served is not None and o.get("cosell_referralid") == served and name and name in str(o.get("name"))
    ]
    assert not carrying, f"opportunities written under the served id {served!r}: {carrying}; rows: {outcome.rows}"
    assert not outcome.synced, f"synced although Partner Center answered id {served!r}: {outcome.rows[0]}"
    failed = [r for r in outcome.rows if r["outcome"] == "failed"]
    assert failed
    assert "id" in failed[0]["message"], failed[0]["message"]
    assert outcome.poisoned, "a referral that cannot be read goes to the poison queue after the host's retries"

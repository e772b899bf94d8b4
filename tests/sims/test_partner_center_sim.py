"""The Partner Center simulator over real HTTP: Referrals API, Webhooks API and signed event delivery."""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from sandbox.pki import Pki, make_pki
from sandbox.sims.base import ServerThread
from sandbox.sims.entra import EntraSimulator
from sandbox.sims.partner_center import PartnerCenterSimulator
from sandbox.sims.partner_center.patch import PATCHABLE_PATHS

FIXTURES = Path(__file__).resolve().parents[2] / "sandbox" / "fixtures"
REFERRALS = "/v1.0/engagements/referrals"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
ETAG = re.compile(r'^"0000[0-9a-f]{4}-0000-0000-0000-[0-9a-f]{8}0000"$')


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class Sandbox:
    def __init__(self, sim: PartnerCenterSimulator, server: ServerThread) -> None:
        self.sim, self.server, self.url = sim, server, server.url
        self.http = httpx.Client(base_url=server.url, timeout=10)


@pytest.fixture
def pc(pki: Pki) -> Iterator[Sandbox]:
    sim = PartnerCenterSimulator(pki=pki, seed=7, delivery_backoff=0.01)
    server = ServerThread(sim).start()
    sim.base_url = server.url
    sandbox = Sandbox(sim, server)
    yield sandbox
    sandbox.http.close()
    sim.close()
    server.stop()


class Receiver:
    """A webhook endpoint that records raw requests and answers with scripted statuses (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[Headers, bytes]] = []
        self._lock = threading.Lock()
        self.server = ServerThread(self).start()
        self.url = f"{self.server.url}/api/partner-center/events?code=function-key"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        with self._lock:
            self.received.append((Headers(request.headers), body))
            status = self.statuses.pop(0) if self.statuses else 200
        return Response("", status=status)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.stop()


def _referral(**overrides: Any) -> dict[str, Any]:
    referral: dict[str, Any] = {
        "name": "Fabrikam rollout",
        "type": "Independent",
        "qualification": "SalesQualified",
        "customerProfile": {
            "name": "Fabrikam Customer Inc",
            "address": {"city": "Redmond", "postalCode": "98052", "country": "US"},
            "team": [{"firstName": "Sue", "lastName": "Smith", "email": "sue@fabrikam.example"}],
        },
        "consent": {"consentToContact": True, "consentToShareReferralWithMicrosoftSellers": False},
        "details": {"notes": "n", "dealValue": 1000, "currency": "USD"},
    }
    referral.update(overrides)
    return referral


def _register(pc: Sandbox, url: str, events: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    body = {"WebhookUrl": url, "WebhookEvents": events or ["referral-created", "referral-updated"], **extra}
    response = pc.http.post("/webhooks/v1/registration", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- auth
def test_bearer_tokens_are_enforced_per_audience(pki: Pki) -> None:
    entra = EntraSimulator()
    entra.add_client("app", "secret")
    entra_server = ServerThread(entra).start()
    sim = PartnerCenterSimulator(
        pki=pki,
        referrals_token_validator=entra.validator("https://api.partner.microsoft.com"),
        webhooks_token_validator=entra.validator("https://api.partnercenter.microsoft.com"),
    )
    server = ServerThread(sim).start()
    try:

        def token(scope: str) -> str:
            form = {"grant_type": "client_credentials", "client_id": "app", "client_secret": "secret", "scope": scope}
            return httpx.post(f"{entra_server.url}/common/oauth2/v2.0/token", data=form).json()["access_token"]

        referrals_token = token("https://api.partner.microsoft.com/.default")
        webhooks_token = token("https://api.partnercenter.microsoft.com/.default")

        missing = httpx.get(f"{server.url}{REFERRALS}")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "unauthenticated"
        assert missing.json()["error"]["target"] == "referral"
        wrong = httpx.get(f"{server.url}{REFERRALS}", headers={"Authorization": f"Bearer {webhooks_token}"})
        assert wrong.status_code == 401
        ok = httpx.get(f"{server.url}{REFERRALS}", headers={"Authorization": f"Bearer {referrals_token}"})
        assert ok.status_code == 200

        assert httpx.get(f"{server.url}/webhooks/v1/registration/events").status_code == 401
        events = httpx.get(
            f"{server.url}/webhooks/v1/registration/events", headers={"Authorization": f"Bearer {webhooks_token}"}
        )
        assert events.status_code == 200
        entra.expire_access_tokens()
        expired = httpx.get(f"{server.url}{REFERRALS}", headers={"Authorization": f"Bearer {referrals_token}"})
        assert expired.status_code == 401
        # The certificate is public.
        assert httpx.get(f"{server.url}/cert/pcnotifications-dispatch.cer").status_code == 200
    finally:
        sim.close()
        server.stop()
        entra_server.stop()


# ---------------------------------------------------------------------------------------------- list
def test_paging_over_250_referrals_follows_next_links_and_returns_each_once(pc: Sandbox) -> None:
    seeded = {pc.sim.seed_referral(_referral(name=f"r{i}"), fire=False)["id"] for i in range(250)}
    first = pc.http.get(REFERRALS, params={"$orderby": "createdDateTime asc", "$count": "true"})
    assert first.status_code == 200
    body = first.json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#Referrals")
    assert body["@odata.count"] == 250
    sizes, seen = [], []
    while True:
        sizes.append(len(body["value"]))
        seen.extend(r["id"] for r in body["value"])
        next_link = body.get("@odata.nextLink")
        if not next_link:
            break
        assert next_link.startswith(f"{pc.url}{REFERRALS}?")
        assert "$skiptoken=" in next_link
        body = httpx.get(next_link).json()
    assert sizes == [100, 100, 50]
    assert len(seen) == len(set(seen)) == 250
    assert set(seen) == seeded
    created = [pc.sim.get_referral(i)["createdDateTime"] for i in seen]  # type: ignore[index]
    assert created == sorted(created)


def test_top_sets_page_size_capped_at_100(pc: Sandbox) -> None:
    for i in range(120):
        pc.sim.seed_referral(_referral(name=f"r{i}"), fire=False)
    small = pc.http.get(REFERRALS, params={"$top": "30"}).json()
    assert len(small["value"]) == 30
    assert "$top=30" in small["@odata.nextLink"]
    assert len(httpx.get(small["@odata.nextLink"]).json()["value"]) == 30
    big = pc.http.get(REFERRALS, params={"$top": "500"}).json()
    assert len(big["value"]) == 100
    assert pc.http.get(REFERRALS, params={"$top": "zero"}).status_code == 400


def test_filter_updated_since_and_by_documented_fields(pc: Sandbox) -> None:
    ids = [pc.sim.seed_referral(_referral(name=f"r{i}"), fire=False)["id"] for i in range(5)]
    pc.sim.update_referral(ids[1], {"customerProfile": {"address": {"country": "DE"}}}, fire=False)
    watermark = pc.sim.get_referral(ids[4])["updatedDateTime"]  # type: ignore[index]
    assert TIMESTAMP.match(watermark)

    since = pc.http.get(REFERRALS, params={"$filter": f"updatedDateTime gt {watermark}"}).json()
    assert [r["id"] for r in since["value"]] == [ids[1]]  # touched after the watermark

    pc.sim.update_referral(ids[3], {"notes": "x"}, fire=False)
    newest_first = pc.http.get(
        REFERRALS,
        params={"$filter": f"updatedDateTime gt {watermark}", "$orderby": "updatedDateTime desc"},
    ).json()
    assert [r["id"] for r in newest_first["value"]] == [ids[3], ids[1]]

    by_country = pc.http.get(REFERRALS, params={"$filter": "customerProfile/address/country eq 'DE'"}).json()
    assert [r["id"] for r in by_country["value"]] == [ids[1]]
    by_status = pc.http.get(REFERRALS, params={"$filter": "status eq 'New' and direction eq 'Incoming'"}).json()
    assert len(by_status["value"]) == 5


def test_filter_on_external_reference_id_is_ignored_so_unrelated_referrals_come_back(pc: Sandbox) -> None:
    created = pc.http.post(REFERRALS, json=_referral(externalReferenceId="abc"))
    assert created.status_code == 200
    assert created.json()["externalReferenceId"] == "abc"
    others = [pc.sim.seed_referral(_referral(externalReferenceId=o), fire=False)["id"] for o in ("abcd", "xabc", None)]
    everyone = {created.json()["id"], *others}

    response = pc.http.get(REFERRALS, params={"$filter": "externalReferenceId eq 'abc'", "$count": "true"})

    assert response.status_code == 200
    body = response.json()
    assert {r["id"] for r in body["value"]} == everyone  # not documented as filterable: every referral
    assert body["@odata.count"] == 4
    assert [r["externalReferenceId"] for r in body["value"]].count("abc") == 1  # the caller must check
    nothing = pc.http.get(REFERRALS, params={"$filter": "externalReferenceId eq 'nothing'"}).json()
    assert {r["id"] for r in nothing["value"]} == everyone


def test_undocumented_comparisons_are_true_while_documented_parts_still_filter(pc: Sandbox) -> None:
    old = [pc.sim.seed_referral(_referral(name=f"old{i}"), fire=False)["id"] for i in range(3)]
    watermark = pc.sim.get_referral(old[-1])["updatedDateTime"]  # type: ignore[index]
    new = pc.sim.seed_referral(_referral(name="new", externalReferenceId="crm-9"), fire=False)["id"]
    active = pc.sim.seed_referral(_referral(name="active", status="Active", substatus="Accepted"), fire=False)["id"]

    def ids(expression: str) -> set[str]:
        response = pc.http.get(REFERRALS, params={"$filter": expression})
        assert response.status_code == 200, response.text
        return {r["id"] for r in response.json()["value"]}

    # updatedDateTime ge still narrows, with or without an ignored comparison beside it.
    assert ids(f"updatedDateTime ge {watermark}") == {old[-1], new, active}
    assert ids(f"updatedDateTime ge {watermark} and externalReferenceId eq 'nope'") == {old[-1], new, active}
    assert ids(f"updatedDateTime gt {watermark} and name eq 'nope'") == {new, active}
    assert ids("status eq 'Active' and name eq 'nope'") == {active}
    assert ids("contains(name, 'zzz') and substatus eq 'Accepted'") == {active}
    # An ignored comparison is true, whatever it is combined with.
    assert ids("name eq 'nope' or status eq 'Closed'") == {*old, new, active}
    assert ids("not (externalReferenceId eq 'crm-9')") == set()
    # A lambda over another collection, or over a member other than email, is ignored too.
    assert ids("team/any(t: t/firstName eq 'nobody')") == {*old, new, active}
    assert ids("customerProfile/team/any(t: t/email eq 'nobody@x')") == {*old, new, active}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("engagementId eq 'eng-2'", "second"),
        ("status eq 'Active'", "second"),
        ("substatus eq 'Pending'", "first"),
        ("qualification eq 'MarketingQualified'", "second"),
        ("type eq 'Shared'", "second"),
        ("direction eq 'Outgoing'", "second"),
        ("customerProfile/address/country eq 'DE'", "second"),
        ("team/any(t:t/email eq 'joe@contoso.example')", "second"),
        ("email eq 'sue@fabrikam.example'", "first"),  # 2019 parameter: the team's contact email
        ("updatedDateTime gt {first_updated}", "second"),
        ("createdDateTime le {first_created}", "first"),
        ("Status eq 'new' and TYPE eq 'independent'", "first"),  # names and values case-insensitive
    ],
)
def test_each_documented_filter_field_filters(pc: Sandbox, expression: str, expected: str) -> None:
    first = pc.sim.seed_referral(
        _referral(engagementId="eng-1", team=[{"email": "sue@fabrikam.example", "firstName": "Sue"}]), fire=False
    )
    second = pc.sim.seed_referral(
        _referral(
            engagementId="eng-2",
            status="Active",
            substatus="Accepted",
            qualification="MarketingQualified",
            type="Shared",
            direction="Outgoing",
            customerProfile={"name": "Contoso", "address": {"country": "DE"}},
            team=[{"email": "joe@contoso.example", "firstName": "Joe"}],
        ),
        fire=False,
    )
    expression = expression.format(first_updated=first["updatedDateTime"], first_created=first["createdDateTime"])

    response = pc.http.get(REFERRALS, params={"$filter": expression})

    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["value"]] == [{"first": first, "second": second}[expected]["id"]]


def test_updated_since_ascending_with_paging_returns_each_change_once_in_order(pc: Sandbox) -> None:
    ids = [pc.sim.seed_referral(_referral(name=f"r{i}"), fire=False)["id"] for i in range(7)]
    watermark = pc.sim.get_referral(ids[2])["updatedDateTime"]  # type: ignore[index]
    pc.sim.update_referral(ids[0], {"notes": "touched"}, fire=False)  # moves after the watermark
    patched = pc.http.patch(
        f"{REFERRALS}/{ids[3]}", json=[{"op": "replace", "path": "/details/notes", "value": "renamed"}]
    )
    assert patched.status_code == 204
    expected = sorted(
        (r for r in pc.sim.referrals() if r["updatedDateTime"] >= watermark), key=lambda r: r["updatedDateTime"]
    )
    assert [r["id"] for r in expected] == [ids[2], ids[4], ids[5], ids[6], ids[0], ids[3]]

    params = {"$filter": f"updatedDateTime ge {watermark}", "$orderby": "updatedDateTime asc", "$top": "4"}
    body = pc.http.get(REFERRALS, params=params).json()
    pages = [body["value"]]
    while "@odata.nextLink" in body:
        next_link = body["@odata.nextLink"]
        assert "$filter=" in next_link
        assert "$orderby=" in next_link
        body = pc.http.get(next_link).json()
        pages.append(body["value"])

    assert [len(page) for page in pages] == [4, 2]
    got = [r for page in pages for r in page]
    assert [r["id"] for r in got] == [r["id"] for r in expected]  # ge keeps the watermark's own record
    stamps = [r["updatedDateTime"] for r in got]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_filter_errors_are_400_invalid_request(pc: Sandbox) -> None:
    quoted = pc.http.get(REFERRALS, params={"$filter": "updatedDateTime gt '2024-01-01T00:00:00Z'"})
    assert quoted.status_code == 400
    assert quoted.json()["error"]["code"] == "invalidRequest"
    broken = pc.http.get(REFERRALS, params={"$filter": "status eq 'New"})
    assert broken.status_code == 400
    unsupported_order = pc.http.get(REFERRALS, params={"$orderby": "name asc"})
    assert unsupported_order.status_code == 400


# ---------------------------------------------------------------------------------------------- get / create
def test_get_by_id_returns_etag_field_and_header(pc: Sandbox) -> None:
    seeded = pc.sim.seed_referral(_referral(), fire=False)
    response = pc.http.get(f"{REFERRALS}/{seeded['id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("/v1.0/engagements/referrals/$metadata#Referrals/$entity")
    assert ETAG.match(body["eTag"])
    assert response.headers["ETag"] == body["eTag"]
    assert body["links"]["self"]["uri"] == f"{pc.url}{REFERRALS}/{seeded['id']}"
    assert body["direction"] == "Incoming"

    missing = pc.http.get(f"{REFERRALS}/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "itemNotFound"


def test_create_sets_server_fields_and_returns_200(pc: Sandbox, receiver: Receiver) -> None:
    _register(pc, receiver.url)
    response = pc.http.post(REFERRALS, json=_referral(direction="Incoming", id="ignored"))
    assert response.status_code == 200
    created = response.json()
    assert created["id"] != "ignored"
    assert created["direction"] == "Outgoing"
    assert (created["status"], created["substatus"]) == ("Active", "Accepted")
    assert created["organizationId"] == pc.sim.organization_id
    assert created["engagementId"]
    assert TIMESTAMP.match(created["createdDateTime"])
    assert created["createdDateTime"] == created["updatedDateTime"]
    assert ETAG.match(created["eTag"])
    assert pc.sim.get_referral(created["id"]) is not None
    deliveries = pc.sim.wait_for_deliveries(1, timeout=10)
    assert deliveries[0]["event"] == "referral-created"
    assert deliveries[0]["referralId"] == created["id"]

    new = pc.http.post(REFERRALS, json=_referral(status="New", substatus="Received"))
    assert (new.json()["status"], new.json()["substatus"]) == ("New", "Received")


def test_create_validates_required_properties_and_status(pc: Sandbox) -> None:
    body = _referral()
    del body["consent"], body["details"]
    response = pc.http.post(REFERRALS, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalidRequest"
    assert "consent" in error["message"]
    assert "details" in error["message"]
    assert "customerProfile" not in error["message"]
    bad_pair = pc.http.post(REFERRALS, json=_referral(status="Active", substatus="Won"))
    assert bad_pair.status_code == 400
    assert pc.sim.referrals() == []


# ---------------------------------------------------------------------------------------------- patch
def test_patch_if_match_mismatch_is_412_and_match_succeeds(pc: Sandbox) -> None:
    seeded = pc.sim.seed_referral(_referral(), fire=False)
    url = f"{REFERRALS}/{seeded['id']}"
    ops = [{"op": "replace", "path": "/details/notes", "value": "changed"}]
    stale = pc.http.patch(url, json=ops, headers={"If-Match": '"0000ffff-0000-0000-0000-000000000000"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "preconditionFailed"
    unquoted = pc.http.patch(url, json=ops, headers={"If-Match": seeded["eTag"].strip('"')})
    assert unquoted.status_code == 412

    ok = pc.http.patch(url, json=ops, headers={"If-Match": seeded["eTag"], "Prefer": "return=representation"})
    assert ok.status_code == 200
    body = ok.json()
    assert body["details"]["notes"] == "changed"
    assert body["eTag"] != seeded["eTag"]
    assert ETAG.match(body["eTag"])
    assert ok.headers["ETag"] == body["eTag"]
    assert body["updatedDateTime"] > seeded["updatedDateTime"]
    assert TIMESTAMP.match(body["updatedDateTime"])

    silent = pc.http.patch(url, json=[{"op": "replace", "path": "/statusReason", "value": "n2"}])
    assert silent.status_code == 204
    assert silent.content == b""
    assert pc.sim.get_referral(seeded["id"])["statusReason"] == "n2"  # type: ignore[index]


def test_concurrent_patches_with_the_same_etag_let_exactly_one_win(pc: Sandbox) -> None:
    seeded = pc.sim.seed_referral(_referral(), fire=False)
    url = f"{pc.url}{REFERRALS}/{seeded['id']}"

    def patch(i: int) -> int:
        ops = [{"op": "replace", "path": "/details/notes", "value": f"writer {i}"}]
        return httpx.patch(url, json=ops, headers={"If-Match": seeded["eTag"]}, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(patch, range(8)))
    assert statuses == [204] + [412] * 7


def test_status_transitions_follow_the_table_and_closed_is_terminal(pc: Sandbox) -> None:
    new = pc.sim.seed_referral(_referral(status="New", substatus="Pending"), fire=False)
    url = f"{REFERRALS}/{new['id']}"
    half = pc.http.patch(url, json=[{"op": "replace", "path": "/status", "value": "Active"}])
    assert half.status_code == 400  # Active needs substatus Accepted
    won = pc.http.patch(
        url,
        json=[
            {"op": "replace", "path": "/status", "value": "Closed"},
            {"op": "replace", "path": "/substatus", "value": "Won"},
        ],
    )
    assert won.status_code == 204
    assert pc.sim.get_referral(new["id"])["substatus"] == "Won"  # type: ignore[index]

    reopen = pc.http.patch(
        url,
        json=[
            {"op": "replace", "path": "/status", "value": "Active"},
            {"op": "replace", "path": "/substatus", "value": "Accepted"},
        ],
    )
    assert reopen.status_code == 400
    assert reopen.json()["error"]["code"] == "invalidRequest"
    assert "terminal" in reopen.json()["error"]["message"]
    notes = pc.http.patch(url, json=[{"op": "replace", "path": "/details/notes", "value": "late"}])
    assert notes.status_code == 400

    active = pc.sim.seed_referral(_referral(status="Active", substatus="Accepted"), fire=False)
    back = pc.http.patch(
        f"{REFERRALS}/{active['id']}",
        json=[
            {"op": "replace", "path": "/status", "value": "New"},
            {"op": "replace", "path": "/substatus", "value": "Pending"},
        ],
    )
    assert back.status_code == 400
    assert "Active -> New" in back.json()["error"]["message"]


def test_closing_won_by_the_api_bumps_updated_date_time_then_the_referral_is_terminal(pc: Sandbox) -> None:
    seeded = pc.sim.seed_referral(_referral(status="Active", substatus="Accepted"), fire=False)
    url = f"{REFERRALS}/{seeded['id']}"
    won = pc.http.patch(
        url,
        json=[
            {"op": "replace", "path": "/status", "value": "Closed"},
            {"op": "replace", "path": "/substatus", "value": "Won"},
        ],
        headers={"If-Match": seeded["eTag"], "Prefer": "return=representation"},
    )
    assert won.status_code == 200
    closed = won.json()
    assert (closed["status"], closed["substatus"]) == ("Closed", "Won")
    assert closed["updatedDateTime"] > seeded["updatedDateTime"]
    since = pc.http.get(REFERRALS, params={"$filter": f"updatedDateTime gt {seeded['updatedDateTime']}"}).json()
    assert [r["id"] for r in since["value"]] == [seeded["id"]]

    again = pc.http.patch(url, json=[{"op": "replace", "path": "/details/notes", "value": "after close"}])

    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalidRequest"
    after = pc.sim.get_referral(seeded["id"])
    assert after is not None
    assert (after["eTag"], after["updatedDateTime"]) == (closed["eTag"], closed["updatedDateTime"])
    assert after["details"]["notes"] == "n"


def test_patch_coerces_deal_value_appends_team_and_rejects_other_ops(pc: Sandbox) -> None:
    seeded = pc.sim.seed_referral(_referral(), fire=False)
    url = f"{REFERRALS}/{seeded['id']}"
    ok = pc.http.patch(
        url,
        json=[
            {"op": "replace", "path": "/Details/DealValue", "value": "10000"},
            {"op": "add", "path": "/team/-", "value": {"email": "jane.doe@contoso.com", "firstName": "Jane"}},
            {"op": "add", "path": "/team/-", "value": {"email": "joe@contoso.com", "firstName": "Joe"}},
        ],
        headers={"Prefer": "return=representation"},
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["details"]["dealValue"] == 10000
    assert isinstance(body["details"]["dealValue"], int)
    assert "DealValue" not in body["details"]
    assert [m["email"] for m in body["team"]] == ["jane.doe@contoso.com", "joe@contoso.com"]

    for bad in (
        [{"op": "remove", "path": "/details/notes"}],
        [{"op": "replace", "path": "/details/dealValue", "value": "lots"}],
        [{"op": "replace", "path": "/id", "value": "x"}],
        {"op": "replace", "path": "/name", "value": "not an array"},
    ):
        response = pc.http.patch(url, json=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalidRequest"
    assert pc.sim.get_referral(seeded["id"])["details"]["notes"] == "n"  # type: ignore[index]
    assert pc.http.patch(f"{REFERRALS}/nope", json=[]).status_code == 404


def test_patch_with_an_undocumented_path_is_refused_whole_and_changes_nothing(pc: Sandbox, receiver: Receiver) -> None:
    _register(pc, receiver.url, ["referral-updated"])
    seeded = pc.sim.seed_referral(_referral(status="New", substatus="Pending"), fire=False)
    url = f"{REFERRALS}/{seeded['id']}"
    before = pc.http.get(url).json()

    close_won = [
        {"op": "replace", "path": "/status", "value": "Closed"},
        {"op": "replace", "path": "/substatus", "value": "Won"},
    ]
    undocumented = [
        {"op": "replace", "path": "/name", "value": "renamed by the app"},
        {"op": "replace", "path": "/inviteContext/assistanceRequestCode", "value": "GeneralOrOther"},
    ]
    headers = {"If-Match": seeded["eTag"], "Prefer": "return=representation"}

    refused = pc.http.patch(url, json=close_won + undocumented, headers=headers)

    assert refused.status_code == 400
    assert refused.json() == {
        "error": {
            "code": "invalidRequest",
            "message": "JSON Patch document refused, nothing was applied: path /name is not supported; "
            "path /inviteContext/assistanceRequestCode is not supported.",
            "target": "referral",
        }
    }
    after = pc.http.get(url)
    assert after.json() == before  # status, substatus, name, eTag and updatedDateTime all as they were
    assert after.headers["ETag"] == seeded["eTag"]
    assert pc.sim.wait_for_deliveries(1, timeout=0.3) == []  # no referral-updated for a refused patch
    # The documented part alone goes through, with the same If-Match: the refusal did not bump the eTag.
    won = pc.http.patch(url, json=close_won, headers=headers)
    assert won.status_code == 200
    assert (won.json()["status"], won.json()["substatus"], won.json()["name"]) == ("Closed", "Won", "Fabrikam rollout")


@pytest.mark.parametrize(
    ("operation", "named"),
    [
        ({"op": "replace", "path": "/name", "value": "x"}, "path /name is not supported"),
        ({"op": "add", "path": "/inviteContext/notes", "value": "x"}, "path /inviteContext/notes is not supported"),
        ({"op": "replace", "path": "/customerProfile/name", "value": "x"}, "path /customerProfile/name"),
        ({"op": "replace", "path": "/details", "value": {"notes": "x"}}, "path /details is not supported"),
        ({"op": "replace", "path": "/team/0", "value": {"email": "x@y"}}, "path /team/0 is not supported"),
        ({"op": "replace", "path": "/id", "value": "x"}, "path /id is not supported"),
        ({"op": "replace", "path": "/expirationDateTime", "value": "2030-01-01T00:00:00Z"}, "/expirationDateTime"),
        ({"op": "replace", "path": "details/notes", "value": "x"}, "path details/notes is not supported"),
        ({"op": "remove", "path": "/details/notes"}, "operation 'remove' on /details/notes is not supported"),
        ({"op": "move", "from": "/team", "path": "/team", "value": []}, "operation 'move' on /team"),
        ({"op": "test", "path": "/status", "value": "New"}, "operation 'test' on /status is not supported"),
        ({"op": "replace", "path": "/details/notes"}, "operation 'replace' on /details/notes has no value"),
    ],
)
def test_patch_refuses_undocumented_paths_and_ops_naming_them(
    pc: Sandbox, operation: dict[str, Any], named: str
) -> None:
    seeded = pc.sim.seed_referral(_referral(), fire=False)
    documented = {"op": "replace", "path": "/details/notes", "value": "would have changed"}

    response = pc.http.patch(f"{REFERRALS}/{seeded['id']}", json=[documented, operation])

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalidRequest"
    assert error["target"] == "referral"
    assert named in error["message"]
    assert pc.sim.get_referral(seeded["id"]) == seeded


def test_every_documented_patch_path_is_accepted(pc: Sandbox) -> None:
    seeded = pc.sim.seed_referral(
        _referral(
            registrations=[{"id": "reg-1", "contract": {}, "solutionDetails": [{"id": "SOL-1"}]}],
            details={"notes": "n", "dealValue": 1000, "currency": "USD", "requirements": {"solutions": []}},
        ),
        fire=False,
    )
    member = {"email": "jane.doe@contoso.com", "firstName": "Jane", "lastName": "Doe", "phoneNumber": "0000000001"}
    solution = {"type": "Name", "id": "SOL-15974-MQF", "name": "Contoso-Ale_Test"}
    values: dict[str, Any] = {
        "/campaignId": "campaign-7",
        "/consent/consentToShareReferralWithMicrosoftSellers": True,
        "/customerProfile/team": [],
        "/customerProfile/team/-": member,
        "/details/closingDateTime": "2030-06-30T00:00:00Z",
        "/details/currency": "EUR",
        "/details/dealValue": "25000",
        "/details/notes": "Lorem ipsum dolor sit amet.",
        "/details/requirements/solutions": [],
        "/details/requirements/solutions/-": solution,
        "/externalReferenceId": "crm-opp-42",
        "/referralProgram": "Program",
        "/salesStage": "Develop",
        "/status": "Active",
        "/substatus": "Accepted",
        "/statusReason": "Customer engaged",
        "/team": [],
        "/team/-": member,
        "/registrations/0/contract/startDateTime": "2030-07-01T00:00:00Z",
        "/registrations/0/contract/endDateTime": "2031-06-30T00:00:00Z",
        "/registrations/0/contract/signDateTime": "2030-06-30T00:00:00Z",
        "/registrations/0/contract/term": "12",
        "/registrations/0/contract/value": 120000,
        "/registrations/0/solutionDetails/0/value": 50000,
        "/registrations/0/solutionDetails/0/currency": "EUR",
        "/registrations/0/solutionDetails/0/isDeployedOnAzure": True,
        "/registrations/0/solutionDetails/0/primaryDeploymentOn": "Azure",
        "/registrations/0/solutionDetails/0/pricingModel": "Subscription",
        "/registrations/0/solutionDetails/0/marketplaceTransactionDetails/isMarketplaceTransacted": True,
        "/registrations/0/solutionDetails/0/marketplaceTransactionDetails/marketplaceTransactionDateTime": (
            "2030-07-02T00:00:00Z"
        ),
    }
    assert set(values) == set(PATCHABLE_PATHS)  # this test covers every documented path
    ops = [{"op": "add" if path.endswith("/-") else "replace", "path": path, "value": v} for path, v in values.items()]

    response = pc.http.patch(
        f"{REFERRALS}/{seeded['id']}", json=ops, headers={"If-Match": seeded["eTag"], "Prefer": "return=representation"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["campaignId"] == "campaign-7"
    assert body["consent"]["consentToShareReferralWithMicrosoftSellers"] is True
    assert body["consent"]["consentToContact"] is True  # siblings untouched
    assert body["customerProfile"]["team"] == [member]
    assert body["customerProfile"]["name"] == "Fabrikam Customer Inc"
    assert body["details"] == {
        "notes": "Lorem ipsum dolor sit amet.",
        "dealValue": 25000,
        "currency": "EUR",
        "closingDateTime": "2030-06-30T00:00:00Z",
        "requirements": {"solutions": [solution]},
    }
    assert (body["externalReferenceId"], body["referralProgram"], body["salesStage"]) == (
        "crm-opp-42",
        "Program",
        "Develop",
    )
    assert (body["status"], body["substatus"], body["statusReason"]) == ("Active", "Accepted", "Customer engaged")
    assert body["team"] == [member]
    registration = body["registrations"][0]
    assert registration["id"] == "reg-1"
    assert registration["contract"] == {
        "startDateTime": "2030-07-01T00:00:00Z",
        "endDateTime": "2031-06-30T00:00:00Z",
        "signDateTime": "2030-06-30T00:00:00Z",
        "term": "12",
        "value": 120000,
    }
    assert registration["solutionDetails"][0] == {
        "id": "SOL-1",
        "value": 50000,
        "currency": "EUR",
        "isDeployedOnAzure": True,
        "primaryDeploymentOn": "Azure",
        "pricingModel": "Subscription",
        "marketplaceTransactionDetails": {
            "isMarketplaceTransacted": True,
            "marketplaceTransactionDateTime": "2030-07-02T00:00:00Z",
        },
    }


def test_deal_registration_paths_need_an_existing_registration(pc: Sandbox) -> None:
    seeded = pc.sim.seed_referral(_referral(), fire=False)  # no registrations
    response = pc.http.patch(
        f"{REFERRALS}/{seeded['id']}",
        json=[{"op": "replace", "path": "/registrations/0/contract/value", "value": 1}],
    )
    assert response.status_code == 400
    assert "/registrations/0/contract/value: index 0 is out of range" in response.json()["error"]["message"]
    assert pc.sim.get_referral(seeded["id"]) == seeded


# ---------------------------------------------------------------------------------------------- registration
def test_registration_lifecycle(pc: Sandbox) -> None:
    events = pc.http.get("/webhooks/v1/registration/events").json()
    assert {"referral-created", "referral-updated", "related-referral-created", "related-referral-updated"} <= set(
        events
    )
    assert "test-created" in events

    missing = pc.http.get("/webhooks/v1/registration")
    assert missing.status_code == 404
    assert (
        pc.http.put(
            "/webhooks/v1/registration", json={"WebhookUrl": "https://x/y", "WebhookEvents": ["referral-created"]}
        ).status_code
        == 404
    )

    created = pc.http.post(
        "/webhooks/v1/registration",
        json={"webhookUrl": "https://app.example/api/events", "webhookEvents": ["referral-created"]},
    )
    assert created.status_code == 200
    body = created.json()
    assert list(body) == ["SubscriberId", "WebhookUrl", "WebhookEvents"]  # the documented POST response
    assert body["WebhookUrl"] == "https://app.example/api/events"
    assert body["WebhookEvents"] == ["referral-created"]

    again = pc.http.post(
        "/webhooks/v1/registration", json={"WebhookUrl": "https://other", "WebhookEvents": ["test-created"]}
    )
    assert again.status_code == 409
    assert (
        again.json()["error"]["message"] == "Registration already exists, use the PUT method to update a registration."
    )

    updated = pc.http.put(
        "/webhooks/v1/registration",
        json={
            "WebhookUrl": "https://app.example/api/v2",
            "WebhookEvents": ["referral-created", "referral-updated"],
            "SignatureTokenToMsSignatureHeader": True,
        },
    )
    assert updated.status_code == 200
    assert updated.json() == {
        "SubscriberId": body["SubscriberId"],
        "WebhookUrl": "https://app.example/api/v2",
        "WebhookEvents": ["referral-created", "referral-updated"],
    }
    current = pc.http.get("/webhooks/v1/registration").json()
    assert current == {
        "WebhookUrl": "https://app.example/api/v2",
        "WebhookEvents": ["referral-created", "referral-updated"],
    }
    assert (pc.sim.registration or {})["SignatureTokenToMsSignatureHeader"] is True  # kept, not read back

    unknown = pc.http.put("/webhooks/v1/registration", json={"WebhookUrl": "https://x", "WebhookEvents": ["nope"]})
    assert unknown.status_code == 400


def test_get_registration_answers_only_url_and_events_while_the_flag_still_signs(
    pc: Sandbox, receiver: Receiver
) -> None:
    written = pc.http.post(
        "/webhooks/v1/registration",
        json={
            "WebhookUrl": receiver.url,
            "WebhookEvents": ["referral-created", "referral-updated"],
            "signatureTokenToMsSignatureHeader": True,  # as in the 2019 referral connector doc
        },
    )
    assert written.status_code == 200

    read = pc.http.get("/webhooks/v1/registration")

    assert read.status_code == 200
    assert read.json() == {"WebhookUrl": receiver.url, "WebhookEvents": ["referral-created", "referral-updated"]}
    assert "SignatureTokenToMsSignatureHeader" not in written.json()
    # The stored registration keeps the flag: the control API shows it and deliveries honour it.
    stored = pc.http.get("/_sim/registration").json()
    assert stored["SignatureTokenToMsSignatureHeader"] is True
    assert stored["SubscriberId"] == written.json()["SubscriberId"]
    pc.sim.seed_referral(_referral())
    assert pc.sim.wait_for_deliveries(1, timeout=10)[0]["ok"]
    headers, raw = receiver.received[0]
    assert "Authorization" not in headers
    _verify_signature(pc.sim.pki, raw, headers["x-ms-signature"])


def test_validation_event_is_delivered_signed_and_reported(pc: Sandbox, receiver: Receiver) -> None:
    _register(pc, receiver.url, ["referral-created"])
    refused = pc.http.post("/webhooks/v1/registration/validationEvents")
    assert refused.status_code == 400  # test-created not registered
    pc.http.put("/webhooks/v1/registration", json={"WebhookUrl": receiver.url, "WebhookEvents": ["test-created"]})
    response = pc.http.post("/webhooks/v1/registration/validationEvents")
    assert response.status_code == 200
    correlation_id = response.json()["correlationId"]
    pc.sim.wait_for_deliveries(1, timeout=10)

    headers, raw = receiver.received[0]
    event = json.loads(raw)
    assert event["EventName"] == "test-created"
    assert event["ResourceName"] == "test"
    assert event["ResourceUri"].endswith(f"/webhooks/v1/registration/validationEvents/{correlation_id}")
    _verify_signature(pc.sim.pki, raw, headers["Authorization"])

    status = pc.http.get(f"/webhooks/v1/registration/validationEvents/{correlation_id}").json()
    assert status["correlationId"] == correlation_id
    assert status["status"] == "completed"
    assert status["callbackUrl"] == receiver.url
    assert status["results"][0]["responseCode"] == "OK"
    assert status["results"][0]["systemError"] is False
    assert pc.http.get("/webhooks/v1/registration/validationEvents/unknown").status_code == 404


# ---------------------------------------------------------------------------------------------- signed delivery
def _verify_signature(pki: Pki, raw: bytes, header_value: str) -> None:
    scheme, _, encoded = header_value.partition(" ")
    assert scheme == "Signature"
    public_key = x509.load_der_x509_certificate(pki.cert_der).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(base64.b64decode(encoded), raw, padding.PKCS1v15(), hashes.SHA256())


def test_referral_event_is_signed_and_the_certificate_chains_to_the_sandbox_root(
    pc: Sandbox, receiver: Receiver
) -> None:
    _register(pc, receiver.url)
    referral = pc.sim.seed_referral(_referral())
    deliveries = pc.sim.wait_for_deliveries(1, timeout=10)
    assert deliveries[0]["ok"]
    assert deliveries[0]["attempt"] == 1
    assert deliveries[0]["status"] == 200

    headers, raw = receiver.received[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-MS-Signature-Algorithm"] == "rsa-sha256"
    assert "x-ms-signature" not in headers
    cert_url = headers["X-MS-Certificate-Url"]
    assert cert_url == f"{pc.url}/cert/pcnotifications-dispatch.cer"

    # What the app does: download the certificate, check its chain and organisation, verify the raw bytes.
    download = httpx.get(cert_url)
    assert download.headers["Content-Type"] == "application/pkix-cert"
    cert = x509.load_der_x509_certificate(download.content)
    roots = x509.load_pem_x509_certificates(pc.sim.pki.root_pem_path.read_bytes())
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(dt.datetime.now(dt.UTC))
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    chain = verifier.verify(cert, []).chain
    assert chain[-1] == roots[0]
    assert cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == pc.sim.pki.organization
    _verify_signature(pc.sim.pki, raw, headers["Authorization"])
    with pytest.raises(InvalidSignature):
        _verify_signature(pc.sim.pki, raw + b" ", headers["Authorization"])

    event = json.loads(raw)
    assert list(event) == list(_fixture("event_referral-created.json"))
    assert event["EventName"] == "referral-created"
    assert event["ResourceName"] == "referral"
    assert event["AuditUri"] is None
    assert event["ResourceUri"] == f"{pc.url}/engagements/v1/referrals/{referral['id']}"
    assert event["ResourceChangeUtcDate"] == referral["updatedDateTime"].replace("Z", "+00:00")
    # The resource URI answers too, like the one the official sample flow GETs.
    assert pc.http.get(event["ResourceUri"]).json()["id"] == referral["id"]

    pc.sim.update_referral(referral["id"], {"details": {"notes": "changed by Microsoft"}})
    assert pc.sim.wait_for_deliveries(2, timeout=10)[1]["event"] == "referral-updated"
    assert json.loads(receiver.received[1][1])["EventName"] == "referral-updated"
    assert pc.sim.get_referral(referral["id"])["details"]["dealValue"] == 1000  # type: ignore[index]


def test_a_foreign_pki_does_not_chain_to_the_sandbox_root(pc: Sandbox, tmp_path: Path) -> None:
    rogue = make_pki(tmp_path / "rogue")
    roots = x509.load_pem_x509_certificates(pc.sim.pki.root_pem_path.read_bytes())
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(x509.load_der_x509_certificate(rogue.cert_der), [])
    assert make_pki(tmp_path / "rogue").cert_der == rogue.cert_der  # reloaded, not regenerated


def test_x_ms_signature_mode_moves_the_signature_header(pc: Sandbox, receiver: Receiver) -> None:
    _register(pc, receiver.url, SignatureTokenToMsSignatureHeader=True)
    pc.sim.seed_referral(_referral())
    pc.sim.wait_for_deliveries(1, timeout=10)
    headers, raw = receiver.received[0]
    assert "Authorization" not in headers
    _verify_signature(pc.sim.pki, raw, headers["x-ms-signature"])
    crafted = pc.sim.sign_event(b'{"x": 1}', header="x-ms-signature")
    _verify_signature(pc.sim.pki, b'{"x": 1}', crafted["x-ms-signature"])


def test_events_outside_the_registration_or_with_delivery_off_are_lost(pc: Sandbox, receiver: Receiver) -> None:
    _register(pc, receiver.url, ["referral-updated"])
    first = pc.sim.seed_referral(_referral())  # referral-created: not registered
    pc.sim.delivery_enabled = False
    pc.sim.update_referral(first["id"], {"name": "missed"})
    pc.sim.delivery_enabled = True
    pc.sim.update_referral(first["id"], {"name": "seen"})
    deliveries = pc.sim.wait_for_deliveries(1, timeout=10)
    assert pc.sim.wait_for_deliveries(2, timeout=0.3) == deliveries
    assert len(deliveries) == 1
    assert deliveries[0]["event"] == "referral-updated"
    assert len(receiver.received) == 1


def test_failed_delivery_is_retried_until_it_succeeds(pc: Sandbox) -> None:
    flaky = Receiver(statuses=[500, 503])
    try:
        _register(pc, flaky.url)
        pc.sim.seed_referral(_referral())
        delivery = pc.sim.wait_for_deliveries(1, timeout=10)[0]
        assert delivery["ok"] is True
        assert delivery["attempt"] == 3
        assert [a["status"] for a in delivery["attempts"]] == [500, 503, 200]
        bodies = {body for _, body in flaky.received}
        assert len(flaky.received) == 3
        assert len(bodies) == 1
    finally:
        flaky.server.stop()


def test_delivery_gives_up_after_the_configured_attempts(pc: Sandbox) -> None:
    pc.sim.delivery_attempts = 3
    down = Receiver(statuses=[500] * 10)
    try:
        _register(pc, down.url)
        pc.sim.seed_referral(_referral())
        delivery = pc.sim.wait_for_deliveries(1, timeout=10)[0]
        assert delivery["ok"] is False
        assert delivery["attempt"] == 3
        assert len(down.received) == 3
    finally:
        down.server.stop()
    # An unreachable endpoint counts as a failed attempt too.
    pc.sim.delivery_attempts = 2
    pc.http.put(
        "/webhooks/v1/registration", json={"WebhookUrl": "http://127.0.0.1:9/", "WebhookEvents": ["referral-created"]}
    )
    pc.sim.seed_referral(_referral())
    unreachable = pc.sim.wait_for_deliveries(2, timeout=10)[1]
    assert unreachable["ok"] is False
    assert unreachable["error"]


def test_deliver_resends_byte_identical_duplicates(pc: Sandbox, receiver: Receiver) -> None:
    _register(pc, receiver.url)
    referral = pc.sim.seed_referral(_referral(), fire=False)
    assert pc.sim.deliver(referral["id"], "referral-updated", times=2) == 2
    pc.sim.wait_for_deliveries(2, timeout=10)
    assert len(receiver.received) == 2
    assert receiver.received[0][1] == receiver.received[1][1]
    assert receiver.received[0][0]["Authorization"] == receiver.received[1][0]["Authorization"]


# ---------------------------------------------------------------------------------------------- faults
def test_injected_429_keeps_retry_after_and_the_partner_center_error_body(pc: Sandbox) -> None:
    pc.sim.set_faults({"rate": 1.0, "statuses": [429], "retry_after": 7})
    response = pc.http.get(REFERRALS)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "target"}
    assert error["target"] == "referral"
    assert pc.http.post("/webhooks/v1/registration", json={}).status_code == 429

    cert = pc.http.get("/cert/pcnotifications-dispatch.cer")
    assert cert.status_code == 200
    assert cert.content == pc.sim.pki.cert_der
    assert pc.sim.cert_downloads == 1
    assert pc.sim.count(path="/cert") == 0


def test_commit_timeout_on_create_loses_the_answer_but_the_referral_exists(pc: Sandbox) -> None:
    pc.sim.seed_referral(_referral(direction="Outgoing", externalReferenceId="crm-opp-1"), fire=False)  # older
    before = pc.sim.seed_referral(_referral(), fire=False)["createdDateTime"]  # incoming, just before the create
    pc.sim.set_faults({"commit_timeout_rate": 1.0, "timeout_seconds": 2, "routes": [f"POST {REFERRALS}"]})

    with pytest.raises(httpx.TimeoutException):
        pc.http.post(REFERRALS, json=_referral(externalReferenceId="crm-opp-7"), timeout=0.5)

    stored = [r for r in pc.sim.referrals() if r["externalReferenceId"] == "crm-opp-7"]
    assert len(stored) == 1
    assert stored[0]["direction"] == "Outgoing"
    assert pc.sim.recorded("POST", REFERRALS)[0].fault == "commit_timeout"
    # The recovery a client needs, with documented filters only (externalReferenceId is not one): its own
    # creates since before the attempt, then the external reference compared on the client side.
    recent = pc.http.get(REFERRALS, params={"$filter": f"direction eq 'Outgoing' and createdDateTime ge {before}"})
    assert [r["id"] for r in recent.json()["value"]] == [stored[0]["id"]]
    assert recent.json()["value"][0]["externalReferenceId"] == "crm-opp-7"


def test_max_faults_fails_exactly_the_first_create(pc: Sandbox) -> None:
    pc.sim.set_faults({"rate": 1.0, "statuses": [503], "routes": [f"POST {REFERRALS}"], "max_faults": 1})

    first = pc.http.post(REFERRALS, json=_referral())
    listed = pc.http.get(REFERRALS)
    second = pc.http.post(REFERRALS, json=_referral())

    assert first.status_code == 503
    assert first.json()["error"]["code"] == "serviceNotAvailable"
    assert listed.status_code == 200
    assert second.status_code == 200
    assert len(pc.sim.referrals()) == 1
    assert pc.sim.faults_injected == 1


# ---------------------------------------------------------------------------------------------- fixtures / control
@pytest.mark.parametrize(
    ("name", "pick"),
    [
        ("fixture_a_list.json", lambda doc: doc["value"][0]),
        ("fixture_b_shared_accepted.json", lambda doc: doc),
        ("fixture_c_closed_won.json", lambda doc: doc),
    ],
)
def test_microsoft_sample_referrals_round_trip_by_id(pc: Sandbox, name: str, pick: Any) -> None:
    original = pick(_fixture(name))
    pc.sim.seed_referral(original)
    fetched = pc.http.get(f"{REFERRALS}/{original['id']}").json()
    fetched.pop("@odata.context")
    for key, value in original.items():
        assert fetched[key] == value, key
    listed = pc.http.get(REFERRALS, params={"$filter": f"engagementId eq '{original['engagementId']}'"}).json()
    assert [r["id"] for r in listed["value"]] == [original["id"]]


def test_control_api_seeds_updates_and_redelivers(pc: Sandbox, receiver: Receiver) -> None:
    _register(pc, receiver.url)
    seeded = pc.http.post("/_sim/referrals", json={"name": "via control", "Substatus": "Received"}).json()
    assert seeded["substatus"] == "Received"
    assert seeded["direction"] == "Incoming"
    patched = pc.http.patch(f"/_sim/referrals/{seeded['id']}", json={"details": {"notes": "x"}}).json()
    assert patched["eTag"] != seeded["eTag"]
    assert patched["updatedDateTime"] > seeded["updatedDateTime"]
    assert pc.http.put("/_sim/delivery", json={"enabled": False}).json() == {"enabled": False}
    pc.http.patch(f"/_sim/referrals/{seeded['id']}", json={"name": "lost"})
    assert pc.http.put("/_sim/delivery", json={"enabled": True}).json() == {"enabled": True}
    assert pc.http.post("/_sim/deliver", json={"referralId": seeded["id"], "times": 2}).json() == {"queued": 2}
    deliveries = pc.http.get("/_sim/deliveries", params={"count": 4, "timeout": 10}).json()
    assert [d["event"] for d in deliveries] == [
        "referral-created",
        "referral-updated",
        "referral-updated",
        "referral-updated",
    ]
    assert len(pc.http.get("/_sim/referrals").json()) == 1
    assert pc.http.post("/_sim/deliver", json={"referralId": "nope"}).status_code == 404
    assert pc.http.post("/_sim/clear").json() == {"ok": True}
    assert pc.sim.referrals() == []
    assert pc.sim.registration is None
    assert pc.http.get("/webhooks/v1/registration").status_code == 404

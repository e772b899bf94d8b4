"""The Referrals and Webhooks clients against the Partner Center simulator, over real HTTP."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from sandbox.environment import Sandbox
from shared.auth import RefreshTokenGrant
from shared.http import ApiError, ServiceClient, count_calls
from shared.mapping.model import AccountData, ContactData, SolutionData
from shared.partner_center.client import ReferralsClient
from shared.partner_center.writes import ReferralChanges, ReferralDraft
from tests.integration.referrals import FIXTURE, referral


@pytest.fixture(scope="module")
def client(sandbox: Sandbox, partner_center_token: RefreshTokenGrant) -> ReferralsClient:
    url = f"{sandbox.partner_center_url}/v1.0/engagements"
    return ReferralsClient(ServiceClient("partner-center", url, auth=partner_center_token, max_backoff=1))


def draft(external_id: str) -> ReferralDraft:
    """The fixture's customer and deal, as the outbound sync would describe a new referral."""
    profile = FIXTURE["customerProfile"]
    address = profile["address"]
    return ReferralDraft(
        name=FIXTURE["name"],
        external_reference_id=external_id,
        customer=AccountData(
            profile["name"],
            address["addressLine1"],
            None,
            address["city"],
            address["state"],
            address["postalCode"],
            address["country"],
        ),
        customer_contact=ContactData("Ada", "Buyer", "ada@contoso.example"),
        owner=None,
        notes=FIXTURE["details"]["notes"],
        deal_value=Decimal(1000),
        currency="USD",
        closing_date=dt.date(2026, 12, 31),
        solutions=(SolutionData("SOL-1", "Contoso-Ale"),),
        visible_to_microsoft=True,
        help_needed="GeneralOrOther",
    )


def test_list_follows_next_links_with_filter_and_order(client: ReferralsClient, sandbox: Sandbox) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = [sandbox.partner_center.seed_referral(referral(name=f"{tag}-{n}"), fire=False)["id"] for n in range(230)]
    sandbox.partner_center.reset_stats()
    with count_calls() as stats:
        found = list(client.list(filter="status eq 'Active'", orderby="updatedDateTime asc"))
    mine = [r.id for r in found if (r.name or "").startswith(tag)]
    assert mine == ids  # every one, once, in update order
    assert stats.calls["partner-center"] == sandbox.partner_center.count("GET") >= 3  # 100 per page


def test_filter_on_updated_date_time(client: ReferralsClient, sandbox: Sandbox) -> None:
    older = sandbox.partner_center.seed_referral(referral(), fire=False)
    newer = sandbox.partner_center.seed_referral(referral(), fire=False)
    since = older["updatedDateTime"]
    found = {r.id for r in client.list(filter=f"updatedDateTime gt {since}")}
    assert newer["id"] in found
    assert older["id"] not in found


def test_create_then_patch_with_etag(client: ReferralsClient) -> None:
    created = client.create(draft("crm-123"))
    assert created.external_reference_id == "crm-123"
    assert created.e_tag
    updated = client.patch(created.id, ReferralChanges(deal_value=Decimal(12345)), etag=created.e_tag)
    assert updated is not None
    assert updated.details.deal_value == 12345
    assert updated.e_tag != created.e_tag
    with pytest.raises(ApiError) as stale:
        client.patch(created.id, ReferralChanges(notes="x"), etag=created.e_tag)
    assert (stale.value.status, stale.value.code) == (412, "preconditionFailed")
    assert client.get(created.id).details.notes == FIXTURE["details"]["notes"]


def test_a_lost_create_is_found_by_its_external_id_and_never_a_strangers(client: ReferralsClient) -> None:
    """Partner Center ignores an undocumented externalReferenceId filter: the match is made here."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    stranger = client.create(draft(f"crm-{uuid.uuid4()}"))
    ours = client.create(draft("crm-ours-" + stranger.id))
    found = client.find_by_external_reference("crm-ours-" + stranger.id, updated_since=since)
    assert found is not None
    assert found.id == ours.id
    assert client.find_by_external_reference(f"crm-{uuid.uuid4()}", updated_since=since) is None


def test_errors_surface_partner_centers_error_body(client: ReferralsClient, sandbox: Sandbox) -> None:
    closed = sandbox.partner_center.seed_referral(referral(status="Closed", substatus="Won"), fire=False)
    with pytest.raises(ApiError) as info:
        client.patch(closed["id"], ReferralChanges(notes="late"))
    assert info.value.status == 400
    assert info.value.code == "invalidRequest"
    assert info.value.message
    with pytest.raises(ApiError) as missing:
        client.get(str(uuid.uuid4()))
    assert missing.value.status == 404


def test_throttling_is_absorbed(client: ReferralsClient, sandbox: Sandbox) -> None:
    seeded = sandbox.partner_center.seed_referral(referral(), fire=False)
    pc = sandbox.partner_center
    pc.reset_stats()
    pc.set_faults({"rate": 0.5, "statuses": [429, 503], "retry_after": 0, "seed": 1})
    try:
        with count_calls() as stats:
            for _ in range(10):
                assert client.get(seeded["id"]).id == seeded["id"]
    finally:
        pc.set_faults(None)
    refused = [r for r in pc.recorded("GET") if r.status in (429, 503)]
    assert refused, "the simulator must have throttled some calls"
    assert stats.calls["partner-center"] == 10 + len(refused)  # each refusal was retried once more

"""A first share larger than one poll can handle: the CRM poll is time-boxed (CRM_POLL_MAX_SECONDS), saves
its watermark at the last record it handled, and the next poll goes on, until every opportunity marked
for sync is exactly one Partner Center referral. The Dataverse and Partner Center simulators over HTTP,
the app's adapter and clients as services.py builds them (with the CRM limiter), as many records at once
as CRM_POLL_CONCURRENCY's default; state, audit and leases are the engine tests' in-memory stores, which
keeps 5,000 records within a minute or two (Table Storage itself is tested in test_store.py; with
Azurite this test took ten times as long)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from shared import services
from shared.config import get_settings
from shared.crm.dynamics_fields import DYNAMICS_DEFAULTS
from shared.mapping.inbound import InboundOptions
from shared.sync.outbound import OutboundSync
from tests.engine.fakes import FakeAuditLog, FakeClock, FakeLeaseStore, FakeStateStore

OPP = DYNAMICS_DEFAULTS["opportunity"]
DEALS = 5000
ACCOUNTS = 50


def seed(sandbox: Sandbox, tag: str, count: int = DEALS) -> list[str]:
    """What a partner's CRM holds before the first poll: 5,000 opportunities marked for sync, all valid,
    all stamped the same second (the watermark cannot tell them apart: the poll must still not lose any)."""
    dv = sandbox.dataverse
    usd = dv.currency_id("USD")
    accounts = [
        dv.insert("accounts", {"name": f"First Share {tag} {n}", "address1_country": "US"}) for n in range(ACCOUNTS)
    ]
    return [
        dv.insert(
            "opportunities",
            {
                OPP["name"]: f"First share {tag} {n}",
                OPP["sync"]: True,
                OPP["deal_value"]: 1000.0 + n,
                OPP["close_date"]: "2027-06-30",
                "transactioncurrencyid@odata.bind": f"/transactioncurrencies({usd})",
                "customerid_account@odata.bind": f"/accounts({accounts[n % ACCOUNTS]})",
                "parentaccountid@odata.bind": f"/accounts({accounts[n % ACCOUNTS]})",
            },
        )
        for n in range(count)
    ]


@pytest.mark.timeout(600)
def test_a_5000_deal_first_share_completes_across_time_boxed_polls_each_deal_once(
    sandbox: Sandbox, azurite: Azurite, app_settings: Callable[..., None], partner_center_refresh_token: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    # The sandbox org has ten web servers' worth of service protection budget: this test is about the time
    # box (tests/integration/test_crm_pacing.py is about the pace).
    sandbox.dataverse.protection.configure(requests=60_000)
    app_settings(
        sandbox,
        azurite.connection_string,
        CRM_REQUESTS_PER_MINUTE="60000",
        PARTNER_CENTER_REFRESH_TOKEN=partner_center_refresh_token,
    )
    deals = set(seed(sandbox, tag))
    pc_before = {r["id"] for r in sandbox.partner_center.referrals()}
    clock = FakeClock(dt.datetime.now(dt.UTC))  # leases only; the time box runs on the real monotonic clock
    outbound = OutboundSync(
        referrals=services.referrals_client(),
        crm=services.crm(),
        state=FakeStateStore(),
        audit=FakeAuditLog(),
        leases=FakeLeaseStore(clock),
        inbound_options=InboundOptions(),
        max_seconds=10,  # CRM_POLL_MAX_SECONDS, small: a poll handles a few hundred records
        concurrency=get_settings().crm_poll_concurrency,  # CRM_POLL_CONCURRENCY's default, as in Azure
    )

    reports = []
    try:
        while not reports or reports[-1].time_boxed:
            reports.append(outbound.poll())
            # How many polls depends on the machine's speed; each must make progress, or they never end.
            assert reports[-1].outcomes["created"] > 0 or not reports[-1].time_boxed, "a poll made no progress"
    finally:
        sandbox.dataverse.protection.configure(requests=6000)
        # Several records at once spend ~15,000 requests within a few minutes: the tests after this one
        # start with a fresh window instead of a user whose 6,000 are long spent.
        sandbox.dataverse.protection.reset()

    created = Counter(o.crm_id for r in reports for o in r.records if o.outcome == "created")
    assert set(created) == deals
    assert set(created.values()) == {1}
    referrals = [r for r in sandbox.partner_center.referrals() if r["id"] not in pc_before]
    by_deal = Counter(r.get("externalReferenceId") for r in referrals)
    assert {d: by_deal[d] for d in deals} == dict.fromkeys(deals, 1)
    assert len(referrals) == DEALS
    rows = {o["opportunityid"]: o for o in sandbox.dataverse.records("opportunities") if o["opportunityid"] in deals}
    assert {rows[d][OPP["referral_id"]] for d in deals} == {r["id"] for r in referrals}
    assert len(reports) >= 2, "one poll did it all: the time box was never tested"
    assert all(r.ran for r in reports)
    assert sum(r.outcomes["retry"] + r.outcomes["failed"] + r.outcomes["throttled"] for r in reports) == 0
    assert reports[-1].watermark_after is not None
    assert dt.datetime.fromisoformat(reports[-1].watermark_after.replace("Z", "+00:00")) is not None

"""A CRM poll whose records run on several threads still counts every HTTP call exactly once: in the
record's own audit row and in the poll's figures (the status route's "calls" of the last poll). The
Dataverse and Partner Center simulators over HTTP count what they were sent; the app's adapter and
clients as services.py builds them; state, audit and leases in memory, as in test_first_share.py."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from sandbox.azurite import Azurite
from sandbox.environment import PARTNER_CENTER_CLIENT_ID, Sandbox
from shared import services
from shared.mapping.inbound import InboundOptions
from shared.sync.outbound import OutboundSync
from tests.engine.fakes import FakeAuditLog, FakeClock, FakeLeaseStore, FakeStateStore
from tests.integration.test_first_share import seed

DEALS = 40
COLLECTIONS = ("/api/data/v9.2/opportunities", "/api/data/v9.2/leads")  # what the poll queries


def test_a_poll_of_8_records_at_once_counts_each_call_once_as_its_records_add_up(
    sandbox: Sandbox, azurite: Azurite, app_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    token = sandbox.entra.issue_refresh_token(PARTNER_CENTER_CLIENT_ID)  # rotated by this test alone
    sandbox.dataverse.protection.reset()  # the package's earlier tests' requests are not this test's budget
    app_settings(
        sandbox, azurite.connection_string, CRM_REQUESTS_PER_MINUTE="60000", PARTNER_CENTER_REFRESH_TOKEN=token
    )
    deals = set(seed(sandbox, uuid.uuid4().hex[:6], DEALS))
    audit = FakeAuditLog()
    state = FakeStateStore()
    # Only this test's deals: the others of the package's sandbox are past this watermark.
    newest = max(o["modifiedon"] for o in sandbox.dataverse.records("opportunities") if o["opportunityid"] in deals)
    state.save_watermark("crm-dynamics", newest)
    outbound = OutboundSync(
        referrals=services.referrals_client(),
        crm=services.crm(),
        state=state,
        audit=audit,
        leases=FakeLeaseStore(FakeClock(dt.datetime.now(dt.UTC))),
        inbound_options=InboundOptions(),
        concurrency=8,
    )
    pc_before, dv_before = len(sandbox.partner_center.recorded()), len(sandbox.dataverse.recorded())

    with caplog.at_level(logging.DEBUG, logger="cosell.http"):
        report = outbound.poll()

    assert Counter(r.outcome for r in report.records) == {"created": DEALS}
    assert {r.crm_id for r in report.records} == deals
    threads = {r.threadName for r in caplog.records if r.getMessage().startswith("partner-center POST")}
    assert len(threads) > 1, "the records ran on one thread: nothing here was concurrent"
    # What the services were sent, each attempt once...
    pc_sent = len(sandbox.partner_center.recorded()) - pc_before
    dv_sent = sandbox.dataverse.recorded()[dv_before:]
    assert report.api_calls["partner-center"] == pc_sent >= DEALS
    assert report.api_calls["dataverse"] == len(dv_sent)
    # ...and the poll's figures are its records' audit rows added up, plus its own queries of the CRM.
    by_records: Counter[str] = Counter()
    for entry in audit.entries:
        by_records.update(entry.api_calls_by_service)
    poll_thread = threading.current_thread().name  # reads the changed deals (the queries, their metadata)
    own = [r for r in caplog.records if r.threadName == poll_thread and r.getMessage().startswith("dataverse ")]
    assert sum(1 for r in dv_sent if r.method == "GET" and r.path in COLLECTIONS) == 2
    assert len(own) >= 2
    assert by_records["partner-center"] == report.api_calls["partner-center"]
    assert by_records["dataverse"] + len(own) == report.api_calls["dataverse"]
    assert state.last_run("crm-dynamics")["last_api_calls"] == report.api_calls

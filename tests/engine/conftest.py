"""The engine over in-memory fakes: ``InboundSync``, ``OutboundSync`` and ``Reconciler`` against ``MemoryCrm``.

No HTTP, no Azurite, no sleeping: one :class:`FakeClock` drives the engine, the leases and Partner
Center's stamps, so a test can let a lease lapse or order two versions of a referral exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from sandbox.memory_crm import MemoryCrm
from shared.mapping.inbound import InboundOptions
from shared.mapping.model import AccountData, ContactData, SolutionData
from shared.partner_center.models import Referral
from shared.sync.inbound import InboundSync
from shared.sync.outbound import OutboundSync
from shared.sync.reconcile import Reconciler
from tests.contract.referrals import SHARED, referral
from tests.engine.fakes import FakeAuditLog, FakeClock, FakeLeaseStore, FakeQueue, FakeReferrals, FakeStateStore

LEASE_SECONDS = 60
LEASE_WAIT = 20.0


@dataclass
class World:
    clock: FakeClock
    referrals: FakeReferrals
    state: FakeStateStore
    audit: FakeAuditLog
    leases: FakeLeaseStore
    queue: FakeQueue
    crm: MemoryCrm
    inbound: InboundSync
    outbound: OutboundSync
    reconciler: Reconciler

    # ----- arranging -----
    def incoming(self, sample: str = SHARED, **changes: Any) -> Referral:
        """A referral Microsoft sends us (a verbatim sample with a fresh id), stamped now."""
        return self.referrals.seed(referral(sample, **changes))

    def typed_deal(self, title: str = "Outbound deal", **fields: Any) -> str:
        """An opportunity a seller typed and marked for sync, valid to share."""
        values: dict[str, Any] = {
            "account": AccountData("Outbound Customer", city="Redmond", postal_code="98052", country="US"),
            "contact": ContactData("Ada", "Buyer", "ada@customer.example"),
            "deal_value": Decimal(50000),
            "currency": "USD",
            "close_date": dt.date(2026, 12, 31),
            "description": "Migrating the customer's CRM.",
            "help_needed": "CustomerTechnicalArchitecture",
            "solutions": (SolutionData("SOL-15974-MQF", "Contoso-Ale"),),
            "owner": ContactData("Sam", "Seller", "sam@partner.example"),
            **fields,
        }
        self.clock.advance(1)
        return self.crm.seller_creates(title=title, **values)

    def seller_changes(self, crm_id: str, **fields: Any) -> None:
        self.clock.advance(1)
        self.crm.seller_updates(crm_id, **fields)

    # ----- reading -----
    def record(self, crm_id: str) -> Any:
        return self.crm.records[crm_id]

    def deals_of(self, referral_id: str, kind: str = "opportunity") -> list[Any]:
        return [r for r in self.crm.records.values() if r.kind == kind and r.fields.get("referral_id") == referral_id]


@pytest.fixture
def world() -> World:
    return new_world()


def new_world() -> World:
    """A fresh world, for a test that compares two of them."""
    clock = FakeClock()
    referrals = FakeReferrals(clock)
    state, audit, leases, queue = FakeStateStore(), FakeAuditLog(), FakeLeaseStore(clock), FakeQueue()
    crm = MemoryCrm()
    options = InboundOptions()
    common: dict[str, Any] = {"referrals": referrals, "crm": crm, "state": state, "audit": audit}
    # Waiting for a claim is time passing on the fake clock.
    waits: dict[str, Any] = {"lease_seconds": LEASE_SECONDS, "lease_wait": LEASE_WAIT, "clock": clock}
    waits["sleep"] = clock.advance
    return World(
        clock=clock,
        referrals=referrals,
        state=state,
        audit=audit,
        leases=leases,
        queue=queue,
        crm=crm,
        inbound=InboundSync(**common, options=options, **waits),
        outbound=OutboundSync(**common, leases=leases, inbound_options=options, **waits),
        reconciler=Reconciler(
            referrals=referrals,
            state=state,
            leases=leases,
            enqueue=queue,
            first_run_lookback=dt.timedelta(hours=24),
            clock=clock,
        ),
    )

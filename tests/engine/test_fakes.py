"""The fakes offer what the real classes offer: same public methods, same parameters."""

from __future__ import annotations

import inspect

import pytest

from shared.partner_center.client import ReferralsClient
from shared.store.audit import AuditLog
from shared.store.leases import LeaseStore
from shared.store.state import StateStore
from tests.engine.fakes import FakeAuditLog, FakeLeaseStore, FakeReferrals, FakeStateStore

# ReferralsClient.list is the generic query the engine never calls (it asks for changed_since); page is
# the backfill's, which runs against the Partner Center simulator and Azurite (tests/integration); probe is
# the doctor's reachability check, not the engine's.
PAIRS = [
    (ReferralsClient, FakeReferrals, {"list", "page", "probe"}),
    (StateStore, FakeStateStore, set()),
    (AuditLog, FakeAuditLog, set()),
    (LeaseStore, FakeLeaseStore, set()),
]


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


@pytest.mark.parametrize(("real", "fake", "unused"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_a_fake_has_the_public_methods_of_the_real_class(real: type, fake: type, unused: set[str]) -> None:
    expected, offered = _public(real), _public(fake)
    missing = set(expected) - set(offered) - unused
    assert not missing, f"{fake.__name__} lacks {sorted(missing)}"
    for name in set(expected) - unused:
        wanted = [(p.name, p.kind) for p in expected[name].parameters.values()]
        got = [(p.name, p.kind) for p in offered[name].parameters.values()]
        assert got == wanted, (
            f"{fake.__name__}.{name}{offered[name]} differs from {real.__name__}.{name}{expected[name]}"
        )

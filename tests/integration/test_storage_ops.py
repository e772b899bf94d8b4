"""Storage operations per referral message, counted at the wire against Azurite (an exact list: a regression fails).

The inbound sync runs with the app's own clients (shared/services.py) against the Partner Center and
Dataverse simulators; every Table request it makes is named by shared/store/metering.py. README
"How the sync behaves" states the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from shared import services
from shared.store.clients import SYNC_STATE_TABLE, table_client
from shared.store.metering import count_storage, queue_operation, table_operation
from shared.sync.inbound import SyncOutcome
from tests.integration.referrals import referral


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    env = Sandbox(Path(tmp_path_factory.mktemp("storage-ops")), seed=41).start()
    yield env
    env.stop()


@pytest.fixture
def world(org: Sandbox, azurite: Azurite, app_settings: Callable[..., None]) -> Sandbox:
    app_settings(org, azurite.connection_string)
    for name in (SYNC_STATE_TABLE, "AuditLog"):  # created outside the count, as Bicep does in Azure
        table_client(services.get_settings(), name)
    # Warm, as a running host is: the Partner Center token cached, the CRM's metadata read.
    services.inbound_sync().sync(org.partner_center.seed_referral(referral(), fire=False)["id"])
    return org


def synced(referral_id: str) -> tuple[SyncOutcome, list[str]]:
    with count_storage() as ops:
        outcome = services.inbound_sync().sync(referral_id)
    return outcome, ops.operations


def test_a_new_referral_costs_a_read_a_claim_a_commit_the_crm_link_and_the_audit_row(world: Sandbox) -> None:
    ref = world.partner_center.seed_referral(referral(), fire=False)

    outcome, ops = synced(ref["id"])

    assert outcome.outcome == "created"
    assert ops == [
        "get SyncState",  # 404: no state yet
        "insert SyncState",  # the claim: a second worker's insert gets 409
        "update-if-match SyncState",  # the state, If-Match the claim's ETag; clears the claim
        "upsert-merge SyncState",  # the CRM record's row: what both sides agree on (the no-ping-pong key)
        "insert AuditLog",
        "upsert Operations",  # this process's counter row for the hour (the status route's 24-hour counts)
    ]


def test_a_changed_referral_costs_the_same_six_with_a_conditional_claim(world: Sandbox) -> None:
    ref = world.partner_center.seed_referral(referral(), fire=False)
    synced(ref["id"])
    world.partner_center.update_referral(ref["id"], {"details": {"notes": "Budget approved"}}, fire=False)

    outcome, ops = synced(ref["id"])

    assert outcome.outcome == "updated"
    assert ops == [
        "get SyncState",
        "merge-if-match SyncState",  # the claim, If-Match the ETag just read
        "update-if-match SyncState",
        "upsert-merge SyncState",
        "insert AuditLog",
        "upsert Operations",
    ]


def test_a_second_delivery_of_the_same_version_reads_the_state_and_writes_only_the_audit_row(
    world: Sandbox,
) -> None:
    ref = world.partner_center.seed_referral(referral(), fire=False)
    synced(ref["id"])

    outcome, ops = synced(ref["id"])

    assert outcome.outcome == "unchanged"
    assert ops == ["get SyncState", "insert AuditLog", "upsert Operations"]


def test_a_newer_version_with_no_mapped_change_moves_the_out_of_order_floor_in_one_conditional_merge(
    world: Sandbox,
) -> None:
    ref = world.partner_center.seed_referral(referral(), fire=False)
    synced(ref["id"])
    world.partner_center.update_referral(ref["id"], {"unmappedNote": "seen by Microsoft only"}, fire=False)

    outcome, ops = synced(ref["id"])

    assert outcome.outcome == "unchanged"
    assert ops == ["get SyncState", "merge-if-match SyncState", "insert AuditLog", "upsert Operations"]


def test_an_out_of_order_version_is_skipped_with_a_read_and_the_audit_row(world: Sandbox) -> None:
    ref = world.partner_center.seed_referral(referral(), fire=False)
    synced(ref["id"])
    world.partner_center.update_referral(ref["id"], {"updatedDateTime": "2020-01-01T00:00:00Z"}, fire=False)

    outcome, ops = synced(ref["id"])

    assert outcome.outcome == "skipped"
    assert ops == ["get SyncState", "insert AuditLog", "upsert Operations"]


@pytest.mark.parametrize(
    ("method", "url", "headers", "expected"),
    [
        (
            "GET",
            "http://127.0.0.1:1/devstoreaccount1/SyncState(PartitionKey='referral',RowKey='x')",
            {},
            "get SyncState",
        ),
        ("GET", "https://a.table.core.windows.net/SyncState()?$filter=x", {}, "query SyncState"),
        ("POST", "https://a.table.core.windows.net/AuditLog", {}, "insert AuditLog"),
        ("PUT", "https://a.table.core.windows.net/Leases(PartitionKey='l',RowKey='r')", {}, "upsert Leases"),
        ("PUT", "https://a.table.core.windows.net/Ops(PartitionKey='l',RowKey='r')", {"If-Match": "*"}, "update Ops"),
        ("PATCH", "https://a.table.core.windows.net/Ops(PartitionKey='l',RowKey='r')", {}, "upsert-merge Ops"),
        ("PATCH", "https://a/Ops(PartitionKey='l',RowKey='r')", {"If-Match": 'W/"1"'}, "merge-if-match Ops"),
        ("DELETE", "https://a/Ops(PartitionKey='l',RowKey='r')", {"If-Match": 'W/"1"'}, "delete-if-match Ops"),
        ("POST", "https://a.table.core.windows.net/Tables", {}, "create-table"),
        ("POST", "https://a.table.core.windows.net/$batch", {}, "batch"),
    ],
)
def test_table_requests_are_named_by_kind_and_table(
    method: str, url: str, headers: dict[str, str], expected: str
) -> None:
    assert table_operation(method, url, headers) == expected


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("POST", "http://127.0.0.1:1/devstoreaccount1/referral-events/messages", "send referral-events"),
        (
            "GET",
            "https://a.queue.core.windows.net/referral-events/messages?numofmessages=16",
            "receive referral-events",
        ),
        (
            "DELETE",
            "https://a.queue.core.windows.net/referral-events/messages/abc?popreceipt=x",
            "delete-message referral-events",
        ),
        (
            "PUT",
            "https://a.queue.core.windows.net/referral-events/messages/abc?popreceipt=x",
            "update-message referral-events",
        ),
        ("GET", "https://a.queue.core.windows.net/referral-events?comp=metadata", "get-queue referral-events"),
    ],
)
def test_queue_requests_are_named_by_kind_and_queue(method: str, url: str, expected: str) -> None:
    assert queue_operation(method, url, {}) == expected

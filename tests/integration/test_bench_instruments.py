"""The bench's own instruments: a miscounted storage call or a wrong peak would publish wrong numbers."""

from __future__ import annotations

import pytest
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from bench.common import RateSampler, percentiles
from bench.storage_proxy import CountingProxy, classify, proxied_connection_string
from sandbox.azurite import Azurite
from sandbox.sims.dataverse.app import DataverseSimulator
from sandbox.sims.salesforce.app import SalesforceSimulator

_ENTITY = "/devstoreaccount1/Leases(PartitionKey='l',RowKey='b')"
_MESSAGES = "/devstoreaccount1/referral-events/messages"


@pytest.mark.parametrize(
    ("service", "method", "target", "expected"),
    [
        ("table", "POST", "/devstoreaccount1/SyncState", "table insert SyncState"),
        ("table", "GET", "/devstoreaccount1/SyncState(PartitionKey='referral',RowKey='a')", "table read SyncState"),
        ("table", "MERGE", _ENTITY, "table merge Leases"),
        ("table", "PUT", _ENTITY, "table replace Leases"),
        ("table", "DELETE", _ENTITY, "table delete Leases"),
        ("table", "GET", "/devstoreaccount1/AuditLog()?$filter=PartitionKey%20eq%20'x'", "table query AuditLog"),
        ("table", "POST", "/devstoreaccount1/$batch", "table batch"),
        ("table", "POST", "/devstoreaccount1/Tables", "table create-table"),
        ("queue", "POST", _MESSAGES, "queue put referral-events"),
        ("queue", "GET", f"{_MESSAGES}?numofmessages=8", "queue receive referral-events"),
        ("queue", "GET", f"{_MESSAGES}?peekonly=true", "queue peek referral-events"),
        ("queue", "DELETE", f"{_MESSAGES}/abc?popreceipt=x", "queue delete referral-events"),
        ("queue", "PUT", f"{_MESSAGES}/abc?popreceipt=x&visibilitytimeout=5", "queue update referral-events"),
        ("queue", "GET", "/devstoreaccount1/referral-events?comp=metadata", "queue properties referral-events"),
        ("queue", "PUT", "/devstoreaccount1/referral-events", "queue create-queue referral-events"),
    ],
)
def test_each_storage_call_is_named_by_what_it_does(service: str, method: str, target: str, expected: str) -> None:
    assert classify(service, method, target) == expected


def test_the_proxy_counts_real_calls_and_the_sdks_sign_through_it(azurite: Azurite) -> None:
    """Shared Key signs the path, not the host: the SDKs work through the proxy, each call counted once."""
    queue_proxy = CountingProxy("queue", azurite.queue_endpoint).start()
    table_proxy = CountingProxy("table", azurite.table_endpoint).start()
    try:
        connection = proxied_connection_string(azurite.connection_string, {"queue": queue_proxy, "table": table_proxy})
        table = TableClient.from_connection_string(connection, "BenchProxyTest")
        table.create_table()
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "n": 1})
        assert table.get_entity("p", "r")["n"] == 1
        queue = QueueClient.from_connection_string(connection, "bench-proxy-test")
        queue.create_queue()
        queue.send_message("hello")
        [message] = list(queue.receive_messages(max_messages=1))
        queue.delete_message(message)

        assert table_proxy.snapshot() == {
            "table create-table": 1,
            "table insert BenchProxyTest": 1,
            "table read BenchProxyTest": 1,
        }
        assert queue_proxy.snapshot() == {
            "queue create-queue bench-proxy-test": 1,
            "queue put bench-proxy-test": 1,
            "queue receive bench-proxy-test": 1,
            "queue delete bench-proxy-test": 1,
        }
    finally:
        queue_proxy.stop()
        table_proxy.stop()


def test_the_peak_is_the_busiest_minute_not_the_average() -> None:
    sampler = RateSampler(lambda: 0)
    samples, total = [], 0.0
    for second in range(181):  # 100 requests in the first minute, 700 in the second, 10 in the third
        samples.append((float(second), int(total)))
        total += 100 / 60 if second < 60 else 700 / 60 if second < 120 else 10 / 60
    sampler.samples = samples

    assert sampler.peak_per_minute() == pytest.approx(700, abs=15)


def test_percentiles_are_the_median_and_the_95th_value() -> None:
    assert percentiles([float(n) for n in range(1, 101)]) == (50.5, 95.0)


def test_the_arrival_clock_reads_the_referral_ids_each_simulated_crm_holds() -> None:
    """The bench times a referral by when its id appears on an opportunity; rows without one do not count."""
    dataverse = DataverseSimulator()
    dataverse.insert("opportunities", {"name": "Shared", "cosell_referralid": "ref-1"})
    dataverse.insert("opportunities", {"name": "Seller's own"})
    salesforce = SalesforceSimulator(seed=1)
    salesforce.insert(
        "Opportunity",
        {"Name": "Shared", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Referral_Identifier__c": "ref-2"},
    )
    salesforce.insert("Opportunity", {"Name": "Seller's own", "StageName": "Prospecting", "CloseDate": "2026-12-31"})

    assert dataverse.column_values("opportunities", "cosell_referralid") == {"ref-1"}
    assert salesforce.column_values("Opportunity", "Referral_Identifier__c") == {"ref-2"}

"""Poison-queue depth against Azurite: one properties call, a peek only while the queue holds something."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import pytest
from azure.storage.queue import QueueClient

from sandbox.azurite import Azurite
from shared import telemetry
from shared.config import Settings
from shared.store.clients import queue_client
from shared.store.queues import QueueDepth, QueueDepthReader
from tests.infra.kql import queries


@pytest.fixture
def settings(azurite: Azurite) -> Settings:
    return Settings(AzureWebJobsStorage=azurite.connection_string)


def _queue(settings: Settings) -> QueueClient:
    return queue_client(settings, f"depth-{uuid.uuid4().hex[:12]}-poison")


def test_a_missing_queue_is_empty(settings: Settings) -> None:
    client = _queue(settings)
    assert QueueDepthReader({client.queue_name: client}).read(client.queue_name) == QueueDepth(0)


def test_an_empty_queue_has_no_age(settings: Settings) -> None:
    client = _queue(settings)
    client.create_queue()
    assert QueueDepthReader({client.queue_name: client}).read(client.queue_name) == QueueDepth(0)


def test_depth_and_the_age_of_the_front_message(settings: Settings) -> None:
    client = _queue(settings)
    client.create_queue()
    for n in range(3):
        client.send_message(f'{{"referralId": "r{n}"}}')
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)

    depth = QueueDepthReader({client.queue_name: client}, clock=lambda: later).read(client.queue_name)

    assert depth.messages == 3
    assert depth.oldest_age_seconds is not None
    assert 1195 <= depth.oldest_age_seconds <= 1260


def test_a_message_being_replayed_still_counts(settings: Settings) -> None:
    client = _queue(settings)
    client.create_queue()
    client.send_message('{"referralId": "r1"}')
    [received] = client.receive_messages(visibility_timeout=60)  # invisible, as during a replay
    assert received

    depth = QueueDepthReader({client.queue_name: client}).read(client.queue_name)

    assert depth == QueueDepth(1), "counted, but no visible front message to age"


def test_a_message_that_is_not_base64_is_counted_without_an_age(settings: Settings, azurite: Azurite) -> None:
    client = _queue(settings)
    client.create_queue()
    raw = QueueClient.from_connection_string(azurite.connection_string, client.queue_name)  # no base64 policy
    raw.send_message("not base64 at all!")

    depth = QueueDepthReader({client.queue_name: client}).read(client.queue_name)

    assert depth == QueueDepth(1)


def test_the_poison_line_for_a_real_queue(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    client = _queue(settings)
    client.create_queue()
    client.send_message('{"referralId": "r1"}')
    client.send_message('{"referralId": "r2"}')
    reader = QueueDepthReader({client.queue_name: client})

    with caplog.at_level(logging.INFO, logger=telemetry.LOGGER):
        telemetry.report_poison_depths(lambda: reader)

    rows = [queries()["poison"].read(r.getMessage()) for r in caplog.records if r.name == telemetry.LOGGER]
    assert rows == [{"depth": 2, "queue": client.queue_name}]

"""Fixtures for the Dataverse simulator tests: one server for the session, wiped before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import API


@pytest.fixture(scope="session")
def _served() -> Iterator[tuple[DataverseSimulator, ServerThread]]:
    """One server for all modules (stopping one costs half a second); each test gets it wiped below."""
    simulator = DataverseSimulator(seed=7)
    thread = ServerThread(simulator).start()
    yield simulator, thread
    thread.stop()


@pytest.fixture
def sim(_served: tuple[DataverseSimulator, ServerThread]) -> DataverseSimulator:
    simulator = _served[0]
    simulator.set_faults(None)
    simulator.clear()
    simulator.reset_stats()
    return simulator


@pytest.fixture
def server(sim: DataverseSimulator, _served: tuple[DataverseSimulator, ServerThread]) -> ServerThread:
    return _served[1]


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    headers = {"Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0"}
    with httpx.Client(base_url=server.url + API, headers=headers, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def bare() -> Iterator[httpx.Client]:
    """An org nobody has provisioned for the sync yet: standard tables only (read-only use in tests)."""
    simulator = DataverseSimulator(seed=3, schema="bare")
    thread = ServerThread(simulator).start()
    try:
        with httpx.Client(base_url=thread.url + API, timeout=10) as client:
            yield client
    finally:
        thread.stop()

"""Fixtures for the Dataverse simulator tests: one server for the session, wiped before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import API
from tests.sims.serving import served, wiped

HEADERS = {"Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0"}


# One server for all modules; each test gets it wiped below.
_served = served(lambda: DataverseSimulator(seed=7))


@pytest.fixture
def sim(_served: tuple[DataverseSimulator, ServerThread]) -> DataverseSimulator:
    return wiped(_served[0])


@pytest.fixture
def server(sim: DataverseSimulator, _served: tuple[DataverseSimulator, ServerThread]) -> ServerThread:
    return _served[1]


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + API, headers=HEADERS, timeout=10) as c:
        yield c


# An org nobody has provisioned for the sync yet: standard tables only. Alternate keys created on it take
# 0.3 s to become Active (tests that do not wait finish them with /_sim/key-index).
_bare_served = served(lambda: DataverseSimulator(seed=3, schema="bare", key_index_seconds=0.3))


@pytest.fixture
def bare_sim(_bare_served: tuple[DataverseSimulator, ServerThread]) -> DataverseSimulator:
    """The bare org, back to how it started (schema, privileges and rows) before each test."""
    return wiped(_bare_served[0])


@pytest.fixture
def bare_url(bare_sim: DataverseSimulator, _bare_served: tuple[DataverseSimulator, ServerThread]) -> str:
    """The bare org's root URL (its control API is under ``/_sim/``)."""
    return _bare_served[1].url


@pytest.fixture(scope="session")
def _bare_client(_bare_served: tuple[DataverseSimulator, ServerThread]) -> Iterator[httpx.Client]:
    """One client for the session: building an httpx.Client (its TLS context) costs about 0.1 s."""
    with httpx.Client(base_url=_bare_served[1].url + API, headers=HEADERS, timeout=10) as client:
        yield client


@pytest.fixture
def bare(bare_sim: DataverseSimulator, _bare_client: httpx.Client) -> httpx.Client:
    """A client of the bare org (just reset); absolute URLs reach its control API."""
    return _bare_client

"""Fixtures for the Salesforce simulator tests: one server for the session, wiped before each test,
and an API client that signed in with the client-credentials flow."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.salesforce import SalesforceSimulator
from sandbox.sims.salesforce.wire import utc_now
from tests.sims.salesforce.support import CLIENT_ID, CLIENT_SECRET, VERSION, sign_in
from tests.sims.serving import served, wiped

# One TLS context for every client: httpx builds (and loads CA certificates for) one per client otherwise,
# which costs more than the requests themselves here.
_TLS = ssl.create_default_context()


_served = served(lambda: SalesforceSimulator(seed=5, clients={CLIENT_ID: CLIENT_SECRET}))


def _as_it_started(simulator: SalesforceSimulator) -> SalesforceSimulator:
    """Wiped, with the whole daily API allocation left and no session still valid."""
    wiped(simulator)
    simulator.set_api_usage(0, 100_000)
    simulator.revoke_tokens()
    return simulator


@contextmanager
def _signed_in(url: str) -> Iterator[httpx.Client]:
    """A client on ``/services/data/v60.0`` with a fresh bearer token (client-credentials flow)."""
    with httpx.Client(base_url=url, timeout=10, verify=_TLS) as login:
        token = sign_in(login)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    with httpx.Client(base_url=f"{url}/services/data/{VERSION}", headers=headers, timeout=10, verify=_TLS) as client:
        yield client


@pytest.fixture
def sim(_served: tuple[SalesforceSimulator, ServerThread]) -> SalesforceSimulator:
    simulator = _as_it_started(_served[0])
    simulator.clock = utc_now
    return simulator


@pytest.fixture
def server(sim: SalesforceSimulator, _served: tuple[SalesforceSimulator, ServerThread]) -> ServerThread:
    return _served[1]


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    """A client on ``/services/data/v60.0`` with a fresh bearer token."""
    with _signed_in(server.url) as client:
        yield client


# An org nobody has provisioned for the sync: standard and setup objects only.
_bare_served = served(lambda: SalesforceSimulator(seed=3, schema="bare", clients={CLIENT_ID: CLIENT_SECRET}))


@pytest.fixture
def bare_sim(_bare_served: tuple[SalesforceSimulator, ServerThread]) -> SalesforceSimulator:
    """The bare org as it started (schema, customizer rights, rows) before each test."""
    return _as_it_started(_bare_served[0])


@pytest.fixture
def bare_server(bare_sim: SalesforceSimulator, _bare_served: tuple[SalesforceSimulator, ServerThread]) -> ServerThread:
    return _bare_served[1]


@pytest.fixture
def bare(
    bare_sim: SalesforceSimulator, _bare_served: tuple[SalesforceSimulator, ServerThread]
) -> Iterator[httpx.Client]:
    """A client of the bare org on ``/services/data/v60.0`` with a fresh bearer token."""
    with _signed_in(_bare_served[1].url) as client:
        yield client

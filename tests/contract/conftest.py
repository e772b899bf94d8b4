"""The contract suite's one parametrised fixture: every CRM adapter, each with a seller working in it.

Adding an adapter = one name in ``ADAPTERS`` + one factory returning ``(adapter, seller)``.

- ``memory``: :class:`sandbox.memory_crm.MemoryCrm`, fresh per test.
- ``dynamics``: :class:`shared.crm.dynamics.DynamicsCrm` over HTTP against the strict Dataverse
  simulator, with a real ``ServiceClient`` and a client-credentials token from the Entra simulator.
  The simulators start once per session on free ports; each test wipes the org (``clear()``) and
  gets a fresh adapter (so no cache carries over) whose transport counts its writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from sandbox.memory_crm import MemoryCrm
from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from sandbox.sims.entra import EntraSimulator
from shared.auth import ClientCredentialsToken
from shared.crm.dataverse_client import API_PATH, DataverseClient
from shared.crm.dynamics import DynamicsCrm
from shared.crm.dynamics_fields import dynamics_field_map
from shared.crm.port import CrmPort
from shared.http import ServiceClient
from tests.contract.sellers import CountingTransport, DynamicsSeller, MemorySeller, Seller, SteppingClock

TENANT_ID = "00000000-0000-4000-8000-00000000c0de"
CLIENT_ID = "22222222-0000-4000-8000-0000000c0de5"
CLIENT_SECRET = "contract-secret"

SELLER = pytest.StashKey[Seller]()


# ---------------------------------------------------------------------------- memory
def memory_adapter(request: pytest.FixtureRequest) -> tuple[CrmPort, Seller]:
    crm = MemoryCrm()
    return crm, MemorySeller(crm)


# ---------------------------------------------------------------------------- Dynamics 365
@dataclass
class DataverseOrg:
    sim: DataverseSimulator
    url: str
    token: Callable[[], str]


@pytest.fixture(scope="session")
def dataverse_org() -> Iterator[DataverseOrg]:
    entra = EntraSimulator(seed=5)
    entra.add_client(CLIENT_ID, CLIENT_SECRET)
    entra_server = ServerThread(entra).start()
    audience: dict[str, str] = {}
    sim = DataverseSimulator(seed=5, token_validator=lambda token: entra.validator(audience["url"])(token))
    # From now on (modifiedon never goes back before the seeded rows' stamps), one second per write.
    sim.clock = SteppingClock(dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1))
    dv_server = ServerThread(sim).start()
    audience["url"] = dv_server.url
    token = ClientCredentialsToken(entra_server.url, TENANT_ID, CLIENT_ID, CLIENT_SECRET, f"{dv_server.url}/.default")
    try:
        yield DataverseOrg(sim, dv_server.url, token)
    finally:
        dv_server.stop()
        entra_server.stop()


def dynamics_adapter(request: pytest.FixtureRequest) -> tuple[CrmPort, Seller]:
    org: DataverseOrg = request.getfixturevalue("dataverse_org")
    org.sim.set_faults(None)
    org.sim.clear()
    org.sim.reset_stats()
    transport = CountingTransport()
    api = f"{org.url}/{API_PATH}"
    http = ServiceClient("dataverse", api, auth=org.token, transport=transport, max_attempts=1, timeout=10)
    fields = dynamics_field_map(
        deal_value_field="estimatedvalue",
        deal_currency_field="transactioncurrencyid",
        account_country_field="address1_country",
    )
    seller = DynamicsSeller(org.sim, api, org.token, transport)
    request.addfinalizer(http.close)
    request.addfinalizer(seller.close)
    return DynamicsCrm(DataverseClient(http), fields), seller


ADAPTERS: dict[str, Callable[[pytest.FixtureRequest], tuple[CrmPort, Seller]]] = {
    "memory": memory_adapter,
    "dynamics": dynamics_adapter,
}


@pytest.fixture(params=list(ADAPTERS))
def crm(request: pytest.FixtureRequest) -> CrmPort:
    adapter, seller = ADAPTERS[request.param](request)
    request.node.stash[SELLER] = seller
    return adapter


@pytest.fixture
def seller(crm: CrmPort, request: pytest.FixtureRequest) -> Seller:
    """The seller working in the same CRM as ``crm``."""
    return request.node.stash[SELLER]

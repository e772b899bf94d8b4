"""The contract suite's one parametrised fixture: every CRM adapter, each with a seller working in it.

Adding an adapter = one name in ``ADAPTERS`` + one factory returning ``(adapter, seller)``.

- ``memory``: :class:`sandbox.memory_crm.MemoryCrm`, fresh per test.
- ``dynamics``: :class:`shared.crm.dynamics.DynamicsCrm` over HTTP against the strict Dataverse
  simulator, with a real ``ServiceClient`` and a client-credentials token from the Entra simulator.
  The simulators start once per session on free ports; each test wipes the org (``clear()``) and
  gets a fresh adapter (so no cache carries over) whose transport counts its writes.
- ``salesforce``: :class:`shared.crm.salesforce.SalesforceCrm` over HTTP against the strict Salesforce
  REST simulator, built as ``shared.services._salesforce`` builds it (a real client-credentials
  session, ``salesforce_error`` / ``limit_exceeded`` on the ``ServiceClient``, the app's default
  settings), with ``max_attempts=1`` and a transport that counts its writes. The simulator starts once
  per session on a free port; each test wipes the org (``clear()``) and gets a fresh adapter. The
  seller works through a connected app of its own (another consumer key) over the same REST API.
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
from sandbox.sims.salesforce import SalesforceSimulator
from shared.auth import ClientCredentialsToken
from shared.config import Settings
from shared.crm.dataverse_client import API_PATH, DataverseClient
from shared.crm.dynamics import DynamicsCrm
from shared.crm.dynamics_fields import dynamics_field_map
from shared.crm.port import CrmPort
from shared.crm.salesforce import SalesforceCrm
from shared.crm.salesforce_client import (
    ClientCredentialsSession,
    SalesforceClient,
    limit_exceeded,
    salesforce_error,
)
from shared.crm.salesforce_fields import salesforce_field_map
from shared.http import ServiceClient
from tests.contract.sellers import (
    CountingTransport,
    DynamicsSeller,
    MemorySeller,
    SalesforceSeller,
    Seller,
    StepClock,
    SteppingClock,
)

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


# ---------------------------------------------------------------------------- Salesforce
SF_CLIENT_ID = "3MVG9Contract.CoSellSync"  # the sync's connected app
SF_CLIENT_SECRET = "contract-sf-secret"
SF_SELLER_CLIENT_ID = "3MVG9Contract.SellerApp"  # the seller's own app
SF_SELLER_SECRET = "contract-seller-secret"


@dataclass
class SalesforceOrg:
    sim: SalesforceSimulator
    url: str  # the org's My Domain: token endpoint and REST API
    seller_token: Callable[[], str]


@pytest.fixture(scope="session")
def salesforce_org() -> Iterator[SalesforceOrg]:
    sim = SalesforceSimulator(seed=5, clients={SF_CLIENT_ID: SF_CLIENT_SECRET, SF_SELLER_CLIENT_ID: SF_SELLER_SECRET})
    server = ServerThread(sim).start()
    seller = ClientCredentialsSession(server.url, SF_SELLER_CLIENT_ID, SF_SELLER_SECRET, timeout=10)
    try:
        yield SalesforceOrg(sim, server.url, seller)
    finally:
        server.stop()


def salesforce_adapter(request: pytest.FixtureRequest) -> tuple[CrmPort, Seller]:
    org: SalesforceOrg = request.getfixturevalue("salesforce_org")
    org.sim.set_faults(None)
    # SystemModstamp is to the second: one second per write makes "modified at or after" and "oldest
    # first" observable in a test that runs in milliseconds. The clock is swapped before clear(), so the
    # seeded rows are stamped by this test's clock, not the previous test's (which ran minutes ahead).
    org.sim.clock = StepClock(dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1))
    org.sim.clear()
    org.sim.reset_stats()
    org.sim.set_api_usage(0, 100_000)
    # The app's defaults for CRM_KIND=salesforce (no environment read), as shared.services._salesforce uses them.
    settings = Settings.model_construct(crm_kind="salesforce")
    version = settings.salesforce_api_version
    session = ClientCredentialsSession(org.url, SF_CLIENT_ID, SF_CLIENT_SECRET, timeout=10)
    transport = CountingTransport()
    http = ServiceClient(
        "salesforce",
        f"{org.url}/services/data/{version}/",
        auth=session,
        transport=transport,
        timeout=10,
        max_attempts=1,
        error_parser=salesforce_error,
        throttled=limit_exceeded,
    )
    fields = salesforce_field_map(
        deal_value_field=settings.deal_value_field,
        deal_currency_field=settings.deal_currency_field,
        account_country_field=settings.account_country_field,
    )
    adapter = SalesforceCrm(
        SalesforceClient(http, origin=org.url, limit_pause=settings.salesforce_limit_pause_seconds),
        fields,
        stage_pending=settings.salesforce_stage_pending,
        stage_accepted=settings.salesforce_stage_accepted,
        lead_status=settings.salesforce_lead_status,
        display_checkmark=settings.display_checkmark,
        audit_max_chars=settings.audit_max_chars,
    )
    seller = SalesforceSeller(
        f"{org.url}/services/data/{version}",
        org.seller_token,
        transport,
        stage_pending=settings.salesforce_stage_pending,
        stage_accepted=settings.salesforce_stage_accepted,
    )
    request.addfinalizer(http.close)
    request.addfinalizer(seller.close)
    return adapter, seller


ADAPTERS: dict[str, Callable[[pytest.FixtureRequest], tuple[CrmPort, Seller]]] = {
    "memory": memory_adapter,
    "dynamics": dynamics_adapter,
    "salesforce": salesforce_adapter,
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

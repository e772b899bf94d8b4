"""Adopt reads every page of the connector's records: Dataverse ``@odata.nextLink``, Salesforce ``nextRecordsUrl``.

Small pages (2 rows) over the simulators, so five records take three pages; every record on every page
is adopted, and the pages were really followed (the simulators recorded the requests).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from sandbox.sims.salesforce import SalesforceSimulator
from shared.crm.dataverse_client import API_PATH, DataverseClient
from shared.crm.dynamics_adopt import DynamicsAdoption
from shared.crm.dynamics_fields import dynamics_connector_map, dynamics_field_map
from shared.crm.salesforce_adopt import SalesforceAdoption
from shared.crm.salesforce_client import ClientCredentialsSession, SalesforceClient, salesforce_error
from shared.crm.salesforce_fields import salesforce_connector_map, salesforce_field_map
from shared.http import ServiceClient
from shared.sync.adopt import Adopter

RECORDS = 5
CLIENT, SECRET = "adopt-paging-client", "adopt-paging-secret"


@pytest.fixture(scope="module")
def dataverse() -> Iterator[tuple[DataverseSimulator, str]]:
    sim = DataverseSimulator(seed=41)
    server = ServerThread(sim).start()
    try:
        yield sim, server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def salesforce() -> Iterator[tuple[SalesforceSimulator, str]]:
    sim = SalesforceSimulator(seed=43, clients={CLIENT: SECRET}, default_batch_size=2)
    server = ServerThread(sim).start()
    try:
        yield sim, server.url
    finally:
        server.stop()


def test_dynamics_pages_are_followed(dataverse: tuple[DataverseSimulator, str]) -> None:
    sim, url = dataverse
    sim.install_connector()
    ids = {
        sim.insert(
            "opportunities",
            {"name": f"Deal {n}", "msft_microsoftpartnercenterreferralidentifier": str(uuid.uuid4())},
        )
        for n in range(RECORDS)
    }
    fields = dynamics_field_map(
        deal_value_field="estimatedvalue", deal_currency_field="transactioncurrencyid", account_country_field="x"
    )
    client = DataverseClient(ServiceClient("dataverse", f"{url}/{API_PATH}"))
    links = DynamicsAdoption(client, fields, dynamics_connector_map(), page_size=2)

    report = Adopter(links).run(apply=True)

    assert {i.crm_id for i in report.items if i.outcome == "adopted"} == ids
    pages = [r for r in sim.recorded("GET") if r.path.endswith("/opportunities")]
    assert len(pages) == 3, "two nextLinks followed"
    assert all(r.get("cosell_referralid") for r in sim.records("opportunities"))


def test_salesforce_pages_are_followed(salesforce: tuple[SalesforceSimulator, str]) -> None:
    sim, url = salesforce
    sim.install_connector()
    ids = {
        sim.insert(
            "Opportunity",
            {
                "Name": f"Deal {n}",
                "StageName": "Prospecting",
                "CloseDate": "2026-12-31",
                "pcref__Referral_Identifier__c": str(uuid.uuid4()),
            },
        )
        for n in range(RECORDS)
    }
    session = ClientCredentialsSession(url, CLIENT, SECRET)
    http = ServiceClient("salesforce", f"{url}/services/data/v60.0/", auth=session, error_parser=salesforce_error)
    fields = salesforce_field_map(
        deal_value_field="Amount", deal_currency_field="CurrencyIsoCode", account_country_field="BillingCountryCode"
    )
    connector, explicit = salesforce_connector_map()
    links = SalesforceAdoption(SalesforceClient(http, origin=url), fields, connector, explicit=explicit)

    report = Adopter(links).run(apply=True)

    assert {i.crm_id for i in report.items if i.outcome == "adopted"} == ids
    more = [r for r in sim.recorded("GET") if "/query/" in r.path]
    assert len(more) == 2, "the query's nextRecordsUrl was followed twice"
    assert all(r.get("Referral_Identifier__c") for r in sim.records("Opportunity"))

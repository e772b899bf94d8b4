"""A seller working in the simulated Dynamics 365: real Web API calls, as the sandbox's other application.

The demo, ``make run`` and the end-to-end tests use it to change CRM data the way a user would, so
the app sees ordinary Web API writes (modifiedon, versionnumber, actions), not simulator shortcuts.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import httpx

from sandbox.environment import DATAVERSE_CLIENT_ID, TENANT_ID
from shared.odata import odata_string

API = "/api/data/v9.2"


class SandboxEndpoints(Protocol):
    """Where the simulators listen and the sellers' own app credentials: a running
    :class:`~sandbox.environment.Sandbox`, or :class:`~sandbox.act.RunningSandbox` read from the file
    ``make run`` writes, so a command in another terminal acts on the same sandbox."""

    entra_url: str
    dataverse_url: str
    salesforce_url: str
    dv_client_secret: str
    sf_client_secret: str


class CrmUser:
    """A seller working in Dynamics 365: real Web API calls, as the sandbox's other application."""

    def __init__(self, sandbox: SandboxEndpoints) -> None:
        token = httpx.post(
            f"{sandbox.entra_url}/{TENANT_ID}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": DATAVERSE_CLIENT_ID,
                "client_secret": sandbox.dv_client_secret,
                "scope": f"{sandbox.dataverse_url}/.default",
            },
        ).json()["access_token"]
        self.sandbox = sandbox
        self.http = httpx.Client(
            base_url=f"{sandbox.dataverse_url}{API}/", headers={"Authorization": f"Bearer {token}"}
        )

    def create(self, entity_set: str, body: dict[str, Any]) -> str:
        response = self.http.post(entity_set, json=body, headers={"Prefer": "return=representation"})
        assert response.status_code == 201, response.text
        key = {
            "accounts": "accountid",
            "contacts": "contactid",
            "opportunities": "opportunityid",
            "cosell_solutions": "cosell_solutionid",
            "leads": "leadid",
        }[entity_set]
        return str(response.json()[key])

    def currency_id(self, iso_code: str) -> str:
        """The org's currency row for an ISO code, looked up as any Web API client must."""
        response = self.http.get(
            "transactioncurrencies",
            params={"$select": "transactioncurrencyid", "$filter": f"isocurrencycode eq {odata_string(iso_code)}"},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["value"][0]["transactioncurrencyid"])

    def referral_of(self, opportunity_id: str) -> tuple[str, str | None]:
        """The opportunity's name and the referral id the sync wrote on it (None until it has)."""
        response = self.http.get(f"opportunities({opportunity_id})", params={"$select": "name,cosell_referralid"})
        assert response.status_code == 200, response.text
        row = response.json()
        return str(row.get("name") or ""), row.get("cosell_referralid")

    def deal_for(self, referral_id: str) -> tuple[str, str] | None:
        """(id, name) of the opportunity carrying ``referral_id``, if the sync has made one."""
        response = self.http.get(
            "opportunities",
            params={"$select": "opportunityid,name", "$filter": f"cosell_referralid eq {odata_string(referral_id)}"},
        )
        assert response.status_code == 200, response.text
        rows = response.json()["value"]
        return (str(rows[0]["opportunityid"]), str(rows[0]["name"])) if rows else None

    def update(self, entity_set: str, record_id: str, body: dict[str, Any]) -> None:
        response = self.http.patch(f"{entity_set}({record_id})", json=body, headers={"If-Match": "*"})
        assert response.status_code == 204, response.text

    def win(self, opportunity_id: str, revenue: float) -> None:
        response = self.http.post(
            "WinOpportunity",
            json={
                "Status": 3,
                "OpportunityClose": {
                    "subject": "Won",
                    "actualrevenue": revenue,
                    "opportunityid@odata.bind": f"/opportunities({opportunity_id})",
                },
            },
        )
        assert response.status_code == 204, response.text

    def opportunity(
        self,
        *,
        country: str = "US",
        contact: bool = True,
        solution: bool = True,
        value: float = 50000,
        help_needed: int | None = 100000001,
        name: str = "",
    ) -> str:
        tag = uuid.uuid4().hex[:8]
        account = self.create(
            "accounts",
            {
                "name": f"Outbound Customer {tag}",
                "address1_city": "Redmond",
                "address1_postalcode": "98052",
                "address1_country": country,
            },
        )
        body: dict[str, Any] = {
            "name": name or f"Outbound deal {tag}",
            "estimatedvalue": value,
            "estimatedclosedate": "2026-12-31",
            "description": "Migrating the customer's CRM to Dynamics 365.",
            "cosell_syncwithpartnercenter": True,
            "isrevenuesystemcalculated": False,
            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({self.currency_id('USD')})",
            "customerid_account@odata.bind": f"/accounts({account})",
            "parentaccountid@odata.bind": f"/accounts({account})",
        }
        if help_needed is not None:
            body["cosell_helpneeded"] = help_needed
        if contact:
            contact_id = self.create(
                "contacts",
                {
                    "firstname": "Ada",
                    "lastname": "Buyer",
                    "emailaddress1": f"ada.{tag}@customer.example",
                    "parentcustomerid_account@odata.bind": f"/accounts({account})",
                },
            )
            body["parentcontactid@odata.bind"] = f"/contacts({contact_id})"
        opportunity = self.create("opportunities", body)
        if solution:
            self.create(
                "cosell_solutions",
                {
                    "cosell_solutionidentifier": "SOL-15974-MQF",
                    "cosell_name": "Contoso-Ale",
                    "cosell_OpportunityId@odata.bind": f"/opportunities({opportunity})",  # SchemaName case
                },
            )
        return opportunity

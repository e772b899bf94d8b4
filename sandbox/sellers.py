"""A seller at work in either simulated CRM, behind one interface, and a neutral view of its records.

``make demo``, ``make run`` and the end-to-end tests drive both CRMs with the same story (share a
deal, change it, win it, type a bad country) and check the outcome the same way; each seller makes
real API calls to its simulator, as a user's app would, so the sync sees ordinary writes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from sandbox.crm_user import CrmUser, SandboxEndpoints
from sandbox.environment import SALESFORCE_CLIENT_ID, Sandbox
from sandbox.sims.base import RecordedRequest
from shared.crm.salesforce_client import soql, soql_string

_HELP = {
    "CustomerTechnicalArchitecture": 100000001,
    "ProofOfConceptOrDemo": 100000002,
}


@dataclass(frozen=True)
class DealView:
    """A CRM record as the sync leaves it, in neutral words."""

    id: str
    name: str
    referral_id: str | None
    value: float | None
    stage: str  # open | won | lost
    audit: str


class Seller(Protocol):
    crm_name: str

    def opportunity(
        self,
        *,
        name: str = "",
        country: str = "US",
        contact: bool = True,
        solution: bool = True,
        value: float = 50000,
        help_needed: str | None = "CustomerTechnicalArchitecture",
    ) -> str: ...

    def set_value(self, deal_id: str, value: float) -> None: ...

    def set_description(self, deal_id: str, text: str) -> None: ...

    def touch(self, deal_id: str) -> None:
        """Change a field the sync does not share (the record's modified stamp moves)."""
        ...

    def win(self, deal_id: str, value: float) -> None: ...

    def deal(self, deal_id: str) -> DealView | None: ...

    def deals_for(self, referral_id: str) -> list[DealView]: ...

    def leads_for(self, referral_id: str) -> list[str]: ...

    def writes(self) -> int: ...

    def poll_watermark(self) -> str: ...


class _Simulator(Protocol):
    """The part of a CRM simulator a seller reads the sync's outcome from."""

    def get(self, table: str, record_id: str) -> dict[str, Any] | None: ...

    def records(self, table: str) -> list[dict[str, Any]]: ...

    def recorded(self) -> list[RecordedRequest]: ...


class _ReadsOutcome:
    """How a seller reads what the sync left in its simulator: one rule for every CRM, in each CRM's names."""

    _sim: _Simulator
    _deal_table: str
    _lead_table: str
    _referral_column: str
    _lead_name_column: str

    def _view(self, row: dict[str, Any]) -> DealView:
        raise NotImplementedError

    def deal(self, deal_id: str) -> DealView | None:
        row = self._sim.get(self._deal_table, deal_id)
        return self._view(row) if row else None

    def deals_for(self, referral_id: str) -> list[DealView]:
        rows = [r for r in self._sim.records(self._deal_table) if r.get(self._referral_column) == referral_id]
        return [self._view(r) for r in rows]

    def leads_for(self, referral_id: str) -> list[str]:
        rows = self._sim.records(self._lead_table)
        return [str(r.get(self._lead_name_column) or "") for r in rows if r.get(self._referral_column) == referral_id]

    def writes(self) -> int:
        """The CRM API writes the simulator served (a token request is no write)."""
        writes = ("POST", "PATCH", "DELETE")
        return sum(1 for r in self._sim.recorded() if r.method in writes and "/oauth2/" not in r.path)


class DynamicsSeller(_ReadsOutcome):
    crm_name = "Dynamics 365"
    _deal_table, _lead_table = "opportunities", "leads"
    _referral_column, _lead_name_column = "cosell_referralid", "subject"

    def __init__(self, sandbox: Sandbox) -> None:
        self._user = CrmUser(sandbox)
        self._sim = sandbox.dataverse

    def opportunity(self, *, help_needed: str | None = "CustomerTechnicalArchitecture", **kwargs: Any) -> str:
        return self._user.opportunity(help_needed=_HELP.get(help_needed or ""), **kwargs)

    def set_value(self, deal_id: str, value: float) -> None:
        self._user.update("opportunities", deal_id, {"estimatedvalue": value})

    def set_description(self, deal_id: str, text: str) -> None:
        self._user.update("opportunities", deal_id, {"description": text})

    def touch(self, deal_id: str) -> None:
        self._user.update("opportunities", deal_id, {"closeprobability": 40})

    def win(self, deal_id: str, value: float) -> None:
        self._user.win(deal_id, value)

    def poll_watermark(self) -> str:
        return "crm-dynamics"

    def _view(self, row: dict[str, Any]) -> DealView:
        return DealView(
            id=str(row["opportunityid"]),
            name=str(row.get("name") or ""),
            referral_id=row.get("cosell_referralid"),
            value=row.get("estimatedvalue"),
            stage={1: "won", 2: "lost"}.get(int(row.get("statecode") or 0), "open"),
            audit=str(row.get("cosell_audit") or ""),
        )


class SalesforceUser:
    """A seller's writes in the simulated Salesforce org, through the REST API with a client of its own."""

    def __init__(self, sandbox: SandboxEndpoints) -> None:
        base = sandbox.salesforce_url
        token = httpx.post(
            f"{base}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": SALESFORCE_CLIENT_ID,
                "client_secret": sandbox.sf_client_secret,
            },
        ).json()["access_token"]
        self._http = httpx.Client(base_url=f"{base}/services/data/v60.0/", headers={"Authorization": f"Bearer {token}"})

    def _create(self, sobject: str, body: dict[str, Any]) -> str:
        response = self._http.post(f"sobjects/{sobject}", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def update(self, sobject: str, record_id: str, body: dict[str, Any]) -> None:
        response = self._http.patch(f"sobjects/{sobject}/{record_id}", json=body)
        assert response.status_code == 204, response.text

    def referral_of(self, opportunity_id: str) -> tuple[str, str | None]:
        """The opportunity's name and the referral id the sync wrote on it (None until it has)."""
        response = self._http.get(
            f"sobjects/Opportunity/{opportunity_id}", params={"fields": "Name,Referral_Identifier__c"}
        )
        assert response.status_code == 200, response.text
        row = response.json()
        return str(row.get("Name") or ""), row.get("Referral_Identifier__c")

    def deal_for(self, referral_id: str) -> tuple[str, str] | None:
        """(id, name) of the opportunity carrying ``referral_id``, if the sync has made one."""
        query = soql(["Id", "Name"], "Opportunity", f"Referral_Identifier__c = {soql_string(referral_id)}")
        response = self._http.get("query", params={"q": query})
        assert response.status_code == 200, response.text
        rows = response.json()["records"]
        return (str(rows[0]["Id"]), str(rows[0]["Name"])) if rows else None

    def opportunity(
        self,
        *,
        name: str = "",
        country: str = "US",
        contact: bool = True,
        solution: bool = True,
        value: float = 50000,
        help_needed: str | None = "CustomerTechnicalArchitecture",
    ) -> str:
        tag = uuid.uuid4().hex[:8]
        account: dict[str, Any] = {
            "Name": f"Outbound Customer {tag}",
            "BillingCity": "Redmond",
            "BillingPostalCode": "98052",
        }
        # A country that is not an ISO code cannot even be stored in a picklist org: use the text field.
        account["BillingCountryCode" if len(country) == 2 else "BillingCountry"] = country
        account_id = self._create("Account", account)
        body: dict[str, Any] = {
            "Name": name or f"Outbound deal {tag}",
            "StageName": "Qualification",
            "CloseDate": "2026-12-31",
            "Amount": value,
            "CurrencyIsoCode": "USD",
            "Description": "Migrating the customer's CRM to Dynamics 365.",
            "AccountId": account_id,
            "Sync_with_Partner_Center__c": True,
        }
        if help_needed:
            body["How_can_Microsoft_help__c"] = help_needed
        opportunity_id = self._create("Opportunity", body)
        if contact:
            contact_id = self._create(
                "Contact",
                {
                    "FirstName": "Ada",
                    "LastName": "Buyer",
                    "Email": f"ada.{tag}@contoso.example",
                    "AccountId": account_id,
                },
            )
            self._create(
                "OpportunityContactRole", {"OpportunityId": opportunity_id, "ContactId": contact_id, "IsPrimary": True}
            )
        if solution:
            self._create(
                "Microsoft_Solution__c",
                {"Name": "Contoso-Ale", "Solution_Identifier__c": "SOL-15974-MQF", "Opportunity__c": opportunity_id},
            )
        return opportunity_id


class SalesforceSeller(SalesforceUser, _ReadsOutcome):
    """A seller in the simulated Salesforce org; reads the outcome from the simulator it runs beside."""

    crm_name = "Salesforce"
    _deal_table, _lead_table = "Opportunity", "Lead"
    _referral_column, _lead_name_column = "Referral_Identifier__c", "Company"

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self._sim = sandbox.salesforce

    def set_value(self, deal_id: str, value: float) -> None:
        self.update("Opportunity", deal_id, {"Amount": value})

    def set_description(self, deal_id: str, text: str) -> None:
        self.update("Opportunity", deal_id, {"Description": text})

    def touch(self, deal_id: str) -> None:
        self.update("Opportunity", deal_id, {"NextStep": "Call the customer"})

    def win(self, deal_id: str, value: float) -> None:
        self.update("Opportunity", deal_id, {"StageName": "Closed Won", "Amount": value})

    def poll_watermark(self) -> str:
        return "crm-salesforce"

    def _view(self, row: dict[str, Any]) -> DealView:
        stage = "open"
        if row.get("IsClosed"):
            stage = "won" if row.get("IsWon") else "lost"
        return DealView(
            id=str(row["Id"]),
            name=str(row.get("Name") or ""),
            referral_id=row.get("Referral_Identifier__c"),
            value=row.get("Amount"),
            stage=stage,
            audit=str(row.get("Audit__c") or ""),
        )


def seller_for(sandbox: Sandbox, crm: str) -> Seller:
    return SalesforceSeller(sandbox) if crm == "salesforce" else DynamicsSeller(sandbox)

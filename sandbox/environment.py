"""The simulated outside world, wired together: Entra ID, Partner Center (with signed webhooks), Dataverse
and Salesforce.

``make run``, ``make demo`` and the end-to-end tests all build it here, so what a developer sees
locally is exactly what the tests exercise. :meth:`Sandbox.app_settings` returns the app settings
that point the function app at these simulators; nothing else in the app knows they are fakes.
The Salesforce org runs alongside; :meth:`Sandbox.salesforce_settings` holds what ``CRM_KIND=salesforce``
needs (``app_settings`` keeps Dynamics as the sandbox's CRM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sandbox.pki import Pki, make_pki
from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from sandbox.sims.entra import EntraSimulator
from sandbox.sims.partner_center import PartnerCenterSimulator
from sandbox.sims.salesforce import SalesforceSimulator

ORGANIZATION = "Co-sell Sandbox"
TENANT_ID = "00000000-0000-4000-8000-00000000c05e"
PARTNER_CENTER_CLIENT_ID = "11111111-0000-4000-8000-000000000001"
DATAVERSE_CLIENT_ID = "22222222-0000-4000-8000-000000000d65"
SALESFORCE_CLIENT_ID = "3MVG9CoSellSandbox.ConnectedApp"
PARTNER_CENTER_AUDIENCE = "https://api.partner.microsoft.com"
WEBHOOKS_AUDIENCE = "https://api.partnercenter.microsoft.com"
# Where Partner Center's real signing certificate lives (WEBHOOK_CERT_URL_PREFIXES' default).
MICROSOFT_CERT_PREFIX = "https://3psostorageacct.blob.core.windows.net/cert/"


@dataclass
class SandboxPorts:
    entra: int = 0
    partner_center: int = 0
    dataverse: int = 0
    salesforce: int = 0


@dataclass
class Sandbox:
    data_dir: Path
    ports: SandboxPorts = field(default_factory=SandboxPorts)
    seed: int = 0
    delivery_backoff: float = 0.5
    # "bare": the CRMs start as a new org does, without the sync's schema (make run provisions it
    # through POST /api/manage/crm-schema, the real first step); "provisioned" for the tests.
    crm_schema: str = "provisioned"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.pki: Pki = make_pki(self.data_dir / "pki", ORGANIZATION)
        # Secrets of the simulated tenant: generated per run, never real.
        self.pc_client_secret = f"pc-secret-{self.seed}"
        self.dv_client_secret = f"dv-secret-{self.seed}"
        self.sf_client_secret = f"sf-secret-{self.seed}"
        # Only the sandbox's tenant exists, so a wrong tenant id gets Entra's AADSTS90002.
        self.entra = EntraSimulator(seed=self.seed, tenants={TENANT_ID})
        self.entra.add_client(PARTNER_CENTER_CLIENT_ID, self.pc_client_secret)
        self.entra.add_client(DATAVERSE_CLIENT_ID, self.dv_client_secret)
        self.partner_center = PartnerCenterSimulator(
            pki=self.pki,
            seed=self.seed,
            referrals_token_validator=self.entra.validator(PARTNER_CENTER_AUDIENCE),
            webhooks_token_validator=self.entra.validator(WEBHOOKS_AUDIENCE),
            delivery_backoff=self.delivery_backoff,
        )
        self.dataverse = DataverseSimulator(
            seed=self.seed,
            token_validator=self._dataverse_token_ok,
            schema=self.crm_schema,  # type: ignore[arg-type]
        )
        self.salesforce = SalesforceSimulator(
            seed=self.seed,
            clients={SALESFORCE_CLIENT_ID: self.sf_client_secret},
            schema=self.crm_schema,  # type: ignore[arg-type]
        )
        self._servers: list[ServerThread] = []

    def _dataverse_token_ok(self, token: str) -> bool:
        return self.entra.validator(self.dataverse_url)(token)

    def start(self) -> Sandbox:
        self._entra_server = ServerThread(self.entra, port=self.ports.entra).start()
        self._pc_server = ServerThread(self.partner_center, port=self.ports.partner_center).start()
        self._dv_server = ServerThread(self.dataverse, port=self.ports.dataverse).start()
        self._sf_server = ServerThread(self.salesforce, port=self.ports.salesforce).start()
        self._servers = [self._entra_server, self._pc_server, self._dv_server, self._sf_server]
        self.partner_center.base_url = self._pc_server.url
        self.refresh_token = self.entra.issue_refresh_token(PARTNER_CENTER_CLIENT_ID)
        return self

    def stop(self) -> None:
        self.partner_center.close()
        for server in self._servers:
            server.stop()
        self._servers = []

    @property
    def entra_url(self) -> str:
        return self._entra_server.url

    @property
    def partner_center_url(self) -> str:
        return self._pc_server.url

    @property
    def dataverse_url(self) -> str:
        return self._dv_server.url

    @property
    def salesforce_url(self) -> str:
        """The org's My Domain: token endpoint and REST API on the same host, as ``instance_url`` says."""
        return self._sf_server.url

    def salesforce_settings(self) -> dict[str, str]:
        """The settings that point the app at the simulated Salesforce org (merge over ``app_settings``)."""
        return {
            "CRM_KIND": "salesforce",
            "SALESFORCE_LOGIN_URL": self.salesforce_url,
            "SALESFORCE_CLIENT_ID": SALESFORCE_CLIENT_ID,
            "SALESFORCE_CLIENT_SECRET": self.sf_client_secret,
            "SALESFORCE_API_VERSION": "v60.0",
        }

    def app_settings(self, storage_connection: str) -> dict[str, str]:
        """Every setting the function app needs to run against this sandbox."""
        return {
            "AzureWebJobsStorage": storage_connection,
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "CRM_KIND": "dynamics",
            "ENTRA_AUTHORITY_HOST": self.entra_url,
            "PARTNER_CENTER_API_URL": f"{self.partner_center_url}/v1.0/engagements",
            "PARTNER_CENTER_WEBHOOK_API_URL": f"{self.partner_center_url}/webhooks/v1",
            "PARTNER_CENTER_TENANT_ID": TENANT_ID,
            "PARTNER_CENTER_CLIENT_ID": PARTNER_CENTER_CLIENT_ID,
            "PARTNER_CENTER_CLIENT_SECRET": self.pc_client_secret,
            "PARTNER_CENTER_REFRESH_TOKEN": self.refresh_token,
            # The simulator's certificate, and Microsoft's documented host, as a deployment lists it.
            "WEBHOOK_CERT_URL_PREFIXES": f"{self.partner_center_url}/cert/,{MICROSOFT_CERT_PREFIX}",
            "WEBHOOK_CERT_ORGANIZATION": ORGANIZATION,
            "WEBHOOK_CA_BUNDLE": str(self.pki.root_pem_path),
            "DATAVERSE_URL": self.dataverse_url,
            "DATAVERSE_TENANT_ID": TENANT_ID,
            "DATAVERSE_CLIENT_ID": DATAVERSE_CLIENT_ID,
            "DATAVERSE_CLIENT_SECRET": self.dv_client_secret,
            # Timers read these as %NAME%: in Azure the Bicep sets them; here the sandbox does.
            "CRM_POLL_SCHEDULE": "*/10 * * * * *",
            "RECONCILE_SCHEDULE": "0 */15 * * * *",
            # The simulators ask for Retry-After 1 s; keep backoff short so faults clear quickly.
            "HTTP_MAX_BACKOFF_SECONDS": "5",
            "HTTP_TIMEOUT_SECONDS": "5",
        }

"""Where a person opens a CRM record or a referral: the links the status route and the dashboard give.

Each CRM's record URL is that CRM's own documented form, so it lives with the adapters:

- Dynamics 365: ``{DATAVERSE_URL}/main.aspx?pagetype=entityrecord&etn=<table>&id=<id>`` (Microsoft Learn,
  "Open forms, views, dialogs, and reports with a URL": ``etn`` is the table's logical name).
- Salesforce Lightning: ``{My Domain}/lightning/r/<Object>/<id>/view`` (Salesforce Help, "Lightning
  Experience URL format"; the My Domain login URL redirects to the org's Lightning host).
- Partner Center: ``REFERRAL_LINK_TEMPLATE``, the same link the sync writes on the CRM record.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from shared.config import Settings

_SALESFORCE_OBJECTS = {"opportunity": "Opportunity", "lead": "Lead"}
_DYNAMICS_TABLES = {"opportunity": "opportunity", "lead": "lead"}


@dataclass(frozen=True)
class RecordLinks:
    dataverse_url: str = ""
    salesforce_url: str = ""
    referral_template: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordLinks:
        return cls(
            dataverse_url=(settings.dataverse_url or "").rstrip("/"),
            salesforce_url=(settings.salesforce_login_url or "").rstrip("/"),
            referral_template=settings.referral_link_template,
        )

    def crm_record(self, crm_kind: str, entity: str, crm_id: str) -> str | None:
        """None when the record, its kind or the CRM's URL is unknown."""
        if not crm_id:
            return None
        record = quote(crm_id, safe="")
        if crm_kind == "dynamics" and self.dataverse_url and entity in _DYNAMICS_TABLES:
            table = _DYNAMICS_TABLES[entity]
            return f"{self.dataverse_url}/main.aspx?pagetype=entityrecord&etn={table}&id={record}"
        if crm_kind == "salesforce" and self.salesforce_url and entity in _SALESFORCE_OBJECTS:
            return f"{self.salesforce_url}/lightning/r/{_SALESFORCE_OBJECTS[entity]}/{record}/view"
        return None

    def referral(self, referral_id: str) -> str | None:
        if not referral_id or "{id}" not in self.referral_template:
            return None
        return self.referral_template.replace("{id}", quote(referral_id, safe=""))

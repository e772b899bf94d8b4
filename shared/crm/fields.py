"""A field map, as data: neutral field name -> CRM column, per record type; each adapter has its defaults.

CRM_FIELD_MAP (JSON, e.g. ``{"opportunity": {"microsoft_crm_id": "new_msxid"}}``) overrides any
column without touching code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldMap:
    tables: dict[str, dict[str, str]]

    def column(self, record: str, field: str) -> str:
        return self.tables[record][field]

    def get(self, record: str, field: str) -> str | None:
        return self.tables.get(record, {}).get(field)


def parse_overrides(raw: str | None, setting: str = "CRM_FIELD_MAP") -> dict[str, dict[str, str]]:
    if not raw or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{setting} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and all(isinstance(c, str) for c in v.values()) for v in data.values()
    ):
        raise ValueError(f'{setting} must look like {{"opportunity": {{"field": "column"}}}}')
    return data

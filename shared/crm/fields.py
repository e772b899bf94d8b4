"""A field map, as data: neutral field name -> CRM column, per record type; each adapter has its defaults.

CRM_FIELD_MAP (JSON, e.g. ``{"opportunity": {"microsoft_crm_id": "new_msxid"}}``) overrides any
column without touching code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# The neutral fields of a lead that every adapter reads back into the deal's account and contact (one
# list, so a field added to the read reaches every CRM; address_line2 is not read back from a lead).
LEAD_CUSTOMER_FIELDS = (
    "company",
    "first_name",
    "last_name",
    "email",
    "phone",
    "address_line1",
    "city",
    "state",
    "postal_code",
    "country",
)


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


def with_overrides(
    defaults: dict[str, dict[str, str]], raw: str | None, setting: str = "CRM_FIELD_MAP"
) -> tuple[FieldMap, frozenset[tuple[str, str]]]:
    """Lays a setting's overrides over an adapter's defaults, the same way for every CRM.

    Also answers which (record, field) the setting named, for an adapter that treats those as exact.
    """
    tables = {name: dict(columns) for name, columns in defaults.items()}
    explicit: set[tuple[str, str]] = set()
    for record, columns in parse_overrides(raw, setting).items():
        tables.setdefault(record, {}).update(columns)
        explicit.update((record, name) for name in columns)
    return FieldMap(tables), frozenset(explicit)


def knob_field_map(
    defaults: dict[str, dict[str, str]],
    *,
    deal_value_field: str,
    deal_currency_field: str,
    account_country_field: str,
    overrides_json: str | None = None,
) -> FieldMap:
    """An adapter's defaults with the connector's three knobs set, then CRM_FIELD_MAP over all (it wins)."""
    tables = {name: dict(columns) for name, columns in defaults.items()}
    tables["opportunity"]["deal_value"] = deal_value_field
    tables["opportunity"]["currency"] = deal_currency_field
    tables["account"]["country"] = account_country_field
    return with_overrides(tables, overrides_json)[0]

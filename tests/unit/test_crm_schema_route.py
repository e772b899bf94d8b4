"""The crm-schema route's answers: the report, the created list, and a refusal as a 403 with the CRM's reason."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from functions.crm_schema import crm_schema
from shared import services
from shared.crm.schema import ApplyResult, SchemaItem, SchemaRefused, SchemaReport


class _Refusing:
    def check(self) -> SchemaReport:
        return SchemaReport("dynamics")

    def apply(self) -> ApplyResult:
        made = SchemaItem("opportunity", "cosell_referralid", "column", "String", 100)
        raise SchemaRefused("Principal user is missing prvCreateAttribute privilege", [made])


def call(method: str) -> func.HttpResponse:
    request = func.HttpRequest(method, "http://localhost/api/manage/crm-schema", headers={}, body=b"")
    return crm_schema(request)


def test_a_refusal_is_a_403_with_the_crms_reason_and_what_was_created(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "crm_schema", lambda: _Refusing())
    response = call("POST")
    body = json.loads(response.get_body())
    assert response.status_code == 403
    assert body["error"]["reason"].endswith("missing prvCreateAttribute privilege")
    assert body["error"]["created"] == [
        {"table": "opportunity", "name": "cosell_referralid", "kind": "column", "type": "String", "length": 100}
    ]
    checked = call("GET")
    assert (checked.status_code, json.loads(checked.get_body())["ready"]) == (200, True)


def test_missing_settings_are_a_503_naming_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's own configuration is at fault, not the request: 503, like /api/health (functions/failures.py)."""

    def missing() -> None:
        raise services.ConfigurationError("Missing app settings: DATAVERSE_URL", ["DATAVERSE_URL"])

    monkeypatch.setattr(services, "crm_schema", missing)
    response = call("GET")
    assert (response.status_code, json.loads(response.get_body())["error"]) == (
        503,
        {"status": 503, "reason": "Missing app settings: DATAVERSE_URL", "settings": ["DATAVERSE_URL"]},
    )

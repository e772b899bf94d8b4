"""Helpers shared by the Salesforce simulator tests (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

import httpx

CLIENT_ID = "3MVG9sandbox.consumer.key"
CLIENT_SECRET = "sandbox-consumer-secret"
VERSION = "v60.0"


def sign_in(client: httpx.Client) -> str:
    response = client.post(
        "/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The one error of a Salesforce error array, checked for its shape."""
    body = response.json()
    assert isinstance(body, list), body
    assert len(body) == 1, body
    assert {"message", "errorCode"} <= set(body[0]), body
    return dict(body[0])


def create(api: httpx.Client, sobject: str, **fields: Any) -> str:
    response = api.post(f"/sobjects/{sobject}", json=fields)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    assert body["errors"] == []
    return str(body["id"])


def opportunity(api: httpx.Client, **fields: Any) -> str:
    return create(
        api, "Opportunity", **{"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", **fields}
    )


def query(api: httpx.Client, soql: str, **headers: str) -> httpx.Response:
    return api.get("/query", params={"q": soql}, headers=headers)


def records(api: httpx.Client, soql: str) -> list[dict[str, Any]]:
    response = query(api, soql)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["done"] is True
    return list(body["records"])

"""The sandbox starts the Salesforce org next to the other simulators, and its settings sign in."""

from __future__ import annotations

from pathlib import Path

import httpx

from sandbox.environment import Sandbox


def test_sandbox_serves_a_salesforce_org_the_settings_can_sign_in_to(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path, seed=2).start()
    try:
        settings = sandbox.salesforce_settings()
        token = httpx.post(
            f"{settings['SALESFORCE_LOGIN_URL']}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": settings["SALESFORCE_CLIENT_ID"],
                "client_secret": settings["SALESFORCE_CLIENT_SECRET"],
            },
            timeout=10,
        ).json()
        listing = httpx.get(
            f"{token['instance_url']}/services/data/{settings['SALESFORCE_API_VERSION']}/sobjects",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=10,
        )
        assert settings["CRM_KIND"] == "salesforce"
        assert listing.status_code == 200
        assert "Microsoft_Solution__c" in {o["name"] for o in listing.json()["sobjects"]}
        assert sandbox.app_settings("UseDevelopmentStorage=true")["CRM_KIND"] == "dynamics"
    finally:
        sandbox.stop()

"""A bare org provisioned over HTTP with cosell.py's definitions behaves like ``schema="provisioned"``."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox.dataverse_provisioning import provision

_SETS = ("opportunity", "lead", "cosell_solution")
SOLUTIONS = "cosell_opportunity_cosell_solution_OpportunityId"


def _metadata_paths() -> list[tuple[str, dict[str, str]]]:
    paths: list[tuple[str, dict[str, str]]] = []
    for table in _SETS:
        base = f"/EntityDefinitions(LogicalName='{table}')"
        paths += [(base, {})]
        paths += [(f"{base}/{nav}", {}) for nav in ("Attributes", "Keys", "ManyToOneRelationships")]
        paths += [(f"{base}/OneToManyRelationships", {})]
        for cast in ("PicklistAttributeMetadata", "BooleanAttributeMetadata"):
            paths.append((f"{base}/Attributes/Microsoft.Dynamics.CRM.{cast}", {"$expand": "OptionSet"}))
    paths.append(("/RelationshipDefinitions", {}))
    paths.append(("/EntityDefinitions", {"$select": "LogicalName,EntitySetName,PrimaryIdAttribute"}))
    return paths


def _read(client: httpx.Client, path: str, params: dict[str, str]) -> Any:
    """A metadata answer without its context URL (it names the host), collections in MetadataId order."""
    response = client.get(path, params=params)
    assert response.status_code == 200, f"{path}: {response.text}"
    body = response.json()
    body.pop("@odata.context")
    if "value" in body:
        body["value"].sort(key=lambda item: item["MetadataId"])
    return body


def _round_trip(client: httpx.Client) -> dict[str, Any]:
    """Create by alternate-key upsert, bind a solution through the custom lookup, read it all back expanded."""
    created = client.patch(
        "/opportunities(cosell_referralid='REF-42')",
        json={"name": "Contoso rollout", "cosell_helpneeded": 100000002, "cosell_syncwithpartnercenter": True},
        headers={"Prefer": "return=representation"},
    )
    assert created.status_code == 201, created.text
    opportunity = created.json()["opportunityid"]
    updated = client.patch("/opportunities(cosell_referralid='ref-42')", json={"cosell_audit": "2026-01-01 10:00 - ok"})
    assert updated.status_code == 204, updated.text
    lowercase = client.post(
        "/cosell_solutions",
        json={"cosell_name": "x", "cosell_opportunityid@odata.bind": f"/opportunities({opportunity})"},
    )
    assert lowercase.status_code == 400  # navigation names are case sensitive, as on the provisioned org
    solution = client.post(
        "/cosell_solutions",
        json={"cosell_name": "Azure", "cosell_OpportunityId@odata.bind": "/opportunities(cosell_referralid='REF-42')"},
    )
    assert solution.status_code == 204, solution.text
    duplicate = client.post("/opportunities", json={"name": "again", "cosell_referralid": "REF-42"})
    assert duplicate.status_code == 412, duplicate.text
    read = client.get(
        "/opportunities(cosell_referralid='REF-42')",
        params={
            "$select": "name,cosell_referralid,cosell_helpneeded,cosell_syncwithpartnercenter,cosell_visible,"
            "cosell_audit",
            "$expand": f"{SOLUTIONS}($select=cosell_name,cosell_solutionidentifier)",
        },
        headers={"If-None-Match": "null"},
    )
    assert read.status_code == 200, read.text
    body = read.json()
    for volatile in ("@odata.context", "@odata.etag", "opportunityid", f"{SOLUTIONS}@odata.nextLink"):
        body.pop(volatile)
    for row in body[SOLUTIONS]:
        for volatile in ("@odata.etag", "cosell_solutionid", "_cosell_opportunityid_value"):
            row.pop(volatile)
    return {"duplicate": duplicate.json(), "lowercase": lowercase.json(), "read": body}


def test_a_bare_org_provisioned_over_http_reads_and_behaves_like_a_provisioned_one(
    bare: httpx.Client, bare_url: str, client: httpx.Client
):
    provision(bare, bare_url)

    for path, params in _metadata_paths():
        assert _read(bare, path, params) == _read(client, path, params), path
    bare_trip, provisioned_trip = _round_trip(bare), _round_trip(client)
    assert bare_trip == provisioned_trip
    assert bare_trip["read"][SOLUTIONS] == [{"cosell_name": "Azure", "cosell_solutionidentifier": None}]
    assert (bare_trip["read"]["cosell_helpneeded"], bare_trip["read"]["cosell_visible"]) == (100000002, False)

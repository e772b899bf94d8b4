"""Hostile CRM records: referral ids a seller typed by hand never stop the CRM → Partner Center poll.

Each hostile record gets ✖ and a readable line in its ``cosell_audit`` field, an ``AuditLog`` row,
and the poll's watermark moves past it; a good opportunity created after them is shared in the same
poll. The records are written through the Web API as a seller's client would (``CrmUser``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from azure.data.tables import TableClient

from sandbox.azurite import Azurite
from sandbox.crm_user import CrmUser
from sandbox.environment import Sandbox
from sandbox.hostproc import HostProcess
from shared.partner_center.ids import is_referral_id
from tests.e2e.conftest import fire
from tests.resilience.support import audit_rows
from tests.resilience.webhook_corpus import FORGED

pytestmark = pytest.mark.e2e

POLL = "crm_to_partner_center"
REFERRAL_ID_COLUMN_LENGTH = 100  # cosell_referralid: Dataverse refuses anything longer

NOT_A_GUID = {
    "dot-dot path": "../x",
    "path, query and fragment": "a/b?c#d",
    "the longest value the column takes": "k" * REFERRAL_ID_COLUMN_LENGTH,
    "OData injection": "' or 1 eq 1 or '",
    "newline forging a log line": f"x\n{FORGED}",
}


@pytest.fixture
def crm(sandbox: Sandbox) -> CrmUser:
    return CrmUser(sandbox)


def _watermark(azurite: Azurite) -> dict[str, Any]:
    table = TableClient.from_connection_string(azurite.connection_string, "SyncState")
    return dict(table.get_entity("watermark", "crm-dynamics"))


def _hostile(crm: CrmUser, label: str, referral_id: str) -> str:
    opportunity_id = crm.opportunity(name=f"Hostile CRM record: {label} {uuid.uuid4().hex[:6]}")
    crm.update("opportunities", opportunity_id, {"cosell_referralid": referral_id})
    return opportunity_id


def _stamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _newest_line(sandbox: Sandbox, opportunity_id: str) -> str:
    return str(sandbox.dataverse.get("opportunities", opportunity_id).get("cosell_audit") or "").splitlines()[0]


def test_a_kib_referral_id_cannot_even_be_typed(crm: CrmUser) -> None:
    """A 1 KiB value never reaches the app: Dataverse itself refuses it for the 100-character column."""
    opportunity_id = crm.opportunity(name="Hostile CRM record: 1 KiB id")
    response = crm.http.patch(
        f"opportunities({opportunity_id})", json={"cosell_referralid": "q" * 1024}, headers={"If-Match": "*"}
    )
    assert response.status_code == 400
    assert "exceeded the maximum allowed length of '100'" in response.json()["error"]["message"]


def test_hostile_referral_ids_are_marked_and_passed_and_a_good_deal_shares_in_the_same_poll(
    host: HostProcess, sandbox: Sandbox, crm: CrmUser, azurite: Azurite
) -> None:
    pc, dv = sandbox.partner_center, sandbox.dataverse
    fire(host, POLL)  # whatever other tests left changed is handled first: this poll sees only ours
    hostile = {label: _hostile(crm, label, value) for label, value in NOT_A_GUID.items()}
    unknown = str(uuid.uuid4())
    hostile["a GUID Partner Center does not know"] = _hostile(crm, "unknown GUID", unknown)
    modified = {
        opportunity_id: dv.get("opportunities", opportunity_id)["modifiedon"] for opportunity_id in hostile.values()
    }
    good = crm.opportunity(name=f"Good deal after hostile ones {uuid.uuid4().hex[:6]}")
    posts = len(pc.recorded("POST", "/v1.0/engagements/referrals"))

    fire(host, POLL)

    shared = dv.get("opportunities", good)
    assert is_referral_id(shared.get("cosell_referralid")), f"the good deal was not shared in this poll: {shared}"
    assert shared["name"].startswith("✔ ")
    assert [r["externalReferenceId"] for r in pc.referrals() if r["id"] == shared["cosell_referralid"]] == [good]
    assert len(pc.recorded("POST", "/v1.0/engagements/referrals")) == posts + 1  # only the good deal was created

    audit = TableClient.from_connection_string(azurite.connection_string, "AuditLog")
    for label, opportunity_id in hostile.items():
        record = dv.get("opportunities", opportunity_id)
        assert record["name"].startswith("✖ "), f"{label}: {record['name']!r}"
        line = _newest_line(sandbox, opportunity_id)
        assert line.isprintable(), f"{label}: the audit line must be one readable line: {line!r}"
        if label in NOT_A_GUID:
            assert "is not a Partner Center referral id (a GUID)" in line, f"{label}: {line!r}"
            rows = audit_rows(audit, f"crm_{opportunity_id}")
            assert [r["outcome"] for r in rows] == ["rejected"], f"{label}: {rows}"
        else:
            assert "404" in line or "not found" in line, line
            rows = [r for r in audit_rows(audit, unknown) if r["crm_id"] == opportunity_id]
            assert [r["outcome"] for r in rows] == ["failed"], rows
        assert rows[0]["message"].isprintable()

    watermark = _watermark(azurite)
    assert watermark["value"], watermark
    for opportunity_id, stamp in modified.items():
        assert _stamp(watermark["value"]) >= _stamp(stamp), f"the watermark stopped before {opportunity_id}"
    outcomes = json.loads(watermark["last_outcomes"])
    assert outcomes.get("created", 0) >= 1
    assert outcomes.get("rejected", 0) + outcomes.get("failed", 0) >= len(hostile)
    assert "retry" not in outcomes, f"a hostile record held the watermark back: {outcomes}"
    forged = [line for line in host.output().splitlines() if line.startswith(FORGED)]
    assert not forged, forged


def test_a_marked_record_costs_the_next_poll_nothing(host: HostProcess, sandbox: Sandbox, crm: CrmUser) -> None:
    """The ✖ is written once: our own write-back must not make the record "changed" for every later poll.

    (README: our own write-backs cost the next poll nothing; a rejected record is retried on its next change.)
    """
    pc, dv = sandbox.partner_center, sandbox.dataverse
    fire(host, POLL)
    unknown = str(uuid.uuid4())
    records = {"not a GUID": _hostile(crm, "not a GUID", "../y"), "unknown GUID": _hostile(crm, "unknown", unknown)}
    fire(host, POLL)
    lines = {label: dv.get("opportunities", oid)["cosell_audit"] for label, oid in records.items()}
    assert all(text.count("\n") == 0 for text in lines.values()), lines  # one line each after the first poll
    calls = len(pc.recorded())

    fire(host, POLL)
    fire(host, POLL)

    again = {
        label: dv.get("opportunities", oid)["cosell_audit"].splitlines()
        for label, oid in records.items()
        if dv.get("opportunities", oid)["cosell_audit"] != lines[label]
    }
    assert not again, f"marked again by later polls: {again}"
    assert len(pc.recorded()) == calls, [f"{r.method} {r.path} {r.status}" for r in pc.recorded()[calls:]]

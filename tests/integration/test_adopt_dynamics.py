"""Moving over from the co-sell connector in Dynamics 365: its records are adopted, then synced, not duplicated.

An org with the connector's solution installed (its ``msft_`` columns, sandbox/sims/dataverse/connector.py)
holds records the connector made. ``python -m shared.cli adopt`` runs in process with the app's settings;
then the same referrals arrive through the engine's inbound sync (Partner Center simulator, Azurite), as
the first backfill would bring them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sandbox.azurite import Azurite
from sandbox.environment import Sandbox
from sandbox.sims.base import FaultConfig
from shared import cli
from tests.integration.adopt_support import by_outcome, connector_org, first_backfill, patches, run_adopt

CONNECTOR_AUDIT = "2023-05-02 09:05 - Partner Center Referral to CRM sync success."
SELLER_NOTES = "Seller's own notes: renewal in Q3, procurement via the reseller."
GENERAL_OR_OTHER = 100000005  # the connector's option (sandbox/sims/dataverse/connector.py)
OUR_GENERAL_OR_OTHER = 100000000  # the sync's option for GeneralOrOther (DESIGN.md)


org, world = connector_org("dynamics", seed=31)


def connector_columns(referral_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "msft_microsoftpartnercenterreferralidentifier": referral_id,
        "msft_microsoftpartnercenterreferrallink": f"https://partner.microsoft.com/referrals/v2/inbox?id={referral_id}",
        "msft_microsoftpartnercenterreferralsync": True,
        "msft_microsoftpartnercenterreferralvisible": True,
        "msft_microsoftpartnercenterhelp": GENERAL_OR_OTHER,
        "msft_microsoftcrmidentifier": "7-3KD8ZZ1",
        "msft_microsoftpartnercenterreferralprogram": "Azure IP co-sell",
        "msft_microsoftpartnercenterreferralsyncaudit": CONNECTOR_AUDIT,
        **overrides,
    }


def customer(dv: Any) -> str:
    return str(
        dv.insert(
            "accounts", {"name": "Contoso Customer Inc", "address1_postalcode": "98052", "address1_country": "US"}
        )
    )


def connector_opportunity(dv: Any, account: str, referral_id: str, created: str, **extra: Any) -> str:
    """An opportunity as the connector made it: ✓ name, the seller's data, the connector's columns."""
    body = {
        "name": "✓ Test Cosell Invite_20",
        "estimatedvalue": 45000,
        "estimatedclosedate": "2026-12-01",
        "customerneed": SELLER_NOTES,
        "customerid_account@odata.bind": f"/accounts({account})",
        "parentaccountid@odata.bind": f"/accounts({account})",
        "transactioncurrencyid@odata.bind": f"/transactioncurrencies({dv.currency_id('USD')})",
        "createdon": created,
        **connector_columns(referral_id),
        **extra,
    }
    return str(dv.insert("opportunities", body))


def ours(dv: Any, entity_set: str, referral_id: str) -> list[dict[str, Any]]:
    return [r for r in dv.records(entity_set) if r.get("cosell_referralid") == referral_id]


def test_connector_records_are_linked_once_then_synced_without_a_duplicate(world: Sandbox, capsys) -> None:
    dv, pc = world.dataverse, world.partner_center
    account = customer(dv)
    shared, twice, refused, lead_ref = (str(uuid.uuid4()) for _ in range(4))
    opened = connector_opportunity(dv, account, shared, "2023-05-01T10:00:00Z")
    first = connector_opportunity(dv, account, twice, "2023-05-03T10:00:00Z")
    second = connector_opportunity(dv, account, twice, "2023-05-03T10:01:00Z")  # the connector's known double
    hit = connector_opportunity(dv, account, refused, "2023-04-01T10:00:00Z")
    junk = connector_opportunity(dv, account, "see email from Bob", "2023-05-04T10:00:00Z")
    lead = str(
        dv.insert(
            "leads",
            {
                "subject": "✓ Fabrikam Customer Inc",
                "companyname": "Fabrikam Customer Inc",
                "lastname": "Fabrikam Customer Inc",
                "description": SELLER_NOTES,
                **connector_columns(lead_ref, msft_microsoftpartnercenterreferralvisible=False),
            },
        )
    )
    before = {name: len(dv.records(name)) for name in ("opportunities", "leads", "accounts")}

    # Dry run: says what it would do, writes nothing.
    writes = patches(dv)
    code, report = run_adopt(capsys)
    assert code == 1, report  # a duplicate and an unreadable id need the admin
    assert report["applied"] is False
    assert report["counts"]["linked"] == 0
    assert by_outcome(report) == {
        "adopted": {opened, first, hit, lead},
        "duplicate": {second},
        "invalid": {junk},
    }
    assert patches(dv) == writes
    assert not any(r.get("cosell_referralid") for r in dv.records("opportunities") + dv.records("leads"))

    # Apply, with the CRM refusing one write: that record is reported, the others are adopted.
    dv.set_faults(FaultConfig(rate=1, statuses=[400], routes=["PATCH /api/data/v9.2/opportunities("], max_faults=1))
    code, report = run_adopt(capsys, "--apply")
    dv.set_faults(None)
    failed = by_outcome(report)["failed"]
    assert len(failed) == 1
    assert by_outcome(report)["adopted"] == {opened, first, hit, lead} - failed
    [refusal] = [r for r in report["records"] if r["outcome"] == "failed"]
    assert "HTTP 400" in refusal["reason"]

    # Again: the refused record now, nothing else (idempotent); and once more: nothing at all.
    writes = patches(dv)
    code, report = run_adopt(capsys, "--apply")
    assert by_outcome(report)["adopted"] == failed
    assert report["counts"]["linked"] == 3
    assert patches(dv) == writes + 1
    code, report = run_adopt(capsys, "--apply")
    assert "adopted" not in by_outcome(report)
    assert report["counts"]["linked"] == 4
    assert patches(dv) == writes + 1, "a second run copies nothing"
    assert by_outcome(report)["duplicate"] == {second}

    row = dv.get("opportunities", opened)
    assert row["cosell_referralid"] == shared
    assert row["cosell_referrallink"] == f"https://partner.microsoft.com/referrals/v2/inbox?id={shared}"
    assert (row["cosell_syncwithpartnercenter"], row["cosell_visible"]) == (True, True)
    assert row["cosell_helpneeded"] == OUR_GENERAL_OR_OTHER, "the connector's label, mapped to the sync's value"
    assert (row["cosell_microsoftcrmid"], row["cosell_referralprogram"]) == ("7-3KD8ZZ1", "Azure IP co-sell")
    audit = row["cosell_audit"].splitlines()
    assert "Linked to the co-sell sync: copied the referral id, link, sync flag, visibility, help" in audit[0]
    assert audit[1] == CONNECTOR_AUDIT, "the connector's audit trail is kept below"
    assert dv.get("leads", lead).get("cosell_visible") is not True, "a No is not copied"

    # The first backfill: the same referrals from Partner Center, through the engine's inbound sync.
    outcomes = first_backfill(
        pc, {"fixture_b_shared_accepted.json": (shared, twice, refused), "fixture_a_list.json": (lead_ref,)}
    )
    assert outcomes == dict.fromkeys((shared, twice, refused, lead_ref), "updated"), "linked, not created"

    assert {name: len(dv.records(name)) for name in before} == before, "no record was added"
    for referral_id, record in ((shared, opened), (twice, first), (refused, hit)):
        [linked] = ours(dv, "opportunities", referral_id)
        assert linked["opportunityid"] == record
        assert linked["customerneed"] == SELLER_NOTES, "the seller's data is kept"
        assert linked["_parentaccountid_value"] == account
        assert linked["_ownerid_value"] == dv.user_id
        assert linked["name"] == "✔ Test Cosell Invite_20"
        assert linked["estimatedvalue"] == 50000, "Partner Center's deal value, as any sync writes it"
        assert "Partner Center referral to CRM sync success (Active/Accepted)." in linked["cosell_audit"]
    [linked_lead] = ours(dv, "leads", lead_ref)
    assert linked_lead["leadid"] == lead
    assert linked_lead["subject"] == "✔ Fabrikam Customer Inc"
    assert dv.get("opportunities", second).get("cosell_referralid") is None, "the duplicate stays for the admin"

    # What an admin reads without --json: one line per record that needs them, then the counts.
    capsys.readouterr()
    assert cli.main(["adopt"]) == 1
    text = capsys.readouterr().out
    duplicate = f"  duplicate opportunity {second} (referral {twice}): Another record carries this referral ({first})"
    assert duplicate in text
    assert f"  invalid   opportunity {junk}: The connector's referral id see email from Bob is not a" in text
    assert "dynamics (dry run, nothing written): 4 linked, 1 duplicate, 1 invalid" in text


def test_a_won_opportunity_is_linked_only_when_reopening_is_asked_for_and_closes_again_as_it_was(
    world: Sandbox, capsys
) -> None:
    dv, pc = world.dataverse, world.partner_center
    account, won_ref = customer(dv), str(uuid.uuid4())
    won = connector_opportunity(
        dv,
        account,
        won_ref,
        "2023-01-10T10:00:00Z",
        statecode=1,
        statuscode=3,
        actualvalue=42000,
        actualclosedate="2023-06-30",
    )

    code, report = run_adopt(capsys, "--apply")
    assert code == 1
    [locked] = report["records"]
    assert (locked["crmId"], locked["outcome"]) == (won, "locked")
    assert "--reopen-closed" in locked["reason"]
    assert dv.get("opportunities", won).get("cosell_referralid") is None

    code, report = run_adopt(capsys, "--apply", "--reopen-closed")
    assert code == 0, report
    assert by_outcome(report) == {"adopted": {won}}
    row = dv.get("opportunities", won)
    assert row["cosell_referralid"] == won_ref
    assert (row["statecode"], row["statuscode"]) == (1, 3), "closed again with its status reason"
    assert (row["actualvalue"], row["actualclosedate"]) == (42000, "2023-06-30"), "and its revenue and date"
    [close] = [c for c in dv.recorded("POST") if c.path.endswith("/WinOpportunity")]
    assert close.body["OpportunityClose"]["actualrevenue"] == 42000

    closes = len(_closes(dv))
    assert first_backfill(pc, {"fixture_c_closed_won.json": (won_ref,)}) == {won_ref: "updated"}
    assert [r["opportunityid"] for r in ours(dv, "opportunities", won_ref)] == [won]
    assert len(_closes(dv)) == closes, "no second close, no new opportunity"


def test_an_org_without_the_connector_says_what_it_looked_for(
    org: Sandbox, azurite: Azurite, app_settings: Callable[..., None], capsys
) -> None:
    org.dataverse.clear()  # the sync's schema only
    app_settings(org, azurite.connection_string)
    capsys.readouterr()
    assert cli.main(["adopt"]) == 2
    out = capsys.readouterr().out
    assert "msft_microsoftpartnercenterreferralidentifier" in out
    assert "CONNECTOR_FIELD_MAP" in out


def _closes(dv: Any) -> list[Any]:
    """Close actions sent, alone or inside a ``$batch`` (the simulator logs a batch's operations too)."""
    return [r for r in dv.recorded("POST") if r.path.endswith(("/WinOpportunity", "/LoseOpportunity"))]

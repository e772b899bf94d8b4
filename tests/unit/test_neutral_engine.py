"""The engine is CRM-neutral: mapping/ and sync/ name no CRM column, entity, option value or status code.

The forbidden words are read from the adapters' own field maps and code tables, so a column added
to an adapter is checked here without editing this test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.crm.dynamics_fields import DYNAMICS_CONNECTOR, DYNAMICS_DEFAULTS, DYNAMICS_HELP_NEEDED
from shared.crm.salesforce_fields import SALESFORCE_CONNECTOR, SALESFORCE_DEFAULTS, STAGE_LOST, STAGE_WON

ROOT = Path(__file__).resolve().parents[2]
ENGINE = [*(ROOT / "shared" / "mapping").glob("*.py"), *(ROOT / "shared" / "sync").glob("*.py")]

# Wire names of Dataverse that are not in the field map (entity sets, keys, codes, actions); entity
# sets that are plain English ("contacts", "leads") are not words a check can forbid.
DATAVERSE_WORDS = {
    "statecode",
    "statuscode",
    "opportunityid",
    "leadid",
    "accountid",
    "contactid",
    "transactioncurrencies",
    "systemusers",
    "owninguser",
    "ownerid",
    "modifiedon",
    "WinOpportunity",
    "LoseOpportunity",
    "odata",
}


SALESFORCE_WORDS = {"SystemModstamp", "StageName", "IsClosed", "IsWon", "OpportunityContactRole", "AccountId"}
# The sync's columns and those of Microsoft's co-sell connector it adopts records from (sync/adopt.py).
FIELD_MAPS = (DYNAMICS_DEFAULTS, SALESFORCE_DEFAULTS, DYNAMICS_CONNECTOR, SALESFORCE_CONNECTOR)


def _crm_words() -> set[str]:
    neutral = {field for field_map in FIELD_MAPS for columns in field_map.values() for field in columns}
    columns = {column for field_map in FIELD_MAPS for columns in field_map.values() for column in columns.values()}
    return (columns - neutral) | DATAVERSE_WORDS | SALESFORCE_WORDS


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_engine_modules_name_nothing_of_a_crm(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))
    found = sorted(words & _crm_words())
    assert not found, f"{path.relative_to(ROOT)} names CRM-specific {found}: move it into the adapter"
    values = {str(v) for v in DYNAMICS_HELP_NEEDED.values()}
    assert not values & set(re.findall(r"\d+", source)), f"{path.relative_to(ROOT)} holds an option value"
    for stage in (STAGE_WON, STAGE_LOST):
        assert stage not in source, f"{path.relative_to(ROOT)} names the CRM stage {stage!r}"


def test_the_check_sees_what_it_forbids() -> None:
    words = _crm_words()
    assert {"estimatedvalue", "cosell_referralid", "statecode", "WinOpportunity"} <= words
    assert {"Amount", "Referral_Identifier__c", "StageName", "Microsoft_Solution__c"} <= words
    assert "msft_microsoftpartnercenterreferralidentifier" in words
    assert "name" not in words  # a neutral word, also a column

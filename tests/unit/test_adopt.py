"""The adoption rules, once for every CRM: the use case over an in-memory CRM side (shared/sync/adopt.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator

import pytest

from shared.crm.adopt import ConnectorColumns, ConnectorNotFound, ConnectorRecord, Link, audit_after_copy, help_code
from shared.crm.dynamics_fields import dynamics_connector_map
from shared.crm.port import CrmRejected, SchemaNotReady
from shared.crm.salesforce_fields import salesforce_connector_map
from shared.http import ApiError, ApiUnavailable
from shared.mapping.model import DealKind
from shared.sync.adopt import Adopter

R1, R2 = str(uuid.uuid4()), str(uuid.uuid4())


def record(crm_id: str, referral_id: str, *, created: str = "2024-01-01T00:00:00Z", **kw: object) -> ConnectorRecord:
    theirs = kw.pop("theirs", Link(referral_id=referral_id, referral_link=f"https://pc/{referral_id}", sync=True))
    return ConnectorRecord(
        kind=kw.pop("kind", "opportunity"),  # type: ignore[arg-type]
        crm_id=crm_id,
        created_on=created,
        open=bool(kw.pop("open", True)),
        theirs=theirs,  # type: ignore[arg-type]
        ours=kw.pop("ours", Link()),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


class FakeCrm:
    """Records in memory; a copy fills the sync's columns as a CRM would, so a second run sees them."""

    crm = "fake"

    def __init__(self, *rows: ConnectorRecord, holders: dict[str, str] | None = None) -> None:
        self.rows = {r.crm_id: r for r in rows}
        self.holders = holders or {}
        self.copies: list[tuple[str, Link, str, bool]] = []
        self.refuse: dict[str, Exception] = {}
        self.columns_found = ConnectorColumns(found={"opportunity": {"referral_id": "their_ref"}})

    def columns(self) -> ConnectorColumns:
        return self.columns_found

    def records(self, kind: DealKind, columns: ConnectorColumns) -> Iterator[ConnectorRecord]:
        yield from (r for r in self.rows.values() if r.kind == kind)

    def holder(self, kind: DealKind, referral_id: str) -> str | None:
        return self.holders.get(referral_id)

    def copy(self, record: ConnectorRecord, values: Link, message: str, *, reopen: bool) -> None:
        if record.crm_id in self.refuse:
            raise self.refuse[record.crm_id]
        self.copies.append((record.crm_id, values, message, reopen))
        filled = {name: getattr(values, name) for name in values.filled()}
        self.rows[record.crm_id] = dataclasses.replace(record, ours=dataclasses.replace(record.ours, **filled))


def outcomes(report: object) -> dict[str, str]:
    return {item.crm_id: item.outcome for item in report.items}  # type: ignore[attr-defined]


def test_dry_run_reports_and_writes_nothing_then_apply_copies_then_a_second_run_copies_nothing() -> None:
    theirs = Link(
        referral_id=R1.upper(),  # another case, as a connector column may hold it
        referral_link="https://partner.microsoft.com/x",
        sync=True,
        visible=False,
        help_needed="ProofOfConceptOrDemo",
        microsoft_crm_id="7-ABC",
        referral_program="Azure",
        audit="2023-05-01 10:00 - Partner Center Referral to CRM sync success.",
    )
    crm = FakeCrm(record("opp-1", R1, theirs=theirs))

    dry = Adopter(crm).run(apply=False)
    assert outcomes(dry) == {"opp-1": "adopted"}
    assert dry.applied is False
    assert crm.copies == []

    applied = Adopter(crm).run(apply=True)
    assert outcomes(applied) == {"opp-1": "adopted"}
    [(crm_id, values, message, reopen)] = crm.copies
    assert crm_id == "opp-1"
    assert reopen is False
    assert values == Link(
        referral_id=R1,  # Partner Center's lower-case form
        referral_link="https://partner.microsoft.com/x",
        sync=True,
        visible=None,  # No is never copied: visibility only goes false -> true, and No is the default
        help_needed="ProofOfConceptOrDemo",
        microsoft_crm_id="7-ABC",
        referral_program="Azure",
    )
    assert message.startswith("Linked to the co-sell sync: copied the referral id, link, sync flag, help")

    again = Adopter(crm).run(apply=True)
    assert outcomes(again) == {"opp-1": "linked"}
    assert len(crm.copies) == 1, "a second run copies nothing"
    assert again.counts()["linked"] == 1
    assert not again.needs_attention


def test_duplicates_adopt_an_open_record_before_a_closed_one_then_the_oldest() -> None:
    crm = FakeCrm(
        record("closed-oldest", R1, created="2023-01-01T00:00:00Z", open=False),
        record("open-newer", R1, created="2023-03-01T00:00:00Z"),
        record("open-older", R1, created="2023-02-01T00:00:00Z"),
    )
    report = Adopter(crm).run(apply=True)
    assert outcomes(report) == {"open-older": "adopted", "open-newer": "duplicate", "closed-oldest": "duplicate"}
    assert [c[0] for c in crm.copies] == ["open-older"]
    assert {i.kept for i in report.items if i.outcome == "duplicate"} == {"open-older"}
    assert report.needs_attention

    again = Adopter(crm).run(apply=True)  # the same choice on every run, nothing copied again
    assert outcomes(again) == {"open-older": "linked", "open-newer": "duplicate", "closed-oldest": "duplicate"}
    assert len(crm.copies) == 1


def test_a_referral_the_sync_already_holds_elsewhere_makes_the_connector_records_duplicates() -> None:
    crm = FakeCrm(record("connector-1", R1), holders={R1: "made-by-the-sync"})
    report = Adopter(crm).run(apply=True)
    assert outcomes(report) == {"connector-1": "duplicate"}
    assert report.items[0].kept == "made-by-the-sync"
    assert crm.copies == []


def test_a_record_holding_another_referral_in_the_sync_column_is_a_conflict_left_alone() -> None:
    crm = FakeCrm(record("opp-1", R1, ours=Link(referral_id=R2)), record("opp-2", R1))
    report = Adopter(crm).run(apply=True)
    assert outcomes(report) == {"opp-1": "conflict", "opp-2": "adopted"}
    assert [c[0] for c in crm.copies] == ["opp-2"]


def test_a_value_that_is_not_a_referral_id_is_reported_not_copied() -> None:
    crm = FakeCrm(record("opp-1", "../x\nforged"), record("opp-2", R2))
    report = Adopter(crm).run(apply=True)
    assert outcomes(report) == {"opp-1": "invalid", "opp-2": "adopted"}
    assert "\n" not in report.items[0].reason, "the value is escaped in the report"


def test_one_refused_record_is_reported_and_the_rest_are_adopted() -> None:
    crm = FakeCrm(record("bad", R1), record("good", R2))
    crm.refuse["bad"] = ApiError("dataverse", "PATCH", "opportunities(bad)", 400, "0x80040203", "Invalid value")
    report = Adopter(crm).run(apply=True)
    assert outcomes(report) == {"bad": "failed", "good": "adopted"}
    assert "HTTP 400" in report.items[0].reason
    assert "Invalid value" in report.items[0].reason
    assert not report.stopped


def test_a_refusal_of_our_own_data_check_is_one_record_too() -> None:
    crm = FakeCrm(record("bad", R1), record("good", R2))
    crm.refuse["bad"] = CrmRejected("value too long")
    assert outcomes(Adopter(crm).run(apply=True)) == {"bad": "failed", "good": "adopted"}


@pytest.mark.parametrize(
    "error",
    [ApiUnavailable("dataverse unreachable"), SchemaNotReady("Dynamics 365 refused a name the sync needs (x).")],
    ids=["unreachable", "schema"],
)
def test_what_every_record_would_hit_stops_the_run_and_says_so(error: Exception) -> None:
    crm = FakeCrm(record("first", R1), record("second", R2))
    crm.refuse["first"] = error
    report = Adopter(crm).run(apply=True)
    assert report.stopped
    assert crm.copies == [], "stopped at the first record"
    assert report.needs_attention


def test_a_closed_record_the_crm_locks_is_reported_unless_reopening_is_asked_for() -> None:
    closed = record("won", R1, open=False, locked="A closed opportunity is read-only.", reopenable=True)
    crm = FakeCrm(closed)
    report = Adopter(crm).run(apply=True)
    assert outcomes(report) == {"won": "locked"}
    assert "--reopen-closed" in report.items[0].reason
    assert crm.copies == []

    reopened = Adopter(crm).run(apply=True, reopen_closed=True)
    assert outcomes(reopened) == {"won": "adopted"}
    assert crm.copies[0][3] is True, "the adapter is told to reopen and close it again"


def test_a_lock_that_reopening_cannot_lift_stays_reported() -> None:
    converted = record("lead-1", R1, kind="lead", open=False, locked="A converted Lead cannot be changed.")
    crm = FakeCrm(converted)
    crm.columns_found = ConnectorColumns(found={"lead": {"referral_id": "their_ref"}})
    report = Adopter(crm).run(apply=True, reopen_closed=True)
    assert outcomes(report) == {"lead-1": "locked"}
    assert "--reopen-closed" not in report.items[0].reason


def test_no_connector_column_at_all_is_an_error_and_a_shared_one_is_nothing_to_do() -> None:
    crm = FakeCrm()
    crm.columns_found = ConnectorColumns(missing={"opportunity": ["msft_x"], "lead": ["msft_x"]})
    with pytest.raises(ConnectorNotFound, match="msft_x"):
        Adopter(crm).run(apply=False)
    crm.columns_found = ConnectorColumns(shared={"opportunity": ["referral_id"]})
    report = Adopter(crm).run(apply=True)
    assert report.items == []
    assert not report.needs_attention


def test_leads_and_opportunities_are_adopted_each_in_their_own_column() -> None:
    crm = FakeCrm(record("opp", R1), record("lead", R1, kind="lead"))
    crm.columns_found = ConnectorColumns(found={k: {"referral_id": "their_ref"} for k in ("opportunity", "lead")})
    assert outcomes(Adopter(crm).run(apply=True)) == {"opp": "adopted", "lead": "adopted"}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("General or Other", "GeneralOrOther"),
        ("General Or Other", "GeneralOrOther"),
        ("Proof Of Concept or Demo", "ProofOfConceptOrDemo"),
        ("Workload specific value proposition", "WorkloadSpecificValueProposition"),
        ("PostSalesCustomerSuccess", "PostSalesCustomerSuccess"),
        ("Quotes or licensing", "QuotesOrLicensing"),
        ("Customer technical architecture", "CustomerTechnicalArchitecture"),
        ("--None--", None),
        ("Something else", None),
        (100000000, None),
    ],
)
def test_help_labels_map_to_partner_center_codes(value: object, code: str | None) -> None:
    assert help_code(value) == code


def test_connector_field_map_overrides_the_presets_and_names_itself_in_errors() -> None:
    dynamics = dynamics_connector_map('{"lead": {"referral_id": "new_pcreferral"}}')
    assert dynamics.column("lead", "referral_id") == "new_pcreferral"
    assert dynamics.column("opportunity", "referral_id") == "msft_microsoftpartnercenterreferralidentifier"
    salesforce, explicit = salesforce_connector_map('{"opportunity": {"referral_id": "ns__Ref__c"}}')
    assert salesforce.column("opportunity", "referral_id") == "ns__Ref__c"
    assert explicit == {("opportunity", "referral_id")}, "named fields are used as given, not searched for"
    with pytest.raises(ValueError, match="CONNECTOR_FIELD_MAP is not valid JSON"):
        dynamics_connector_map("{nope")
    with pytest.raises(ValueError, match="CONNECTOR_FIELD_MAP must look like"):
        salesforce_connector_map('{"opportunity": "x"}')


def test_the_audit_after_a_copy_names_what_was_too_long_above_the_trail_the_record_had() -> None:
    when = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)
    connector_trail = record("crm-1", R1, theirs=Link(referral_id=R1, audit="2023-05-02 09:05 - Connector sync."))
    assert audit_after_copy(connector_trail, "Linked.", ["referral program"], when, 4000, noun="fields") == (
        "2024-03-01 09:30 - Linked. Too long for the sync's fields, left out: referral program.\n"
        "2023-05-02 09:05 - Connector sync."
    )
    ours_first = dataclasses.replace(connector_trail, ours=Link(audit="2024-01-01 00:00 - The sync's own."))
    assert audit_after_copy(ours_first, "Linked.", [], when, 4000, noun="columns") == (
        "2024-03-01 09:30 - Linked.\n2024-01-01 00:00 - The sync's own."
    )

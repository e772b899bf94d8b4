"""OutboundSync (CRM → Partner Center) over the fakes and the memory CRM."""

from __future__ import annotations

from decimal import Decimal

from azure.core.exceptions import ServiceResponseError

from shared.http import ApiError
from shared.mapping.outbound import new_referral
from shared.store.state import CrmRecordState
from tests.engine.conftest import LEASE_SECONDS, World
from tests.engine.fakes import SERVICE

WATERMARK = "crm-memory"


def refusal(status: int) -> ApiError:
    return ApiError(SERVICE, "POST", "referrals", status, "invalidRequest" if status < 500 else "x", "refused")


def paths(patch: dict) -> list[str]:
    return sorted(op["path"] for op in patch["ops"])


# ---------------------------------------------------------------------------- sharing
def test_a_deal_marked_for_sync_is_shared_once(world: World) -> None:
    deal_id = world.typed_deal()

    report = world.outbound.poll()

    assert report.outcomes["created"] == 1
    [created] = world.referrals.by_external_id(deal_id)
    record = world.record(deal_id)
    assert record.fields["referral_id"] == created["id"]
    assert record.fields["name"] == "✔ Outbound deal"
    assert created["type"] == "Shared", "help requested: a co-sell"
    assert created["inviteContext"]["assistanceRequestCode"] == "CustomerTechnicalArchitecture"
    assert world.referrals.calls["POST"] == 1


def test_our_own_write_back_and_its_webhook_cost_nothing(world: World) -> None:
    deal_id = world.typed_deal()
    world.outbound.poll()
    referral_id = world.record(deal_id).fields["referral_id"]
    calls, writes = dict(world.referrals.calls), world.crm.writes

    report = world.outbound.poll()  # the write-back changed the record: the poll sees it again
    echo = world.inbound.sync(referral_id)  # Partner Center's webhook for our own create

    assert [r.outcome for r in report.records] == ["unchanged"]
    assert echo.outcome == "unchanged"
    assert dict(world.referrals.calls) == {**calls, "GET": calls.get("GET", 0) + 1}, "only the webhook's GET"
    assert world.crm.writes == writes, "neither direction wrote the CRM"


def test_a_change_in_the_crm_is_patched_with_the_referral_etag(world: World) -> None:
    deal_id = world.typed_deal()
    world.outbound.poll()
    referral_id = world.record(deal_id).fields["referral_id"]
    etag = world.referrals.referral(referral_id)["eTag"]

    world.seller_changes(deal_id, deal_value=Decimal(75000))
    report = world.outbound.poll()

    assert [r.outcome for r in report.records] == ["updated"]
    [patch] = world.referrals.patches
    assert (paths(patch), patch["etag"]) == (["/details/dealValue"], etag)
    assert world.referrals.referral(referral_id)["details"]["dealValue"] == 75000


# ---------------------------------------------------------------------------- 412
def test_a_referral_changed_between_get_and_patch_is_re_read_re_diffed_and_patched_once_more(world: World) -> None:
    deal_id = world.typed_deal()
    world.outbound.poll()
    referral_id = world.record(deal_id).fields["referral_id"]
    world.seller_changes(deal_id, deal_value=Decimal(75000), description="New plan.")

    def microsoft_edits(_: str) -> None:  # lands after our GET, before our PATCH
        world.referrals.update(referral_id, {"details": {"dealValue": 75000}, "statusReason": "Microsoft's note"})

    world.referrals.before_next_patch = microsoft_edits
    report = world.outbound.poll()

    assert [r.outcome for r in report.records] == ["updated"]
    first, second = world.referrals.patches
    assert first["status"] == 412
    assert paths(first) == ["/details/dealValue", "/details/notes"]
    assert paths(second) == ["/details/notes"], "the re-read shows dealValue already equal: not sent again"
    assert second["status"] == 200
    assert second["etag"] != first["etag"]
    final = world.referrals.referral(referral_id)
    assert (final["details"]["dealValue"], final["details"]["notes"]) == (75000, "New plan.")
    assert final["statusReason"] == "Microsoft's note", "Microsoft's own change survives"
    assert world.referrals.calls["PATCH"] == 2


def test_a_referral_closed_between_get_and_patch_is_not_written(world: World) -> None:
    deal_id = world.typed_deal()
    world.outbound.poll()
    referral_id = world.record(deal_id).fields["referral_id"]
    world.seller_changes(deal_id, deal_value=Decimal(75000))
    world.referrals.before_next_patch = lambda rid: world.referrals.update(
        rid, {"status": "Closed", "substatus": "Won"}
    )

    report = world.outbound.poll()

    assert [r.outcome for r in report.records] == ["skipped"]
    assert [p["status"] for p in world.referrals.patches] == [412]
    assert world.referrals.referral(referral_id)["details"]["dealValue"] == 50000


# ---------------------------------------------------------------------------- terminal, visibility
def test_a_terminal_referral_is_never_written(world: World) -> None:
    deal_id = world.typed_deal()
    world.outbound.poll()
    referral_id = world.record(deal_id).fields["referral_id"]
    world.referrals.update(referral_id, {"status": "Closed", "substatus": "Lost"})

    world.seller_changes(deal_id, deal_value=Decimal(75000))
    report = world.outbound.poll()

    assert [r.outcome for r in report.records] == ["skipped"]
    assert "accepts no changes" in report.records[0].message
    assert world.referrals.calls["PATCH"] == 0
    assert world.audit.history(referral_id)[0].outcome == "skipped"


def test_visibility_only_goes_from_false_to_true(world: World) -> None:
    private = world.typed_deal("Private", help_needed=None, visible=False)
    world.outbound.poll()
    referral_id = world.record(private).fields["referral_id"]
    assert world.referrals.referral(referral_id)["consent"]["consentToShareReferralWithMicrosoftSellers"] is False
    world.referrals.update(referral_id, {"consent": {"consentToShareReferralWithMicrosoftSellers": True}})

    world.seller_changes(private, deal_value=Decimal(75000))  # the CRM still says not visible
    world.outbound.poll()

    [patch] = world.referrals.patches
    assert paths(patch) == ["/details/dealValue"], "a visible referral is never made private again"

    world.seller_changes(private, visible=True, deal_value=Decimal(80000))
    world.referrals.update(referral_id, {"consent": {"consentToShareReferralWithMicrosoftSellers": False}})
    world.outbound.poll()

    last = world.referrals.patches[-1]
    assert "/consent/consentToShareReferralWithMicrosoftSellers" in paths(last)
    assert world.referrals.referral(referral_id)["consent"]["consentToShareReferralWithMicrosoftSellers"] is True


# ---------------------------------------------------------------------------- one record never stops a poll
def test_a_permanent_failure_mid_poll_is_marked_and_passed(world: World) -> None:
    first, failing, last = world.typed_deal("First"), world.typed_deal("Refused"), world.typed_deal("Last")
    deals = {d.crm_id: d for d in world.crm.changed_deals(None)}
    world.referrals.refuse_create = lambda draft: refusal(400) if draft.name == "Refused" else None

    report = world.outbound.poll()

    assert [(r.crm_id, r.outcome) for r in report.records] == [
        (first, "created"),
        (failing, "rejected"),
        (last, "created"),
    ]
    assert world.record(failing).fields["name"] == "✖ Refused"
    assert "Partner Center refused it" in world.record(failing).audit.splitlines()[0]
    assert world.audit.history(f"crm_{failing}")[0].outcome == "rejected"
    assert world.state.watermark(WATERMARK) == deals[last].modified_on, "the watermark passes the refused record"


def test_a_transient_failure_mid_poll_stops_the_watermark_before_it(world: World) -> None:
    first, failing, last = world.typed_deal("First"), world.typed_deal("Unlucky"), world.typed_deal("Last")
    deals = {d.crm_id: d for d in world.crm.changed_deals(None)}
    world.referrals.refuse_create = lambda draft: refusal(503) if draft.name == "Unlucky" else None

    report = world.outbound.poll()

    assert [(r.crm_id, r.outcome) for r in report.records] == [
        (first, "created"),
        (failing, "retry"),
        (last, "created"),
    ]
    assert world.record(failing).fields["name"] == "Unlucky", "a transient failure is not marked ✖"
    assert world.audit.history(f"crm_{failing}")[0].outcome == "retry"
    assert world.state.watermark(WATERMARK) == deals[first].modified_on, "the watermark stops before it"

    world.referrals.refuse_create = None
    report = world.outbound.poll()  # the next poll picks it up again

    assert report.outcomes["created"] == 1
    assert len(world.referrals.by_external_id(failing)) == 1
    assert world.record(failing).fields["name"] == "✔ Unlucky"


def test_a_record_whose_sync_raises_mid_poll_is_marked_and_the_poll_goes_on(world: World) -> None:
    first = world.typed_deal("First")
    unknown = world.typed_deal("Unknown referral", referral_id="0b1f8a52-0000-4000-8000-00000000d1e5")  # 404
    last = world.typed_deal("Last")
    deals = {d.crm_id: d for d in world.crm.changed_deals(None)}

    report = world.outbound.poll()

    assert [(r.crm_id, r.outcome) for r in report.records] == [
        (first, "created"),
        (unknown, "failed"),
        (last, "created"),
    ]
    assert world.record(unknown).fields["name"] == "✖ Unknown referral"
    assert "HTTP 404" in world.record(unknown).audit.splitlines()[0]
    assert world.audit.history("0b1f8a52-0000-4000-8000-00000000d1e5")[0].outcome == "failed"
    assert world.state.watermark(WATERMARK) == deals[last].modified_on, "a permanent failure is passed"


def test_an_unexpected_error_in_one_record_does_not_stop_the_poll(world: World) -> None:
    first, broken, last = world.typed_deal("First"), world.typed_deal("Broken"), world.typed_deal("Last")

    def bug(draft: object) -> None:
        if getattr(draft, "name", "") == "Broken":
            raise KeyError("a bug")

    world.referrals.refuse_create = bug  # type: ignore[assignment]
    report = world.outbound.poll()

    assert [(r.crm_id, r.outcome) for r in report.records] == [
        (first, "created"),
        (broken, "failed"),
        (last, "created"),
    ]
    assert world.record(broken).fields["name"] == "✖ Broken"
    assert "unexpected error (KeyError)" in world.record(broken).audit.splitlines()[0]


def test_a_storage_outage_on_one_record_is_retried_not_marked(world: World) -> None:
    first, unlucky, last = world.typed_deal("First"), world.typed_deal("Unlucky"), world.typed_deal("Last")
    deals = {d.crm_id: d for d in world.crm.changed_deals(None)}

    def dropped(draft: object) -> None:
        if getattr(draft, "name", "") == "Unlucky":
            raise ServiceResponseError("Connection aborted.")  # Table Storage dropped the connection

    world.referrals.refuse_create = dropped  # type: ignore[assignment]
    report = world.outbound.poll()

    assert [(r.crm_id, r.outcome) for r in report.records] == [
        (first, "created"),
        (unlucky, "retry"),
        (last, "created"),
    ]
    assert world.record(unlucky).fields["name"] == "Unlucky", "an outage is not the record's fault: no ✖"
    assert world.state.watermark(WATERMARK) == deals[first].modified_on, "the next poll tries it again"
    world.referrals.refuse_create = None
    assert world.outbound.poll().outcomes["created"] == 1


def test_a_deal_partner_center_refused_is_not_sent_again_until_it_changes(world: World) -> None:
    """A refusal is marked once; our own ✖ write-back must not make the next poll POST it again."""
    failing = world.typed_deal("Refused")
    world.referrals.refuse_create = lambda draft: refusal(400)
    world.outbound.poll()
    assert world.referrals.calls["POST"] == 1

    world.outbound.poll()
    world.outbound.poll()

    assert world.referrals.calls["POST"] == 1, "the refused deal was POSTed again without any change"
    assert world.record(failing).audit.count("Partner Center refused it") == 1


def test_a_change_partner_center_refused_is_not_sent_again_until_it_changes(world: World) -> None:
    deal_id = world.typed_deal()
    world.outbound.poll()
    world.seller_changes(deal_id, deal_value=Decimal(75000))
    world.referrals.refuse_patch = lambda rid, ops: ApiError(SERVICE, "PATCH", rid, 400, "invalidRequest", "no")

    first = world.outbound.poll()
    world.outbound.poll()
    world.outbound.poll()

    assert [r.outcome for r in first.records] == ["rejected"]
    assert world.record(deal_id).fields["name"] == "✖ Outbound deal"
    assert world.referrals.calls["PATCH"] == 1, "the refused change was PATCHed again without any change"


def test_a_malformed_referral_id_typed_into_the_crm_is_marked_and_the_poll_goes_on(world: World) -> None:
    typo = world.typed_deal("Typo", referral_id="not-a-guid/../x")
    good = world.typed_deal("Good")

    report = world.outbound.poll()

    assert [(r.crm_id, r.outcome) for r in report.records] == [(typo, "rejected"), (good, "created")]
    assert world.record(typo).fields["name"] == "✖ Typo"
    assert "is not a Partner Center referral id" in world.record(typo).audit.splitlines()[0]
    assert world.referrals.calls["GET"] == 0, "the bad id never reaches a URL"
    assert len(world.referrals.by_external_id(good)) == 1

    writes = world.crm.writes
    report = world.outbound.poll()  # our ✖ changed the record: seen again, not marked again
    assert world.crm.writes == writes
    assert report.outcomes["rejected"] == 0


# ---------------------------------------------------------------------------- lost creates
def test_a_lost_create_is_adopted_on_the_next_poll(world: World) -> None:
    deal_id = world.typed_deal()
    world.referrals.lose_next_create_answer = True

    report = world.outbound.poll()

    assert [r.outcome for r in report.records] == ["retry"]
    assert len(world.referrals.by_external_id(deal_id)) == 1, "Partner Center committed the create"
    world.clock.advance(30)
    world.referrals.seed({"name": "A stranger", "externalReferenceId": "0ca1a2b3-0000-4000-8000-00000000beef"})

    report = world.outbound.poll()

    assert [r.outcome for r in report.records] == ["created"]
    [ours] = world.referrals.by_external_id(deal_id)
    assert world.record(deal_id).fields["referral_id"] == ours["id"]
    assert world.referrals.calls["POST"] == 1, "adopted, not created twice"


def test_a_create_that_never_happened_never_adopts_a_strangers_referral(world: World) -> None:
    deal_id = world.typed_deal()
    world.referrals.refuse_create = lambda draft: refusal(503)  # refused before anything was stored
    world.outbound.poll()
    world.referrals.refuse_create = None
    world.clock.advance(30)
    lookalike = world.referrals.seed({"name": "Outbound deal", "externalReferenceId": None})
    stranger = world.referrals.seed({"name": "Outbound deal", "externalReferenceId": "other-crm-record"})

    world.outbound.poll()

    referral_id = world.record(deal_id).fields["referral_id"]
    assert referral_id not in (lookalike.id, stranger.id)
    assert world.referrals.referral(referral_id)["externalReferenceId"] == deal_id
    assert world.referrals.calls["POST"] == 2


def test_a_lapsed_share_lease_is_taken_over_without_a_second_referral(world: World) -> None:
    deal_id = world.typed_deal()
    # Worker A took the record's lease, recorded its intent, POSTed (committed) and died.
    assert world.leases.try_acquire(f"crm_opportunity_{deal_id}", LEASE_SECONDS)
    world.state.save_crm(CrmRecordState("opportunity", deal_id, create_intent=world.clock().isoformat()))
    deal = world.crm.get_deal(deal_id)
    assert deal is not None
    world.referrals.create(new_referral(deal))

    report = world.outbound.poll()  # worker B: A's lease is still live

    assert [r.outcome for r in report.records] == ["retry"]
    assert world.referrals.calls["POST"] == 1

    world.clock.advance(LEASE_SECONDS)
    report = world.outbound.poll()

    assert [r.outcome for r in report.records] == ["created"]
    assert world.leases.taken_over == [f"crm_opportunity_{deal_id}"]
    assert world.referrals.calls["POST"] == 1, "B adopted A's referral"
    [only] = world.referrals.by_external_id(deal_id)
    assert world.record(deal_id).fields["referral_id"] == only["id"]


def test_a_second_poll_while_one_runs_is_skipped(world: World) -> None:
    world.typed_deal()
    assert world.leases.try_acquire("poll_memory", 600)

    report = world.outbound.poll()

    assert report.ran is False
    assert world.referrals.calls["POST"] == 0

"""The gateway's domain decisions, without a database: every decision and every refusal.

Each decision takes the typed aggregate, its input, the school's rules and the clock, and returns a
Change (fields and events) or raises a DomainError with a stable code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.gateway.applications import ScanStatus, State
from services.gateway.domain import (
    binding,
    codes,
    confirmation,
    delivery,
    photos,
    retention,
    review,
    submissions,
)
from services.gateway.domain.application import Application, resubmissions_remaining
from services.gateway.domain.change import NO_CHANGE
from services.gateway.domain.errors import DomainError
from services.gateway.domain.rules import DEFAULT_RULES, Choice, SchoolRules
from services.gateway.domain.statuses import DeliveryStatus, PhotoSource, PhotoStatus, ReviewDecision
from services.gateway.schools import demo_school
from shared.events import (
    ChsiStudent,
    CodeDecoded,
    CodeRejected,
    MatchScored,
    PhotoRejected,
    PhotoStandardized,
    QualityMeasure,
    StudentClaim,
    derived_id,
)

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
RULES = demo_school().rules()
CLAIM = StudentClaim(name="张三", student_number="2021001", id_last4="1234")
STUDENT = ChsiStudent(
    chsi_id="c1",
    education_category="普通",
    department="计算机学院",
    class_name="一班",
    masked_name="张*",
    student_number="2021001",
    school_code="10487",
    school_name="示范大学",
    level="本科",
    id_last4="1234",
)


def app(state: State | str = State.PAID, **fields: Any) -> Application:
    document = {
        "_id": "a1",
        "version": 3,
        "state": str(state),
        "owner_openid": "o1",
        "student_id": "10487:2021001",
    }
    return Application.from_doc({**document, **fields})


def pending_scan(scan_id: str = "s1") -> dict[str, Any]:
    return {"scan_id": scan_id, "status": "pending", "source": "text", "submitted_at": T0}


def refused(code: str) -> Any:
    return pytest.raises(DomainError, match=f"^{code}$")


def standardized(photo_id: str = "p1") -> dict[str, Any]:
    return {
        photo_id: {
            "status": "standardized",
            "source": "camera",
            "raw_blob_id": "raw",
            "standardized_blob_id": "std",
            "uploaded_at": T0,
            "standardisation_number": 1,
        }
    }


# --- the aggregate -----------------------------------------------------------------------------------


def test_the_aggregate_keeps_fields_it_does_not_know_and_reads_naive_times_as_utc():
    a = Application.from_doc(
        {
            "_id": "a1",
            "state": "paid",
            "future_field": {"x": 1},
            "photos": {"p": {"status": "processing", "uploaded_at": "2026-06-01T09:00:00", "extra": 2}},
        }
    )
    assert a.model_extra == {"future_field": {"x": 1}}
    assert a.photos["p"].uploaded_at == T0
    assert a.photos["p"].doc() == {"status": "processing", "uploaded_at": T0, "extra": 2}


def test_a_change_stores_typed_parts_as_documents_and_enums_as_plain_values():
    change = app().change(state=State.SUBMITTED, photos=app(photos=standardized()).photos)
    assert change.set["state"] == "submitted" and type(change.set["state"]) is str
    assert change.set["photos"]["p1"]["status"] == "standardized"


def test_school_defaults_live_in_the_rules_only():
    config = demo_school()
    assert config.rules().standardisations_per_day == DEFAULT_RULES.standardisations_per_day
    assert config.rules().pass_mark == DEFAULT_RULES.pass_mark
    assert config.rules().free_resubmissions == DEFAULT_RULES.free_resubmissions
    custom = config.model_copy(
        update={"standardisations_per_day": 5, "free_resubmissions": 0, "pass_mark": 70.0}
    )
    assert (custom.rules().standardisations_per_day, custom.rules().free_resubmissions) == (5, 0)
    assert custom.rules().pass_mark == 70.0
    assert RULES.order_amount(onsite_attendee=True) == config.fee_fen + config.onsite_extra_fee_fen


# --- codes -------------------------------------------------------------------------------------------


def scan(scan_id: str = "s2") -> codes.ScanCode:
    return codes.ScanCode(scan_id=scan_id, claim=CLAIM, qr_text="QR", trace={"request_id": "r"})


def test_a_first_scan_opens_an_application_with_its_event():
    document, event = codes.open_application("a1", "o1", scan("s1"), T0)
    assert document["state"] == "code_submitted" and document["owner_openid"] == "o1"
    assert document["code"] == {
        "scan_id": "s1",
        "status": "pending",
        "source": "text",
        "image_blob_id": None,
        "submitted_at": T0,
    }
    assert event.type == "code.scanned.v1" and event.data["scan_id"] == "s1" and event.application_id == "a1"


def test_an_application_without_an_owner_is_refused():
    with refused("no_owner"):
        codes.open_application("a1", "", scan(), T0)


@pytest.mark.parametrize("state", [State.CODE_SUBMITTED, State.CODE_REJECTED, State.CODE_VERIFIED])
def test_a_rescan_is_allowed_until_the_student_confirms(state):
    change = codes.rescan(app(state, code=pending_scan("s1")), scan("s2"), T0)
    assert change.set["state"] == "code_submitted" and change.set["code"]["scan_id"] == "s2"
    assert [e.data["scan_id"] for e in change.events] == ["s2"]


@pytest.mark.parametrize("state", [State.CONFIRMED, State.PAID, State.APPROVED])
def test_a_rescan_after_confirming_is_refused(state):
    with refused("application_locked"):
        codes.rescan(app(state), scan(), T0)


def test_a_decoded_code_verifies_the_application():
    a = app(State.CODE_SUBMITTED, code=pending_scan("s1"))
    change = codes.apply_scan_result(
        a,
        CodeDecoded(scan_id="s1", student=STUDENT, stage="text"),
        refusal=None,
        result_event_id="e1",
        onsite=False,
        now=T0,
    )
    assert change.set["state"] == "code_verified"
    assert change.set["student_id"] == "10487:2021001" and change.set["school_code"] == "10487"
    assert change.set["code"]["status"] == "decoded" and change.set["code"]["result_event_id"] == "e1"
    assert change.set["last_failure"] is None


def test_a_rejected_code_says_why_and_keeps_an_earlier_verified_code():
    rejected = CodeRejected(
        scan_id="s1", reason="fields_mismatch", message="不一致", mismatched_fields=["name"]
    )
    fresh = codes.apply_scan_result(
        app(State.CODE_SUBMITTED, code=pending_scan("s1")),
        rejected,
        refusal=None,
        result_event_id="e",
        onsite=False,
        now=T0,
    )
    assert fresh.set["state"] == "code_rejected" and fresh.set["code"]["mismatched_fields"] == ["name"]
    assert fresh.set["last_failure"]["code"] == "fields_mismatch"
    rescanned = app(
        State.CODE_SUBMITTED, code=pending_scan("s1"), verified_code={"student_number": "2021001"}
    )
    kept = codes.apply_scan_result(
        rescanned, rejected, refusal=None, result_event_id="e", onsite=False, now=T0
    )
    assert kept.set["state"] == "code_verified"


def test_a_decoded_code_the_gateway_refuses_is_a_rejection_with_the_eligibility_message():
    change = codes.apply_scan_result(
        app(State.CODE_SUBMITTED, code=pending_scan("s1")),
        CodeDecoded(scan_id="s1", student=STUDENT, stage="text"),
        refusal="not_in_roster",
        result_event_id="e",
        onsite=False,
        now=T0,
    )
    assert change.set["state"] == "code_rejected" and change.set["code"]["reason"] == "not_in_roster"


@pytest.mark.parametrize(
    "code",
    [pending_scan("other"), {**pending_scan("s1"), "status": "decoded"}, None],
    ids=["superseded", "repeat", "none"],
)
def test_a_result_for_a_superseded_or_decided_scan_changes_nothing(code):
    a = app(State.CODE_SUBMITTED, code=code)
    assert not codes.result_applies(a, "s1")
    result = CodeDecoded(scan_id="s1", student=STUDENT, stage="text")
    assert (
        codes.apply_scan_result(a, result, refusal=None, result_event_id="e", onsite=False, now=T0)
        is NO_CHANGE
    )


def test_roster_eligibility():
    assert codes.eligibility(None, RULES) == ("not_in_roster", False)
    assert codes.eligibility({"onsite_shot": True}, RULES) == ("onsite_shoot_attended", True)
    assert codes.eligibility({"onsite_shot": True}, None) == ("onsite_shoot_attended", True)
    allowing = SchoolRules(allow_onsite_attendees=True)
    assert codes.eligibility({"onsite_shot": True}, allowing) == (None, True)
    assert codes.eligibility({}, RULES) == (None, False)


def test_a_merged_application_keeps_its_scan_readable():
    change = codes.merge_into(app(State.CODE_SUBMITTED, code=pending_scan("s1")), "a0", T0)
    assert change.set["merged_into"] == "a0" and change.set["code"]["status"] == "decoded"
    # Still the account's to read, no longer the one it acts for: the continued one takes that slot.
    assert "owner_openid" not in change.set and change.set["active_owner"] is None


# --- binding -----------------------------------------------------------------------------------------


def test_locked_out_after_unbinding_unbinding_with_a_scan_in_flight_is_refused():
    with refused("scan_in_flight"):
        binding.unbind(app(State.CODE_SUBMITTED, code=pending_scan()))


def test_unbinding_leaves_the_application_without_an_owner():
    assert binding.unbind(app(State.PAID, code={**pending_scan(), "status": "decoded"})).set == {
        "owner_openid": None,
        "active_owner": None,  # no longer the application the account acts for (domain/binding.py)
    }
    assert binding.unbind(app(owner_openid=None)) is NO_CHANGE


def test_binding_refuses_a_missing_openid():
    with refused("no_owner"):
        binding.can_bind(None)
    with refused("no_owner"):
        binding.take_over(app(), "")
    assert binding.can_bind("o2") == "o2"
    assert binding.take_over(app(owner_openid=None), "o2").set == {"owner_openid": "o2", "active_owner": "o2"}
    assert binding.take_over(app(), "o1") is NO_CHANGE


# --- photos ------------------------------------------------------------------------------------------


def upload(photo_id: str = "p9") -> photos.UploadPhoto:
    return photos.UploadPhoto(photo_id=photo_id, source=PhotoSource.ALBUM, raw_blob_id="raw9")


def test_an_upload_takes_a_slot_and_asks_imaging():
    change = photos.upload_photo(app(State.PAID), upload(), RULES, T0)
    photo = change.set["photos"]["p9"]
    assert photo == {
        "status": "processing",
        "source": "album",
        "raw_blob_id": "raw9",
        "uploaded_at": T0,
        "standardisation_number": 1,
    }
    assert change.set["quota"] == {"taken": [T0], "reopens_at": None}
    assert [e.type for e in change.events] == ["photo.submitted.v1"]
    assert change.events[0].data["standardisation_number"] == 1


def test_the_same_photo_again_takes_no_second_slot():
    a = app(State.PAID, photos=standardized("p9"))
    assert photos.upload_photo(a, upload("p9"), RULES, T0) is NO_CHANGE


@pytest.mark.parametrize("state", [State.CONFIRMED, State.SUBMITTED, State.IN_REVIEW, State.APPROVED])
def test_an_upload_in_the_wrong_state_is_refused(state):
    with refused("illegal_transition"):
        photos.upload_photo(app(state), upload(), RULES, T0)
    with refused("illegal_transition"):
        photos.check_upload(app(state), RULES, T0)


def test_an_upload_past_the_schools_quota_is_refused_with_when_it_reopens():
    rules = SchoolRules(standardisations_per_day=1)
    a = app(State.PAID)
    first = photos.upload_photo(a, upload("p1"), rules, T0)
    after = a.model_copy(update={"quota": Application.from_doc({**a.doc(), **first.set}).quota})
    with pytest.raises(DomainError) as exc:
        photos.upload_photo(after, upload("p2"), rules, T0 + timedelta(hours=1))
    assert exc.value.code == "quota_exhausted"
    assert exc.value.details == {"reopens_at": (T0 + timedelta(hours=24)).isoformat()}


def measure() -> QualityMeasure:
    return QualityMeasure(code="background", raw=1.0, score=90, passed=True)


def test_imaging_standardises_a_processing_photo_once():
    a = app(
        State.PAID, photos={"p1": {"status": "processing", "uploaded_at": T0, "standardisation_number": 1}}
    )
    change = photos.apply_photo_result(
        a, PhotoStandardized(photo_id="p1", measures=[measure()], standardized_blob_id="std"), T0
    )
    assert change.set["photos"]["p1"]["status"] == "standardized"
    assert change.set["photos"]["p1"]["standardized_blob_id"] == "std"
    done = app(State.PAID, photos=change.set["photos"])
    again = PhotoRejected(photo_id="p1", measures=[], reasons=["x"])
    assert photos.apply_photo_result(done, again, T0) is NO_CHANGE
    assert photos.apply_photo_result(app(), again, T0) is NO_CHANGE  # unknown photo


def test_imaging_refuses_a_photo_with_reasons_the_student_reads():
    a = app(State.PAID, photos={"p1": {"status": "processing", "uploaded_at": T0}})
    result = PhotoRejected(
        photo_id="p1", measures=[measure()], reasons=["a", "b"], messages=["甲", "乙"], placed_blob_id="pl"
    )
    change = photos.apply_photo_result(a, result, T0)
    assert (
        change.set["photos"]["p1"]["status"] == "rejected"
        and change.set["photos"]["p1"]["placed_blob_id"] == "pl"
    )
    assert change.set["last_failure"]["message"] == "甲；乙"
    bare = photos.apply_photo_result(a, PhotoRejected(photo_id="p1", measures=[], reasons=["a"]), T0)
    assert bare.set["last_failure"]["message"] == photos.DEFAULT_REJECTION


def rejected_photo(placed: str | None = "pl") -> dict[str, Any]:
    return {
        "p1": {"status": "rejected", "reasons": ["background"], "placed_blob_id": placed, "uploaded_at": T0}
    }


def test_an_operator_lets_a_refused_photo_through():
    a = app(State.PAID, photos=rejected_photo(), last_failure={"code": "photo_rejected", "message": "x"})
    change = photos.override_quality(a, "p1", operator_id="op", reason="ok", now=T0)
    photo = change.set["photos"]["p1"]
    assert photo["status"] == "standardized" and photo["standardized_blob_id"] == "pl"
    assert photo["override"]["reasons_overridden"] == ["background"] and change.set["last_failure"] is None


@pytest.mark.parametrize(
    ("state", "photos_", "code"),
    [
        (State.PAID, {}, "not_found"),
        (State.PAID, standardized("p1"), "photo_not_rejected"),
        (State.PAID, rejected_photo(placed=None), "photo_not_placeable"),
        (State.SUBMITTED, rejected_photo(), "illegal_transition"),
    ],
)
def test_an_override_is_refused(state, photos_, code):
    with refused(code):
        photos.override_quality(app(state, photos=photos_), "p1", operator_id="op", reason="ok", now=T0)


# --- submissions and matching ------------------------------------------------------------------------


def submit(submission_id: str = "sub1", **overrides: Any) -> submissions.SubmitPhoto:
    fields: dict[str, Any] = {
        "submission_id": submission_id,
        "photo_id": "p1",
        "admission_photo_confirmed": True,
        "admission_photo_blob_id": "adm",
    }
    return submissions.SubmitPhoto(**{**fields, **overrides})


def test_a_submission_asks_matching_with_the_schools_pass_mark():
    rules = SchoolRules(pass_mark=72.5)
    change = submissions.submit_photo(app(State.PAID, photos=standardized()), submit(), rules, T0)
    assert change.set["state"] == "submitted"
    assert change.set["submission"] == {
        "submission_id": "sub1",
        "photo_id": "p1",
        "submitted_at": T0,
        "count": 1,
    }
    (event,) = change.events
    assert event.type == "photo.confirmed.v1" and event.data["pass_mark"] == 72.5
    assert event.id == derived_id("photo.confirmed", "sub1")  # from the (new) submission, never reused


@pytest.mark.parametrize(
    ("command", "photos_", "state", "code"),
    [
        (submit(admission_photo_confirmed=False), standardized(), State.PAID, "admission_photo_required"),
        (submit(admission_photo_blob_id=None), standardized(), State.PAID, "admission_photo_missing"),
        (submit(), {}, State.PAID, "photo_not_ready"),
        (submit(), {"p1": {"status": "processing"}}, State.PAID, "photo_not_ready"),
        (submit(), standardized(), State.SUBMITTED, "illegal_transition"),
        (submit(), standardized(), State.CONFIRMED, "illegal_transition"),
    ],
)
def test_a_submission_is_refused(command, photos_, state, code):
    with refused(code):
        submissions.submit_photo(app(state, photos=photos_), command, RULES, T0)


def test_a_resubmission_after_rejection_spends_one_of_the_schools_free_ones():
    rules = SchoolRules(free_resubmissions=1)
    change = submissions.submit_photo(app(State.REJECTED, photos=standardized()), submit(), rules, T0)
    assert (change.set["resubmissions_used"], change.set["resubmissions_left"]) == (1, 0)
    spent = app(State.REJECTED, photos=standardized(), resubmissions_used=1)
    with refused("resubmissions_exhausted"):
        submissions.submit_photo(spent, submit(), rules, T0)


def test_resubmissions_left_ignores_the_schools_free_resubmissions():
    """The defect: before any rejection the status page said 2 whatever the school allows."""
    fresh: dict[str, Any] = {"_id": "a", "state": "paid"}
    assert resubmissions_remaining(fresh, SchoolRules(free_resubmissions=5)) == 5
    assert resubmissions_remaining(fresh, SchoolRules(free_resubmissions=0)) == 0
    # Written before the counter existed: what was left then still counts.
    assert resubmissions_remaining({"resubmissions_left": 1}, SchoolRules(free_resubmissions=2)) == 1
    first = submissions.submit_photo(
        app(State.PAID, photos=standardized()), submit(), SchoolRules(free_resubmissions=4), T0
    )
    assert first.set["resubmissions_left"] == 4 and first.set["resubmissions_used"] == 0


def scored(photo_id: str = "p1", **fields: Any) -> MatchScored:
    return MatchScored(
        photo_id=photo_id,
        student_id="10487:2021001",
        engine="dlib",
        **{"score": 90.0, "passed": True, **fields},
    )


def submitted() -> Application:
    return app(State.SUBMITTED, submission={"submission_id": "s", "photo_id": "p1", "submitted_at": T0})


def test_a_passed_comparison_goes_to_review():
    change = submissions.apply_match(submitted(), scored(), T0)
    assert change.set == {
        "state": "in_review",
        "match": {"score": 90.0, "passed": True, "photo_id": "p1", "band": None},
    }


def test_a_failed_comparison_says_the_pass_mark_and_many_go_to_the_registrar():
    failed = submissions.apply_match(submitted(), scored(score=60.0, passed=False, pass_mark=75.0), T0)
    assert failed.set["state"] == "match_failed" and "75" in failed.set["last_failure"]["message"]
    registrar = submissions.apply_match(
        submitted(), scored(score=60.0, passed=False, needs_registrar=True), T0
    )
    assert registrar.set["state"] == "registrar_review"
    assert registrar.set["last_failure"]["code"] == "registrar_review"


def test_a_score_for_another_photo_or_a_repeat_changes_nothing():
    assert submissions.apply_match(submitted(), scored("p0"), T0) is NO_CHANGE
    moved_on = submitted().model_copy(update={"state": State.IN_REVIEW})
    assert submissions.apply_match(moved_on, scored(), T0) is NO_CHANGE


# --- review ------------------------------------------------------------------------------------------


def case(
    decision: ReviewDecision = ReviewDecision.APPROVED, reason_code: str | None = None
) -> review.ReviewCase:
    return review.ReviewCase(
        review_id="r1", decision=decision, reason_code=reason_code, note=" 注 ", operator_id="op"
    )


def in_review(state: State = State.IN_REVIEW, **fields: Any) -> Application:
    return app(state, submission={"submission_id": "s", "photo_id": "p1", "submitted_at": T0}, **fields)


def test_an_approval_publishes_the_decision():
    change = review.decide_review(in_review(), case(), RULES, T0)
    assert change.set["state"] == "approved" and change.set["last_failure"] is None
    assert change.set["review"]["from_state"] == "in_review" and len(change.set["reviews"]) == 1
    (event,) = change.events
    assert event.id == derived_id("review.decided", "r1") and event.data["decision"] == "approved"


def test_a_rejection_tells_the_student_what_is_left_under_the_schools_rules():
    change = review.decide_review(
        in_review(State.REGISTRAR_REVIEW),
        case(ReviewDecision.REJECTED, "background"),
        SchoolRules(free_resubmissions=3),
        T0,
    )
    assert change.set["state"] == "rejected" and change.set["resubmissions_left"] == 3
    assert "剩余3次" in change.set["last_failure"]["message"] and "注" in change.set["review"]["reason"]


@pytest.mark.parametrize(
    ("decision", "reason_code"),
    [(ReviewDecision.REJECTED, None), (ReviewDecision.REJECTED, "nope"), (ReviewDecision.APPROVED, "nope")],
)
def test_a_review_without_a_listed_reason_is_refused(decision, reason_code):
    with refused("reason_required"):
        review.decide_review(in_review(), case(decision, reason_code), RULES, T0)


def test_a_review_of_a_case_not_waiting_is_refused():
    with refused("illegal_transition"):
        review.decide_review(in_review(State.APPROVED), case(), RULES, T0)


# --- confirmation ------------------------------------------------------------------------------------


def test_confirming_preselects_the_first_options_and_takes_a_choice():
    change = confirmation.confirm(app(State.CODE_VERIFIED), RULES, T0)
    assert change.set["state"] == "confirmed"
    assert change.set["confirmation"]["graduation_year"] == {
        "code": "2025",
        "label": "普通本专科_2025届毕业生",
    }
    chosen = confirmation.confirm(app(State.CONFIRMED), RULES, T0, mailing_method="self_pickup")
    assert chosen.set["confirmation"]["mailing_method"]["code"] == "self_pickup"


def test_confirming_is_refused():
    with pytest.raises(DomainError) as exc:
        confirmation.confirm(app(State.CODE_VERIFIED), RULES, T0, graduation_year="1999")
    assert exc.value.code == "invalid_option" and exc.value.details["allowed"] == ["2025", "2024"]
    with refused("illegal_transition"):
        confirmation.confirm(app(State.CODE_VERIFIED), DEFAULT_RULES, T0)  # the school is not configured
    with refused("illegal_transition"):
        confirmation.confirm(
            app(State.PAID),
            SchoolRules(graduation_years=(Choice("a", "A"),), mailing_options=(Choice("m", "M"),)),
            T0,
        )


# --- delivery ----------------------------------------------------------------------------------------


def test_an_approved_application_is_claimed_into_one_batch_then_stamped_once():
    change = delivery.claim_for_batch(app(State.APPROVED), "b1", T0)
    assert change.set["delivery"] == {
        "batch_id": "b1",
        "exported_at": T0,
        "printed_at": None,
        "mailed_at": None,
    }
    claimed = app(State.APPROVED, delivery=change.set["delivery"])
    assert claimed.delivery is not None and claimed.delivery.status is DeliveryStatus.EXPORTED
    with pytest.raises(delivery.NotClaimable):
        delivery.claim_for_batch(claimed, "b2", T0)
    with pytest.raises(delivery.NotClaimable):
        delivery.claim_for_batch(app(State.IN_REVIEW), "b1", T0)
    printed = delivery.stamp(claimed, "b1", "printed", T0)
    assert app(State.APPROVED, delivery=printed.set["delivery"]).delivery.status is DeliveryStatus.PRINTED  # type: ignore[union-attr]
    again = app(State.APPROVED, delivery=printed.set["delivery"])
    with pytest.raises(delivery.NotClaimable):
        delivery.stamp(again, "b1", "printed", T0)
    with pytest.raises(delivery.NotClaimable):
        delivery.stamp(claimed, "other", "mailed", T0)


# --- retention ---------------------------------------------------------------------------------------


def test_purging_keeps_the_record_without_blob_ids():
    a = app(State.APPROVED, photos=standardized(), code={**pending_scan(), "image_blob_id": "img"})
    change = retention.purge(a, {"reason": "retention_period"}, reason="retention_period")
    assert change.set["photos"]["p1"]["purged"] is True
    assert not {"raw_blob_id", "standardized_blob_id"} & set(change.set["photos"]["p1"])
    assert "image_blob_id" not in change.set["code"]
    done = app(State.APPROVED, retention={"reason": "retention_period"})
    assert retention.purge(done, {}, reason="retention_period") is NO_CHANGE


def test_an_abandoned_application_the_student_came_back_to_is_not_purged():
    back = app(State.SUBMITTED)
    assert retention.purge(back, {}, reason="abandoned") is NO_CHANGE
    waiting = app(State.PAID, updated_at=T0)
    record = {"status": "purging", "reason": "abandoned", "photos_before": {}}
    assert retention.mark_abandoned(waiting, read_version=2, changed_at=T0, record=record) is NO_CHANGE
    assert (
        retention.mark_abandoned(waiting, read_version=3, changed_at=T0 + timedelta(seconds=1), record=record)
        is NO_CHANGE
    )
    marked = retention.mark_abandoned(waiting, read_version=3, changed_at=T0, record=record)
    assert marked.set["retention"] == record
    finished = retention.finish_abandoned(app(State.PAID, retention=record), {"blobs_deleted": 2})
    assert finished.set["retention"] == {"status": "done", "reason": "abandoned", "blobs_deleted": 2}
    assert retention.finish_abandoned(app(State.PAID, retention={"status": "done"}), {}) is NO_CHANGE


# --- statuses ----------------------------------------------------------------------------------------


def test_statuses_are_the_stored_values():
    assert [s.value for s in PhotoStatus] == ["processing", "standardized", "rejected"]
    assert [s.value for s in ScanStatus] == ["pending", "decoded", "rejected"]


# --- what console roles see --------------------------------------------------------------------------


def test_every_console_role_sees_the_openids_prepay_id_and_payer_in_the_history():
    """The defect: reviewers and support saw the student's and the payer's openid and the prepay id."""
    from services.gateway.console.operators import Role
    from services.gateway.console.students import project_history

    application = {
        "_id": "a1",
        "state": "paid",
        "owner_openid": "oSTUDENT",
        "order": {
            "prepay_id": "wx123",
            "payer_openid": "oPAYER",
            "created_by": "oSTUDENT",
            "amount_fen": 3500,
        },
        "outbox": {"e": {}},
    }
    related = {
        "codes": [{"_id": "s1", "status": "decoded"}],
        "photos": [],
        "matches": [],
        "notifications": [{"_id": "n1", "message": {"touser": "oSTUDENT"}, "note": "sent to oPAYER"}],
    }
    for role in (Role.REVIEWER, Role.SUPPORT):
        shown = project_history(application, related, role).model_dump_json()
        for secret in ("oSTUDENT", "oPAYER", "wx123", "prepay_id", "payer_openid", "outbox"):
            assert secret not in shown, (role, secret)
        assert "3500" in shown and "decoded" in shown
    admin = project_history(application, related, Role.ADMIN).model_dump_json()
    assert "oSTUDENT" in admin and "wx123" in admin and "outbox" not in admin


def test_the_active_owner_is_an_openid_to_the_console():
    """`active_owner` holds the account's openid (domain/binding.py): admin-only like `owner_openid`, also
    where it is the only field naming that account (left on an unbound application by an older gateway)."""
    from services.gateway.console.operators import Role
    from services.gateway.console.students import project_history

    related: dict[str, list[dict[str, str]]] = {"codes": [], "photos": [], "matches": [], "notifications": []}
    owned = {"_id": "a1", "state": "paid", "owner_openid": "oSTUDENT", "active_owner": "oSTUDENT"}
    left = {"_id": "a2", "state": "paid", "owner_openid": None, "active_owner": "oLEFT", "note": "by oLEFT"}
    for role in (Role.REVIEWER, Role.SUPPORT):
        for application in (owned, left):
            shown = project_history(application, related, role).model_dump_json()
            for secret in ("oSTUDENT", "oLEFT", "active_owner"):
                assert secret not in shown, (role, application["_id"], secret)
    assert "oLEFT" in project_history(left, related, Role.ADMIN).model_dump_json()


def test_the_order_part_is_typed_by_the_money_decisions():
    from services.gateway.domain.orders import OrderStatus

    order = {
        "order_id": "o1",
        "out_trade_no": "T2",
        "amount_fen": 3500,
        "status": "paid",
        "created_at": T0,
        "expires_at": T0 + timedelta(hours=2),
        "paid_at": T0,
        "paid_total_fen": 3500,
        "transaction_id": "42",
        "payer_openid": "o1",
    }
    superseded = {**order, "out_trade_no": "T1", "status": "closed", "paid_at": None, "paid_total_fen": None}
    a = app(State.PAID, order=order, orders=[superseded, order])
    assert a.order is not None and a.order.status is OrderStatus.PAID
    book = a.order_book
    assert [o.out_trade_no for o in book.orders] == ["T1", "T2"] and book.paid_order is not None
    assert app(State.CONFIRMED).order_book.current is None
    assert app(State.PAID, order={**order, "status": "some_future_status"}).order is not None

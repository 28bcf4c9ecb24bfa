"""The field rules as pure decisions: capture sources, consent with the policy version, withdrawal, and the
admission-photo dispute (services/gateway/domain/field_rules.py), and the school configuration's new fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.gateway.applications import NEXT_STEPS, Action, State, transition
from services.gateway.domain.application import Application
from services.gateway.domain.errors import DomainError
from services.gateway.domain.field_rules import (
    check_capture_source,
    dispute_admission_photo,
    has_consented,
    last_withdrawal,
    open_dispute,
    record_consent,
    withdraw_submission,
)
from services.gateway.schools import SchoolConfig, SchoolPublicView, demo_school, policy_version_of

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_capture_sources() -> None:
    check_capture_source("camera", ["camera"])
    check_capture_source("album", ("camera", "album"))
    with pytest.raises(DomainError) as refused:
        check_capture_source("album", ["camera"])
    assert refused.value.code == "capture_source_not_accepted" and refused.value.details == {
        "accepted": ["camera"]
    }
    for hostile in ("", "CAMERA", "screenshot", "camera\x00", "album " * 100):
        with pytest.raises(DomainError) as bad:
            check_capture_source(hostile, ["camera", "album"])
        assert bad.value.code == "invalid_request"


def test_consent_counts_only_for_the_version_shown() -> None:
    given = record_consent("10487", "2026-01", "2026-01", NOW)
    assert given.to_doc() == {"school_code": "10487", "policy_version": "2026-01", "agreed_at": NOW}
    with pytest.raises(DomainError) as outdated:
        record_consent("10487", "2026-02", "2026-01", NOW)
    assert outdated.value.code == "policy_outdated" and outdated.value.details == {
        "policy_version": "2026-02"
    }
    consents = [given.to_doc()]
    assert has_consented(consents, "10487", "2026-01")
    assert not has_consented(consents, "10487", "2026-02")  # the texts changed: read them again
    assert not has_consented(consents, "10488", "2026-01")
    assert not has_consented(None, "10487", "2026-01")


def _application(state: str, **fields: Any) -> Application:
    return Application.from_doc({"_id": "a1", "state": state, **fields})


def test_withdraw_only_while_waiting_for_review() -> None:
    submission = {"submission_id": "s1", "photo_id": "p1", "submitted_at": NOW, "count": 1}
    before = _application("in_review", submission=submission, resubmissions_used=1)
    done = withdraw_submission(before, "k1", NOW)
    assert done.set["state"] == State.WITHDRAWN
    record = {"submission_id": "s1", "photo_id": "p1", "from_state": "in_review", "withdrawn_at": NOW}
    assert done.set["withdrawals"] == [{**record, "idempotency_key": "k1"}]
    assert set(done.set) == {"state", "withdrawals"} and not done.events  # quota, resubmissions untouched
    again = _application("in_review", submission=submission, withdrawals=done.set["withdrawals"])
    assert len(withdraw_submission(again, None, NOW).set["withdrawals"]) == 2  # the trail is appended to
    after = _application("withdrawn", withdrawals=done.set["withdrawals"])
    assert last_withdrawal(after) == {**record, "idempotency_key": "k1"}
    assert last_withdrawal(_application("paid")) is None
    for state in State:
        if state is State.IN_REVIEW:
            continue
        with pytest.raises(DomainError) as refused:
            withdraw_submission(_application(str(state)), None, NOW)
        assert refused.value.code == "illegal_transition"


def test_after_a_withdrawal_the_student_takes_and_submits_another_photo() -> None:
    assert transition(State.WITHDRAWN, Action.UPLOAD_PHOTO) is State.WITHDRAWN
    assert transition(State.WITHDRAWN, Action.SUBMIT) is State.SUBMITTED
    assert NEXT_STEPS[State.WITHDRAWN].action == "take_photo"
    for action in (Action.REVIEW_APPROVED, Action.REVIEW_REJECTED, Action.WITHDRAW, Action.PAY, Action.SCAN):
        with pytest.raises(DomainError) as refused:
            transition(State.WITHDRAWN, action)
        assert refused.value.code == "illegal_transition"


def test_admission_photo_dispute() -> None:
    opened = dispute_admission_photo(_application("paid"), NOW).set
    assert opened == {"admission_photo_dispute": {"status": "open", "reported_at": NOW}}
    assert open_dispute(_application("paid", **opened)) == {"status": "open", "reported_at": NOW}
    assert not dispute_admission_photo(_application("paid", **opened), NOW)  # a repeat changes nothing
    assert open_dispute(_application("paid")) is None
    for state in ("code_submitted", "submitted", "in_review", "approved", "registrar_review"):
        with pytest.raises(DomainError) as refused:
            dispute_admission_photo(_application(state), NOW)
        assert refused.value.code == "illegal_transition"


def test_school_configuration_fields_and_safe_defaults() -> None:
    school = demo_school()
    assert school.capture_sources == ["camera", "album"] and school.current_policy_version() == "2026-01"
    assert school.rules().capture_sources == ("camera", "album")
    assert school.rules().capture_sources == ("camera", "album")
    bare = SchoolConfig.model_validate(
        {**school.model_dump(), "policy_version": "", "subscribe_templates": {}}
    )
    assert bare.current_policy_version() == policy_version_of(school.agreement, school.privacy_policy)
    changed = bare.model_copy(update={"privacy_policy": bare.privacy_policy + "（修订）"})
    assert changed.current_policy_version() != bare.current_policy_version()
    assert bare.subscribe_templates.payment == [] and bare.subscribe_templates.submission == []
    old = {k: v for k, v in school.model_dump().items() if k not in ("capture_sources", "policy_version")}
    assert SchoolConfig.model_validate(old).capture_sources == [
        "camera",
        "album",
    ]  # stored before this change
    camera_only = SchoolConfig.model_validate({**old, "capture_sources": ["camera", "camera"]})
    assert camera_only.capture_sources == ["camera"] and camera_only.rules().capture_sources == ("camera",)
    public = SchoolPublicView.of(camera_only)
    assert public.capture_sources == ["camera"] and public.policy_version.startswith("sha256:")
    for bad in (
        {"capture_sources": []},
        {"capture_sources": ["camera", "screenshot"]},
        {"policy_version": "v" * 33},
        {"subscribe_templates": {"payment": ["a", "b", "c", "d"]}},
        {"subscribe_templates": {"refund": ["a"]}},
    ):
        with pytest.raises(ValidationError):
            SchoolConfig.model_validate({**old, **bad})

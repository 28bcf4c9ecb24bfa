"""Seed steps 9-11: a standardised photo submitted with the confirmed admission photo, and the face
comparison's verdict on it.

Each submission gets a new `submission_id`, and its `photo.confirmed` event id derives from it: a repeat
of the request is answered from its Idempotency-Key's stored answer (`domain/idempotency.py`), never by
re-using an id, so matching never skips a new submission as a duplicate of an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.gateway.applications import Action, State, transition
from services.gateway.domain.application import Application, Failure, Match, Submission
from services.gateway.domain.change import NO_CHANGE, Change
from services.gateway.domain.errors import DomainError
from services.gateway.domain.rules import SchoolRules
from services.gateway.domain.statuses import PhotoStatus
from services.gateway.messages import FAILURE_MESSAGES
from shared.events import MatchScored, PhotoConfirmed, derived_id, make_event


@dataclass(frozen=True)
class SubmitPhoto:
    submission_id: str
    photo_id: str
    admission_photo_confirmed: bool
    admission_photo_blob_id: str | None  # the roster's, None when the school has not provided it
    trace: dict[str, str] = field(default_factory=dict)


def submit_photo(application: Application, cmd: SubmitPhoto, rules: SchoolRules, now: datetime) -> Change:
    """Submit; after 审核未通过 this spends one of the school's free resubmissions."""
    if not cmd.admission_photo_confirmed:
        raise DomainError("admission_photo_required")
    if not cmd.admission_photo_blob_id:
        raise DomainError("admission_photo_missing")
    photo = application.photos.get(cmd.photo_id)
    if photo is None or photo.status is not PhotoStatus.STANDARDIZED or not photo.standardized_blob_id:
        raise DomainError("photo_not_ready")
    state = transition(application.state, Action.SUBMIT)
    spent = application.resubmissions_spent(rules)
    if application.state is State.REJECTED:
        if application.resubmissions_remaining(rules) <= 0:
            raise DomainError("resubmissions_exhausted")
        spent += 1
    previous = application.submission.count if application.submission else 0
    submission = Submission(
        submission_id=cmd.submission_id, photo_id=cmd.photo_id, submitted_at=now, count=previous + 1
    )
    event = make_event(
        PhotoConfirmed(
            photo_id=cmd.photo_id,
            student_id=application.student_id or "",
            standardized_blob_id=photo.standardized_blob_id,
            admission_photo_blob_id=cmd.admission_photo_blob_id,
            pass_mark=rules.pass_mark,
        ),
        application_id=application.id,
        event_id=derived_id("photo.confirmed", cmd.submission_id),
        trace=cmd.trace,
        occurred_at=now,
    )
    return application.change(
        events=[event],
        state=state,
        submission=submission,
        resubmissions_used=spent,
        resubmissions_left=max(0, rules.free_resubmissions - spent),
        admission_photo_confirmed_at=now,
    )


def apply_match(application: Application, result: MatchScored, now: datetime) -> Change:
    """Matching's verdict on the submitted photo; one for an earlier submission, or a repeat, is ignored."""
    if application.submission is None or application.submission.photo_id != result.photo_id:
        return NO_CHANGE
    action = (
        Action.MATCH_PASSED
        if result.passed
        else Action.MATCH_TO_REGISTRAR
        if result.needs_registrar
        else Action.MATCH_FAILED
    )
    if application.state is not State.SUBMITTED:
        return NO_CHANGE  # already applied, or the application moved on
    state = transition(application.state, action)
    match = Match(
        score=result.score,
        passed=result.passed,
        photo_id=result.photo_id,
        band=result.band,
        # Stored only when matching flagged something (e.g. admission_photo_similar), for the reviewer.
        **({"flags": list(result.flags)} if result.flags else {}),
    )
    if action is Action.MATCH_PASSED:
        return application.change(state=state, match=match)
    # The matching service's own sentence when it has one (e.g. no face found in the photo).
    code = result.reason or ("registrar_review" if result.needs_registrar else "match_failed")
    message = result.message or (
        FAILURE_MESSAGES["registrar_review"]
        if result.needs_registrar
        else FAILURE_MESSAGES["match_failed"].format(pass_mark=result.pass_mark)
    )
    return application.change(
        state=state, match=match, last_failure=Failure(code=code, message=message, at=now)
    )

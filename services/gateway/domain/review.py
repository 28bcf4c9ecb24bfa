"""Seed step 12: an operator's review (审核通过 / 审核未通过) and the `review.decided` event it causes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.gateway.applications import Action, transition
from services.gateway.domain.application import Application, Failure, Review
from services.gateway.domain.change import Change
from services.gateway.domain.errors import DomainError
from services.gateway.domain.rules import SchoolRules
from services.gateway.domain.statuses import ReviewDecision
from services.gateway.messages import FAILURE_MESSAGES, REVIEW_REASONS
from shared.events import ReviewDecided, derived_id, make_event


@dataclass(frozen=True)
class ReviewCase:
    review_id: str
    decision: ReviewDecision
    reason_code: str | None
    note: str
    operator_id: str
    trace: dict[str, str] = field(default_factory=dict)


def check_reason(decision: ReviewDecision, reason_code: str | None) -> None:
    """A rejection names a reason from the list; an approval may name one, but only from the list."""
    if (decision is ReviewDecision.REJECTED or reason_code is not None) and reason_code not in REVIEW_REASONS:
        raise DomainError("reason_required", reasons=sorted(REVIEW_REASONS))


def decide_review(application: Application, cmd: ReviewCase, rules: SchoolRules, now: datetime) -> Change:
    check_reason(cmd.decision, cmd.reason_code)
    approved = cmd.decision is ReviewDecision.APPROVED
    state = transition(application.state, Action.REVIEW_APPROVED if approved else Action.REVIEW_REJECTED)
    label = REVIEW_REASONS.get(cmd.reason_code or "")
    reason = "：".join(part for part in (label, cmd.note.strip()) if part) or None
    photo_id = application.submission.photo_id if application.submission else None
    review = Review(
        review_id=cmd.review_id,
        decision=cmd.decision.value,
        reason_code=cmd.reason_code,
        reason=reason,
        note=cmd.note,
        operator_id=cmd.operator_id,
        photo_id=photo_id,
        from_state=application.state.value,
        decided_at=now,
    )
    event = make_event(
        ReviewDecided(
            review_id=cmd.review_id,
            photo_id=photo_id or "",
            student_id=application.student_id or "",
            decision=cmd.decision.value,
            reason=reason[:500] if reason else None,
            operator_id=cmd.operator_id,
        ),
        application_id=application.id,
        event_id=derived_id("review.decided", cmd.review_id),
        trace=cmd.trace,
        occurred_at=now,
    )
    reviews = [*application.reviews, review]
    if approved:
        return application.change(
            events=[event], state=state, review=review, reviews=reviews, last_failure=None
        )
    left = application.resubmissions_remaining(rules)
    message = FAILURE_MESSAGES["review_rejected"].format(reason=label or reason, left=left)
    return application.change(
        events=[event],
        state=state,
        review=review,
        reviews=reviews,
        resubmissions_used=application.resubmissions_spent(rules),
        resubmissions_left=left,
        last_failure=Failure(code="review_rejected", message=message, at=now),
    )

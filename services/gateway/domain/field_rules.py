"""Field practice beyond the seed (docs/api.md, "Field rules"): which capture sources a school accepts,
consent to the school's policies with their version, withdrawing a submission that waits for review, and
a student reporting that the admission photo is not them. Pure decisions: no I/O, no HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.gateway.applications import Action, State, transition
from services.gateway.domain.application import Application
from services.gateway.domain.change import NO_CHANGE, Change
from services.gateway.domain.errors import DomainError
from services.gateway.domain.statuses import PhotoSource

#: Where a photo may come from (the upload's declared `source`; statuses.PhotoSource).
CAPTURE_SOURCES: tuple[str, ...] = tuple(str(s) for s in PhotoSource)


def check_capture_source(source: str, accepted: Sequence[str]) -> None:
    """Many provinces require the phone's camera, live, with no album uploads: the school says which."""
    if source not in CAPTURE_SOURCES:
        raise DomainError("invalid_request", fields=[{"field": "source", "error": "camera_or_album"}])
    if source not in accepted:
        raise DomainError("capture_source_not_accepted", accepted=list(accepted))


@dataclass(frozen=True)
class Consent:
    school_code: str
    policy_version: str
    agreed_at: datetime

    def to_doc(self) -> dict[str, Any]:
        return {
            "school_code": self.school_code,
            "policy_version": self.policy_version,
            "agreed_at": self.agreed_at,
        }


def record_consent(school_code: str, current_version: str, agreed_version: str, now: datetime) -> Consent:
    """Consent counts only for the texts the student was shown: an older version must be read again."""
    if agreed_version != current_version:
        raise DomainError("policy_outdated", policy_version=current_version)
    return Consent(school_code, current_version, now)


def has_consented(consents: list[dict[str, Any]] | None, school_code: str, current_version: str) -> bool:
    return any(
        c.get("school_code") == school_code and c.get("policy_version") == current_version
        for c in consents or []
    )


def _extra(application: Application, name: str) -> Any:
    """A field this module keeps on the application (`withdrawals`, `admission_photo_dispute`)."""
    return (application.model_extra or {}).get(name)


def withdraw_submission(application: Application, idempotency_key: str | None, now: datetime) -> Change:
    """A submission waiting for review goes back to the student (IN_REVIEW -> WITHDRAWN).

    Recorded in `withdrawals` (which submission and photo, from which state, when): the application's
    audit trail. The quota and the free resubmissions are untouched: a withdrawal is not a review
    rejection, and the next submission from WITHDRAWN spends no free resubmission (only one after
    审核未通过 does: domain/submissions.py).
    """
    state = transition(application.state, Action.WITHDRAW)
    submission = application.submission
    record = {
        "submission_id": submission.submission_id if submission else None,
        "photo_id": submission.photo_id if submission else None,
        "from_state": str(application.state),
        "withdrawn_at": now,
        "idempotency_key": idempotency_key,
    }
    return application.change(state=state, withdrawals=[*(_extra(application, "withdrawals") or []), record])


def last_withdrawal(application: Application) -> dict[str, Any] | None:
    withdrawals = _extra(application, "withdrawals") or []
    return dict(withdrawals[-1]) if withdrawals else None


#: Before the comparison has a verdict on a submission, the student may say the admission photo is not them.
DISPUTABLE = (State.CONFIRMED, State.PAID, State.MATCH_FAILED, State.REJECTED, State.WITHDRAWN)


def dispute_admission_photo(application: Application, now: datetime) -> Change:
    """「录取照片不是本人」: a case for support (the console's exception queue), not a comparison that can only
    fail. A repeat while one is open changes nothing."""
    if application.state not in DISPUTABLE:
        raise DomainError("illegal_transition", state=str(application.state))
    if (_extra(application, "admission_photo_dispute") or {}).get("status") == "open":
        return NO_CHANGE
    return application.change(admission_photo_dispute={"status": "open", "reported_at": now})


def open_dispute(application: Application) -> dict[str, Any] | None:
    dispute = _extra(application, "admission_photo_dispute")
    return dict(dispute) if dispute else None

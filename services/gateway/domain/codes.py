"""Seed steps 4-5: a code scan and its result, as decisions.

A scan always gets a new `scan_id` (never one derived from the client's Idempotency-Key: a reused id
would make the codec answer with the stored outcome of the earlier scan under its earlier event id,
which the gateway skips as already handled, leaving the application waiting for good). Repeats of a
request are answered from the key's stored answer (`domain/idempotency.py`), not by re-using ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.gateway.applications import Action, ScanStatus, State, state_after_scan_result, transition
from services.gateway.domain.application import Application, Failure, Scan
from services.gateway.domain.change import NO_CHANGE, Change
from services.gateway.domain.errors import DomainError
from services.gateway.domain.rules import SchoolRules
from services.gateway.domain.statuses import ScanSource
from services.gateway.messages import ELIGIBILITY_MESSAGES
from shared.events import CodeDecoded, CodeRejected, CodeScanned, Envelope, StudentClaim, make_event


@dataclass(frozen=True)
class ScanCode:
    """What the register page sent: the typed claim and one source (text, or an image already stored)."""

    scan_id: str
    claim: StudentClaim
    qr_text: str | None = None
    image_blob_id: str | None = None
    expected_school_code: str | None = None
    trace: dict[str, str] = field(default_factory=dict)

    @property
    def source(self) -> ScanSource:
        return ScanSource.IMAGE if self.image_blob_id else ScanSource.TEXT


def _scan_and_event(application_id: str, cmd: ScanCode, now: datetime) -> tuple[Scan, Envelope]:
    scan = Scan(
        scan_id=cmd.scan_id,
        status=ScanStatus.PENDING,
        source=cmd.source,
        image_blob_id=cmd.image_blob_id,
        submitted_at=now,
    )
    event = make_event(
        CodeScanned(
            scan_id=cmd.scan_id,
            claim=cmd.claim,
            source=cmd.source.value,
            qr_text=cmd.qr_text,
            image_blob_id=cmd.image_blob_id,
            expected_school_code=cmd.expected_school_code,
        ),
        application_id=application_id,
        trace=cmd.trace,
        occurred_at=now,
    )
    return scan, event


def open_application(
    application_id: str, owner_openid: str, cmd: ScanCode, now: datetime
) -> tuple[dict[str, Any], Envelope]:
    """A new application for the account's first scan: its document and the `code.scanned` event."""
    if not owner_openid:
        raise DomainError("no_owner")
    scan, event = _scan_and_event(application_id, cmd, now)
    document = {
        "_id": application_id,
        "owner_openid": owner_openid,
        "active_owner": owner_openid,  # one application per account (domain/binding.py)
        "state": State.CODE_SUBMITTED.value,
        "claim": cmd.claim.model_dump(),
        "code": scan.doc(),
    }
    return document, event


def check_rescan(application: Application) -> None:
    """重新读取 is allowed until the student confirms (fail fast before an image is stored)."""
    try:
        transition(application.state, Action.SCAN)
    except DomainError as exc:
        raise DomainError("application_locked", state=application.state.value) from exc


def rescan(application: Application, cmd: ScanCode, now: datetime) -> Change:
    """A new scan replaces the latest; a refused one will not undo an earlier verified code."""
    check_rescan(application)
    scan, event = _scan_and_event(application.id, cmd, now)
    return application.change(
        events=[event], state=State.CODE_SUBMITTED, claim=cmd.claim.model_dump(), code=scan
    )


def result_applies(application: Application | None, scan_id: str) -> bool:
    """A codec result counts only for the application's latest scan while it is still pending."""
    return (
        application is not None
        and application.code is not None
        and application.code.scan_id == scan_id
        and application.code.status is ScanStatus.PENDING
    )


def eligibility(student: dict[str, Any] | None, rules: SchoolRules | None) -> tuple[str | None, bool]:
    """Roster eligibility of a decoded code: (refusal code or None, on-site attendee). `rules` are the
    school's (None: the school is not configured, which admits no on-site attendee)."""
    if student is None:
        return "not_in_roster", False
    onsite = bool(student.get("onsite_shot"))
    if onsite and (rules is None or not rules.allow_onsite_attendees):
        return "onsite_shoot_attended", True
    return None, onsite


def apply_scan_result(
    application: Application,
    result: CodeDecoded | CodeRejected,
    *,
    refusal: str | None,
    result_event_id: str,
    onsite: bool,
    now: datetime,
) -> Change:
    """The codec's outcome (or the gateway's own refusal of a decoded code: `refusal`) on the scan."""
    if not result_applies(application, result.scan_id):
        return NO_CHANGE
    assert application.code is not None
    decided = {"decided_at": now, "result_event_id": result_event_id}
    if refusal is None and isinstance(result, CodeDecoded):
        student = result.student.model_dump()
        code = application.code.model_copy(
            update={**decided, "status": ScanStatus.DECODED, "student": student}
        )
        return application.change(
            code=code,
            verified_code=student,
            student_id=f"{result.student.school_code}:{result.student.student_number}",
            school_code=result.student.school_code,
            state=transition(application.state, Action.CODE_DECODED),
            last_failure=None,
            # A school that lets on-site attendees collect online charges them the extra fee (seed 3).
            onsite_attendee=onsite,
        )
    reason: str
    if isinstance(result, CodeRejected):
        reason, message, mismatched = str(result.reason), result.message, list(result.mismatched_fields)
    else:
        reason, message, mismatched = str(refusal), ELIGIBILITY_MESSAGES[str(refusal)], []
    code = application.code.model_copy(
        update={
            **decided,
            "status": ScanStatus.REJECTED,
            "reason": reason,
            "message": message,
            "mismatched_fields": mismatched,
        }
    )
    return application.change(
        code=code,
        state=state_after_scan_result(False, had_verified_code=application.verified_code is not None),
        last_failure=Failure(code=reason, message=message, at=now),
    )


def merge_into(application: Application, continued: str, now: datetime) -> Change:
    """The student came back on another account and continues `continued`: this application only keeps
    the scan's result readable (Applications.owned_by skips merged applications)."""
    if application.code is None:
        return application.change(merged_into=continued, active_owner=None)
    code = application.code.model_copy(update={"status": ScanStatus.DECODED, "decided_at": now})
    return application.change(merged_into=continued, code=code, active_owner=None)

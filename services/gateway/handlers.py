"""Result events the gateway applies to the applications it owns (the only writer of their state)."""

from __future__ import annotations

from typing import Any

import structlog

from services.gateway.applications import (
    Action,
    IllegalTransition,
    ScanStatus,
    state_after_scan_result,
    transition,
)
from services.gateway.messages import ELIGIBILITY_MESSAGES, FAILURE_MESSAGES
from services.gateway.schools import Schools
from services.gateway.store import Applications, Change, Users
from shared.bus import Subscription
from shared.db import Database, Document
from shared.events import (
    CodeDecoded,
    CodeRejected,
    Envelope,
    MatchScored,
    OrderPaid,
    PhotoRejected,
    PhotoStandardized,
    utcnow,
)
from shared.logging import get_logger

log = get_logger(__name__)


class GatewayHandlers:
    def __init__(
        self, database: Database, applications: Applications, users: Users, schools: Schools
    ) -> None:
        self._db = database.db
        self._applications = applications
        self._users = users
        self._schools = schools

    def subscription(self) -> Subscription:
        sub = Subscription("gateway")
        sub.on(CodeDecoded)(self.on_code_result)
        sub.on(CodeRejected)(self.on_code_result)
        sub.on(PhotoStandardized)(self.on_photo_result)
        sub.on(PhotoRejected)(self.on_photo_result)
        sub.on(MatchScored)(self.on_match_scored)
        sub.on(OrderPaid)(self.on_order_paid)
        return sub

    # --- collection code ------------------------------------------------------------------------

    async def on_code_result(self, payload: CodeDecoded | CodeRejected, envelope: Envelope) -> list[Envelope]:
        application_id = envelope.application_id or ""
        structlog.contextvars.bind_contextvars(application_id=application_id)
        current = await self._applications.get(application_id)
        if current is None or (current.get("code") or {}).get("scan_id") != payload.scan_id:
            log.info("code result ignored: scan superseded", scan_id=payload.scan_id)
            return []
        if current["code"]["status"] != ScanStatus.PENDING:
            return []  # already applied (a redelivery)
        refusal: tuple[str, str] | None = None
        onsite = False
        if isinstance(payload, CodeRejected):
            refusal = (payload.reason, payload.message)
        else:
            refusal, onsite = await self._admit(current, payload)
            if refusal is None and await self._continue_existing(current, payload):
                return []
        await self._applications.mutate(
            application_id, lambda doc: _apply_scan(doc, payload, refusal, envelope.id, onsite=onsite)
        )
        return []

    async def _admit(
        self, application: Document, decoded: CodeDecoded
    ) -> tuple[tuple[str, str] | None, bool]:
        """Roster eligibility and the one-account-one-student binding: (refusal or None, on-site attendee)."""
        student_id = f"{decoded.student.school_code}:{decoded.student.student_number}"
        student = await self._db["students"].find_one({"_id": student_id})
        if student is None:
            return ("not_in_roster", ELIGIBILITY_MESSAGES["not_in_roster"]), False
        onsite = bool(student.get("onsite_shot"))
        if onsite:
            school = await self._schools.get(decoded.student.school_code)
            if school is None or not school.allow_onsite_attendees:
                return ("onsite_shoot_attended", ELIGIBILITY_MESSAGES["onsite_shoot_attended"]), True
        reason = await self._users.bind(application["owner_openid"], student_id)
        if reason:
            return (reason, ELIGIBILITY_MESSAGES[reason]), onsite
        await self._users.set_fields(
            application["owner_openid"],
            student={
                "masked_name": decoded.student.masked_name,
                "student_number": decoded.student.student_number,
                "school_code": decoded.student.school_code,
                "school_name": decoded.student.school_name,
            },
        )
        return None, onsite

    async def _continue_existing(self, application: Document, decoded: CodeDecoded) -> bool:
        """A student who unbound and came back on another account continues their own application."""
        student_id = f"{decoded.student.school_code}:{decoded.student.student_number}"
        cursor = self._db["applications"].find({"student_id": student_id}, {"_id": 1})
        others = [doc["_id"] async for doc in cursor if doc["_id"] != application["_id"]]
        if not others:
            return False
        owner, continued = application["owner_openid"], others[0]
        await self._applications.mutate(continued, lambda doc: Change(set={"owner_openid": owner}))
        await self._applications.mutate(application["_id"], lambda doc: _merged(doc, continued))
        log.info("student continued an earlier application", continued=continued)
        return True

    # --- photos and matching --------------------------------------------------------------------

    async def on_photo_result(
        self, payload: PhotoStandardized | PhotoRejected, envelope: Envelope
    ) -> list[Envelope]:

        def decide(doc: Document) -> Change:
            photos = dict(doc.get("photos") or {})
            photo = photos.get(payload.photo_id)
            if photo is None or photo["status"] != "processing":
                return Change()
            photo = dict(photo, decided_at=utcnow(), measures=[m.model_dump() for m in payload.measures])
            if isinstance(payload, PhotoStandardized):
                photo.update(status="standardized", standardized_blob_id=payload.standardized_blob_id)
                fields: dict[str, Any] = {}
            else:
                # `messages` are the imaging service's Chinese sentences for `reasons`, in the same order.
                messages = list(getattr(payload, "messages", []) or [])
                photo.update(
                    status="rejected",
                    reasons=payload.reasons,
                    messages=messages,
                    placed_blob_id=payload.placed_blob_id,
                )
                message = "；".join(messages) or "照片不符合要求，请按拍照说明重拍"
                fields = {"last_failure": {"code": "photo_rejected", "message": message, "at": utcnow()}}
            photos[payload.photo_id] = photo
            return Change(set={"photos": photos, **fields})

        await self._applications.mutate(envelope.application_id or "", decide)
        return []

    async def on_match_scored(self, payload: MatchScored, envelope: Envelope) -> list[Envelope]:

        def decide(doc: Document) -> Change:
            if (doc.get("submission") or {}).get("photo_id") != payload.photo_id:
                return Change()
            action = (
                Action.MATCH_PASSED
                if payload.passed
                else Action.MATCH_TO_REGISTRAR
                if payload.needs_registrar
                else Action.MATCH_FAILED
            )
            try:
                state = transition(doc["state"], action)
            except IllegalTransition:
                return Change()  # already applied, or the application moved on
            fields: dict[str, Any] = {
                "state": state,
                "match": {"score": payload.score, "passed": payload.passed, "photo_id": payload.photo_id},
            }
            if action is not Action.MATCH_PASSED:
                # The matching service's own sentence when it has one (e.g. no face found in the photo).
                code = payload.reason or ("registrar_review" if payload.needs_registrar else "match_failed")
                message = payload.message or (
                    FAILURE_MESSAGES["registrar_review"]
                    if payload.needs_registrar
                    else FAILURE_MESSAGES["match_failed"].format(pass_mark=payload.pass_mark)
                )
                fields["last_failure"] = {"code": code, "message": message, "at": utcnow()}
            return Change(set=fields)

        await self._applications.mutate(envelope.application_id or "", decide)
        return []

    async def on_order_paid(self, payload: OrderPaid, envelope: Envelope) -> list[Envelope]:
        """The gateway wrote this event itself (outbox); consuming it only records the hand-off."""
        log.info("order paid event delivered", order_id=payload.order_id)
        return []


def _merged(doc: Document, continued: str) -> Change:
    code = {**doc["code"], "status": ScanStatus.DECODED, "decided_at": utcnow()}
    # The account now acts for the continued application; this one keeps its owner only so the
    # student can still read the scan's result (Applications.owned_by skips merged applications).
    return Change(set={"merged_into": continued, "code": code})


def _apply_scan(
    doc: Document,
    payload: CodeDecoded | CodeRejected,
    refusal: tuple[str, str] | None,
    event_id: str,
    *,
    onsite: bool,
) -> Change:
    code = dict(doc["code"])
    if code.get("status") != ScanStatus.PENDING or code.get("scan_id") != payload.scan_id:
        return Change()
    now = utcnow()
    code.update(decided_at=now, result_event_id=event_id)
    fields: dict[str, Any] = {}
    if refusal is None:
        assert isinstance(payload, CodeDecoded)
        student = payload.student.model_dump()
        code.update(status=ScanStatus.DECODED, student=student)
        fields.update(
            verified_code=student,
            student_id=f"{payload.student.school_code}:{payload.student.student_number}",
            school_code=payload.student.school_code,
            state=transition(doc["state"], Action.CODE_DECODED),
            last_failure=None,
            # A school that lets on-site attendees collect online charges them the extra fee (seed 3).
            onsite_attendee=onsite,
        )
    else:
        reason, message = refusal
        code.update(
            status=ScanStatus.REJECTED,
            reason=reason,
            message=message,
            mismatched_fields=getattr(payload, "mismatched_fields", [])
            if isinstance(payload, CodeRejected)
            else [],
        )
        fields["state"] = state_after_scan_result(False, had_verified_code="verified_code" in doc)
        fields["last_failure"] = {"code": reason, "message": message, "at": now}
    fields["code"] = code
    return Change(set=fields)

"""Result events the gateway applies to the applications it owns (the only writer of their state).

Each handler loads what the decision needs and applies a pure decision from `domain/`; the rules are there.
"""

from __future__ import annotations

import structlog

from services.gateway.domain import binding, codes, photos, submissions
from services.gateway.domain.application import Application
from services.gateway.domain.errors import DomainError
from services.gateway.schools import Schools
from services.gateway.store import Applications, Decision, Users
from shared.bus import Subscription
from shared.db import Database
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
        # Claimed: applying a code result binds the account and may merge applications (several writes).
        sub.on(CodeDecoded)(self.on_code_result)
        sub.on(CodeRejected)(self.on_code_result)
        # Idempotent by construction, no claim (docs/architecture.md): one versioned write of one
        # application, whose decision changes nothing for a result already applied; and a log line.
        sub.on(PhotoStandardized, claim=False)(self.on_photo_result)
        sub.on(PhotoRejected, claim=False)(self.on_photo_result)
        sub.on(MatchScored, claim=False)(self.on_match_scored)
        sub.on(OrderPaid, claim=False)(self.on_order_paid)
        return sub

    # --- collection code ------------------------------------------------------------------------

    async def on_code_result(self, payload: CodeDecoded | CodeRejected, envelope: Envelope) -> list[Envelope]:
        application_id = envelope.application_id or ""
        structlog.contextvars.bind_contextvars(application_id=application_id)
        document = await self._applications.get(application_id)
        current = Application.from_doc(document) if document else None
        if current is None or not codes.result_applies(current, payload.scan_id):
            log.info("code result ignored: scan superseded or already applied", scan_id=payload.scan_id)
            return []
        if not current.owner_openid:
            # Unbound meanwhile (before unbinding refused a scan in flight): binding the student to no
            # account would lock every account out, so the result is dropped; the student scans again.
            log.warning("code result dropped: the application has no owner", scan_id=payload.scan_id)
            return []
        refusal: str | None = None
        onsite = False
        if isinstance(payload, CodeDecoded):
            refusal, onsite = await self._admit(current, payload)
            if refusal is None and await self._continue_existing(current, payload):
                return []
        await self._applications.apply(
            application_id,
            lambda app: codes.apply_scan_result(
                app, payload, refusal=refusal, result_event_id=envelope.id, onsite=onsite, now=utcnow()
            ),
            current=document,
        )
        return []

    async def _admit(self, application: Application, decoded: CodeDecoded) -> tuple[str | None, bool]:
        """Roster eligibility and the one-account-one-student binding: (refusal or None, on-site attendee)."""
        student_id = f"{decoded.student.school_code}:{decoded.student.student_number}"
        student = await self._db["students"].find_one({"_id": student_id}, {"onsite_shot": 1})
        school = await self._schools.get(decoded.student.school_code) if student else None
        refusal, onsite = codes.eligibility(student, school.rules() if school else None)
        if refusal:
            return refusal, onsite
        openid = binding.can_bind(application.owner_openid)
        reason = await self._users.bind(
            openid,
            student_id,
            student={
                "masked_name": decoded.student.masked_name,
                "student_number": decoded.student.student_number,
                "school_code": decoded.student.school_code,
                "school_name": decoded.student.school_name,
            },
        )
        return reason, onsite

    async def _continue_existing(self, application: Application, decoded: CodeDecoded) -> bool:
        """A student who unbound and came back on another account continues their own application."""
        student_id = f"{decoded.student.school_code}:{decoded.student.student_number}"
        cursor = self._db["applications"].find(
            {"student_id": student_id, "merged_into": {"$exists": False}}, {"_id": 1}
        )
        others = [doc["_id"] async for doc in cursor if doc["_id"] != application.id]
        if not others:
            return False
        owner, continued = binding.can_bind(application.owner_openid), others[0]
        # Merged first: the account acts for one application at a time (domain/binding.py), so this one
        # stops being its application before the earlier one becomes it.
        await self._applications.apply(application.id, lambda app: codes.merge_into(app, continued, utcnow()))
        await self._applications.apply(continued, lambda app: binding.take_over(app, owner))
        log.info("student continued an earlier application", continued=continued)
        return True

    # --- photos and matching --------------------------------------------------------------------

    async def on_photo_result(
        self, payload: PhotoStandardized | PhotoRejected, envelope: Envelope
    ) -> list[Envelope]:
        await self._apply(envelope, lambda app: photos.apply_photo_result(app, payload, utcnow()))
        return []

    async def on_match_scored(self, payload: MatchScored, envelope: Envelope) -> list[Envelope]:
        await self._apply(envelope, lambda app: submissions.apply_match(app, payload, utcnow()))
        return []

    async def _apply(self, envelope: Envelope, decision: Decision) -> None:
        try:
            await self._applications.apply(envelope.application_id or "", decision)
        except LookupError:
            log.warning("result for an unknown application dropped", event_type=envelope.type)
        except DomainError as exc:  # a result the application can no longer take
            log.info("result not applied", event_type=envelope.type, code=exc.code)

    async def on_order_paid(self, payload: OrderPaid, envelope: Envelope) -> list[Envelope]:
        """The gateway wrote this event itself (outbox); consuming it only records the hand-off."""
        log.info("order paid event delivered", order_id=payload.order_id)
        return []

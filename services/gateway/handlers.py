"""Result events the gateway applies to the applications it owns."""

from __future__ import annotations

import structlog

from services.gateway.applications import ScanStatus, state_after_scan_result
from shared.bus import Subscription
from shared.db import Database
from shared.events import CodeDecoded, CodeRejected, Envelope, EventData, utcnow
from shared.logging import get_logger

log = get_logger(__name__)


class GatewayHandlers:
    def __init__(self, database: Database) -> None:
        self._applications = database.db["applications"]

    def subscription(self) -> Subscription:
        sub = Subscription("gateway")
        sub.on(CodeDecoded.event_type)(self.on_code_result)
        sub.on(CodeRejected.event_type)(self.on_code_result)
        return sub

    async def on_code_result(self, envelope: Envelope, payload: EventData) -> list[Envelope]:
        assert isinstance(payload, CodeDecoded | CodeRejected)
        structlog.contextvars.bind_contextvars(application_id=envelope.application_id)
        # Only the scan the student is waiting for, and only once: the filter is the guard.
        guard = {"_id": envelope.application_id, "code.scan_id": payload.scan_id, "code.status": "pending"}
        application = await self._applications.find_one(guard, {"verified_code": 1, "code": 1})
        if application is None:
            log.info("code result ignored: scan superseded or already applied", scan_id=payload.scan_id)
            return []
        now = utcnow()
        # The whole `code` subdocument is replaced (never a dotted path): datetimes stay datetimes on
        # every server, and the guard makes the read-modify-write safe.
        code = {**application["code"], "decided_at": now, "result_event_id": envelope.id}
        fields: dict[str, object] = {"updated_at": now}
        if isinstance(payload, CodeDecoded):
            student = payload.student.model_dump()
            code.update(status=ScanStatus.DECODED, student=student)
            fields["verified_code"] = student
        else:
            code.update(
                status=ScanStatus.REJECTED,
                reason=payload.reason,
                message=payload.message,
                mismatched_fields=payload.mismatched_fields,
            )
        fields["code"] = code
        fields["state"] = state_after_scan_result(
            isinstance(payload, CodeDecoded), had_verified_code="verified_code" in application
        )
        result = await self._applications.update_one(guard, {"$set": fields})
        log.info(
            "code result applied",
            scan_id=payload.scan_id,
            status=code["status"],
            applied=bool(result.modified_count),
        )
        return []

"""Students of the operator's schools: search, the full history of an application, unbinding the
student's WeChat (as 我的 → 解除绑定 does), and refunds (admin and support only).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.console.auth import CONSOLE, operator
from services.gateway.console.cases import PREFIX, scoped_application
from services.gateway.console.operators import Role
from services.gateway.context import APPLICATIONS, DATABASE, PAY, USERS
from services.gateway.http.bodies import json_body
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from services.gateway.payments import refund
from services.gateway.store import Change
from shared.db import Document
from shared.logging import get_logger
from shared.wechat.errors import WeChatPayError

log = get_logger(__name__)
api = Api()
# Result documents of the workers, by application id (each service owns its collection).
HISTORY_COLLECTIONS = {
    "codes": "decided_at",
    "photos": "decided_at",
    "matches": "decided_at",
    "notifications": "created_at",
}
# Never shown: secrets and the outbox's internal bookkeeping.
HIDDEN_FIELDS = {"outbox", "qr_text", "session_key", "phone_encrypted"}


class ApplicationSummary(BaseModel):
    application_id: str
    state: str
    updated_at: datetime | None


class StudentMatch(BaseModel):
    student_id: str
    school_code: str
    name: str
    student_number: str
    class_name: str | None
    applications: list[ApplicationSummary]


class StudentList(BaseModel):
    students: list[StudentMatch]


class ApplicationHistory(BaseModel):
    application: dict[str, Any]
    codes: list[dict[str, Any]]
    photos: list[dict[str, Any]]
    matches: list[dict[str, Any]]
    notifications: list[dict[str, Any]]


class UnbindResponse(BaseModel):
    application_id: str
    unbound_openid: str | None


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=2, max_length=80, description="shown to the payer by WeChat Pay")
    amount_fen: int | None = Field(default=None, gt=0, description="the whole order when absent")


class RefundResponse(BaseModel):
    application_id: str
    refund: dict[str, Any]


def _plain(value: Any) -> Any:
    """A stored document as JSON-safe data, minus hidden fields and binary payloads."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k not in HIDDEN_FIELDS}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, str | int | float | bool | datetime):
        return value
    return str(value)


@api.route(
    "GET",
    f"{PREFIX}/students",
    summary="Find students of my schools by student number (exact) or name (contains)",
    response=StudentList,
    query={"q": {"type": "string", "minLength": 1, "maxLength": 50}},
)
async def search_students(request: web.Request) -> web.Response:
    who = await operator(request)
    q = request.query.get("q", "").strip()
    if not 1 <= len(q) <= 50:
        raise ApiError(400, "invalid_request", fields=[{"field": "q", "error": "1-50 characters"}])
    db = request.app[DATABASE].db
    query = {"$or": [{"student_number": q}, {"name": {"$regex": re.escape(q)}}], **who.school_filter()}
    found = [s async for s in db["students"].find(query, {"admission_photo_blob_id": 0}).limit(50)]
    by_student: dict[str, list[ApplicationSummary]] = {}
    async for application in request.app[APPLICATIONS].collection.find(
        {"student_id": {"$in": [s["_id"] for s in found]}}, {"state": 1, "student_id": 1, "updated_at": 1}
    ):
        by_student.setdefault(application["student_id"], []).append(
            ApplicationSummary(
                application_id=application["_id"],
                state=application["state"],
                updated_at=application.get("updated_at"),
            )
        )
    await request.app[CONSOLE].audit.record(request, who, "student.search", query=q, results=len(found))
    students = [
        StudentMatch(
            student_id=s["_id"],
            school_code=s["school_code"],
            name=s["name"],
            student_number=s["student_number"],
            class_name=s.get("class_name"),
            applications=by_student.get(s["_id"], []),
        )
        for s in found
    ]
    return json_response(StudentList(students=students).model_dump(mode="json"))


@api.route(
    "GET",
    f"{PREFIX}/applications/{{application_id}}",
    summary="The full history of an application: the document and the workers' results",
    response=ApplicationHistory,
    errors=("not_found",),
)
async def application_history(request: web.Request) -> web.Response:
    who = await operator(request)
    application = await scoped_application(request, who, request.match_info["application_id"])
    db = request.app[DATABASE].db
    related: dict[str, list[Document]] = {}
    for name, order in HISTORY_COLLECTIONS.items():
        cursor = db[name].find({"application_id": application["_id"]}).sort(order, 1).limit(200)
        related[name] = [_plain(d) async for d in cursor]
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "application.view",
        application_id=application["_id"],
        school_code=application.get("school_code"),
    )
    reply = ApplicationHistory(application=_plain(application), **related)
    return json_response(reply.model_dump(mode="json"))


@api.route(
    "POST",
    f"{PREFIX}/applications/{{application_id}}/unbind",
    summary="Unbind the student's WeChat account (same effect as 我的 → 解除绑定)",
    response=UnbindResponse,
    errors=("forbidden", "csrf_failed", "not_found"),
)
async def unbind_student(request: web.Request) -> web.Response:
    who = await operator(request, Role.ADMIN, Role.SUPPORT)
    application = await scoped_application(request, who, request.match_info["application_id"])
    openid = application.get("owner_openid")
    if openid:
        users = request.app[USERS]
        await users.unbind(openid)
        await users.set_fields(openid, student=None)
        await request.app[APPLICATIONS].mutate(
            application["_id"], lambda doc: Change(set={"owner_openid": None})
        )
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "student.unbind",
        application_id=application["_id"],
        school_code=application.get("school_code"),
        had_binding=bool(openid),
    )
    return json_response(
        UnbindResponse(application_id=application["_id"], unbound_openid=openid).model_dump()
    )


@api.route(
    "POST",
    f"{PREFIX}/applications/{{application_id}}/refund",
    summary="Refund the application's paid order through WeChat Pay (admin and support only)",
    body=RefundRequest,
    response=RefundResponse,
    errors=("forbidden", "csrf_failed", "not_found", "no_paid_order", "refund_failed"),
)
async def refund_order(request: web.Request) -> web.Response:
    who = await operator(request, Role.ADMIN, Role.SUPPORT)
    application = await scoped_application(request, who, request.match_info["application_id"])
    body = await json_body(request, RefundRequest)
    audit = request.app[CONSOLE].audit
    target = {"application_id": application["_id"], "school_code": application.get("school_code")}
    try:
        written = await refund(
            request.app[APPLICATIONS],
            request.app[PAY],
            application["_id"],
            reason=body.reason,
            operator_id=who.operator_id,
            amount_fen=body.amount_fen,
        )
    except ValueError as exc:
        await audit.record(request, who, "order.refund", outcome="refused", error=str(exc), **target)
        raise ApiError(409, "no_paid_order") from exc
    except WeChatPayError as exc:
        log.warning("refund refused by WeChat Pay", error=str(exc))
        await audit.record(request, who, "order.refund", outcome="failed", error=str(exc)[:200], **target)
        raise ApiError(502, "refund_failed") from exc
    refund_doc = written["order"]["refund"]
    await audit.record(
        request, who, "order.refund", amount_fen=refund_doc["amount_fen"], reason=body.reason, **target
    )
    return json_response(
        RefundResponse(application_id=written["_id"], refund=_plain(refund_doc)).model_dump(mode="json")
    )

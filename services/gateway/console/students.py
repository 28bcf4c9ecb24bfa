"""Students of the operator's schools: search, the full history of an application, unbinding the
student's WeChat (as 我的 → 解除绑定 does). Refunds: console/payments.py.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from services.gateway.console.auth import CONSOLE, SIGNED_IN, roles
from services.gateway.console.cases import PREFIX, scoped_application
from services.gateway.console.operators import Operator, Role
from services.gateway.context import APPLICATIONS, DATABASE, USERS
from services.gateway.domain import binding
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from shared.db import Document
from shared.logging import get_logger

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
# Shown to admins only: WeChat identifiers of the student and the payer, and payment handles. Below admin
# they are left out, and any other field holding one of the application's openids reads "<hidden>".
ADMIN_ONLY_FIELDS = {
    "owner_openid",
    "active_owner",
    "openid",
    "payer_openid",
    "payer",
    "prepay_id",
    "touser",
    "created_by_openid",
}
OPENID_FIELDS = ("owner_openid", "active_owner", "payer_openid", "created_by", "openid", "touser")


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
    """No openid: operators never need the WeChat account's identifier (issue 13, exposure)."""

    application_id: str
    had_binding: bool = Field(description="an account or a binding record was released")


def _plain(
    value: Any, hidden: frozenset[str] | set[str] = HIDDEN_FIELDS, secrets: frozenset[str] = frozenset()
) -> Any:
    """A stored document as JSON-safe data, minus hidden fields, secret values and binary payloads."""
    if isinstance(value, dict):
        return {str(k): _plain(v, hidden, secrets) for k, v in value.items() if k not in hidden}
    if isinstance(value, list | tuple):
        return [_plain(v, hidden, secrets) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and secrets:
        for secret in secrets:
            value = value.replace(secret, "<hidden>")
        return value
    if value is None or isinstance(value, str | int | float | bool | datetime):
        return value
    return str(value)


def _openids(value: Any, found: set[str]) -> set[str]:
    """Every value of an openid-holding field anywhere in a document."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in OPENID_FIELDS and isinstance(item, str) and item:
                found.add(item)
            elif key == "payer" and isinstance(item, dict) and isinstance(item.get("openid"), str):
                found.add(item["openid"])
            else:
                _openids(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _openids(item, found)
    return found


def project_history(
    application: Document, related: dict[str, list[Document]], role: Role
) -> ApplicationHistory:
    """The history as `role` may see it: admins everything but secrets; reviewers and support no openids
    (the student's or the payer's), no prepay ids, no payer ids, wherever they are stored."""
    if role is Role.ADMIN:
        return ApplicationHistory(
            application=_plain(application), **{name: _plain(docs) for name, docs in related.items()}
        )
    secrets = frozenset(_openids([application, related], set()))
    hidden = HIDDEN_FIELDS | ADMIN_ONLY_FIELDS
    return ApplicationHistory(
        application=_plain(application, hidden, secrets),
        **{name: _plain(docs, hidden, secrets) for name, docs in related.items()},
    )


@api.route(
    "GET",
    f"{PREFIX}/students",
    summary="Find students of my schools by student number (exact) or name (contains)",
    response=StudentList,
    query={"q": {"type": "string", "minLength": 1, "maxLength": 50}},
    auth=SIGNED_IN,
)
async def search_students(request: web.Request, *, who: Operator) -> web.Response:
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
    auth=SIGNED_IN,
)
async def application_history(request: web.Request, *, who: Operator) -> web.Response:
    application = await scoped_application(request, who, request.match_info["application_id"])
    db = request.app[DATABASE].db
    related: dict[str, list[Document]] = {}
    for name, order in HISTORY_COLLECTIONS.items():
        cursor = db[name].find({"application_id": application["_id"]}).sort(order, 1).limit(200)
        related[name] = [d async for d in cursor]
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "application.view",
        application_id=application["_id"],
        school_code=application.get("school_code"),
    )
    reply = project_history(application, related, who.role)
    return json_response(reply.model_dump(mode="json"))


@api.route(
    "POST",
    f"{PREFIX}/applications/{{application_id}}/unbind",
    summary="Unbind the student's WeChat account (as 我的 → 解除绑定) and release the student's binding "
    "whatever it points to (repairs a binding to no account)",
    response=UnbindResponse,
    errors=("forbidden", "csrf_failed", "not_found", "scan_in_flight"),
    auth=roles(Role.ADMIN, Role.SUPPORT),
)
async def unbind_student(request: web.Request, *, who: Operator) -> web.Response:
    application = await scoped_application(request, who, request.match_info["application_id"])
    openid = application.get("owner_openid")
    users = request.app[USERS]
    if openid:
        # Refused (409 scan_in_flight) while a code scan is read: its result binds the owner.
        await request.app[APPLICATIONS].apply(application["_id"], binding.unbind)
        await users.unbind(openid)
        await users.set_fields(openid, student=None)
    # Whatever the student's binding record points to (another account, or nobody: left behind by the
    # unbind-during-scan defect), it is released, so the student can bind again: the repair.
    released = (
        await users.release_student(application["student_id"]) if application.get("student_id") else False
    )
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "student.unbind",
        application_id=application["_id"],
        school_code=application.get("school_code"),
        had_binding=bool(openid),
        binding_released=released,
    )
    reply = UnbindResponse(application_id=application["_id"], had_binding=bool(openid) or released)
    return json_response(reply.model_dump())

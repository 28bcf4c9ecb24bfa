"""The exception queue: cases the registrar decides (several compliant photos failed comparison), low
scores, and photos the quality check refused, which an operator may let through with a reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.applications import State
from services.gateway.console.auth import CONSOLE, SIGNED_IN, roles
from services.gateway.console.cases import PREFIX, PhotoView, photo_view, scoped_application
from services.gateway.console.operators import Operator, Role
from services.gateway.context import APPLICATIONS
from services.gateway.domain import photos
from services.gateway.domain.statuses import PhotoStatus
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from shared.db import Document
from shared.events import utcnow

api = Api()
Kind = Literal["registrar_review", "low_score", "quality_rejected", "admission_photo_disputed"]
QUERIES: dict[str, dict[str, Any]] = {
    # Decided through /reviews/{id}/decision like any case (the state machine allows it).
    "registrar_review": {"state": str(State.REGISTRAR_REVIEW)},
    # Below the pass mark: the student may try another photo; shown so support can help.
    "low_score": {"state": str(State.MATCH_FAILED)},
    "quality_rejected": {
        "state": {"$in": [str(s) for s in (State.PAID, State.MATCH_FAILED, State.REJECTED, State.WITHDRAWN)]},
        "last_failure.code": "photo_rejected",
    },
    # 「录取照片不是本人」 (the mini-program's submit page): support checks the roster's admission photo.
    "admission_photo_disputed": {"admission_photo_dispute.status": "open"},
}
LIMIT = 200


class ExceptionCase(BaseModel):
    kind: Kind
    application_id: str
    school_code: str | None
    state: str
    student_id: str | None
    match: dict[str, Any] | None
    last_failure: dict[str, Any] | None
    rejected_photos: list[PhotoView]
    updated_at: datetime | None


class ExceptionList(BaseModel):
    cases: list[ExceptionCase]


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=2, max_length=400)


class OverrideResponse(BaseModel):
    application_id: str
    photo: PhotoView


def _rejected_photos(application: Document) -> list[PhotoView]:
    photos = application.get("photos") or {}
    return [
        photo_view(application["_id"], photo_id, photo)
        for photo_id, photo in photos.items()
        if photo.get("status") == PhotoStatus.REJECTED
    ]


@api.route(
    "GET",
    f"{PREFIX}/exceptions",
    summary="Registrar cases, low scores and quality rejections of my schools, oldest first",
    response=ExceptionList,
    query={"kind": {"type": "string", "enum": list(QUERIES)}},
    errors=("forbidden",),
    auth=SIGNED_IN,
)
async def list_exceptions(request: web.Request, *, who: Operator) -> web.Response:
    wanted = request.query.get("kind")
    if wanted is not None and wanted not in QUERIES:
        raise ApiError(400, "invalid_request", fields=[{"field": "kind", "error": "unknown"}])
    collection = request.app[APPLICATIONS].collection
    cases: list[ExceptionCase] = []
    for kind, query in QUERIES.items():
        if wanted not in (None, kind):
            continue
        cursor = (
            collection.find({**query, **who.school_filter()}, {"outbox": 0})
            .sort("updated_at", 1)
            .limit(LIMIT)
        )
        async for application in cursor:
            cases.append(
                ExceptionCase(
                    kind=kind,
                    application_id=application["_id"],
                    school_code=application.get("school_code"),
                    state=application["state"],
                    student_id=application.get("student_id"),
                    match=application.get("match"),
                    last_failure=application.get("last_failure"),
                    rejected_photos=_rejected_photos(application),
                    updated_at=application.get("updated_at"),
                )
            )
    # Student ids (school:student number), scores and failure messages: a view of personal data, audited.
    await request.app[CONSOLE].audit.record(request, who, "exceptions.view", kind=wanted, count=len(cases))
    return json_response(ExceptionList(cases=cases).model_dump(mode="json"))


@api.route(
    "POST",
    f"{PREFIX}/exceptions/{{application_id}}/photos/{{photo_id}}/override",
    summary="Accept a photo the quality check refused (with a reason); the student can then submit it",
    body=OverrideRequest,
    response=OverrideResponse,
    errors=(
        "forbidden",
        "csrf_failed",
        "not_found",
        "photo_not_rejected",
        "photo_not_placeable",
        "illegal_transition",
    ),
    auth=roles(Role.ADMIN, Role.REVIEWER),
)
async def override_quality(request: web.Request, *, who: Operator, body: OverrideRequest) -> web.Response:
    application = await scoped_application(request, who, request.match_info["application_id"])
    photo_id = request.match_info["photo_id"]

    written = await request.app[APPLICATIONS].apply(
        application["_id"],
        lambda app: photos.override_quality(
            app, photo_id, operator_id=who.operator_id, reason=body.reason, now=utcnow()
        ),
    )
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "photo.override",
        application_id=application["_id"],
        school_code=application.get("school_code"),
        photo_id=photo_id,
        reason=body.reason,
    )
    reply = OverrideResponse(
        application_id=written.id, photo=photo_view(written.id, photo_id, written.photos[photo_id].doc())
    )
    return json_response(reply.model_dump(mode="json"))

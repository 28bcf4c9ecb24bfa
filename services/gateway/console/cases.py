"""One application as operators see it (scoped to their schools), and the photos behind it (every view audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from services.gateway.console.auth import CONSOLE, EVERYONE
from services.gateway.console.operators import Operator
from services.gateway.context import APPLICATIONS, BLOBS, DATABASE
from services.gateway.http.errors import ApiError
from services.gateway.http.registry import Api
from shared.blobs import BlobNotFound
from shared.db import Document

api = Api()
PREFIX = "/console/api/v1"


async def scoped_application(request: web.Request, who: Operator, application_id: str) -> Document:
    """The application if it belongs to one of the operator's schools; another school's is 404, not 403."""
    if len(application_id) > 64:
        raise ApiError(404, "not_found")
    application = await request.app[APPLICATIONS].get(application_id)
    if application is None or not who.sees(application.get("school_code")):
        raise ApiError(404, "not_found")
    return application


class StudentView(BaseModel):
    student_id: str | None
    name: str | None
    student_number: str | None
    class_name: str | None
    level: str | None


class PhotoView(BaseModel):
    photo_id: str
    status: str
    source: str | None
    uploaded_at: datetime | None
    measures: list[dict[str, Any]]
    reasons: list[str]
    override: dict[str, Any] | None
    image_url: str


class CaseView(BaseModel):
    application_id: str
    school_code: str | None
    state: str
    student: StudentView
    match: dict[str, Any] | None
    submitted_photo: PhotoView | None
    admission_photo_url: str
    resubmissions_left: int | None
    last_failure: dict[str, Any] | None
    updated_at: datetime | None
    lease_expires_at: datetime | None = None


def photo_view(application_id: str, photo_id: str, photo: Document) -> PhotoView:
    return PhotoView(
        photo_id=photo_id,
        status=str(photo.get("status")),
        source=photo.get("source"),
        uploaded_at=photo.get("uploaded_at"),
        measures=list(photo.get("measures") or []),
        reasons=list(photo.get("reasons") or []),
        override=photo.get("override"),
        image_url=f"{PREFIX}/applications/{application_id}/photos/{photo_id}",
    )


async def case_view(request: web.Request, application: Document) -> CaseView:
    student = (
        await request.app[DATABASE]
        .db["students"]
        .find_one({"_id": application.get("student_id")}, {"admission_photo_blob_id": 0})
    )
    student = student or {}
    photos = application.get("photos") or {}
    photo_id = (application.get("submission") or {}).get("photo_id")
    submitted = photos.get(photo_id) if photo_id else None
    last_failure = application.get("last_failure")
    return CaseView(
        application_id=application["_id"],
        school_code=application.get("school_code"),
        state=application["state"],
        student=StudentView(
            student_id=application.get("student_id"),
            name=student.get("name"),
            student_number=student.get("student_number"),
            class_name=student.get("class_name"),
            level=student.get("level"),
        ),
        match=application.get("match"),
        submitted_photo=photo_view(application["_id"], str(photo_id), submitted) if submitted else None,
        admission_photo_url=f"{PREFIX}/applications/{application['_id']}/admission-photo",
        resubmissions_left=application.get("resubmissions_left"),
        last_failure=dict(last_failure) if last_failure else None,
        updated_at=application.get("updated_at"),
    )


def _jpeg(data: bytes) -> web.Response:
    # Biometric data: never cached by the browser or a proxy.
    return web.Response(
        body=data,
        content_type="image/jpeg",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@api.route(
    "GET",
    f"{PREFIX}/applications/{{application_id}}/photos/{{photo_id}}",
    summary="A photo of the application: the standardised image, else the raw upload (audited)",
    binary="image/jpeg",
    errors=("not_found", "photo_purged"),
    auth=EVERYONE,  # school staff see their registrar cases' photos
)
async def view_photo(request: web.Request, *, who: Operator) -> web.Response:
    application = await scoped_application(request, who, request.match_info["application_id"])
    photo_id = request.match_info["photo_id"]
    photo = (application.get("photos") or {}).get(photo_id)
    if photo and (photo.get("purged") or application.get("retention")):
        # Deleted after the retention period (services/gateway/retention.py).
        raise ApiError(410, "photo_purged")
    blob_id = photo and (photo.get("standardized_blob_id") or photo.get("raw_blob_id"))
    if not blob_id:
        raise ApiError(404, "not_found")
    try:
        data = await request.app[BLOBS].get(blob_id)
    except BlobNotFound as exc:
        raise ApiError(404, "not_found") from exc
    await request.app[CONSOLE].audit.record(
        request, who, "photo.view", application_id=application["_id"], photo_id=photo_id, kind="photo"
    )
    return _jpeg(data)


@api.route(
    "GET",
    f"{PREFIX}/applications/{{application_id}}/admission-photo",
    summary="The student's admission photo (录取照片) (audited)",
    binary="image/jpeg",
    errors=("not_found",),
    auth=EVERYONE,  # school staff see their registrar cases' photos
)
async def view_admission_photo(request: web.Request, *, who: Operator) -> web.Response:
    application = await scoped_application(request, who, request.match_info["application_id"])
    student = await request.app[DATABASE].db["students"].find_one({"_id": application.get("student_id")})
    if student is None or not student.get("admission_photo_blob_id"):
        raise ApiError(404, "not_found")
    try:
        data = await request.app[BLOBS].get(student["admission_photo_blob_id"])
    except BlobNotFound as exc:
        raise ApiError(404, "not_found") from exc
    await request.app[CONSOLE].audit.record(
        request, who, "photo.view", application_id=application["_id"], kind="admission_photo"
    )
    return _jpeg(data)

"""Seed steps 7-10: upload a photo (counted against the quota) and submit a standardised one."""

from __future__ import annotations

import contextlib
import io
from datetime import datetime
from typing import Any

from aiohttp import web
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.api.common import caller, my_application, once, request_print
from services.gateway.applications import Action, transition
from services.gateway.context import APPLICATIONS, BLOBS, DATABASE, LIMITERS, REQUEST_ID, SCHOOLS, SETTINGS
from services.gateway.domain import photos, submissions
from services.gateway.domain.application import Application
from services.gateway.domain.errors import DomainError
from services.gateway.domain.field_rules import check_capture_source
from services.gateway.domain.rules import SchoolRules
from services.gateway.domain.statuses import PhotoSource
from services.gateway.http.bodies import form_data, json_body
from services.gateway.http.errors import ApiError
from services.gateway.http.registry import Api
from services.gateway.http.uploads import IMAGE_UPLOAD_ERRORS, sniff_image
from services.gateway.quota import remaining
from shared.blobs import BlobNotFound
from shared.db import Document
from shared.events import new_id, utcnow
from shared.logging import get_logger

log = get_logger(__name__)
api = Api()


class PhotoAccepted(BaseModel):
    photo_id: str
    status: str
    standardisation_number: int
    standardisations_left_today: int


class SubmissionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    photo_id: str = Field(min_length=1, max_length=64)
    admission_photo_confirmed: bool = Field(description="the student confirmed the admission photo is theirs")


class SubmissionAccepted(BaseModel):
    submission_id: str
    photo_id: str
    submitted_at: datetime
    resubmissions_left: int


def _album_problems(data: bytes, content_type: str, settings: Any) -> list[str]:
    problems = []
    if content_type != "image/jpeg":
        problems.append("format")
    if not settings.album_min_bytes <= len(data) <= settings.album_max_bytes:
        problems.append("file_size")
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    if not settings.album_min_width <= width <= settings.album_max_width:
        problems.append("width")
    if not settings.album_min_height <= height <= settings.album_max_height:
        problems.append("height")
    return problems


@api.route(
    "POST",
    "/api/v1/photos",
    summary="Upload a photo (camera or album); each accepted upload is one standardisation",
    multipart={"image": "binary", "source": "string"},
    response=PhotoAccepted,
    status=202,
    errors=(
        "no_application",
        "illegal_transition",
        "album_photo_invalid",
        "capture_source_not_accepted",
        "quota_exhausted",
        "idempotency_key_reused",
        "busy",
        *IMAGE_UPLOAD_ERRORS,
    ),
)
async def upload_photo(request: web.Request) -> web.Response:
    who = await caller(request)
    application = await my_application(request, who)
    settings = request.app[SETTINGS]
    rules = await request.app[SCHOOLS].rules(application.get("school_code"))
    transition(application["state"], Action.UPLOAD_PHOTO)
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type")
    form = await form_data(request)
    upload, source = form.get("image"), form.get("source", "camera")
    if not isinstance(upload, web.FileField):
        raise ApiError(400, "invalid_request", fields=[{"field": "image", "error": "missing"}])
    if not isinstance(source, str):
        raise ApiError(400, "invalid_request", fields=[{"field": "source", "error": "camera_or_album"}])
    # Refused before the image is read further or anything counted: the sources the school accepts.
    check_capture_source(source, rules.capture_sources)
    data = upload.file.read()
    content_type = sniff_image(data, max_pixels=settings.gateway_max_image_pixels)
    if source == "album" and (problems := _album_problems(data, content_type, settings)):
        raise ApiError(400, "album_photo_invalid", problems=problems)  # checked before anything is counted
    if wait := request.app[LIMITERS].upload.allow(who.openid):
        raise ApiError(429, "rate_limited", retry_after_s=round(wait, 1))

    print_ = request_print(request, source.encode(), data)
    return await once(
        request, who, print_, lambda: _upload(request, application, source, data, content_type, rules)
    )


async def _upload(
    request: web.Request,
    application: Document,
    source: str,
    data: bytes,
    content_type: str,
    rules: SchoolRules,
) -> tuple[int, dict[str, Any]]:
    photo_id = new_id()
    photos.check_upload(Application.from_doc(application), rules, utcnow())  # before storing anything
    blob_id = await request.app[BLOBS].put(
        data,
        filename=f"raw-{photo_id}",
        content_type=content_type,
        application_id=application["_id"],
        kind="raw_photo",
    )
    command = photos.UploadPhoto(
        photo_id=photo_id,
        source=PhotoSource(source),
        raw_blob_id=blob_id,
        trace={"request_id": request[REQUEST_ID]},
    )
    try:
        written = await request.app[APPLICATIONS].apply(
            application["_id"],
            lambda app: photos.upload_photo(app, command, rules, utcnow()),
            current=application,
        )
    except BaseException:
        await _discard(request, blob_id)
        raise
    log.info("photo accepted", photo_id=photo_id, source=source)
    return 202, _accepted(written, photo_id, rules)


async def _discard(request: web.Request, blob_id: str) -> None:
    with contextlib.suppress(BlobNotFound):
        await request.app[BLOBS].delete(blob_id)


def _accepted(application: Application, photo_id: str, rules: SchoolRules) -> dict[str, Any]:
    photo = application.photos[photo_id]
    left = remaining(application.quota, utcnow(), rules)
    reply = PhotoAccepted(
        photo_id=photo_id,
        status=photo.status.value,
        standardisation_number=photo.standardisation_number,
        standardisations_left_today=left,
    )
    return reply.model_dump(mode="json")


@api.route(
    "POST",
    "/api/v1/submissions",
    summary="Submit a standardised photo with the confirmed admission photo",
    body=SubmissionRequest,
    response=SubmissionAccepted,
    status=202,
    errors=(
        "no_application",
        "illegal_transition",
        "photo_not_ready",
        "admission_photo_required",
        "admission_photo_missing",
        "resubmissions_exhausted",
        "idempotency_key_reused",
        "busy",
    ),
)
async def submit_photo(request: web.Request) -> web.Response:
    who = await caller(request)
    application = await my_application(request, who)
    body = await json_body(request, SubmissionRequest)
    print_ = request_print(request, body.model_dump_json().encode())
    return await once(request, who, print_, lambda: _submit(request, application, body))


async def _submit(
    request: web.Request, application: Document, body: SubmissionRequest
) -> tuple[int, dict[str, Any]]:
    student = (
        await request.app[DATABASE]
        .db["students"]
        .find_one({"_id": application.get("student_id")}, {"admission_photo_blob_id": 1})
    )
    rules = await request.app[SCHOOLS].rules(application.get("school_code"))
    command = submissions.SubmitPhoto(
        # Always new: the photo.confirmed event id derives from it, so matching never skips a new
        # submission as a repeat of an earlier one (a key used again is answered by `once`).
        submission_id=new_id(),
        photo_id=body.photo_id,
        admission_photo_confirmed=body.admission_photo_confirmed,
        admission_photo_blob_id=(student or {}).get("admission_photo_blob_id"),
        trace={"request_id": request[REQUEST_ID]},
    )
    written = await request.app[APPLICATIONS].apply(
        application["_id"],
        lambda app: submissions.submit_photo(app, command, rules, utcnow()),
        current=application,
    )
    log.info("photo submitted", photo_id=body.photo_id)
    return 202, _submitted(written, rules)


def _submitted(application: Application, rules: SchoolRules) -> dict[str, Any]:
    submission = application.submission
    if submission is None or submission.submission_id is None or submission.submitted_at is None:
        raise DomainError("not_found")
    reply = SubmissionAccepted(
        submission_id=submission.submission_id,
        photo_id=submission.photo_id,
        submitted_at=submission.submitted_at,
        resubmissions_left=application.resubmissions_remaining(rules),
    )
    return reply.model_dump(mode="json")

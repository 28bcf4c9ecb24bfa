"""Seed steps 7-10: upload a photo (counted against the quota) and submit a standardised one."""

from __future__ import annotations

import contextlib
import io
from datetime import datetime
from typing import Any

from aiohttp import web
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.api.common import caller, idempotency_key, my_application
from services.gateway.applications import Action, IllegalTransition, transition
from services.gateway.context import APPLICATIONS, BLOBS, DATABASE, LIMITERS, REQUEST_ID, SCHOOLS, SETTINGS
from services.gateway.http.bodies import form_data, json_body
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from services.gateway.http.uploads import IMAGE_UPLOAD_ERRORS, sniff_image
from services.gateway.quota import Quota, QuotaExhausted, remaining, take_slot
from services.gateway.store import Change
from shared.blobs import BlobNotFound
from shared.db import Document
from shared.events import PhotoConfirmed, PhotoSubmitted, derived_id, make_event, new_id, utcnow
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
        "quota_exhausted",
        *IMAGE_UPLOAD_ERRORS,
    ),
)
async def upload_photo(request: web.Request) -> web.Response:
    who = await caller(request)
    application = await my_application(request, who)
    settings = request.app[SETTINGS]
    try:
        transition(application["state"], Action.UPLOAD_PHOTO)
    except IllegalTransition as exc:
        raise ApiError(409, "illegal_transition") from exc
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type")
    form = await form_data(request)
    upload, source = form.get("image"), form.get("source", "camera")
    if not isinstance(upload, web.FileField):
        raise ApiError(400, "invalid_request", fields=[{"field": "image", "error": "missing"}])
    if source not in ("camera", "album"):
        raise ApiError(400, "invalid_request", fields=[{"field": "source", "error": "camera_or_album"}])
    data = upload.file.read()
    content_type = sniff_image(data, max_pixels=settings.gateway_max_image_pixels)
    if source == "album" and (problems := _album_problems(data, content_type, settings)):
        raise ApiError(400, "album_photo_invalid", problems=problems)  # checked before anything is counted
    if wait := request.app[LIMITERS].upload.allow(who.openid):
        raise ApiError(429, "rate_limited", retry_after_s=round(wait, 1))

    key = idempotency_key(request)
    photo_id = derived_id("photo", who.openid, key) if key else new_id()
    if photo_id in (application.get("photos") or {}):
        return _accepted(application, photo_id)  # the same request again: no second slot
    school = await request.app[SCHOOLS].get(application.get("school_code") or "")
    per_day = school.standardisations_per_day if school else 3
    now = utcnow()
    quota = Quota.from_doc(application.get("quota"))
    try:
        take_slot(quota, now, per_day=per_day)  # fail fast before storing anything
    except QuotaExhausted as exc:
        raise ApiError(429, "quota_exhausted", reopens_at=exc.reopens_at.isoformat()) from exc

    blob_id = await request.app[BLOBS].put(
        data,
        filename=f"raw-{photo_id}",
        content_type=content_type,
        application_id=application["_id"],
        kind="raw_photo",
    )

    def decide(current: Document) -> Change:
        photos = dict(current.get("photos") or {})
        if photo_id in photos:
            return Change()
        transition(current["state"], Action.UPLOAD_PHOTO)
        new_quota, number = take_slot(Quota.from_doc(current.get("quota")), utcnow(), per_day=per_day)
        photos[photo_id] = {
            "status": "processing",
            "source": source,
            "raw_blob_id": blob_id,
            "uploaded_at": utcnow(),
            "standardisation_number": number,
        }
        event = make_event(
            PhotoSubmitted(
                photo_id=photo_id,
                student_id=current.get("student_id") or "",
                raw_blob_id=blob_id,
                source=source,
                standardisation_number=number,
            ),
            application_id=current["_id"],
            trace={"request_id": request[REQUEST_ID]},
        )
        return Change(set={"photos": photos, "quota": new_quota.to_doc()}, events=[event])

    try:
        written = await request.app[APPLICATIONS].mutate(application["_id"], decide)
    except QuotaExhausted as exc:
        await _discard(request, blob_id)
        raise ApiError(429, "quota_exhausted", reopens_at=exc.reopens_at.isoformat()) from exc
    except IllegalTransition as exc:
        await _discard(request, blob_id)
        raise ApiError(409, "illegal_transition") from exc
    if written["photos"][photo_id]["raw_blob_id"] != blob_id:
        await _discard(request, blob_id)
    log.info("photo accepted", photo_id=photo_id, source=source)
    return _accepted(written, photo_id)


async def _discard(request: web.Request, blob_id: str) -> None:
    with contextlib.suppress(BlobNotFound):
        await request.app[BLOBS].delete(blob_id)


def _accepted(application: Document, photo_id: str) -> web.Response:
    photo = application["photos"][photo_id]
    left = remaining(Quota.from_doc(application.get("quota")), utcnow())
    reply = PhotoAccepted(
        photo_id=photo_id,
        status=photo["status"],
        standardisation_number=photo["standardisation_number"],
        standardisations_left_today=left,
    )
    return json_response(reply.model_dump(), status=202)


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
        "idempotency_conflict",
    ),
)
async def submit_photo(request: web.Request) -> web.Response:
    who = await caller(request)
    application = await my_application(request, who)
    body = await json_body(request, SubmissionRequest)
    key = idempotency_key(request)
    submission_id = derived_id("submission", application["_id"], key) if key else new_id()
    previous = application.get("submission") or {}
    if previous.get("submission_id") == submission_id:
        if previous.get("photo_id") != body.photo_id:
            raise ApiError(409, "idempotency_conflict")
        return _submitted(application)
    if not body.admission_photo_confirmed:
        raise ApiError(400, "admission_photo_required")
    student = await request.app[DATABASE].db["students"].find_one({"_id": application.get("student_id")})
    if student is None or not student.get("admission_photo_blob_id"):
        raise ApiError(409, "admission_photo_missing")
    school = await request.app[SCHOOLS].get(application.get("school_code") or "")
    pass_mark = school.pass_mark if school else 80.0
    free = school.free_resubmissions if school else 2

    def decide(current: Document) -> Change:
        photo = (current.get("photos") or {}).get(body.photo_id)
        if photo is None or photo.get("status") != "standardized":
            raise ApiError(409, "photo_not_ready")
        try:
            state = transition(current["state"], Action.SUBMIT)
        except IllegalTransition as exc:
            raise ApiError(409, "illegal_transition") from exc
        left = current.get("resubmissions_left", free)
        if current["state"] == "rejected":
            if left <= 0:
                raise ApiError(409, "resubmissions_exhausted")
            left -= 1
        now = utcnow()
        submission = {
            "submission_id": submission_id,
            "photo_id": body.photo_id,
            "submitted_at": now,
            "count": int((current.get("submission") or {}).get("count", 0)) + 1,
        }
        event = make_event(
            PhotoConfirmed(
                photo_id=body.photo_id,
                student_id=current["student_id"],
                standardized_blob_id=photo["standardized_blob_id"],
                admission_photo_blob_id=student["admission_photo_blob_id"],
                pass_mark=pass_mark,
            ),
            application_id=current["_id"],
            event_id=derived_id("photo.confirmed", submission_id),
            trace={"request_id": request[REQUEST_ID]},
        )
        return Change(
            set={
                "state": state,
                "submission": submission,
                "resubmissions_left": left,
                "admission_photo_confirmed_at": now,
            },
            events=[event],
        )

    written = await request.app[APPLICATIONS].mutate(application["_id"], decide)
    log.info("photo submitted", photo_id=body.photo_id)
    return _submitted(written)


def _submitted(application: Document) -> web.Response:
    submission = application["submission"]
    reply = SubmissionAccepted(
        submission_id=submission["submission_id"],
        photo_id=submission["photo_id"],
        submitted_at=submission["submitted_at"],
        resubmissions_left=int(application.get("resubmissions_left", 2)),
    )
    return json_response(reply.model_dump(mode="json"), status=202)

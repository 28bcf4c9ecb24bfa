"""Seed steps 4-5: submit the collection code (scanned text or saved image) and poll the result."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pymongo.errors import DuplicateKeyError

from services.gateway.api.common import Caller, caller, find_my_application, once, request_print
from services.gateway.applications import ScanStatus
from services.gateway.context import APPLICATIONS, BLOBS, DATABASE, LIMITERS, REQUEST_ID, SETTINGS, WAITERS
from services.gateway.domain import codes
from services.gateway.domain.application import Application
from services.gateway.http.bodies import form_data, json_object, validation_error
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.longpoll import client_gone
from services.gateway.http.query import query_number
from services.gateway.http.registry import Api
from services.gateway.http.uploads import IMAGE_UPLOAD_ERRORS, sniff_image
from shared.db import Document
from shared.events import ChsiStudent, StudentClaim, new_id, utcnow
from shared.logging import get_logger

log = get_logger(__name__)
api = Api()

MAX_WAIT_S = 25


class CodeSubmission(BaseModel):
    """The register page: typed fields, the agreement tick, and the scanned text (or an image part)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=50)
    student_number: str = Field(min_length=1, max_length=32)
    id_last4: str = Field(min_length=1, max_length=8)
    agreed: bool = Field(description="《用户服务协议》和《隐私政策》 accepted")
    qr_text: str | None = Field(default=None, max_length=100_000)
    school_code: str | None = Field(default=None, max_length=20)

    @field_validator("name", "student_number", "id_last4")
    @classmethod
    def no_control_characters(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("control characters are not allowed")
        return value


class ScanAccepted(BaseModel):
    application_id: str
    scan_id: str
    status: str
    status_url: str


class ScanView(BaseModel):
    scan_id: str
    application_id: str
    status: ScanStatus
    source: str
    submitted_at: datetime
    decided_at: datetime | None = None
    poll_after_ms: int | None = None
    student: ChsiStudent | None = None
    reason: str | None = None
    message: str | None = None
    mismatched_fields: list[str] | None = None


async def _read_submission(request: web.Request) -> tuple[CodeSubmission, bytes | None]:
    body: dict[str, Any]
    if request.content_type == "application/json":
        body, image = await json_object(request), None
    elif request.content_type == "multipart/form-data":
        form = await form_data(request)
        upload = form.get("image")
        body = {k: v for k, v in form.items() if isinstance(v, str)}
        if "agreed" in body:
            body["agreed"] = body["agreed"].lower() in ("1", "true", "yes", "on")
        if upload is not None and not isinstance(upload, web.FileField):
            raise ApiError(400, "invalid_request", fields=[{"field": "image", "error": "not_a_file"}])
        image = upload.file.read() if isinstance(upload, web.FileField) else None
    else:
        raise ApiError(415, "unsupported_media_type")
    try:
        return CodeSubmission.model_validate(body), image
    except ValidationError as exc:
        raise validation_error(exc) from exc


@api.route(
    "POST",
    "/api/v1/codes",
    summary="Submit the collection code: typed fields + scanned text or saved image",
    multipart={
        "name": "string",
        "student_number": "string",
        "id_last4": "string",
        "agreed": "boolean",
        "school_code": "string",
        "image": "binary",
    },
    body=CodeSubmission,
    response=ScanAccepted,
    status=202,
    errors=(
        "invalid_json",
        "agreement_required",
        "code_source_required",
        "text_too_long",
        "application_locked",
        "idempotency_key_reused",
        "busy",
        *IMAGE_UPLOAD_ERRORS,
    ),
)
async def submit_code(request: web.Request) -> web.Response:
    """202 at once; the codec decides and the student polls the status URL."""
    who = await caller(request)
    settings = request.app[SETTINGS]
    submission, image = await _read_submission(request)
    if not submission.agreed:
        raise ApiError(400, "agreement_required")
    if (submission.qr_text is None) == (image is None) or submission.qr_text == "":
        raise ApiError(400, "code_source_required")
    if submission.qr_text is not None and len(submission.qr_text) > settings.gateway_max_qr_text_chars:
        raise ApiError(400, "text_too_long")
    content_type = (
        sniff_image(image, max_pixels=settings.gateway_max_image_pixels) if image is not None else None
    )
    if image is not None and (wait := request.app[LIMITERS].upload.allow(who.openid)):
        raise ApiError(429, "rate_limited", retry_after_s=round(wait, 1))

    print_ = request_print(request, submission.model_dump_json().encode(), image or b"")
    return await once(request, who, print_, lambda: _scan(request, who, submission, image, content_type))


async def _scan(
    request: web.Request,
    who: Caller,
    submission: CodeSubmission,
    image: bytes | None,
    content_type: str | None,
    *,
    raced: bool = False,
) -> tuple[int, dict[str, Any]]:
    # Always a new scan id: one reused from an earlier scan would get the codec's stored outcome of that
    # scan under its old event id, which the gateway skips as done (the application stuck waiting).
    scan_id = new_id()
    applications = request.app[APPLICATIONS]
    existing = await find_my_application(request, who)
    if existing is not None:
        codes.check_rescan(Application.from_doc(existing))  # before an image is stored
    application_id = existing["_id"] if existing else new_id()
    blob_id = None
    if image is not None:
        blob_id = await request.app[BLOBS].put(
            image,
            filename=f"code-{scan_id}",
            content_type=content_type or "",
            application_id=application_id,
            kind="code_image",
        )
    command = codes.ScanCode(
        scan_id=scan_id,
        claim=StudentClaim(
            name=submission.name, student_number=submission.student_number, id_last4=submission.id_last4
        ),
        qr_text=submission.qr_text,
        image_blob_id=blob_id,
        expected_school_code=submission.school_code,
        trace={"request_id": request[REQUEST_ID]},
    )
    now = utcnow()
    if existing is None:
        document, event = codes.open_application(application_id, who.openid, command, now)
        try:
            await applications.create(document, event)
        except DuplicateKeyError:
            # Another request opened this account's application a moment ago (two first scans at once:
            # two taps with two keys, one account on two phones). One account, one application: this scan
            # goes to that one as a second scan does; its image is stored again under that application.
            if blob_id is not None:
                await request.app[BLOBS].delete(blob_id)
            if raced:
                raise ApiError(409, "busy") from None
            if await applications.release_left_behind_owner(who.openid):
                # Not a race: a slot left by a replica from before `active_owner` (store.py), now freed.
                log.warning("first scan found active_owner left on an application the account left; released")
            else:
                log.info("first scan raced another: applied to the application it opened")
            return await _scan(request, who, submission, image, content_type, raced=True)
        written = Application.from_doc({**document, "version": 1})
    else:
        written = await applications.apply(
            application_id, lambda app: codes.rescan(app, command, now), current=existing
        )
    log.info("code submitted", scan_id=scan_id, source=command.source.value)
    return 202, _accepted(written)


def _accepted(application: Application) -> dict[str, Any]:
    assert application.code is not None
    scan_id = application.code.scan_id
    reply = ScanAccepted(
        application_id=application.id,
        scan_id=scan_id,
        status=application.code.status.value,
        status_url=f"/api/v1/codes/{scan_id}",
    )
    return reply.model_dump(mode="json")


def scan_view(application: Document) -> ScanView:
    code = application["code"]
    pending = code["status"] == ScanStatus.PENDING
    return ScanView(
        scan_id=code["scan_id"],
        application_id=application["_id"],
        status=code["status"],
        source=code["source"],
        submitted_at=code["submitted_at"],
        decided_at=code.get("decided_at"),
        poll_after_ms=1000 if pending else None,
        student=code.get("student"),
        reason=code.get("reason"),
        message=code.get("message"),
        mismatched_fields=code.get("mismatched_fields"),
    )


STATUS_QUERY: dict[str, str | dict[str, Any]] = {
    "wait": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S}
}


@api.route(
    "GET",
    "/api/v1/codes/{scan_id}",
    summary="The result of a code scan; `?wait=N` long-polls up to N s (≤ 25)",
    response=ScanView,
    query=STATUS_QUERY,
    errors=("not_found",),
)
async def code_status(request: web.Request) -> web.Response:
    who = await caller(request)
    scan_id = request.match_info["scan_id"]
    wait = query_number(request, "wait", STATUS_QUERY, 0.0)  # finite, 0-25: checked by the registry
    collection = request.app[DATABASE].db["applications"]
    waiters = request.app[WAITERS]
    deadline = asyncio.get_running_loop().time() + wait
    read = False
    while True:
        seen = waiters.seen(who.openid)  # before the read: a change during it is not missed
        # Only the caller's own application: another student's scan id answers 404, like an unknown one.
        # Read first; once woken, the copy this process wrote or read within recheck_s (as the status poll).
        application = waiters.latest(who.openid) if read else None
        if ((application or {}).get("code") or {}).get("scan_id") != scan_id:
            application = await collection.find_one(
                {"code.scan_id": scan_id, "owner_openid": who.openid}, {"outbox": 0}
            )
            read = True
            if application is not None and not application.get("merged_into"):
                waiters.remember(who.openid, application, seen)
        if application is None:
            raise ApiError(404, "not_found")
        remaining = deadline - asyncio.get_running_loop().time()
        if application["code"]["status"] != ScanStatus.PENDING or remaining <= 0 or client_gone(request):
            return json_response(scan_view(application).model_dump(mode="json"))
        # Woken by the gateway applying the codec's result (waiters.py), not by reading every 0.2 s.
        await waiters.wait(who.openid, seen, min(remaining, waiters.recheck_s))

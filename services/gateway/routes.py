"""HTTP routes of the collection-code step (seed steps 4-5): submit a code, poll its status."""

from __future__ import annotations

import hashlib
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pymongo.errors import DuplicateKeyError

from services.gateway.applications import RESCAN_ALLOWED, ScanStatus, State
from services.gateway.config import GatewaySettings
from services.gateway.context import BLOBS, DATABASE, RELAY, REQUEST_ID, SETTINGS
from services.gateway.errors import ApiError, json_response
from services.gateway.uploads import sniff_image
from shared.db import Document
from shared.events import CodeScanned, StudentClaim, derived_id, make_event, new_id, utcnow
from shared.logging import get_logger
from shared.outbox import stage, with_outbox

log = get_logger(__name__)

routes = web.RouteTableDef()
ID_PATTERN = r"^[0-9a-f-]{36}$"


class CodeSubmission(BaseModel):
    """The register page: typed fields, the agreement tick, and the scanned text or an uploaded image."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=50)
    student_number: str = Field(min_length=1, max_length=32)
    id_last4: str = Field(min_length=1, max_length=8)
    agreed: bool
    qr_text: str | None = Field(default=None, max_length=100_000)
    application_id: str | None = Field(default=None, pattern=ID_PATTERN)
    school_code: str | None = Field(default=None, max_length=20)

    @field_validator("name", "student_number", "id_last4")
    @classmethod
    def no_control_characters(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("control characters are not allowed")
        return value


def _validation_error(exc: ValidationError) -> ApiError:
    fields = [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "error": err["type"]}
        for err in exc.errors()
    ]
    return ApiError(400, "invalid_request", fields=fields)


async def _read_submission(
    request: web.Request, settings: GatewaySettings
) -> tuple[CodeSubmission, bytes | None]:
    if request.content_type == "application/json":
        try:
            body: Any = await request.json()
        except ValueError as exc:
            raise ApiError(400, "invalid_json") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json")
        image = None
    elif request.content_type == "multipart/form-data":
        form = await request.post()
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
        submission = CodeSubmission.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from exc
    return submission, image


@routes.post("/api/v1/codes")
async def submit_code(request: web.Request) -> web.Response:
    """Seed step 5: the student submits the typed fields and the code (text or image); 202, then poll."""
    settings = request.app[SETTINGS]
    database = request.app[DATABASE]
    blobs = request.app[BLOBS]
    relay = request.app[RELAY]

    submission, image = await _read_submission(request, settings)
    if not submission.agreed:
        raise ApiError(400, "agreement_required")
    if (submission.qr_text is None) == (image is None):
        raise ApiError(400, "code_source_required")
    if submission.qr_text is not None:
        if not submission.qr_text:
            raise ApiError(400, "code_source_required")
        if len(submission.qr_text) > settings.gateway_max_qr_text_chars:
            raise ApiError(400, "text_too_long")
    content_type = (
        sniff_image(image, max_pixels=settings.gateway_max_image_pixels) if image is not None else None
    )

    key = request.headers.get("Idempotency-Key", "").strip()
    if key and (len(key) > 64 or not key.isascii()):
        raise ApiError(400, "invalid_request", fields=[{"field": "Idempotency-Key", "error": "too_long"}])
    scan_id = derived_id("scan", key) if key else new_id()
    application_id = submission.application_id or (derived_id("application", key) if key else new_id())
    structlog.contextvars.bind_contextvars(application_id=application_id)

    applications = database.db["applications"]
    existing = await applications.find_one({"_id": application_id}, {"outbox": 0})
    fingerprint = _fingerprint(submission, image)
    if existing is not None and existing.get("code", {}).get("scan_id") == scan_id:
        if existing["code"].get("request_fingerprint") != fingerprint:
            raise ApiError(409, "idempotency_conflict")  # same key, different request: refuse, keep the first
        log.info("duplicate code submission", scan_id=scan_id)
        return _accepted(existing)  # a retry of the same request: same answer, nothing new stored
    if submission.application_id and existing is None:
        raise ApiError(404, "not_found")
    if existing is not None and existing.get("state") not in RESCAN_ALLOWED:
        raise ApiError(409, "application_locked")

    blob_id = None
    if image is not None:
        blob_id = await blobs.put(
            image,
            filename=f"code-{scan_id}",
            content_type=content_type or "",
            application_id=application_id,
            kind="code_image",
        )
    claim = StudentClaim(
        name=submission.name, student_number=submission.student_number, id_last4=submission.id_last4
    )
    event = make_event(
        CodeScanned(
            scan_id=scan_id,
            claim=claim,
            source="image" if blob_id else "text",
            qr_text=submission.qr_text,
            image_blob_id=blob_id,
            expected_school_code=submission.school_code,
        ),
        application_id=application_id,
        trace={"request_id": request[REQUEST_ID]},
    )
    now = utcnow()
    code: Document = {
        "scan_id": scan_id,
        "status": ScanStatus.PENDING,
        "source": "image" if blob_id else "text",
        "image_blob_id": blob_id,
        "submitted_at": now,
        "request_fingerprint": fingerprint,
    }
    fields = {"state": State.CODE_SUBMITTED, "claim": claim.model_dump(), "code": code, "updated_at": now}
    if submission.school_code:
        fields["school_code"] = submission.school_code
    if existing is None:
        document = with_outbox({"_id": application_id, "created_at": now, **fields}, event)
        try:
            await applications.insert_one(document)
        except DuplicateKeyError:
            # The same Idempotency-Key raced itself: the first request won; answer as it did.
            raced = await applications.find_one({"_id": application_id}, {"outbox": 0})
            if raced is None or raced.get("code", {}).get("scan_id") != scan_id:
                raise ApiError(409, "idempotency_conflict") from None
            return _accepted(raced)
    else:
        guard = {
            "_id": application_id,
            "state": existing["state"],
            "code.scan_id": existing.get("code", {}).get("scan_id"),
        }
        result = await applications.update_one(guard, stage({"$set": fields}, event))
        if result.modified_count != 1:
            raise ApiError(409, "application_locked")  # changed under us; the student can retry
    relay.wake()
    log.info("code submitted", scan_id=scan_id, source=code["source"])
    return _accepted({"_id": application_id, "code": code})


def _fingerprint(submission: CodeSubmission, image: bytes | None) -> str:
    """What makes two submissions "the same request" for an Idempotency-Key."""
    digest = hashlib.sha256(submission.model_dump_json().encode())
    digest.update(hashlib.sha256(image or b"").digest())
    return digest.hexdigest()


def _accepted(application: Document) -> web.Response:
    scan_id = application["code"]["scan_id"]
    return json_response(
        {
            "application_id": application["_id"],
            "scan_id": scan_id,
            "status": application["code"]["status"],
            "status_url": f"/api/v1/codes/{scan_id}",
        },
        status=202,
    )


def scan_view(application: Document) -> dict[str, Any]:
    code = application["code"]
    view: dict[str, Any] = {
        "scan_id": code["scan_id"],
        "application_id": application["_id"],
        "status": code["status"],
        "source": code["source"],
        "submitted_at": code["submitted_at"].isoformat(),
    }
    if code["status"] == ScanStatus.PENDING:
        view["poll_after_ms"] = 1000
    else:
        view["decided_at"] = code["decided_at"].isoformat()
    if code["status"] == ScanStatus.DECODED:
        view["student"] = code["student"]
    if code["status"] == ScanStatus.REJECTED:
        view.update(
            reason=code["reason"], message=code["message"], mismatched_fields=code["mismatched_fields"]
        )
    return view


async def _find_application(request: web.Request, field: str, value: str) -> Document:
    """The application whose `field` is the uuid `value`, or a 404 (also for anything not a uuid)."""
    if len(value) != 36:
        raise ApiError(404, "not_found")
    application = await request.app[DATABASE].db["applications"].find_one({field: value}, {"outbox": 0})
    if application is None:
        raise ApiError(404, "not_found")
    return application


@routes.get("/api/v1/codes/{scan_id}")
async def code_status(request: web.Request) -> web.Response:
    application = await _find_application(request, "code.scan_id", request.match_info["scan_id"])
    return json_response(scan_view(application))


@routes.get("/api/v1/applications/{application_id}")
async def application_status(request: web.Request) -> web.Response:
    application = await _find_application(request, "_id", request.match_info["application_id"])
    return json_response(
        {
            "application_id": application["_id"],
            "state": application["state"],
            "code": scan_view(application),
            "verified_code": application.get("verified_code"),
        }
    )

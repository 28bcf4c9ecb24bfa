"""What every student route needs: the caller from the session token, a validated JSON body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ValidationError

from services.gateway.context import APPLICATIONS, SESSIONS, SETTINGS, USERS
from services.gateway.errors import MALFORMED_BODY, ApiError
from shared.db import Document

M = TypeVar("M", bound=BaseModel)

#: The 415 message of a JSON route (the code's default message speaks of image uploads).
JSON_REQUIRED = "请求格式不正确，请以 JSON（application/json）格式提交。"


@dataclass(frozen=True)
class Caller:
    openid: str


async def caller(request: web.Request) -> Caller:
    """The WeChat account behind the `Authorization: Bearer <token>` header, or 401."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    openid = await request.app[SESSIONS].resolve(token)
    if openid is None:
        raise ApiError(401, "unauthenticated")
    return Caller(openid)


async def caller_user(request: web.Request, who: Caller) -> Document:
    user = await request.app[USERS].get(who.openid)
    if user is None:
        raise ApiError(401, "unauthenticated")
    return user


async def find_my_application(request: web.Request, who: Caller) -> Document | None:
    """The application this account acts for: the one it owns (ownership moves on unbinding)."""
    application = await request.app[APPLICATIONS].owned_by(who.openid)
    if application is not None:
        structlog.contextvars.bind_contextvars(application_id=application["_id"])
    return application


async def my_application(request: web.Request, who: Caller) -> Document:
    """The caller's own application; a student never names an application id, so cannot reach another's."""
    application = await find_my_application(request, who)
    if application is None:
        raise ApiError(409, "no_application")
    return application


def validation_error(exc: ValidationError) -> ApiError:
    fields = [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "error": err["type"]}
        for err in exc.errors()
    ]
    return ApiError(400, "invalid_request", fields=fields)


# What every image-upload route can answer besides its own refusals.
IMAGE_UPLOAD_ERRORS = (
    "empty_file",
    "not_an_image",
    "image_too_large",
    "payload_too_large",
    "unsupported_media_type",
    "rate_limited",
)


async def form_data(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """A multipart/form-data body, or a clear 400 when it cannot be parsed (no boundary, broken parts)."""
    try:
        return await request.post()
    except ValueError as exc:  # aiohttp: "boundary missed", a bad Content-Disposition, ...
        raise ApiError(400, "invalid_request", fields=[MALFORMED_BODY]) from exc


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, within the JSON size limit; anything else is a clear 4xx."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", JSON_REQUIRED)
    if (request.content_length or 0) > request.app[SETTINGS].gateway_max_json_bytes:
        raise ApiError(413, "payload_too_large")
    try:
        body: Any = await request.json()
    except ValueError as exc:
        raise ApiError(400, "invalid_json") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json")
    return body


async def json_body(request: web.Request, model: type[M]) -> M:
    """Parse and validate a JSON object body."""
    body = await json_object(request)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return None
    if len(key) > 64 or not key.isascii() or not key.isprintable():
        raise ApiError(400, "invalid_request", fields=[{"field": "Idempotency-Key", "error": "invalid"}])
    return key

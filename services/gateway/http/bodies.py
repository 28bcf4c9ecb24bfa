"""Request bodies: a JSON object within the size limit, validated by a pydantic model; multipart forms.
Anything unreadable is a clear 4xx, never a 500."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ValidationError

from services.gateway.context import SETTINGS
from services.gateway.http.errors import MALFORMED_BODY, ApiError

M = TypeVar("M", bound=BaseModel)

#: The 415 message of a JSON route (the code's default message speaks of image uploads).
JSON_REQUIRED = "请求格式不正确，请以 JSON（application/json）格式提交。"


def validation_error(exc: ValidationError) -> ApiError:
    fields = [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "error": err["type"]}
        for err in exc.errors()
    ]
    return ApiError(400, "invalid_request", fields=fields)


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

"""Request bodies: a JSON object within the size limit, validated by a pydantic model; multipart forms.
Anything unreadable is a clear 4xx, never a 500."""

from __future__ import annotations

import json
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


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"请求内容太大（不能超过 {limit // 1024} KB），请检查后重试。")


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 once it passes `limit` bytes: a declared length is checked before
    reading, and a body without one (chunked) is read only up to `limit` + 1 bytes, never further."""
    if (request.content_length or 0) > limit:
        raise _too_large(limit)
    data = await request.content.read(limit + 1)
    while len(data) <= limit:
        more = await request.content.read(limit + 1 - len(data))
        if not more:
            return data
        data += more
    raise _too_large(limit)


def parse_json(data: bytes) -> Any:
    """JSON text, or 400 `invalid_json` for anything a parser refuses: bad syntax, bad UTF-8, and
    nesting too deep for Python's parser (50,000 `[` raise RecursionError, not ValueError)."""
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(400, "invalid_json") from exc


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, read within the JSON size limit; anything else is a clear 4xx."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", JSON_REQUIRED)
    body = parse_json(await read_bounded(request, request.app[SETTINGS].gateway_max_json_bytes))
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
    except RecursionError as exc:  # a model with a free-form field given a deeply nested value
        raise ApiError(400, "invalid_json") from exc

"""What every student route needs: the caller from the session token, its application, idempotency keys."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from services.gateway.context import APPLICATIONS, DATABASE, USERS
from services.gateway.http.auth import Caller as Caller
from services.gateway.http.auth import caller as caller
from services.gateway.http.errors import ApiError, json_response
from services.gateway.request_keys import Answer, RequestKeys, fingerprint
from shared.db import Document


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


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return None
    if len(key) > 64 or not key.isascii() or not key.isprintable():
        raise ApiError(400, "invalid_request", fields=[{"field": "Idempotency-Key", "error": "invalid"}])
    return key


Work = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


async def once(request: web.Request, who: Caller, print_: str, work: Work) -> web.Response:
    """Run `work` once per Idempotency-Key (`request_keys.py`): a repeat of the same request gets the first
    answer and changes nothing; the same key with another request is `409 idempotency_key_reused`. The
    key is kept apart from the application, so a new scan, photo or submission always gets new ids and
    a key used again after another one cannot re-run (or re-use the ids of) an earlier request."""
    key = idempotency_key(request)
    if key is None:
        status, body = await work()
        return json_response(body, status=status)
    keys = RequestKeys(request.app[DATABASE])
    got = await keys.begin(who.openid, key, print_)
    if isinstance(got, Answer):
        return json_response(got.body, status=got.status)
    try:
        status, body = await work()
    except BaseException:
        await keys.release(got)  # a refused or failed request leaves nothing: an honest retry does the work
        raise
    await keys.finish(got, Answer(status, body))
    return json_response(body, status=status)


def request_print(request: web.Request, *parts: bytes) -> str:
    """What makes two requests "the same" under one key: the route and the request's content (parsed, so a
    retry with another multipart boundary is still the same request)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return fingerprint(request.method, request.path, digest.digest())

"""What every student route needs: the caller from the session token, its application, idempotency keys."""

from __future__ import annotations

import structlog
from aiohttp import web

from services.gateway.context import APPLICATIONS, USERS
from services.gateway.http.auth import Caller as Caller
from services.gateway.http.auth import caller as caller
from services.gateway.http.errors import ApiError
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

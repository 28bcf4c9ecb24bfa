"""Who may call a route, declared with the route (`Api.route(auth=...)`) and enforced by the registry
before the handler runs: `PUBLIC`, `STUDENT` (a session token), or the console's operator roles
(`services/gateway/console/auth.py`). A handler that takes a `who` parameter gets the caller.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from aiohttp import web

from services.gateway.context import SESSIONS
from services.gateway.http.errors import ApiError


class Auth(ABC):
    """A route's authentication: run by the registry; raises ApiError (401/403) or returns the caller."""

    #: The OpenAPI security scheme (None: public).
    scheme: str | None = "session"

    @abstractmethod
    async def authenticate(self, request: web.Request) -> object: ...

    def error_codes(self, method: str) -> tuple[str, ...]:
        """The refusals this authentication can answer on a route of this method (for the OpenAPI document)."""
        return ()


class Public(Auth):
    scheme = None

    async def authenticate(self, request: web.Request) -> object:
        return None


@dataclass(frozen=True)
class Caller:
    """A student's WeChat account, from their session token."""

    openid: str


class StudentSession(Auth):
    """`Authorization: Bearer <token>`: the gateway's own session token (POST /api/v1/login), or 401."""

    async def authenticate(self, request: web.Request) -> Caller:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        openid = await request.app[SESSIONS].resolve(token)
        if openid is None:
            raise ApiError(401, "unauthenticated")
        return Caller(openid)

    def error_codes(self, method: str) -> tuple[str, ...]:
        return ("unauthenticated",)


PUBLIC = Public()
STUDENT = StudentSession()


async def caller(request: web.Request) -> Caller:
    """The student calling (for handlers that authenticate themselves; declare `auth=STUDENT` instead)."""
    return await STUDENT.authenticate(request)

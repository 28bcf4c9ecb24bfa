"""Console sessions: a random token in a Secure HttpOnly SameSite=Strict cookie, a CSRF token checked
on every state-changing request (double submit: cookie and header must match the session's), expiry;
the routes' declared auth (`SIGNED_IN`, `roles(...)`), and login throttling on failed attempts per
account and client address (`LoginThrottle`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pymongo import IndexModel

from services.gateway.config import GatewaySettings
from services.gateway.console.audit import AuditLog
from services.gateway.console.operators import Operator, Operators, Role
from services.gateway.console.shortcache import ShortCache
from services.gateway.http.addresses import client_address
from services.gateway.http.auth import PUBLIC, Auth
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.limits import RateLimiter
from services.gateway.http.registry import Api
from shared.db import Database
from shared.events import utcnow

SESSION_COOKIE = "console_session"
CSRF_COOKIE = "console_csrf"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

INDEXES = {
    "console_sessions": [
        IndexModel([("expires_at", 1)], expireAfterSeconds=0),
        IndexModel([("operator_id", 1)]),
    ],
}


@dataclass(frozen=True)
class ConsoleSession:
    operator_id: str
    csrf: str


class ConsoleSessions:
    """Stored hashed; kept `cache_s` in this process after a read (`ShortCache`), with its expiry checked
    on every request. A logout here takes effect at once; one on another replica within `cache_s`."""

    def __init__(self, database: Database, ttl: timedelta, *, cache_s: float = 5.0) -> None:
        self.collection = database.db["console_sessions"]
        self.ttl = ttl
        # token hash -> (session, expires_at); only sessions that exist (an unknown token is read each time)
        self._cache: ShortCache[str, tuple[ConsoleSession, datetime]] = ShortCache(cache_s)

    @staticmethod
    def _hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    async def create(self, operator_id: str) -> tuple[str, str]:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        await self.collection.insert_one(
            {
                "_id": self._hash(token),
                "operator_id": operator_id,
                "csrf": csrf,
                "created_at": now,
                "expires_at": now + self.ttl,
            }
        )
        return token, csrf

    async def resolve(self, token: str) -> ConsoleSession | None:
        if not token or len(token) > 128:
            return None
        key = self._hash(token)
        cached = self._cache.get(key)
        if cached is None:
            epoch = self._cache.epoch
            doc = await self.collection.find_one({"_id": key})
            if doc is None:
                return None
            cached = (ConsoleSession(str(doc["operator_id"]), str(doc["csrf"])), doc["expires_at"])
            self._cache.put(key, cached, epoch)
        session, expires_at = cached
        return session if expires_at > utcnow() else None

    async def revoke(self, token: str) -> None:
        key = self._hash(token)
        await self.collection.delete_one({"_id": key})
        self._cache.drop(key)


@dataclass
class LoginThrottle:
    """Failed sign-ins, counted so that nobody can lock an operator out by failing on purpose.

    Only failures take tokens (a right password costs nothing), kept per account and address pair,
    per address, and per account:
    - the pair (`CONSOLE_LOGIN_BURST` failures, then `CONSOLE_LOGIN_PER_MINUTE`) stops guessing one
      account from one address;
    - the address (4x) stops one address trying many accounts;
    - the account (4x) stops many addresses guessing one account, but only for addresses that have
      failed on it: the operator signing in from an address that has not failed still gets in, so a
      locked account is never a locked-out operator, and each new address guesses at most once.
    The address is the client's own (`http/addresses.py`), never the shared address of the ingress.
    """

    pair: RateLimiter
    address: RateLimiter
    account: RateLimiter

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> LoginThrottle:
        burst, rate = settings.console_login_burst, settings.console_login_per_minute
        return cls(
            pair=RateLimiter(rate, burst=burst),
            # One office may share an address: more room than per pair, still far from a brute force.
            address=RateLimiter(rate * 4, burst=burst * 4),
            account=RateLimiter(rate * 4, burst=burst * 4),
        )

    def wait(self, email: str, address: str, now: float | None = None) -> float:
        """0 if this attempt may be checked, else the seconds to wait."""
        pair = f"{email}\n{address}"
        wait = max(self.pair.wait(pair, now), self.address.wait(address, now))
        if self.pair.spent(pair, now):  # this address has failed on this account: the account lock applies
            wait = max(wait, self.account.wait(email, now))
        return wait

    def failed(self, email: str, address: str, now: float | None = None) -> None:
        self.pair.take(f"{email}\n{address}", now)
        self.address.take(address, now)
        self.account.take(email, now)


@dataclass
class Console:
    """What the console's handlers need, on the app under CONSOLE."""

    settings: GatewaySettings
    operators: Operators
    sessions: ConsoleSessions
    audit: AuditLog
    login: LoginThrottle


CONSOLE = web.AppKey("console", Console)


def set_session_cookies(response: web.Response, settings: GatewaySettings, token: str, csrf: str) -> None:
    max_age = int(settings.console_session_ttl_minutes * 60)
    secure = settings.console_cookie_secure
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=COOKIE_PATH,
        max_age=max_age,
        secure=secure,
        httponly=True,
        samesite="Strict",
    )
    # Readable by the console's script, which echoes it in the X-CSRF-Token header.
    response.set_cookie(
        CSRF_COOKIE, csrf, path=COOKIE_PATH, max_age=max_age, secure=secure, httponly=False, samesite="Strict"
    )


def clear_session_cookies(response: web.Response) -> None:
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    response.del_cookie(CSRF_COOKIE, path=COOKIE_PATH)


async def operator(request: web.Request, *roles: Role) -> Operator:
    """The signed-in operator (401), with a valid CSRF token on state-changing requests (403), in one of `roles` (403)."""
    console = request.app[CONSOLE]
    session = await console.sessions.resolve(request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        raise ApiError(401, "console_unauthenticated")
    if request.method not in SAFE_METHODS:
        header = request.headers.get(CSRF_HEADER, "")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not (
            header
            and hmac.compare_digest(header.encode(), cookie.encode())
            and hmac.compare_digest(header.encode(), session.csrf.encode())
        ):
            raise ApiError(403, "csrf_failed")
    who = await console.operators.get(session.operator_id)
    if who is None:
        raise ApiError(401, "console_unauthenticated")
    structlog.contextvars.bind_contextvars(operator_id=who.operator_id)
    # School staff reach only the routes that name their role: "any operator" does not include them.
    refused = (roles and who.role not in roles) or (who.role is Role.SCHOOL and Role.SCHOOL not in roles)
    if refused:
        await console.audit.record(request, who, "forbidden", path=request.rel_url.path, outcome="refused")
        raise ApiError(403, "forbidden")
    return who


@dataclass(frozen=True)
class SignedIn(Auth):
    """A route's console auth, enforced by the registry: signed in, CSRF on writes, one of `roles` (if any)."""

    roles: tuple[Role, ...] = ()

    async def authenticate(self, request: web.Request) -> Operator:
        return await operator(request, *self.roles)

    def error_codes(self, method: str) -> tuple[str, ...]:
        return (
            "console_unauthenticated",
            *(() if method in SAFE_METHODS else ("csrf_failed",)),
            *(("forbidden",) if self.roles else ()),
        )


#: Any signed-in operator of the staff (admin, reviewer, support): not school staff.
SIGNED_IN = SignedIn()
#: Anyone signed in, school staff included (their own account: /me, /logout).
EVERYONE = SignedIn(tuple(Role))


def roles(*allowed: Role) -> SignedIn:
    """A signed-in operator in one of `allowed` (403 `forbidden`, audited, otherwise)."""
    return SignedIn(allowed)


# --- routes --------------------------------------------------------------------------------------

api = Api()


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class OperatorView(BaseModel):
    operator_id: str
    email: str
    role: str
    schools: list[str]
    all_schools: bool


class LoginResponse(BaseModel):
    operator: OperatorView
    csrf_token: str = Field(description=f"also in the {CSRF_COOKIE} cookie; send it as {CSRF_HEADER}")
    expires_at: datetime


def operator_view(who: Operator) -> OperatorView:
    return OperatorView(
        operator_id=who.operator_id,
        email=who.email,
        role=str(who.role),
        schools=list(who.schools),
        all_schools=who.all_schools,
    )


@api.route(
    "POST",
    "/console/api/v1/login",
    summary="Sign in with email and password; sets the session and CSRF cookies",
    body=LoginRequest,
    response=LoginResponse,
    auth=PUBLIC,
    errors=("invalid_credentials", "rate_limited"),
)
async def console_login(request: web.Request, *, body: LoginRequest) -> web.Response:
    console = request.app[CONSOLE]
    email = body.email.strip().lower()
    address = client_address(request)
    wait = console.login.wait(email, address)
    if wait > 0:
        await console.audit.record(request, None, "login", email=email, outcome="throttled")
        raise ApiError(429, "rate_limited", retry_after_s=round(wait, 1))
    who = await console.operators.authenticate(email, body.password)
    if who is None:
        console.login.failed(email, address)
        await console.audit.record(request, None, "login", email=email, outcome="failed")
        raise ApiError(401, "invalid_credentials")
    token, csrf = await console.sessions.create(who.operator_id)
    await console.audit.record(request, who, "login")
    reply = LoginResponse(
        operator=operator_view(who), csrf_token=csrf, expires_at=utcnow() + console.sessions.ttl
    )
    response = json_response(reply.model_dump(mode="json"))
    set_session_cookies(response, console.settings, token, csrf)
    return response


@api.route("POST", "/console/api/v1/logout", summary="End the session", status=204, auth=EVERYONE)
async def console_logout(request: web.Request, *, who: Operator) -> web.Response:
    await request.app[CONSOLE].sessions.revoke(request.cookies.get(SESSION_COOKIE, ""))
    await request.app[CONSOLE].audit.record(request, who, "logout")
    response = web.Response(status=204)
    clear_session_cookies(response)
    return response


@api.route(
    "GET", "/console/api/v1/me", summary="The signed-in operator", response=OperatorView, auth=EVERYONE
)
async def console_me(request: web.Request, *, who: Operator) -> web.Response:
    return json_response(operator_view(who).model_dump())

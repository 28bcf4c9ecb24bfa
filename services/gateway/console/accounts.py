"""Operator accounts from the console (admins): the list, and invitations with a one-time set-password link.

An invitation creates the operator at once (role, schools) with a random password nobody knows, and a
one-time token (stored as its SHA-256, expiring after INVITE_TTL) that the link carries: the invitee
opens `/console/#/set-password?token=...`, chooses a password (12 characters at least) and signs in as
usual. A token works once; an expired, used or unknown one is `400 invite_invalid`. Both steps are audited.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pymongo import IndexModel, ReturnDocument

from services.gateway.console.auth import CONSOLE, roles
from services.gateway.console.cases import PREFIX
from services.gateway.console.operators import Operator, OperatorExists, Role, hash_password
from services.gateway.context import DATABASE, SCHOOLS
from services.gateway.http.auth import PUBLIC
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from shared.events import utcnow

api = Api()
INVITE_TTL = timedelta(hours=72)
INDEXES = {"operator_invites": [IndexModel([("expires_at", 1)], expireAfterSeconds=0)]}
# Roles an admin may invite (another admin is made with the CLI, on the server).
InviteRole = Role


class OperatorLine(BaseModel):
    operator_id: str
    email: str
    role: str
    schools: list[str]
    active: bool
    invited: bool
    password_set: bool
    created_at: datetime | None


class OperatorList(BaseModel):
    operators: list[OperatorLine]


class InviteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    role: Role
    schools: list[str] = Field(min_length=1, max_length=20)


class InviteResponse(BaseModel):
    operator_id: str
    email: str
    role: str
    schools: list[str]
    invite_path: str = Field(description="the one-time link (path on this console), shown once")
    expires_at: datetime


class SetPasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=20, max_length=128)
    password: str = Field(min_length=12, max_length=256)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@api.route(
    "GET",
    f"{PREFIX}/operators",
    summary="Every operator account (admins)",
    response=OperatorList,
    errors=("forbidden",),
    auth=roles(Role.ADMIN),
)
async def list_operators(request: web.Request, *, who: Operator) -> web.Response:
    fields = {
        "email": 1,
        "role": 1,
        "schools": 1,
        "active": 1,
        "invited_by": 1,
        "password_set_at": 1,
        "created_at": 1,
    }
    lines = [
        OperatorLine(
            operator_id=str(doc["_id"]),
            email=str(doc["email"]),
            role=str(doc["role"]),
            schools=list(doc.get("schools") or []),
            active=bool(doc.get("active")),
            invited=bool(doc.get("invited_by")),
            password_set=not doc.get("invited_by") or bool(doc.get("password_set_at")),
            created_at=doc.get("created_at"),
        )
        async for doc in request.app[DATABASE].db["operators"].find({}, fields).sort("email", 1).limit(1000)
    ]
    # Who can reach what is itself sensitive: the admin who read the list is on record.
    await request.app[CONSOLE].audit.record(request, who, "operator.list", count=len(lines))
    return json_response(OperatorList(operators=lines).model_dump(mode="json"))


@api.route(
    "POST",
    f"{PREFIX}/operators/invite",
    summary="Invite an operator (school staff, reviewer, support): the account and a one-time set-password link",
    body=InviteRequest,
    response=InviteResponse,
    status=201,
    errors=("forbidden", "csrf_failed", "invalid_request", "operator_exists"),
    auth=roles(Role.ADMIN),
)
async def invite_operator(request: web.Request, *, who: Operator, body: InviteRequest) -> web.Response:
    if body.role is Role.ADMIN:
        raise ApiError(
            400, "invalid_request", fields=[{"field": "role", "error": "admins are made with the CLI"}]
        )
    schools = sorted({s.strip() for s in body.schools if s.strip()})
    unknown = [s for s in schools if len(s) > 32 or await request.app[SCHOOLS].get(s) is None]
    if unknown or not schools:
        raise ApiError(400, "invalid_request", fields=[{"field": "schools", "error": "unknown school"}])
    console = request.app[CONSOLE]
    try:
        created = await console.operators.create(body.email, secrets.token_urlsafe(32), body.role, schools)
    except OperatorExists as exc:
        raise ApiError(409, "operator_exists") from exc
    token = secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + INVITE_TTL
    database = request.app[DATABASE]
    await console.operators.update(created.operator_id, {"invited_by": who.operator_id})
    await database.db["operator_invites"].insert_one(
        {"_id": _hash(token), "operator_id": created.operator_id, "created_at": now, "expires_at": expires}
    )
    await console.audit.record(
        request, who, "operator.invite", invited_id=created.operator_id, role=str(body.role), schools=schools
    )
    reply = InviteResponse(
        operator_id=created.operator_id,
        email=created.email,
        role=str(created.role),
        schools=list(created.schools),
        invite_path=f"/console/#/set-password?token={token}",
        expires_at=expires,
    )
    return json_response(reply.model_dump(mode="json"), status=201)


@api.route(
    "POST",
    f"{PREFIX}/operators/set-password",
    summary="Choose a password with an invitation's one-time token; then sign in as usual",
    body=SetPasswordRequest,
    status=204,
    errors=("invalid_request", "invite_invalid"),
    auth=PUBLIC,
)
async def set_password(request: web.Request, *, body: SetPasswordRequest) -> web.Response:
    database = request.app[DATABASE]
    now = utcnow()
    # Taken in one conditional update: of two uses of the same token, one wins.
    invite = await database.db["operator_invites"].find_one_and_update(
        {"_id": _hash(body.token), "used_at": {"$exists": False}, "expires_at": {"$gt": now}},
        {"$set": {"used_at": now}},
        return_document=ReturnDocument.AFTER,
    )
    if invite is None:
        await request.app[CONSOLE].audit.record(request, None, "operator.set_password", outcome="failed")
        raise ApiError(400, "invite_invalid")
    await request.app[CONSOLE].operators.update(
        str(invite["operator_id"]), {"password_hash": hash_password(body.password), "password_set_at": now}
    )
    await request.app[CONSOLE].audit.record(
        request, None, "operator.set_password", operator_ref=str(invite["operator_id"])
    )
    return web.Response(status=204)

"""Seed step 2 and 我的: WeChat login, phone-number authorisation, profile, unbinding."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.api.common import caller, caller_user, find_my_application
from services.gateway.context import APPLICATIONS, FIELD_CIPHER, LIMITERS, SESSIONS, USERS, WECHAT
from services.gateway.domain import binding
from services.gateway.http.addresses import client_address
from services.gateway.http.bodies import json_body
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from shared.logging import get_logger, mask_phone, mask_student_number
from shared.wechat.errors import WeChatError

log = get_logger(__name__)
api = Api()

# jscode2session errors a student can cause by retrying with a stale code.
_BAD_CODE = {40029, 40163, 40226}


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=128, description="the code from wx.login()")


class StudentSummary(BaseModel):
    masked_name: str
    student_number: str
    school_code: str
    school_name: str


class LoginResponse(BaseModel):
    token: str
    expires_at: datetime
    bound: bool
    student: StudentSummary | None = None


class PhoneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=128, description="the code from getPhoneNumber")


class PhoneResponse(BaseModel):
    phone: str = Field(description="masked, e.g. 138****5678")


class ProfileResponse(BaseModel):
    phone: str | None
    bound: bool
    student: StudentSummary | None
    application_id: str | None


def _summary(user: dict[str, object]) -> StudentSummary | None:
    student = user.get("student")
    if not isinstance(student, dict):
        return None
    return StudentSummary(
        masked_name=student["masked_name"],
        student_number=mask_student_number(student["student_number"]),
        school_code=student["school_code"],
        school_name=student["school_name"],
    )


@api.route(
    "POST",
    "/api/v1/login",
    summary="Exchange a wx.login code for a session token",
    body=LoginRequest,
    response=LoginResponse,
    auth=False,
    errors=("invalid_login_code", "rate_limited", "wechat_unavailable"),
)
async def login(request: web.Request) -> web.Response:
    wait = request.app[LIMITERS].login.allow(client_address(request))
    if wait:
        raise ApiError(429, "rate_limited", retry_after_s=round(wait, 1))
    body = await json_body(request, LoginRequest)
    try:
        session = await request.app[WECHAT].code2session(body.code)
    except WeChatError as exc:
        if exc.errcode in _BAD_CODE:
            raise ApiError(400, "invalid_login_code") from exc
        log.warning("jscode2session failed", errcode=exc.errcode)
        raise ApiError(502, "wechat_unavailable") from exc
    user = await request.app[USERS].touch(session.openid)
    token, expires = await request.app[SESSIONS].create(session.openid)
    log.info("login", bound=bool(user.get("student_id")))
    reply = LoginResponse(
        token=token, expires_at=expires, bound=bool(user.get("student_id")), student=_summary(user)
    )
    return json_response(reply.model_dump(mode="json"))


@api.route(
    "POST",
    "/api/v1/me/phone",
    summary="Store the phone number the student authorised (getPhoneNumber)",
    body=PhoneRequest,
    response=PhoneResponse,
    errors=("invalid_phone_code", "wechat_unavailable"),
)
async def authorise_phone(request: web.Request) -> web.Response:
    who = await caller(request)
    body = await json_body(request, PhoneRequest)
    try:
        phone = await request.app[WECHAT].get_phone_number(body.code)
    except WeChatError as exc:
        if exc.errcode in {40029, 40163, 47001}:
            raise ApiError(400, "invalid_phone_code") from exc
        raise ApiError(502, "wechat_unavailable") from exc
    number = phone.pure_phone_number or phone.phone_number
    encrypted = request.app[FIELD_CIPHER].encrypt(number, context=f"phone:{who.openid}")
    await request.app[USERS].set_fields(
        who.openid, phone_encrypted=encrypted, phone_masked=mask_phone(number)
    )
    return json_response(PhoneResponse(phone=mask_phone(number)).model_dump())


@api.route("GET", "/api/v1/me", summary="The student's profile, masked (我的)", response=ProfileResponse)
async def profile(request: web.Request) -> web.Response:
    who = await caller(request)
    user = await caller_user(request, who)
    application = await find_my_application(request, who)
    reply = ProfileResponse(
        phone=user.get("phone_masked"),
        bound=bool(user.get("student_id")),
        student=_summary(user),
        application_id=application["_id"] if application else None,
    )
    return json_response(reply.model_dump())


@api.route(
    "DELETE",
    "/api/v1/me/binding",
    summary="Unbind this WeChat account from the student (解除绑定); refused while a code scan is read",
    response=ProfileResponse,
    errors=("scan_in_flight",),
)
async def unbind(request: web.Request) -> web.Response:
    """The student keeps their application; another WeChat account can bind and carry on (seed step 2, 6)."""
    who = await caller(request)
    user = await caller_user(request, who)
    application = await find_my_application(request, who)
    if application is not None:
        # The application stays the student's; it just has no WeChat account acting for it until
        # one binds again (that account then continues it, see handlers._continue_existing). Refused
        # (409 scan_in_flight) while a scan is being read: its result needs the account.
        await request.app[APPLICATIONS].apply(application["_id"], binding.unbind, current=application)
    await request.app[USERS].unbind(who.openid)
    await request.app[USERS].set_fields(who.openid, student=None)
    log.info("unbound")
    reply = ProfileResponse(phone=user.get("phone_masked"), bound=False, student=None, application_id=None)
    return json_response(reply.model_dump())

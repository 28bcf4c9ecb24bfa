"""Field practice beyond the seed: consent with the policy version (before any personal data), withdrawing
a submission that waits for review, and 「录取照片不是本人」 (a support case instead of a comparison).

The decisions are `services/gateway/domain/field_rules.py`; these routes authenticate, load, decide, write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.api.common import caller, idempotency_key, my_application
from services.gateway.context import APPLICATIONS, SCHOOLS, USERS
from services.gateway.domain.application import Application
from services.gateway.domain.errors import DomainError
from services.gateway.domain.field_rules import (
    dispute_admission_photo,
    has_consented,
    last_withdrawal,
    open_dispute,
    record_consent,
    withdraw_submission,
)
from services.gateway.domain.rules import SchoolRules
from services.gateway.http.bodies import json_body
from services.gateway.http.errors import json_response
from services.gateway.http.registry import Api
from shared.events import utcnow
from shared.logging import get_logger

log = get_logger(__name__)
api = Api()


def _now() -> datetime:
    """Now, to the millisecond the database keeps, so a first answer and its repeat agree."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class ConsentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    school_code: str = Field(min_length=1, max_length=20)
    policy_version: str = Field(min_length=1, max_length=32, description="the version the student was shown")


class ConsentView(BaseModel):
    school_code: str
    policy_version: str
    agreed_at: datetime


@api.route(
    "POST",
    "/api/v1/consents",
    summary="Record consent to the school's 《用户服务协议》 and 《隐私政策》 (their version), before personal data",
    body=ConsentRequest,
    response=ConsentView,
    status=201,
    errors=("not_found", "policy_outdated"),
)
async def consent(request: web.Request) -> web.Response:
    who = await caller(request)
    body = await json_body(request, ConsentRequest)
    school = await request.app[SCHOOLS].get(body.school_code)
    if school is None:
        raise DomainError("not_found")
    current = school.current_policy_version()
    user = await request.app[USERS].get(who.openid) or {}
    given = record_consent(school.school_code, current, body.policy_version, _now())
    if has_consented(user.get("consents"), school.school_code, current):
        mine = next(
            c
            for c in user["consents"]
            if c["school_code"] == school.school_code and c["policy_version"] == current
        )
        return json_response(ConsentView(**mine).model_dump(mode="json"), status=201)  # once per version
    # Appended, never replaced: which texts the student agreed to, and when, stays on record. (A whole-list
    # $set: nx-27017 stores a $push-ed sub-document as text.)
    await request.app[USERS].set_fields(who.openid, consents=[*(user.get("consents") or []), given.to_doc()])
    log.info("consent recorded", school_code=school.school_code, policy_version=current)
    return json_response(ConsentView(**given.to_doc()).model_dump(mode="json"), status=201)


class WithdrawnView(BaseModel):
    state: str
    withdrawn_at: datetime
    resubmissions_left: int


@api.route(
    "POST",
    "/api/v1/submission/withdraw",
    summary="Withdraw the submission waiting for review (quota and free resubmissions unchanged)",
    response=WithdrawnView,
    errors=("no_application", "illegal_transition"),
)
async def withdraw(request: web.Request) -> web.Response:
    who = await caller(request)
    document = await my_application(request, who)
    application = Application.from_doc(document)
    rules = await request.app[SCHOOLS].rules(application.school_code)
    key = idempotency_key(request)
    last = last_withdrawal(application)
    if key and last and last.get("idempotency_key") == key:
        return _withdrawn(application, last, rules)  # the same request again: the first answer
    written = await request.app[APPLICATIONS].apply(
        application.id, lambda current: withdraw_submission(current, key, _now()), current=document
    )
    record = last_withdrawal(written)
    assert record is not None
    log.info("submission withdrawn", from_state=record["from_state"])
    return _withdrawn(written, record, rules)


def _withdrawn(application: Application, record: dict[str, Any], rules: SchoolRules) -> web.Response:
    reply = WithdrawnView(
        state=str(application.state),
        withdrawn_at=record["withdrawn_at"],
        resubmissions_left=application.resubmissions_remaining(rules),
    )
    return json_response(reply.model_dump(mode="json"))


class DisputeView(BaseModel):
    status: str
    reported_at: datetime


@api.route(
    "POST",
    "/api/v1/admission-photo/dispute",
    summary="「录取照片不是本人」: open a case for support instead of a comparison that can only fail",
    response=DisputeView,
    status=202,
    errors=("no_application", "illegal_transition"),
)
async def dispute(request: web.Request) -> web.Response:
    who = await caller(request)
    application = await my_application(request, who)
    written = await request.app[APPLICATIONS].apply(
        application["_id"], lambda current: dispute_admission_photo(current, _now()), current=application
    )
    log.info("admission photo disputed")
    return json_response(DisputeView(**(open_dispute(written) or {})).model_dump(mode="json"), status=202)

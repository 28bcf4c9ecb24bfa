"""The school's texts and options, the confirm step, the one status endpoint, and the photos to view."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.api.common import caller, my_application
from services.gateway.api.orders import RefundView, refund_views
from services.gateway.applications import (
    NEXT_STEPS,
    State,
    delivery_step,
)
from services.gateway.context import APPLICATIONS, BLOBS, DATABASE, SCHOOLS, WAITERS
from services.gateway.domain import confirmation
from services.gateway.domain.application import resubmissions_remaining
from services.gateway.domain.rules import SchoolRules
from services.gateway.http.bodies import json_body
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.longpoll import client_gone
from services.gateway.http.query import query_number
from services.gateway.http.registry import Api
from services.gateway.quota import Quota, remaining
from services.gateway.schools import Option, SchoolPublicView
from services.gateway.waiters import same_instant
from shared.blobs import BlobNotFound
from shared.db import Document
from shared.events import ChsiStudent, utcnow

api = Api()


@api.route(
    "GET",
    "/api/v1/schools/{school_code}",
    summary="The school's notice, agreement, FAQ, support, options and fee",
    response=SchoolPublicView,
    auth=False,
    errors=("not_found",),
)
async def school_config(request: web.Request) -> web.Response:
    school = await request.app[SCHOOLS].get(request.match_info["school_code"][:20])
    if school is None:
        raise ApiError(404, "not_found")
    return json_response(SchoolPublicView.of(school).model_dump())


class ConfirmRequest(BaseModel):
    """Seed step 5: defaults are preselected; the student may change year and mailing method."""

    model_config = ConfigDict(extra="forbid")
    graduation_year: str | None = Field(default=None, max_length=64)
    mailing_method: str | None = Field(default=None, max_length=64)


class Confirmation(BaseModel):
    graduation_year: Option
    mailing_method: Option
    confirmed_at: datetime


class NextStepView(BaseModel):
    action: str
    label: str


class FailureView(BaseModel):
    code: str
    message: str
    at: datetime | None = None


class PhotoView(BaseModel):
    photo_id: str
    status: str
    source: str
    uploaded_at: datetime
    standardisation_number: int
    reasons: list[str] = Field(default_factory=list, description="stable codes, most fundamental first")
    messages: list[str] = Field(default_factory=list, description="what to fix, in Chinese, same order")
    image_url: str | None = None


class OrderView(BaseModel):
    out_trade_no: str
    amount_fen: int
    status: str
    paid_at: datetime | None = None


class QuotaView(BaseModel):
    standardisations_left: int
    reopens_at: datetime | None


class MatchView(BaseModel):
    score: float
    passed: bool
    photo_id: str


class DeliveryView(BaseModel):
    """After approval: exported to CHSI in a batch, printed, mailed (the console's delivery)."""

    exported_at: datetime
    printed_at: datetime | None
    mailed_at: datetime | None


class ApplicationView(BaseModel):
    """Everything the mini-program's status page needs, in one response (seed 13: "the status is the truth")."""

    application_id: str
    state: State
    next: NextStepView
    last_failure: FailureView | None
    student: ChsiStudent | None
    confirmation: Confirmation | None
    order: OrderView | None
    photos: list[PhotoView]
    quota: QuotaView
    match: MatchView | None
    resubmissions_left: int
    updated_at: datetime
    delivery: DeliveryView | None = None
    refunds: list[RefundView] = Field(
        default_factory=list, description="money going back: a payment of a superseded order, a refund"
    )


@api.route(
    "POST",
    "/api/v1/application/confirm",
    summary="Confirm the decoded code with graduation year and mailing method",
    body=ConfirmRequest,
    response=Confirmation,
    errors=("no_application", "illegal_transition", "invalid_option"),
)
async def confirm(request: web.Request) -> web.Response:
    who = await caller(request)
    application = await my_application(request, who)
    body = await json_body(request, ConfirmRequest)
    rules = await request.app[SCHOOLS].rules(application.get("school_code"))
    written = await request.app[APPLICATIONS].apply(
        application["_id"],
        lambda app: confirmation.confirm(
            app, rules, utcnow(), graduation_year=body.graduation_year, mailing_method=body.mailing_method
        ),
        current=application,
    )
    return json_response(Confirmation.model_validate(written.confirmation).model_dump(mode="json"))


def as_utc(value: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime, however the database handed it back (nx-27017 returns a
    top-level time as naive ISO text): one `updated_at` has one spelling, whether read or remembered."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def application_view(application: Document, rules: SchoolRules) -> ApplicationView:
    """The status page; every count in it comes from the school's rules."""
    state = State(application["state"])
    photos = [
        PhotoView(
            photo_id=photo_id,
            status=p["status"],
            source=p["source"],
            uploaded_at=p["uploaded_at"],
            standardisation_number=p["standardisation_number"],
            reasons=p.get("reasons", []),
            messages=p.get("messages", []),
            image_url=f"/api/v1/photos/{photo_id}/image" if p.get("standardized_blob_id") else None,
        )
        for photo_id, p in sorted(
            (application.get("photos") or {}).items(), key=lambda kv: kv[1]["uploaded_at"]
        )
    ]
    quota = Quota.from_doc(application.get("quota"))
    now = utcnow()
    order = application.get("order")
    match = application.get("match")
    failure = application.get("last_failure")
    delivery = application.get("delivery") if state is State.APPROVED else None
    step = delivery_step(delivery) or NEXT_STEPS[state]
    return ApplicationView(
        application_id=application["_id"],
        state=state,
        next=NextStepView(**step.__dict__),
        last_failure=FailureView(**failure) if failure else None,
        student=application.get("verified_code"),
        confirmation=application.get("confirmation"),
        order=OrderView(**{k: order.get(k) for k in ("out_trade_no", "amount_fen", "status", "paid_at")})
        if order and order.get("status") != "creating"
        else None,
        photos=photos,
        quota=QuotaView(
            standardisations_left=remaining(quota, now, rules),
            reopens_at=quota.reopens_at if quota.reopens_at and quota.reopens_at > now else None,
        ),
        match=MatchView(**match) if match else None,
        resubmissions_left=resubmissions_remaining(application, rules),
        updated_at=as_utc(application["updated_at"]),
        delivery=DeliveryView(**{k: delivery.get(k) for k in ("exported_at", "printed_at", "mailed_at")})
        if delivery
        else None,
        refunds=refund_views(application),
    )


# The status long poll (docs/api.md): `wait` seconds at most, `since` the `updated_at` the client has.
STATUS_QUERY: dict[str, str | dict[str, Any]] = {
    "wait": {"type": "number", "minimum": 0, "maximum": 25},
    "since": "string",
}


@api.route(
    "GET",
    "/api/v1/application",
    summary=(
        "The application's state, the next step and the last failure reason; `?wait=N&since=UPDATED_AT` "
        "long-polls up to N s (≤ 25) until it differs from the `updated_at` the client has"
    ),
    response=ApplicationView,
    query=STATUS_QUERY,
    errors=("no_application",),
)
async def application_status(request: web.Request) -> web.Response:
    who = await caller(request)
    wait = query_number(request, "wait", STATUS_QUERY, 0.0)  # finite, 0-25: checked by the registry
    since = request.query.get("since", "")[:64]
    waiters = request.app[WAITERS]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    read = False
    while True:
        seen = waiters.seen(who.openid)  # before the read: a change during it is not missed
        # A long poll reads the database first (the account's application may have changed through another
        # replica: an action, an unbinding, an erasure); once woken, it takes the copy this process wrote or
        # read within recheck_s (waiters.py), and reads again when that copy is older.
        application = waiters.latest(who.openid, since) if read else None
        if application is None:
            application = await my_application(request, who)
            waiters.remember(who.openid, application, seen)
            read = True
        else:
            structlog.contextvars.bind_contextvars(application_id=application["_id"])
        rules = await request.app[SCHOOLS].rules(application.get("school_code"))
        view = application_view(application, rules).model_dump(mode="json")
        remaining = deadline - loop.time()
        if not same_instant(since, view["updated_at"]) or remaining <= 0 or client_gone(request):
            return json_response(view)
        # Woken by this gateway's own write; the database again every recheck_s (another replica's).
        await waiters.wait(who.openid, seen, min(remaining, waiters.recheck_s))


async def _image(request: web.Request, blob_id: str | None) -> web.Response:
    if not blob_id:
        raise ApiError(404, "not_found")
    try:
        data = await request.app[BLOBS].get(blob_id)
    except BlobNotFound as exc:
        raise ApiError(404, "not_found") from exc
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@api.route(
    "GET",
    "/api/v1/admission-photo",
    summary="The student's admission photo, to confirm it is them (seed step 13)",
    binary="image/jpeg",
    errors=("no_application", "not_found"),
)
async def admission_photo(request: web.Request) -> web.Response:
    who = await caller(request)
    application = await my_application(request, who)
    student: dict[str, Any] | None = (
        await request.app[DATABASE]
        .db["students"]
        .find_one({"_id": application.get("student_id")}, {"admission_photo_blob_id": 1})
    )
    return await _image(request, (student or {}).get("admission_photo_blob_id"))


@api.route(
    "GET",
    "/api/v1/photos/{photo_id}/image",
    summary="A standardised photo of the student's own",
    binary="image/jpeg",
    errors=("no_application", "not_found", "photo_purged"),
)
async def photo_image(request: web.Request) -> web.Response:
    who = await caller(request)
    application = await my_application(request, who)
    photo = (application.get("photos") or {}).get(request.match_info["photo_id"]) or {}
    if photo.get("purged") or (photo and application.get("retention")):
        # Deleted after the retention period (services/gateway/retention.py).
        raise ApiError(410, "photo_purged")
    return await _image(request, photo.get("standardized_blob_id"))

"""The review queue: the oldest IN_REVIEW case of the operator's schools, claimed with a lease so two
reviewers never get the same case, and the decision (审核通过 / 审核未通过) written with its
`review.decided.v1` event in one Applications.mutate (outbox).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError

from services.gateway.applications import State
from services.gateway.console.auth import CONSOLE, EVERYONE, roles
from services.gateway.console.cases import PREFIX, CaseView, case_view, scoped_application
from services.gateway.console.operators import Operator, Role
from services.gateway.context import APPLICATIONS, DATABASE, REQUEST_ID, SCHOOLS
from services.gateway.domain import review
from services.gateway.domain.statuses import ReviewDecision
from services.gateway.http.bodies import json_body
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from services.gateway.messages import REVIEW_REASONS
from shared.db import Document
from shared.events import new_id, utcnow
from shared.logging import get_logger

log = get_logger(__name__)
api = Api()

INDEXES = {"review_leases": [IndexModel([("operator_id", 1)])]}
# How many of the oldest cases one next-case call looks at before saying the queue is empty for now.
CANDIDATES = 50
REVIEWERS = (Role.ADMIN, Role.REVIEWER)


class Leases:
    """`review_leases`, keyed by application id: the unique key is what makes a claim exclusive."""

    def __init__(self, request: web.Request) -> None:
        self.collection = request.app[DATABASE].db["review_leases"]
        self.duration = timedelta(seconds=request.app[CONSOLE].settings.console_review_lease_s)

    async def claim(self, application_id: str, who: Operator, school_code: str | None) -> datetime | None:
        now = utcnow()
        expires = now + self.duration
        lease = {"operator_id": who.operator_id, "school_code": school_code, "expires_at": expires}
        try:
            await self.collection.insert_one({"_id": application_id, **lease})
            return expires
        except DuplicateKeyError:
            pass
        # Taken over only if it lapsed, or renewed by its holder; the filter makes it one winner.
        taken = await self.collection.update_one(
            {
                "_id": application_id,
                "$or": [{"expires_at": {"$lte": now}}, {"operator_id": who.operator_id}],
            },
            {"$set": lease},
        )
        return expires if taken.modified_count == 1 else None

    async def held_by_other(self, application_id: str, who: Operator) -> bool:
        lease = await self.collection.find_one({"_id": application_id})
        return bool(lease and lease["operator_id"] != who.operator_id and lease["expires_at"] > utcnow())

    async def release(self, application_id: str, who: Operator | None = None) -> None:
        query: dict[str, str] = {"_id": application_id}
        if who is not None:
            query["operator_id"] = who.operator_id
        await self.collection.delete_one(query)


class NextCase(BaseModel):
    case: CaseView | None


class NextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skip: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=100,
        description="application ids the reviewer skipped (the web page's S key): not offered again",
    )


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approved", "rejected"]
    reason_code: str | None = Field(default=None, description="required for a rejection: see /reasons")
    note: str = Field(default="", max_length=400, description="free text, stored and returned as text")


class ReviewRecord(BaseModel):
    review_id: str
    decision: str
    reason_code: str | None
    reason: str | None
    note: str
    operator_id: str
    photo_id: str | None
    decided_at: datetime


class ReviewResponse(BaseModel):
    application_id: str
    state: str
    review: ReviewRecord


class ReasonView(BaseModel):
    code: str
    label: str


class ReasonList(BaseModel):
    reasons: list[ReasonView]


@api.route(
    "GET",
    f"{PREFIX}/reviews/reasons",
    summary="Rejection reasons a reviewer picks from",
    response=ReasonList,
    auth=EVERYONE,
)
async def review_reasons(request: web.Request) -> web.Response:
    reasons = [ReasonView(code=code, label=label) for code, label in REVIEW_REASONS.items()]
    return json_response(ReasonList(reasons=reasons).model_dump())


@api.route(
    "POST",
    f"{PREFIX}/reviews/next",
    summary="Claim the oldest waiting case of my schools (leased to me); case is null when none waits",
    body=NextRequest,
    response=NextCase,
    errors=("forbidden", "csrf_failed"),
    auth=roles(*REVIEWERS),
)
async def next_case(request: web.Request, *, who: Operator) -> web.Response:
    # The body is optional: older callers send none.
    skip = set((await json_body(request, NextRequest)).skip if request.can_read_body else ())
    leases = Leases(request)
    applications = request.app[APPLICATIONS].collection
    scope: dict[str, object] = {"state": str(State.IN_REVIEW), **who.school_filter()}
    if skip:
        scope["_id"] = {"$nin": sorted(skip)}
    # The oldest waiting cases first: when none waits (the usual answer to a reviewer polling an empty
    # queue) that is the only read, since a case I hold that still waits would be one of them.
    cursor = applications.find(scope, {"_id": 1, "school_code": 1}).sort("updated_at", 1).limit(CANDIDATES)
    oldest: list[Document] = [d async for d in cursor]
    if not oldest:
        return json_response(NextCase(case=None).model_dump(mode="json"))
    # One read of the leases that matter: mine (wherever they are) and those on these candidates.
    live = [
        lease
        async for lease in leases.collection.find(
            {
                "expires_at": {"$gt": utcnow()},
                "$or": [{"operator_id": who.operator_id}, {"_id": {"$in": [c["_id"] for c in oldest]}}],
            }
        )
    ]
    # A case I already hold comes back first (a reload must not lose it to someone else).
    mine = {lease["_id"] for lease in live if lease["operator_id"] == who.operator_id} - skip
    candidates = [c for c in oldest if c["_id"] in mine]
    if len(oldest) == CANDIDATES and mine - {c["_id"] for c in candidates}:
        # Held cases beyond the oldest CANDIDATES (a long queue): are they still waiting, in my schools?
        held = {**scope, "_id": {"$in": sorted(mine - {c["_id"] for c in candidates})}}
        candidates += [d async for d in applications.find(held, {"_id": 1, "school_code": 1})]
    if not candidates:
        busy = {lease["_id"] for lease in live}
        candidates = [c for c in oldest if c["_id"] not in busy]
    for candidate in candidates:
        expires = await leases.claim(candidate["_id"], who, candidate.get("school_code"))
        if expires is None:
            continue
        application = await request.app[APPLICATIONS].get(candidate["_id"])
        if application is None or application["state"] != State.IN_REVIEW:
            await leases.release(candidate["_id"], who)
            continue
        view = (await case_view(request, application)).model_copy(update={"lease_expires_at": expires})
        await request.app[CONSOLE].audit.record(
            request, who, "review.claim", application_id=application["_id"], school_code=view.school_code
        )
        return json_response(NextCase(case=view).model_dump(mode="json"))
    return json_response(NextCase(case=None).model_dump(mode="json"))


@api.route(
    "POST",
    f"{PREFIX}/reviews/{{application_id}}/release",
    summary="Give a claimed case back to the queue",
    status=204,
    errors=("forbidden", "csrf_failed", "not_found"),
    auth=roles(*REVIEWERS),
)
async def release_case(request: web.Request, *, who: Operator) -> web.Response:
    application = await scoped_application(request, who, request.match_info["application_id"])
    await Leases(request).release(application["_id"], who)
    await request.app[CONSOLE].audit.record(request, who, "review.release", application_id=application["_id"])
    return web.Response(status=204)


@api.route(
    "POST",
    f"{PREFIX}/reviews/{{application_id}}/decision",
    summary="Approve or reject a case (IN_REVIEW or REGISTRAR_REVIEW); publishes review.decided.v1",
    body=ReviewRequest,
    response=ReviewResponse,
    errors=(
        "forbidden",
        "csrf_failed",
        "not_found",
        "illegal_transition",
        "review_lease_held",
        "reason_required",
    ),
    auth=roles(*REVIEWERS),
)
async def decide_case(request: web.Request, *, who: Operator, body: ReviewRequest) -> web.Response:
    application = await scoped_application(request, who, request.match_info["application_id"])
    command = review.ReviewCase(
        review_id=new_id(),
        decision=ReviewDecision(body.decision),
        reason_code=body.reason_code,
        note=body.note,
        operator_id=who.operator_id,
        trace={"request_id": request[REQUEST_ID]},
    )
    review.check_reason(command.decision, command.reason_code)
    leases = Leases(request)
    if await leases.held_by_other(application["_id"], who):
        raise ApiError(409, "review_lease_held")
    rules = await request.app[SCHOOLS].rules(application.get("school_code"))
    written = await request.app[APPLICATIONS].apply(
        application["_id"],
        lambda app: review.decide_review(app, command, rules, utcnow()),
        current=application,  # read just above (scoped_application); the write is version-guarded
    )
    await leases.release(application["_id"])
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "review.decided",
        application_id=application["_id"],
        school_code=application.get("school_code"),
        decision=body.decision,
        reason_code=body.reason_code,
    )
    log.info("review decided", application_id=application["_id"], decision=body.decision)
    decided = written.review.doc() if written.review else {}
    reply = ReviewResponse(
        application_id=written.id,
        state=written.state.value,
        review=ReviewRecord(**{k: v for k, v in decided.items() if k in ReviewRecord.model_fields}),
    )
    return json_response(reply.model_dump(mode="json"))

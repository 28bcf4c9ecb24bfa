"""School staff (the registrar office, 学籍部门): how far their students have got, the registrar cases
they decide, and (in delivery.py) their school's files. Role `school`, scoped to its schools; admins see
the same pages for any school.

Nothing here carries payment data: answers are built field by field from the roster and the
application's state, last failure, match and photos (never `order`, payer or amounts), and every other
console route refuses the role (auth.operator). Another school is `404 not_found`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.applications import State
from services.gateway.console.auth import CONSOLE, roles
from services.gateway.console.cases import PREFIX, scoped_application
from services.gateway.console.operators import Operator, Role
from services.gateway.context import APPLICATIONS, DATABASE, REQUEST_ID, SCHOOLS
from services.gateway.domain import review
from services.gateway.domain.statuses import ReviewDecision
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from shared.db import Document
from shared.events import new_id, utcnow
from shared.logging import get_logger

log = get_logger(__name__)
api = Api()
STAFF = (Role.ADMIN, Role.SCHOOL)
# A student whose application has not moved for this long (and is not approved) is listed as stuck.
STALE_AFTER = timedelta(days=3)
LIST_LIMIT = 500
# Where a student can be stuck, and the words the registrar office reads for it.
STUCK_STATES = {
    str(State.CODE_REJECTED): "采集码未通过",
    str(State.MATCH_FAILED): "照片与录取照片比对未通过",
    str(State.REGISTRAR_REVIEW): "等待学籍部门复核",
    str(State.REJECTED): "审核未通过，等待学生重新提交",
}


class StateCount(BaseModel):
    state: str
    count: int


class ClassProgress(BaseModel):
    class_name: str
    students: int
    not_started: int
    in_progress: int
    stuck: int
    approved: int


class StudentLine(BaseModel):
    student_number: str
    name: str
    class_name: str


class StuckStudent(StudentLine):
    application_id: str
    state: str
    reason_code: str
    reason: str
    since: datetime | None


class Progress(BaseModel):
    school_code: str
    students: int
    started: int
    approved: int
    by_state: list[StateCount]
    by_class: list[ClassProgress]
    not_started: list[StudentLine]
    stuck: list[StuckStudent]
    truncated: bool


class RegistrarCase(BaseModel):
    application_id: str
    school_code: str
    student_number: str
    name: str
    class_name: str
    score: float | None
    band: str | None
    failed_matches: int
    photo_url: str | None
    admission_photo_url: str
    updated_at: datetime | None


class RegistrarCases(BaseModel):
    school_code: str
    cases: list[RegistrarCase]


class RegistrarDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approved", "rejected"]
    reason_code: str | None = Field(default=None, max_length=64)
    # The registrar's reason, kept with the decision and in the audit log (both outcomes need one).
    note: str = Field(min_length=2, max_length=400)


class RegistrarDecided(BaseModel):
    application_id: str
    state: str
    decision: str
    reason: str | None


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)


def stuck_reason(application: Document, now: datetime) -> tuple[str, str] | None:
    """(code, words) when the student is stuck: a refusal to act on, or no movement for STALE_AFTER."""
    state = str(application.get("state"))
    if state == State.APPROVED:
        return None
    failure = application.get("last_failure") if isinstance(application.get("last_failure"), dict) else None
    if state in STUCK_STATES:
        message = str(failure.get("message") or "") if failure else ""
        words = STUCK_STATES[state] + (f"：{message}" if message else "")
        return state, words[:300]
    if failure and failure.get("code") == "photo_rejected":
        return "photo_rejected", f"照片未通过质量检测：{failure.get('message') or ''!s}"[:300]
    updated = _aware(application.get("updated_at"))
    if updated is not None and now - updated > STALE_AFTER:
        return "no_activity", f"{(now - updated).days} 天没有进展"
    return None


def _school(who: Operator, request: web.Request) -> str:
    code = request.query.get("school", "")
    if not code and not who.all_schools and len(who.schools) == 1:
        code = who.schools[0]
    if not code or len(code) > 32 or not who.sees(code):
        raise ApiError(404, "not_found")
    return code


async def _known_school(request: web.Request, code: str) -> None:
    if await request.app[SCHOOLS].get(code) is None:
        raise ApiError(404, "not_found")


@api.route(
    "GET",
    f"{PREFIX}/school/progress",
    summary="My school's students: counts by state and class, who has not started, who is stuck and why",
    response=Progress,
    query={"school": {"type": "string", "maxLength": 32}},
    errors=("forbidden", "not_found"),
    auth=roles(*STAFF),
)
async def school_progress(request: web.Request, *, who: Operator) -> web.Response:
    code = _school(who, request)
    await _known_school(request, code)
    database = request.app[DATABASE]
    now = utcnow()
    roster: dict[str, Document] = {}
    projection = {"student_number": 1, "name": 1, "class_name": 1}
    async for student in database.db["students"].find({"school_code": code}, projection):
        roster[str(student["_id"])] = student
    latest: dict[str, Document] = {}
    fields = {"state": 1, "student_id": 1, "updated_at": 1, "last_failure": 1}
    query = {"school_code": code, "merged_into": {"$exists": False}}
    async for application in database.db["applications"].find(query, fields):
        student_id = str(application.get("student_id") or "")
        seen = latest.get(student_id)
        when = _aware(application.get("updated_at"))
        if seen is None or (when is not None and (_aware(seen.get("updated_at")) or when) <= when):
            latest[student_id] = application
    by_state: dict[str, int] = {}
    classes: dict[str, dict[str, int]] = {}
    not_started: list[StudentLine] = []
    stuck: list[StuckStudent] = []

    def line(student_id: str) -> StudentLine:
        student = roster.get(student_id) or {}
        number = str(student.get("student_number") or student_id.partition(":")[2])
        return StudentLine(
            student_number=number,
            name=str(student.get("name") or ""),
            class_name=str(student.get("class_name") or ""),
        )

    for student_id in sorted(set(roster) | set(latest)):
        row = line(student_id)
        counts = classes.setdefault(
            row.class_name, {"students": 0, "not_started": 0, "in_progress": 0, "stuck": 0, "approved": 0}
        )
        counts["students"] += 1
        current = latest.get(student_id)
        if current is None:
            counts["not_started"] += 1
            not_started.append(row)
            continue
        application = current
        state = str(application.get("state"))
        by_state[state] = by_state.get(state, 0) + 1
        why = stuck_reason(application, now)
        if state == State.APPROVED:
            counts["approved"] += 1
        elif why is not None:
            counts["stuck"] += 1
            stuck.append(
                StuckStudent(
                    **row.model_dump(),
                    application_id=str(application["_id"]),
                    state=state,
                    reason_code=why[0],
                    reason=why[1],
                    since=_aware(application.get("updated_at")),
                )
            )
        else:
            counts["in_progress"] += 1
    reply = Progress(
        school_code=code,
        students=len(set(roster) | set(latest)),
        started=len(latest),
        approved=by_state.get(str(State.APPROVED), 0),
        by_state=[StateCount(state=s, count=n) for s, n in sorted(by_state.items())],
        by_class=[ClassProgress(class_name=name, **c) for name, c in sorted(classes.items())],
        not_started=not_started[:LIST_LIMIT],
        stuck=sorted(stuck, key=lambda s: (s.since is None, s.since or now))[:LIST_LIMIT],
        truncated=len(not_started) > LIST_LIMIT or len(stuck) > LIST_LIMIT,
    )
    # Names and student numbers of a school: a view of personal data, audited (counts, not the names).
    await request.app[CONSOLE].audit.record(
        request, who, "school.progress", school_code=code, stuck=len(stuck), not_started=len(not_started)
    )
    return json_response(reply.model_dump(mode="json"))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _failed_matches(application: Document) -> int:
    matches = application.get("match_history") or application.get("matches") or []
    if isinstance(matches, list):
        return sum(1 for m in matches if isinstance(m, dict) and m.get("passed") is False)
    return 0


@api.route(
    "GET",
    f"{PREFIX}/school/cases",
    summary="The registrar cases of my school (several compliant photos failed the comparison), oldest first",
    response=RegistrarCases,
    query={"school": {"type": "string", "maxLength": 32}},
    errors=("forbidden", "not_found"),
    auth=roles(*STAFF),
)
async def registrar_cases(request: web.Request, *, who: Operator) -> web.Response:
    code = _school(who, request)
    await _known_school(request, code)
    database = request.app[DATABASE]
    query = {"school_code": code, "state": str(State.REGISTRAR_REVIEW), "merged_into": {"$exists": False}}
    fields = {"student_id": 1, "match": 1, "submission": 1, "updated_at": 1, "match_history": 1, "matches": 1}
    applications = [
        a async for a in database.db["applications"].find(query, fields).sort("updated_at", 1).limit(200)
    ]
    ids = sorted({str(a.get("student_id") or "") for a in applications})
    students = {
        str(s["_id"]): s
        async for s in database.db["students"].find(
            {"_id": {"$in": ids}}, {"student_number": 1, "name": 1, "class_name": 1}
        )
    }
    cases: list[RegistrarCase] = []
    for application in applications:
        student = students.get(str(application.get("student_id") or "")) or {}
        match = _mapping(application.get("match"))
        submission = _mapping(application.get("submission"))
        photo_id = submission.get("photo_id") or match.get("photo_id")
        score = match.get("score")
        cases.append(
            RegistrarCase(
                application_id=str(application["_id"]),
                school_code=code,
                student_number=str(student.get("student_number") or ""),
                name=str(student.get("name") or ""),
                class_name=str(student.get("class_name") or ""),
                score=float(score)
                if isinstance(score, int | float) and not isinstance(score, bool)
                else None,
                band=str(match["band"]) if isinstance(match.get("band"), str) else None,
                failed_matches=_failed_matches(application),
                photo_url=f"{PREFIX}/applications/{application['_id']}/photos/{photo_id}"
                if photo_id
                else None,
                admission_photo_url=f"{PREFIX}/applications/{application['_id']}/admission-photo",
                updated_at=_aware(application.get("updated_at")),
            )
        )
    await request.app[CONSOLE].audit.record(request, who, "school.cases", school_code=code, count=len(cases))
    return json_response(RegistrarCases(school_code=code, cases=cases).model_dump(mode="json"))


@api.route(
    "POST",
    f"{PREFIX}/school/cases/{{application_id}}/decision",
    summary="Decide a registrar case of my school: approve or reject, with the registrar's reason (audited)",
    body=RegistrarDecision,
    response=RegistrarDecided,
    errors=("forbidden", "csrf_failed", "not_found", "illegal_transition", "reason_required"),
    auth=roles(*STAFF),
)
async def decide_registrar_case(
    request: web.Request, *, who: Operator, body: RegistrarDecision
) -> web.Response:
    application = await scoped_application(request, who, request.match_info["application_id"])
    if application.get("state") != State.REGISTRAR_REVIEW:
        # Only the registrar's cases: an in_review case belongs to the reviewers' queue.
        raise ApiError(409, "illegal_transition")
    command = review.ReviewCase(
        review_id=new_id(),
        decision=ReviewDecision(body.decision),
        reason_code=body.reason_code,
        note=body.note.strip(),
        operator_id=who.operator_id,
        trace={"request_id": request[REQUEST_ID]},
    )
    review.check_reason(command.decision, command.reason_code)
    rules = await request.app[SCHOOLS].rules(application.get("school_code"))
    written = await request.app[APPLICATIONS].apply(
        application["_id"], lambda app: review.decide_review(app, command, rules, utcnow())
    )
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "review.decided",
        application_id=application["_id"],
        school_code=application.get("school_code"),
        decision=body.decision,
        reason_code=body.reason_code,
        note=body.note.strip(),
        registrar=True,
    )
    log.info("registrar case decided", application_id=application["_id"], decision=body.decision)
    decided = written.review.doc() if written.review else {}
    reply = RegistrarDecided(
        application_id=written.id,
        state=written.state.value,
        decision=body.decision,
        reason=decided.get("reason"),
    )
    return json_response(reply.model_dump(mode="json"))

"""PIPL erasure on request, from the console (admins only): `services/gateway/erasure.py` does the work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.console.auth import CONSOLE, roles
from services.gateway.console.cases import PREFIX
from services.gateway.console.operators import Operator, Role
from services.gateway.context import BLOBS, DATABASE, FIELD_CIPHER, SESSIONS, WAITERS
from services.gateway.erasure import ErasureRefused, erase_application, erasure_ref
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api

api = Api()


class EraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(
        min_length=4,
        max_length=200,
        description="why (e.g. the request's ticket number); kept in the erasure record: no personal data",
    )


class EraseResponse(BaseModel):
    erasure_ref: str = Field(description="keyed hash of the application id: the only name the record keeps")
    already_erased: bool
    school_code: str | None
    requested_at: datetime | None
    completed_at: datetime | None
    operator_id: str | None
    counts: dict[str, int]
    orders_kept: int


def _response(record: dict[str, Any], already: bool) -> EraseResponse:
    return EraseResponse(
        erasure_ref=str(record["_id"]),
        already_erased=already,
        school_code=record.get("school_code"),
        requested_at=record.get("requested_at"),
        completed_at=record.get("completed_at"),
        operator_id=record.get("operator_id"),
        counts={str(k): int(v) for k, v in (record.get("counts") or {}).items()},
        orders_kept=len(record.get("orders") or []),
    )


@api.route(
    "POST",
    f"{PREFIX}/applications/{{application_id}}/erase",
    summary="Erase everything about the student (PIPL deletion on request); admins only, audited",
    body=EraseRequest,
    response=EraseResponse,
    errors=("forbidden", "csrf_failed", "not_found", "application_in_flight"),
    auth=roles(Role.ADMIN),
)
async def erase(request: web.Request, *, who: Operator, body: EraseRequest) -> web.Response:
    application_id = request.match_info["application_id"]
    if len(application_id) > 64:
        raise ApiError(404, "not_found")
    cipher = request.app[FIELD_CIPHER]
    audit = request.app[CONSOLE].audit
    ref = erasure_ref(cipher, application_id)
    application = (
        await request.app[DATABASE].db["applications"].find_one({"_id": application_id}, {"school_code": 1})
    )
    if application is not None and not who.sees(application.get("school_code")):
        raise ApiError(404, "not_found")
    try:
        result = await erase_application(
            request.app[DATABASE],
            request.app[BLOBS],
            cipher,
            application_id,
            reason=body.reason,
            operator_id=who.operator_id,
        )
    except ErasureRefused as exc:
        await audit.record(
            request, who, "application.erase", outcome="refused", application_ref=ref, error=exc.code
        )
        raise ApiError(409, exc.code) from exc
    if result is None or not who.sees(result.record.get("school_code")):
        await audit.record(
            request, who, "application.erase", outcome="failed", application_ref=ref, error="not_found"
        )
        raise ApiError(404, "not_found")
    for openid in result.openids:
        await request.app[SESSIONS].revoke_all(openid)  # also drops this process's session cache
        request.app[WAITERS].forget(openid)  # and the long poll's copy of the application
    reply = _response(result.record, result.already_erased)
    await audit.record(
        request,
        who,
        "application.erase",
        application_ref=reply.erasure_ref,
        school_code=reply.school_code,
        reason=body.reason,
        already_erased=result.already_erased,
        counts=reply.counts,
    )
    return json_response(reply.model_dump(mode="json"))

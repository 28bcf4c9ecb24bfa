"""`GET /console/api/v1/audit`: admins search the audit log (`audit.py` holds the store)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from services.gateway.console.auth import CONSOLE, roles
from services.gateway.console.operators import Operator, Role
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.query import query_number
from services.gateway.http.registry import Api

api = Api()

QUERY: dict[str, str | dict[str, Any]] = {
    "operator_id": "string",
    "action": "string",
    "application_id": "string",
    "since": "string",
    "until": "string",
    "limit": {"type": "integer", "minimum": 1, "maximum": 500},
}


class AuditEntry(BaseModel):
    entry_id: str
    at: datetime
    operator_id: str | None
    email: str | None
    role: str | None
    action: str
    outcome: str
    target: dict[str, Any]
    request_id: str | None
    ip: str | None


class AuditPage(BaseModel):
    entries: list[AuditEntry]


@api.route(
    "GET",
    "/console/api/v1/audit",
    summary="Search the audit log (admins only), newest first",
    response=AuditPage,
    query=QUERY,
    auth=roles(Role.ADMIN),
)
async def search_audit(request: web.Request, *, who: Operator) -> web.Response:
    q = request.query
    try:
        since = datetime.fromisoformat(q["since"]) if q.get("since") else None
        until = datetime.fromisoformat(q["until"]) if q.get("until") else None
    except ValueError as exc:
        raise ApiError(400, "invalid_request") from exc
    limit = int(query_number(request, "limit", QUERY, 100))
    audit = request.app[CONSOLE].audit
    found = await audit.search(
        operator_id=q.get("operator_id"),
        action=q.get("action"),
        application_id=q.get("application_id"),
        since=since.replace(tzinfo=since.tzinfo or UTC) if since else None,
        until=until.replace(tzinfo=until.tzinfo or UTC) if until else None,
        limit=limit,
    )
    await audit.record(request, who, "audit.search", query=dict(q))
    entries = [
        AuditEntry(
            entry_id=str(d["_id"]),
            at=d["at"],
            operator_id=d.get("operator_id"),
            email=d.get("email"),
            role=d.get("role"),
            action=d["action"],
            outcome=d.get("outcome", "ok"),
            target=d.get("target") or {},
            request_id=d.get("request_id"),
            ip=d.get("ip"),
        )
        for d in found
    ]
    return json_response(AuditPage(entries=entries).model_dump(mode="json"))

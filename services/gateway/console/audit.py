"""The audit log: one document per operator action and per photo view, searchable by admins (PIPL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pymongo import IndexModel

from services.gateway.console.operators import Operator, Role
from services.gateway.context import REQUEST_ID
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from shared.db import Database, Document
from shared.events import new_id, utcnow

INDEXES = {
    "audit_log": [
        IndexModel([("at", -1)]),
        IndexModel([("operator_id", 1), ("at", -1)]),
        IndexModel([("action", 1), ("at", -1)]),
        IndexModel([("target.application_id", 1), ("at", -1)]),
    ],
}


class AuditLog:
    def __init__(self, database: Database) -> None:
        self.collection = database.db["audit_log"]

    async def record(
        self,
        request: web.Request | None,
        operator: Operator | None,
        action: str,
        *,
        email: str | None = None,
        outcome: str = "ok",
        **target: Any,
    ) -> None:
        """Write before answering: an action that was not audited did not happen (the caller awaits this)."""
        details = {k: v for k, v in target.items() if v is not None}
        await self.collection.insert_one(
            {
                "_id": new_id(),
                "at": utcnow(),
                "operator_id": operator.operator_id if operator else None,
                "email": operator.email if operator else email,
                "role": str(operator.role) if operator else None,
                "action": action,
                "outcome": outcome,
                "target": details,
                "request_id": request.get(REQUEST_ID) if request is not None else None,
                "ip": request.remote if request is not None else None,
            }
        )

    async def search(
        self,
        *,
        operator_id: str | None = None,
        action: str | None = None,
        application_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Document]:
        query: dict[str, Any] = {}
        if operator_id:
            query["operator_id"] = operator_id
        if action:
            query["action"] = action
        if application_id:
            query["target.application_id"] = application_id
        if since or until:
            query["at"] = {
                **({"$gte": since} if since else {}),
                **({"$lt": until} if until else {}),
            }
        cursor = self.collection.find(query).sort("at", -1).limit(max(1, min(limit, 500)))
        return [doc async for doc in cursor]


# --- routes --------------------------------------------------------------------------------------

api = Api()


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
    query={
        "operator_id": "string",
        "action": "string",
        "application_id": "string",
        "since": "string",
        "until": "string",
        "limit": "integer",
    },
    errors=("forbidden",),
)
async def search_audit(request: web.Request) -> web.Response:
    from services.gateway.console.auth import CONSOLE, operator

    who = await operator(request, Role.ADMIN)
    q = request.query
    try:
        since = datetime.fromisoformat(q["since"]) if q.get("since") else None
        until = datetime.fromisoformat(q["until"]) if q.get("until") else None
        limit = int(q.get("limit", "100"))
    except ValueError as exc:
        raise ApiError(400, "invalid_request") from exc
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

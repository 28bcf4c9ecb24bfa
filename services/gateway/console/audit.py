"""The audit log: one document per operator action and per photo view (PIPL); admins search it
(`audit_search.py`). This module is the store only, so every console module can record without a cycle.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pymongo import IndexModel

from services.gateway.console.operators import Operator
from services.gateway.context import REQUEST_ID
from services.gateway.http.addresses import client_address
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
                "ip": client_address(request) if request is not None else None,
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

"""Wiring of the console into the gateway app: its stores, its routes and its own OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from pymongo import IndexModel

from services.gateway.config import GatewaySettings
from services.gateway.console import (
    accounts,
    audit,
    audit_search,
    auth,
    batches,
    cases,
    dashboard,
    deadletters,
    delivery,
    erasure,
    exceptions,
    operators,
    payments,
    review,
    school_staff,
    schools_admin,
    students,
)
from services.gateway.console.audit import AuditLog
from services.gateway.console.auth import CONSOLE, Console, ConsoleSessions, LoginThrottle
from services.gateway.console.operators import Operators
from services.gateway.console.webapp import install_web
from services.gateway.http.errors import json_response
from services.gateway.http.registry import Api
from shared.db import Database

CONSOLE_API = Api()
for module in (
    auth,
    audit_search,
    cases,
    review,
    exceptions,
    students,
    schools_admin,
    deadletters,
    dashboard,
    delivery,
    erasure,
    payments,
    accounts,
    school_staff,
):
    CONSOLE_API.endpoints.extend(module.api.endpoints)

INDEXES: dict[str, list[IndexModel]] = {
    **operators.INDEXES,
    **auth.INDEXES,
    **audit.INDEXES,
    **review.INDEXES,
    **batches.INDEXES,
    **accounts.INDEXES,
    "erasures": [IndexModel([("school_code", 1), ("requested_at", -1)])],
}


def build_console(database: Database, settings: GatewaySettings) -> Console:
    return Console(
        settings=settings,
        operators=Operators(database, cache_s=settings.console_auth_cache_s),
        sessions=ConsoleSessions(
            database,
            timedelta(minutes=settings.console_session_ttl_minutes),
            cache_s=settings.console_auth_cache_s,
        ),
        audit=AuditLog(database),
        login=LoginThrottle.from_settings(settings),
    )


def console_openapi() -> dict[str, Any]:
    document = CONSOLE_API.openapi()
    document["info"]["title"] = "Graduation-photo collection: operator console API"
    document["components"]["securitySchemes"] = {
        "session": {"type": "apiKey", "in": "cookie", "name": auth.SESSION_COOKIE},
    }
    return document


async def openapi_document(request: web.Request) -> web.Response:
    return json_response(console_openapi())


# Operator answers hold personal data and operator-typed text: never cached, never sniffed as HTML, never framed.
CONSOLE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


async def console_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/console/"):
        for name, value in CONSOLE_HEADERS.items():
            response.headers.setdefault(name, value)


def install_console(app: web.Application, database: Database, settings: GatewaySettings) -> None:
    app[CONSOLE] = build_console(database, settings)
    dashboard.install(app, settings)
    app.on_response_prepare.append(console_headers)
    CONSOLE_API.install(app)
    app.router.add_get("/console/api/v1/openapi.json", openapi_document)
    install_web(app)

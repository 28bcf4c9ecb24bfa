"""Wiring of the gateway: HTTP app, runtime (database, bus, probes), WeChat clients, relay, consumers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
from aiohttp import web

from services.gateway import payments, request_keys
from services.gateway.api import account, codes, field_rules, journey, orders, photos
from services.gateway.config import GatewaySettings
from services.gateway.console.wiring import INDEXES as CONSOLE_INDEXES
from services.gateway.console.wiring import install_console
from services.gateway.context import (
    APPLICATIONS,
    BLOBS,
    DATABASE,
    FIELD_CIPHER,
    LIMITERS,
    PAY,
    RELAY,
    SCHOOLS,
    SESSIONS,
    SETTINGS,
    USERS,
    WAITERS,
    WECHAT,
    Limiters,
)
from services.gateway.funnel import funnel_loop
from services.gateway.handlers import GatewayHandlers
from services.gateway.http.addresses import TRUSTED_PROXIES, TrustedProxies
from services.gateway.http.errors import json_response
from services.gateway.http.limits import RateLimiter
from services.gateway.http.middleware import error_handling, request_context
from services.gateway.http.registry import Api
from services.gateway.payments import reconciliation_loop
from services.gateway.privacy import KeyConfigError, cipher_from_settings
from services.gateway.retention import retention_loop
from services.gateway.schools import Schools, demo_school
from services.gateway.store import INDEXES, Applications, Sessions, Users
from services.gateway.waiters import Waiters
from shared.config import load_settings
from shared.logging import get_logger
from shared.outbox import OutboxRelay
from shared.runtime import Runtime, setup_logging
from shared.wechat.config import WeChatSettings
from shared.wechat.miniprogram import WeChatClient
from shared.wechat.pay import WeChatPayClient

log = get_logger(__name__)

# Collections whose documents carry outbox events.
OUTBOX_COLLECTIONS = ("applications",)

API = Api()
for module in (account, codes, field_rules, journey, orders, photos):
    API.endpoints.extend(module.api.endpoints)


async def openapi_document(request: web.Request) -> web.Response:
    return json_response(API.openapi())


def build_app(
    settings: GatewaySettings, wechat_settings: WeChatSettings | None = None
) -> tuple[web.Application, Runtime]:
    app = web.Application(
        middlewares=[request_context, error_handling],
        client_max_size=settings.gateway_max_upload_bytes + 64 * 1024,
    )
    runtime = Runtime(
        settings, indexes=[INDEXES, CONSOLE_INDEXES, payments.INDEXES, request_keys.INDEXES], app=app
    )
    relay = OutboxRelay(
        runtime.database,
        runtime.bus,
        OUTBOX_COLLECTIONS,
        sweep_interval_s=settings.outbox_sweep_interval_s,
        batch_size=settings.outbox_batch_size,
    )
    wechat_settings = wechat_settings or WeChatSettings()
    app[SETTINGS] = settings
    app[DATABASE] = runtime.database
    app[BLOBS] = runtime.blobs
    app[RELAY] = relay
    app[WAITERS] = Waiters(
        recheck_s=settings.gateway_long_poll_recheck_s, codec_options=runtime.database.db.codec_options
    )
    app[APPLICATIONS] = Applications(
        runtime.database, relay.wake, changed=app[WAITERS].changed, hint_relay=relay.hint
    )
    app[USERS] = Users(runtime.database)
    app[SESSIONS] = Sessions(runtime.database, timedelta(hours=settings.gateway_session_ttl_hours))
    app[SCHOOLS] = Schools(runtime.database)
    app[TRUSTED_PROXIES] = TrustedProxies.parse(settings.gateway_trusted_proxies)
    app[LIMITERS] = Limiters(
        login=RateLimiter(settings.gateway_login_per_minute, burst=10),
        upload=RateLimiter(settings.gateway_uploads_per_minute, burst=settings.gateway_upload_burst),
    )
    try:
        app[FIELD_CIPHER] = cipher_from_settings(settings)
    except KeyConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from exc
    if settings.environment == "production" and settings.ops_port is None:
        # The ingress exposes HTTP_PORT: readiness details and metrics must not be served there.
        raise SystemExit("configuration error: OPS_PORT is required in production (/readyz and /metrics)")

    async def wechat_clients(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=wechat_settings.wechat_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            app[WECHAT] = WeChatClient(wechat_settings, session)
            app[PAY] = WeChatPayClient(wechat_settings, session)
            yield

    app.cleanup_ctx.append(wechat_clients)
    API.install(app)
    app.router.add_get("/api/v1/openapi.json", openapi_document)
    install_console(app, runtime.database, settings)
    return app, runtime


async def start_background(app: web.Application, runtime: Runtime) -> list[asyncio.Task[None]]:
    """Relay, result consumer and payment reconciliation: everything but the HTTP server."""
    settings = app[SETTINGS]
    app[RELAY].start()
    handlers = GatewayHandlers(runtime.database, app[APPLICATIONS], app[USERS], app[SCHOOLS])
    await runtime.consume(handlers.subscription())
    reconcile = asyncio.create_task(
        reconciliation_loop(
            runtime.database,
            app[APPLICATIONS],
            app[PAY],
            interval_s=settings.gateway_reconcile_interval_s,
            after_s=settings.gateway_reconcile_after_s,
        ),
        name="reconciliation",
    )
    funnel = asyncio.create_task(
        funnel_loop(runtime.database, interval_s=settings.gateway_funnel_interval_s), name="funnel"
    )
    tasks = [reconcile, funnel]
    if settings.retention_interval_s > 0:
        retention = retention_loop(
            runtime.database,
            runtime.blobs,
            period=timedelta(days=settings.retention_days_after_delivery),
            interval_s=settings.retention_interval_s,
            batch_size=settings.retention_batch_size,
            undelivered_period=timedelta(days=settings.retention_days_if_undelivered)
            if settings.retention_days_if_undelivered > 0
            else None,
        )
        tasks.append(asyncio.create_task(retention, name="retention"))
    return tasks


async def stop_background(app: web.Application, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await app[RELAY].stop()


async def seed_demo_school(app: web.Application) -> None:
    """Local runs only: a school to collect for, so `make run` + `make demo` work on an empty database."""
    schools = app[SCHOOLS]
    if await schools.get(demo_school().school_code) is None:
        await schools.put(demo_school())
        log.info("seeded the demo school", school_code=demo_school().school_code)


async def run(settings: GatewaySettings | None = None) -> None:
    settings = settings or load_settings(GatewaySettings)
    setup_logging(settings)
    app, runtime = build_app(settings)
    runtime.install_signal_handlers()
    async with runtime:
        if settings.environment == "development":
            await seed_demo_school(app)
        tasks = await start_background(app, runtime)
        log.info("gateway ready", url=f"http://{settings.http_host}:{runtime.http_port}")
        await runtime.wait_for_stop()
        await stop_background(app, tasks)

"""Wiring of the gateway: HTTP app, runtime (database, bus, probes), outbox relay, result consumer."""

from __future__ import annotations

from aiohttp import web
from pymongo import IndexModel

from services.gateway.config import GatewaySettings
from services.gateway.context import BLOBS, DATABASE, RELAY, SETTINGS
from services.gateway.errors import error_handling, request_context
from services.gateway.handlers import GatewayHandlers
from services.gateway.routes import routes
from shared.config import load_settings
from shared.logging import get_logger
from shared.outbox import PENDING_FIELD, OutboxRelay
from shared.runtime import Runtime, setup_logging

log = get_logger(__name__)

# Collections whose documents carry outbox events.
OUTBOX_COLLECTIONS = ("applications",)

INDEXES = {
    "applications": [
        IndexModel([("code.scan_id", 1)]),
        IndexModel([("state", 1), ("updated_at", 1)]),
        IndexModel([(PENDING_FIELD, 1)]),
    ]
}


def build_app(settings: GatewaySettings) -> tuple[web.Application, Runtime]:
    app = web.Application(
        middlewares=[request_context, error_handling],
        client_max_size=settings.gateway_max_upload_bytes + 64 * 1024,
    )
    runtime = Runtime(settings, indexes=[INDEXES], app=app)
    relay = OutboxRelay(
        runtime.database,
        runtime.bus,
        OUTBOX_COLLECTIONS,
        poll_interval_s=settings.outbox_poll_interval_s,
        batch_size=settings.outbox_batch_size,
    )
    app[SETTINGS] = settings
    app[DATABASE] = runtime.database
    app[BLOBS] = runtime.blobs
    app[RELAY] = relay
    app.add_routes(routes)
    return app, runtime


async def run(settings: GatewaySettings | None = None) -> None:
    settings = settings or load_settings(GatewaySettings)
    setup_logging(settings)
    app, runtime = build_app(settings)
    relay = app[RELAY]
    runtime.install_signal_handlers()
    async with runtime:
        relay.start()
        await runtime.consume(GatewayHandlers(runtime.database).subscription())
        log.info("gateway ready", url=f"http://{settings.http_host}:{settings.http_port}")
        await runtime.wait_for_stop()
        await relay.stop()

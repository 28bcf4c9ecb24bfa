"""The gateway app plus a bare `hello` route, in one process: the ceiling is measured where the endpoint runs."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from services.gateway.app import build_app, start_background, stop_background
from services.gateway.config import GatewaySettings
from shared.runtime import setup_logging


async def hello(_request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


async def main() -> None:
    settings = GatewaySettings(log_level="WARNING")
    setup_logging(settings)
    app, runtime = build_app(settings)
    app.router.add_get("/bench/hello", hello)
    runtime.install_signal_handlers()
    async with runtime:
        tasks = await start_background(app, runtime)
        print(f"ready {runtime.http_port}", flush=True)
        await runtime.wait_for_stop()
        await stop_background(app, tasks)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())

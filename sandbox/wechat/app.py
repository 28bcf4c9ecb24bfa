"""Wiring: one aiohttp application serving the mini-program APIs, WeChat Pay v3 and the control API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from sandbox.wechat.config import SandboxConfig
from sandbox.wechat.control import ControlApi
from sandbox.wechat.miniprogram import MiniProgramApi
from sandbox.wechat.notifier import Notifier
from sandbox.wechat.pay import PayApi
from sandbox.wechat.state import SandboxState
from shared.logging import get_logger

log = get_logger(__name__)

STATE = web.AppKey("wechat_sandbox_state", SandboxState)
NOTIFIER = web.AppKey("wechat_sandbox_notifier", Notifier)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths and crashes answer JSON, never an HTML page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.reason}, status=exc.status)
    except Exception:
        log.exception("sandbox_handler_failed", path=request.path)
        return web.json_response({"errcode": -1, "errmsg": "system error"}, status=500)


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(config: SandboxConfig) -> web.Application:
    state = SandboxState(config)
    notifier = Notifier(state)
    pay = PayApi(state, notifier)
    app = web.Application(middlewares=[_json_errors], client_max_size=1024 * 1024)
    app[STATE] = state
    app[NOTIFIER] = notifier
    app.add_routes(MiniProgramApi(state).routes())
    app.add_routes(pay.routes())
    app.add_routes(ControlApi(state, notifier, pay).routes())
    app.add_routes([web.get("/healthz", _health), web.get("/readyz", _health)])

    async def start_notifier(_app: web.Application) -> None:
        await notifier.start()

    async def close_notifier(_app: web.Application) -> None:
        await notifier.close()

    app.on_startup.append(start_notifier)
    app.on_cleanup.append(close_notifier)
    return app


@dataclass
class SandboxServer:
    """A running sandbox: its base URL (for WECHAT_API_BASE and WECHATPAY_API_BASE) and its memory."""

    url: str
    port: int
    state: SandboxState
    notifier: Notifier
    runner: web.AppRunner

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_sandbox(config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> SandboxServer:
    """Start in the running event loop; port 0 picks a free port. Access logs are off: URLs carry secrets."""
    app = build_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = int(runner.addresses[0][1])
    return SandboxServer(f"http://{host}:{bound}", bound, app[STATE], app[NOTIFIER], runner)

"""The WeChat sandbox in the test's event loop, clients pointed at it, and a notification receiver.

Usable by any test that needs WeChat: `running_sandbox(keyset)` starts one on a free port,
`client_settings(keyset, sandbox.url, ...)` configures the real clients for it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.wechat import SandboxConfig, SandboxServer, start_sandbox
from shared.wechat.config import WeChatSettings
from shared.wechat.keys import WeChatKeySet, client_env, generate_keyset

# Fast notification retries: tests must not wait WeChat's 15 s.
FAST_RETRIES = (0.05, 0.05)


@functools.cache
def shared_keyset() -> WeChatKeySet:
    """One generated key set per test run (RSA key generation takes a moment)."""
    return generate_keyset()


@asynccontextmanager
async def running_sandbox(keyset: WeChatKeySet, **config: Any) -> AsyncIterator[SandboxServer]:
    config.setdefault("notify_retry_delays_s", FAST_RETRIES)
    server = await start_sandbox(SandboxConfig(keyset=keyset, **config))
    try:
        yield server
    finally:
        await server.close()


def client_settings(
    keyset: WeChatKeySet,
    base_url: str,
    *,
    notify_url: str = "",
    refund_notify_url: str = "",
    **overrides: Any,
) -> WeChatSettings:
    env = client_env(keyset, api_base=base_url, notify_url=notify_url, refund_notify_url=refund_notify_url)
    values: dict[str, Any] = {k.lower(): v for k, v in env.items()}
    values.update(overrides)
    return WeChatSettings.model_validate(values)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class NotificationReceiver:
    """A merchant's notify_url: records every request and answers from `statuses` (then 204)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._arrived:
            self.received.append(
                Received(request.path, dict(request.headers), body, asyncio.get_running_loop().time())
            )
            self._arrived.notify_all()
        status = self.statuses.pop(0) if self.statuses else 204
        if status == 204:
            return web.Response(status=204)
        return web.json_response({"code": "FAIL", "message": "失败"}, status=status)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.received) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.received


@asynccontextmanager
async def notification_receiver() -> AsyncIterator[NotificationReceiver]:
    receiver = NotificationReceiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield receiver
    finally:
        await runner.cleanup()

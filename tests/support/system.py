"""The gateway and the codec run in the test's event loop, against the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.codec.cipher import cipher_from_config
from services.codec.config import CodecSettings
from services.codec.handlers import INDEXES as CODEC_INDEXES
from services.codec.handlers import CodecHandlers
from services.gateway.app import build_app
from services.gateway.config import GatewaySettings
from services.gateway.context import RELAY
from services.gateway.handlers import GatewayHandlers
from shared.runtime import Runtime


def settings_from(env: dict[str, str], cls: type[Any], **overrides: Any) -> Any:
    return cls.model_validate({**{k.lower(): v for k, v in env.items()}, **overrides})


@dataclass
class System:
    gateway: Runtime
    codec: Runtime | None
    http: aiohttp.ClientSession
    base_url: str

    async def wait_for_scan(self, scan_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """Poll the status endpoint the way the mini-program does, until the scan is decided."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self.http.get(f"{self.base_url}/api/v1/codes/{scan_id}") as resp:
                assert resp.status == 200, await resp.text()
                body: dict[str, Any] = await resp.json()
            if body["status"] != "pending":
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"scan {scan_id} still pending after {timeout}s")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running_system(env: dict[str, str], *, with_codec: bool = True) -> AsyncIterator[System]:
    gateway_settings = settings_from(env, GatewaySettings, service_name="gateway")
    app, gateway = build_app(gateway_settings)
    codec: Runtime | None = None
    await gateway.start()
    relay = app[RELAY]
    relay.start()
    await gateway.consume(GatewayHandlers(gateway.database).subscription())
    try:
        if with_codec:
            codec_settings = settings_from(env, CodecSettings, service_name="codec")
            codec = Runtime(codec_settings, indexes=[CODEC_INDEXES])
            await codec.start()
            cipher = cipher_from_config(
                codec_settings.codec_cipher_algorithm, codec_settings.codec_cipher_key.get_secret_value()
            )
            await codec.consume(
                CodecHandlers(codec.database, codec.blobs, codec_settings, cipher).subscription()
            )
        async with aiohttp.ClientSession() as http:
            yield System(gateway, codec, http, f"http://127.0.0.1:{gateway.http_port}")
    finally:
        await relay.stop()
        if codec is not None:
            await codec.shutdown()
        await gateway.shutdown()

"""`python -m sandbox.wechat`: serve the WeChat sandbox until SIGINT/SIGTERM.

The key set under SANDBOX_KEYS (default var/wechat) is made on first start; point the services at
this server with `shared.wechat.keys.client_env` (docs/wechat.md).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from sandbox.wechat.app import start_sandbox
from sandbox.wechat.chsi import cipher_from_settings
from sandbox.wechat.config import SandboxConfig, SandboxSettings
from shared.logging import configure_logging, get_logger
from shared.wechat.keys import load_or_create_keyset


async def main() -> int:
    settings = SandboxSettings()
    configure_logging(
        service="wechat-sandbox",
        level=settings.log_level,
        json_logs=settings.log_format == "json",
    )
    log = get_logger("sandbox.wechat")
    keyset = load_or_create_keyset(settings.sandbox_keys)
    config = SandboxConfig(
        keyset=keyset,
        token_ttl_s=settings.sandbox_token_ttl_s,
        notify_retry_delays_s=settings.retry_delays(),
        notify_timeout_s=settings.sandbox_notify_timeout_s,
        chsi_cipher=cipher_from_settings(settings.codec_cipher_key, settings.codec_cipher_algorithm),
    )
    server = await start_sandbox(config, settings.sandbox_host, settings.sandbox_port)
    log.info("wechat_sandbox_listening", url=server.url, keys=str(settings.sandbox_keys), appid=keyset.appid)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()
    log.info("wechat_sandbox_stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

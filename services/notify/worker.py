"""Wiring of the notify worker: settings, the WeChat client (one HTTP session), runtime, subscription."""

from __future__ import annotations

import sys

import aiohttp

from services.notify.config import NotifySettings
from services.notify.handlers import INDEXES, NotifyHandlers
from shared.config import load_settings
from shared.logging import get_logger
from shared.runtime import Runtime, setup_logging
from shared.wechat.config import WeChatSettings
from shared.wechat.miniprogram import WeChatClient

log = get_logger(__name__)


async def run(settings: NotifySettings | None = None, wechat: WeChatSettings | None = None) -> None:
    settings = settings or load_settings(NotifySettings)
    if wechat is None:
        try:
            wechat = WeChatSettings()
        except ValueError as exc:
            sys.exit(f"configuration error: WECHAT_*: {exc}")
    setup_logging(settings)
    if not wechat.miniprogram_configured:
        sys.exit("configuration error: WECHAT_APPID and WECHAT_SECRET are needed to send subscribe messages")
    runtime = Runtime(settings, indexes=[INDEXES])
    runtime.install_signal_handlers()
    async with runtime, aiohttp.ClientSession() as http:
        handlers = NotifyHandlers(runtime.database, settings, WeChatClient(wechat, http))
        await runtime.consume(handlers.subscription())
        log.info(
            "notify ready",
            schools=sorted(settings.notify_templates),
            send_rate=settings.notify_send_rate or "unlimited",
        )
        await runtime.wait_for_stop()

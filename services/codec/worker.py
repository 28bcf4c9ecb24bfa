"""Wiring of the codec worker: settings, cipher, runtime, subscription."""

from __future__ import annotations

import sys

from services.codec.cipher import cipher_from_config
from services.codec.config import CodecSettings
from services.codec.handlers import INDEXES, CodecHandlers
from shared.config import load_settings
from shared.logging import get_logger
from shared.runtime import Runtime, setup_logging

log = get_logger(__name__)


async def run(settings: CodecSettings | None = None) -> None:
    settings = settings or load_settings(CodecSettings)
    setup_logging(settings)
    try:
        cipher = cipher_from_config(
            settings.codec_cipher_algorithm, settings.codec_cipher_key.get_secret_value()
        )
    except ValueError as exc:
        sys.exit(f"configuration error: CODEC_CIPHER_ALGORITHM/CODEC_CIPHER_KEY: {exc}")
    runtime = Runtime(settings, indexes=[INDEXES])
    runtime.install_signal_handlers()
    async with runtime:
        handlers = CodecHandlers(runtime.database, runtime.blobs, settings, cipher)
        await runtime.consume(handlers.subscription())
        log.info("codec ready", algorithm=cipher.algorithm)
        await runtime.wait_for_stop()

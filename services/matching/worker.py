"""Wiring of the matching worker: settings, the face engine (loaded once), runtime, subscription."""

from __future__ import annotations

import asyncio
import sys

from services.matching.config import MatchingSettings
from services.matching.engines import DlibEngine, EngineUnavailable, engine_for
from services.matching.handlers import INDEXES, MatchingHandlers
from shared.config import load_settings
from shared.logging import get_logger
from shared.runtime import Runtime, setup_logging

log = get_logger(__name__)


async def run(settings: MatchingSettings | None = None) -> None:
    settings = settings or load_settings(MatchingSettings)
    setup_logging(settings)
    try:
        # Before consuming: a worker is ready only once its models are in memory.
        engine = await asyncio.to_thread(engine_for, settings)
    except EngineUnavailable as exc:
        sys.exit(f"configuration error: MATCHING_ENGINE={settings.engine_name}: {exc}")
    runtime = Runtime(settings, indexes=[INDEXES])
    runtime.install_signal_handlers()
    async with runtime:
        handlers = MatchingHandlers(runtime.database, runtime.blobs, settings, engine)
        await runtime.consume(handlers.subscription())
        log.info(
            "matching ready",
            engine=engine.name,
            model=engine.model,
            pass_threshold=engine.scale.raw_at(80.0),
            # dlib: "numpy" (the port passed its self-check) or "dlib" (see docs/matching.md).
            **({"descriptor": engine.descriptor_backend} if isinstance(engine, DlibEngine) else {}),
        )
        await runtime.wait_for_stop()

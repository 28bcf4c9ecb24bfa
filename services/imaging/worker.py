"""Wiring of the imaging worker: settings, the model pool, runtime, subscription."""

from __future__ import annotations

import asyncio

import cv2

from services.imaging.config import ImagingSettings
from services.imaging.handlers import INDEXES, ImagingHandlers
from services.imaging.preprocess import ModelPool
from shared.config import load_settings
from shared.logging import get_logger
from shared.runtime import Runtime, setup_logging

log = get_logger(__name__)


async def run(settings: ImagingSettings | None = None) -> None:
    settings = settings or load_settings(ImagingSettings)
    setup_logging(settings)
    # Photos run in parallel on the pool's threads (one per core), so OpenCV's own thread pool only adds
    # hand-off and idle spinning to each call's CPU time: one thread per call (results do not depend on
    # it: bench/imaging/equivalence.py).
    cv2.setNumThreads(1)
    # One model set per message in flight (prefetch), loaded once, before consuming: the first photo
    # is as fast as the rest, and /readyz only turns green once the models are there.
    pool = await asyncio.to_thread(
        ModelPool, settings.bus_prefetch, min_confidence=settings.standard.face_min_confidence
    )
    runtime = Runtime(settings, indexes=[INDEXES])
    runtime.install_signal_handlers()
    try:
        async with runtime:
            handlers = ImagingHandlers(runtime.database, runtime.blobs, settings, pool)
            await runtime.consume(handlers.subscription())
            log.info("imaging ready", models=pool.size, prefetch=settings.bus_prefetch)
            await runtime.wait_for_stop()
    finally:
        pool.close()

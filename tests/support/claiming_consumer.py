"""A consumer process whose claimed handler never finishes by itself: a test kills it mid-message.

Run as `python -m tests.support.claiming_consumer` with the usual MONGO_*/AMQP_URL/BUS_* environment.
"""

from __future__ import annotations

import asyncio

from shared.bus import Bus, Subscription
from shared.config import Settings, load_settings
from shared.db import Database
from shared.events import CodeRejected, Envelope
from shared.idempotency import ProcessedEvents
from shared.logging import get_logger
from shared.runtime import setup_logging

log = get_logger("claiming_consumer")


async def main() -> None:
    settings = load_settings(Settings)
    setup_logging(settings)
    database = Database(settings)
    bus = Bus(settings, ProcessedEvents(database, lease_s=settings.bus_claim_lease_s))
    await bus.connect()
    sub = Subscription("gateway")

    @sub.on(CodeRejected)
    async def hang(payload: CodeRejected, envelope: Envelope) -> list[Envelope]:
        log.info("handling", scan_id=payload.scan_id)
        await asyncio.sleep(3600)
        return []

    await bus.consume(sub)
    log.info("consumer ready")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

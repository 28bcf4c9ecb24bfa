"""The outbox: events commit with their state change, and a relay crash never loses or doubles an outcome."""

from __future__ import annotations

import asyncio

import pytest

from shared.bus import Bus, Subscription
from shared.config import Settings
from shared.events import CodeScanned, Envelope, StudentClaim, make_event
from shared.idempotency import ProcessedEvents
from shared.outbox import OutboxRelay, stage, with_outbox

pytestmark = pytest.mark.slow


def event(n: int):
    return make_event(
        CodeScanned(
            scan_id=f"s{n}",
            claim=StudentClaim(name="李四", student_number="2020002", id_last4="5678"),
            source="text",
            qr_text="x",
        ),
        application_id="app-1",
    )


def test_stage_adds_events_to_the_same_update():
    e1, e2 = event(1), event(2)
    update = stage({"$set": {"state": "code_submitted"}, "$inc": {"n": 1}}, e1, e2)
    assert update["$set"]["state"] == "code_submitted"
    assert set(update["$set"]) == {"state", f"outbox.{e1.id}", f"outbox.{e2.id}"}
    assert update["$inc"] == {"n": 1, "outbox_pending": 2}
    assert stage({"$set": {"a": 1}}) == {"$set": {"a": 1}}


class CrashingBus:
    """Publishes for real, then 'dies' before the relay can clear the event (the worst moment)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.published: list[str] = []

    async def publish(self, envelope) -> None:
        await self.bus.publish(envelope)
        self.published.append(envelope.id)
        raise ConnectionError("process died after the broker confirmed")


async def test_relay_crash_after_publish_republishes_the_same_id_and_consumers_dedupe(env, database):
    settings = Settings.model_validate({k.lower(): v for k, v in env.items()})
    publisher, consumer = Bus(settings), Bus(settings, ProcessedEvents(database))
    await publisher.connect()
    await consumer.connect()
    handled: list[str] = []
    sub = Subscription("codec")

    @sub.on(CodeScanned)
    async def handler(payload: CodeScanned, envelope: Envelope):
        handled.append(envelope.id)
        return []

    await consumer.consume(sub)
    try:
        e = event(1)
        apps = database.db["applications"]
        await apps.insert_one(with_outbox({"_id": "app-1", "state": "code_submitted"}, e))

        crashing = CrashingBus(publisher)
        with pytest.raises(ConnectionError):
            await OutboxRelay(database, crashing, ["applications"]).relay_once()  # type: ignore[arg-type]
        assert crashing.published == [e.id]
        assert (await apps.find_one({"_id": "app-1"}))["outbox_pending"] == 1  # still pending

        assert await OutboxRelay(database, publisher, ["applications"]).relay_once() == 1
        doc = await apps.find_one({"_id": "app-1"})
        assert doc["outbox_pending"] == 0 and doc["outbox"] == {}
        assert doc["state"] == "code_submitted"

        async with asyncio.timeout(10):
            while await database.db["processed_events"].count_documents({"state": "done"}) < 1:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # room for the second copy to arrive and be recognised
        assert handled == [e.id]  # published twice, handled once
        assert await OutboxRelay(database, publisher, ["applications"]).relay_once() == 0
    finally:
        await consumer.close()
        await publisher.close()

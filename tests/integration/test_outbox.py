"""The outbox: events commit with their state change, and a relay crash never loses or doubles an outcome.

The relay publishes the events its process's writers hand it (hints) without reading the database, and
finds the others with a sweep (once at start, then on a timer): tests below count the commands it sends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from services.gateway.domain.change import Change
from services.gateway.store import Applications
from shared.bus import Bus, Subscription
from shared.config import Settings
from shared.dbstats import COMMANDS
from shared.events import CodeScanned, Envelope, StudentClaim, make_event, utcnow
from shared.idempotency import ProcessedEvents
from shared.outbox import BACKLOG, RELAY_ERRORS, RELAYED, OutboxRelay, Staged, stage, with_outbox

pytestmark = pytest.mark.slow

T0 = utcnow()


def event(n: int, application_id: str = "app-1"):
    return make_event(
        CodeScanned(
            scan_id=f"s{n}",
            claim=StudentClaim(name="李四", student_number="2020002", id_last4="5678"),
            source="text",
            qr_text="x",
        ),
        application_id=application_id,
        occurred_at=T0 + timedelta(milliseconds=n),  # n orders the events of a test
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


@contextlib.asynccontextmanager
async def buses(env, database) -> AsyncIterator[tuple[Bus, list[str]]]:
    """A publisher on the real broker, and a codec consumer behind the bus's claims; plus what it handled."""
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
        yield publisher, handled
    finally:
        await consumer.close()
        await publisher.close()


async def test_relay_crash_after_publish_republishes_the_same_id_and_consumers_dedupe(env, database):
    async with buses(env, database) as (publisher, handled):
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


def count(command: str) -> float:
    op = "read" if command == "find" else "write"
    return COMMANDS.labels("applications", op, command)._value.get()  # type: ignore[attr-defined]


def value(metric: Any) -> float:
    return float(metric.labels("applications")._value.get())


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


class Broker:
    """The real bus, with switches: `down` (every publish fails, as with the broker unreachable) and
    `fail_next` (that many publishes fail, then it works again). `confirmed`: ids in publish order."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.down = False
        self.fail_next = 0
        self.confirmed: list[str] = []

    async def publish(self, envelope: Envelope) -> None:
        if self.down or self.fail_next:
            self.fail_next = max(self.fail_next - 1, 0)
            raise ConnectionError("broker unreachable")
        await self.bus.publish(envelope)
        self.confirmed.append(envelope.id)


@contextlib.asynccontextmanager
async def relaying(env, database, *, sweep_interval_s: float, start: bool = True) -> AsyncIterator[Any]:
    """A relay on the real broker, started, its first sweep (at start) done; plus what a consumer got."""
    async with buses(env, database) as (publisher, handled):
        broker = Broker(publisher)
        relay = OutboxRelay(database, broker, ["applications"], sweep_interval_s=sweep_interval_s)  # type: ignore[arg-type]
        try:
            if start:
                finds = count("find")
                relay.start()
                await until(lambda: count("find") > finds)
                await asyncio.sleep(0.2)  # the start sweep (nothing to relay) is over
            yield relay, broker, handled
        finally:
            await relay.stop()


def scanned(state: str, *events: Envelope) -> Callable[[Any], Change]:
    return lambda doc: Change(set={"state": state}, events=events)


async def test_a_hinted_event_is_published_and_removed_without_reading_the_document(env, database):
    async with relaying(env, database, sweep_interval_s=60) as (relay, broker, handled):
        applications = Applications(database, relay.wake, hint_relay=relay.hint)
        finds, updates, relayed = count("find"), count("update"), value(RELAYED)
        e1, e2 = event(1, "app-h"), event(2, "app-h")
        await applications.create({"_id": "app-h", "state": "code_submitted"}, e1)
        await until(lambda: value(RELAYED) == relayed + 1)
        await applications.mutate("app-h", scanned("confirmed", e2))  # its own read: one find
        await until(lambda: value(RELAYED) == relayed + 2)
        for _ in range(5):
            relay.wake()  # a wake is no sweep
            await asyncio.sleep(0.05)

        assert broker.confirmed == [e1.id, e2.id]
        assert count("find") - finds == 1  # mutate's read; none by the relay
        assert count("update") - updates == 3  # mutate's write; one guarded removal per event
        doc = await database.db["applications"].find_one({"_id": "app-h"})
        assert doc["outbox_pending"] == 0 and doc["outbox"] == {} and doc["state"] == "confirmed"
        await until(lambda: sorted(handled) == sorted([e1.id, e2.id]))


async def test_the_sweep_relays_an_event_staged_by_another_process(env, database):
    async with relaying(env, database, sweep_interval_s=1.0) as (relay, broker, handled):
        e = event(1, "app-other")
        # Another process (a CLI, another replica) staged it: nobody hands it to this relay.
        await database.db["applications"].insert_one(with_outbox({"_id": "app-other"}, e))
        started = asyncio.get_running_loop().time()
        await until(lambda: broker.confirmed == [e.id], timeout=5)
        assert asyncio.get_running_loop().time() - started < 1.0 + 1.0  # within the sweep interval (+ slack)
        doc = await database.db["applications"].find_one({"_id": "app-other"})
        assert doc["outbox_pending"] == 0 and doc["outbox"] == {}


async def test_a_failed_publish_drops_the_hints_and_the_sweep_keeps_each_aggregates_order(env, database):
    # No sweep but the one after the failure (1 s later): the hints alone meet the failure.
    async with relaying(env, database, sweep_interval_s=60) as (relay, broker, _):
        apps = database.db["applications"]
        x1, x2, y1 = event(1, "app-x"), event(2, "app-x"), event(3, "app-y")
        await apps.insert_one(with_outbox({"_id": "app-x", "version": 1}, x1))
        await apps.update_one({"_id": "app-x"}, stage({"$inc": {"version": 1}}, x2))
        await apps.insert_one(with_outbox({"_id": "app-y", "version": 1}, y1))
        broker.fail_next = 1  # x1's publish fails; the broker answers again at once
        errors = value(RELAY_ERRORS)
        # The worst case: x2's hint claims nothing else was pending, so only dropping it keeps it
        # from overtaking x1, which only the sweep publishes now.
        relay.hint(Staged("applications", "app-x", (x1,), 0))
        relay.hint(Staged("applications", "app-x", (x2,), 0))
        relay.hint(Staged("applications", "app-y", (y1,), 0))
        await until(lambda: len(broker.confirmed) == 3)

        assert value(RELAY_ERRORS) == errors + 1
        assert [i for i in broker.confirmed if i in (x1.id, x2.id)] == [x1.id, x2.id]
        assert sorted(broker.confirmed) == sorted([x1.id, x2.id, y1.id])  # each once
        assert await apps.count_documents({"outbox_pending": {"$gt": 0}}) == 0


async def test_broker_down_then_up_the_backlog_leaves_in_order(env, database):
    async with relaying(env, database, sweep_interval_s=0.3) as (relay, broker, handled):
        applications = Applications(database, relay.wake, hint_relay=relay.hint)
        broker.down = True
        errors = value(RELAY_ERRORS)
        events = [event(n, "app-d") for n in range(1, 5)]
        await applications.create({"_id": "app-d"}, events[0])
        await until(lambda: value(RELAY_ERRORS) > errors)
        for n, e in enumerate(events[1:]):  # state changes still commit, with their events
            await applications.mutate("app-d", scanned(f"s{n}", e))
        await asyncio.sleep(0.5)
        assert value(BACKLOG) == 1 and broker.confirmed == []

        broker.down = False
        await until(lambda: len(broker.confirmed) == 4)
        assert broker.confirmed == [e.id for e in events]
        await until(lambda: value(BACKLOG) == 0)
        doc = await database.db["applications"].find_one({"_id": "app-d"})
        assert doc["outbox_pending"] == 0 and doc["outbox"] == {}
        await until(lambda: sorted(handled) == sorted(e.id for e in events))


async def test_an_event_the_sweep_published_is_not_published_again_by_its_hint(env, database):
    async with relaying(env, database, sweep_interval_s=60, start=False) as (relay, broker, _):
        e = event(1, "app-o")
        await database.db["applications"].insert_one(with_outbox({"_id": "app-o"}, e))
        relay.hint(Staged("applications", "app-o", (e,), 0))
        assert await relay.relay_once() == 1  # the sweep got there first
        updates, finds = count("update"), count("find")
        relay.start()  # its start sweep finds nothing; then the hint, which is stale
        await until(lambda: count("find") > finds)
        await asyncio.sleep(0.3)
        assert broker.confirmed == [e.id]
        assert count("update") == updates  # nothing to remove either


async def test_a_hint_behind_events_it_was_not_handed_reads_the_document_and_keeps_the_order(env, database):
    async with relaying(env, database, sweep_interval_s=60) as (relay, broker, _):
        e1, e2 = event(1, "app-f"), event(2, "app-f")
        # e1 staged by another process; the write of e2 here sees it pending (outbox_pending 1).
        await database.db["applications"].insert_one(with_outbox({"_id": "app-f", "version": 1}, e1))
        applications = Applications(database, relay.wake, hint_relay=relay.hint)
        finds = count("find")
        written = await applications.mutate("app-f", scanned("confirmed", e2))
        assert written["outbox_pending"] == 2  # as written, should it be passed back as `current`
        await until(lambda: len(broker.confirmed) == 2, timeout=5)  # long before the next sweep
        assert broker.confirmed == [e1.id, e2.id]
        assert count("find") - finds == 2  # mutate's read and the relay's read of that one document


async def test_stop_relays_the_hints_already_handed_over(env, database):
    async with relaying(env, database, sweep_interval_s=60) as (relay, broker, _):
        applications = Applications(database, relay.wake, hint_relay=relay.hint)
        e = event(1, "app-s")
        await applications.create({"_id": "app-s"}, e)
        await relay.stop()
        assert broker.confirmed == [e.id]
        doc = await database.db["applications"].find_one({"_id": "app-s"})
        assert doc["outbox_pending"] == 0

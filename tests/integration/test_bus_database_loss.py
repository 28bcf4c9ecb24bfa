"""A consumer whose database goes away while a message arrives (found by `make load FAULTS=1`: a
nx-27017 restart left one code scan unacked on the codec's channel for good, the student stuck).

The consumer's database connection runs through a proxy that the test cuts: claiming the event fails,
the message must be retried, and once the database is back it is handled exactly once."""

from __future__ import annotations

import asyncio

import pytest

from shared.bus import Bus, Subscription
from shared.config import Settings
from shared.db import Database
from shared.events import CodeScanned, Envelope
from shared.idempotency import ProcessedEvents
from tests.integration.test_bus import eventually, make_settings, queue_depth, queue_messages, scan_event
from tests.support.proxy import CuttableProxy

pytestmark = pytest.mark.slow


async def test_a_claim_that_fails_while_the_database_is_away_is_retried_then_handled_once(
    env, mongo_url, mongo_db
):
    host, port = mongo_url.split("//", 1)[1].split("/", 1)[0].split(":")
    proxy = CuttableProxy(host, int(port))
    await proxy.start()
    via_proxy = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true"
    database = Database(Settings(mongo_url=via_proxy, mongo_db=mongo_db, mongo_timeout_ms=400))
    settings = make_settings(env, bus_max_attempts=20, bus_retry_delay_ms=200)
    publisher, consumer = Bus(settings), Bus(settings, ProcessedEvents(database))
    await publisher.connect()
    await consumer.connect()
    handled: list[str] = []
    sub = Subscription("codec")

    @sub.on(CodeScanned)
    async def handler(payload: CodeScanned, envelope: Envelope):
        handled.append(envelope.id)
        return []

    try:
        await consumer.consume(sub)
        proxy.cut()
        event = scan_event(7)
        await publisher.publish(event)
        await asyncio.sleep(1.5)  # several claims fail meanwhile
        assert handled == []
        proxy.restore()
        await eventually(lambda: _handled(handled), timeout=20)
        await asyncio.sleep(0.5)
        assert handled == [event.id]  # once
        assert await queue_depth(env["AMQP_URL"], "codec") == 0  # nothing left unacked or waiting
        assert await queue_messages(env["AMQP_URL"], "codec.dead") == []
        claim = await database.db["processed_events"].find_one({"_id": f"codec:{event.id}"})
        assert claim is not None and claim["state"] == "done"
    finally:
        await consumer.close()
        await publisher.close()
        await database.close()
        await proxy.close()


async def _handled(handled: list[str]) -> bool:
    return bool(handled)


async def test_a_delivery_cut_off_by_broker_loss_gives_its_claim_up(env, database):
    """The broker connection drops while a handler runs: the delivery's task is cancelled with it. Its claim
    must be released, or the redelivered copy waits out the whole lease (found by `make load FAULTS=1`: a
    RabbitMQ restart held comparisons back for BUS_CLAIM_LEASE_S)."""
    proxy = CuttableProxy("127.0.0.1", 5672)
    await proxy.start()
    vhost = env["AMQP_URL"].rsplit("/", 1)[1]
    settings = make_settings(
        env, amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}", bus_reconnect_interval_s=0.3
    )
    publisher = Bus(make_settings(env))
    consumer = Bus(settings, ProcessedEvents(database, lease_s=60))
    await publisher.connect()
    await consumer.connect()
    started: list[float] = []
    finished: list[str] = []
    sub = Subscription("codec")

    @sub.on(CodeScanned)
    async def handler(payload: CodeScanned, envelope: Envelope):
        started.append(asyncio.get_running_loop().time())
        if len(started) == 1:
            await asyncio.sleep(30)  # the first copy is still busy when the connection drops
        finished.append(envelope.id)
        return []

    try:
        await consumer.consume(sub)
        event = scan_event(8)
        await publisher.publish(event)
        await eventually(lambda: _handled(started), timeout=10)
        proxy.cut()
        await asyncio.sleep(0.5)
        proxy.restore()
        await eventually(lambda: _handled(finished), timeout=15)  # far less than the 60 s lease
        assert finished == [event.id] and len(started) == 2
        claim = await database.db["processed_events"].find_one({"_id": f"codec:{event.id}"})
        assert claim is not None and claim["state"] == "done"
    finally:
        await consumer.close()
        await publisher.close()
        await proxy.close()

"""The bus against a real RabbitMQ: retries, the dead queue, idempotency, and broker loss."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import pytest

from shared.bus import Bus, PermanentError, Subscription
from shared.config import Settings
from shared.events import CodeScanned, Envelope, StudentClaim, make_event
from shared.idempotency import ProcessedEvents
from shared.outbox import OutboxRelay, with_outbox
from tests.support.proxy import CuttableProxy

pytestmark = pytest.mark.slow


def scan_event(n: int = 0):
    return make_event(
        CodeScanned(
            scan_id=f"scan-{n}",
            claim=StudentClaim(name="张三", student_number="2020001", id_last4="1234"),
            source="text",
            qr_text="x",
        ),
        application_id=f"app-{n}",
    )


def make_settings(env: dict[str, str], **overrides) -> Settings:
    return Settings.model_validate({**{k.lower(): v for k, v in env.items()}, **overrides})


async def queue_messages(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message currently in `queue`, taken off it."""
    conn = await aio_pika.connect(amqp_url)
    out = []
    async with conn:
        channel = await conn.channel()
        q = await channel.get_queue(queue, ensure=True)
        while (msg := await q.get(fail=False, no_ack=True)) is not None:
            out.append(msg)
    return out


async def queue_depth(amqp_url: str, queue: str) -> int:
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        channel = await conn.channel()
        q = await channel.declare_queue(queue, passive=True)
        return int(q.declaration_result.message_count or 0)


async def eventually(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@pytest.fixture
async def bus_pair(env, database):
    """A publishing bus and a consuming bus (separate connections, as in separate services)."""
    settings = make_settings(env)
    publisher = Bus(settings)
    consumer = Bus(settings, ProcessedEvents(database))
    await publisher.connect()
    await consumer.connect()
    yield publisher, consumer
    await consumer.close()
    await publisher.close()


async def test_failing_handler_reaches_dead_queue_after_max_attempts_with_history(bus_pair, amqp_url):
    publisher, consumer = bus_pair
    calls = []
    sub = Subscription("codec")

    @sub.on(CodeScanned)
    async def always_fails(payload: CodeScanned, envelope: Envelope):
        calls.append(envelope.id)
        raise RuntimeError(f"boom {len(calls)}")

    await consumer.consume(sub)
    event = scan_event()
    await publisher.publish(event)
    await eventually(lambda: queue_depth(amqp_url, "codec.dead"))
    (dead,) = await queue_messages(amqp_url, "codec.dead")
    assert calls == [event.id] * 3  # BUS_MAX_ATTEMPTS=3 in the test environment
    assert dead.message_id == event.id
    assert json.loads(dead.body)["id"] == event.id  # the body is the original, byte for byte
    assert dead.body == event.to_bytes()
    assert dead.headers["x-attempt"] == 3
    history = json.loads(dead.headers["x-history"])
    assert [h["attempt"] for h in history] == [1, 2, 3]
    assert [h["error"] for h in history] == [
        "RuntimeError: boom 1",
        "RuntimeError: boom 2",
        "RuntimeError: boom 3",
    ]
    assert dead.headers["x-dead-reason"] == "RuntimeError: boom 3"
    assert await queue_depth(amqp_url, "codec") == 0
    assert await queue_depth(amqp_url, "codec.retry") == 0


async def test_permanent_error_is_parked_without_retry(bus_pair, amqp_url):
    publisher, consumer = bus_pair
    calls = []
    sub = Subscription("codec")

    @sub.on(CodeScanned)
    async def refuses(payload: CodeScanned, envelope: Envelope):
        calls.append(1)
        raise PermanentError("cannot ever work")

    await consumer.consume(sub)
    await publisher.publish(scan_event())
    await eventually(lambda: queue_depth(amqp_url, "codec.dead"))
    (dead,) = await queue_messages(amqp_url, "codec.dead")
    assert calls == [1]
    assert dead.headers["x-dead-reason"] == "PermanentError: cannot ever work"


async def test_malformed_messages_are_parked_and_never_reach_the_handler(bus_pair, amqp_url):
    _, consumer = bus_pair
    calls = []
    sub = Subscription("codec")

    @sub.on(CodeScanned)
    async def handler(payload: CodeScanned, envelope: Envelope):
        calls.append(1)
        return []

    await consumer.consume(sub)
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        channel = await conn.channel()
        exchange = await channel.get_exchange("events")
        await exchange.publish(
            aio_pika.Message(b"not json at all", message_id="m1"), routing_key="code.scanned.v1"
        )
        bad_schema = scan_event().model_dump(mode="json")
        bad_schema["data"]["claim"]["name"] = ""  # violates the payload schema
        await exchange.publish(
            aio_pika.Message(json.dumps(bad_schema).encode()), routing_key="code.scanned.v1"
        )
        huge = {**scan_event().model_dump(mode="json"), "unexpected": "field"}
        await exchange.publish(aio_pika.Message(json.dumps(huge).encode()), routing_key="code.scanned.v1")
    await eventually(lambda: _depth_at_least(amqp_url, "codec.dead", 3))
    dead = await queue_messages(amqp_url, "codec.dead")
    assert len(dead) == 3
    assert all(m.headers["x-dead-reason"].startswith("malformed") for m in dead)
    assert dead[0].body == b"not json at all"
    assert calls == []


async def _depth_at_least(amqp_url, queue, n):
    return await queue_depth(amqp_url, queue) >= n


async def test_duplicate_event_is_handled_once(bus_pair, database):
    publisher, consumer = bus_pair
    calls = []
    sub = Subscription("codec")

    @sub.on(CodeScanned)
    async def handler(payload: CodeScanned, envelope: Envelope):
        calls.append(envelope.id)
        return []

    await consumer.consume(sub)
    event = scan_event()
    for _ in range(3):
        await publisher.publish(event)
    await eventually(lambda: database.db["processed_events"].count_documents({}))
    await asyncio.sleep(0.5)
    assert calls == [event.id]
    assert await database.db["processed_events"].count_documents({"_id": f"codec:{event.id}"}) == 1


async def test_handler_results_are_published_before_the_ack(bus_pair, database, amqp_url):
    from shared.events import CodeRejected

    publisher, consumer = bus_pair
    sub = Subscription("codec")
    source = scan_event()

    @sub.on(CodeScanned)
    async def handler(payload: CodeScanned, envelope: Envelope):
        return [
            make_event(
                CodeRejected(scan_id=payload.scan_id, reason="no_code_found", message="未识别到二维码"),
                application_id=envelope.application_id,
                event_id="result-1",
            )
        ]

    await consumer.consume(sub)
    await publisher.publish(source)
    results = await eventually(lambda: queue_messages(amqp_url, "gateway"))
    assert [m.message_id for m in results] == ["result-1"]
    assert results[0].correlation_id == source.application_id
    assert results[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_unroutable_publish_raises(env):
    bus = Bus(make_settings(env))
    await bus.connect()
    try:
        event = scan_event().model_copy(update={"type": "nobody.listens.v1"})
        with pytest.raises(aio_pika.exceptions.PublishError):
            await bus.publish(event)
    finally:
        await bus.close()


async def test_broker_connection_lost_and_restored_loses_nothing(env, database):
    proxy = CuttableProxy("127.0.0.1", 5672)
    await proxy.start()
    vhost = env["AMQP_URL"].rsplit("/", 1)[1]
    via_proxy = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}"
    settings = make_settings(env, amqp_url=via_proxy, bus_reconnect_interval_s=0.3, bus_publish_timeout_s=2)
    publisher = Bus(settings)
    consumer = Bus(settings, ProcessedEvents(database))
    await publisher.connect()
    await consumer.connect()
    received: list[str] = []
    sub = Subscription("codec")

    @sub.on(CodeScanned)
    async def handler(payload: CodeScanned, envelope: Envelope):
        received.append(envelope.application_id)
        return []

    await consumer.consume(sub)
    relay = OutboxRelay(database, publisher, ["applications"], sweep_interval_s=0.1)
    relay.start()
    try:
        apps = database.db["applications"]
        for n in range(5):
            await apps.insert_one(with_outbox({"_id": f"app-{n}"}, scan_event(n)))
        relay.wake()
        await eventually(lambda: _all_received(received, 5))

        proxy.cut()
        # While the broker is unreachable, state changes still commit with their events.
        for n in range(5, 15):
            await apps.insert_one(with_outbox({"_id": f"app-{n}"}, scan_event(n)))
        relay.wake()
        await asyncio.sleep(1.0)
        assert await apps.count_documents({"outbox_pending": {"$gt": 0}}) > 0
        with pytest.raises((aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError, TimeoutError)):
            await publisher.publish(scan_event(99))

        proxy.restore()
        await eventually(lambda: _all_received(received, 15), timeout=30)
        assert sorted(received, key=lambda a: int(a.split("-")[1])) == [f"app-{n}" for n in range(15)]
        assert await apps.count_documents({"outbox_pending": {"$gt": 0}}) == 0
        # Publishing directly works again too.
        await publisher.publish(scan_event(100))
        await eventually(lambda: _all_received(received, 16))
    finally:
        await relay.stop()
        await consumer.close()
        await publisher.close()
        await proxy.close()


async def _all_received(received, n):
    return len(set(received)) >= n

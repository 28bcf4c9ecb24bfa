"""Claims with a heartbeat (16.4): a slow handler keeps its claim, a killed worker's claim is taken over
within its short lease; and handlers idempotent by construction take no claim (16.2)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from shared.bus import Bus, Subscription
from shared.events import CodeRejected, CodeScanned, Envelope, make_event
from shared.idempotency import ProcessedEvents
from tests.integration.test_bus import eventually, make_settings, queue_depth, queue_messages, scan_event
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.slow


def rejected_event(n: int) -> Envelope:
    return make_event(
        CodeRejected(scan_id=f"scan-{n}", reason="no_code_found", message="未识别到二维码"),
        application_id=f"app-{n}",
    )


async def test_a_claim_is_renewed_while_its_handler_runs_so_a_duplicate_waits(env, database, amqp_url):
    """Old code: a handler slower than the lease lost its claim, and a duplicate copy ran beside it."""
    settings = make_settings(env, bus_claim_lease_s=1.5)  # heartbeat every 0.5 s
    publisher, consumer = Bus(settings), Bus(settings, ProcessedEvents(database, lease_s=1.5))
    await publisher.connect()
    await consumer.connect()
    calls: list[str] = []
    sub = Subscription("codec")

    @sub.on(CodeScanned)
    async def slow(payload: CodeScanned, envelope: Envelope) -> list[Envelope]:
        calls.append(envelope.id)
        await asyncio.sleep(4.5)  # three leases
        return []

    try:
        await consumer.consume(sub)
        event = scan_event(1)
        await publisher.publish(event)
        await eventually(lambda: _at_least(calls, 1))
        await asyncio.sleep(2.0)  # past the first lease
        await publisher.publish(event)  # a duplicate copy (an outbox relay's second publish)
        claims = database.db["processed_events"]
        await eventually(lambda: _claim_done(claims, f"codec:{event.id}"), timeout=20)
        await eventually(lambda: _depth_zero(amqp_url), timeout=10)
        assert calls == [event.id]  # never run twice at the same time
        assert await queue_messages(amqp_url, "codec.dead") == []
    finally:
        await consumer.close()
        await publisher.close()


async def test_a_killed_workers_claimed_message_is_taken_over_within_the_lease(env, subprocess_env, database):
    """Old code: a 60 s lease that had to outlast the slowest handler; a killed worker's message waited it
    out. Now the default 10 s lease, kept alive by a heartbeat, runs out soon after the worker dies."""
    worker = await ServiceProcess("tests.support.claiming_consumer", subprocess_env).start()
    settings = make_settings(env)
    publisher, successor = Bus(settings), Bus(settings, ProcessedEvents(database))
    taken_over = asyncio.Event()
    sub = Subscription("gateway")

    @sub.on(CodeRejected)
    async def finish(payload: CodeRejected, envelope: Envelope) -> list[Envelope]:
        taken_over.set()
        return []

    try:
        await worker.wait_for_log("consumer ready")
        await publisher.connect()
        event = rejected_event(2)
        await publisher.publish(event)
        await worker.wait_for_log("handling")
        await asyncio.sleep(2 * settings.claim_heartbeat_s)  # renewed at least once meanwhile
        worker.signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
        killed = asyncio.get_running_loop().time()
        await successor.connect()
        await successor.consume(sub)
        await asyncio.wait_for(taken_over.wait(), 60)
        waited = asyncio.get_running_loop().time() - killed
        assert waited <= 12, waited  # the default lease (10 s) and a retry delay; the old lease was 60 s
        claim = await database.db["processed_events"].find_one({"_id": f"gateway:{event.id}"})
        assert claim is not None and claim["state"] == "done"
    finally:
        await worker.stop()
        await successor.close()
        await publisher.close()


async def test_a_handler_idempotent_by_construction_takes_no_claim(env, database, amqp_url):
    settings = make_settings(env)
    publisher, consumer = Bus(settings), Bus(settings, ProcessedEvents(database))
    await publisher.connect()
    await consumer.connect()
    calls: list[str] = []
    sub = Subscription("codec")

    @sub.on(CodeScanned, claim=False)
    async def handler(payload: CodeScanned, envelope: Envelope) -> list[Envelope]:
        calls.append(envelope.id)
        return []

    try:
        await consumer.consume(sub)
        event = scan_event(3)
        await publisher.publish(event)
        await eventually(lambda: _at_least(calls, 1))
        await eventually(lambda: _depth_zero(amqp_url))
        assert calls == [event.id]
        assert await database.db["processed_events"].count_documents({}) == 0
    finally:
        await consumer.close()
        await publisher.close()


async def _at_least(items: list[str], n: int) -> bool:
    return len(items) >= n


async def _claim_done(claims, key: str) -> bool:
    doc = await claims.find_one({"_id": key})
    return doc is not None and doc.get("state") == "done"


async def _depth_zero(amqp_url: str) -> bool:
    return await queue_depth(amqp_url, "codec") == 0 and await queue_depth(amqp_url, "codec.retry") == 0

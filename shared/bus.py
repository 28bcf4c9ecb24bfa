"""The event bus on RabbitMQ (aio-pika): publish with confirms, consume with retry and a dead queue.

Topology per consumer `c`: a quorum queue `c` bound to the topic exchange for each event type it
handles; `c.retry`, whose messages expire after the retry delay and dead-letter back into `c`; and
`c.dead`, the parking lot an operator inspects and redrives. Retry and parking are explicit publishes
by the consumer (with an attempt count and the history of errors in headers), so the main queues need
no dead-letter arguments that would be painful to change on a running cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from pamqp.common import FieldTable
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from yarl import URL

from shared.config import Settings
from shared.db import database_unreachable
from shared.events import Envelope, EventData, UnknownEventType, utcnow
from shared.idempotency import Claim, ProcessedEvents
from shared.logging import get_logger
from shared.topology import CONSUMERS, dead_queue, event_types, retry_queue

log = get_logger(__name__)

QUORUM: FieldTable = {"x-queue-type": "quorum"}
ATTEMPT_HEADER = "x-attempt"
HISTORY_HEADER = "x-history"
MAX_HISTORY = 20

PUBLISHED = Counter("bus_published_total", "Events published with a broker confirm", ["type"])
PUBLISH_FAILED = Counter("bus_publish_failed_total", "Publishes that failed or timed out", ["type"])
HANDLED = Counter(
    "bus_messages_total",
    "Messages consumed, by outcome (ok, duplicate, busy, outage, retry, dead, malformed)",
    ["consumer", "type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "bus_handler_seconds",
    "Handler latency, publish of results included",
    ["consumer", "type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_LAG = Histogram(
    "bus_queue_lag_seconds",
    "Time from an event's occurred_at to the start of its handling",
    ["consumer", "type"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: the message is parked at once."""


class Defer(Exception):
    """Raised by a handler when another copy of the event is being handled right now by a live process (its
    own record says so): the message comes back through the retry queue after `delay_s` (at most the retry
    delay), and the attempt is not counted, as with a claim found busy."""

    def __init__(self, reason: str, delay_s: float) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


E = TypeVar("E", bound=EventData)
# A handler gets the typed payload first and the envelope (id, application id, trace) beside it, and
# returns the result events to publish: `async def on_photo_submitted(event: PhotoSubmitted, envelope)`.
Handler = Callable[[E, Envelope], Awaitable[Sequence[Envelope]]]


@dataclass
class Subscription:
    """One consumer's handlers, subscribed by event class: `sub.on(PhotoSubmitted)(handler)`.

    By default the bus claims each event before its handler runs (`shared/idempotency.py`): one copy at a
    time, a done event skipped. `claim=False` is for a handler idempotent by construction (its outcome
    stored under a unique key and its result event ids derived from the input's, as `shared/outcomes.py`
    does): two database writes fewer per event, and a crashed worker's message is taken over at once.
    """

    consumer: str
    handlers: dict[str, Handler[Any]] = field(default_factory=dict)
    unclaimed: set[str] = field(default_factory=set)

    def on(self, event_class: type[E], *, claim: bool = True) -> Callable[[Handler[E]], Handler[E]]:
        if event_class not in CONSUMERS.get(self.consumer, ()):
            raise ValueError(f"{self.consumer} does not consume {event_class.__name__} in shared.topology")

        def register(handler: Handler[E]) -> Handler[E]:
            # The bus parses a message of this type into `event_class` (EVENT_TYPES), so the handler
            # is only ever called with the payload it declares.
            self.handlers[event_class.event_type] = handler
            if claim:
                self.unclaimed.discard(event_class.event_type)
            else:
                self.unclaimed.add(event_class.event_type)
            return handler

        return register

    def claims(self, event_type: str) -> bool:
        return event_type not in self.unclaimed

    def missing(self) -> list[str]:
        """Event types routed to this consumer's queue that no handler takes (they would be parked)."""
        return [t for t in event_types(self.consumer) if t not in self.handlers]


def _message(envelope: Envelope, headers: dict[str, Any] | None = None) -> aio_pika.Message:
    return aio_pika.Message(
        envelope.to_bytes(),
        message_id=envelope.id,
        correlation_id=envelope.application_id,
        type=envelope.type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        timestamp=envelope.occurred_at,
        headers={**envelope.trace, **(headers or {})},
    )


class Bus:
    """One robust connection per process; a confirming channel to publish, one channel per consumer."""

    def __init__(self, settings: Settings, processed: ProcessedEvents | None = None) -> None:
        self._settings = settings
        self._processed = processed
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False

    # --- connection and topology ----------------------------------------------------------------

    async def connect(self) -> None:
        url = URL(self._settings.amqp_url)
        if "reconnect_interval" not in url.query:
            url = url.update_query(reconnect_interval=str(self._settings.bus_reconnect_interval_s))
        self._connection = await aio_pika.connect_robust(
            url,
            timeout=self._settings.bus_publish_timeout_s,
            client_properties={"connection_name": self._settings.service_name},
        )
        self._publish_channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._declare_topology(self._publish_channel)

    async def _declare_topology(self, channel: AbstractChannel) -> AbstractExchange:
        exchange = await channel.declare_exchange(
            self._settings.bus_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for consumer, event_classes in CONSUMERS.items():
            queue = await channel.declare_queue(consumer, durable=True, arguments=QUORUM)
            for event_class in event_classes:
                await queue.bind(exchange, routing_key=event_class.event_type)
            await channel.declare_queue(
                retry_queue(consumer),
                durable=True,
                arguments=_retry_arguments(consumer),
            )
            await channel.declare_queue(dead_queue(consumer), durable=True, arguments=QUORUM)
        return exchange

    @property
    def connected(self) -> bool:
        conn = self._connection
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    @property
    def consuming(self) -> bool:
        return bool(self._consumers) and self.connected and not self._draining

    # --- publishing -----------------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> None:
        """Publish persistently and wait for the broker's confirm; raises if unroutable or too slow."""
        if self._exchange is None:
            raise RuntimeError("bus is not connected")
        try:
            await self._exchange.publish(
                _message(envelope),
                routing_key=envelope.type,
                mandatory=True,
                timeout=self._settings.bus_publish_timeout_s,
            )
        except Exception:
            PUBLISH_FAILED.labels(envelope.type).inc()
            raise
        PUBLISHED.labels(envelope.type).inc()

    async def publish_many(self, envelopes: Iterable[Envelope]) -> None:
        for envelope in envelopes:
            await self.publish(envelope)

    async def _publish_to_queue(self, queue: str, message: aio_pika.Message) -> None:
        assert self._publish_channel is not None
        await self._publish_channel.default_exchange.publish(
            message, routing_key=queue, mandatory=True, timeout=self._settings.bus_publish_timeout_s
        )

    # --- consuming ------------------------------------------------------------------------------

    async def consume(self, subscription: Subscription) -> None:
        """Start consuming; needs a ProcessedEvents store for idempotency."""
        if self._connection is None:
            raise RuntimeError("bus is not connected")
        if self._processed is None:
            raise RuntimeError("consuming needs a ProcessedEvents store")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._settings.bus_prefetch)
        queue = await channel.declare_queue(subscription.consumer, durable=True, arguments=QUORUM)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._handle(subscription, message)

        tag = await queue.consume(on_message)
        self._consumers.append((queue, tag))
        if missing := subscription.missing():
            log.warning("no handler for routed event types: they will be parked", types=missing)
        log.info("consuming", queue=subscription.consumer, types=sorted(subscription.handlers))

    async def _handle(self, sub: Subscription, message: AbstractIncomingMessage) -> None:
        self._inflight += 1
        self._idle.clear()
        try:
            await self._dispatch(sub, message)
        except Exception:
            # Nothing may leave a delivery unsettled: unacked, it would sit on this channel for as long as
            # the connection lives. Back to the queue (its x-delivery-count parks a poison message).
            log.exception("delivery not settled, returned to its queue", consumer=sub.consumer)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _dispatch(self, sub: Subscription, message: AbstractIncomingMessage) -> None:
        assert self._processed is not None
        headers = dict(message.headers or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 1) or 1)  # type: ignore[arg-type]
        # Quorum queues count redeliveries of a message whose consumer died without acking it.
        redeliveries = int(headers.get("x-delivery-count", 0) or 0)  # type: ignore[arg-type]
        event_type = message.type or "unknown"
        try:
            envelope = Envelope.from_bytes(message.body)
            payload = envelope.payload()
        except (ValidationError, UnknownEventType, ValueError) as exc:
            HANDLED.labels(sub.consumer, event_type, "malformed").inc()
            log.warning("malformed message parked", consumer=sub.consumer, error=str(exc)[:300])
            await self._park(sub.consumer, message, headers, f"malformed: {str(exc)[:300]}", attempt)
            return
        handler = sub.handlers.get(envelope.type)
        # Each delivery runs in its own task, so these ids reach every log line the handler writes.
        structlog.contextvars.bind_contextvars(event_id=envelope.id, application_id=envelope.application_id)
        blog = log.bind(consumer=sub.consumer, event_type=envelope.type, attempt=attempt)
        if handler is None:
            HANDLED.labels(sub.consumer, envelope.type, "malformed").inc()
            await self._park(sub.consumer, message, headers, f"no handler for {envelope.type}", attempt)
            return
        if attempt + redeliveries > self._settings.bus_max_attempts:
            HANDLED.labels(sub.consumer, envelope.type, "dead").inc()
            blog.error("delivery limit reached without an outcome", redeliveries=redeliveries)
            await self._park(
                sub.consumer, message, headers, f"redelivered {redeliveries} times without an ack", attempt
            )
            return
        claimed = sub.claims(envelope.type)
        if claimed:
            try:
                claim = await self._processed.claim(sub.consumer, envelope.id)
            except Exception as exc:
                if not self.connected:
                    blog.warning("claim interrupted by broker loss", error=repr(exc)[:300])
                    return
                if database_unreachable(exc):
                    # Nothing was tried: the database is away (a restart, a failover). Not an attempt.
                    await self._outage(sub, message, headers, envelope, exc, blog)
                    return
                await self._fail(sub, message, headers, envelope, attempt + redeliveries, exc, blog)
                return
            if claim.state is Claim.DONE:
                HANDLED.labels(sub.consumer, envelope.type, "duplicate").inc()
                blog.info("duplicate event skipped")
                await message.ack()
                return
            if claim.state is Claim.BUSY:
                # Another copy is being handled right now: wait in the retry queue, never dropped. Look
                # again when the holder's lease would run out (it renews it while alive).
                HANDLED.labels(sub.consumer, envelope.type, "busy").inc()
                blog.info("event in progress elsewhere, deferred", lease_left_s=round(claim.lease_left_s, 2))
                await self._defer(sub.consumer, message, headers, claim.lease_left_s + 0.05)
                return
        QUEUE_LAG.labels(sub.consumer, envelope.type).observe(
            max((utcnow() - envelope.occurred_at).total_seconds(), 0.0)
        )
        started = time.perf_counter()
        heartbeat = (
            asyncio.create_task(self._heartbeat(sub.consumer, envelope.id, blog), name="claim-heartbeat")
            if claimed
            else None
        )
        try:
            results = await handler(payload, envelope)
            await self.publish_many(results)
            if claimed:
                await self._processed.complete(sub.consumer, envelope.id)
        except asyncio.CancelledError:
            # The broker connection went and its delivery tasks with it: give the claim up, so that the
            # redelivery is handled at once instead of waiting out the lease. Nothing to ack any more.
            if claimed:
                await asyncio.shield(_quietly(self._processed.release(sub.consumer, envelope.id)))
            raise
        except Defer as exc:
            if claimed:
                await _quietly(self._processed.release(sub.consumer, envelope.id))
            if not self.connected:
                return
            HANDLED.labels(sub.consumer, envelope.type, "busy").inc()
            blog.info("event in progress elsewhere, deferred", reason=str(exc), delay_s=round(exc.delay_s, 2))
            await self._defer(sub.consumer, message, headers, exc.delay_s)
            return
        except Exception as exc:
            if claimed:
                await _quietly(self._processed.release(sub.consumer, envelope.id))
            if not self.connected:
                # The broker is gone: neither ack nor retry is possible; redelivery will come.
                blog.warning("handler interrupted by broker loss", error=repr(exc)[:300])
                return
            if database_unreachable(exc) and not isinstance(exc, PermanentError):
                await self._outage(sub, message, headers, envelope, exc, blog)
                return
            await self._fail(sub, message, headers, envelope, attempt + redeliveries, exc, blog)
            return
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            HANDLER_SECONDS.labels(sub.consumer, envelope.type).observe(time.perf_counter() - started)
        HANDLED.labels(sub.consumer, envelope.type, "ok").inc()
        await message.ack()

    async def _heartbeat(self, consumer: str, event_id: str, blog: Any) -> None:
        """Renew the claim's lease while the handler runs, so only a dead worker's claim runs out."""
        assert self._processed is not None
        interval = self._settings.claim_heartbeat_s
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._processed.renew(consumer, event_id):
                    # Taken over after a lease ran out (this process stalled, or the database was away
                    # longer than the lease). The handler is idempotent: finishing is still safe.
                    blog.warning("claim lost while handling")
                    return
            except Exception as exc:  # the database is away: keep trying, the lease may outlast it
                blog.warning("claim heartbeat failed", error=repr(exc)[:200])

    async def _outage(
        self,
        sub: Subscription,
        message: AbstractIncomingMessage,
        headers: dict[str, Any],
        envelope: Envelope,
        exc: Exception,
        blog: Any,
    ) -> None:
        """The database could not be reached: wait in the retry queue without counting an attempt, for
        as long as the outage lasts. The message is not at fault, so an outage never parks it."""
        HANDLED.labels(sub.consumer, envelope.type, "outage").inc()
        blog.warning("database unreachable, will retry; not counted as an attempt", error=repr(exc)[:300])
        await self._defer(sub.consumer, message, headers, self._settings.bus_retry_delay_ms / 1000)

    async def _fail(
        self,
        sub: Subscription,
        message: AbstractIncomingMessage,
        headers: dict[str, Any],
        envelope: Envelope,
        attempt: int,
        exc: Exception,
        blog: Any,
    ) -> None:
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        history = _history_with(headers, attempt, reason)
        if isinstance(exc, PermanentError) or attempt >= self._settings.bus_max_attempts:
            HANDLED.labels(sub.consumer, envelope.type, "dead").inc()
            blog.error("handler failed, parked", error=reason, exc_info=not isinstance(exc, PermanentError))
            await self._park(sub.consumer, message, headers, reason, attempt, history)
            return
        HANDLED.labels(sub.consumer, envelope.type, "retry").inc()
        blog.warning("handler failed, will retry", error=reason)
        retry = copy_message(message, headers, {ATTEMPT_HEADER: attempt + 1, HISTORY_HEADER: _dump(history)})
        retry.expiration = self._settings.bus_retry_delay_ms / 1000
        await self._publish_to_queue(retry_queue(sub.consumer), retry)
        await message.ack()

    async def _defer(
        self, consumer: str, message: AbstractIncomingMessage, headers: dict[str, Any], delay_s: float
    ) -> None:
        """Back through the retry queue, the attempt count unchanged; never later than the retry delay."""
        deferred = copy_message(message, headers, {})
        deferred.expiration = max(min(delay_s, self._settings.bus_retry_delay_ms / 1000), 0.0)
        await self._publish_to_queue(retry_queue(consumer), deferred)
        await message.ack()

    async def _park(
        self,
        consumer: str,
        message: AbstractIncomingMessage,
        headers: dict[str, Any],
        reason: str,
        attempt: int,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        if history is None:
            history = _history_with(headers, attempt, reason)
        parked = copy_message(
            message,
            headers,
            {
                ATTEMPT_HEADER: attempt,
                HISTORY_HEADER: _dump(history),
                "x-dead-reason": reason,
                "x-dead-at": utcnow().isoformat(),
                "x-consumer": consumer,
            },
        )
        await self._publish_to_queue(dead_queue(consumer), parked)
        await message.ack()

    # --- shutdown -------------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> bool:
        """Stop taking new messages and wait for those in flight; True if all finished in time."""
        self._draining = True
        for queue, tag in self._consumers:
            try:
                await queue.cancel(tag)
            except Exception as exc:  # the channel may already be gone; in-flight work still finishes
                log.warning("cancel failed", error=repr(exc))
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("drain timed out; unacked messages will be redelivered", inflight=self._inflight)
            return False
        return True

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


async def _quietly(operation: Awaitable[None]) -> None:
    try:
        await operation
    except Exception as exc:  # the claim's lease runs out by itself; cleanup must not hide the real error
        log.warning("claim release failed", error=repr(exc)[:200])


def _retry_arguments(consumer: str) -> FieldTable:
    return {**QUORUM, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": consumer}


def _history(headers: dict[str, Any]) -> list[dict[str, Any]]:
    raw = headers.get(HISTORY_HEADER)
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        history = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        history = []
    return history if isinstance(history, list) else []


def _history_with(headers: dict[str, Any], attempt: int, error: str) -> list[dict[str, Any]]:
    return [*_history(headers), {"attempt": attempt, "error": error, "at": utcnow().isoformat()}]


def _dump(history: list[dict[str, Any]]) -> str:
    return json.dumps(history[-MAX_HISTORY:], ensure_ascii=False)


def copy_message(
    message: AbstractIncomingMessage, headers: dict[str, Any], extra: dict[str, Any]
) -> aio_pika.Message:
    """A persistent copy of a consumed message to publish again (retry, parking, redrive), same id."""
    kept = {k: v for k, v in headers.items() if not k.startswith("x-delivery-count")}
    return aio_pika.Message(
        message.body,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        timestamp=message.timestamp or utcnow(),
        headers={**kept, **extra},
    )
